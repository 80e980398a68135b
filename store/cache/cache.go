// Package cache wraps a store.Store with a local, on-disk copy of the small
// immutable objects a repository reads again on every command: its index
// files and snapshot manifests. With the repository in S3, `snapshots`,
// `backup` and `restore` then list the bucket but do not download those
// objects again.
//
//	inner := retry.New(s3Store, retry.Options{})
//	st, err := cache.New(inner, filepath.Join(userCacheDir, "cairn", repoID))
//
// # What is cached
//
// A name is cacheable when it is a valid object name (store.CheckName), its
// first element is "index" or "snapshots", and its last element is 64
// lower-case hex digits: the unkeyed BLAKE3-256 of the object's bytes, as
// docs/FORMAT.md names immutable objects ("index/<hex>", "snapshots/<hex>").
// Every other name — packs under data/, config, keys/, locks/, and names
// under index/ or snapshots/ that are not hash-named — passes straight
// through to the inner store.
//
// # The contract
//
// The cache never holds a byte that it has not checked against its name, and
// it is only ever a cache: losing, damaging or being unable to write it costs
// downloads, never correctness or a failed call.
//
//   - Get of a cacheable name reads dir/<name> and serves it only if the
//     BLAKE3-256 of its bytes is the hash in the name. A missing, truncated,
//     damaged or unreadable entry is fetched whole from the inner store and
//     checked the same way: if it matches, it is written to the cache
//     atomically (a temporary file renamed into place); if it does not, the
//     bytes are returned to the caller as the inner store gave them (the
//     repository layer reports the corruption) and are never cached. A range
//     Get is served from the whole object, which is fetched once.
//     Concurrent Gets of one name share one fetch.
//   - Get of a cached name does not ask the inner store whether the object
//     still exists: an object deleted by another host may still be read here
//     until a List prunes it (below). Callers learn what exists from List
//     and Stat, which always ask the inner store.
//   - Put writes to the inner store first and, once that succeeded, to the
//     cache — if the bytes match the name; a Put of bytes that do not match
//     the name removes any cached copy, so that Get shows what the inner
//     store holds.
//   - Delete deletes from the inner store, then removes the cached copy
//     (also when the inner Delete failed: the copy is then merely refetched).
//     A Get racing with a Delete of the same name through the same Store
//     never leaves a copy behind.
//   - List and Stat go to the inner store; the cache never hides an object
//     another host added or deleted. When a List whose prefix covers (part
//     of) index/ or snapshots/ runs to its end, cached entries under that
//     prefix that it did not list are removed.
//   - Failures of the cache itself (a full disk, a read-only or foreign-owned
//     directory, an entry found damaged) never fail the call: they are passed
//     to Options.OnError, if set, and counted in Stats.
//
// Layout: dir/<name>, directories created 0700 and files 0600. Entries are not
// fsynced: one torn by a crash fails its check and is fetched again.
// Temporary files start with store.TempPrefix, which no object name segment
// may, and are removed by a pruning List once they are an hour old.
//
// A Store is safe for concurrent use, and several processes may share one
// directory: entries are only ever renamed into place whole, and are checked
// on every read. Give each repository a directory of its own (by its config
// ID, say): a List of one repository prunes what another cached there.
package cache

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-backup/cairn/store"
	"github.com/zeebo/blake3"
)

var _ store.Store = (*Store)(nil)

// Options tune a Store. The zero value is fine.
type Options struct {
	// OnError, if set, is called with every failure of the cache itself,
	// with the object name it concerns: an entry that could not be read,
	// written or removed, or that did not match its name. These never fail
	// the call that met them. It may be called concurrently.
	OnError func(name string, err error)
}

// Stats counts what a Store did since New.
type Stats struct {
	Hits    uint64 // Gets served from the cache
	Misses  uint64 // cacheable Gets fetched from the inner store
	Damaged uint64 // cached entries that did not match their name
	Pruned  uint64 // entries removed because a List no longer showed them
	Errors  uint64 // failures of the cache itself (OnError calls)
}

// Store is a store.Store that keeps a verified local copy of the index files
// and snapshot manifests of an inner store. See the package documentation.
type Store struct {
	inner store.Store
	dir   string
	opts  Options

	// mu orders renames of new entries against removals by Put and Delete:
	// gen counts those removals, and an entry fetched while gen changed is
	// not installed (it may be of an object deleted meanwhile).
	mu  sync.Mutex
	gen atomic.Uint64

	flightMu sync.Mutex
	flight   map[string]*call // cacheable Gets in progress, by name

	hits, misses, damaged, pruned, errs atomic.Uint64
}

// call is one load of a cacheable object, shared by concurrent Gets.
type call struct {
	done chan struct{}
	data []byte
	err  error
}

