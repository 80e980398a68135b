package faulty_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/cairn-backup/cairn/internal/faulty"
	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/internal/storetest"
	"github.com/cairn-backup/cairn/store"
)

// Without rules the wrapper must be invisible.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return faulty.New(memstore.New()) })
}

var errDisk = errors.New("disk full")

func isInjected(err, want error) bool {
	return errors.Is(err, faulty.ErrInjected) && (want == nil || errors.Is(err, want))
}

func TestFailPutNth(t *testing.T) {
	inner := memstore.New()
	s := faulty.New(inner)
	ctx := t.Context()
	s.FailPut(faulty.Prefix("data/"), 3, errDisk)

	for i, name := range []string{"data/1", "config", "data/2", "index/x"} {
		if err := s.Put(ctx, name, []byte("x")); err != nil {
			t.Fatalf("Put %d (%s) before the third data Put: %v", i, name, err)
		}
	}
	err := s.Put(ctx, "data/3", []byte("x"))
	if !isInjected(err, errDisk) {
		t.Fatalf("third data Put: err = %v, want ErrInjected and the rule's error", err)
	}
	if err.Error() != "faulty: put data/3: faulty: injected fault: disk full" {
		t.Errorf("error text = %q", err)
	}
	if _, err := inner.Stat(ctx, "data/3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the failed Put reached the inner store (Stat err = %v)", err)
	}
	for _, name := range []string{"data/3", "data/4", "data/5"} {
		if err := s.Put(ctx, name, []byte("x")); err != nil {
			t.Errorf("Put(%s) after the rule fired: %v", name, err)
		}
	}
}

func TestFailPutEvery(t *testing.T) {
	s := faulty.New(memstore.New())
	ctx := t.Context()
	s.FailPut(faulty.Exact("config"), 0, nil)
	for range 3 {
		if err := s.Put(ctx, "config", nil); !isInjected(err, nil) {
			t.Errorf("Put(config): err = %v, want ErrInjected", err)
		}
	}
	if err := s.Put(ctx, "other", nil); err != nil {
		t.Errorf("Put(other): %v", err)
	}
}

func TestFailPutAfterWrite(t *testing.T) {
	inner := memstore.New()
	s := faulty.New(inner)
	ctx := t.Context()
	s.FailPutAfterWrite(nil, 2, nil)
	if err := s.Put(ctx, "a", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "b", []byte("b")); !isInjected(err, nil) {
		t.Fatalf("second Put: err = %v, want ErrInjected", err)
	}
	if b, err := store.ReadAll(ctx, inner, "b"); err != nil || string(b) != "b" {
		t.Errorf("object of the failed Put = %q, %v; want it stored", b, err)
	}
}

func TestFailOtherOps(t *testing.T) {
	inner := memstore.New()
	s := faulty.New(inner)
	ctx := t.Context()
	for _, name := range []string{"data/a", "data/b", "keys/k"} {
		if err := inner.Put(ctx, name, []byte(name)); err != nil {
			t.Fatal(err)
		}
	}
	s.FailGet(faulty.Exact("data/a"), 2, errDisk)
	s.FailStat(faulty.Prefix("keys/"), 1, nil)
	s.FailDelete(faulty.Exact("data/b"), 0, nil)
	s.FailList(faulty.Exact("data/"), 1, nil)

	if _, err := store.ReadAll(ctx, s, "data/a"); err != nil {
		t.Errorf("first Get: %v", err)
	}
	if _, err := store.ReadAll(ctx, s, "data/a"); !isInjected(err, errDisk) {
		t.Errorf("second Get: err = %v, want ErrInjected", err)
	}
	if _, err := store.ReadAll(ctx, s, "data/a"); err != nil {
		t.Errorf("third Get: %v", err)
	}

	if _, err := s.Stat(ctx, "keys/k"); !isInjected(err, nil) {
		t.Errorf("first Stat(keys/k): err = %v, want ErrInjected", err)
	}
	if _, err := s.Stat(ctx, "keys/k"); err != nil {
		t.Errorf("second Stat(keys/k): %v", err)
	}

	for range 2 {
		if err := s.Delete(ctx, "data/b"); !isInjected(err, nil) {
			t.Errorf("Delete(data/b): err = %v, want ErrInjected", err)
		}
	}
	if _, err := inner.Stat(ctx, "data/b"); err != nil {
		t.Errorf("failed Delete removed the object: %v", err)
	}

	called := false
	if err := s.List(ctx, "data/", func(store.Info) error { called = true; return nil }); !isInjected(err, nil) {
		t.Errorf("first List(data/): err = %v, want ErrInjected", err)
	}
	if called {
		t.Errorf("failed List called fn")
	}
	if err := s.List(ctx, "keys/", func(store.Info) error { return nil }); err != nil {
		t.Errorf("List(keys/): %v", err)
	}
	n := 0
	if err := s.List(ctx, "data/", func(store.Info) error { n++; return nil }); err != nil || n != 2 {
		t.Errorf("second List(data/) = %d objects, %v; want 2", n, err)
	}
}

