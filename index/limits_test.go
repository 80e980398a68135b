package index

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/pack"
)

// TestPackedFields checks that every field survives packing at the ends of
// its range, and that fields do not bleed into each other.
func TestPackedFields(t *testing.T) {
	r := rand.New(rand.NewPCG(70, 71))
	for _, tc := range []struct {
		name                     string
		num, off, length, rawLen uint32
		typ                      pack.BlobType
		compressed               bool
	}{
		{"zero", 0, 0, 0, 0, pack.DataBlob, false},
		{"max", MaxPacks - 1, 1<<32 - 1, MaxLength, MaxLength, pack.TreeBlob, true},
		{"max pack only", MaxPacks - 1, 0, 0, 0, pack.DataBlob, false},
		{"max lengths only", 0, 0, MaxLength, MaxLength, pack.DataBlob, false},
		{"flags only", 0, 0, 0, 0, pack.TreeBlob, true},
		{"pack low bits", 0xf, 1, 2, 3, pack.DataBlob, true},
		{"pack high bits", (MaxPacks - 1) &^ 0xf, 1, 2, 3, pack.TreeBlob, false},
		{"largest blob a reader takes", 12345, 1<<32 - 1 - (pack.MaxRawLength + pack.MaxRawLength/64 + 1064), pack.MaxRawLength + pack.MaxRawLength/64 + 1064, pack.MaxRawLength, pack.DataBlob, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := pack.Blob{Type: tc.typ, Compressed: tc.compressed, ID: randID(r), Offset: tc.off, Length: tc.length, RawLength: tc.rawLen}
			if err := checkEntryBlob(&b); err != nil {
				t.Fatal(err)
			}
			e := newEntry(tc.num, &b)
			p := e.compact()
			if p != packBlob(tc.num, &b) {
				t.Fatal("compact and packBlob differ")
			}
			if got := p.unpack(b.ID[0]); got != e {
				t.Fatalf("unpacked %+v, want %+v", got, e)
			}
			if got := p.blob(&b.ID); got != b {
				t.Fatalf("blob %+v, want %+v", got, b)
			}
			p.setPackNum(tc.num ^ (MaxPacks - 1))
			if got := p.unpack(b.ID[0]); got.pack != tc.num^(MaxPacks-1) || got.offset != e.offset || got.length != e.length || got.rawLen != e.rawLen || got.typ != e.typ || got.flags != e.flags {
				t.Fatalf("after setPackNum: %+v", got)
			}
		})
	}
}

// TestLimits: a blob or pack beyond what the in-memory index holds is
// refused with ErrLimit by every way in, and nothing of the refused call
// is kept; values at the limit are kept exactly.
func TestLimits(t *testing.T) {
	r := rand.New(rand.NewPCG(72, 73))
	blob := func(length, rawLen uint32) pack.Blob {
		b := randBlob(r)
		b.Offset, b.Length, b.RawLength = 0, length, rawLen
		return b
	}
	for _, tc := range []struct {
		name string
		blob pack.Blob
		ok   bool
	}{
		{"lengths at the limit", blob(MaxLength, MaxLength), true},
		{"stored length above", blob(MaxLength+1, 100), false},
		{"raw length above", blob(1000, MaxLength+1), false},
		{"raw length 4 GiB-1", blob(1000, 1<<32-1), false},
		{"unknown type", pack.Blob{Type: 3, ID: randID(r), Length: 10}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good := randBlob(r)
			blobs := []pack.Blob{good, tc.blob}
			f := &File{Packs: []PackBlobs{{Pack: randID(r), Blobs: blobs}}}
			check := func(how string, ix *Index, err error) {
				t.Helper()
				if tc.ok {
					if err != nil {
						t.Fatalf("%s: %v", how, err)
					}
					if l, ok := ix.Lookup(tc.blob.Type, tc.blob.ID); !ok || l.Blob != tc.blob {
						t.Fatalf("%s: Lookup = %+v %v, want %+v", how, l.Blob, ok, tc.blob)
					}
					return
				}
				if !errors.Is(err, ErrLimit) {
					t.Fatalf("%s: err = %v, want ErrLimit", how, err)
				}
				if ix.Len() != 0 || len(ix.Packs()) != 0 || len(ix.Pending().Packs) != 0 {
					t.Fatalf("%s: the refused call left %d entries, %d packs", how, ix.Len(), len(ix.Packs()))
				}
			}

			ix := New()
			check("AddPack", ix, ix.AddPack(f.Packs[0].Pack, blobs))
			ix = New()
			check("AddFile", ix, ix.AddFile(f))
			if tc.blob.Type == pack.DataBlob || tc.blob.Type == pack.TreeBlob {
				// The index file format allows 32-bit lengths: the
				// Loader refuses what the index cannot hold.
				data := mustMarshal(t, f)
				l := NewLoader(int64(len(data)))
				_, err := l.Add(0, data)
				ix = New()
				if err == nil {
					err = l.AddTo(ix, nil)
				} else if err2 := l.AddTo(ix, nil); err2 != nil {
					t.Fatal(err2)
				}
				check("Loader", ix, err)
			}
		})
	}
}

