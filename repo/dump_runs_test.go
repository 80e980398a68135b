package repo_test

// DumpFile (cairn dump, restore --command) reads a file's blobs in runs:
// one Get per run of consecutive blobs in one pack, not one per blob.

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/internal/faulty"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/store"
)

// TestDumpReadsRuns dumps every file of the shared fixture through the
// counting store: the output is the source byte for byte, and a file
// whose blobs lie in k packs costs k Gets: each file fits one window, and
// a pack's needed blobs lie less than MaxReadGap apart. rep.bin repeats a
// block, so its blobs go back in a pack; a.bin's are shared with b.bin and
// c.bin, in the first backup's packs.
func TestDumpReadsRuns(t *testing.T) {
	fx := newSharedFixture(t)
	ctx := t.Context()
	sn, err := fx.r.FindSnapshot(ctx, fx.snap)
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"a.bin", "b.bin", "c.bin", "rep.bin", "zeros", "small.txt", "empty"} {
		t.Run(file, func(t *testing.T) {
			content := fx.files["files/"+file]
			node, err := fx.r.FindNode(ctx, sn.Snapshot, "files/"+file)
			if err != nil {
				t.Fatal(err)
			}
			fx.count.reset()
			var out bytes.Buffer
			if err := fx.r.DumpFile(ctx, node, &out); err != nil {
				t.Fatalf("dump: %v", err)
			}
			gets := fx.count.reset()
			want, err := os.ReadFile(filepath.Join(fx.src, file))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("dumped %d bytes, not the %d of the source", out.Len(), len(want))
			}
			packs := map[chunk.ID]bool{}
			for _, id := range content {
				packs[fx.packOf(t, id)] = true
			}
			if len(gets) != len(packs) {
				t.Errorf("%d Gets for %d blobs in %d packs, want one per pack", len(gets), len(content), len(packs))
			}
			for _, g := range gets {
				if !packs[mustParse(t, g.pack)] {
					t.Errorf("pack %.12s read, but the file has no blob in it", g.pack)
				}
			}
			t.Logf("%d Gets for %d blobs in %d packs (one Get per blob before)", len(gets), len(content), len(packs))
		})
	}
}

func mustParse(t *testing.T, s string) chunk.ID {
	t.Helper()
	id, err := chunk.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestDumpDamagedBlob: a blob that does not decode, or a pack that is
// missing, fails the stream with the error a blob-by-blob dump gave (a
// *repo.BlobError wrapping pack.ErrCorrupt or store.ErrNotFound), after
// every byte before that blob has been written.
func TestDumpDamagedBlob(t *testing.T) {
	fx := newSharedFixture(t)
	ctx := t.Context()
	sn, err := fx.r.FindSnapshot(ctx, fx.snap)
	if err != nil {
		t.Fatal(err)
	}
	content := fx.files["files/b.bin"]
	src, err := os.ReadFile(filepath.Join(fx.src, "b.bin"))
	if err != nil {
		t.Fatal(err)
	}
	bad := len(content) / 2 // b.bin's blobs are distinct
	loc, _ := fx.r.Index().Lookup(pack.DataBlob, content[bad])
	name := repo.PackName(loc.Pack)
	// Bytes before the first blob a damage reaches, as the source has them.
	prefix := func(upTo int) []byte {
		var n uint32
		for _, id := range content[:upTo] {
			l, _ := fx.r.Index().Lookup(pack.DataBlob, id)
			n += l.Blob.RawLength
		}
		return src[:n]
	}
	firstInPack := slices.IndexFunc(content, func(id chunk.ID) bool { return fx.packOf(t, id) == loc.Pack })
	tests := []struct {
		name   string
		damage func()
		want   error
		out    []byte
	}{
		{"corrupt blob", func() { fx.mem.FlipBitOnGet(faulty.Exact(name), int64(loc.Blob.Offset+loc.Blob.Length/2)) }, pack.ErrCorrupt, prefix(bad)},
		{"missing pack", func() { fx.mem.FailGet(faulty.Exact(name), 0, store.ErrNotFound) }, store.ErrNotFound, prefix(firstInPack)},
	}
	node, err := fx.r.FindNode(ctx, sn.Snapshot, "files/b.bin")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx.mem.Reset()
			tc.damage()
			var out bytes.Buffer
			err := fx.r.DumpFile(ctx, node, &out)
			var be *repo.BlobError
			if !errors.As(err, &be) || !errors.Is(err, tc.want) {
				t.Fatalf("dump: got %v, want a *repo.BlobError wrapping %v", err, tc.want)
			}
			if be.Pack != loc.Pack || !strings.Contains(err.Error(), loc.Pack.String()) {
				t.Errorf("error names pack %v, want %v", be.Pack, loc.Pack)
			}
			if !bytes.Equal(out.Bytes(), tc.out) {
				t.Errorf("wrote %d bytes before failing, want the %d before the damaged blob", out.Len(), len(tc.out))
			}
		})
	}
}
