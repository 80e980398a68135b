package index

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/pack"
)

func TestEntrySize(t *testing.T) {
	if entrySize != 52 {
		t.Fatalf("entry is %d bytes, want 52", entrySize)
	}
	if packedSize != 46 {
		t.Fatalf("packed is %d bytes, want 46", packedSize)
	}
}

func blobAt(t pack.BlobType, id chunk.ID, off uint32) pack.Blob {
	return pack.Blob{Type: t, ID: id, Offset: off, Length: 100 + off, RawLength: 60}
}

func loc(p chunk.ID, b pack.Blob) Location { return Location{Pack: p, Blob: b} }

// fillTail adds n unrelated blobs in one pack, enough to force a merge of the
// tail into main when n > minTail.
func fill(ix *Index, r *rand.Rand, n int) {
	blobs := make([]pack.Blob, n)
	for i := range blobs {
		blobs[i] = randBlob(r)
	}
	ix.AddPack(randID(r), blobs)
}

func TestDuplicates(t *testing.T) {
	r := rand.New(rand.NewPCG(20, 21))
	id := randID(r)
	pA, pB, pC := randID(r), randID(r), randID(r)
	bA, bB, bC := blobAt(pack.DataBlob, id, 0), blobAt(pack.DataBlob, id, 10), blobAt(pack.DataBlob, id, 20)
	want := []Location{loc(pA, bA), loc(pB, bB), loc(pC, bC)}

	// mergeAfter says after how many of the three AddPack calls to force the
	// tail into main, so the duplicates end up split between main and tail
	// in every way.
	for _, mergeAfter := range []int{-1, 0, 1, 2, 3} {
		t.Run(fmt.Sprintf("merge after %d", mergeAfter), func(t *testing.T) {
			ix := New()
			steps := []func(){
				func() { ix.AddPack(pA, []pack.Blob{bA}) },
				func() { ix.AddPack(pB, []pack.Blob{bB}) },
				func() { ix.AddPack(pC, []pack.Blob{bC}) },
			}
			for i, s := range steps {
				if i == mergeAfter {
					fill(ix, r, minTail+1)
				}
				s()
			}
			if mergeAfter == 3 {
				fill(ix, r, 2*minTail)
			}
			if got := ix.LookupAll(pack.DataBlob, id); !reflect.DeepEqual(got, want) {
				t.Fatalf("LookupAll = %v, want %v", got, want)
			}
			if got, ok := ix.Lookup(pack.DataBlob, id); !ok || got != want[0] {
				t.Fatalf("Lookup = %v %v, want %v", got, ok, want[0])
			}
			// The same pack again, and a file listing it: no new entries.
			n := ix.Len()
			ix.AddPack(pB, []pack.Blob{bB})
			ix.AddFile(&File{Packs: []PackBlobs{{Pack: pA, Blobs: []pack.Blob{bA}}, {Pack: pC, Blobs: []pack.Blob{bC, bC}}}})
			if ix.Len() != n {
				t.Fatalf("re-adding known entries: Len %d, want %d", ix.Len(), n)
			}
			if got := ix.LookupAll(pack.DataBlob, id); !reflect.DeepEqual(got, want) {
				t.Fatalf("after re-adding: LookupAll = %v, want %v", got, want)
			}
		})
	}
}

func TestTypeSeparation(t *testing.T) {
	r := rand.New(rand.NewPCG(22, 23))
	id := randID(r)
	p1, p2 := randID(r), randID(r)
	data, tree := blobAt(pack.DataBlob, id, 0), blobAt(pack.TreeBlob, id, 50)
	for _, merged := range []bool{false, true} {
		ix := New()
		ix.AddPack(p1, []pack.Blob{data})
		if ix.Has(pack.TreeBlob, id) {
			t.Fatal("tree blob found after adding only the data blob")
		}
		ix.AddPack(p2, []pack.Blob{tree})
		if merged {
			fill(ix, r, minTail+1)
		}
		tests := []struct {
			typ  pack.BlobType
			want Location
		}{
			{pack.DataBlob, loc(p1, data)},
			{pack.TreeBlob, loc(p2, tree)},
		}
		for _, tt := range tests {
			got, ok := ix.Lookup(tt.typ, id)
			if !ok || got != tt.want {
				t.Errorf("merged=%v: Lookup(%v) = %v %v, want %v", merged, tt.typ, got, ok, tt.want)
			}
			if all := ix.LookupAll(tt.typ, id); len(all) != 1 {
				t.Errorf("merged=%v: LookupAll(%v) has %d locations", merged, tt.typ, len(all))
			}
		}
		if ix.Has(pack.BlobType(3), id) {
			t.Error("found an unknown type")
		}
	}
}

