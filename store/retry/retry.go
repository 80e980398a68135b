// Package retry wraps a store.Store so that calls failing with a transient
// error (store.Transient) are tried again, with exponential backoff and
// jitter, up to a number of attempts.
//
//	s, err := s3.Open(ctx, cfg)
//	…
//	st := retry.New(s, retry.Options{})
//
// What is retried, and how:
//
//   - Put, Stat: the whole call. Put is safe to repeat: it writes the same
//     bytes under the same name, and a Put whose acknowledgement was lost
//     simply writes the object again.
//   - Get: opening the object; then, if reading the body fails with a
//     transient error, the reader re-opens the object at the offset already
//     delivered, so the caller sees one clean stream. The attempts count
//     starts afresh whenever bytes came through. A reader resumes only if
//     the inner store's readers tell the object's version
//     (store.Versioned, as the S3 backend's do) and the version is still the
//     same: if the object was replaced in between, the read fails with
//     ErrReplaced instead of splicing two versions. Without versions only a
//     read that broke before its first byte is retried.
//   - List: the listing is started again, and objects already passed to fn
//     are not passed again. An error from fn is returned at once.
//   - Delete: the whole call. When an attempt deleted the object but its
//     answer was lost, the next attempt finds nothing and Delete returns
//     store.ErrNotFound, as it would had another process deleted the object
//     first. Callers that want the object gone accept ErrNotFound anyway;
//     turning it into success would break the contract for objects that
//     were never there.
//
// Errors that are not transient — store.ErrNotFound, context cancellation,
// invalid names, refused credentials — are returned at once, as are errors
// after the context is done.
package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/store"
)

// Defaults of Options.
const (
	DefaultMaxAttempts = 5
	DefaultBaseDelay   = 100 * time.Millisecond
	DefaultMaxDelay    = 5 * time.Second
)

// Options tune the retries. The zero value means the defaults.
type Options struct {
	// MaxAttempts is the number of tries of one call, the first included;
	// 0 means DefaultMaxAttempts, 1 means no retries.
	MaxAttempts int
	// BaseDelay is the backoff before the second attempt; it doubles for
	// each further attempt up to MaxDelay. Each wait is drawn at random
	// between half the backoff and the whole of it (jitter), so that
	// clients failing together do not come back together.
	BaseDelay, MaxDelay time.Duration
	// Sleep waits d or until ctx is done, returning ctx's error then. nil
	// means a timer; tests pass a fake to run without waiting.
	Sleep func(ctx context.Context, d time.Duration) error
	// OnRetry, if set, is called before each wait, with the operation
	// ("put", "get", "read", "stat", "list", "delete"), the object name
	// (for list: the prefix), the attempt that failed (1 for the first),
	// its error and the wait to come. It may be called concurrently.
	OnRetry func(op, name string, attempt int, err error, wait time.Duration)
}

// Store is a store.Store that retries the calls of an inner store.
type Store struct {
	inner store.Store
	opts  Options
}

var _ store.Store = (*Store)(nil)

// New returns inner wrapped with retries. Closing it closes inner.
func New(inner store.Store, opts Options) *Store {
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.BaseDelay <= 0 {
		opts.BaseDelay = DefaultBaseDelay
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = DefaultMaxDelay
	}
	opts.MaxDelay = max(opts.MaxDelay, opts.BaseDelay)
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	return &Store{inner: inner, opts: opts}
}

// Inner returns the wrapped store.
func (s *Store) Inner() store.Store { return s.inner }

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Backoff returns the wait before attempt+1 after attempt failed: BaseDelay
// doubled attempt-1 times, capped at MaxDelay, times a random factor in
// [0.5, 1].
func (s *Store) backoff(attempt int) time.Duration {
	d := s.opts.BaseDelay
	for i := 1; i < attempt && d < s.opts.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, s.opts.MaxDelay)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// stop wraps an error that must end the retries even if it looks transient
// (an error of List's fn).
type stop struct{ err error }

func (e stop) Error() string { return e.err.Error() }

// do calls fn until it succeeds, fails for good, or runs out of attempts.
// After the first, each attempt is preceded by a wait; failed attempts are
// counted from failures (a call that made progress may reset it).
func (s *Store) do(ctx context.Context, op, name string, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		if st, ok := err.(stop); ok {
			return st.err
		}
		if err := s.wait(ctx, op, name, attempt, err); err != nil {
			return err
		}
	}
}

// wait decides what follows failed attempt number attempt: it returns the
// error to give up with, or nil after waiting for the next attempt.
func (s *Store) wait(ctx context.Context, op, name string, attempt int, err error) error {
	if !store.Transient(err) {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w (after: %w)", ctx.Err(), err)
	}
	if attempt >= s.opts.MaxAttempts {
		return fmt.Errorf("retry: %s %s: giving up after %d attempts: %w", op, name, attempt, err)
	}
	d := s.backoff(attempt)
	if s.opts.OnRetry != nil {
		s.opts.OnRetry(op, name, attempt, err, d)
	}
	if serr := s.opts.Sleep(ctx, d); serr != nil {
		return fmt.Errorf("%w (after: %w)", serr, err)
	}
	return nil
}

