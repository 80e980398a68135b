package tree

import (
	"cmp"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
)

func writeFile(t *testing.T, path, data string, mode fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is filtered by the umask; set it exactly.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// sourceDir builds:
//
//	b.txt       "hello" 0640, mtime 2021-02-03 04:05:06.789
//	a-link  ->  b.txt
//	abs     ->  /nonexistent/target
//	d/          0750
//	d/inner     "x"
//	empty       ""
//	pipe        (FIFO)
//	Z           "upper case sorts first"
func sourceDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "b.txt"), "hello", 0o640)
	if err := os.Symlink("b.txt", filepath.Join(dir, "a-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent/target", filepath.Join(dir, "abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "d"), 0o750); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "d", "inner"), "x", 0o600)
	writeFile(t, filepath.Join(dir, "empty"), "", 0o644)
	writeFile(t, filepath.Join(dir, "Z"), "upper case sorts first", 0o644)
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	mt := time.Date(2021, 2, 3, 4, 5, 6, 789_000_000, time.UTC)
	if err := os.Chtimes(filepath.Join(dir, "b.txt"), mt, mt); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestOpenSource(t *testing.T) {
	dir := sourceDir(t)
	for _, tc := range []struct {
		name    string
		path    string
		wantErr error // nil: success
	}{
		{"directory", dir, nil},
		{"relative path is made absolute", ".", nil},
		{"regular file", filepath.Join(dir, "b.txt"), ErrNotDir},
		{"missing", filepath.Join(dir, "missing"), fs.ErrNotExist},
		{"symlink to a file", filepath.Join(dir, "a-link"), ErrNotDir},
		{"dangling symlink", filepath.Join(dir, "abs"), fs.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(tc.path)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Open(%s) = %v, want %v", tc.path, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%s): %v", tc.path, err)
			}
			if !filepath.IsAbs(s.Root()) {
				t.Errorf("Root() = %q, not absolute", s.Root())
			}
		})
	}
	t.Run("symlink to a directory is followed for the root", func(t *testing.T) {
		link := filepath.Join(t.TempDir(), "link")
		if err := os.Symlink(dir, link); err != nil {
			t.Fatal(err)
		}
		s, err := Open(link)
		if err != nil {
			t.Fatal(err)
		}
		nodes, err := s.ReadDir(t.Context(), "")
		if err != nil || len(nodes) == 0 {
			t.Fatalf("ReadDir through a root symlink: %d nodes, %v", len(nodes), err)
		}
	})
}

func TestReadDir(t *testing.T) {
	dir := sourceDir(t)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	nodes, err := s.ReadDir(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	// Byte order; the FIFO is a node of its own (it used to be skipped
	// silently).
	want := []string{"Z", "a-link", "abs", "b.txt", "d", "empty", "pipe"}
	if len(names) != len(want) {
		t.Fatalf("ReadDir names = %q, want %q", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("ReadDir names = %q, want %q", names, want)
		}
	}
	byName := map[string]snapshot.Node{}
	for _, n := range nodes {
		byName[n.Name] = n
	}

	for _, tc := range []struct {
		name   string
		typ    snapshot.NodeType
		mode   fs.FileMode
		size   uint64
		target string
	}{
		{"Z", snapshot.File, 0o644, 22, ""},
		{"a-link", snapshot.Symlink, 0o777, 0, "b.txt"},
		{"abs", snapshot.Symlink, 0o777, 0, "/nonexistent/target"},
		{"b.txt", snapshot.File, 0o640, 5, ""},
		{"d", snapshot.Dir, 0o750, 0, ""},
		{"empty", snapshot.File, 0o644, 0, ""},
		{"pipe", snapshot.Fifo, 0o644, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := byName[tc.name]
			p := filepath.Join(dir, tc.name)
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if n.Type != tc.typ {
				t.Errorf("Type = %q, want %q", n.Type, tc.typ)
			}
			if n.Mode != tc.mode {
				t.Errorf("Mode = %v, want %v", n.Mode, tc.mode)
			}
			if n.Mode&^(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
				t.Errorf("Mode %v carries type bits", n.Mode)
			}
			if n.Size != tc.size {
				t.Errorf("Size = %d, want %d", n.Size, tc.size)
			}
			if n.LinkTarget != tc.target {
				t.Errorf("LinkTarget = %q, want %q", n.LinkTarget, tc.target)
			}
			if !n.ModTime.Equal(fi.ModTime()) {
				t.Errorf("ModTime = %v, want %v", n.ModTime, fi.ModTime())
			}
			if want := statCtime(st); !n.ChangeTime.Equal(want) || n.ChangeTime.IsZero() {
				t.Errorf("ChangeTime = %v, want %v", n.ChangeTime, want)
			}
			if n.Inode != st.Ino || n.Inode == 0 {
				t.Errorf("Inode = %d, want %d", n.Inode, st.Ino)
			}
			if n.DeviceID != uint64(st.Dev) {
				t.Errorf("DeviceID = %d, want %d", n.DeviceID, st.Dev)
			}
			if n.UID != st.Uid || n.GID != st.Gid {
				t.Errorf("UID/GID = %d/%d, want %d/%d", n.UID, n.GID, st.Uid, st.Gid)
			}
			if n.Content != nil || n.Subtree != nil {
				t.Errorf("ReadDir filled content %v / subtree %v", n.Content, n.Subtree)
			}
		})
	}
	t.Run("mtime keeps nanoseconds", func(t *testing.T) {
		want := time.Date(2021, 2, 3, 4, 5, 6, 789_000_000, time.UTC)
		if got := byName["b.txt"].ModTime; !got.Equal(want) {
			t.Errorf("b.txt mtime = %v, want %v", got, want)
		}
	})
	t.Run("subdirectory", func(t *testing.T) {
		sub, err := s.ReadDir(ctx, "d")
		if err != nil {
			t.Fatal(err)
		}
		if len(sub) != 1 || sub[0].Name != "inner" || sub[0].Size != 1 || sub[0].Mode != 0o600 {
			t.Errorf("ReadDir(d) = %+v", sub)
		}
	})
	t.Run("empty directory", func(t *testing.T) {
		if err := os.Mkdir(filepath.Join(dir, "d", "e"), 0o755); err != nil {
			t.Fatal(err)
		}
		sub, err := s.ReadDir(ctx, "d/e")
		if err != nil || len(sub) != 0 {
			t.Errorf("ReadDir(d/e) = %v, %v", sub, err)
		}
	})
	t.Run("special bits kept", func(t *testing.T) {
		p := filepath.Join(dir, "d", "suid")
		writeFile(t, p, "", 0o755)
		if err := os.Chmod(p, 0o755|fs.ModeSetuid|fs.ModeSticky); err != nil {
			t.Fatal(err)
		}
		sub, err := s.ReadDir(ctx, "d")
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range sub {
			if n.Name == "suid" && n.Mode != 0o755|fs.ModeSetuid|fs.ModeSticky {
				t.Errorf("suid mode = %v", n.Mode)
			}
		}
	})
	t.Run("errors", func(t *testing.T) {
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		for _, tc := range []struct {
			name string
			ctx  context.Context
			rel  string
			want error
		}{
			{"missing directory", ctx, "missing", fs.ErrNotExist},
			{"a file", ctx, "b.txt", syscall.ENOTDIR},
			{"cancelled context", cancelled, "", context.Canceled},
		} {
			t.Run(tc.name, func(t *testing.T) {
				nodes, err := s.ReadDir(tc.ctx, tc.rel)
				if !errors.Is(err, tc.want) {
					t.Errorf("ReadDir(%q) = %v, %v; want %v", tc.rel, nodes, err, tc.want)
				}
			})
		}
	})
}