// key is a blob's identity in the index: the type is part of it.
type key struct {
	id  chunk.ID
	typ pack.BlobType
}

// refIndex is the reference model: every location per key in the order
// added.
type refIndex map[key][]Location

func (ref refIndex) add(p chunk.ID, blobs []pack.Blob) {
	for _, b := range blobs {
		k := key{b.ID, b.Type}
		ref[k] = append(ref[k], Location{p, b})
	}
}

func (ref refIndex) len() int {
	n := 0
	for _, l := range ref {
		n += len(l)
	}
	return n
}

// checkAgainst compares ix with ref completely.
func checkAgainst(t *testing.T, ix *Index, ref refIndex) {
	t.Helper()
	if ix.Len() != ref.len() {
		t.Fatalf("Len = %d, want %d", ix.Len(), ref.len())
	}
	packs := map[chunk.ID]struct{}{}
	for k, want := range ref {
		if got := ix.LookupAll(k.typ, k.id); !slices.Equal(got, want) {
			t.Fatalf("LookupAll(%v, %s) = %v, want %v", k.typ, k.id.Short(), got, want)
		}
		if got, ok := ix.Lookup(k.typ, k.id); !ok || got != want[0] {
			t.Fatalf("Lookup(%v, %s) = %v %v, want %v", k.typ, k.id.Short(), got, ok, want[0])
		}
		for _, l := range want {
			packs[l.Pack] = struct{}{}
		}
	}
	wantPacks := make([]chunk.ID, 0, len(packs))
	for p := range packs {
		wantPacks = append(wantPacks, p)
	}
	slices.SortFunc(wantPacks, chunk.ID.Compare)
	if got := ix.Packs(); !slices.Equal(got, wantPacks) {
		t.Fatalf("Packs: %d, want %d", len(got), len(wantPacks))
	}
	// Each: in (ID, type) order, duplicates in the order added.
	var all []Location
	ix.Each(func(l Location) bool { all = append(all, l); return true })
	if len(all) != ref.len() {
		t.Fatalf("Each visited %d, want %d", len(all), ref.len())
	}
	for i := 0; i < len(all); {
		k := key{all[i].Blob.ID, all[i].Blob.Type}
		j := i + 1
		for j < len(all) && all[j].Blob.ID == k.id && all[j].Blob.Type == k.typ {
			j++
		}
		if j < len(all) && cmp.Or(k.id.Compare(all[j].Blob.ID), cmp.Compare(k.typ, all[j].Blob.Type)) > 0 {
			t.Fatalf("Each out of order at %d", j)
		}
		if !slices.Equal(all[i:j], ref[k]) {
			t.Fatalf("Each gives %v for %s, want %v", all[i:j], k.id.Short(), ref[k])
		}
		i = j
	}
}

