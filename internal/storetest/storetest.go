// Package storetest is the conformance suite for store.Store backends. Every
// backend runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return memstore.New() })
//	}
//
// The suite checks the written contract in store.Store and nothing more, so
// that a backend passing it can be swapped for any other.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cairn-backup/cairn/store"
)

// Run runs the suite. newStore must return a new, empty store each time it is
// called, and must be safe to call from parallel subtests; Run closes the
// stores it gets.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	open := func(t *testing.T) store.Store {
		t.Helper()
		s := newStore(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"PutGet", testPutGet},
		{"Range", testRange},
		{"Overwrite", testOverwrite},
		{"Stat", testStat},
		{"Missing", testMissing},
		{"Delete", testDelete},
		{"List", testList},
		{"ListCallbackError", testListCallbackError},
		{"ListCallbackUsesStore", testListCallbackUsesStore},
		{"ListCallbackSerial", testListCallbackSerial},
		{"InvalidNames", testInvalidNames},
		{"EmptyObject", testEmptyObject},
		{"LargeObject", testLargeObject},
		{"PutCopiesData", testPutCopiesData},
		{"ConcurrentPuts", testConcurrentPuts},
		{"ConcurrentOverwrite", testConcurrentOverwrite},
		{"Canceled", testCanceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

func put(t *testing.T, s store.Store, name string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), name, data); err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
}

func get(t *testing.T, s store.Store, name string, offset, length int64) []byte {
	t.Helper()
	rc, err := s.Get(t.Context(), name, offset, length)
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): %v", name, offset, length, err)
	}
	b, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): reading: %v", name, offset, length, err)
	}
	return b
}

// list returns name → size of the objects under prefix, failing on an object
// reported twice.
func list(t *testing.T, s store.Store, prefix string) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	err := s.List(t.Context(), prefix, func(info store.Info) error {
		if _, dup := got[info.Name]; dup {
			return fmt.Errorf("%q listed twice", info.Name)
		}
		got[info.Name] = info.Size
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return got
}

// content returns n deterministic pseudo-random bytes, different per seed, so
// that misplaced ranges or mixed-up objects show.
func content(seed uint64, n int) []byte {
	var key [32]byte
	key[0] = byte(seed)
	key[1] = byte(seed >> 8)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

func testPutGet(t *testing.T, s store.Store) {
	names := []string{
		"config",
		"keys/0123456789abcdef",
		"data/ab/ab12cd34ef56",
		"index/a-b_c.d",
		"snapshots/2026/01/02/x",
	}
	for i, name := range names {
		put(t, s, name, content(uint64(i), 1000+i))
	}
	for i, name := range names {
		if got, want := get(t, s, name, 0, -1), content(uint64(i), 1000+i); !bytes.Equal(got, want) {
			t.Errorf("Get(%q) returned %d bytes that differ from the %d put", name, len(got), len(want))
		}
		got, err := store.ReadAll(t.Context(), s, name)
		if err != nil || !bytes.Equal(got, content(uint64(i), 1000+i)) {
			t.Errorf("store.ReadAll(%q) = %d bytes, %v; want the bytes put", name, len(got), err)
		}
	}
}

func testRange(t *testing.T, s store.Store) {
	const size = 1000
	data := content(1, size)
	put(t, s, "obj", data)
	for _, tc := range []struct {
		name           string
		offset, length int64
		want           []byte
	}{
		{"whole", 0, -1, data},
		{"whole exact", 0, size, data},
		{"start", 0, 10, data[:10]},
		{"middle", 400, 123, data[400:523]},
		{"to end", 990, -1, data[990:]},
		{"one byte", 999, 1, data[999:]},
		{"zero length", 500, 0, nil},
		{"overlapping end", 995, 10, data[995:]},
		{"length far past end", 0, 1 << 40, data},
		{"at end", size, 10, nil},
		{"at end to end", size, -1, nil},
		{"past end", size + 1000, 10, nil},
		{"past end to end", size + 1000, -1, nil},
	} {
		got := get(t, s, "obj", tc.offset, tc.length)
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%s: Get(obj, %d, %d) = %d bytes, want %d bytes [%d, %d)",
				tc.name, tc.offset, tc.length, len(got), len(tc.want), tc.offset, tc.offset+int64(len(tc.want)))
		}
	}

	got, err := store.ReadRange(t.Context(), s, "obj", 100, 50)
	if err != nil || !bytes.Equal(got, data[100:150]) {
		t.Errorf("store.ReadRange(obj, 100, 50) = %d bytes, %v; want data[100:150]", len(got), err)
	}
	if _, err := store.ReadRange(t.Context(), s, "obj", 990, 20); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("store.ReadRange past the end: err = %v, want io.ErrUnexpectedEOF", err)
	}
}

