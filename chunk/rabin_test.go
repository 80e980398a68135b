package chunk_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/restic/chunker"
)

// resticChunks is what restic/chunker v0.4.0 cuts data into: the chunks
// every repository written before cairn had its own search holds, which
// chunk.Chunker must reproduce byte for byte or lose their dedup.
func resticChunks(p chunk.Params, r io.Reader) ([][]byte, error) {
	c := chunker.NewWithBoundaries(r, chunker.Pol(p.Polynomial), p.MinSize, p.MaxSize)
	c.SetAverageBits(p.AverageBits)
	var out [][]byte
	for {
		ch, err := c.Next(nil)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ch.Data)
	}
}

func cairnChunks(p chunk.Params, r io.Reader) ([][]byte, error) {
	return cairnChunksSize(p, r, 0, 0)
}

// cairnChunksSize cuts with a chunker of the given read buffer (0: the
// default) into a buffer of bufCap bytes that is reused from chunk to
// chunk, grown if the chunker grew it, as the archiver does (0: Next(nil),
// a new slice each time). The chunker reads straight into a buffer with
// room, and into its own otherwise.
func cairnChunksSize(p chunk.Params, r io.Reader, readSize, bufCap int) ([][]byte, error) {
	c := chunk.NewChunker(p, r)
	if readSize > 0 {
		c = chunk.NewChunkerSize(p, r, readSize)
	}
	var buf []byte
	if bufCap > 0 {
		buf = make([]byte, 0, bufCap)
	}
	var out [][]byte
	for {
		b, err := c.Next(buf)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, bytes.Clone(b))
		if bufCap > 0 {
			buf = b[:0]
		}
	}
}

// randomReader returns data in reads of random sizes, some of them empty.
type randomReader struct {
	data []byte
	rng  *rand.Rand
}

func (r *randomReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(r.data), r.rng.IntN(200<<10))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for j := i; j < min(i+8, n); j++ {
			b[j] = byte(v)
			v >>= 8
		}
	}
	return b
}

func sameChunks(t *testing.T, want, got [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d chunks, restic/chunker cuts %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("chunk %d: %d bytes, restic/chunker's has %d", i, len(got[i]), len(want[i]))
		}
	}
}

// TestChunkerMatchesRestic holds the chunker to restic/chunker's cuts on
// data and parameters that reach every branch: cuts found in each of the
// four search lanes and in the short tail, cuts forced at MaxSize, chunks
// that span reads, a stream shorter than a window, readers that return a
// byte at a time or at random, and read buffers smaller than a chunk.
func TestChunkerMatchesRestic(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	random := func(n int) []byte { return randomBytes(rng, n) }
	// Text with repeats: cuts that depend on earlier bytes of the window.
	text := bytes.Repeat([]byte("INSERT INTO t VALUES (42, 'a row of a dump');\n"), 200000)
	for i := 0; i < len(text); i += 997 {
		text[i] = byte(rng.Uint32())
	}
	files, err := chunk.DefaultParams()
	if err != nil {
		t.Fatal(err)
	}
	streams, err := chunk.DefaultStreamParams()
	if err != nil {
		t.Fatal(err)
	}
	small := streams
	small.MinSize, small.MaxSize, small.AverageBits = 64, 4096, 10
	forced := streams // hits are so rare that MaxSize cuts most chunks
	forced.MinSize, forced.MaxSize, forced.AverageBits = 4096, 8192, 26
	for _, tc := range []struct {
		name string
		p    chunk.Params
		data []byte
	}{
		{"files, random", files, random(20 << 20)},
		{"streams, random", streams, random(12 << 20)},
		{"streams, text", streams, text},
		{"streams, zeros", streams, make([]byte, 3<<20)},
		{"minimal sizes, random", small, random(2 << 20)},
		{"minimal sizes, text", small, text[:2<<20]},
		{"forced at max, random", forced, random(1 << 20)},
		{"empty", streams, nil},
		{"shorter than a window", small, random(40)},
		{"shorter than min", streams, random(60 << 10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := resticChunks(tc.p, bytes.NewReader(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.data) > 1<<20 && len(want) < 3 {
				t.Fatalf("the case cuts only %d chunks; it tests nothing", len(want))
			}
			for _, r := range []struct {
				name string
				r    io.Reader
			}{
				{"whole", bytes.NewReader(tc.data)},
				{"random reads", &randomReader{data: tc.data, rng: rand.New(rand.NewPCG(5, 6))}},
				{"half reads", iotest.HalfReader(bytes.NewReader(tc.data))},
				{"data with EOF", iotest.DataErrReader(bytes.NewReader(tc.data))},
			} {
				got, err := cairnChunks(tc.p, r.r)
				if err != nil {
					t.Fatalf("%s: %v", r.name, err)
				}
				sameChunks(t, want, got)
			}
			// A smaller read buffer (NewChunkerSize, the archiver's
			// readers of small files) cuts the same chunks.
			for _, size := range []int{64 << 10, 4093} {
				got, err := cairnChunksSize(tc.p, bytes.NewReader(tc.data), size, 0)
				if err != nil {
					t.Fatalf("read buffer of %d: %v", size, err)
				}
				sameChunks(t, want, got)
			}
			// Buffers with room are read into directly: one that holds
			// any chunk, the archiver's 2 MiB that a large chunk
			// outgrows, one smaller than a chunk's minimum, and one
			// with just the least room for a direct read, each with the
			// default read buffer and smaller ones, and each with reads
			// cut short at random.
			for _, bufCap := range []int{int(tc.p.MaxSize), 2 << 20, int(tc.p.MinSize) / 2, 4 << 10, 5000} {
				for _, size := range []int{0, 64 << 10, 4093} {
					got, err := cairnChunksSize(tc.p, bytes.NewReader(tc.data), size, bufCap)
					if err != nil {
						t.Fatalf("buffer of %d, read buffer of %d: %v", bufCap, size, err)
					}
					sameChunks(t, want, got)
				}
				rr := &randomReader{data: tc.data, rng: rand.New(rand.NewPCG(7, uint64(bufCap)))}
				got, err := cairnChunksSize(tc.p, rr, 0, bufCap)
				if err != nil {
					t.Fatalf("buffer of %d, random reads: %v", bufCap, err)
				}
				sameChunks(t, want, got)
			}
			if len(tc.data) <= 2<<20 {
				got, err := cairnChunks(tc.p, iotest.OneByteReader(bytes.NewReader(tc.data)))
				if err != nil {
					t.Fatal(err)
				}
				sameChunks(t, want, got)
			}
		})
	}
}

// TestChunkerReadError: a read error ends the stream with that error, and
// nothing after it is passed off as a chunk.
func TestChunkerReadError(t *testing.T) {
	p, err := chunk.DefaultStreamParams()
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk on fire")
	data := randomBytes(rand.New(rand.NewPCG(7, 8)), 3<<20)
	r := io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom))
	got, err := cairnChunks(p, r)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the reader's", err)
	}
	n := 0
	for _, c := range got {
		n += len(c)
	}
	if n >= len(data) {
		t.Errorf("%d bytes returned as chunks before the error, of %d read: the last chunk cannot be known to end", n, len(data))
	}
}