// TestConcurrentAgainstReference adds 200k random entries from several
// goroutines while others look blobs up, then compares the index with a
// reference map. Run with -race.
func TestConcurrentAgainstReference(t *testing.T) {
	const (
		writers     = 4
		perWriter   = 50_000
		readers     = 3
		maxPackSize = 700
	)
	total := writers * perWriter
	if testing.Short() {
		total /= 10
	}
	ix := New()
	refs := make([]refIndex, writers)
	var wg sync.WaitGroup
	done := make(chan struct{})

	// Writers own disjoint random IDs, plus duplicates of their own earlier
	// blobs (in new packs), so the order of a key's locations is known.
	for w := range writers {
		ref := refIndex{}
		refs[w] = ref
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(100, uint64(w)))
			var mine []pack.Blob
			for added := 0; added < total/writers; {
				p := randID(r)
				blobs := make([]pack.Blob, 1+r.IntN(maxPackSize))
				for i := range blobs {
					if len(mine) > 0 && r.IntN(50) == 0 {
						b := mine[r.IntN(len(mine))]
						b.Offset = uint32(i) * 1000 // a new location
						blobs[i] = b
					} else {
						blobs[i] = randBlob(r)
						blobs[i].Offset = uint32(i) * 1000
					}
				}
				ix.AddPack(p, blobs)
				ref.add(p, blobs)
				mine = append(mine, blobs...)
				added += len(blobs)
				// Everything this writer added must be visible now.
				for range 20 {
					b := mine[r.IntN(len(mine))]
					k := key{b.ID, b.Type}
					got, ok := ix.Lookup(b.Type, b.ID)
					if !ok || got != ref[k][0] {
						t.Errorf("writer %d: Lookup(%s) = %v %v, want %v", w, b.ID.Short(), got, ok, ref[k][0])
						return
					}
					if !ix.Has(b.Type, b.ID) {
						t.Errorf("writer %d: Has(%s) = false", w, b.ID.Short())
						return
					}
				}
			}
		}()
	}
	// Readers look up random IDs, which must miss, and call the other read
	// methods while the index changes.
	var rg sync.WaitGroup
	for rd := range readers {
		rg.Add(1)
		go func() {
			defer rg.Done()
			r := rand.New(rand.NewPCG(200, uint64(rd)))
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				id := randID(r)
				if _, ok := ix.Lookup(pack.DataBlob, id); ok {
					t.Errorf("random ID %s found", id.Short())
					return
				}
				if ix.LookupAll(pack.TreeBlob, id) != nil {
					t.Errorf("random ID %s found by LookupAll", id.Short())
					return
				}
				if i%5000 == 0 {
					_ = ix.Len()
					_ = ix.MemoryBytes()
					_ = ix.Packs()
				}
				if i%50000 == 0 && rd == 0 {
					n := 0
					ix.Each(func(Location) bool { n++; return n < 1000 })
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	rg.Wait()
	if t.Failed() {
		return
	}
	ref := refIndex{}
	for _, r := range refs {
		for k, l := range r {
			ref[k] = append(ref[k], l...)
		}
	}
	checkAgainst(t, ix, ref)
	for _, r := range refs {
		for k := range r {
			if _, ok := ix.Lookup(k.typ^3, k.id); ok {
				t.Fatalf("%s found with the other type", k.id.Short())
			}
		}
	}
	// Everything was added by AddPack, so everything is pending.
	if n := ix.Pending().NumBlobs(); n != ref.len() {
		t.Fatalf("pending %d, want %d", n, ref.len())
	}
}

func TestRemovePacks(t *testing.T) {
	r := rand.New(rand.NewPCG(30, 31))
	shared := blobAt(pack.DataBlob, randID(r), 0)
	packs := make([]chunk.ID, 6)
	for i := range packs {
		packs[i] = randID(r)
	}
	tests := []struct {
		name   string
		remove []int // indexes into packs; 6 is a pack not in the index
		merged bool
	}{
		{"none", nil, false},
		{"unknown", []int{6}, false},
		{"first", []int{0}, false},
		{"first merged", []int{0}, true},
		{"middle merged", []int{2, 3}, true},
		{"all", []int{0, 1, 2, 3, 4, 5}, false},
		{"all merged", []int{0, 1, 2, 3, 4, 5, 6}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix := New()
			ref := refIndex{}
			for i, p := range packs {
				blobs := []pack.Blob{shared}
				for range 1 + r.IntN(2000) {
					blobs = append(blobs, randBlob(r))
				}
				blobs[0].Offset = uint32(i)
				if i%2 == 0 {
					ix.AddPack(p, blobs)
				} else {
					ix.AddFile(&File{Packs: []PackBlobs{{Pack: p, Blobs: blobs}}})
				}
				ref.add(p, blobs)
			}
			if tt.merged {
				ix.mu.Lock()
				ix.mergeLocked()
				ix.mu.Unlock()
			}
			set := map[chunk.ID]struct{}{}
			for _, i := range tt.remove {
				id := randID(r)
				if i < len(packs) {
					id = packs[i]
				}
				set[id] = struct{}{}
			}
			ix.RemovePacks(set)
			for k, locs := range ref {
				locs = slices.DeleteFunc(locs, func(l Location) bool { _, ok := set[l.Pack]; return ok })
				if len(locs) == 0 {
					delete(ref, k)
				} else {
					ref[k] = locs
				}
			}
			checkAgainst(t, ix, ref)
			for p := range set {
				if ix.PackBlobs(p) != nil {
					t.Fatalf("PackBlobs of removed pack %s", p.Short())
				}
			}
			for _, pb := range ix.Pending().Packs {
				if _, ok := set[pb.Pack]; ok {
					t.Fatalf("removed pack %s still pending", pb.Pack.Short())
				}
			}
			// The index keeps working after removal.
			p := randID(r)
			b := randBlob(r)
			ix.AddPack(p, []pack.Blob{b})
			if got, ok := ix.Lookup(b.Type, b.ID); !ok || got != loc(p, b) {
				t.Fatalf("Lookup after RemovePacks+AddPack = %v %v", got, ok)
			}
		})
	}
}

// sortedLocations returns every location in ix in a canonical order.
func sortedLocations(ix *Index) []Location {
	var all []Location
	ix.Each(func(l Location) bool { all = append(all, l); return true })
	slices.SortFunc(all, func(a, b Location) int {
		return cmp.Or(a.Blob.ID.Compare(b.Blob.ID), cmp.Compare(a.Blob.Type, b.Blob.Type),
			a.Pack.Compare(b.Pack), cmp.Compare(a.Blob.Offset, b.Blob.Offset))
	})
	return all
}

func TestFilesRoundtrip(t *testing.T) {
	r := rand.New(rand.NewPCG(40, 41))
	ix := New()
	var some []pack.Blob
	for range 300 {
		blobs := make([]pack.Blob, r.IntN(300)+1)
		for i := range blobs {
			if len(some) > 0 && r.IntN(20) == 0 {
				blobs[i] = some[r.IntN(len(some))] // duplicate across packs
			} else {
				blobs[i] = randBlob(r)
			}
		}
		some = append(some, blobs[0])
		ix.AddPack(randID(r), blobs)
	}
	want := sortedLocations(ix)

	for _, max := range []int{0, 1, 77, 1000, 1 << 20} {
		t.Run(fmt.Sprintf("max %d", max), func(t *testing.T) {
			files := ix.Files(max)
			n := 0
			ix2 := New()
			for _, f := range files {
				if max > 0 && f.NumBlobs() > max {
					t.Fatalf("file has %d blobs, max %d", f.NumBlobs(), max)
				}
				n += f.NumBlobs()
				g, err := Decode(mustMarshal(t, f))
				if err != nil {
					t.Fatal(err)
				}
				ix2.AddFile(g)
			}
			if n != ix.Len() {
				t.Fatalf("files hold %d blobs, index %d", n, ix.Len())
			}
			if max == 0 && len(files) != 1 {
				t.Fatalf("%d files without limit", len(files))
			}
			if got := sortedLocations(ix2); !slices.Equal(got, want) {
				t.Fatal("reloaded index differs")
			}
			if !slices.Equal(ix2.Packs(), ix.Packs()) {
				t.Fatal("packs differ")
			}
			for _, p := range ix.Packs()[:20] {
				if !slices.Equal(ix.PackBlobs(p), ix2.PackBlobs(p)) {
					t.Fatalf("PackBlobs(%s) differs", p.Short())
				}
			}
			if ix2.Pending().NumBlobs() != 0 {
				t.Fatal("AddFile made blobs pending")
			}
		})
	}
	if files := New().Files(10); len(files) != 1 || len(files[0].Packs) != 0 {
		t.Fatalf("empty index: %d files", len(files))
	}
}

func TestPending(t *testing.T) {
	r := rand.New(rand.NewPCG(50, 51))
	mk := func() PackBlobs {
		return PackBlobs{Pack: randID(r), Blobs: []pack.Blob{randBlob(r), randBlob(r)}}
	}
	p1, p2, p3, loaded := mk(), mk(), mk(), mk()
	ix := New()
	if f := ix.Pending(); len(f.Packs) != 0 {
		t.Fatal("new index has pending packs")
	}
	ix.AddFile(&File{Packs: []PackBlobs{loaded}})
	ix.AddPack(p1.Pack, p1.Blobs)
	ix.AddPack(p2.Pack, p2.Blobs)
	f := ix.Pending()
	if !reflect.DeepEqual(f.Packs, []PackBlobs{p1, p2}) {
		t.Fatalf("Pending = %v", f.Packs)
	}
	f.Packs[0].Blobs[0].Offset++ // must not alias the index
	if !reflect.DeepEqual(ix.Pending().Packs, []PackBlobs{p1, p2}) {
		t.Fatal("Pending aliases the index")
	}
	f = ix.Pending()
	// A pack uploaded while f is being written stays pending.
	ix.AddPack(p3.Pack, p3.Blobs)
	// A blob of p1 added again is a known entry: not pending again.
	ix.AddPack(p1.Pack, p1.Blobs[:1])
	ix.ClearPending(f)
	if got := ix.Pending().Packs; !reflect.DeepEqual(got, []PackBlobs{p3}) {
		t.Fatalf("after ClearPending: %v", got)
	}
	// Clearing part of a pack.
	ix.ClearPending(&File{Packs: []PackBlobs{{Pack: p3.Pack, Blobs: p3.Blobs[1:]}}})
	if got := ix.Pending().Packs; !reflect.DeepEqual(got, []PackBlobs{{Pack: p3.Pack, Blobs: p3.Blobs[:1]}}) {
		t.Fatalf("after partial ClearPending: %v", got)
	}
	ix.ClearPending(ix.Pending())
	if n := ix.Pending().NumBlobs(); n != 0 {
		t.Fatalf("%d blobs pending", n)
	}
	if ix.Len() != 8 {
		t.Fatalf("Len = %d", ix.Len())
	}
}

func TestPackBlobs(t *testing.T) {
	r := rand.New(rand.NewPCG(60, 61))
	ix := New()
	p := randID(r)
	var want []pack.Blob
	for i := range 10 {
		b := randBlob(r)
		b.Offset = uint32(1000 - i*10)
		want = append(want, b)
	}
	ix.AddPack(p, want[:5])
	fill(ix, r, minTail+1) // p's first blobs go to main
	ix.AddPack(p, want[5:])
	slices.Reverse(want)
	if got := ix.PackBlobs(p); !reflect.DeepEqual(got, want) {
		t.Fatalf("PackBlobs = %v, want %v", got, want)
	}
	if ix.PackBlobs(randID(r)) != nil {
		t.Fatal("PackBlobs of an unknown pack")
	}
}

// ByPack answers what PackBlobs does for every pack, in main and in the
// tail, and keeps describing the index as it was when it was made.
func TestByPack(t *testing.T) {
	r := rand.New(rand.NewPCG(62, 63))
	ix := New()
	var packs []chunk.ID
	for range 200 {
		p := randID(r)
		blobs := make([]pack.Blob, 1+r.IntN(20))
		for i := range blobs {
			blobs[i] = randBlob(r)
			blobs[i].Offset = uint32(r.IntN(1 << 20))
		}
		if err := ix.AddPack(p, blobs); err != nil {
			t.Fatal(err)
		}
		packs = append(packs, p)
	}
	fill(ix, r, minTail+1)                                                 // the packs so far go to main
	if err := ix.AddPack(packs[3], []pack.Blob{randBlob(r)}); err != nil { // and one gets a tail entry
		t.Fatal(err)
	}
	bp := ix.ByPack()
	for _, p := range ix.Packs() {
		if got, want := bp.Blobs(p), ix.PackBlobs(p); !reflect.DeepEqual(got, want) {
			t.Fatalf("ByPack.Blobs(%s) = %d blobs, PackBlobs %d", p.Short(), len(got), len(want))
		}
	}
	if bp.Blobs(randID(r)) != nil {
		t.Fatal("ByPack.Blobs of an unknown pack")
	}
	before := ix.PackBlobs(packs[5])
	ix.RemovePacks(map[chunk.ID]struct{}{packs[5]: {}})
	if got := bp.Blobs(packs[5]); !reflect.DeepEqual(got, before) {
		t.Fatalf("after RemovePacks the earlier ByPack changed: %d blobs, want %d", len(got), len(before))
	}
	if ix.ByPack().Blobs(packs[5]) != nil {
		t.Fatal("a ByPack made after RemovePacks still has the pack")
	}
}

func TestEach(t *testing.T) {
	r := rand.New(rand.NewPCG(70, 71))
	ix := New()
	fill(ix, r, 100)
	n := 0
	ix.Each(func(l Location) bool {
		n++
		// fn may use the index, also to modify it.
		if !ix.Has(l.Blob.Type, l.Blob.ID) {
			t.Fatal("Has false for an entry")
		}
		ix.AddPack(randID(r), []pack.Blob{randBlob(r)})
		return n < 10
	})
	if n != 10 {
		t.Fatalf("Each did not stop: %d calls", n)
	}
	if ix.Len() != 110 {
		t.Fatalf("Len = %d", ix.Len())
	}
	New().Each(func(Location) bool { t.Fatal("Each on an empty index"); return false })
}

func TestEmpty(t *testing.T) {
	ix := New()
	r := rand.New(rand.NewPCG(80, 81))
	id := randID(r)
	if _, ok := ix.Lookup(pack.DataBlob, id); ok || ix.Has(pack.DataBlob, id) || ix.LookupAll(pack.DataBlob, id) != nil {
		t.Fatal("empty index finds a blob")
	}
	if ix.Len() != 0 || len(ix.Packs()) != 0 || ix.MemoryBytes() <= 0 {
		t.Fatal("empty index not empty")
	}
	ix.AddPack(id, nil)
	ix.AddFile(&File{Packs: []PackBlobs{{Pack: id}}})
	if len(ix.Packs()) != 0 {
		t.Fatal("a pack without blobs was recorded")
	}
	ix.RemovePacks(map[chunk.ID]struct{}{id: {}})
	ix.RemovePacks(nil)
}

func TestMemoryBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(90, 91))
	ix := New()
	f := randFile(r, 200, 1000, 0)
	ix.AddFile(f)
	ix.mu.Lock()
	ix.mergeLocked()
	ix.mu.Unlock()
	per := float64(ix.MemoryBytes()) / float64(ix.Len())
	// 46 bytes per entry plus the 256 KiB bucket table over ~100k entries.
	if per < 46 || per > 54 {
		t.Fatalf("%.1f bytes per entry", per)
	}
}