func data100() []byte {
	b := make([]byte, 100)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func getRange(t *testing.T, s store.Store, name string, off, n int64) []byte {
	t.Helper()
	rc, err := s.Get(t.Context(), name, off, n)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTruncateGet(t *testing.T) {
	inner := memstore.New()
	s := faulty.New(inner)
	ctx := t.Context()
	data := data100()
	for _, name := range []string{"data/a", "other"} {
		if err := inner.Put(ctx, name, data); err != nil {
			t.Fatal(err)
		}
	}
	s.TruncateGet(faulty.Prefix("data/"), 30)
	s.TruncateGet(faulty.Prefix("data/"), 10) // the smallest wins

	for _, tc := range []struct {
		off, n int64
		want   []byte
	}{
		{0, -1, data[:10]},
		{50, 30, data[50:60]},
		{95, -1, data[95:]}, // shorter than the limit anyway
		{50, 5, data[50:55]},
	} {
		if got := getRange(t, s, "data/a", tc.off, tc.n); !bytes.Equal(got, tc.want) {
			t.Errorf("Get(data/a, %d, %d) = %v, want %v", tc.off, tc.n, got, tc.want)
		}
	}
	if _, err := store.ReadRange(ctx, s, "data/a", 0, 20); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("ReadRange of 20 bytes: err = %v, want io.ErrUnexpectedEOF", err)
	}
	if got := getRange(t, s, "other", 0, -1); !bytes.Equal(got, data) {
		t.Errorf("non-matching Get was truncated to %d bytes", len(got))
	}
}

func TestFlipBitOnGet(t *testing.T) {
	inner := memstore.New()
	s := faulty.New(inner)
	ctx := t.Context()
	data := data100()
	if err := inner.Put(ctx, "obj", data); err != nil {
		t.Fatal(err)
	}
	s.FlipBitOnGet(nil, 10)

	for _, tc := range []struct {
		off, n  int64
		flipped int // index into the result, -1: none
	}{
		{0, -1, 10},
		{5, 10, 5},
		{10, 1, 0},
		{11, -1, -1},
		{0, 10, -1},
	} {
		got := getRange(t, s, "obj", tc.off, tc.n)
		want := bytes.Clone(data[tc.off:][:len(got)])
		if tc.flipped >= 0 {
			want[tc.flipped] ^= 1
		}
		if !bytes.Equal(got, want) {
			t.Errorf("Get(obj, %d, %d) = %v, want %v", tc.off, tc.n, got, want)
		}
	}
	if b, _ := store.ReadAll(ctx, inner, "obj"); !bytes.Equal(b, data) {
		t.Errorf("FlipBitOnGet changed the stored object")
	}
}

func TestCrash(t *testing.T) {
	inner := memstore.New()
	s := faulty.New(inner)
	ctx := t.Context()
	if err := inner.Put(ctx, "before", []byte("x")); err != nil {
		t.Fatal(err)
	}
	s.Crash(3)
	for i := range 5 {
		err := s.Put(ctx, fmt.Sprintf("data/%d", i), []byte("x"))
		if i < 3 && err != nil {
			t.Errorf("Put %d before the crash: %v", i, err)
		}
		if i >= 3 && !errors.Is(err, faulty.ErrCrashed) {
			t.Errorf("Put %d after the crash: err = %v, want ErrCrashed", i, err)
		}
	}
	if !s.Crashed() {
		t.Errorf("Crashed() = false after the crash")
	}
	n := 0
	if err := inner.List(ctx, "data/", func(store.Info) error { n++; return nil }); err != nil || n != 3 {
		t.Errorf("inner store holds %d data objects (%v), want 3", n, err)
	}

	if _, err := s.Get(ctx, "before", 0, -1); !errors.Is(err, faulty.ErrCrashed) {
		t.Errorf("Get after crash: err = %v, want ErrCrashed", err)
	}
	if _, err := s.Stat(ctx, "before"); !errors.Is(err, faulty.ErrCrashed) {
		t.Errorf("Stat after crash: err = %v, want ErrCrashed", err)
	}
	if err := s.List(ctx, "", func(store.Info) error { return nil }); !errors.Is(err, faulty.ErrCrashed) {
		t.Errorf("List after crash: err = %v, want ErrCrashed", err)
	}
	if err := s.Delete(ctx, "before"); !errors.Is(err, faulty.ErrCrashed) {
		t.Errorf("Delete after crash: err = %v, want ErrCrashed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after crash: %v", err)
	}

	s.Reset()
	if s.Crashed() {
		t.Errorf("Crashed() = true after Reset")
	}
	if err := s.Put(ctx, "data/after", []byte("x")); err != nil {
		t.Errorf("Put after Reset: %v", err)
	}
}

func TestCrashImmediately(t *testing.T) {
	s := faulty.New(memstore.New())
	s.Crash(0)
	if err := s.Put(t.Context(), "a", nil); !errors.Is(err, faulty.ErrCrashed) {
		t.Errorf("Put after Crash(0): err = %v, want ErrCrashed", err)
	}
}

// Only successful Puts bring the crash closer.
func TestCrashCountsSuccessfulPuts(t *testing.T) {
	s := faulty.New(memstore.New())
	ctx := t.Context()
	s.FailPut(nil, 1, nil)
	s.Crash(1)
	if err := s.Put(ctx, "a", nil); !isInjected(err, nil) {
		t.Fatalf("first Put: err = %v, want ErrInjected", err)
	}
	if err := s.Put(ctx, "b", nil); err != nil {
		t.Fatalf("second Put: %v", err)
	}
	if err := s.Put(ctx, "c", nil); !errors.Is(err, faulty.ErrCrashed) {
		t.Fatalf("third Put: err = %v, want ErrCrashed", err)
	}
}

func TestCrashConcurrentPuts(t *testing.T) {
	inner := memstore.New()
	s := faulty.New(inner)
	ctx := t.Context()
	s.Crash(10)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			err := s.Put(ctx, fmt.Sprintf("data/%d", i), nil)
			if err != nil && !errors.Is(err, faulty.ErrCrashed) {
				t.Errorf("Put: %v", err)
			}
		})
	}
	wg.Wait()
	n := 0
	if err := inner.List(ctx, "", func(store.Info) error { n++; return nil }); err != nil || n != 10 {
		t.Errorf("%d Puts got through (%v), want exactly 10", n, err)
	}
}

