// Package faulty wraps a store.Store and injects failures on command, so that
// tests can drive code through the error paths a real backend takes only
// rarely: failed and lost writes, failed, short and corrupted reads, and a
// process that dies in the middle of a backup.
//
// Rules are added at any time, also while the store is in use, and stay until
// Reset. A match function selects the object names a rule applies to (for
// List, the prefix); nil matches every name. Faults are injected before the
// call reaches the inner store unless documented otherwise, so a failed Put
// stores nothing.
//
//	inner := memstore.New()
//	s := faulty.New(inner)
//	s.FailPut(faulty.Prefix("data/"), 3, nil) // the third data Put fails
//	s.Crash(10)                               // the process "dies" after 10 Puts
//
// Every injected error wraps ErrInjected (and the error given to the rule, if
// any); every call after a crash returns an error wrapping ErrCrashed.
package faulty

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/cairn-backup/cairn/store"
)

var _ store.Store = (*Store)(nil)

var (
	// ErrInjected is wrapped by every error a Fail* rule injects.
	ErrInjected = errors.New("faulty: injected fault")
	// ErrCrashed is wrapped by every error returned after a Crash fired.
	ErrCrashed = errors.New("faulty: store crashed")
)

// Prefix returns a match function for names starting with p.
func Prefix(p string) func(name string) bool {
	return func(name string) bool { return strings.HasPrefix(name, p) }
}

// Exact returns a match function for the one name n.
func Exact(n string) func(name string) bool {
	return func(name string) bool { return name == n }
}

type op string

const (
	opPut    op = "put"
	opGet    op = "get"
	opStat   op = "stat"
	opList   op = "list"
	opDelete op = "delete"
)

type failRule struct {
	op         op
	match      func(string) bool
	nth        int // 1-based; < 1 fires on every match
	seen       int
	err        error
	afterWrite bool // Put only: the object is stored, then the error returned
	spent      bool
}

type getRule struct {
	match    func(string) bool
	truncate int64 // >= 0: at most this many bytes per read; -1: none
	flipAt   int64 // >= 0: object offset of the byte to corrupt; -1: none
}

// Store is a store.Store that passes calls to an inner store unless a rule
// says otherwise. It is safe for concurrent use.
type Store struct {
	inner store.Store

	mu        sync.Mutex
	fails     []*failRule
	gets      []getRule
	crashSet  bool // Crash was called
	crashLeft int  // Puts still allowed to succeed
	crashed   bool
	nPuts     int
	nGets     int
}

// New returns a Store that passes every call to inner until rules are added.
func New(inner store.Store) *Store {
	return &Store{inner: inner}
}

// FailPut makes the nth Put whose name matches fail with an error wrapping
// ErrInjected and err (err may be nil); nth < 1 fails every matching Put.
// Matching calls are counted from now, per rule, whatever other rules do with
// them. The object is not written.
func (s *Store) FailPut(match func(name string) bool, nth int, err error) {
	s.addFail(opPut, match, nth, err, false)
}

// FailPutAfterWrite is FailPut, except that the object is written to the
// inner store before the error is returned: a write whose acknowledgement was
// lost, as when a network connection drops after the server committed.
func (s *Store) FailPutAfterWrite(match func(name string) bool, nth int, err error) {
	s.addFail(opPut, match, nth, err, true)
}

// FailGet is FailPut for Get.
func (s *Store) FailGet(match func(name string) bool, nth int, err error) {
	s.addFail(opGet, match, nth, err, false)
}

// FailStat is FailPut for Stat.
func (s *Store) FailStat(match func(name string) bool, nth int, err error) {
	s.addFail(opStat, match, nth, err, false)
}

// FailList is FailPut for List; match is applied to the prefix. The failure
// happens before fn is called.
func (s *Store) FailList(match func(prefix string) bool, nth int, err error) {
	s.addFail(opList, match, nth, err, false)
}

// FailDelete is FailPut for Delete; the object is not deleted.
func (s *Store) FailDelete(match func(name string) bool, nth int, err error) {
	s.addFail(opDelete, match, nth, err, false)
}

func (s *Store) addFail(o op, match func(string) bool, nth int, err error, afterWrite bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails = append(s.fails, &failRule{op: o, match: match, nth: nth, err: err, afterWrite: afterWrite})
}

// TruncateGet makes every matching Get return at most the first n bytes of
// the requested range, then io.EOF, as a backend that cuts a response short
// would. With several such rules the smallest n wins.
func (s *Store) TruncateGet(match func(name string) bool, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets = append(s.gets, getRule{match: match, truncate: max(n, 0), flipAt: -1})
}

// FlipBitOnGet makes every matching Get invert the lowest bit of the byte at
// byteOffset of the object, if the requested range covers it: the same
// on-disk corruption, whichever part of the object is read.
func (s *Store) FlipBitOnGet(match func(name string) bool, byteOffset int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets = append(s.gets, getRule{match: match, truncate: -1, flipAt: byteOffset})
}