// TestSkewedIDs uses IDs that share long prefixes, so buckets are uneven and
// comparisons must look past the first eight bytes.
func TestSkewedIDs(t *testing.T) {
	r := rand.New(rand.NewPCG(95, 96))
	ix := New()
	ref := refIndex{}
	for p := range 30 {
		blobs := make([]pack.Blob, 500)
		for i := range blobs {
			b := randBlob(r)
			copy(b.ID[:], "\x00\x00\x00\x07sameprefix") // one bucket
			if i%3 == 0 {
				b.ID[4] = byte(r.IntN(3)) // a few buckets
			}
			b.Offset = uint32(i)
			blobs[i] = b
		}
		if p%5 == 0 && p > 0 {
			blobs[0] = ix.PackBlobs(ix.Packs()[0])[0] // a duplicate
			blobs[0].Offset = 0
		}
		id := randID(r)
		ix.AddPack(id, blobs)
		ref.add(id, blobs)
		if p%10 == 9 {
			ix.mu.Lock()
			ix.mergeLocked()
			ix.mu.Unlock()
		}
	}
	checkAgainst(t, ix, ref)
	var id chunk.ID
	copy(id[:], "\x00\x00\x00\x07sameprefix")
	if ix.Has(pack.DataBlob, id) {
		t.Fatal("found a missing ID")
	}
}

