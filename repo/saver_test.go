package repo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/repo"
	"golang.org/x/sync/errgroup"
)

func TestPackBuffersFor(t *testing.T) {
	const MiB = 1 << 20
	tests := []struct {
		name         string
		memory       int64
		wantBuffers  int
		wantPackSize int
	}{
		{"default 80MiB: two smaller packs, one filled, one uploaded", 80 * MiB, 2, 12*MiB - 256<<10},
		{"S3 default 112MiB: two uploads while one fills", 112 * MiB, 3, 16 * MiB},
		{"room for three", 120 * MiB, 3, 16 * MiB},
		{"at most eight", 1 << 30, 8, 16 * MiB},
		{"72MiB: smaller packs still", 72 * MiB, 2, 8*MiB - 256<<10},
		{"the minimum: two of the smallest packs", repo.MinMemory, 2, 4 * MiB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, size := repo.PackBuffersFor(tt.memory, 16*MiB)
			if b != tt.wantBuffers || size != tt.wantPackSize {
				t.Errorf("PackBuffersFor(%d MiB) = %d buffers of %d, want %d of %d", tt.memory/MiB, b, size, tt.wantBuffers, tt.wantPackSize)
			}
		})
	}
}

// TestSaverReusesPackBuffers saves blobs through sessions whose pack
// buffers are scarce (two, so every pack waits for the upload before the
// last) and whose blobs often do not fit what is left of the open pack
// (closed early then), some not even an empty one, with buffers handed
// back through SaveRelease, and reads every blob back.
func TestSaverReusesPackBuffers(t *testing.T) {
	ctx := t.Context()
	tests := []struct {
		name  string
		opts  repo.SaverOptions
		blobs int
	}{
		{"two buffers, one uploader", repo.SaverOptions{PackSize: 64 << 10, PackBuffers: 2, Uploaders: 1, Encoders: 2}, 300},
		{"three buffers, two uploaders", repo.SaverOptions{PackSize: 64 << 10, PackBuffers: 3, Uploaders: 2, Encoders: 3}, 300},
		// The budget's packs are 4 MiB; 300 blobs stored about that much,
		// so the test got one pack or two depending on the order the
		// encoders finished in (one in 10 runs). 1,500 make 6.
		{"from a memory budget", repo.SaverOptions{Memory: repo.MinMemory}, 1500},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := memstore.New()
			r := initRepo(t, st)
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			var blobs [][]byte
			for range tt.blobs {
				n := 1 + rng.IntN(40<<10)
				if rng.IntN(50) == 0 {
					n = 1<<20 + 200<<10 // larger than a whole pack buffer of the small packs
				}
				b := make([]byte, n)
				for j := range b {
					b[j] = byte(rng.IntN(4)) // compressible, so stored sizes vary
				}
				blobs = append(blobs, b)
			}
			var mu sync.Mutex
			released := 0
			stats, err := r.WithSaver(ctx, tt.opts, func(ctx context.Context, s *repo.Saver) error {
				for _, b := range blobs {
					id := r.Hasher().Sum(b)
					if !s.Reserve(pack.DataBlob, id) {
						continue
					}
					buf := bytes.Clone(b)
					if err := s.SaveRelease(ctx, pack.DataBlob, id, buf, nil, func(got []byte) {
						mu.Lock()
						released++
						mu.Unlock()
						clear(got) // the saver must be done with it
					}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if int(stats.Blobs) != released {
				t.Errorf("%d blobs saved, %d buffers released", stats.Blobs, released)
			}
			if stats.Packs < 2 {
				t.Errorf("%d packs; the test wants several", stats.Packs)
			}
			t.Logf("%d blobs in %d packs", stats.Blobs, stats.Packs)
			r2 := reopen(t, st)
			if err := r2.LoadIndex(ctx); err != nil {
				t.Fatal(err)
			}
			for _, b := range blobs {
				id := r.Hasher().Sum(b)
				got, err := r2.LoadBlob(ctx, pack.DataBlob, id, nil)
				if err != nil {
					t.Fatalf("blob %s: %v", id.Short(), err)
				}
				if !bytes.Equal(got, b) {
					t.Fatalf("blob %s: read back %d different bytes", id.Short(), len(got))
				}
			}
		})
	}
}

// TestSaverReportsIndexGrowth: what a backup adds to the index (and the
// index file it has yet to write) is reported to OnIndexLoaded as it
// grows, so that the command's memory limit grows with it. Without it a
// backup of 200,000 small files ran the collector without a pause for
// its second half.
func TestSaverReportsIndexGrowth(t *testing.T) {
	r := initRepo(t, memstore.New())
	var heard []int
	r.OnIndexLoaded(func(n int) { heard = append(heard, n) })
	const blobs = 30000
	_, err := r.WithSaver(t.Context(), repo.SaverOptions{PackSize: 64 << 10}, func(ctx context.Context, s *repo.Saver) error {
		for i := range blobs {
			data := fmt.Appendf(nil, "blob %d", i)
			if _, err := s.SaveIfNew(ctx, pack.DataBlob, r.Hasher().Sum(data), data, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(heard) < 3 {
		t.Fatalf("OnIndexLoaded heard %v: the load and no growth", heard)
	}
	for i := 1; i < len(heard); i++ {
		if heard[i] <= heard[i-1] {
			t.Fatalf("reports %v do not grow", heard)
		}
	}
	// Each new blob holds an index entry (47 bytes) and a pending index
	// file entry; the last report comes within a step of the end.
	if grew := heard[len(heard)-1] - heard[0]; grew < blobs*64-(1<<20) {
		t.Errorf("reported growth %d bytes for %d blobs, want at least %d", grew, blobs, blobs*64-(1<<20))
	}
}

// TestSaveInline saves small blobs on the callers' goroutines (as the
// archiver's readers of small files do) beside blobs queued to the
// encoders, from more goroutines than cores, into packs scarce enough
// that inline callers close packs and wait for buffers too; each caller
// clobbers its buffer as soon as SaveInline returns. Every blob reads
// back, and the stored sizes add up in the counter.
func TestSaveInline(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	r := initRepo(t, st)
	rng := rand.New(rand.NewPCG(7, 8))
	var blobs [][]byte
	for i := range 600 {
		n := 1 + rng.IntN(repo.InlineMax)
		switch i % 10 {
		case 0:
			n = repo.InlineMax + 1 + rng.IntN(200<<10) // too large: to the encoders
		case 1:
			n = repo.InlineMax
		}
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(rng.IntN(6))
		}
		blobs = append(blobs, b)
	}
	var counter atomic.Uint64
	opts := repo.SaverOptions{PackSize: 256 << 10, PackBuffers: 2, Uploaders: 1, Encoders: 2}
	stats, err := r.WithSaver(ctx, opts, func(ctx context.Context, s *repo.Saver) error {
		g, ctx := errgroup.WithContext(ctx)
		const callers = 6
		for c := range callers {
			g.Go(func() error {
				for i := c; i < len(blobs); i += callers {
					id := r.Hasher().Sum(blobs[i])
					if !s.Reserve(pack.DataBlob, id) {
						continue
					}
					buf := bytes.Clone(blobs[i])
					if err := s.SaveInline(ctx, pack.DataBlob, id, buf, &counter); err != nil {
						return err
					}
					if len(buf) <= repo.InlineMax {
						clear(buf) // the saver is done with it
					}
				}
				return nil
			})
		}
		return g.Wait()
	})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Packs < 3 {
		t.Errorf("%d packs; the test wants inline callers to fill several", stats.Packs)
	}
	if counter.Load() != stats.StoredBytes {
		t.Errorf("counter has %d stored bytes, the session %d", counter.Load(), stats.StoredBytes)
	}
	r2 := reopen(t, st)
	if err := r2.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	for i, b := range blobs {
		id := r.Hasher().Sum(b)
		got, err := r2.LoadBlob(ctx, pack.DataBlob, id, nil)
		if err != nil {
			t.Fatalf("blob %d (%d bytes): %v", i, len(b), err)
		}
		if !bytes.Equal(got, b) {
			t.Fatalf("blob %d (%d bytes): read back %d different bytes", i, len(b), len(got))
		}
	}

	// A session that has failed takes no more inline saves.
	cctx, cancel := context.WithCancel(ctx)
	_, err = r.WithSaver(cctx, opts, func(ctx context.Context, s *repo.Saver) error {
		cancel()
		data := []byte("after the end")
		id := r.Hasher().Sum(data)
		if !s.Reserve(pack.DataBlob, id) {
			t.Error("a new blob was not reserved")
		}
		return s.SaveInline(ctx, pack.DataBlob, id, data, nil)
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("SaveInline in a cancelled session: %v, want context.Canceled", err)
	}
}
