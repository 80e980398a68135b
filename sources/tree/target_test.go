package tree

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
)

// listAll returns every path under dir, relative and sorted.
func listAll(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func openTarget(t *testing.T) (*Target, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "target")
	tg, err := OpenTarget(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg, dir
}

func TestOpenTarget(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	writeFile(t, file, "x", 0o644)
	existing := filepath.Join(base, "existing")
	if err := os.Mkdir(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		dir     string
		wantErr error
	}{
		{"existing directory", existing, nil},
		{"missing with missing parents", filepath.Join(base, "a", "b", "c"), nil},
		{"regular file", file, ErrTargetNotDir},
		{"below a regular file", filepath.Join(file, "sub"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg, err := OpenTarget(tc.dir)
			if tc.name == "below a regular file" {
				// Neither "not a directory" nor success: stat fails with ENOTDIR.
				if err == nil {
					tg.Close()
					t.Fatal("OpenTarget below a regular file succeeded")
				}
				return
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("OpenTarget(%s) = %v, want %v", tc.dir, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			if tg.Dir() != tc.dir {
				t.Errorf("Dir() = %q, want %q", tg.Dir(), tc.dir)
			}
			if fi, err := os.Stat(tc.dir); err != nil || !fi.IsDir() {
				t.Errorf("target not a directory after OpenTarget: %v", err)
			}
		})
	}
	t.Run("regular file left untouched", func(t *testing.T) {
		if b, err := os.ReadFile(file); err != nil || string(b) != "x" {
			t.Errorf("file now %q, %v", b, err)
		}
	})
}

func TestTargetWrites(t *testing.T) {
	tg, dir := openTarget(t)
	mt := time.Date(2020, 1, 2, 3, 4, 5, 600_000_000, time.UTC)

	t.Run("Mkdir", func(t *testing.T) {
		for _, rel := range []string{"a", "a/b", "a/b/c"} {
			if err := tg.Mkdir(rel); err != nil {
				t.Fatalf("Mkdir(%q): %v", rel, err)
			}
		}
		if err := tg.Mkdir("a/b"); err != nil {
			t.Errorf("Mkdir of an existing directory: %v", err)
		}
		if err := tg.Mkdir(""); err != nil {
			t.Errorf("Mkdir of the root: %v", err)
		}
		if err := tg.Mkdir("x/y"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Mkdir without parent = %v, want ErrNotExist", err)
		}
	})
	t.Run("Create", func(t *testing.T) {
		f, err := tg.Create("a/b/file")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString("content"); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "a", "b", "file")); err != nil || string(b) != "content" {
			t.Errorf("file holds %q, %v", b, err)
		}
		// Create truncates.
		f, err = tg.Create("a/b/file")
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("new")
		f.Close()
		if b, _ := os.ReadFile(filepath.Join(dir, "a", "b", "file")); string(b) != "new" {
			t.Errorf("after second Create: %q", b)
		}
		fi, _ := os.Stat(filepath.Join(dir, "a", "b", "file"))
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("new file mode %v is readable by others before SetMetadata", fi.Mode())
		}
	})
	t.Run("Mkdir over a file fails", func(t *testing.T) {
		if err := tg.Mkdir("a/b/file"); err == nil {
			t.Fatal("Mkdir over a regular file succeeded")
		}
	})
	t.Run("Open", func(t *testing.T) {
		f, err := tg.Open("a/b/file")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if string(b) != "new" {
			t.Errorf("Open read %q", b)
		}
		if _, err := tg.Open("a/missing"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(missing) = %v", err)
		}
	})
	t.Run("Symlink", func(t *testing.T) {
		for _, tc := range []struct{ rel, target string }{
			{"a/rel", "b/file"},
			{"a/abs", "/etc/passwd"},
			{"a/dangling", "../../nowhere"},
		} {
			if err := tg.Symlink(tc.rel, tc.target); err != nil {
				t.Fatalf("Symlink(%q, %q): %v", tc.rel, tc.target, err)
			}
			got, err := os.Readlink(filepath.Join(dir, filepath.FromSlash(tc.rel)))
			if err != nil || got != tc.target {
				t.Errorf("%s -> %q, %v; want %q", tc.rel, got, err, tc.target)
			}
		}
		// Replacing an existing symlink, file or directory.
		for _, rel := range []string{"a/rel", "a/b/file", "a/b/c"} {
			if err := tg.Symlink(rel, "replaced"); err != nil {
				t.Fatalf("Symlink over %s: %v", rel, err)
			}
			if got, _ := os.Readlink(filepath.Join(dir, filepath.FromSlash(rel))); got != "replaced" {
				t.Errorf("%s -> %q after replacing", rel, got)
			}
		}
	})
	t.Run("SetMetadata", func(t *testing.T) {
		f, err := tg.Create("meta")
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		for _, tc := range []struct {
			rel  string
			node snapshot.Node
		}{
			{"meta", snapshot.Node{Type: snapshot.File, Mode: 0o640, ModTime: mt}},
			{"a", snapshot.Node{Type: snapshot.Dir, Mode: 0o751, ModTime: mt.Add(time.Hour)}},
			{"meta", snapshot.Node{Type: snapshot.File, Mode: 0o755 | fs.ModeSetuid, ModTime: mt}},
		} {
			if err := tg.SetMetadata(tc.rel, &tc.node); err != nil {
				t.Fatalf("SetMetadata(%s): %v", tc.rel, err)
			}
			fi, err := os.Lstat(filepath.Join(dir, tc.rel))
			if err != nil {
				t.Fatal(err)
			}
			wantMode := tc.node.Mode
			if got := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky); got != wantMode {
				t.Errorf("%s mode = %v, want %v", tc.rel, got, wantMode)
			}
			if !fi.ModTime().Equal(tc.node.ModTime) {
				t.Errorf("%s mtime = %v, want %v", tc.rel, fi.ModTime(), tc.node.ModTime)
			}
		}
		if err := tg.SetMetadata("missing", &snapshot.Node{Type: snapshot.File, Mode: 0o600}); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("SetMetadata(missing) = %v", err)
		}
	})
	t.Run("SetFileMetadata", func(t *testing.T) {
		for _, node := range []snapshot.Node{
			{Type: snapshot.File, Mode: 0o640, ModTime: mt},
			{Type: snapshot.File, Mode: 0o755 | fs.ModeSetuid, ModTime: mt.Add(time.Nanosecond)},
			{Type: snapshot.File, Mode: 0o400, ModTime: mt.Add(-time.Hour)},
		} {
			f, err := tg.Create("meta-fd")
			if err != nil {
				t.Fatal(err)
			}
			if err := tg.SetFileMetadata("meta-fd", f, &node); err != nil {
				t.Fatalf("SetFileMetadata: %v", err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(filepath.Join(dir, "meta-fd"))
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky); got != node.Mode {
				t.Errorf("mode = %v, want %v", got, node.Mode)
			}
			if !fi.ModTime().Equal(node.ModTime) {
				t.Errorf("mtime = %v, want %v", fi.ModTime(), node.ModTime)
			}
		}
	})
	t.Run("Create over what is there", func(t *testing.T) {
		// The exclusive create fails on each; Create then replaces a
		// symlink (never following it), a FIFO or an empty directory and
		// truncates a file.
		outside := filepath.Join(t.TempDir(), "outside")
		if err := os.WriteFile(outside, []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
		for name, mk := range map[string]func(p string) error{
			"symlink": func(p string) error { return os.Symlink(outside, p) },
			"fifo":    func(p string) error { return syscall.Mkfifo(p, 0o644) },
			"dir":     func(p string) error { return os.Mkdir(p, 0o755) },
			"file":    func(p string) error { return os.WriteFile(p, []byte("old content"), 0o644) },
		} {
			p := filepath.Join(dir, "over-"+name)
			if err := mk(p); err != nil {
				t.Fatal(err)
			}
			f, err := tg.Create("over-" + name)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			f.WriteString("new")
			f.Close()
			fi, err := os.Lstat(p)
			if err != nil || !fi.Mode().IsRegular() {
				t.Errorf("%s: %v, %v", name, fi, err)
			}
			if b, _ := os.ReadFile(p); string(b) != "new" {
				t.Errorf("%s holds %q", name, b)
			}
		}
		if b, _ := os.ReadFile(outside); string(b) != "keep" {
			t.Errorf("the symlink's target outside was written: %q", b)
		}
	})
	t.Run("bad paths", func(t *testing.T) {
		// Absolute and unclean paths are refused by the Target itself with
		// ErrBadName; ".." is clean and relative, so it reaches os.Root,
		// which refuses it because it escapes the root.
		for _, tc := range []struct {
			rel     string
			badName bool
		}{
			{"/abs", true}, {"a/../b", true}, {"a//b", true}, {"./a", true}, {"a/", true}, {"a/.", true},
			{"..", false}, {"../x", false}, {"../target/a", false},
		} {
			t.Run(tc.rel, func(t *testing.T) {
				check := func(op string, err error) {
					t.Helper()
					if err == nil {
						t.Errorf("%s(%q) succeeded", op, tc.rel)
					} else if tc.badName && !errors.Is(err, snapshot.ErrBadName) {
						t.Errorf("%s(%q) = %v, want ErrBadName", op, tc.rel, err)
					}
				}
				check("Mkdir", tg.Mkdir(tc.rel))
				f, err := tg.Create(tc.rel)
				if f != nil {
					f.Close()
				}
				check("Create", err)
				f, err = tg.Open(tc.rel)
				if f != nil {
					f.Close()
				}
				check("Open", err)
				check("Symlink", tg.Symlink(tc.rel, "x"))
				check("SetMetadata", tg.SetMetadata(tc.rel, &snapshot.Node{Type: snapshot.File}))
			})
		}
		if got := listAll(t, filepath.Dir(dir)); !slices.Equal(got[:1], []string{"target"}) || slices.Contains(got, "x") {
			t.Errorf("outside the target: %q", got)
		}
	})
}

// A symlink in the target — restored earlier from the same snapshot, or
// planted — must never let a later write land outside the target.
func TestTargetConfinedThroughSymlinks(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(outside, "victim")
	writeFile(t, victim, "original", 0o644)
	victimTime := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(victim, victimTime, victimTime); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "target")
	tg, err := OpenTarget(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()

	links := []struct{ name, target string }{
		{"evil", outside},          // absolute, to a directory outside
		{"evil-rel", "../outside"}, // relative, climbing out
		{"evil-file", victim},      // to a file outside
		{"evil-rel-file", "../outside/victim"},
	}
	for _, l := range links {
		if err := tg.Symlink(l.name, l.target); err != nil {
			t.Fatalf("Symlink(%s): %v", l.name, err)
		}
	}
	checkOutside := func(t *testing.T) {
		t.Helper()
		if got := listAll(t, outside); !slices.Equal(got, []string{"victim"}) {
			t.Errorf("outside now holds %q", got)
		}
		b, err := os.ReadFile(victim)
		if err != nil || string(b) != "original" {
			t.Errorf("victim now %q, %v", b, err)
		}
		fi, err := os.Stat(victim)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 || !fi.ModTime().Equal(victimTime) {
			t.Errorf("victim metadata changed: %v %v", fi.Mode(), fi.ModTime())
		}
	}

	for _, l := range []string{"evil", "evil-rel"} {
		t.Run("through "+l, func(t *testing.T) {
			for _, tc := range []struct {
				op string
				do func() error
			}{
				{"Create", func() error {
					f, err := tg.Create(l + "/x")
					if f != nil {
						f.WriteString("escaped")
						f.Close()
					}
					return err
				}},
				{"Create existing", func() error {
					f, err := tg.Create(l + "/victim")
					if f != nil {
						f.WriteString("escaped")
						f.Close()
					}
					return err
				}},
				{"Mkdir", func() error { return tg.Mkdir(l + "/sub") }},
				{"Symlink", func() error { return tg.Symlink(l+"/link", "/") }},
				{"SetMetadata", func() error {
					return tg.SetMetadata(l+"/victim", &snapshot.Node{Type: snapshot.File, Mode: 0o777, ModTime: time.Now()})
				}},
				{"Open", func() error {
					f, err := tg.Open(l + "/victim")
					if f != nil {
						f.Close()
					}
					return err
				}},
			} {
				t.Run(tc.op, func(t *testing.T) {
					if err := tc.do(); err == nil {
						t.Errorf("%s through %s succeeded", tc.op, l)
					}
					checkOutside(t)
				})
			}
		})
	}
	for _, l := range []string{"evil-file", "evil-rel-file"} {
		t.Run("SetMetadata on "+l, func(t *testing.T) {
			// The node says "file", the target holds a symlink to a file
			// outside: chmod/chtimes must not follow it out.
			if err := tg.SetMetadata(l, &snapshot.Node{Type: snapshot.File, Mode: 0o777, ModTime: time.Now()}); err == nil {
				t.Errorf("SetMetadata followed %s outside the target", l)
			}
			checkOutside(t)
		})
		t.Run("SetMetadata on "+l+" as a symlink node", func(t *testing.T) {
			if err := tg.SetMetadata(l, &snapshot.Node{Type: snapshot.Symlink, Mode: 0o777, ModTime: time.Now()}); err != nil {
				t.Errorf("SetMetadata of a symlink node: %v", err)
			}
			checkOutside(t)
		})
	}
	t.Run("Create replaces a symlink instead of following it", func(t *testing.T) {
		f, err := tg.Create("evil-file")
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("inside")
		f.Close()
		fi, err := os.Lstat(filepath.Join(dir, "evil-file"))
		if err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("evil-file is %v, %v; want a regular file", fi.Mode(), err)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "evil-file")); string(b) != "inside" {
			t.Errorf("evil-file holds %q", b)
		}
		checkOutside(t)
	})
	t.Run("Mkdir over a symlink to a directory fails", func(t *testing.T) {
		if err := tg.Mkdir("evil"); err == nil {
			t.Error("Mkdir accepted a symlink as an existing directory")
		}
		checkOutside(t)
	})
	t.Run("Symlink replaces a symlink, not its target", func(t *testing.T) {
		if err := tg.Symlink("evil", "elsewhere"); err != nil {
			t.Fatal(err)
		}
		checkOutside(t)
		if _, err := os.Stat(outside); err != nil {
			t.Errorf("outside directory removed: %v", err)
		}
	})
	t.Run("symlinks inside the target may be followed", func(t *testing.T) {
		// os.Root resolves links that stay within the root; the restorer never
		// relies on it (Mkdir refuses a symlink) but Create does follow one.
		if err := tg.Mkdir("real"); err != nil {
			t.Fatal(err)
		}
		if err := tg.Symlink("inner", "real"); err != nil {
			t.Fatal(err)
		}
		f, err := tg.Create("inner/x")
		if err != nil {
			t.Fatalf("Create through an in-target symlink: %v", err)
		}
		f.Close()
		if _, err := os.Lstat(filepath.Join(dir, "real", "x")); err != nil {
			t.Errorf("real/x: %v", err)
		}
	})
	t.Run("nothing outside base but outside/ and target/", func(t *testing.T) {
		if got, _ := os.ReadDir(base); len(got) != 2 {
			var names []string
			for _, e := range got {
				names = append(names, e.Name())
			}
			t.Errorf("base holds %q", names)
		}
	})
}
