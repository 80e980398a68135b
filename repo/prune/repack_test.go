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
// whatever the window.
func TestRepackReadsInWindows(t *testing.T) {
	const blobs, blobSize = 12, 256 << 10
	for _, tc := range []struct {
		name   string
		window int64
		// reads tells a right number of pack reads: the walk reads the
		// tree once, then repack reads 7 kept blobs (6 data, the tree).
		reads func(n int) bool
	}{
		{"one blob per read", 1, func(n int) bool { return n == 1+7 }},
		{"runs of two kept blobs", 1 << 20, func(n int) bool { return n > 1+1 && n < 1+7 }},
		{"the whole pack at once", 64 << 20, func(n int) bool { return n == 1+1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer prune.SetRepackWindow(prune.SetRepackWindow(tc.window))
			ctx := t.Context()
			mem := memstore.New()
			r, err := repo.Init(ctx, mem, "pw", testKDF)
			if err != nil {
				t.Fatal(err)
			}
			// One pack: every other blob is used by the snapshot.
			want := map[chunk.ID][]byte{}
			var used []chunk.ID
			mtime := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			_, err = r.WithSaver(ctx, repo.SaverOptions{}, func(ctx context.Context, s *repo.Saver) error {
				for i := range blobs {
					b := randomData(uint64(100+i), blobSize)
					id := r.Hasher().Sum(b)
					if _, err := s.SaveIfNew(ctx, pack.DataBlob, id, b, nil); err != nil {
						return err
					}
					if i%2 == 0 {
						used = append(used, id)
						want[id] = b
					}
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
			st := &readLog{Store: mem}
			rep, err := runPrune(t, st, prune.Options{MaxUnused: 1e-9})
			if err != nil {
				t.Fatal(err)
			}
			if rep.RepackedPacks != 1 || rep.WrittenPacks != 1 || rep.DeletedPacks != 1 {
				t.Fatalf("prune did not repack the one pack: %+v", rep)
			}
			for _, n := range st.lengths {
				if n <= 0 || n > max(tc.window, blobSize+pack.Overhead) {
					t.Fatalf("a pack read of %d bytes (window %d)", n, tc.window)
				}
			}
			if !tc.reads(len(st.lengths)) {
				t.Fatalf("%d pack reads (one by the walk) for 7 kept blobs, window %d", len(st.lengths), tc.window)
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