// addNew is add, skipping locations already present, as the index does.
func (ref refIndex) addNew(p chunk.ID, blobs []pack.Blob) {
	for _, b := range blobs {
		k := key{b.ID, b.Type}
		l := Location{p, b}
		if !slices.Contains(ref[k], l) {
			ref[k] = append(ref[k], l)
		}
	}
}

// TestAddFilesBulk loads files large enough for the sort-and-merge path on
// top of entries in main and in the tail, with duplicates of all kinds.
func TestAddFilesBulk(t *testing.T) {
	r := rand.New(rand.NewPCG(97, 98))
	ix := New()
	ref := refIndex{}
	var old []PackBlobs
	add := func(p chunk.ID, blobs []pack.Blob) {
		ix.AddPack(p, blobs)
		ref.addNew(p, blobs)
		old = append(old, PackBlobs{p, blobs})
	}
	for range 30 { // into main
		f := randFile(r, 1, 300, 0)
		add(f.Packs[0].Pack, f.Packs[0].Blobs)
	}
	ix.mu.Lock()
	ix.mergeLocked()
	ix.mu.Unlock()
	for range 5 { // stays in the tail
		f := randFile(r, 1, 100, 0)
		add(f.Packs[0].Pack, f.Packs[0].Blobs)
	}
	if len(ix.tail) == 0 || len(ix.main) == 0 {
		t.Fatal("setup: want entries in main and tail")
	}

	var files []*File
	for range 10 {
		f := randFile(r, 20, 100, 0)
		for i := range f.Packs {
			pb := &f.Packs[i]
			if len(pb.Blobs) > 1 && r.IntN(3) == 0 {
				// The same blob in another pack (main or tail).
				o := old[r.IntN(len(old))]
				if len(o.Blobs) > 0 {
					pb.Blobs[0] = o.Blobs[r.IntN(len(o.Blobs))]
				}
			}
		}
		files = append(files, f)
	}
	files = append(files, files[3])                                   // a file listed twice
	files = append(files, &File{Packs: []PackBlobs{old[2], old[33]}}) // known packs again
	var want int
	for _, f := range files {
		for _, pb := range f.Packs {
			ref.addNew(pb.Pack, pb.Blobs)
		}
		want += f.NumBlobs()
	}
	if want <= ix.tailLimit() {
		t.Fatalf("setup: %d blobs take the tail path", want)
	}
	pending := ix.Pending()
	ix.AddFiles(files)
	if !filesEqual(ix.Pending(), pending) {
		t.Fatal("AddFiles changed the pending set")
	}
	if len(ix.tail) != 0 {
		t.Fatal("bulk path left a tail")
	}
	checkAgainst(t, ix, ref)
}

