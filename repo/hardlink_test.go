package repo_test

import (
	"errors"
	"os"
	"path/filepath"
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
