//go:build linux

package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/pack"
)

// ceilingTool is the reference for first backups: the time cairn's own
// chain (cut, keyed BLAKE3, zstd and XChaCha20-Poly1305, the unkeyed
// BLAKE3 that names packs) needs for the data set's v1 bytes, already in
// memory, on all the cores the bench has. Issue 12 states its first-backup
// targets against kopia and restic 0.14 "i.e. ≥ 85% of the two-core
// ceiling": this column measures that ceiling on the same data in the same
// run, so the table tells how much of a first backup is the chain itself
// and how much is everything around it (reading files, syscalls, packing,
// the index, the key derivation, scheduling).
//
// It is computed, not run: the bench times each stage serially on one
// goroutine over batches of the data, untimed reading aside, and divides by
// the cores. A stream is cut on one goroutine, so its ceiling is never below
// its cutting time alone. Its step is the data set's first backup; CPU time
// is the serial sum of the stages.
const ceilingTool = "chain ceiling"

// ceilingBatch is how many input bytes are read into memory before the
// stages run over them, each under one timer: a timer per small file
// would time 200,000 files' worth of clock reads.
const ceilingBatch = 64 << 20

// chainCost is what the chain costs on one input, stage by stage.
type chainCost struct {
	Bytes     int64 `json:"bytes"`      // input bytes
	Chunks    int   `json:"chunks"`     // chunks cut
	NewChunks int   `json:"new_chunks"` // chunks not seen before in this input (encoded)
	Stored    int64 `json:"stored"`     // encoded bytes of the new chunks

	Cut    time.Duration `json:"cut_ns"`    // content-defined chunking
	Hash   time.Duration `json:"hash_ns"`   // keyed BLAKE3 blob IDs
	Encode time.Duration `json:"encode_ns"` // zstd (with its probe) and AEAD
	PackID time.Duration `json:"pack_id_ns"`
}

func (c chainCost) total() time.Duration { return c.Cut + c.Hash + c.Encode + c.PackID }

// ceiling is the least wall time the chain could take on cores cores:
// its serial cost spread evenly, but for a stream never less than its
// cutting, which one goroutine does.
func (c chainCost) ceiling(cores int, stream bool) time.Duration {
	t := c.total() / time.Duration(max(cores, 1))
	if stream {
		t = max(t, c.Cut)
	}
	return t
}

// chain measures the chain on a set of inputs with fresh repository
// parameters (a random polynomial and keys, as `cairn init` makes).
type chain struct {
	batchSize int
	hasher    *chunk.Hasher
	enc       *pack.Encoder
	seen      map[chunk.ID]struct{}
	ch        *chunk.Chunker
	cost      chainCost

	batch  []byte // file contents read, not yet measured
	ends   []int  // end offset of each file in batch
	arena  []byte // the batch's chunks, cut
	chunks [][]byte
	ids    []chunk.ID
	out    []byte
}

func newChain(p chunk.Params, batchSize int) (*chain, error) {
	var idKey [chunk.KeySize]byte
	var encKey pack.Key
	if _, err := rand.Read(idKey[:]); err != nil {
		return nil, err
	}
	if _, err := rand.Read(encKey[:]); err != nil {
		return nil, err
	}
	return &chain{
		batchSize: batchSize, hasher: chunk.NewHasher(idKey), enc: pack.NewEncoder(encKey),
		seen: map[chunk.ID]struct{}{}, ch: chunk.NewChunker(p, nil),
	}, nil
}

// add reads one input into the batch, measuring the batch when it is full.
func (c *chain) add(r io.Reader) error {
	start := len(c.batch)
	for {
		if len(c.batch) == cap(c.batch) {
			c.batch = append(c.batch, 0)[:len(c.batch)]
		}
		n, err := r.Read(c.batch[len(c.batch):cap(c.batch)])
		c.batch = c.batch[:len(c.batch)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			c.batch = c.batch[:start]
			return err
		}
	}
	c.ends = append(c.ends, len(c.batch))
	if len(c.batch) >= c.batchSize {
		c.flush()
	}
	return nil
}