func TestCountersAndReset(t *testing.T) {
	s := faulty.New(memstore.New())
	ctx := t.Context()
	s.FailPut(faulty.Exact("bad"), 0, nil)
	s.TruncateGet(nil, 1)
	for _, name := range []string{"a", "bad", "b"} {
		s.Put(ctx, name, []byte("xyz")) // "bad" fails; counted anyway
	}
	for _, name := range []string{"a", "missing"} {
		if rc, err := s.Get(ctx, name, 0, -1); err == nil {
			rc.Close()
		}
	}
	if s.Puts() != 3 || s.Gets() != 2 {
		t.Errorf("Puts, Gets = %d, %d; want 3, 2", s.Puts(), s.Gets())
	}
	s.Reset()
	if s.Puts() != 0 || s.Gets() != 0 {
		t.Errorf("after Reset: Puts, Gets = %d, %d; want 0, 0", s.Puts(), s.Gets())
	}
	if err := s.Put(ctx, "bad", []byte("xyz")); err != nil {
		t.Errorf("Put(bad) after Reset: %v", err)
	}
	if b, err := store.ReadAll(ctx, s, "a"); err != nil || string(b) != "xyz" {
		t.Errorf("Get after Reset = %q, %v; want the whole object", b, err)
	}
}

// Rules may change while the store is in use (run with -race).
func TestRulesWhileInUse(t *testing.T) {
	s := faulty.New(memstore.New())
	ctx := t.Context()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				name := fmt.Sprintf("data/%d-%d", w, i)
				if err := s.Put(ctx, name, []byte("x")); err == nil {
					store.ReadAll(ctx, s, name)
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 100 {
			s.FailPut(nil, i%5, nil)
			s.FlipBitOnGet(nil, 0)
			s.TruncateGet(nil, 10)
			if i%10 == 0 {
				s.Reset()
			}
		}
	})
	wg.Wait()
}
