package chunk

import (
	"crypto/rand"
	"fmt"
	"io"

	"github.com/restic/chunker"
)

// Params are a repository's chunking parameters. They are stored in the
// repository config; two repositories with equal Params and an equal ID key
// produce identical blobs from identical input.
type Params struct {
	// Algorithm names the chunker; only "rabin-restic" (restic/chunker
	// v0.4.0) exists in format version 1.
	Algorithm string `json:"algorithm"`
	// Polynomial is the irreducible polynomial of the Rabin fingerprint,
	// chosen at random per repository.
	Polynomial uint64 `json:"polynomial"`
	// MinSize and MaxSize bound the chunk size; AverageBits sets the
	// expected size to 2^AverageBits.
	MinSize     uint `json:"min_size"`
	MaxSize     uint `json:"max_size"`
	AverageBits int  `json:"average_bits"`
}

// AlgorithmRabin is the only chunking algorithm of format version 1.
const AlgorithmRabin = "rabin-restic"

// DefaultParams returns fresh parameters with a random polynomial.
//
// The sizes are restic's (512 KiB min, 1 MiB average, 8 MiB max): small enough
// that a 1% change to a dump rewrites about 1% of it when changes cluster, large
// enough that a million-chunk repository's index stays near 50 MiB.
func DefaultParams() (Params, error) {
	return newParams(chunker.MinSize, chunker.MaxSize, 20)
}

// newParams returns the given sizes with a fresh random polynomial.
func newParams(minSize, maxSize uint, averageBits int) (Params, error) {
	pol, err := chunker.DerivePolynomial(rand.Reader)
	if err != nil {
		return Params{}, fmt.Errorf("chunk: choose polynomial: %w", err)
	}
	return Params{
		Algorithm:   AlgorithmRabin,
		Polynomial:  uint64(pol),
		MinSize:     minSize,
		MaxSize:     maxSize,
		AverageBits: averageBits,
	}, nil
}

// Stream chunk sizes: 64 KiB min, 128 KiB average, 1 MiB max.
//
// Measured on the bench's 300 MiB generated dump and its 1%-edited second
// version (docs/SCALING.md, "Stream components"): the second backup adds
// 34.1 MiB at these sizes against 73.0 MiB at the default 512 KiB / 1 MiB /
// 8 MiB, for 7% more stored on the first backup and 8 times the blobs of
// the stream. Half the size again (32 KiB / 64 KiB) saves another 12 MiB
// for twice the blobs: past the knee.
const (
	streamMinSize     = 64 << 10
	streamMaxSize     = 1 << 20
	streamAverageBits = 17
)

// DefaultStreamParams returns fresh parameters for streams (database
// dumps), with a random polynomial of their own.
//
// A stream changes in small scattered places, a file tree by whole files,
// so streams get smaller chunks than files (DefaultParams). The polynomial
// is not the files' one: the two sets never produce the same blob (their
// size bounds differ), so sharing it would buy no dedup, and with their
// own the stream's many boundaries tell nothing about where files are cut.
func DefaultStreamParams() (Params, error) {
	return newParams(streamMinSize, streamMaxSize, streamAverageBits)
}

// Validate reports parameters that the chunker cannot use.
func (p Params) Validate() error {
	if p.Algorithm != AlgorithmRabin {
		return fmt.Errorf("chunk: unknown algorithm %q", p.Algorithm)
	}
	if !chunker.Pol(p.Polynomial).Irreducible() {
		return fmt.Errorf("chunk: polynomial %#x is not irreducible", p.Polynomial)
	}
	if p.MinSize < windowSize || p.MaxSize < p.MinSize || p.MaxSize > 64<<20 {
		return fmt.Errorf("chunk: bad size bounds %d..%d", p.MinSize, p.MaxSize)
	}
	if p.AverageBits < 10 || p.AverageBits > 26 {
		return fmt.Errorf("chunk: bad average bits %d", p.AverageBits)
	}
	return nil
}

// Chunker splits one stream at content-defined boundaries: restic/chunker's
// boundaries, found by cairn's own search (rabin.go). It is not safe for
// concurrent use; reuse one per goroutine with Reset to keep its buffer.
type Chunker struct {
	c *rabin
}

// NewChunker returns a chunker for p reading from r. p must be valid
// (Params.Validate); the repository checks its parameters when it opens.
func NewChunker(p Params, r io.Reader) *Chunker {
	return NewChunkerSize(p, r, readSize)
}

// NewChunkerSize is NewChunker with a read buffer of readSize bytes (at
// least 1) instead of 512 KiB. The chunks are the same; only the reads are
// smaller. A reader that only takes small files need not hold 512 KiB of
// heap for them.
func NewChunkerSize(p Params, r io.Reader, readSize int) *Chunker {
	c, err := newRabin(p, r, max(readSize, 1))
	if err != nil {
		panic(err) // Validate refuses such parameters
	}
	return &Chunker{c: c}
}

// Reset starts a new stream, keeping the tables and the read buffer.
func (c *Chunker) Reset(r io.Reader) {
	c.c.reset(r)
}

// Next returns the next chunk, reusing buf's storage when it is large enough
// (give it MaxSize capacity to avoid allocation). The returned slice is valid
// until the next call with the same buffer. At the end of the stream it
// returns io.EOF.
func (c *Chunker) Next(buf []byte) ([]byte, error) {
	return c.c.next(buf)
}
