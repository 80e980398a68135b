package repo_test

// The restore reads tree blobs a pack at a time (repo.PrefetchTrees), not
// one Get per directory.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/index"
	"github.com/cairn-backup/cairn/internal/faulty"
	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/archive"
	"github.com/cairn-backup/cairn/repo/restore"
	"github.com/cairn-backup/cairn/snapshot"
)

// treeFixture is a snapshot of a tree four levels deep, 4×4×4
// directories (85 with the root), a small file in each.
type treeFixture struct {
	mem   *faulty.Store
	count *countRanges
	r     *repo.Repository
	src   string
	snap  string
	dirs  map[string]index.Location // "files/PATH" → its tree blob
	files map[string][]chunk.ID
}

const treeLevels = 4

func newTreeFixture(t *testing.T) *treeFixture {
	t.Helper()
	fx := &treeFixture{mem: faulty.New(memstore.New()), src: t.TempDir()}
	fx.count = &countRanges{Store: fx.mem}
	fx.r = initRepo(t, fx.count)
	var mk func(dir string, depth int)
	mk = func(dir string, depth int) {
		if err := os.WriteFile(filepath.Join(dir, "f.txt"), textData(uint64(len(dir)), 300+len(dir)), 0o644); err != nil {
			t.Fatal(err)
		}
		if depth == treeLevels-1 {
			return
		}
		for i := range 4 {
			sub := filepath.Join(dir, fmt.Sprintf("d%d", i))
			if err := os.Mkdir(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			mk(sub, depth+1)
		}
	}
	mk(fx.src, 0)
	res, err := backup(t, fx.r, fx.src, nil, archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fx.snap = res.ID.String()
	ctx := t.Context()
	sn, err := fx.r.FindSnapshot(ctx, fx.snap)
	if err != nil {
		t.Fatal(err)
	}
	fx.dirs = map[string]index.Location{}
	fx.files = snapshotFiles(t, fx.r, sn, repo.WalkOptions{EveryPath: true}, func(dir string, loc index.Location) {
		fx.dirs[dir] = loc
	})
	if len(fx.dirs) != 85 {
		t.Fatalf("%d directories, want 85", len(fx.dirs))
	}
	fx.count.reset()
	return fx
}

// TestRestoreReadsTreesByPack: restoring 85 directories four levels deep
// takes one Get per tree pack (all its trees, small and close together,
// are read when the first level needs one) plus one per data pack, where
// it took one Get per directory; and the content is right.
func TestRestoreReadsTreesByPack(t *testing.T) {
	fx := newTreeFixture(t)
	treePacks, dataPacks := map[chunk.ID]bool{}, map[chunk.ID]bool{}
	for _, loc := range fx.dirs {
		treePacks[loc.Pack] = true
	}
	for _, content := range fx.files {
		for _, id := range content {
			loc, _ := fx.r.Index().Lookup(pack.DataBlob, id)
			dataPacks[loc.Pack] = true
		}
	}
	dir, rr, err := restoreSnapshot(t, fx.r, fx.snap, restore.Options{Verify: true})
	if err != nil {
		t.Fatalf("restore: %v %+v", err, rr)
	}
	sameTree(t, fx.src, filepath.Join(dir, "files"))
	gets := fx.count.reset()
	if most := len(treePacks) + len(dataPacks); len(gets) > most {
		t.Errorf("%d Gets, want at most %d (%d tree packs + %d data packs)", len(gets), most, len(treePacks), len(dataPacks))
	}
	t.Logf("%d Gets for %d directories in %d tree packs and %d files in %d data packs (before: %d for the trees alone)",
		len(gets), len(fx.dirs), len(treePacks), len(fx.files), len(dataPacks), len(fx.dirs))
}

// TestRestoreDamagedTree: a tree that does not decode, or whose pack is
// missing, fails exactly its directory (the prefetch leaves it to the
// walk, which reads it again and reports it); the rest is restored.
func TestRestoreDamagedTree(t *testing.T) {
	fx := newTreeFixture(t)
	bad := "files/d1/d2"
	loc := fx.dirs[bad]
	for d, l := range fx.dirs {
		if d != bad && l.Pack == loc.Pack && l.Blob.Offset+l.Blob.Length > loc.Blob.Offset && l.Blob.Offset < loc.Blob.Offset+loc.Blob.Length {
			t.Fatalf("%s overlaps %s", d, bad)
		}
	}
	name := repo.PackName(loc.Pack)
	fx.mem.FlipBitOnGet(faulty.Exact(name), int64(loc.Blob.Offset+loc.Blob.Length/2))
	dir, rr, err := restoreSnapshot(t, fx.r, fx.snap, restore.Options{Verify: true})
	if !errors.Is(err, restore.ErrIncomplete) {
		t.Fatalf("restore: got %v, want ErrIncomplete", err)
	}
	var failed []string
	for _, e := range rr.Errors {
		failed = append(failed, e.Path)
		if !errors.Is(e.Err, pack.ErrCorrupt) {
			t.Errorf("%s: %v, want a corrupt blob", e.Path, e.Err)
		}
	}
	if !slices.Equal(failed, []string{bad}) {
		t.Fatalf("failed %q, want only %s", failed, bad)
	}
	for f := range fx.files {
		_, err := os.Stat(filepath.Join(dir, f))
		if below := len(f) > len(bad) && f[:len(bad)+1] == bad+"/"; below != errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: restored=%v, want %v", f, err == nil, !below)
		}
	}
}

// TestPrefetchReadsPacksPerHop: the trees a restore needs are read in a
// round of Gets per hop from one pack to the next along the tree, not
// per level. Three backups leave the last snapshot's trees in three
// packs: the root, d0 and d0/d0 in the newest, d0/d0/d0 in the second's,
// everything else (d1 at level 2 among them) in the first's. Reading
// level by level took three rounds (the root's pack; the first's for d1
// at level 2; the second's for d0/d0/d0 at level 4); the second and
// third packs are both found from the first, so two rounds read them.
func TestPrefetchReadsPacksPerHop(t *testing.T) {
	fx := newTreeFixture(t)
	for _, dir := range []string{"d0/d0/d0", "d0/d0"} {
		p := filepath.Join(fx.src, filepath.FromSlash(dir), "f.txt")
		if err := os.WriteFile(p, textData(7, 1000+len(dir)), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := backup(t, fx.r, fx.src, nil, archive.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := t.Context()
	sn, err := fx.r.FindSnapshot(ctx, "latest")
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string]chunk.ID{}
	snapshotFiles(t, fx.r, sn, repo.WalkOptions{EveryPath: true}, func(dir string, loc index.Location) {
		dirs[dir] = loc.Pack
	})
	newest, second, first := dirs["files"], dirs["files/d0/d0/d0"], dirs["files/d1"]
	if dirs["files/d0"] != newest || dirs["files/d0/d0"] != newest || len(map[chunk.ID]bool{newest: true, second: true, first: true}) != 3 {
		t.Fatalf("the fixture's trees are not in three packs as the test needs: %v", dirs)
	}
	fx.count.reset()
	var root chunk.ID
	for _, c := range sn.Components {
		if c.Name == "files" {
			root = c.Tree
		}
	}
	tp, err := fx.r.PrefetchTrees(ctx, "files", root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tp.Rounds() != 2 {
		t.Errorf("%d rounds of pack reads, want 2", tp.Rounds())
	}
	gets := fx.count.reset()
	// Every tree of the snapshot comes from the prefetch, with no Get.
	walked := 0
	err = fx.r.NewWalker(repo.WalkOptions{EveryPath: true, Load: tp.Load}).Walk(ctx, "files", root, repo.Visitor{
		Tree: func(dir string, _ chunk.ID, _ *snapshot.Tree, err error) error {
			walked++
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if walked != len(dirs) {
		t.Fatalf("walked %d trees, want %d", walked, len(dirs))
	}
	if more := fx.count.reset(); len(more) != 0 {
		t.Errorf("the walk read %d trees the prefetch did not hold", len(more))
	}
	t.Logf("%d Gets in %d rounds for %d trees in 3 packs", len(gets), tp.Rounds(), len(dirs))
	out, rr, err := restoreSnapshot(t, fx.r, "latest", restore.Options{Verify: true})
	if err != nil {
		t.Fatalf("restore: %v %+v", err, rr)
	}
	sameTree(t, fx.src, filepath.Join(out, "files"))
}