func testOverwrite(t *testing.T, s store.Store) {
	for i, n := range []int{5000, 10, 0, 7000} {
		data := content(uint64(i), n)
		put(t, s, "data/obj", data)
		if got := get(t, s, "data/obj", 0, -1); !bytes.Equal(got, data) {
			t.Fatalf("after overwrite %d: Get returned %d bytes, want the %d just put", i, len(got), n)
		}
		info, err := s.Stat(t.Context(), "data/obj")
		if err != nil || info.Size != int64(n) {
			t.Fatalf("after overwrite %d: Stat = %+v, %v; want size %d", i, info, err, n)
		}
		if got := list(t, s, ""); len(got) != 1 || got["data/obj"] != int64(n) {
			t.Fatalf("after overwrite %d: List = %v, want only data/obj of size %d", i, got, n)
		}
	}
}

func testStat(t *testing.T, s store.Store) {
	sizes := map[string]int{"a": 0, "b": 1, "c/d": 4096, "c/e": 100_001}
	for name, n := range sizes {
		put(t, s, name, content(uint64(n), n))
	}
	for name, n := range sizes {
		info, err := s.Stat(t.Context(), name)
		if err != nil {
			t.Errorf("Stat(%q): %v", name, err)
			continue
		}
		if info.Name != name || info.Size != int64(n) {
			t.Errorf("Stat(%q) = %+v, want {%s %d}", name, info, name, n)
		}
	}
}

func testMissing(t *testing.T, s store.Store) {
	ctx := t.Context()
	// "dir" is a prefix of an object but not an object; a file-system
	// backend must not mistake its directory for one.
	put(t, s, "dir/obj", []byte("x"))
	for _, name := range []string{"missing", "nested/missing", "dir/missing", "dir", "dir/obj/below"} {
		if _, err := s.Stat(ctx, name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Stat(%q): err = %v, want ErrNotFound", name, err)
		}
		if rc, err := s.Get(ctx, name, 0, -1); !errors.Is(err, store.ErrNotFound) {
			if err == nil {
				rc.Close()
			}
			t.Errorf("Get(%q): err = %v, want ErrNotFound", name, err)
		}
		if rc, err := s.Get(ctx, name, 10, 5); !errors.Is(err, store.ErrNotFound) {
			if err == nil {
				rc.Close()
			}
			t.Errorf("Get(%q, 10, 5): err = %v, want ErrNotFound", name, err)
		}
		if err := s.Delete(ctx, name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Delete(%q): err = %v, want ErrNotFound", name, err)
		}
	}
	if got := get(t, s, "dir/obj", 0, -1); string(got) != "x" {
		t.Errorf("dir/obj changed by operations on missing names: %q", got)
	}
}

func testDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	put(t, s, "data/a", []byte("a"))
	put(t, s, "data/b", []byte("b"))
	if err := s.Delete(ctx, "data/a"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Stat(ctx, "data/a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stat after Delete: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "data/a", 0, -1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "data/a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second Delete: err = %v, want ErrNotFound", err)
	}
	if got := list(t, s, ""); len(got) != 1 || got["data/b"] != 1 {
		t.Errorf("List after Delete = %v, want only data/b", got)
	}
	// A deleted name can be used again.
	put(t, s, "data/a", []byte("again"))
	if got := get(t, s, "data/a", 0, -1); string(got) != "again" {
		t.Errorf("Get after re-Put = %q, want %q", got, "again")
	}
}

