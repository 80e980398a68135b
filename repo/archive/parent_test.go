package archive_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/archive"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/sources/tree"
)

// writeParentTree lays out a small tree three levels deep: d0..d2, each
// with s0..s1, each with four files and a symlink, a hard link pair, and
// a directory of regular files only.
func writeParentTree(t *testing.T, dir string) {
	t.Helper()
	for i := range 3 {
		for j := range 2 {
			sub := filepath.Join(dir, fmt.Sprintf("d%d", i), fmt.Sprintf("s%d", j))
			if err := os.MkdirAll(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			for k := range 4 {
				body := fmt.Sprintf("file %d/%d/%d\n", i, j, k)
				if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%d", k)), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink("f0", filepath.Join(sub, "link")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Link(filepath.Join(dir, "d0", "s0", "f0"), filepath.Join(dir, "d2", "s1", "hard")); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain") // regular files only
	if err := os.Mkdir(plain, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"p0", "p1", "top"} {
		p := filepath.Join(plain, name)
		if name == "top" {
			p = filepath.Join(dir, name)
		}
		if err := os.WriteFile(p, []byte(name+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestParentShortcutMatchesFullBackup: whatever changed since the parent
// snapshot, the backup that uses the parent (unchanged files and
// directories taken from it) writes exactly the trees a backup without a
// parent writes: the same root tree ID, so the same bytes all the way
// down.
func TestParentShortcutMatchesFullBackup(t *testing.T) {
	at := func(dir string, p ...string) string { return filepath.Join(append([]string{dir}, p...)...) }
	for _, tc := range []struct {
		name   string
		change func(dir string, fsys *remountFS) error
	}{
		{"nothing", func(string, *remountFS) error { return nil }},
		{"mtime deep inside", func(dir string, _ *remountFS) error {
			return os.Chtimes(at(dir, "d1", "s1", "f2"), time.Time{}, time.Unix(1_600_000_000, 5))
		}},
		{"file added", func(dir string, _ *remountFS) error {
			return os.WriteFile(at(dir, "d2", "s0", "new"), []byte("new\n"), 0o644)
		}},
		{"file removed", func(dir string, _ *remountFS) error { return os.Remove(at(dir, "d0", "s1", "f3")) }},
		{"directory mode", func(dir string, _ *remountFS) error { return os.Chmod(at(dir, "d1", "s0"), 0o700) }},
		{"root directory entry mode", func(dir string, _ *remountFS) error { return os.Chmod(at(dir, "d2"), 0o750) }},
		{"directory mtime only", func(dir string, _ *remountFS) error {
			return os.Chtimes(at(dir, "d0"), time.Time{}, time.Unix(1_500_000_000, 0))
		}},
		{"same size rewrite, mtime kept", func(dir string, _ *remountFS) error {
			p := at(dir, "d2", "s1", "f1")
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(p, []byte("FILE 2/1/1\n"), 0o644); err != nil {
				return err
			}
			return os.Chtimes(p, time.Time{}, fi.ModTime())
		}},
		{"symlink retargeted", func(dir string, _ *remountFS) error {
			p := at(dir, "d0", "s0", "link")
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Symlink("f1", p)
		}},
		{"file renamed", func(dir string, _ *remountFS) error {
			return os.Rename(at(dir, "d1", "s1", "f0"), at(dir, "d1", "s1", "g0"))
		}},
		{"hard link's first path removed", func(dir string, _ *remountFS) error {
			return os.Remove(at(dir, "d0", "s0", "f0"))
		}},
		{"directory emptied", func(dir string, _ *remountFS) error {
			for _, n := range []string{"f0", "f1", "f2", "f3", "link"} {
				if err := os.Remove(at(dir, "d1", "s0", n)); err != nil {
					return err
				}
			}
			return nil
		}},
		{"device number changed", func(_ string, fsys *remountFS) error { fsys.dev = 1; return nil }},
		{"directory replaced by a file", func(dir string, _ *remountFS) error {
			if err := os.RemoveAll(at(dir, "d2", "s0")); err != nil {
				return err
			}
			return os.WriteFile(at(dir, "d2", "s0"), []byte("was a directory\n"), 0o644)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeParentTree(t, dir)
			r, err := repo.Init(t.Context(), memstore.New(), "pw", repo.InitOptions{KDF: repo.KDFParams{N: 1024, R: 8, P: 1}})
			if err != nil {
				t.Fatal(err)
			}
			src, err := tree.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			fsys := &remountFS{Source: src}
			backup := func(noParent bool) chunk.ID {
				t.Helper()
				res, err := archive.Backup(t.Context(), r, []archive.ComponentSource{{Name: "files", Source: dir, FS: fsys}},
					archive.Options{Host: "h", NoParent: noParent})
				if err != nil {
					t.Fatal(err)
				}
				if len(res.FileErrors) != 0 {
					t.Fatalf("file errors: %v", res.FileErrors)
				}
				return res.Snapshot.Component("files").Tree
			}
			first := backup(false)
			if err := tc.change(dir, fsys); err != nil {
				t.Fatal(err)
			}
			withParent := backup(false)
			full := backup(true)
			if withParent != full {
				t.Errorf("with a parent the root is %s, without %s; first differing path: %s",
					withParent.Short(), full.Short(), firstDifference(t.Context(), t, r, "", withParent, full))
			}
			if tc.name == "nothing" && withParent != first {
				t.Errorf("nothing changed, yet the root moved from %s to %s", first.Short(), withParent.Short())
			}
			if tc.name != "nothing" && withParent == first {
				t.Errorf("the change did not show in the snapshot (root %s both times)", first.Short())
			}
		})
	}
}

// remountFS adds dev to the device number of every node: what a file
// system mounted anew under another number looks like. unchanged files
// keep their content, but their nodes change.
type remountFS struct {
	*tree.Source
	dev uint64
}

func (f *remountFS) ReadDir(ctx context.Context, dir string) ([]snapshot.Node, error) {
	nodes, err := f.Source.ReadDir(ctx, dir)
	for i := range nodes {
		nodes[i].DeviceID += f.dev
	}
	return nodes, err
}

// firstDifference names the first node where the trees a and b differ,
// for a readable failure.
func firstDifference(ctx context.Context, t *testing.T, r *repo.Repository, p string, a, b chunk.ID) string {
	ta, err := r.LoadTree(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := r.LoadTree(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range max(len(ta.Nodes), len(tb.Nodes)) {
		if i >= len(ta.Nodes) || i >= len(tb.Nodes) || ta.Nodes[i].Name != tb.Nodes[i].Name {
			return fmt.Sprintf("%s: node lists differ at %d", p, i)
		}
		na, nb := ta.Nodes[i], tb.Nodes[i]
		if na.Type == snapshot.Dir && nb.Type == snapshot.Dir && *na.Subtree != *nb.Subtree {
			return firstDifference(ctx, t, r, p+"/"+na.Name, *na.Subtree, *nb.Subtree)
		}
		ea, _ := (&snapshot.Tree{Nodes: []snapshot.Node{na}}).Encode()
		eb, _ := (&snapshot.Tree{Nodes: []snapshot.Node{nb}}).Encode()
		if string(ea) != string(eb) {
			return fmt.Sprintf("%s/%s:\n%s\n%s", p, na.Name, ea, eb)
		}
	}
	return p + ": same nodes"
}
