package cache_test

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
	"testing"
	"testing/synctest"

	"github.com/cairn-backup/cairn/internal/faulty"
	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/internal/storetest"
	"github.com/cairn-backup/cairn/store"
	"github.com/cairn-backup/cairn/store/cache"
	"github.com/zeebo/blake3"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := cache.New(memstore.New(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// hashName names data as the repository names immutable objects.
func hashName(prefix string, data []byte) string {
	sum := blake3.Sum256(data)
	return prefix + hex.EncodeToString(sum[:])
}

func payload(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + seed*7 + i>>8)
	}
	return b
}

// hookStore calls onGet after the inner Get returned (the bytes are read by
// then: mem copies them), before passing its result on.
type hookStore struct {
	store.Store
	onGet func(ctx context.Context, name string) error
}

func (h *hookStore) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	rc, err := h.Store.Get(ctx, name, offset, length)
	if err == nil && h.onGet != nil {
		if herr := h.onGet(ctx, name); herr != nil {
			rc.Close()
			return nil, herr
		}
	}
	return rc, err
}

// env is a cache over a counting store over memory.
type env struct {
	mem   *memstore.Store // the objects, behind everyone's back
	count *faulty.Store   // counts the Gets that reach the inner store
	hook  *hookStore
	c     *cache.Store
	dir   string

	mu   sync.Mutex
	errs []string // OnError calls
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{mem: memstore.New(), dir: filepath.Join(t.TempDir(), "cache")}
	e.count = faulty.New(e.mem)
	e.hook = &hookStore{Store: e.count}
	e.c = e.open(t)
	return e
}

// open returns another cache on the same directory and inner store, as a
// second process would have.
func (e *env) open(t *testing.T) *cache.Store {
	t.Helper()
	c, err := cache.NewWithOptions(e.hook, e.dir, cache.Options{OnError: func(name string, err error) {
		e.mu.Lock()
		e.errs = append(e.errs, fmt.Sprintf("%s: %v", name, err))
		e.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) errors() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.errs...)
}

func (e *env) file(name string) string { return filepath.Join(e.dir, filepath.FromSlash(name)) }

func (e *env) cached(name string) bool {
	_, err := os.Stat(e.file(name))
	return err == nil
}

func put(t *testing.T, s store.Store, name string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), name, data); err != nil {
		t.Fatalf("Put(%s): %v", name, err)
	}
}

func readAll(t *testing.T, s store.Store, name string) []byte {
	t.Helper()
	b, err := store.ReadAll(t.Context(), s, name)
	if err != nil {
		t.Fatalf("ReadAll(%s): %v", name, err)
	}
	return b
}

// gets returns how many Gets reached the inner store while fn ran.
func (e *env) gets(fn func()) int {
	before := e.count.Gets()
	fn()
	return e.count.Gets() - before
}