// Put implements store.Store.
func (s *Store) Put(ctx context.Context, name string, data []byte) error {
	return s.do(ctx, "put", name, func() error { return s.inner.Put(ctx, name, data) })
}

// Stat implements store.Store.
func (s *Store) Stat(ctx context.Context, name string) (store.Info, error) {
	var info store.Info
	err := s.do(ctx, "stat", name, func() error {
		var err error
		info, err = s.inner.Stat(ctx, name)
		return err
	})
	return info, err
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, name string) error {
	return s.do(ctx, "delete", name, func() error { return s.inner.Delete(ctx, name) })
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	var (
		mu   sync.Mutex
		seen = map[string]bool{}
	)
	return s.do(ctx, "list", prefix, func() error {
		err := s.inner.List(ctx, prefix, func(info store.Info) error {
			mu.Lock()
			dup := seen[info.Name]
			seen[info.Name] = true
			mu.Unlock()
			if dup {
				return nil
			}
			if err := fn(info); err != nil {
				return stop{err}
			}
			return nil
		})
		var st stop
		if errors.As(err, &st) {
			return st // fn's error, passed on by the inner store
		}
		return err
	})
}

// Get implements store.Store. The reader implements store.Versioned with the
// version of the object it reads, if the inner store's readers tell it.
func (s *Store) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	rc, err := s.open(ctx, name, offset, length)
	if err != nil {
		return nil, err
	}
	return &reader{s: s, ctx: ctx, name: name, offset: offset, length: length, rc: rc, version: versionOf(rc)}, nil
}

func (s *Store) open(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := s.do(ctx, "get", name, func() error {
		var err error
		rc, err = s.inner.Get(ctx, name, offset, length)
		return err
	})
	return rc, err
}

func versionOf(rc io.ReadCloser) string {
	if v, ok := rc.(store.Versioned); ok {
		return v.Version()
	}
	return ""
}

// ErrReplaced is returned by a Get's reader that could not resume a broken
// read because the object was replaced in the meantime. Reading the object
// again from the start gives the new version whole.
var ErrReplaced = errors.New("retry: object replaced while it was read")

// reader reads a Get's body and re-opens the object where it broke off when
// a read fails with a transient error. Once bytes have been delivered, it
// resumes only when the inner store's readers tell the object's version
// (store.Versioned) and the re-opened one is the same version, so that the
// caller never sees two versions spliced.
type reader struct {
	s              *Store
	ctx            context.Context
	name           string
	offset, length int64 // as asked of Get
	done           int64 // bytes delivered
	rc             io.ReadCloser
	version        string // of the object being read; "" if unknown
	failures       int    // failed reads since the last byte delivered
	err            error  // sticky: a failure we gave up on, or Close
}

var errClosed = errors.New("retry: read after Close")

// Version implements store.Versioned.
func (r *reader) Version() string { return r.version }

func (r *reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if r.length >= 0 && r.done >= r.length {
			return 0, io.EOF
		}
		if r.rc == nil {
			if err := r.reopen(); err != nil {
				r.err = err
				return 0, err
			}
		}
		n, err := r.rc.Read(p)
		r.done += int64(n)
		if n > 0 {
			r.failures = 0
		}
		if err == nil || err == io.EOF {
			return n, err
		}
		// The body broke off. Drop it; re-open before the next read.
		r.rc.Close()
		r.rc = nil
		r.failures++
		if r.done > 0 && r.version == "" && store.Transient(err) {
			err = fmt.Errorf("retry: read %s: cannot resume at byte %d, the store does not tell object versions: %w", r.name, r.done, err)
			r.err = err
			if n > 0 {
				return n, nil // the error comes with the next Read
			}
			return 0, err
		}
		if gerr := r.s.wait(r.ctx, "read", r.name, r.failures, err); gerr != nil {
			r.err = gerr
			if n > 0 {
				return n, nil
			}
			return 0, gerr
		}
		if n > 0 {
			return n, nil
		}
	}
}

// reopen opens the rest of the range, checking that it is the same version
// of the object as what was delivered so far.
func (r *reader) reopen() error {
	length := r.length
	if length >= 0 {
		length -= r.done
	}
	rc, err := r.s.open(r.ctx, r.name, r.offset+r.done, length)
	if err != nil {
		return err
	}
	v := versionOf(rc)
	if r.done == 0 {
		r.version = v // nothing delivered yet: a fresh start
	} else if v != r.version {
		rc.Close()
		return fmt.Errorf("%w: %s changed from version %q to %q after %d bytes", ErrReplaced, r.name, r.version, v, r.done)
	}
	r.rc = rc
	return nil
}

func (r *reader) Close() error {
	if r.err == errClosed {
		return nil
	}
	r.err = errClosed
	if r.rc == nil {
		return nil
	}
	err := r.rc.Close()
	r.rc = nil
	return err
}

// Close implements store.Store by closing the inner store.
func (s *Store) Close() error { return s.inner.Close() }
