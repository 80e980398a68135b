package repo_test

import (
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/index"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/store/local"
)

// heapPeak runs fn and returns the highest HeapAlloc seen meanwhile (read
// every millisecond, so garbage not yet collected counts) above the heap
// after a GC before fn.
func heapPeak(fn func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapAlloc, ms.HeapAlloc
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	fn()
	close(stop)
	wg.Wait()
	runtime.ReadMemStats(&ms)
	return max(peak, ms.HeapAlloc) - base
}

// LoadIndex's heap peaks close to the index it builds: index files are
// decoded straight into the entry array and sorted in place, and only a
// bounded share of files is held at a time. It peaked at 3.5 × the index
// when it decoded every file and then sorted and merged copies.
func TestLoadIndexMemory(t *testing.T) {
	const files, perFile, perPack = 6, 100_000, 500
	ctx := t.Context()
	st, err := local.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := initRepo(t, st)
	rng := rand.New(rand.NewPCG(61, 62))
	randID := func() (id chunk.ID) {
		for i := range id {
			id[i] = byte(rng.Uint32())
		}
		return id
	}
	for range files {
		f := &index.File{}
		for range perFile / perPack {
			pb := index.PackBlobs{Pack: randID(), Blobs: make([]pack.Blob, perPack)}
			for i := range pb.Blobs {
				pb.Blobs[i] = pack.Blob{Type: pack.DataBlob, ID: randID(), Offset: uint32(i * 1000), Length: 1000, RawLength: 900}
			}
			f.Packs = append(f.Packs, pb)
		}
		if _, err := r.WriteIndex(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	r = nil

	// As the cairn command runs (main sets GOGC=25).
	defer debug.SetGCPercent(debug.SetGCPercent(25))
	lr := reopen(t, st)
	var loadErr error
	start := time.Now()
	peak := heapPeak(func() { loadErr = lr.LoadIndex(ctx) })
	elapsed := time.Since(start)
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	ix := lr.Index()
	if ix.Len() != files*perFile {
		t.Fatalf("Len = %d, want %d", ix.Len(), files*perFile)
	}
	size := ix.MemoryBytes()
	ratio := float64(peak) / float64(size)
	t.Logf("%d entries in %d files: index %.1f MiB (%.1f bytes/entry), loaded in %v; heap peaked %.1f MiB above the start = %.2f × the index",
		ix.Len(), files, float64(size)/(1<<20), float64(size)/float64(ix.Len()), elapsed.Round(time.Millisecond), float64(peak)/(1<<20), ratio)
	if ratio > 1.5 {
		t.Fatalf("LoadIndex's heap peaked at %.2f × the index", ratio)
	}
}