// EachFile with a skip function yields the index without those packs, as
// removing them and calling Files would, and stops at fn's error.
func TestEachFileSkip(t *testing.T) {
	r := rand.New(rand.NewPCG(50, 51))
	ix, without := New(), New()
	var packs []chunk.ID
	for i := range 100 {
		blobs := make([]pack.Blob, r.IntN(50)+1)
		for j := range blobs {
			blobs[j] = randBlob(r)
		}
		id := randID(r)
		packs = append(packs, id)
		ix.AddPack(id, blobs)
		if i%3 != 0 {
			without.AddPack(id, blobs)
		}
	}
	skip := func(id chunk.ID) bool { return slices.Index(packs, id)%3 == 0 }
	got := New()
	files := 0
	if err := ix.EachFile(64, skip, func(f *File) error {
		if f.NumBlobs() > 64 {
			t.Fatalf("file of %d blobs", f.NumBlobs())
		}
		files++
		got.AddFile(f)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sortedLocations(got), sortedLocations(without)) || files < 2 {
		t.Fatalf("EachFile with skip differs from the index without those packs (%d files)", files)
	}
	stop := errors.New("stop")
	calls := 0
	if err := ix.EachFile(10, nil, func(*File) error { calls++; return stop }); err != stop || calls != 1 {
		t.Fatalf("EachFile after an error: %v, %d calls", err, calls)
	}
	if err := New().EachFile(10, nil, func(f *File) error { calls++; return nil }); err != nil || calls != 2 {
		t.Fatalf("empty index: %v, %d calls", err, calls)
	}
}
