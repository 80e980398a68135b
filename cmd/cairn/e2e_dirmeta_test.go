package main

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/repo/restore"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/sources/tree"
)

// recordingTarget is a tree.Target that records the order in which
// directories get their metadata.
type recordingTarget struct {
	*tree.Target
	mu   sync.Mutex
	dirs []string
}

func (rt *recordingTarget) SetMetadata(rel string, n *snapshot.Node) error {
	if n.Type == snapshot.Dir {
		rt.mu.Lock()
		rt.dirs = append(rt.dirs, rel)
		rt.mu.Unlock()
	}
	return rt.Target.SetMetadata(rel, n)
}

// TestRestoreDirMetadataOrder: restore sets directory metadata last,
// deepest first (restorer.go). Parent first breaks restoring, as a normal
// user, a directory whose mode lacks the owner's search bit (0600, 0400):
// once the parent is chmodded, its subdirectories cannot be reached. Root
// ignores permissions, so the order is checked directly.
func TestRestoreDirMetadataOrder(t *testing.T) {
	repoDir := testEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	write(t, filepath.Join(src, "top", "mid", "leaf", "f.txt"), []byte("f"), 0o644)
	write(t, filepath.Join(src, "other", "g.txt"), []byte("g"), 0o644)
	out := decodeJSON[backupOut](t, mustCairn(t, nil, "backup", "--json", "--tree", "files="+src))

	r := openRepoAPI(t, repoDir)
	ctx := context.Background()
	sn, err := r.FindSnapshot(ctx, out.ID)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := tree.OpenTarget(filepath.Join(t.TempDir(), "restore"))
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	rt := &recordingTarget{Target: tg}
	if _, err := restore.Restore(ctx, r, sn.Snapshot, rt, restore.Options{}); err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, d := range rt.dirs {
		pos[d] = i
	}
	for _, d := range []string{"files", "files/top", "files/top/mid", "files/top/mid/leaf", "files/other"} {
		if _, ok := pos[d]; !ok {
			t.Fatalf("no metadata set on %s (order %q)", d, rt.dirs)
		}
	}
	for i, child := range rt.dirs {
		if parent := path.Dir(child); parent != "." && pos[parent] < i {
			t.Errorf("%s got its metadata after its parent %s (order %q)", child, parent, rt.dirs)
		}
	}
}

// TestRestoreUnsearchableDir is the user-visible effect of the order above:
// a snapshot holding a directory of mode 0600 (taken by root, say) with a
// subdirectory restores with errors for a normal user. Root bypasses
// permission checks, so this case needs a normal user;
// TestRestoreDirMetadataOrder checks the cause as root.
func TestRestoreUnsearchableDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions; TestRestoreDirMetadataOrder checks the cause")
	}
	repoDir := testEnv(t)
	c := crafter{t: t, r: openRepoAPI(t, repoDir)}
	data := c.save(pack.DataBlob, []byte("f"))
	sub := c.tree(fileNode("f.txt", data, 1))
	locked := c.tree(dirNode("sub", sub))
	root := c.tree(`{"name":"locked","type":"dir","mode":384,"mtime":"2024-01-01T00:00:00Z","subtree":"` + locked.String() + `"}`)
	id := c.snapshot(snapshot.Component{Name: "files", Kind: snapshot.KindTree, Tree: root})
	target := filepath.Join(t.TempDir(), "restore")
	t.Cleanup(func() { os.Chmod(filepath.Join(target, "files", "locked"), 0o700) })
	r := cairn(t, nil, "restore", "--snapshot", id, "--target", target)
	if r.code != 0 {
		t.Errorf("restore of a 0600 directory with a subdirectory: %v", r)
	}
	fi, err := os.Lstat(filepath.Join(target, "files", "locked"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("files/locked: %v %v, want mode 0600", fi, err)
	}
}
