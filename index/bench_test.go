package index

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/pack"
)

// benchIndex is an index of n random entries, loaded as a repository loads
// its index files, plus the IDs in it.
type benchIndex struct {
	ix  *Index
	ids []chunk.ID
}

var (
	benchMu      sync.Mutex
	benchIndexes = map[int]*benchIndex{}
)

const (
	benchBlobsPerPack = 500
	benchBlobsPerFile = 100_000
)

// getBenchIndex builds (once per size) an index of n entries from index files
// of benchBlobsPerFile blobs in packs of benchBlobsPerPack, decoded by a
// Loader as LoadIndex does.
func getBenchIndex(b *testing.B, n int) *benchIndex {
	benchMu.Lock()
	defer benchMu.Unlock()
	if bi := benchIndexes[n]; bi != nil {
		return bi
	}
	// Only one large index at a time.
	clear(benchIndexes)
	r := rand.New(rand.NewPCG(uint64(n), 1))
	bi := &benchIndex{ix: New(), ids: make([]chunk.ID, 0, n)}
	var files [][]byte
	var total int64
	for len(bi.ids) < n {
		f := &File{}
		for nf := 0; nf < benchBlobsPerFile && len(bi.ids) < n; {
			blobs := make([]pack.Blob, min(benchBlobsPerPack, n-len(bi.ids)))
			for i := range blobs {
				blobs[i] = randBlob(r)
				blobs[i].Type = pack.DataBlob
				bi.ids = append(bi.ids, blobs[i].ID)
			}
			f.Packs = append(f.Packs, PackBlobs{Pack: randID(r), Blobs: blobs})
			nf += len(blobs)
		}
		enc, err := f.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		files = append(files, enc)
		total += int64(len(enc))
	}
	// As LoadIndex builds it.
	start := time.Now()
	l := NewLoader(total)
	for i, enc := range files {
		if _, err := l.Add(i, enc); err != nil {
			b.Fatal(err)
		}
	}
	l.AddTo(bi.ix, nil)
	b.Logf("Loader: loaded %d entries from %d files in %v: MemoryBytes %d, %.1f bytes/entry",
		bi.ix.Len(), len(files), time.Since(start), bi.ix.MemoryBytes(), float64(bi.ix.MemoryBytes())/float64(bi.ix.Len()))
	benchIndexes[n] = bi
	return bi
}

var benchSizes = []int{1_000_000, 5_000_000, 10_000_000}

func BenchmarkLookup(b *testing.B) {
	for _, n := range benchSizes {
		for _, hit := range []bool{true, false} {
			name := "miss"
			if hit {
				name = "hit"
			}
			b.Run(fmt.Sprintf("n=%dM/%s", n/1_000_000, name), func(b *testing.B) {
				bi := getBenchIndex(b, n)
				r := rand.New(rand.NewPCG(7, 7))
				keys := make([]chunk.ID, 1<<16)
				for i := range keys {
					if hit {
						keys[i] = bi.ids[r.IntN(len(bi.ids))]
					} else {
						keys[i] = randID(r)
					}
				}
				cpu := cpuSeconds()
				for i := 0; b.Loop(); i++ {
					if _, ok := bi.ix.Lookup(pack.DataBlob, keys[i&(len(keys)-1)]); ok != hit {
						b.Fatal("wrong result")
					}
				}
				b.ReportMetric(float64(bi.ix.MemoryBytes())/float64(bi.ix.Len()), "bytes/entry")
				if cpu > 0 {
					// CPU time stays meaningful when other processes
					// compete for the CPUs; wall time does not.
					b.ReportMetric((cpuSeconds()-cpu)*1e9/float64(b.N), "cpu-ns/op")
				}
			})
		}
	}
}

// BenchmarkLookupParallel measures lookups from all CPUs at once, as during
// a backup with several hashing goroutines.
func BenchmarkLookupParallel(b *testing.B) {
	bi := getBenchIndex(b, benchSizes[len(benchSizes)-1])
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 9))
		for pb.Next() {
			bi.ix.Has(pack.DataBlob, bi.ids[r.IntN(len(bi.ids))])
		}
	})
}