func testList(t *testing.T, s store.Store) {
	objects := map[string]int64{
		"config":          6,
		"data/00/0011":    11,
		"data/ab/ab01":    1,
		"data/ab/ab02":    2,
		"data/ab/ab03/x":  3, // deeper than its siblings
		"data/abc/abc1":   4,
		"data/ba/ba01":    5,
		"datafile":        7,
		"keys/k1":         8,
		"snapshots/2026a": 9,
	}
	for name, n := range objects {
		put(t, s, name, content(uint64(n), int(n)))
	}
	subset := func(names ...string) map[string]int64 {
		m := map[string]int64{}
		for _, n := range names {
			m[n] = objects[n]
		}
		return m
	}
	for _, tc := range []struct {
		prefix string
		want   map[string]int64
	}{
		{"", objects},
		{"data/", subset("data/00/0011", "data/ab/ab01", "data/ab/ab02", "data/ab/ab03/x", "data/abc/abc1", "data/ba/ba01")},
		{"data", subset("data/00/0011", "data/ab/ab01", "data/ab/ab02", "data/ab/ab03/x", "data/abc/abc1", "data/ba/ba01", "datafile")},
		{"data/ab/", subset("data/ab/ab01", "data/ab/ab02", "data/ab/ab03/x")},
		{"data/ab", subset("data/ab/ab01", "data/ab/ab02", "data/ab/ab03/x", "data/abc/abc1")},
		{"data/ab/ab0", subset("data/ab/ab01", "data/ab/ab02", "data/ab/ab03/x")},
		{"data/ab/ab01", subset("data/ab/ab01")},
		{"config", subset("config")},
		{"c", subset("config")},
		{"snapshots/2026", subset("snapshots/2026a")},
		{"missing/", nil},
		{"missing", nil},
		{"data/zz/", nil},
		{"data/ab/ab01/", nil},
		{"config/", nil},
	} {
		got := list(t, s, tc.prefix)
		if len(tc.want) == 0 && len(got) == 0 {
			continue
		}
		if !mapsEqual(got, tc.want) {
			t.Errorf("List(%q):\n got  %v\n want %v", tc.prefix, got, tc.want)
		}
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func testListCallbackError(t *testing.T, s store.Store) {
	for i := range 10 {
		put(t, s, fmt.Sprintf("data/%02d/obj", i), []byte{byte(i)})
	}
	stop := errors.New("stop here")
	calls := 0
	err := s.List(t.Context(), "data/", func(store.Info) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) {
		t.Errorf("List returned %v, want the callback's error", err)
	}
	if calls != 1 {
		t.Errorf("callback called %d times after returning an error, want 1", calls)
	}
}

// Prune-like code deletes what a listing shows while it lists; a backend
// that holds a lock across fn would deadlock here.
func testListCallbackUsesStore(t *testing.T, s store.Store) {
	ctx := t.Context()
	for i := range 20 {
		put(t, s, fmt.Sprintf("data/%02d/obj%d", i%4, i), []byte{byte(i)})
	}
	put(t, s, "keep", []byte("k"))
	err := s.List(ctx, "data/", func(info store.Info) error {
		if _, err := s.Stat(ctx, info.Name); err != nil {
			return err
		}
		return s.Delete(ctx, info.Name)
	})
	if err != nil {
		t.Fatalf("List deleting as it goes: %v", err)
	}
	if got := list(t, s, ""); len(got) != 1 || got["keep"] != 1 {
		t.Errorf("after deleting everything under data/: List = %v, want only keep", got)
	}
}

func testEmptyObject(t *testing.T, s store.Store) {
	put(t, s, "empty", nil)
	put(t, s, "dir/empty", []byte{})
	for _, name := range []string{"empty", "dir/empty"} {
		info, err := s.Stat(t.Context(), name)
		if err != nil || info.Size != 0 {
			t.Errorf("Stat(%q) = %+v, %v; want size 0", name, info, err)
		}
		if got := get(t, s, name, 0, -1); len(got) != 0 {
			t.Errorf("Get(%q) = %d bytes, want 0", name, len(got))
		}
		if got := get(t, s, name, 5, 5); len(got) != 0 {
			t.Errorf("Get(%q, 5, 5) = %d bytes, want 0", name, len(got))
		}
	}
	if got := list(t, s, ""); !mapsEqual(got, map[string]int64{"empty": 0, "dir/empty": 0}) {
		t.Errorf("List = %v, want both empty objects", got)
	}
}

func testLargeObject(t *testing.T, s store.Store) {
	const size = 20 << 20
	data := content(20, size)
	put(t, s, "data/large", data)

	info, err := s.Stat(t.Context(), "data/large")
	if err != nil || info.Size != size {
		t.Fatalf("Stat = %+v, %v; want size %d", info, err, size)
	}
	if got := get(t, s, "data/large", 0, -1); sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("Get returned %d bytes that differ from the %d put", len(got), size)
	}
	const off, n = 12<<20 + 12345, 3 << 20
	if got := get(t, s, "data/large", off, n); !bytes.Equal(got, data[off:off+n]) {
		t.Errorf("Get(%d, %d) returned %d bytes that differ from what was put", off, n, len(got))
	}
	if got := get(t, s, "data/large", size-100, -1); !bytes.Equal(got, data[size-100:]) {
		t.Errorf("Get of the last 100 bytes returned %d bytes that differ", len(got))
	}
}

func testPutCopiesData(t *testing.T, s store.Store) {
	buf := []byte("original")
	put(t, s, "obj", buf)
	copy(buf, "XXXXXXXX")
	got := get(t, s, "obj", 0, -1)
	if string(got) != "original" {
		t.Fatalf("changing the slice after Put changed the object: %q", got)
	}
	copy(got, "YYYYYYYY")
	if got := get(t, s, "obj", 0, -1); string(got) != "original" {
		t.Fatalf("changing bytes returned by Get changed the object: %q", got)
	}
}

func testConcurrentPuts(t *testing.T, s store.Store) {
	const workers, perWorker = 8, 32
	ctx := t.Context()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				// Workers share directories, so backends that create them
				// on demand race with each other here.
				name := fmt.Sprintf("data/%02x/w%d-%d", i%8, w, i)
				if err := s.Put(ctx, name, content(uint64(w*perWorker+i), 100+i)); err != nil {
					t.Errorf("Put(%q): %v", name, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	got := list(t, s, "data/")
	if len(got) != workers*perWorker {
		t.Fatalf("List found %d objects, want %d", len(got), workers*perWorker)
	}
	for w := range workers {
		for i := range perWorker {
			name := fmt.Sprintf("data/%02x/w%d-%d", i%8, w, i)
			if b := get(t, s, name, 0, -1); !bytes.Equal(b, content(uint64(w*perWorker+i), 100+i)) {
				t.Errorf("Get(%q) returned the wrong bytes", name)
			}
		}
	}
}

// Readers racing with overwrites must see one whole version or the other,
// never a mix or a partial object.
func testConcurrentOverwrite(t *testing.T, s store.Store) {
	ctx := t.Context()
	versions := [][]byte{bytes.Repeat([]byte("a"), 3000), bytes.Repeat([]byte("b"), 70_000)}
	put(t, s, "obj", versions[0])

	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		for i := range 50 {
			if err := s.Put(ctx, "obj", versions[(i+1)%2]); err != nil {
				t.Errorf("Put: %v", err)
				return
			}
		}
	})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				b, err := store.ReadAll(ctx, s, "obj")
				if err != nil {
					t.Errorf("ReadAll during overwrites: %v", err)
					return
				}
				if !slices.ContainsFunc(versions, func(v []byte) bool { return bytes.Equal(b, v) }) {
					t.Errorf("ReadAll during overwrites returned %d bytes that are neither version", len(b))
					return
				}
				info, err := s.Stat(ctx, "obj")
				if err != nil || (info.Size != int64(len(versions[0])) && info.Size != int64(len(versions[1]))) {
					t.Errorf("Stat during overwrites = %+v, %v", info, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func testCanceled(t *testing.T, s store.Store) {
	put(t, s, "exists", []byte("x"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	if err := s.Put(ctx, "new", []byte("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with canceled context: err = %v, want context.Canceled", err)
	}
	if _, err := s.Stat(t.Context(), "new"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Put with canceled context stored the object (Stat err = %v)", err)
	}
	if rc, err := s.Get(ctx, "exists", 0, -1); err == nil {
		// Some backends can only notice while reading.
		_, err = io.ReadAll(rc)
		rc.Close()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Get with canceled context: err = %v, want context.Canceled", err)
		}
	} else if !errors.Is(err, context.Canceled) {
		t.Errorf("Get with canceled context: err = %v, want context.Canceled", err)
	}
	if _, err := s.Stat(ctx, "exists"); !errors.Is(err, context.Canceled) {
		t.Errorf("Stat with canceled context: err = %v, want context.Canceled", err)
	}
	called := false
	if err := s.List(ctx, "", func(store.Info) error { called = true; return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("List with canceled context: err = %v, want context.Canceled", err)
	}
	if called {
		t.Errorf("List with canceled context called fn")
	}
	if err := s.Delete(ctx, "exists"); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with canceled context: err = %v, want context.Canceled", err)
	}
	if _, err := s.Stat(t.Context(), "exists"); err != nil {
		t.Errorf("Delete with canceled context deleted the object (Stat err = %v)", err)
	}
}

// testListCallbackSerial: fn is never entered while another call of it is
// running, and every object is reported once.
func testListCallbackSerial(t *testing.T, s store.Store) {
	const n = 64
	for i := range n {
		put(t, s, fmt.Sprintf("data/%02x/obj%03d", i%4, i), content(uint64(i), 10))
	}
	var inside atomic.Bool
	calls := 0
	err := s.List(t.Context(), "data/", func(info store.Info) error {
		if !inside.CompareAndSwap(false, true) {
			return fmt.Errorf("fn entered for %s while another call was running", info.Name)
		}
		calls++
		runtime.Gosched() // give a concurrent caller the chance to show
		inside.Store(false)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := list(t, s, "data/"); len(got) != n || calls != n {
		t.Errorf("listed %d objects in %d calls, want %d", len(got), calls, n)
	}
}

// testInvalidNames: names outside the contract are refused by every
// method with ErrInvalidName, and nothing is created.
func testInvalidNames(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, name := range []string{
		"", "/", "/abs", "a//b", "a/", "../x", "a/../b", ".", "a/./b", "Upper", "spa ce", "nul\x00", "é",
		store.TempPrefix + "x", "data/" + store.TempPrefix + "y",
	} {
		if err := s.Put(ctx, name, []byte("x")); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("Put(%q): got %v, want ErrInvalidName", name, err)
		}
		if rc, err := s.Get(ctx, name, 0, -1); !errors.Is(err, store.ErrInvalidName) {
			if err == nil {
				rc.Close()
			}
			t.Errorf("Get(%q): got %v, want ErrInvalidName", name, err)
		}
		if _, err := s.Stat(ctx, name); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("Stat(%q): got %v, want ErrInvalidName", name, err)
		}
		if err := s.Delete(ctx, name); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("Delete(%q): got %v, want ErrInvalidName", name, err)
		}
	}
	for _, prefix := range []string{"/", "../", "a//", "Upper", "a/../"} {
		err := s.List(ctx, prefix, func(store.Info) error { return nil })
		if !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("List(%q): got %v, want ErrInvalidName", prefix, err)
		}
	}
	if got := list(t, s, ""); len(got) != 0 {
		t.Errorf("invalid names created objects: %v", got)
	}
}