func TestStat(t *testing.T) {
	dir := sourceDir(t)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rel      string
		wantName string
		typ      snapshot.NodeType
	}{
		{"b.txt", "b.txt", snapshot.File},
		{"d/inner", "inner", snapshot.File},
		{"d", "d", snapshot.Dir},
		{"a-link", "a-link", snapshot.Symlink},
		// The doc comment: `"" is the root itself, named ""`.
		{"", "", snapshot.Dir},
	} {
		t.Run(cmp.Or(tc.rel, "root"), func(t *testing.T) {
			n, err := s.Stat(t.Context(), tc.rel)
			if err != nil {
				t.Fatal(err)
			}
			if n.Name != tc.wantName || n.Type != tc.typ {
				t.Errorf("Stat(%q) = name %q type %q, want %q %q", tc.rel, n.Name, n.Type, tc.wantName, tc.typ)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		if _, err := s.Stat(t.Context(), "nope"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat(nope) = %v", err)
		}
	})
}

func TestSourceOpen(t *testing.T) {
	dir := sourceDir(t)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	t.Run("regular file", func(t *testing.T) {
		rc, err := s.Open(ctx, "b.txt")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil || string(b) != "hello" {
			t.Errorf("read %q, %v", b, err)
		}
	})
	t.Run("nested file", func(t *testing.T) {
		rc, err := s.Open(ctx, "d/inner")
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
	})
	t.Run("symlink is not followed", func(t *testing.T) {
		rc, err := s.Open(ctx, "a-link")
		if err == nil {
			rc.Close()
			t.Fatal("Open followed a symlink")
		}
		if !errors.Is(err, syscall.ELOOP) {
			t.Errorf("Open(a-link) = %v, want ELOOP", err)
		}
	})
	t.Run("file replaced by a symlink after listing", func(t *testing.T) {
		secret := filepath.Join(t.TempDir(), "secret")
		writeFile(t, secret, "do not back me up", 0o600)
		nodes, err := s.ReadDir(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		var listed bool
		for _, n := range nodes {
			listed = listed || (n.Name == "Z" && n.Type == snapshot.File)
		}
		if !listed {
			t.Fatal("Z not listed as a file")
		}
		// Between listing and reading, Z becomes a symlink elsewhere.
		if err := os.Remove(filepath.Join(dir, "Z")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(secret, filepath.Join(dir, "Z")); err != nil {
			t.Fatal(err)
		}
		rc, err := s.Open(ctx, "Z")
		if err == nil {
			b, _ := io.ReadAll(rc)
			rc.Close()
			t.Fatalf("Open followed the new symlink and read %q", b)
		}
		if !errors.Is(err, syscall.ELOOP) {
			t.Errorf("Open = %v, want ELOOP", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := s.Open(ctx, "missing"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(missing) = %v", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		c, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Open(c, "b.txt"); !errors.Is(err, context.Canceled) {
			t.Errorf("Open with cancelled context = %v", err)
		}
	})
}