func TestCacheable(t *testing.T) {
	h := hashName("", []byte("x"))
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"index/" + h, true},
		{"snapshots/" + h, true},
		{"index/sub/" + h, true},
		{"data/" + h[:2] + "/" + h, false}, // packs pass through
		{"keys/" + h, false},
		{"locks/" + h, false},
		{"config", false},
		{"index/" + strings.ToUpper(h), false},
		{"index/" + h[:63], false},
		{"index/" + h + "0", false},
		{"index/a-b_c.d", false},
		{"snapshots/2026/01/02/x", false},
		{"index/" + h[:62] + "zz", false},
		{"index//" + h, false},
		{"index/../" + h, false},
		{h, false},
		{"indexes/" + h, false},
	} {
		if _, got := cache.Cacheable(tc.name); got != tc.want {
			t.Errorf("Cacheable(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCache(t *testing.T) {
	idx := payload(1, 5000)
	snap := payload(2, 300)
	idxName := hashName("index/", idx)
	snapName := hashName("snapshots/", snap)

	tests := []struct {
		name string
		run  func(t *testing.T, e *env)
	}{
		{"put writes through and a hit avoids the inner get", func(t *testing.T, e *env) {
			put(t, e.c, idxName, idx)
			put(t, e.c, snapName, snap)
			if b, err := store.ReadAll(t.Context(), e.mem, idxName); err != nil || !bytes.Equal(b, idx) {
				t.Fatalf("inner store after Put: %d bytes, %v", len(b), err)
			}
			n := e.gets(func() {
				for range 3 {
					if !bytes.Equal(readAll(t, e.c, idxName), idx) || !bytes.Equal(readAll(t, e.c, snapName), snap) {
						t.Fatal("cached bytes differ")
					}
				}
			})
			if n != 0 {
				t.Errorf("%d inner Gets for cached objects, want 0", n)
			}
			if st := e.c.Stats(); st.Hits != 6 || st.Misses != 0 {
				t.Errorf("stats %+v, want 6 hits", st)
			}
		}},
		{"miss fetches once, then a second process hits", func(t *testing.T, e *env) {
			put(t, e.mem, idxName, idx) // written by another host
			if n := e.gets(func() { readAll(t, e.c, idxName) }); n != 1 {
				t.Errorf("first Get: %d inner Gets, want 1", n)
			}
			if !e.cached(idxName) {
				t.Fatal("not cached after a miss")
			}
			c2 := e.open(t)
			if n := e.gets(func() {
				if !bytes.Equal(readAll(t, c2, idxName), idx) {
					t.Error("wrong bytes")
				}
			}); n != 0 {
				t.Errorf("second process: %d inner Gets, want 0", n)
			}
		}},
		{"ranges are served from the whole object", func(t *testing.T, e *env) {
			put(t, e.mem, idxName, idx)
			size := int64(len(idx))
			n := e.gets(func() {
				for _, r := range []struct{ off, n, from, to int64 }{
					{100, 50, 100, 150},
					{0, -1, 0, size},
					{0, size, 0, size},
					{size - 10, -1, size - 10, size},
					{size - 10, 100, size - 10, size},
					{0, 1 << 40, 0, size},
					{500, 0, 500, 500},
					{size, 10, size, size},
					{size + 1000, -1, size, size},
				} {
					rc, err := e.c.Get(t.Context(), idxName, r.off, r.n)
					if err != nil {
						t.Fatalf("Get(%d, %d): %v", r.off, r.n, err)
					}
					b, err := io.ReadAll(rc)
					rc.Close()
					if err != nil || !bytes.Equal(b, idx[r.from:r.to]) {
						t.Errorf("Get(%d, %d) = %d bytes, %v; want [%d, %d)", r.off, r.n, len(b), err, r.from, r.to)
					}
				}
				if _, err := store.ReadRange(t.Context(), e.c, idxName, size-5, 10); !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("ReadRange past the end: %v", err)
				}
			})
			if n != 1 {
				t.Errorf("%d inner Gets for ranges of one object, want 1 (the whole object)", n)
			}
		}},
		{"damaged or truncated entries are fetched again", func(t *testing.T, e *env) {
			put(t, e.c, idxName, idx)
			for i, damage := range []func(b []byte) []byte{
				func(b []byte) []byte { b[len(b)/2] ^= 1; return b },
				func(b []byte) []byte { return b[:len(b)-1] },
				func(b []byte) []byte { return nil },
				func(b []byte) []byte { return append(b, 0) },
			} {
				b, err := os.ReadFile(e.file(idxName))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(e.file(idxName), damage(b), 0o600); err != nil {
					t.Fatal(err)
				}
				if n := e.gets(func() {
					if !bytes.Equal(readAll(t, e.c, idxName), idx) {
						t.Errorf("damage %d: wrong bytes returned", i)
					}
				}); n != 1 {
					t.Errorf("damage %d: %d inner Gets, want 1", i, n)
				}
				if b, _ := os.ReadFile(e.file(idxName)); !bytes.Equal(b, idx) {
					t.Errorf("damage %d: entry not repaired", i)
				}
			}
			if st := e.c.Stats(); st.Damaged != 4 || len(e.errors()) != 4 {
				t.Errorf("stats %+v, errors %q; want 4 damaged entries reported", st, e.errors())
			}
		}},
		{"missing entry is fetched again", func(t *testing.T, e *env) {
			put(t, e.c, idxName, idx)
			if err := os.Remove(e.file(idxName)); err != nil {
				t.Fatal(err)
			}
			if n := e.gets(func() { readAll(t, e.c, idxName) }); n != 1 || !e.cached(idxName) {
				t.Errorf("%d inner Gets, cached %v; want 1 and a new entry", n, e.cached(idxName))
			}
		}},
		{"inner object not matching its name is returned, never cached", func(t *testing.T, e *env) {
			bad := append(bytes.Clone(idx), 'x')
			put(t, e.mem, idxName, bad)
			for range 2 {
				if n := e.gets(func() {
					if !bytes.Equal(readAll(t, e.c, idxName), bad) {
						t.Error("Get did not return the inner store's bytes as they are")
					}
				}); n != 1 {
					t.Errorf("%d inner Gets, want 1 each time", n)
				}
			}
			if e.cached(idxName) {
				t.Error("mismatching object cached")
			}
		}},
		{"put of bytes not matching the name is not cached and drops the entry", func(t *testing.T, e *env) {
			put(t, e.c, idxName, idx)
			put(t, e.c, idxName, snap)
			if e.cached(idxName) {
				t.Fatal("entry kept after a Put of other bytes")
			}
			if !bytes.Equal(readAll(t, e.c, idxName), snap) {
				t.Error("Get does not show what the inner store holds")
			}
		}},
		{"failed put caches nothing", func(t *testing.T, e *env) {
			e.count.FailPut(faulty.Exact(idxName), 1, nil)
			if err := e.c.Put(t.Context(), idxName, idx); !errors.Is(err, faulty.ErrInjected) {
				t.Fatalf("Put: %v, want the inner error", err)
			}
			if e.cached(idxName) {
				t.Error("cached although the inner Put failed")
			}
		}},
		{"delete removes both", func(t *testing.T, e *env) {
			put(t, e.c, idxName, idx)
			if err := e.c.Delete(t.Context(), idxName); err != nil {
				t.Fatal(err)
			}
			if e.cached(idxName) {
				t.Error("cached copy left after Delete")
			}
			if _, err := e.c.Get(t.Context(), idxName, 0, -1); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get after Delete: %v", err)
			}
			if err := e.c.Delete(t.Context(), idxName); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("second Delete: %v", err)
			}
		}},
		{"delete of an object gone from the inner store removes the stale entry", func(t *testing.T, e *env) {
			put(t, e.c, idxName, idx)
			if err := e.mem.Delete(t.Context(), idxName); err != nil { // another host
				t.Fatal(err)
			}
			if err := e.c.Delete(t.Context(), idxName); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Delete: %v, want the inner ErrNotFound", err)
			}
			if e.cached(idxName) {
				t.Error("stale entry left")
			}
		}},
		{"list and stat ask the inner store and prune", func(t *testing.T, e *env) {
			var names []string
			for i := range 4 {
				b := payload(10+i, 100+i)
				n := hashName("index/", b)
				names = append(names, n)
				put(t, e.c, n, b)
			}
			put(t, e.c, snapName, snap)
			added := payload(20, 77)
			addedName := hashName("index/", added)
			put(t, e.mem, addedName, added) // another host adds one...
			if err := e.mem.Delete(t.Context(), names[0]); err != nil {
				t.Fatal(err) // ...and deletes one
			}
			if _, err := e.c.Stat(t.Context(), names[0]); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Stat of a deleted object: %v", err)
			}
			if info, err := e.c.Stat(t.Context(), addedName); err != nil || info.Size != 77 {
				t.Errorf("Stat of an added object: %+v, %v", info, err)
			}
			listed := map[string]bool{}
			if err := e.c.List(t.Context(), "index/", func(info store.Info) error { listed[info.Name] = true; return nil }); err != nil {
				t.Fatal(err)
			}
			if len(listed) != 4 || listed[names[0]] || !listed[addedName] {
				t.Errorf("List = %v", listed)
			}
			if e.cached(names[0]) {
				t.Error("entry of a deleted object survived a List")
			}
			if !e.cached(names[1]) || !e.cached(snapName) {
				t.Error("a List pruned entries it should not have")
			}
			if st := e.c.Stats(); st.Pruned != 1 {
				t.Errorf("stats %+v, want 1 pruned", st)
			}
			if _, err := e.c.Get(t.Context(), names[0], 0, -1); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get after pruning: %v", err)
			}
		}},
		{"an interrupted list prunes nothing", func(t *testing.T, e *env) {
			put(t, e.c, idxName, idx)
			other := payload(30, 10)
			put(t, e.c, hashName("index/", other), other)
			stop := errors.New("stop")
			if err := e.c.List(t.Context(), "", func(store.Info) error { return stop }); !errors.Is(err, stop) {
				t.Fatalf("List: %v", err)
			}
			if !e.cached(idxName) || !e.cached(hashName("index/", other)) {
				t.Error("interrupted List pruned")
			}
		}},
		{"other names pass through", func(t *testing.T, e *env) {
			h := hashName("", idx)
			for _, name := range []string{"config", "keys/" + h, "locks/" + h, "data/" + h[:2] + "/" + h, "index/a-b_c.d", "snapshots/2026/01/02/x"} {
				put(t, e.c, name, idx)
				if n := e.gets(func() { readAll(t, e.c, name); readAll(t, e.c, name) }); n != 2 {
					t.Errorf("%s: %d inner Gets, want 2", name, n)
				}
			}
			err := filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					t.Errorf("file %s in the cache", p)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}},
		{"permissions", func(t *testing.T, e *env) {
			put(t, e.c, idxName, idx)
			for _, p := range []string{e.dir, filepath.Dir(e.file(idxName))} {
				if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o700 {
					t.Errorf("%s: %v, %v; want a 0700 directory", p, fi.Mode(), err)
				}
			}
			if fi, err := os.Stat(e.file(idxName)); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("entry: %v, %v; want 0600", fi.Mode(), err)
			}
		}},
		{"canceled context", func(t *testing.T, e *env) {
			put(t, e.c, idxName, idx)
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if _, err := e.c.Get(ctx, idxName, 0, -1); !errors.Is(err, context.Canceled) {
				t.Errorf("Get of a cached object with a canceled context: %v", err)
			}
			if err := e.c.Put(ctx, snapName, snap); !errors.Is(err, context.Canceled) || e.cached(snapName) {
				t.Errorf("Put with a canceled context: %v, cached %v", err, e.cached(snapName))
			}
		}},
		{"concurrent gets share one fetch", func(t *testing.T, _ *env) {
			// In a bubble, synctest.Wait returns once every reader is
			// blocked: one on the fetch, held by the hook, the others
			// waiting for it. Only then does the fetch go on.
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t)
				put(t, e.mem, idxName, idx)
				release := make(chan struct{})
				e.hook.onGet = func(context.Context, string) error {
					<-release
					return nil
				}
				var wg sync.WaitGroup
				n := e.gets(func() {
					for i := range 32 {
						wg.Go(func() {
							b, err := store.ReadAll(t.Context(), e.c, idxName)
							if err != nil || !bytes.Equal(b, idx) {
								t.Errorf("Get %d: %d bytes, %v", i, len(b), err)
							}
							if _, err := store.ReadRange(t.Context(), e.c, idxName, int64(i), 10); err != nil {
								t.Errorf("ReadRange %d: %v", i, err)
							}
						})
					}
					synctest.Wait()
					close(release)
					wg.Wait()
				})
				if n != 1 {
					t.Errorf("%d inner Gets for 32 concurrent readers, want 1", n)
				}
			})
		}},
		{"a waiter outlives the fetcher's canceled context", func(t *testing.T, _ *env) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t)
				put(t, e.mem, idxName, idx)
				started := make(chan struct{}, 1)
				var once sync.Once
				e.hook.onGet = func(ctx context.Context, _ string) error {
					first := false
					once.Do(func() { first = true })
					if !first {
						return nil
					}
					started <- struct{}{}
					<-ctx.Done()
					return ctx.Err()
				}
				ctx, cancel := context.WithCancel(t.Context())
				leader := make(chan error, 1)
				go func() { _, err := e.c.Get(ctx, idxName, 0, -1); leader <- err }()
				<-started
				follower := make(chan error, 1)
				go func() {
					b, err := store.ReadAll(t.Context(), e.c, idxName)
					if err == nil && !bytes.Equal(b, idx) {
						err = errors.New("wrong bytes")
					}
					follower <- err
				}()
				synctest.Wait() // the follower is waiting for the leader's fetch
				cancel()
				if err := <-leader; !errors.Is(err, context.Canceled) {
					t.Errorf("leader: %v, want context.Canceled", err)
				}
				if err := <-follower; err != nil {
					t.Errorf("follower: %v", err)
				}
			})
		}},
		{"a get racing with delete leaves no entry", func(t *testing.T, e *env) {
			put(t, e.mem, idxName, idx)
			fetched, release := make(chan struct{}), make(chan struct{})
			e.hook.onGet = func(context.Context, string) error {
				close(fetched)
				<-release
				return nil
			}
			got := make(chan error, 1)
			go func() { _, err := store.ReadAll(t.Context(), e.c, idxName); got <- err }()
			<-fetched // the Get has the bytes...
			if err := e.c.Delete(t.Context(), idxName); err != nil {
				t.Fatal(err) // ...the object is deleted...
			}
			close(release) // ...and the Get goes on to cache it
			if err := <-got; err != nil {
				t.Fatalf("Get: %v", err)
			}
			if e.cached(idxName) {
				t.Error("a deleted object was cached")
			}
			e.hook.onGet = nil
			if _, err := e.c.Get(t.Context(), idxName, 0, -1); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get after Delete: %v", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newEnv(t))
		})
	}
}

