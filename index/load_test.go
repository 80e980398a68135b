package index

import (
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/pack"
)

// loaderFiles returns n random files with duplicates of all kinds: a blob
// stored again in a later pack, the same pack (identical entries) listed
// in two files, a whole file listed twice, a pack split over two files.
// Large enough (> 2^radixBits entries in all) for sortEntries' radix pass.
func loaderFiles(r *rand.Rand, n int) []*File {
	var files []*File
	var old []PackBlobs
	for range n {
		f := randFile(r, 40, 300, 0)
		for i := range f.Packs {
			pb := &f.Packs[i]
			if len(pb.Blobs) > 1 && len(old) > 0 && r.IntN(3) == 0 {
				o := old[r.IntN(len(old))]
				if len(o.Blobs) > 0 {
					pb.Blobs[0] = o.Blobs[r.IntN(len(o.Blobs))]
				}
			}
		}
		if len(old) > 0 {
			f.Packs = append(f.Packs, old[r.IntN(len(old))]) // a known pack again
		}
		old = append(old, f.Packs...)
		files = append(files, f)
	}
	files = append(files, files[3]) // a file listed twice
	last := files[len(files)-1].Packs[0]
	half := len(last.Blobs) / 2
	files[len(files)-2].Packs = append(files[len(files)-2].Packs, PackBlobs{last.Pack, last.Blobs[:half]})
	return files
}

// A Loader fed files in any order from several goroutines builds the index
// that adding the kept files in sequence order builds: same entries, same
// order among copies of a blob, same packs; dropped and undecodable files
// leave nothing behind, also not their packs.
func TestLoaderMatchesReference(t *testing.T) {
	for _, into := range []string{"empty", "non-empty"} {
		t.Run(into, func(t *testing.T) {
			r := rand.New(rand.NewPCG(31, 32))
			ix := New()
			ref := refIndex{}
			if into == "non-empty" {
				for range 3 {
					f := randFile(r, 1, 200, 0)
					ix.AddPack(f.Packs[0].Pack, f.Packs[0].Blobs)
					ref.addNew(f.Packs[0].Pack, f.Packs[0].Blobs)
				}
			}
			files := loaderFiles(r, 16)
			dropped := map[int]bool{2: true, 9: true}
			data := make([][]byte, len(files))
			var total int64
			for i, f := range files {
				b, err := f.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				data[i] = b
				total += int64(len(b))
			}
			// File 5 is cut short: all its packs are decoded into the array
			// before the error, and must go.
			bad := 5
			data[bad] = data[bad][:len(data[bad])-1]

			l := NewLoader(total)
			order := r.Perm(len(files))
			var wg sync.WaitGroup
			errs := make([]error, len(files))
			for _, i := range order {
				wg.Go(func() { _, errs[i] = l.Add(i, data[i]) })
			}
			wg.Wait()
			for i, err := range errs {
				if (err != nil) != (i == bad) {
					t.Fatalf("Add file %d: %v", i, err)
				}
			}
			if !errors.Is(errs[bad], ErrCorrupt) {
				t.Fatalf("damaged file: %v, want ErrCorrupt", errs[bad])
			}
			l.AddTo(ix, func(seq int) bool { return dropped[seq] })
			for i, f := range files {
				if dropped[i] || i == bad {
					continue
				}
				for _, pb := range f.Packs {
					ref.addNew(pb.Pack, pb.Blobs)
				}
			}
			if ref.len() < 1<<radixBits {
				t.Fatalf("setup: %d entries do not reach the radix sort", ref.len())
			}
			checkAgainst(t, ix, ref)
		})
	}
}

// Add reports what Decode reports, and the supersedes list.
func TestLoaderAddErrors(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	f := randFile(r, 3, 5, 2)
	good, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	l := NewLoader(0)
	sup, err := l.Add(0, good)
	if err != nil || !slices.Equal(sup, f.Supersedes) {
		t.Fatalf("Add = %v, %v; want %v", sup, err, f.Supersedes)
	}
	for _, data := range [][]byte{nil, []byte("CIDX"), []byte("XIDX\x01\x00\x00"), []byte("CIDX\x02\x00\x00"), good[:len(good)-1], append(slices.Clone(good), 0)} {
		_, want := Decode(data)
		_, got := l.Add(1, data)
		if want == nil || got == nil || got.Error() != want.Error() {
			t.Fatalf("Add(%q...) = %v, Decode says %v", data[:min(len(data), 8)], got, want)
		}
	}
	ix := New()
	l.AddTo(ix, nil)
	if ix.Len() != f.NumBlobs() {
		t.Fatalf("Len = %d, want %d", ix.Len(), f.NumBlobs())
	}
}

// The point of the Loader: loading holds about one copy of the entries.
// Everything it allocates, garbage included (TotalAlloc, so no sampling),
// stays within 1.25 × the loaded index's size when the size hint is
// right. (Decode + AddFiles allocated 3.5 × and more.)
func TestLoaderMemory(t *testing.T) {
	r := rand.New(rand.NewPCG(51, 52))
	const n, perFile, perPack = 400_000, 100_000, 500
	var data [][]byte
	var total int64
	for len(data)*perFile < n {
		f := &File{}
		for range perFile / perPack {
			pb := PackBlobs{Pack: randID(r), Blobs: make([]pack.Blob, perPack)}
			for i := range pb.Blobs {
				pb.Blobs[i] = randBlob(r)
			}
			f.Packs = append(f.Packs, pb)
		}
		b, err := f.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, b)
		total += int64(len(b))
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	ix := New()
	l := NewLoader(total)
	for i, b := range data {
		if _, err := l.Add(i, b); err != nil {
			t.Fatal(err)
		}
	}
	l.AddTo(ix, nil)
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	size := ix.MemoryBytes()
	ratio := float64(allocated) / float64(size)
	t.Logf("%d entries: index %.1f MiB (%.1f bytes/entry), loading allocated %.1f MiB = %.2f × the index",
		ix.Len(), float64(size)/(1<<20), float64(size)/float64(ix.Len()), float64(allocated)/(1<<20), ratio)
	if ix.Len() != n {
		t.Fatalf("Len = %d, want %d", ix.Len(), n)
	}
	if ratio > 1.25 {
		t.Fatalf("loading allocated %.2f × the index", ratio)
	}
	var id chunk.ID
	ix.Each(func(l Location) bool { id = l.Blob.ID; return false })
	if _, ok := ix.Lookup(pack.DataBlob, id); !ok {
		if _, ok := ix.Lookup(pack.TreeBlob, id); !ok {
			t.Fatal("first entry not found")
		}
	}
}
