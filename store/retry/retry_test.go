package retry_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/faulty"
	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/internal/storetest"
	"github.com/cairn-backup/cairn/store"
	"github.com/cairn-backup/cairn/store/retry"
)

// noSleep is a Sleep that returns at once (unless ctx is done).
func noSleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

// errFlaky is transient, as a 503 from a backend would be.
var errFlaky = store.MarkTransient(errors.New("flaky: try again"))

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return retry.New(memstore.New(), retry.Options{Sleep: noSleep})
	})
}

// The whole contract holds over a store that fails a fifth of all calls,
// transiently: before they reach it, after a Put was written, in the middle
// of a listing, or as a Get's body is first read. (A body that breaks after
// some bytes cannot always be resumed across the overwrites of
// ConcurrentOverwrite: see TestGetReplacedWhileResuming.)
func TestConformanceOverFlakyStore(t *testing.T) {
	var seed atomic.Uint64
	storetest.Run(t, func(t *testing.T) store.Store {
		f := &flaky{inner: memstore.New(), rate: 0.2, rng: rand.New(rand.NewPCG(seed.Add(1), 7))}
		return retry.New(f, retry.Options{MaxAttempts: 30, Sleep: noSleep})
	})
}

// flaky fails calls at random with errFlaky: before reaching the inner
// store, or (Put) after it wrote, or (List) after passing some objects to
// fn, or (Get) when the body is first read.
type flaky struct {
	inner store.Store
	rate  float64

	mu  sync.Mutex
	rng *rand.Rand
}

func (f *flaky) fail() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rng.Float64() < f.rate
}

func (f *flaky) intn(n int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rng.IntN(n)
}

func (f *flaky) Put(ctx context.Context, name string, data []byte) error {
	if f.fail() {
		return errFlaky
	}
	if err := f.inner.Put(ctx, name, data); err != nil {
		return err
	}
	if f.fail() {
		return errFlaky // written, but the acknowledgement was lost
	}
	return nil
}

func (f *flaky) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if f.fail() {
		return nil, errFlaky
	}
	rc, err := f.inner.Get(ctx, name, offset, length)
	if err != nil || !f.fail() {
		return rc, err
	}
	return &cutReader{rc: rc, left: 0}, nil
}

func (f *flaky) Stat(ctx context.Context, name string) (store.Info, error) {
	if f.fail() {
		return store.Info{}, errFlaky
	}
	return f.inner.Stat(ctx, name)
}

func (f *flaky) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	if f.fail() {
		return errFlaky
	}
	cutAfter := -1
	if f.fail() {
		cutAfter = f.intn(5)
	}
	n := 0
	err := f.inner.List(ctx, prefix, func(info store.Info) error {
		if n == cutAfter {
			return errFlaky
		}
		n++
		return fn(info)
	})
	return err
}

func (f *flaky) Delete(ctx context.Context, name string) error {
	if f.fail() {
		return errFlaky
	}
	return f.inner.Delete(ctx, name)
}

func (f *flaky) Close() error { return f.inner.Close() }

// cutReader passes left bytes, then fails with errFlaky (or with err, if
// set).
type cutReader struct {
	rc   io.ReadCloser
	left int64
	err  error
}

func (r *cutReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		if r.err != nil {
			return 0, r.err
		}
		return 0, errFlaky
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.rc.Read(p)
	r.left -= int64(n)
	return n, err
}

func (r *cutReader) Close() error { return r.rc.Close() }

func transient(msg string) error {
	return fmt.Errorf("%s: %w", msg, store.ErrTransient)
}

