package repo_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/internal/faulty"
	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/archive"
	"github.com/cairn-backup/cairn/store"
)

// TestReadBlobs reads chosen blobs of one pack: runs of blobs at most
// maxGap apart share a Get, no byte is fetched twice, every blob is
// delivered in order with its plaintext, and a blob that does not decode
// fails alone while a missing pack fails every blob with one Get.
func TestReadBlobs(t *testing.T) {
	ctx := t.Context()
	mem := faulty.New(memstore.New())
	count := &countRanges{Store: mem}
	r := initRepo(t, count)
	src := t.TempDir()
	for i := range 40 { // one small blob each, all in one pack
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%02d", i)), textData(uint64(i), 3000+100*i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := backup(t, r, src, nil, archive.Options{}); err != nil {
		t.Fatal(err)
	}
	var packID chunk.ID
	var size int64
	if err := mem.List(ctx, "data/", func(fi store.Info) error {
		id, err := chunk.ParseID(filepath.Base(fi.Name))
		packID, size = id, fi.Size
		return err
	}); err != nil {
		t.Fatal(err)
	}
	all, err := r.LoadPackHeader(ctx, packID, size)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 41 { // and the root tree
		t.Fatalf("pack has %d blobs, want 41", len(all))
	}
	// Blobs 0-1 and 5-6 are adjacent pairs, 20 and 39 stand alone.
	pick := []pack.Blob{all[0], all[1], all[5], all[6], all[20], all[39]}
	end := func(b pack.Blob) int64 { return int64(b.Offset) + int64(b.Length) }
	gap := int64(pick[2].Offset) - end(pick[1])
	if int64(pick[4].Offset)-end(pick[3]) <= gap || int64(pick[5].Offset)-end(pick[4]) <= gap {
		t.Fatalf("blobs 7-19 and 21-38 take no more room than 2-4: %+v", all)
	}
	tests := []struct {
		name   string
		maxGap int64
		damage func()
		gets   int
		failed []int // indexes into pick
	}{
		{"adjacent only", 0, nil, 4, nil},
		{"gap of three blobs", gap, nil, 3, nil},
		{"whole pack", 1 << 30, nil, 1, nil},
		{"corrupt blob", 1 << 30, func() {
			mem.FlipBitOnGet(faulty.Exact(repo.PackName(packID)), int64(pick[2].Offset+10))
		}, 1, []int{2}},
		{"missing pack", 0, func() {
			mem.FailGet(faulty.Exact(repo.PackName(packID)), 0, store.ErrNotFound)
		}, 1, []int{0, 1, 2, 3, 4, 5}},
	}
	want := make([][]byte, len(pick))
	for i, b := range pick {
		if want[i], err = r.LoadBlob(ctx, b.Type, b.ID, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem.Reset()
			count.reset()
			if tc.damage != nil {
				tc.damage()
			}
			var order, failed []int
			err := r.ReadBlobs(ctx, packID, pick, tc.maxGap, func(i int, plain []byte, err error) error {
				order = append(order, i)
				if err != nil {
					var be *repo.BlobError
					if !errors.As(err, &be) || be.ID != pick[i].ID || be.Pack != packID {
						t.Errorf("blob %d: error %v does not name the blob and its pack", i, err)
					}
					failed = append(failed, i)
				} else if !bytes.Equal(plain, want[i]) {
					t.Errorf("blob %d: %d bytes, not its plaintext", i, len(plain))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(order) != "[0 1 2 3 4 5]" || fmt.Sprint(failed) != fmt.Sprint(tc.failed) {
				t.Errorf("delivered %v, failed %v; want every blob in order, failed %v", order, failed, tc.failed)
			}
			gets := count.reset()
			if len(gets) != tc.gets {
				t.Errorf("%d Gets, want %d: %+v", len(gets), tc.gets, gets)
			}
			for i, g := range gets {
				for _, h := range gets[:i] {
					if g.offset < h.offset+h.length && h.offset < g.offset+g.length {
						t.Errorf("Gets %+v and %+v overlap", g, h)
					}
				}
			}
		})
	}
}