// FuzzChunkerMatchesRestic: on any input, with any read sizes, the cuts
// are restic/chunker's.
func FuzzChunkerMatchesRestic(f *testing.F) {
	f.Add([]byte("hello"), uint64(1), uint8(0))
	f.Add(bytes.Repeat([]byte("abcdefgh"), 4000), uint64(2), uint8(1))
	f.Add(make([]byte, 9000), uint64(3), uint8(2))
	p, err := chunk.DefaultStreamParams()
	if err != nil {
		f.Fatal(err)
	}
	p.MinSize, p.MaxSize, p.AverageBits = 64, 2048, 10
	f.Fuzz(func(t *testing.T, seed []byte, readSeed uint64, shape uint8) {
		// Stretch the fuzzer's bytes with a generator so that inputs reach
		// several chunks, with its bytes repeated in to keep it in control.
		const size = 64 << 10
		var data []byte
		rng := rand.New(rand.NewPCG(readSeed, uint64(len(seed))))
		for len(data) < size && len(seed) > 0 {
			if shape&1 == 0 {
				data = append(data, seed...)
			} else {
				data = append(data, byte(rng.Uint32()))
			}
			shape = shape>>1 | shape<<7
		}
		want, err := resticChunks(p, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		got, err := cairnChunks(p, &randomReader{data: data, rng: rand.New(rand.NewPCG(readSeed, 1))})
		if err != nil {
			t.Fatal(err)
		}
		sameChunks(t, want, got)
		// Into a reused buffer, read into directly while it has room:
		// chunks from 4 KiB, the least room for a direct read, on.
		q := p
		q.MinSize, q.MaxSize, q.AverageBits = 4<<10, 16<<10, 12
		want, err = resticChunks(q, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		bufCap := 4<<10 + int(readSeed%(16<<10))
		got, err = cairnChunksSize(q, &randomReader{data: data, rng: rand.New(rand.NewPCG(readSeed, 2))}, 0, bufCap)
		if err != nil {
			t.Fatal(err)
		}
		sameChunks(t, want, got)
	})
}

// BenchmarkChunker compares restic/chunker with cairn's search on 64 MiB
// of random data, for both parameter sets.
func BenchmarkChunker(b *testing.B) {
	data := randomBytes(rand.New(rand.NewPCG(9, 10)), 64<<20)
	for _, set := range []struct {
		name   string
		params func() (chunk.Params, error)
	}{
		{"files", chunk.DefaultParams},
		{"streams", chunk.DefaultStreamParams},
	} {
		p, err := set.params()
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 0, p.MaxSize)
		b.Run(set.name+"/restic", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			c := chunker.NewWithBoundaries(nil, chunker.Pol(p.Polynomial), p.MinSize, p.MaxSize)
			for b.Loop() {
				c.ResetWithBoundaries(bytes.NewReader(data), chunker.Pol(p.Polynomial), p.MinSize, p.MaxSize)
				c.SetAverageBits(p.AverageBits)
				for {
					if _, err := c.Next(buf); err != nil {
						break
					}
				}
			}
		})
		b.Run(set.name+"/cairn", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			c := chunk.NewChunker(p, nil)
			for b.Loop() {
				c.Reset(bytes.NewReader(data))
				for {
					if _, err := c.Next(buf); err != nil {
						break
					}
				}
			}
		})
	}
}
