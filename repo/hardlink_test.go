package repo_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/repo/archive"
	"github.com/cairn-backup/cairn/repo/restore"
	"github.com/cairn-backup/cairn/sources/tree"
)

// failingCreate refuses to create one path, as a full disk or a lost blob
// would leave that file unrestored.
type failingCreate struct {
	*tree.Target
	path string
}

func (f *failingCreate) Create(rel string) (*os.File, error) {
	if rel == f.path {
		return nil, errors.New("injected: cannot create")
	}
	return f.Target.Create(rel)
}

// TestHardLinkFirstFileLost: when the file a hard link points at cannot be
// restored, the link gets a copy of its own content (every hard-linked node
// carries it) instead of being lost too; when it can, the two share an
// inode.
func TestHardLinkFirstFileLost(t *testing.T) {
	src := t.TempDir()
	data := randomData(7, 100<<10)
	os.MkdirAll(filepath.Join(src, "a"), 0o755)
	os.MkdirAll(filepath.Join(src, "b"), 0o755)
	if err := os.WriteFile(filepath.Join(src, "a", "first"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, "a", "first"), filepath.Join(src, "b", "second")); err != nil {
		t.Fatal(err)
	}
	r := initRepo(t, memstore.New())
	res, err := backup(t, r, src, nil, archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		fail   string
		linked bool
	}{
		{"both restored: linked", "", true},
		{"first lost: a copy", "files/a/first", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tg, err := tree.OpenTarget(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			_, err = restore.Restore(t.Context(), r, res.Snapshot, &failingCreate{Target: tg, path: tc.fail}, restore.Options{})
			if (err != nil) != (tc.fail != "") {
				t.Fatalf("restore: %v", err)
			}
			got, err := os.ReadFile(filepath.Join(dir, "files", "b", "second"))
			if err != nil || string(got) != string(data) {
				t.Fatalf("b/second: %d bytes, %v", len(got), err)
			}
			fi, _ := os.Stat(filepath.Join(dir, "files", "b", "second"))
			if n := fi.Sys().(*syscall.Stat_t).Nlink; (n == 2) != tc.linked {
				t.Errorf("b/second has %d links", n)
			}
		})
	}
}

// orderTarget records, for each file created, how many directories had
// been made before it, and refuses to create the file fail.
type orderTarget struct {
	*tree.Target
	fail    string
	dirs    int
	created []int // dirs made before each Create
}

func (o *orderTarget) Mkdir(rel string) error {
	o.dirs++
	return o.Target.Mkdir(rel)
}

func (o *orderTarget) Create(rel string) (*os.File, error) {
	o.created = append(o.created, o.dirs)
	if rel == o.fail {
		return nil, errors.New("injected: cannot create")
	}
	return o.Target.Create(rel)
}

// TestRestoreBatches restores a tree in batches of a few files
// (Options.PlanBytes): file contents are written while the walk still has
// directories to make, which is what bounds a restore's memory, and the
// result is the same as in one batch: contents, hard links whose first
// file was written batches earlier, a copy where that first file was lost,
// and verify.
func TestRestoreBatches(t *testing.T) {
	src := t.TempDir()
	want := map[string][]byte{}
	for d := range 6 {
		for f := range 8 {
			p := filepath.Join(src, fmt.Sprintf("d%d", d), fmt.Sprintf("f%d", f))
			data := randomData(uint64(d*8+f), 1000+d*8+f)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			want[fmt.Sprintf("d%d/f%d", d, f)] = data
		}
	}
	// Links in the last directory to files of the first two, walked
	// several batches earlier.
	for _, first := range []string{"d0/f1", "d1/f2"} {
		link := "d5/link-" + strings.ReplaceAll(first, "/", "-")
		if err := os.Link(filepath.Join(src, first), filepath.Join(src, link)); err != nil {
			t.Fatal(err)
		}
		want[link] = want[first]
	}
	r := initRepo(t, memstore.New())
	res, err := backup(t, r, src, nil, archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		fail   string // a file that cannot be created
		linked map[string]bool
	}{
		{"all restored", "", map[string]bool{"d5/link-d0-f1": true, "d5/link-d1-f2": true}},
		{"a first file lost", "files/d0/f1", map[string]bool{"d5/link-d0-f1": false, "d5/link-d1-f2": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tg, err := tree.OpenTarget(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			ot := &orderTarget{Target: tg, fail: tc.fail}
			// About three small files a batch.
			opts := restore.Options{Verify: true, PlanBytes: 2000}
			got, err := restore.Restore(t.Context(), r, res.Snapshot, ot, opts)
			if (err != nil) != (tc.fail != "") {
				t.Fatalf("restore: %v", err)
			}
			if tc.fail != "" && (len(got.Errors) != 1 || got.Errors[0].Path != tc.fail) {
				t.Fatalf("errors %v, want only %s", got.Errors, tc.fail)
			}
			if len(ot.created) == 0 || ot.created[0] >= ot.dirs {
				t.Errorf("the first file was created after all %d directories: not written in batches", ot.dirs)
			}
			for name, data := range want {
				p := filepath.Join(dir, "files", name)
				b, err := os.ReadFile(p)
				if "files/"+name == tc.fail {
					if !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("%s: lost, yet there (%v)", name, err)
					}
					continue
				}
				if err != nil || !bytes.Equal(b, data) {
					t.Errorf("%s: %d bytes, %v", name, len(b), err)
				}
			}
			for link, linked := range tc.linked {
				fi, err := os.Stat(filepath.Join(dir, "files", link))
				if err != nil {
					t.Fatal(err)
				}
				if n := fi.Sys().(*syscall.Stat_t).Nlink; (n == 2) != linked {
					t.Errorf("%s has %d links, want linked %v", link, n, linked)
				}
			}
		})
	}
}