// A cache that cannot be written never fails a call: the calls go to the
// inner store and the failures to OnError.
func TestUnwritableCache(t *testing.T) {
	idx := payload(1, 5000)
	idxName := hashName("index/", idx)
	snap := payload(2, 300)
	snapName := hashName("snapshots/", snap)

	cases := []struct {
		name  string
		spoil func(t *testing.T, dir string)
	}{
		{"files where its directories go", func(t *testing.T, dir string) {
			for _, d := range []string{"index", "snapshots"} {
				if err := os.WriteFile(filepath.Join(dir, d), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"directory replaced by a file", func(t *testing.T, dir string) {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dir, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	if os.Geteuid() != 0 { // root writes anywhere
		cases = append(cases, struct {
			name  string
			spoil func(t *testing.T, dir string)
		}{"read-only directory", func(t *testing.T, dir string) {
			if err := os.Chmod(dir, 0o500); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(dir, 0o700) })
		}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tc.spoil(t, e.dir)
			ctx := t.Context()
			put(t, e.c, idxName, idx)
			put(t, e.mem, snapName, snap)
			for range 2 {
				if n := e.gets(func() {
					if !bytes.Equal(readAll(t, e.c, idxName), idx) || !bytes.Equal(readAll(t, e.c, snapName), snap) {
						t.Error("wrong bytes")
					}
				}); n != 2 {
					t.Errorf("%d inner Gets, want 2 (no cache)", n)
				}
			}
			if err := e.c.List(ctx, "", func(store.Info) error { return nil }); err != nil {
				t.Errorf("List: %v", err)
			}
			if err := e.c.Delete(ctx, idxName); err != nil {
				t.Errorf("Delete: %v", err)
			}
			if len(e.errors()) == 0 || e.c.Stats().Errors == 0 {
				t.Error("no failure reported to OnError")
			}
			t.Logf("first of %d reported: %s", len(e.errors()), e.errors()[0])
		})
	}
}

func TestNewErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		inner store.Store
		dir   string
	}{
		{"no inner store", nil, t.TempDir()},
		{"no directory", memstore.New(), ""},
		{"directory below a file", memstore.New(), filepath.Join(file, "cache")},
	} {
		if _, err := cache.New(tc.inner, tc.dir); err == nil {
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
}
