package prune_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/check"
	"github.com/cairn-backup/cairn/repo/prune"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/store"
)

// readLog records the length of every read of a pack.
type readLog struct {
	store.Store
	mu      sync.Mutex
	lengths []int64
}

func (s *readLog) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if strings.HasPrefix(name, "data/") {
		s.mu.Lock()
		s.lengths = append(s.lengths, length)
		s.mu.Unlock()
	}
	return s.Store.Get(ctx, name, offset, length)
}

// Repack reads the kept blobs of a pack in runs of at most the window (or
// one blob, when larger), not the whole pack, and copies them intact,
// whatever the window and however many packs' locations it holds at once.
func TestRepackReadsInWindows(t *testing.T) {
	const packs, blobs, blobSize = 3, 12, 256 << 10
	// Every other blob of each pack is used: 18 data blobs, and the tree
	// in the last pack.
	const kept = packs*blobs/2 + 1
	for _, tc := range []struct {
		name   string
		window int64
		batch  int
		// reads tells a right number of pack reads: the walk reads the
		// tree once, then repack reads the kept blobs.
		reads func(n int) bool
	}{
		{"one blob per read", 1, 1 << 16, func(n int) bool { return n == 1+kept }},
		{"runs of two kept blobs", 1 << 20, 1 << 16, func(n int) bool { return n > 1+packs && n < 1+kept }},
		{"whole packs", 64 << 20, 1 << 16, func(n int) bool { return n == 1+packs }},
		{"whole packs, one pack per batch", 64 << 20, 1, func(n int) bool { return n == 1+packs }},
		{"one blob per read, one pack per batch", 1, 1, func(n int) bool { return n == 1+kept }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer prune.SetRepackWindow(prune.SetRepackWindow(tc.window))
			defer prune.SetRepackBatch(prune.SetRepackBatch(tc.batch))
			ctx := t.Context()
			mem := memstore.New()
			r, err := repo.Init(ctx, mem, "pw", testKDF)
			if err != nil {
				t.Fatal(err)
			}
			want := map[chunk.ID][]byte{}
			var used []chunk.ID
			mtime := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for p := range packs {
				// One saver run, one pack.
				_, err = r.WithSaver(ctx, repo.SaverOptions{}, func(ctx context.Context, s *repo.Saver) error {
					for i := range blobs {
						b := randomData(uint64(100+p*blobs+i), blobSize)
						id := r.Hasher().Sum(b)
						if _, err := s.SaveIfNew(ctx, pack.DataBlob, id, b, nil); err != nil {
							return err
						}
						if i%2 == 0 {
							used = append(used, id)
							want[id] = b
						}
					}
					if p < packs-1 {
						return nil
					}
					tr := &snapshot.Tree{Nodes: []snapshot.Node{{Name: "f", Type: snapshot.File, Mode: 0o644, ModTime: mtime, Content: used}}}
					buf, err := repo.EncodeTree(tr)
					if err != nil {
						return err
					}
					root := r.Hasher().Sum(buf)
					if _, err := s.SaveIfNew(ctx, pack.TreeBlob, root, buf, nil); err != nil {
						return err
					}
					_, err = r.SaveSnapshot(ctx, &snapshot.Snapshot{Time: mtime, Host: "h", Components: []snapshot.Component{{Name: "files", Kind: snapshot.KindTree, Tree: root}}})
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			st := &readLog{Store: mem}
			rep, err := runPrune(t, st, prune.Options{MaxUnused: 1e-9})
			if err != nil {
				t.Fatal(err)
			}
			if rep.RepackedPacks != packs || rep.DeletedPacks != packs {
				t.Fatalf("prune did not repack the %d packs: %+v", packs, rep)
			}
			for _, n := range st.lengths {
				if n <= 0 || n > max(tc.window, blobSize+pack.Overhead) {
					t.Fatalf("a pack read of %d bytes (window %d)", n, tc.window)
				}
			}
			if !tc.reads(len(st.lengths)) {
				t.Fatalf("%d pack reads (one by the walk) for %d kept blobs in %d packs, window %d", len(st.lengths), kept, packs, tc.window)
			}
			r = open(t, mem)
			crep, err := check.Check(ctx, r, check.Options{ReadData: true})
			if err != nil || !crep.OK() {
				t.Fatalf("check after repack: %v %v %v", err, crep.Errors, crep.Damaged)
			}
			for id, b := range want {
				got, err := r.LoadBlob(ctx, pack.DataBlob, id, nil)
				if err != nil || !bytes.Equal(got, b) {
					t.Fatalf("blob %s after repack: %v", id.Short(), err)
				}
			}
		})
	}
}