// BenchmarkAddPack adds packs of 100 new blobs to an index that starts with
// 1M entries, as a backup does after each upload; merges of the tail into
// the main array are included, amortised. One op is one pack.
func BenchmarkAddPack(b *testing.B) {
	const perPack = 100
	r := rand.New(rand.NewPCG(8, 8))
	ix := New()
	f := &File{}
	for range 1_000_000 / benchBlobsPerPack {
		pb := PackBlobs{Pack: randID(r)}
		for range benchBlobsPerPack {
			pb.Blobs = append(pb.Blobs, randBlob(r))
		}
		f.Packs = append(f.Packs, pb)
	}
	ix.AddFile(f)
	f = nil
	packs := make([]PackBlobs, 1<<12)
	for i := range packs {
		packs[i].Pack = randID(r)
		for range perPack {
			packs[i].Blobs = append(packs[i].Blobs, randBlob(r))
		}
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		pb := &packs[i&(len(packs)-1)]
		if i >= len(packs) {
			// Fresh IDs so that every blob is new.
			pb.Pack[0]++
			for j := range pb.Blobs {
				pb.Blobs[j].ID[31]++
			}
		}
		ix.AddPack(pb.Pack, pb.Blobs)
		if i%1024 == 1023 {
			ix.ClearPending(ix.Pending()) // as the backup does after writing an index file
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perPack), "ns/blob")
	b.ReportMetric(float64(ix.Len()), "entries")
}

// BenchmarkMerge measures the longest pause AddPack causes at 5M entries:
// merging a tail into the main array, during which lookups wait.
func BenchmarkMerge(b *testing.B) {
	bi := getBenchIndex(b, benchSizes[len(benchSizes)-1])
	r := rand.New(rand.NewPCG(10, 10))
	for b.Loop() {
		b.StopTimer()
		p := randID(r)
		bl := randBlob(r)
		bl.Type = pack.DataBlob
		bi.ix.AddPack(p, []pack.Blob{bl})
		b.StartTimer()
		bi.ix.mu.Lock()
		bi.ix.mergeLocked()
		bi.ix.mu.Unlock()
		b.StopTimer()
		bi.ix.RemovePacks(map[chunk.ID]struct{}{p: {}})
		bi.ix.ClearPending(bi.ix.Pending())
		b.StartTimer()
	}
}

// encodedFiles returns n random blobs in packs of perPack, encoded as index
// files of benchBlobsPerFile blobs, and their total size.
func encodedFiles(b *testing.B, r *rand.Rand, n, perPack int) ([][]byte, int64) {
	var files [][]byte
	var total int64
	for left := n; left > 0; {
		f := &File{}
		for nf := 0; nf < benchBlobsPerFile && left > 0; {
			blobs := make([]pack.Blob, min(perPack, left))
			for i := range blobs {
				blobs[i] = randBlob(r)
			}
			f.Packs = append(f.Packs, PackBlobs{Pack: randID(r), Blobs: blobs})
			nf += len(blobs)
			left -= len(blobs)
		}
		enc, err := f.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		files = append(files, enc)
		total += int64(len(enc))
	}
	return files, total
}

// BenchmarkLoad loads 5M entries from encoded index files of
// benchBlobsPerFile blobs, as a repository opens its index: the old way
// (Decode every file, then AddFiles) and with a Loader (what LoadIndex
// uses). One op is a whole load; run with -benchtime=1x or a few x.
// B/op is everything allocated, garbage included.
func BenchmarkLoad(b *testing.B) {
	const n = 5_000_000
	data, total := encodedFiles(b, rand.New(rand.NewPCG(uint64(n), 2)), n, benchBlobsPerPack)
	b.Run("DecodeAddFiles", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			files := make([]*File, len(data))
			for i, d := range data {
				f, err := Decode(d)
				if err != nil {
					b.Fatal(err)
				}
				files[i] = f
			}
			ix := New()
			ix.AddFiles(files)
		}
	})
	b.Run("Loader", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			l := NewLoader(total)
			for i, d := range data {
				if _, err := l.Add(i, d); err != nil {
					b.Fatal(err)
				}
			}
			l.AddTo(New(), nil)
		}
	})
}

// BenchmarkMemoryPerPack loads 10M entries as LoadIndex does, with as
// many blobs a pack as a repository of 16 MiB packs holds at 1 MiB stored
// per blob (16: incompressible chunks), 256 KiB (64: dumps compressing
// 4:1) and with the 500 of the other benchmarks: the pack table (a pack
// ID and a map entry per pack) costs per blob what it costs per pack
// divided by blobs a pack. One op is one load; run with -benchtime=1x.
func BenchmarkMemoryPerPack(b *testing.B) {
	const n = 10_000_000
	for _, perPack := range []int{16, 64, 500} {
		b.Run(fmt.Sprintf("blobs/pack=%d", perPack), func(b *testing.B) {
			files, total := encodedFiles(b, rand.New(rand.NewPCG(uint64(perPack), 3)), n, perPack)
			var ix *Index
			for b.Loop() {
				ix = New()
				l := NewLoader(total)
				for i, enc := range files {
					if _, err := l.Add(i, enc); err != nil {
						b.Fatal(err)
					}
				}
				if err := l.AddTo(ix, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(ix.MemoryBytes())/float64(ix.Len()), "bytes/entry")
			b.ReportMetric(float64(len(ix.Packs())), "packs")
		})
	}
}