// TestPackLimit lowers the pack limit (MaxPacks is 2^28) to check that one
// pack too many is refused, by every way in, without changing the index.
func TestPackLimit(t *testing.T) {
	r := rand.New(rand.NewPCG(74, 75))
	const limit = 3
	packs := make([]PackBlobs, limit+1)
	for i := range packs {
		packs[i] = PackBlobs{Pack: randID(r), Blobs: []pack.Blob{randBlob(r), randBlob(r)}}
	}
	newIndex := func() *Index {
		ix := New()
		ix.packLimit = limit
		return ix
	}

	t.Run("AddPack", func(t *testing.T) {
		ix := newIndex()
		for _, pb := range packs[:limit] {
			if err := ix.AddPack(pb.Pack, pb.Blobs); err != nil {
				t.Fatal(err)
			}
		}
		if err := ix.AddPack(packs[limit].Pack, packs[limit].Blobs); !errors.Is(err, ErrLimit) {
			t.Fatalf("pack %d: err = %v, want ErrLimit", limit+1, err)
		}
		// A known pack still takes blobs.
		if err := ix.AddPack(packs[0].Pack, []pack.Blob{randBlob(r)}); err != nil {
			t.Fatal(err)
		}
		if ix.Len() != 2*limit+1 || len(ix.Packs()) != limit {
			t.Fatalf("Len %d, %d packs", ix.Len(), len(ix.Packs()))
		}
		// Removing a pack makes room again.
		ix.RemovePacks(map[chunk.ID]struct{}{packs[1].Pack: {}})
		if err := ix.AddPack(packs[limit].Pack, packs[limit].Blobs); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("AddFiles", func(t *testing.T) {
		ix := newIndex()
		if err := ix.AddFiles([]*File{{Packs: packs[:2]}}); err != nil {
			t.Fatal(err)
		}
		// The same packs again plus one: within the limit.
		if err := ix.AddFiles([]*File{{Packs: packs[:2]}, {Packs: packs[1:3]}}); err != nil {
			t.Fatal(err)
		}
		if err := ix.AddFiles([]*File{{Packs: packs[3:]}}); !errors.Is(err, ErrLimit) {
			t.Fatalf("err = %v, want ErrLimit", err)
		}
		if ix.Len() != 2*limit || len(ix.Packs()) != limit {
			t.Fatalf("Len %d, %d packs", ix.Len(), len(ix.Packs()))
		}
	})
	t.Run("Loader", func(t *testing.T) {
		l := NewLoader(0)
		l.packLimit = limit
		if _, err := l.Add(0, mustMarshal(t, &File{Packs: packs[:2]})); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Add(1, mustMarshal(t, &File{Packs: packs[1:]})); !errors.Is(err, ErrLimit) {
			t.Fatalf("err = %v, want ErrLimit", err)
		}
		ix := New()
		if err := l.AddTo(ix, nil); err != nil {
			t.Fatal(err)
		}
		if ix.Len() != 4 || len(ix.Packs()) != 2 {
			t.Fatalf("Len %d, %d packs: the refused file was kept", ix.Len(), len(ix.Packs()))
		}
	})
	t.Run("AddTo", func(t *testing.T) {
		ix := newIndex()
		if err := ix.AddPack(packs[0].Pack, packs[0].Blobs); err != nil {
			t.Fatal(err)
		}
		l := NewLoader(0)
		if _, err := l.Add(0, mustMarshal(t, &File{Packs: packs[1:]})); err != nil {
			t.Fatal(err)
		}
		if err := l.AddTo(ix, nil); !errors.Is(err, ErrLimit) {
			t.Fatalf("err = %v, want ErrLimit", err)
		}
		if ix.Len() != 2 || len(ix.Packs()) != 1 {
			t.Fatalf("Len %d, %d packs", ix.Len(), len(ix.Packs()))
		}
	})
}

// TestFirstByteOnly: main entries do not store the first ID byte, so IDs
// that differ only there must still be told apart everywhere: lookups,
// duplicate detection, merges, loading, removal, Each and EachFile.
func TestFirstByteOnly(t *testing.T) {
	r := rand.New(rand.NewPCG(76, 77))
	base := randID(r)
	var blobs []pack.Blob
	for _, first := range []byte{0, 1, 0x7f, 0x80, 0xfe, 0xff} {
		for _, typ := range []pack.BlobType{pack.DataBlob, pack.TreeBlob} {
			id := base
			id[0] = first
			blobs = append(blobs, pack.Blob{Type: typ, ID: id, Offset: uint32(len(blobs)) * 100, Length: 100, RawLength: 90})
		}
	}
	p1, p2 := randID(r), randID(r)
	for _, how := range []string{"AddPack", "AddPack+merge", "AddFiles", "Loader"} {
		t.Run(how, func(t *testing.T) {
			ix := New()
			ref := refIndex{}
			switch how {
			case "AddPack", "AddPack+merge":
				if err := ix.AddPack(p1, blobs); err != nil {
					t.Fatal(err)
				}
				if how == "AddPack+merge" {
					fill(ix, r, minTail+1) // merges the tail into main
				}
			case "AddFiles":
				f := &File{Packs: []PackBlobs{{Pack: p1, Blobs: blobs}}}
				for range minTail / len(blobs) {
					f.Packs = append(f.Packs, PackBlobs{Pack: randID(r), Blobs: []pack.Blob{randBlob(r), randBlob(r)}})
				}
				if err := ix.AddFiles([]*File{f}); err != nil {
					t.Fatal(err)
				}
				for _, pb := range f.Packs[1:] {
					ref.add(pb.Pack, pb.Blobs)
				}
			case "Loader":
				l := NewLoader(0)
				if _, err := l.Add(0, mustMarshal(t, &File{Packs: []PackBlobs{{Pack: p1, Blobs: blobs}}})); err != nil {
					t.Fatal(err)
				}
				if err := l.AddTo(ix, nil); err != nil {
					t.Fatal(err)
				}
			}
			if how == "AddPack+merge" {
				ix.Each(func(l Location) bool {
					if l.Pack != p1 {
						ref.add(l.Pack, []pack.Blob{l.Blob})
					}
					return true
				})
			}
			ref.add(p1, blobs)
			// The same blobs again in the same pack are duplicates; in
			// another pack, second copies.
			if err := ix.AddPack(p1, blobs); err != nil {
				t.Fatal(err)
			}
			if err := ix.AddPack(p2, blobs); err != nil {
				t.Fatal(err)
			}
			ref.add(p2, blobs)
			ix.mu.Lock()
			ix.mergeLocked()
			ix.mu.Unlock()
			checkAgainst(t, ix, ref)
			missing := base
			missing[0] = 2
			if ix.Has(pack.DataBlob, missing) {
				t.Fatal("found an ID that differs only in its first byte")
			}
			got := ix.PackBlobs(p1)
			if len(got) != len(blobs) {
				t.Fatalf("PackBlobs: %d blobs, want %d", len(got), len(blobs))
			}
			for i := range got {
				if got[i] != blobs[i] {
					t.Fatalf("PackBlobs[%d] = %+v, want %+v", i, got[i], blobs[i])
				}
			}
			var fromFiles []pack.Blob
			for _, f := range ix.Files(0) {
				for _, pb := range f.Packs {
					if pb.Pack == p2 {
						fromFiles = append(fromFiles, pb.Blobs...)
					}
				}
			}
			if len(fromFiles) != len(blobs) || fromFiles[0] != blobs[0] || fromFiles[len(blobs)-1] != blobs[len(blobs)-1] {
				t.Fatalf("Files lists %d blobs of p2", len(fromFiles))
			}
			ix.RemovePacks(map[chunk.ID]struct{}{p1: {}})
			for _, b := range blobs {
				if l, ok := ix.Lookup(b.Type, b.ID); !ok || l != (Location{p2, b}) {
					t.Fatalf("after RemovePacks: Lookup(%x...) = %v %v", b.ID[:2], l, ok)
				}
			}
		})
	}
}