func TestPutRetriesTransientFailures(t *testing.T) {
	f := faulty.New(memstore.New())
	f.FailPut(nil, 1, transient("503 SlowDown"))
	f.FailPut(nil, 2, transient("connection reset"))
	s := retry.New(f, retry.Options{Sleep: noSleep})
	if err := s.Put(t.Context(), "data/x", []byte("hello")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got := f.Puts(); got != 3 {
		t.Errorf("inner Puts = %d, want 3 (two failures, one success)", got)
	}
	if b, err := store.ReadAll(t.Context(), s, "data/x"); err != nil || string(b) != "hello" {
		t.Errorf("ReadAll = %q, %v", b, err)
	}
}

func TestPutLostAcknowledgement(t *testing.T) {
	f := faulty.New(memstore.New())
	f.FailPutAfterWrite(nil, 1, transient("connection closed before response"))
	s := retry.New(f, retry.Options{Sleep: noSleep})
	if err := s.Put(t.Context(), "obj", []byte("v1")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if f.Puts() != 2 {
		t.Errorf("inner Puts = %d, want 2", f.Puts())
	}
	if b, _ := store.ReadAll(t.Context(), s, "obj"); string(b) != "v1" {
		t.Errorf("object = %q, want v1", b)
	}
}

func TestPermanentErrorsAreNotRetried(t *testing.T) {
	ctx := t.Context()
	f := faulty.New(memstore.New())
	s := retry.New(f, retry.Options{Sleep: noSleep})

	denied := errors.New("403 access denied")
	f.FailPut(nil, 0, denied)
	if err := s.Put(ctx, "a", []byte("x")); !errors.Is(err, denied) {
		t.Errorf("Put: err = %v, want the injected error", err)
	}
	if f.Puts() != 1 {
		t.Errorf("a permanent Put failure was tried %d times, want 1", f.Puts())
	}

	// ErrNotFound is never retried, even when something marks it
	// transient.
	f.Reset()
	f.FailGet(nil, 0, fmt.Errorf("%w: %w", store.ErrNotFound, store.ErrTransient))
	if _, err := s.Get(ctx, "missing", 0, -1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get: err = %v, want ErrNotFound", err)
	}
	if f.Gets() != 1 {
		t.Errorf("ErrNotFound was tried %d times, want 1", f.Gets())
	}

	// A real miss of the inner store.
	f.Reset()
	if _, err := s.Stat(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stat: err = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Delete: err = %v, want ErrNotFound", err)
	}
	if err := s.Put(ctx, "../bad", nil); !errors.Is(err, store.ErrInvalidName) {
		t.Errorf("Put(../bad): err = %v, want ErrInvalidName", err)
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	f := faulty.New(memstore.New())
	f.FailPut(nil, 0, transient("503"))
	var retries []int
	s := retry.New(f, retry.Options{
		MaxAttempts: 4,
		Sleep:       noSleep,
		OnRetry: func(op, name string, attempt int, err error, wait time.Duration) {
			if op != "put" || name != "obj" || !store.Transient(err) {
				t.Errorf("OnRetry(%q, %q, %d, %v)", op, name, attempt, err)
			}
			retries = append(retries, attempt)
		},
	})
	err := s.Put(t.Context(), "obj", []byte("x"))
	if !errors.Is(err, faulty.ErrInjected) || !store.Transient(err) {
		t.Fatalf("Put: err = %v, want the injected transient error", err)
	}
	if f.Puts() != 4 {
		t.Errorf("inner Puts = %d, want 4", f.Puts())
	}
	if fmt.Sprint(retries) != "[1 2 3]" {
		t.Errorf("OnRetry attempts = %v, want [1 2 3]", retries)
	}
}

func TestBackoff(t *testing.T) {
	f := faulty.New(memstore.New())
	f.FailStat(nil, 0, transient("503"))
	var waits []time.Duration
	s := retry.New(f, retry.Options{
		MaxAttempts: 9,
		BaseDelay:   100 * time.Millisecond,
		MaxDelay:    time.Second,
		Sleep: func(ctx context.Context, d time.Duration) error {
			waits = append(waits, d)
			return nil
		},
	})
	if _, err := s.Stat(t.Context(), "x"); err == nil {
		t.Fatal("Stat succeeded")
	}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000, 1000} // ms, before jitter
	if len(waits) != len(want) {
		t.Fatalf("waited %d times (%v), want %d", len(waits), waits, len(want))
	}
	for i, w := range waits {
		hi := want[i] * time.Millisecond
		if w < hi/2 || w > hi {
			t.Errorf("wait %d = %v, want within [%v, %v]", i+1, w, hi/2, hi)
		}
	}
}

func TestDefaultsAndJitter(t *testing.T) {
	f := faulty.New(memstore.New())
	f.FailPut(nil, 0, transient("503"))
	var waits []time.Duration
	s := retry.New(f, retry.Options{Sleep: func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		return nil
	}})
	for range 20 {
		s.Put(t.Context(), "x", nil)
	}
	if f.Puts() != 20*retry.DefaultMaxAttempts {
		t.Errorf("inner Puts = %d, want %d", f.Puts(), 20*retry.DefaultMaxAttempts)
	}
	distinct := map[time.Duration]bool{}
	for _, w := range waits {
		if w < retry.DefaultBaseDelay/2 || w > retry.DefaultMaxDelay {
			t.Errorf("wait %v outside [BaseDelay/2, MaxDelay]", w)
		}
		distinct[w] = true
	}
	if len(distinct) < len(waits)/2 {
		t.Errorf("%d waits with only %d distinct values: no jitter?", len(waits), len(distinct))
	}
}

func TestCancelDuringBackoff(t *testing.T) {
	f := faulty.New(memstore.New())
	f.FailPut(nil, 0, transient("503"))
	s := retry.New(f, retry.Options{BaseDelay: time.Hour, MaxDelay: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	err := s.Put(ctx, "x", nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Put: err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Put took %v after cancel", d)
	}
	if f.Puts() != 1 {
		t.Errorf("inner Puts = %d, want 1", f.Puts())
	}
}

func TestCanceledContextIsNotRetried(t *testing.T) {
	f := faulty.New(memstore.New())
	f.FailPut(nil, 0, context.Canceled)
	s := retry.New(f, retry.Options{Sleep: noSleep})
	if err := s.Put(t.Context(), "x", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Put: err = %v", err)
	}
	if f.Puts() != 1 {
		t.Errorf("inner Puts = %d, want 1", f.Puts())
	}
}

// breakingStore records its Gets; their readers break off after cut bytes
// each, with errFlaky or readErr. With versioned, its readers tell the
// version of the object (a hash of its bytes), as S3's ETag does.
type breakingStore struct {
	store.Store
	cut       int64
	readErr   error // instead of errFlaky, if set
	versioned bool

	mu    sync.Mutex
	opens [][2]int64
}

func (b *breakingStore) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	b.mu.Lock()
	b.opens = append(b.opens, [2]int64{offset, length})
	b.mu.Unlock()
	rc, err := b.Store.Get(ctx, name, offset, length)
	if err != nil {
		return nil, err
	}
	cr := &cutReader{rc: rc, left: b.cut, err: b.readErr}
	if !b.versioned {
		return cr, nil
	}
	all, err := store.ReadAll(ctx, b.Store, name)
	if err != nil {
		rc.Close()
		return nil, err
	}
	return &versionedReader{cr, fmt.Sprintf("%x", sha256.Sum256(all))}, nil
}

type versionedReader struct {
	io.ReadCloser
	version string
}

func (v *versionedReader) Version() string { return v.version }

func TestGetResumesWhereTheBodyBrokeOff(t *testing.T) {
	ctx := t.Context()
	m := memstore.New()
	data := make([]byte, 10_000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	m.Put(ctx, "obj", data)

	for _, tc := range []struct {
		offset, length int64
	}{{0, -1}, {100, 5000}, {9000, -1}, {9500, 1000}, {0, 10_000}} {
		b := &breakingStore{Store: m, cut: 1000, versioned: true}
		s := retry.New(b, retry.Options{Sleep: noSleep})
		rc, err := s.Get(ctx, "obj", tc.offset, tc.length)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		end := int64(len(data))
		if tc.length >= 0 {
			end = min(end, tc.offset+tc.length)
		}
		if err != nil || !bytes.Equal(got, data[tc.offset:end]) {
			t.Errorf("Get(%d, %d): %d bytes, %v; want data[%d:%d]", tc.offset, tc.length, len(got), err, tc.offset, end)
			continue
		}
		// Every re-open asks for the rest of the range.
		for i, o := range b.opens {
			wantOff := tc.offset + int64(i)*b.cut
			wantLen := tc.length
			if wantLen >= 0 {
				wantLen -= int64(i) * b.cut
			}
			if o != [2]int64{wantOff, wantLen} {
				t.Errorf("Get(%d, %d): open %d was (%d, %d), want (%d, %d)", tc.offset, tc.length, i, o[0], o[1], wantOff, wantLen)
			}
		}
	}
}

func TestGetGivesUpWithoutProgress(t *testing.T) {
	ctx := t.Context()
	m := memstore.New()
	m.Put(ctx, "obj", make([]byte, 100))
	b := &breakingStore{Store: m, cut: 0}
	s := retry.New(b, retry.Options{MaxAttempts: 3, Sleep: noSleep})
	rc, err := s.Get(ctx, "obj", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, err = io.ReadAll(rc)
	if !errors.Is(err, errFlaky) {
		t.Errorf("ReadAll: err = %v, want the read error", err)
	}
	if len(b.opens) != 3 {
		t.Errorf("opened %d times, want 3", len(b.opens))
	}
	// The error sticks.
	if _, err := rc.Read(make([]byte, 1)); err == nil {
		t.Error("Read after giving up succeeded")
	}
}

func TestGetDoesNotRetryPermanentReadErrors(t *testing.T) {
	ctx := t.Context()
	m := memstore.New()
	m.Put(ctx, "obj", make([]byte, 100))
	bad := errors.New("checksum mismatch")
	b := &breakingStore{Store: m, cut: 10, readErr: bad}
	s := retry.New(b, retry.Options{Sleep: noSleep})
	rc, err := s.Get(ctx, "obj", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if !errors.Is(err, bad) || len(got) != 10 {
		t.Errorf("ReadAll = %d bytes, %v; want 10 bytes and the read error", len(got), err)
	}
	if len(b.opens) != 1 {
		t.Errorf("opened %d times, want 1", len(b.opens))
	}
}

func TestGetObjectDeletedWhileResuming(t *testing.T) {
	ctx := t.Context()
	m := memstore.New()
	m.Put(ctx, "obj", make([]byte, 100))
	b := &breakingStore{Store: m, cut: 10, versioned: true}
	s := retry.New(b, retry.Options{Sleep: noSleep})
	rc, err := s.Get(ctx, "obj", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	m.Delete(ctx, "obj")
	if _, err := io.ReadAll(rc); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ReadAll: err = %v, want ErrNotFound", err)
	}
}

// A read is not resumed on another version of the object: the caller gets
// ErrReplaced, never a stream spliced from two versions.
func TestGetReplacedWhileResuming(t *testing.T) {
	ctx := t.Context()
	m := memstore.New()
	m.Put(ctx, "obj", bytes.Repeat([]byte("a"), 100))
	b := &breakingStore{Store: m, cut: 10, versioned: true}
	s := retry.New(b, retry.Options{Sleep: noSleep})
	rc, err := s.Get(ctx, "obj", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	buf := make([]byte, 10)
	if _, err := io.ReadFull(rc, buf); err != nil {
		t.Fatal(err)
	}
	m.Put(ctx, "obj", bytes.Repeat([]byte("b"), 100))
	rest, err := io.ReadAll(rc)
	if !errors.Is(err, retry.ErrReplaced) || store.Transient(err) || bytes.Contains(rest, []byte("b")) {
		t.Errorf("ReadAll after the object was replaced: %q, %v; want ErrReplaced (permanent) and no byte of the new version", rest, err)
	}
}

// A store whose readers do not tell versions gets a read retried only when
// it broke before its first byte.
func TestGetWithoutVersionsResumesOnlyAtTheStart(t *testing.T) {
	ctx := t.Context()
	m := memstore.New()
	m.Put(ctx, "obj", make([]byte, 100))
	b := &breakingStore{Store: m, cut: 10}
	s := retry.New(b, retry.Options{Sleep: noSleep})
	rc, err := s.Get(ctx, "obj", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if len(got) != 10 || !errors.Is(err, errFlaky) || !store.Transient(err) {
		t.Errorf("ReadAll = %d bytes, %v; want 10 bytes and the transient read error", len(got), err)
	}
	if len(b.opens) != 1 {
		t.Errorf("opened %d times, want 1", len(b.opens))
	}
}

func TestListDoesNotRepeatObjects(t *testing.T) {
	ctx := t.Context()
	m := memstore.New()
	for i := range 50 {
		m.Put(ctx, fmt.Sprintf("data/%02d", i), []byte{byte(i)})
	}
	f := &flaky{inner: m, rate: 0.5, rng: rand.New(rand.NewPCG(1, 2))}
	s := retry.New(f, retry.Options{MaxAttempts: 100, Sleep: noSleep})
	for range 20 {
		seen := map[string]int{}
		if err := s.List(ctx, "data/", func(info store.Info) error {
			seen[info.Name]++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(seen) != 50 {
			t.Fatalf("listed %d objects, want 50", len(seen))
		}
		for name, n := range seen {
			if n != 1 {
				t.Fatalf("%s listed %d times", name, n)
			}
		}
	}
}

func TestListCallbackErrorIsNotRetried(t *testing.T) {
	ctx := t.Context()
	m := memstore.New()
	m.Put(ctx, "a", nil)
	s := retry.New(m, retry.Options{Sleep: noSleep})
	calls := 0
	err := s.List(ctx, "", func(store.Info) error {
		calls++
		return errFlaky // transient-looking, but the caller's
	})
	if !errors.Is(err, errFlaky) || calls != 1 {
		t.Errorf("List = %v after %d calls, want errFlaky after 1", err, calls)
	}
}

func TestFailedListIsRetried(t *testing.T) {
	f := faulty.New(memstore.New())
	f.Put(t.Context(), "a", nil)
	f.FailList(nil, 1, transient("500"))
	s := retry.New(f, retry.Options{Sleep: noSleep})
	n := 0
	if err := s.List(t.Context(), "", func(store.Info) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("List = %v with %d objects, want 1", err, n)
	}
}

func TestDeleteAfterLostAcknowledgement(t *testing.T) {
	ctx := t.Context()
	m := memstore.New()
	m.Put(ctx, "obj", nil)
	// The first Delete deletes and then fails, as when the response is
	// lost; the retry finds nothing to delete and says so, as it would
	// after a concurrent Delete.
	var once sync.Once
	s := retry.New(&deleteThenFail{Store: m, once: &once}, retry.Options{Sleep: noSleep})
	if err := s.Delete(ctx, "obj"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Delete: %v, want ErrNotFound", err)
	}
	if _, err := m.Stat(ctx, "obj"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("object still there: %v", err)
	}
}

type deleteThenFail struct {
	store.Store
	once *sync.Once
}

func (d *deleteThenFail) Delete(ctx context.Context, name string) error {
	err := d.Store.Delete(ctx, name)
	d.once.Do(func() { err = errFlaky })
	return err
}

func TestFailedDeleteIsRetried(t *testing.T) {
	ctx := t.Context()
	f := faulty.New(memstore.New())
	f.Put(ctx, "obj", nil)
	f.FailDelete(nil, 1, transient("503"))
	s := retry.New(f, retry.Options{Sleep: noSleep})
	if err := s.Delete(ctx, "obj"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := f.Stat(ctx, "obj"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("object still there: %v", err)
	}
}
