//go:build linux

package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/chunk"
)

// The chain ceiling must measure the chain on exactly the data set's bytes,
// cut as cairn cuts them, whatever the batching: a ceiling over other chunks
// or fewer bytes would flatter or blame cairn.
func TestMeasureChain(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 6))
	text := func(n int) []byte {
		var b bytes.Buffer
		for i := 0; b.Len() < n; i++ {
			fmt.Fprintf(&b, "INSERT INTO t VALUES (%d, 'row %d', %d);\n", i, rng.IntN(1000), rng.IntN(1<<30))
		}
		return b.Bytes()[:n]
	}
	random := make([]byte, 3<<20)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	big := text(5 << 20)
	files := map[string][]byte{
		"a/big.sql":      big,
		"a/big-copy.sql": big, // deduplicated: cut and hashed, never encoded again
		"b/random.bin":   random,
		"b/empty":        nil,
	}
	for i := range 300 {
		files[fmt.Sprintf("c/small%03d.txt", i)] = text(100 + rng.IntN(9000))
	}
	var total int64
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		total += int64(len(data))
	}
	params, err := chunk.DefaultStreamParams() // small chunks: several per big file
	if err != nil {
		t.Fatal(err)
	}
	// What cairn's chunker cuts, file by file.
	var wantChunks int
	ch := chunk.NewChunker(params, nil)
	for _, data := range files {
		ch.Reset(bytes.NewReader(data))
		for {
			if _, err := ch.Next(nil); err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			wantChunks++
		}
	}
	bigChunks := 0
	ch.Reset(bytes.NewReader(big))
	for {
		if _, err := ch.Next(nil); err != nil {
			break
		}
		bigChunks++
	}
	if bigChunks < 4 {
		t.Fatalf("the 5 MiB file is %d chunks; the test needs several", bigChunks)
	}

	// One batch for everything, one per file or so, and a batch smaller
	// than any big file.
	for _, batch := range []int{1 << 30, 64 << 10, 1} {
		t.Run(fmt.Sprint(batch), func(t *testing.T) {
			c, err := measureChain(dir, params, batch)
			if err != nil {
				t.Fatal(err)
			}
			if c.Bytes != total {
				t.Errorf("measured %d bytes, the tree has %d", c.Bytes, total)
			}
			if c.Chunks != wantChunks {
				t.Errorf("cut %d chunks, the chunker cuts %d", c.Chunks, wantChunks)
			}
			if c.NewChunks != wantChunks-bigChunks {
				t.Errorf("%d new chunks, want %d (all but the copy's)", c.NewChunks, wantChunks-bigChunks)
			}
			// The random file is stored raw (and sealed); the text shrinks.
			if c.Stored < int64(len(random)) || c.Stored > int64(len(random))+total/2 {
				t.Errorf("stored %d bytes of %d (%d random)", c.Stored, total, len(random))
			}
			for name, d := range map[string]time.Duration{"cut": c.Cut, "hash": c.Hash, "encode": c.Encode, "pack id": c.PackID} {
				if d <= 0 {
					t.Errorf("%s took %v", name, d)
				}
			}
		})
	}

	// A stream is a single file.
	c, err := measureChain(filepath.Join(dir, "a/big.sql"), params, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if c.Bytes != int64(len(big)) || c.Chunks != bigChunks || c.NewChunks != bigChunks {
		t.Errorf("stream: %d bytes in %d chunks (%d new), want %d in %d", c.Bytes, c.Chunks, c.NewChunks, len(big), bigChunks)
	}
	if _, err := measureChain(filepath.Join(dir, "missing"), params, 1<<30); err == nil {
		t.Error("a missing source measured without error")
	}
}

func TestChainCeiling(t *testing.T) {
	s := time.Second
	cases := []struct {
		name   string
		cost   chainCost
		cores  int
		stream bool
		want   time.Duration
	}{
		{"tree spreads over the cores", chainCost{Cut: s, Hash: s, Encode: 2 * s}, 2, false, 2 * s},
		{"stream spreads while cutting is under its share", chainCost{Cut: s, Hash: s, Encode: 2 * s}, 2, true, 2 * s},
		{"stream waits on its one cutter", chainCost{Cut: 3 * s, Encode: s}, 2, true, 3 * s},
		{"tree cuts on several readers", chainCost{Cut: 3 * s, Encode: s}, 2, false, 2 * s},
		{"one core", chainCost{Cut: s, Hash: s, Encode: s, PackID: s}, 1, true, 4 * s},
	}
	for _, tc := range cases {
		if got := tc.cost.ceiling(tc.cores, tc.stream); got != tc.want {
			t.Errorf("%s: ceiling %v, want %v", tc.name, got, tc.want)
		}
	}
}