// flush runs the stages over the batch, one timer each.
func (c *chain) flush() {
	if len(c.ends) == 0 {
		return
	}
	// Every chunk fits in the arena without growing it: the chunks of a
	// file are at most its length, and a file's last chunk ends at its end.
	if cap(c.arena) < len(c.batch) {
		c.arena = prefault(make([]byte, 0, len(c.batch)))
	}
	arena, chunks := c.arena[:0], c.chunks[:0]

	t := time.Now()
	from := 0
	for _, end := range c.ends {
		c.ch.Reset(bytes.NewReader(c.batch[from:end]))
		from = end
		for {
			data, err := c.ch.Next(arena[len(arena):])
			if err != nil {
				break // io.EOF: a bytes.Reader fails no other way
			}
			chunks = append(chunks, data)
			arena = arena[:len(arena)+len(data)]
		}
	}
	c.cost.Cut += time.Since(t)

	t = time.Now()
	ids := c.ids[:0]
	for _, d := range chunks {
		ids = append(ids, c.hasher.Sum(d))
	}
	c.cost.Hash += time.Since(t)

	// The dedup lookup is the index's job, not the chain's: untimed.
	var fresh [][]byte
	var freshIDs []chunk.ID
	for i, id := range ids {
		if _, ok := c.seen[id]; !ok {
			c.seen[id] = struct{}{}
			fresh, freshIDs = append(fresh, chunks[i]), append(freshIDs, id)
		}
	}

	// Room for every stored blob, as Encode reserves it, so that Encode
	// never reallocates: it grows dst to just what it needs, and appending
	// each blob to a full buffer would copy the batch again per blob.
	need := 0
	for _, d := range fresh {
		need += pack.Overhead + len(d) + len(d)>>6 + 64
	}
	if cap(c.out) < need {
		c.out = prefault(make([]byte, 0, need))
	}

	t = time.Now()
	out := c.out[:0]
	for i, d := range fresh {
		out, _ = c.enc.Encode(out, pack.DataBlob, freshIDs[i], d)
	}
	c.cost.Encode += time.Since(t)

	t = time.Now()
	_ = chunk.ObjectID(out)
	c.cost.PackID += time.Since(t)

	c.cost.Bytes += int64(len(c.batch))
	c.cost.Chunks += len(chunks)
	c.cost.NewChunks += len(fresh)
	c.cost.Stored += int64(len(out))
	c.batch, c.ends, c.chunks, c.ids, c.out = c.batch[:0], c.ends[:0], chunks[:0], ids[:0], out[:0]
}

// prefault touches every page of b's storage, untimed. A new large buffer
// is fresh memory from the kernel, and its first write faults each page
// in: on the bench's pg_dump, cut as one 330 MB batch, that made cutting
// 60% of the serial chain instead of the 20-25% it is on a reused buffer.
// cairn's own buffers are small and reused, so the faults are not its.
func prefault(b []byte) []byte {
	s := b[:cap(b)]
	for i := 0; i < len(s); i += 4096 {
		s[i] = 0
	}
	return b
}

// measureChain measures the chain with chunking parameters p on src: every
// regular file under it, or src itself when it is a file (a stream).
func measureChain(src string, p chunk.Params, batchSize int) (chainCost, error) {
	c, err := newChain(p, batchSize)
	if err != nil {
		return chainCost{}, err
	}
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := c.add(f); err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		return nil
	})
	if err != nil {
		return chainCost{}, err
	}
	c.flush()
	return c.cost, nil
}

// ceilingReference measures the chain on the data set's v1 and records it
// as the first backup of ceilingTool.
func (b *bench) ceilingReference(ds *dataset, rep int) runResult {
	res := runResult{Rep: rep, Tool: ceilingTool, Dataset: ds.name}
	err := func() error {
		if err := ds.reset(); err != nil {
			return err
		}
		stream := ds.v2Dir == ""
		params := chunk.DefaultParams
		if stream {
			params = chunk.DefaultStreamParams
		}
		p, err := params()
		if err != nil {
			return err
		}
		cost, err := measureChain(ds.src, p, ceilingBatch)
		// A stream's batch is all of it (500 MiB and its chunks): give it
		// back before the next tool runs, not when the scavenger gets to it.
		debug.FreeOSMemory()
		if err != nil {
			return err
		}
		if cost.Bytes != ds.v1Bytes {
			return fmt.Errorf("chain ceiling: read %d bytes, v1 has %d", cost.Bytes, ds.v1Bytes)
		}
		cores := runtime.GOMAXPROCS(0)
		wall := cost.ceiling(cores, stream)
		s := stepResult{
			Step: stepBackup1, Command: fmt.Sprintf("in-process chain on %d cores", cores),
			WallSec: wall.Seconds(), UserSec: cost.total().Seconds(),
			InputBytes: cost.Bytes, MBps: float64(cost.Bytes) / 1e6 / wall.Seconds(),
		}
		res.Steps = append(res.Steps, s)
		res.Chain = &cost
		tot := cost.total().Seconds()
		pct := func(d time.Duration) float64 { return 100 * d.Seconds() / tot }
		b.logf("[%s/%s] %-8s %7.2f s %8.1f MB/s  serial %6.2f s: cut %.0f%%, hash %.0f%%, zstd+aead %.0f%%, pack id %.0f%%; %d of %d chunks new, stored %.1f%%",
			ceilingTool, ds.name, stepBackup1, s.WallSec, s.MBps, tot, pct(cost.Cut), pct(cost.Hash), pct(cost.Encode), pct(cost.PackID),
			cost.NewChunks, cost.Chunks, 100*float64(cost.Stored)/float64(cost.Bytes))
		return nil
	}()
	if err != nil {
		res.Error = err.Error()
		b.logf("[%s/%s] FAILED: %v", ceilingTool, ds.name, err)
	}
	return res
}