// New returns inner with a cache in dir, created (0700) if missing. It fails
// only when dir is empty or cannot be created; a directory that turns out not
// to be writable later only makes the cache useless (see Options.OnError).
// Closing the Store closes inner.
func New(inner store.Store, dir string) (*Store, error) {
	return NewWithOptions(inner, dir, Options{})
}

// NewWithOptions is New with options.
func NewWithOptions(inner store.Store, dir string, opts Options) (*Store, error) {
	if inner == nil {
		return nil, errors.New("cache: no inner store")
	}
	if dir == "" {
		return nil, errors.New("cache: no directory")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return &Store{inner: inner, dir: dir, opts: opts, flight: map[string]*call{}}, nil
}

// Inner returns the wrapped store.
func (s *Store) Inner() store.Store { return s.inner }

// Dir returns the cache directory.
func (s *Store) Dir() string { return s.dir }

// Stats returns the counters so far.
func (s *Store) Stats() Stats {
	return Stats{
		Hits:    s.hits.Load(),
		Misses:  s.misses.Load(),
		Damaged: s.damaged.Load(),
		Pruned:  s.pruned.Load(),
		Errors:  s.errs.Load(),
	}
}

// cacheTops are the first name elements of cacheable names.
var cacheTops = []string{"index", "snapshots"}

// Cacheable reports whether Store caches the object name: a valid name under
// index/ or snapshots/ whose last element is 64 lower-case hex digits (its
// BLAKE3-256), which is returned.
func Cacheable(name string) (sum [32]byte, ok bool) {
	top, _, found := strings.Cut(name, "/")
	if !found || (top != "index" && top != "snapshots") {
		return sum, false
	}
	base := name[strings.LastIndexByte(name, '/')+1:]
	if len(base) != 2*len(sum) {
		return sum, false
	}
	for i := 0; i < len(base); i++ {
		if c := base[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return sum, false
		}
	}
	if store.CheckName(name) != nil {
		return sum, false
	}
	if _, err := hex.Decode(sum[:], []byte(base)); err != nil {
		return sum, false
	}
	return sum, true
}

func (s *Store) path(name string) string {
	return filepath.Join(s.dir, filepath.FromSlash(name))
}

func (s *Store) report(name string, err error) {
	s.errs.Add(1)
	if s.opts.OnError != nil {
		s.opts.OnError(name, err)
	}
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	sum, ok := Cacheable(name)
	if !ok || offset < 0 {
		return s.inner.Get(ctx, name, offset, length)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("cache: get %s: %w", name, err)
	}
	data, err := s.load(ctx, name, sum)
	if err != nil {
		return nil, err
	}
	data = data[min(offset, int64(len(data))):]
	if length >= 0 && length < int64(len(data)) {
		data = data[:length]
	}
	// Readers never write to data, so the loads that share it may too.
	return io.NopCloser(bytes.NewReader(data)), nil
}

// load returns the whole object name, from the cache or, once for all
// concurrent callers, from the inner store.
func (s *Store) load(ctx context.Context, name string, sum [32]byte) ([]byte, error) {
	for {
		s.flightMu.Lock()
		if c, ok := s.flight[name]; ok {
			s.flightMu.Unlock()
			select {
			case <-c.done:
			case <-ctx.Done():
				return nil, fmt.Errorf("cache: get %s: %w", name, ctx.Err())
			}
			if c.err != nil && ctx.Err() == nil &&
				(errors.Is(c.err, context.Canceled) || errors.Is(c.err, context.DeadlineExceeded)) {
				continue // the caller that fetched gave up; we have not
			}
			return c.data, c.err
		}
		c := &call{done: make(chan struct{})}
		s.flight[name] = c
		s.flightMu.Unlock()

		c.data, c.err = s.loadOnce(ctx, name, sum)
		s.flightMu.Lock()
		delete(s.flight, name)
		s.flightMu.Unlock()
		close(c.done)
		return c.data, c.err
	}
}

func (s *Store) loadOnce(ctx context.Context, name string, sum [32]byte) ([]byte, error) {
	p := s.path(name)
	b, err := os.ReadFile(p)
	switch {
	case err == nil && blake3.Sum256(b) == sum:
		s.hits.Add(1)
		return b, nil
	case err == nil:
		s.damaged.Add(1)
		s.report(name, fmt.Errorf("cache: %s: cached copy (%d bytes) does not match its name; fetching it again", p, len(b)))
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.report(name, fmt.Errorf("cache: %w", err))
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		s.report(name, fmt.Errorf("cache: %w", err))
	}

	gen := s.gen.Load() // before the fetch: see install
	data, err := store.ReadAll(ctx, s.inner, name)
	if err != nil {
		return nil, err
	}
	s.misses.Add(1)
	if blake3.Sum256(data) != sum {
		// The caller reports it; a copy would only repeat it.
		return data, nil
	}
	s.install(name, data, gen)
	return data, nil
}

// install writes data, which matches name, to the cache, unless a removal
// (Put, Delete) happened since gen was read: data may then be of an object
// deleted meanwhile.
func (s *Store) install(name string, data []byte, gen uint64) {
	p := s.path(name)
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		s.report(name, fmt.Errorf("cache: %w", err))
		return
	}
	f, err := os.CreateTemp(dir, store.TempPrefix+"*") // 0600
	if err != nil {
		s.report(name, fmt.Errorf("cache: %w", err))
		return
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		s.report(name, fmt.Errorf("cache: writing %s: %w", p, err))
		return
	}
	s.mu.Lock()
	if s.gen.Load() != gen {
		s.mu.Unlock()
		os.Remove(tmp)
		return
	}
	err = os.Rename(tmp, p)
	s.mu.Unlock()
	if err != nil {
		os.Remove(tmp)
		s.report(name, fmt.Errorf("cache: %w", err))
	}
}