// Crash lets afterPuts more Puts succeed (0: none); from then on every call
// but Close returns an error wrapping ErrCrashed, without reaching the inner
// store, until Reset. What the inner store holds at that point is what a
// process that died there would leave behind. Puts that fail do not count;
// concurrent Puts never let more than afterPuts through.
func (s *Store) Crash(afterPuts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.crashSet = true
	s.crashLeft = max(afterPuts, 0)
	s.crashed = false
}

// Crashed reports whether a Crash has fired.
func (s *Store) Crashed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.crashed
}

// Reset removes all rules and any crash and zeroes the counters, as if the
// Store had just been made by New.
func (s *Store) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails, s.gets = nil, nil
	s.crashSet, s.crashLeft, s.crashed = false, 0, false
	s.nPuts, s.nGets = 0, 0
}

// Puts returns the number of Put calls made, whatever their outcome.
func (s *Store) Puts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nPuts
}

// Gets returns the number of Get calls made, whatever their outcome.
func (s *Store) Gets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nGets
}

// fire counts a call against the rules for o and returns the error of the
// first rule that fires before the inner call and of the first that fires
// after it. The caller holds s.mu.
func (s *Store) fire(o op, name string) (before, after error) {
	for _, r := range s.fails {
		if r.op != o || r.spent || (r.match != nil && !r.match(name)) {
			continue
		}
		r.seen++
		if r.nth >= 1 && r.seen != r.nth {
			continue
		}
		if r.nth >= 1 {
			r.spent = true
		}
		e := injected(o, name, r.err)
		if r.afterWrite {
			if after == nil {
				after = e
			}
		} else if before == nil {
			before = e
		}
	}
	return before, after
}

func injected(o op, name string, err error) error {
	if err == nil {
		return fmt.Errorf("faulty: %s %s: %w", o, name, ErrInjected)
	}
	return fmt.Errorf("faulty: %s %s: %w: %w", o, name, ErrInjected, err)
}

func crashErr(o op, name string) error {
	return fmt.Errorf("faulty: %s %s: %w", o, name, ErrCrashed)
}

// enter counts a call other than Put and returns the error it must fail with,
// if any.
func (s *Store) enter(o op, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o == opGet {
		s.nGets++
	}
	if s.crashed {
		return crashErr(o, name)
	}
	before, _ := s.fire(o, name)
	return before
}

// Put implements store.Store.
func (s *Store) Put(ctx context.Context, name string, data []byte) error {
	s.mu.Lock()
	s.nPuts++
	if s.crashed {
		s.mu.Unlock()
		return crashErr(opPut, name)
	}
	// Reserve one of the Puts the crash still allows, so that concurrent
	// Puts cannot overshoot it.
	reserved := false
	if s.crashSet {
		if s.crashLeft == 0 {
			s.crashed = true
			s.mu.Unlock()
			return crashErr(opPut, name)
		}
		s.crashLeft--
		reserved = true
	}
	before, after := s.fire(opPut, name)
	s.mu.Unlock()

	err := before
	if err == nil {
		err = s.inner.Put(ctx, name, data)
	}
	if err != nil {
		if reserved {
			s.mu.Lock()
			if s.crashSet && !s.crashed {
				s.crashLeft++ // failed Puts do not count towards the crash
			}
			s.mu.Unlock()
		}
		return err
	}
	return after
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := s.enter(opGet, name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	truncate := int64(-1)
	var flips []int64
	for _, r := range s.gets {
		if r.match != nil && !r.match(name) {
			continue
		}
		if r.truncate >= 0 && (truncate < 0 || r.truncate < truncate) {
			truncate = r.truncate
		}
		if r.flipAt >= 0 {
			flips = append(flips, r.flipAt)
		}
	}
	s.mu.Unlock()

	rc, err := s.inner.Get(ctx, name, offset, length)
	if err != nil || (truncate < 0 && flips == nil) {
		return rc, err
	}
	return &faultyReader{rc: rc, pos: offset, left: truncate, flips: flips}, nil
}

// faultyReader applies TruncateGet and FlipBitOnGet rules to a Get's stream.
type faultyReader struct {
	rc    io.ReadCloser
	pos   int64 // object offset of the next byte
	left  int64 // bytes still allowed; -1: unlimited
	flips []int64
}

func (r *faultyReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if r.left > 0 && int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.rc.Read(p)
	for _, off := range r.flips {
		if off >= r.pos && off < r.pos+int64(n) {
			p[off-r.pos] ^= 1
		}
	}
	r.pos += int64(n)
	if r.left > 0 {
		r.left -= int64(n)
	}
	return n, err
}

func (r *faultyReader) Close() error { return r.rc.Close() }

// Stat implements store.Store.
func (s *Store) Stat(ctx context.Context, name string) (store.Info, error) {
	if err := s.enter(opStat, name); err != nil {
		return store.Info{}, err
	}
	return s.inner.Stat(ctx, name)
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	if err := s.enter(opList, prefix); err != nil {
		return err
	}
	return s.inner.List(ctx, prefix, fn)
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := s.enter(opDelete, name); err != nil {
		return err
	}
	return s.inner.Delete(ctx, name)
}

// Close implements store.Store by closing the inner store. It works even
// after a crash, so tests can clean up.
func (s *Store) Close() error { return s.inner.Close() }
