package repo_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/check"
	"github.com/cairn-backup/cairn/repo/restore"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/sources/tree"
	"github.com/cairn-backup/cairn/store"
)

// Issue 8, item 4: a writer with the key (or a store that replays another
// repository's blobs) can put a data blob far larger than the chunker
// maximum in a repository: 1 GiB of 'A' costs 156 KB stored, and restore
// decoded it in full for every file that used it. Data blobs above the
// chunker maximum are corrupt: restore fails, leaves no file that looks
// restored, and check names the damage.
func TestOversizedBlobIsCorrupt(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	r := initRepo(t, st)
	max := r.ChunkerParams().MaxSize
	big := bytes.Repeat([]byte{'A'}, int(max)+1)
	id := r.Hasher().Sum(big)

	mt := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var rootID chunk.ID
	_, err := r.WithSaver(ctx, repo.SaverOptions{}, func(ctx context.Context, s *repo.Saver) error {
		if err := s.Save(ctx, pack.DataBlob, id, big, nil); err != nil {
			return err
		}
		var nodes []snapshot.Node
		for _, name := range []string{"f1", "f2", "f3", "f4"} {
			nodes = append(nodes, snapshot.Node{Name: name, Type: snapshot.File, Mode: 0o644, ModTime: mt, Size: uint64(len(big)), Content: []chunk.ID{id}})
		}
		tb, err := (&snapshot.Tree{Nodes: nodes}).Encode()
		if err != nil {
			return err
		}
		rootID = r.Hasher().Sum(tb)
		return s.Save(ctx, pack.TreeBlob, rootID, tb, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	sn := &snapshot.Snapshot{Time: mt, Host: "h", Components: []snapshot.Component{
		{Name: "files", Kind: snapshot.KindTree, Tree: rootID, Size: 4 * uint64(len(big)), Files: 4, Started: mt, Finished: mt},
	}}
	sid, err := r.SaveSnapshot(ctx, sn)
	if err != nil {
		t.Fatal(err)
	}

	r2 := reopen(t, st)
	if err := r2.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.LoadBlob(ctx, pack.DataBlob, id, nil); !errors.Is(err, pack.ErrCorrupt) {
		t.Fatalf("LoadBlob of an oversized blob: got %v, want ErrCorrupt", err)
	}
	dir, _, err := restoreSnapshot(t, reopen(t, st), sid.String(), restore.Options{})
	if !errors.Is(err, restore.ErrIncomplete) {
		t.Fatalf("restore: got %v, want ErrRestoreIncomplete", err)
	}
	for _, name := range []string{"f1", "f2", "f3", "f4"} {
		if _, err := os.Lstat(filepath.Join(dir, "files", name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind after a failed restore (%v)", name, err)
		}
	}
	rep, err := check.Check(ctx, reopen(t, st), check.Options{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || len(rep.Damaged) != 1 || len(rep.MissingFor) != 1 {
		t.Errorf("check: damaged %+v, affected %q, errors %q", rep.Damaged, rep.MissingFor, rep.Errors)
	}
}

// Issue 8, item 7: a component of a kind restore does not know was
// restored like a stream, that is, its tree into the target's root, where
// it could overwrite another component. Restore refuses it before writing
// anything (manifests with such a kind no longer decode; this guards
// callers that build a manifest themselves).
func TestRestoreRefusesUnknownKind(t *testing.T) {
	st, _, res := backedUp(t)
	sn := *res.Snapshot
	sn.Components = append([]snapshot.Component(nil), sn.Components...)
	sn.Components[0].Kind = "fifo"
	dir := t.TempDir()
	tg, err := tree.OpenTarget(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	_, err = restore.Restore(t.Context(), reopen(t, st), &sn, tg, restore.Options{})
	if !errors.Is(err, snapshot.ErrUnknownKind) {
		t.Fatalf("restore: got %v, want ErrUnknownKind", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("restore of an unknown kind wrote %d entries into the target", len(ents))
	}
}

// A manifest object larger than any manifest is corrupt and is not read
// into memory whole.
func TestOversizedManifestObject(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	r := initRepo(t, st)
	big := bytes.Repeat([]byte{'x'}, snapshot.MaxManifestSize+pack.Overhead+1)
	id := chunk.ObjectID(big)
	if err := st.Put(ctx, "snapshots/"+id.String(), big); err != nil {
		t.Fatal(err)
	}
	if _, err := r.LoadSnapshot(ctx, id); !errors.Is(err, repo.ErrCorruptObject) || !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("got %v, want ErrCorruptObject and store.ErrTooLarge", err)
	}
}