// forget removes the cached copy of name, if any.
func (s *Store) forget(name string) {
	s.mu.Lock()
	s.gen.Add(1)
	err := os.Remove(s.path(name))
	s.mu.Unlock()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.report(name, fmt.Errorf("cache: %w", err))
	}
}

// Put implements store.Store.
func (s *Store) Put(ctx context.Context, name string, data []byte) error {
	sum, ok := Cacheable(name)
	if !ok {
		return s.inner.Put(ctx, name, data)
	}
	gen := s.gen.Load()
	if err := s.inner.Put(ctx, name, data); err != nil {
		return err
	}
	if blake3.Sum256(data) == sum {
		s.install(name, data, gen)
	} else {
		s.forget(name)
	}
	return nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, name string) error {
	err := s.inner.Delete(ctx, name)
	if _, ok := Cacheable(name); ok {
		s.forget(name)
	}
	return err
}

// Stat implements store.Store. It always asks the inner store.
func (s *Store) Stat(ctx context.Context, name string) (store.Info, error) {
	return s.inner.Stat(ctx, name)
}

// List implements store.Store. It always asks the inner store; a listing
// that runs to its end prunes the cached entries under prefix it did not
// show.
func (s *Store) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	if !s.prunes(prefix) {
		return s.inner.List(ctx, prefix, fn)
	}
	var (
		mu     sync.Mutex
		listed = map[string]bool{}
	)
	err := s.inner.List(ctx, prefix, func(info store.Info) error {
		if _, ok := Cacheable(info.Name); ok {
			mu.Lock()
			listed[info.Name] = true
			mu.Unlock()
		}
		return fn(info)
	})
	if err == nil && ctx.Err() == nil {
		s.prune(prefix, listed)
	}
	return err
}

// prunes reports whether a listing of prefix covers cacheable names.
func (s *Store) prunes(prefix string) bool {
	for _, top := range cacheTops {
		if strings.HasPrefix(top+"/", prefix) || strings.HasPrefix(prefix, top+"/") {
			return true
		}
	}
	return false
}

// tempMaxAge is the age after which a temporary file is taken for the
// leftover of a crashed writer.
const tempMaxAge = time.Hour

// prune removes the cached entries under prefix that are not in listed.
func (s *Store) prune(prefix string, listed map[string]bool) {
	for _, top := range cacheTops {
		if !strings.HasPrefix(top+"/", prefix) && !strings.HasPrefix(prefix, top+"/") {
			continue
		}
		root := filepath.Join(s.dir, top)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if d.IsDir() {
				return nil
			}
			rel, err := filepath.Rel(s.dir, p)
			if err != nil {
				return err
			}
			name := filepath.ToSlash(rel)
			if strings.HasPrefix(d.Name(), store.TempPrefix) {
				if fi, err := d.Info(); err == nil && time.Since(fi.ModTime()) > tempMaxAge {
					os.Remove(p)
				}
				return nil
			}
			if !strings.HasPrefix(name, prefix) || listed[name] {
				return nil
			}
			if _, ok := Cacheable(name); !ok {
				return nil // not ours
			}
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.report(name, fmt.Errorf("cache: %w", err))
				return nil
			}
			s.pruned.Add(1)
			return nil
		})
		if err != nil {
			s.report(top, fmt.Errorf("cache: pruning: %w", err))
		}
	}
}

// Close implements store.Store by closing the inner store.
func (s *Store) Close() error { return s.inner.Close() }
