package local_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/storetest"
	"github.com/cairn-backup/cairn/store"
	"github.com/cairn-backup/cairn/store/local"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := local.Create(filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func newStore(t *testing.T) (*local.Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	s, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

func TestNameMapsToFile(t *testing.T) {
	s, dir := newStore(t)
	if err := s.Put(t.Context(), "a/b/c", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "a", "b", "c"))
	if err != nil || string(b) != "hello" {
		t.Fatalf("file a/b/c = %q, %v; want %q", b, err, "hello")
	}
}

// A Put interrupted by a crash leaves a temporary file behind. It must not
// show up as an object, nor hide or damage the object it was replacing.
func TestLeftoverTempFilesAreInvisible(t *testing.T) {
	s, dir := newStore(t)
	ctx := t.Context()
	if err := s.Put(ctx, "data/ab/obj", []byte("old")); err != nil {
		t.Fatal(err)
	}
	// What a crash mid-Put leaves: a partial replacement of data/ab/obj, a
	// new object in a directory made for it, and one at the top level.
	leftovers := []string{"data/ab/.tmp-123456", "data/cd/.tmp-987", ".tmp-42"}
	for _, p := range leftovers {
		p = filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("partial new cont"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	for _, prefix := range []string{"", "data/", "data/ab/", "data/cd/", "."} {
		err := s.List(ctx, prefix, func(info store.Info) error {
			if info.Name != "data/ab/obj" {
				t.Errorf("List(%q) shows %q", prefix, info.Name)
			}
			return nil
		})
		if err != nil {
			t.Errorf("List(%q): %v", prefix, err)
		}
	}
	if b, err := store.ReadAll(ctx, s, "data/ab/obj"); err != nil || string(b) != "old" {
		t.Errorf("data/ab/obj = %q, %v; want the old content", b, err)
	}
	if info, err := s.Stat(ctx, "data/ab/obj"); err != nil || info.Size != 3 {
		t.Errorf("Stat(data/ab/obj) = %+v, %v; want size 3", info, err)
	}
	for _, name := range leftovers {
		if _, err := s.Stat(ctx, name); err == nil {
			t.Errorf("Stat(%q) succeeded on a temporary file", name)
		}
		if _, err := s.Get(ctx, name, 0, -1); err == nil {
			t.Errorf("Get(%q) succeeded on a temporary file", name)
		}
		if err := s.Delete(ctx, name); err == nil {
			t.Errorf("Delete(%q) succeeded on a temporary file", name)
		}
	}
	// The store keeps working around the leftovers.
	if err := s.Put(ctx, "data/ab/obj", []byte("new")); err != nil {
		t.Fatal(err)
	}
	if b, err := store.ReadAll(ctx, s, "data/ab/obj"); err != nil || string(b) != "new" {
		t.Errorf("after a new Put: data/ab/obj = %q, %v; want %q", b, err, "new")
	}
}

const crashDirEnv = "CAIRN_LOCAL_CRASH_DIR"

// TestCrashHelper is the process TestCrashDuringPuts kills. It writes
// objects named after the SHA-256 of their content until it is killed.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashDuringPuts")
	}
	s, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	src := rand.NewChaCha8([32]byte{1})
	rng := rand.New(src)
	for {
		// Generating is much faster than writing and fsyncing, so the kill
		// most likely lands inside a Put.
		data := make([]byte, 256<<10+rng.IntN(4<<20))
		src.Read(data)
		sum := sha256.Sum256(data)
		name := "data/" + hex.EncodeToString(sum[:1]) + "/" + hex.EncodeToString(sum[:])
		if err := s.Put(context.Background(), name, data); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCrashDuringPuts kills a process in the middle of a stream of Puts and
// checks that every object it left is complete.
func TestCrashDuringPuts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a subprocess")
	}
	s, dir := newStore(t)
	ctx := t.Context()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Let it commit some objects, then kill it wherever it is.
	deadline := time.Now().Add(20 * time.Second)
	for n := 0; n < 10 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		n = 0
		if err := s.List(ctx, "data/", func(store.Info) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	// Aim for the middle of a Put: kill as soon as a temporary file shows.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		if m, _ := filepath.Glob(filepath.Join(dir, "data", "*", ".tmp-*")); len(m) > 0 {
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait() // killed: the error says so

	s, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	objects := 0
	err = s.List(ctx, "", func(info store.Info) error {
		objects++
		b, err := store.ReadAll(ctx, s, info.Name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		if want := hex.EncodeToString(sum[:]); filepath.Base(info.Name) != want || int64(len(b)) != info.Size {
			t.Errorf("%s: %d bytes (listed %d) hashing to %s: partial or corrupt object", info.Name, len(b), info.Size, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if objects < 10 {
		t.Fatalf("the helper committed only %d objects before it was killed", objects)
	}
	temps, _ := filepath.Glob(filepath.Join(dir, "data", "*", ".tmp-*"))
	t.Logf("%d complete objects, %d temporary files left by the crash", objects, len(temps))
}

func TestBadNames(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "repo")
	s, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	bad := []string{
		"", "/etc/passwd", "../escape", "a/../../escape", "a/..", "..", ".",
		`a\b`, `..\escape`, "a//b", "a/", "./a", "Upper", "a b", "a\x00b", ".tmp-x", "a/.tmp-y",
	}
	for _, name := range bad {
		for op, call := range map[string]func() error{
			"put":    func() error { return s.Put(ctx, name, []byte("x")) },
			"get":    func() error { _, err := s.Get(ctx, name, 0, -1); return err },
			"stat":   func() error { _, err := s.Stat(ctx, name); return err },
			"delete": func() error { return s.Delete(ctx, name) },
		} {
			err := call()
			if !errors.Is(err, store.ErrInvalidName) {
				t.Errorf("%s(%q): err = %v, want ErrInvalidName", op, name, err)
				continue
			}
			if !strings.HasPrefix(err.Error(), "local: "+op+" ") {
				t.Errorf("%s(%q): error %q does not say which operation failed", op, name, err)
			}
		}
	}
	for _, prefix := range []string{"/", "../", "a//", `..\`, "A"} {
		if err := s.List(ctx, prefix, func(store.Info) error { return nil }); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("List(%q): err = %v, want ErrInvalidName", prefix, err)
		}
	}
	if _, err := os.Stat(filepath.Join(parent, "escape")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a bad name wrote outside the store: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("bad names left %d entries in the store", len(entries))
	}
}

func TestOpenErrors(t *testing.T) {
	tmp := t.TempDir()
	missing := filepath.Join(tmp, "missing")
	_, err := local.Open(missing)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("Open(missing) = %v, want a not-exist error naming the path", err)
	}
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = local.Open(file)
	if err == nil || !strings.Contains(err.Error(), "not a directory") || !strings.Contains(err.Error(), file) {
		t.Errorf("Open(file) = %v, want a not-a-directory error naming the path", err)
	}
	if s, err := local.Open(tmp); err != nil {
		t.Errorf("Open(existing dir) = %v", err)
	} else if s.Dir() != tmp {
		t.Errorf("Dir() = %q, want %q", s.Dir(), tmp)
	}
}

func TestCreate(t *testing.T) {
	tmp := t.TempDir()

	nested := filepath.Join(tmp, "new", "nested", "repo")
	if _, err := local.Create(nested); err != nil {
		t.Fatalf("Create(new nested dir): %v", err)
	}
	if fi, err := os.Stat(nested); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("created dir: %v, %v; want mode 0700", fi.Mode(), err)
	}

	empty := filepath.Join(tmp, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Create(empty); err != nil {
		t.Errorf("Create(existing empty dir): %v", err)
	}

	full := filepath.Join(tmp, "full")
	if err := os.MkdirAll(filepath.Join(full, "something"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Create(full); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Create(non-empty dir) = %v, want a not-empty error", err)
	}

	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Create(file); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Create(file) = %v, want a not-a-directory error", err)
	}
}

func TestErrorsNameTheObject(t *testing.T) {
	s, _ := newStore(t)
	_, err := s.Get(t.Context(), "data/ab/missing", 0, -1)
	if !errors.Is(err, store.ErrNotFound) || err.Error() != "local: get data/ab/missing: store: object not found" {
		t.Errorf("Get(missing) = %q", err)
	}
}

// A directory is not an object: Delete must not remove an empty one.
func TestDeleteDirectory(t *testing.T) {
	s, dir := newStore(t)
	ctx := t.Context()
	if err := s.Put(ctx, "d/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "d/x"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "d"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Delete(d) = %v, want ErrNotFound", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "d")); err != nil || !fi.IsDir() {
		t.Errorf("directory d gone after Delete(d): %v", err)
	}
	// And Put into the now-empty directory still works.
	if err := s.Put(ctx, "d/y", []byte("y")); err != nil {
		t.Fatal(err)
	}
}

// Files the store did not write, with names no object can have, are not
// listed: Get would refuse their names.
func TestListSkipsStrays(t *testing.T) {
	s, dir := newStore(t)
	ctx := t.Context()
	if err := s.Put(ctx, "data/obj", []byte("x")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"README", "data/Thumbs.db", "data/a b"} {
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(p)), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "Upper"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Upper", "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("obj", filepath.Join(dir, "data", "link")); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := s.List(ctx, "", func(info store.Info) error { got = append(got, info.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "data/obj" {
		t.Errorf("List = %v, want only data/obj", got)
	}
}

// The reader Get returns stops when its context is canceled, so a long
// download can be abandoned.
func TestGetReaderHonoursContext(t *testing.T) {
	s, _ := newStore(t)
	if err := s.Put(t.Context(), "obj", bytes.Repeat([]byte("x"), 1<<20)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	rc, err := s.Get(ctx, "obj", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	buf := make([]byte, 1000)
	if _, err := io.ReadFull(rc, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := rc.Read(buf); !errors.Is(err, context.Canceled) {
		t.Errorf("Read after cancel: err = %v, want context.Canceled", err)
	}
}

// Get reads the object as it was when Get was called, even if a Put replaces
// it while the reader is open.
func TestGetSnapshot(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	if err := s.Put(ctx, "obj", []byte("old content")); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(ctx, "obj", 4, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := s.Put(ctx, "obj", []byte("replacement that is longer")); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(rc); err != nil || string(b) != "content" {
		t.Errorf("open reader after replacement read %q, %v; want %q", b, err, "content")
	}
}
