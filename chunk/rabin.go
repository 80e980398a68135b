package chunk

import (
	"fmt"
	"io"
	"sync"

	"github.com/restic/chunker"
)

// This file is cairn's own implementation of restic/chunker v0.4.0's cut
// points: byte for byte the same chunks (FuzzChunkerMatchesRestic holds it
// to that), computed about three times faster.
//
// restic's chunker keeps one rolling Rabin fingerprint and feeds it a byte
// at a time; every step waits for the table lookup of the step before, so
// it runs at the latency of that chain (restic.Next was 45% of the CPU
// profile of a first pg_dump backup, on the one goroutine that reads the
// stream). But its fingerprint at a position is a function of the 64 bytes
// that end there and nothing else: at a chunk's start the window is reset,
// the first MinSize-64 bytes are skipped unhashed, and a cut is only
// considered once all 64 window bytes are the chunk's own. So the search
// for the next cut can run as four independent chains over four adjacent
// stretches of the stream, each warmed up on the 63 bytes before its
// stretch, and the earliest hit is the cut restic would make.

// windowSize is the Rabin window of restic/chunker.
const windowSize = 64

// readSize is how much the chunker asks its reader for at a time, as
// restic/chunker does (512 KiB): small files are read in one call.
const readSize = 512 << 10

// laneLen is the length of each of the four stretches searched at once.
// A cut found early in lane 0 wastes what the other three lanes did past
// it, about 2*laneLen bytes of hashing on average, and each stretch costs
// 63 bytes of warm-up. BenchmarkChunker on 64 MiB of random data: 1,200
// MB/s with streams' parameters at 4 KiB against 1,150-1,180 at 8 KiB,
// 1,090-1,130 at 16 KiB and 1,010-1,030 at 32 KiB (restic/chunker:
// 485-520).
const laneLen = 4 << 10

// rabinTables are the lookup tables of one polynomial, as restic/chunker
// builds them: out[b] removes byte b leaving the window, mod[i] reduces
// the eight bits that an append pushes above the polynomial's degree.
type rabinTables struct {
	out   [256]uint64
	mod   [256]uint64
	shift uint // degree - 8
}

var tableCache sync.Map // chunker.Pol -> *rabinTables

func tablesFor(pol chunker.Pol) *rabinTables {
	if t, ok := tableCache.Load(pol); ok {
		return t.(*rabinTables)
	}
	t := &rabinTables{shift: uint(pol.Deg() - 8)}
	for b := 0; b < 256; b++ {
		h := appendByte(0, byte(b), pol)
		for i := 0; i < windowSize-1; i++ {
			h = appendByte(h, 0, pol)
		}
		t.out[b] = uint64(h)
	}
	k := uint(pol.Deg())
	for b := 0; b < 256; b++ {
		t.mod[b] = uint64(chunker.Pol(uint64(b)<<k).Mod(pol) | chunker.Pol(b)<<k)
	}
	actual, _ := tableCache.LoadOrStore(pol, t)
	return actual.(*rabinTables)
}

func appendByte(h chunker.Pol, b byte, pol chunker.Pol) chunker.Pol {
	return (h<<8 | chunker.Pol(b)).Mod(pol)
}

// step slides byte in into the fingerprint d after byte out left it.
func (t *rabinTables) step(d uint64, out, in byte) uint64 {
	d ^= t.out[out]
	return (d<<8 | uint64(in)) ^ t.mod[byte(d>>t.shift)]
}

// warm returns the fingerprint of the window that holds a zero byte and
// then w (63 bytes): the state from which sliding in the byte after w
// gives the fingerprint of the 64 bytes that end there.
func (t *rabinTables) warm(w []byte) uint64 {
	var d uint64
	for _, b := range w {
		d = (d<<8 | uint64(b)) ^ t.mod[byte(d>>t.shift)]
	}
	return d
}

// scan returns the first index x in [from, to) at which the fingerprint of
// b[x-63 : x+1] has none of mask's bits set, or -1. from must be at least
// 63.
func (t *rabinTables) scan(b []byte, from, to int, mask uint64) int {
	for to-from >= 4*windowSize {
		l := min((to-from)/4, laneLen)
		if x := t.scan4(b, from, l, mask); x >= 0 {
			return x
		}
		from += 4 * l
	}
	return t.scan1(b, from, to, mask)
}

// scan1 is scan on one chain, for the short tail.
func (t *rabinTables) scan1(b []byte, from, to int, mask uint64) int {
	if from >= to {
		return -1
	}
	d := t.warm(b[from-windowSize+1 : from])
	d = (d<<8 | uint64(b[from])) ^ t.mod[byte(d>>t.shift)] // a zero leaves
	if d&mask == 0 {
		return from
	}
	for x := from + 1; x < to; x++ {
		d = t.step(d, b[x-windowSize], b[x])
		if d&mask == 0 {
			return x
		}
	}
	return -1
}

// scan4 searches the four stretches of l bytes from from on, one chain
// each, in one loop so that the chains' lookups overlap.
func (t *rabinTables) scan4(b []byte, from, l int, mask uint64) int {
	// wk holds lane k's 63 warm-up bytes and its stretch: wk[63+j] enters
	// at step j, wk[j-1] leaves.
	w0 := b[from-windowSize+1 : from+l]
	w1 := b[from+l-windowSize+1 : from+2*l]
	w2 := b[from+2*l-windowSize+1 : from+3*l]
	w3 := b[from+3*l-windowSize+1 : from+4*l]
	d0, d1, d2, d3 := t.warm(w0[:windowSize-1]), t.warm(w1[:windowSize-1]), t.warm(w2[:windowSize-1]), t.warm(w3[:windowSize-1])
	mod, out, shift := &t.mod, &t.out, t.shift&63 // &63: no check for shifts past 63

	// Step 0: the zero that warm put first leaves (out[0] is 0).
	d0 = (d0<<8 | uint64(w0[windowSize-1])) ^ mod[byte(d0>>shift)]
	d1 = (d1<<8 | uint64(w1[windowSize-1])) ^ mod[byte(d1>>shift)]
	d2 = (d2<<8 | uint64(w2[windowSize-1])) ^ mod[byte(d2>>shift)]
	d3 = (d3<<8 | uint64(w3[windowSize-1])) ^ mod[byte(d3>>shift)]
	// Hits are rare (one in 2^AverageBits positions), so one predictable
	// branch tests all four lanes and the bookkeeping stays out of the loop.
	// A hit in lane 0 is the earliest possible and ends the search.
	hit := [4]int{-1, -1, -1, -1}
	note := func(j int, d0, d1, d2, d3 uint64) bool {
		if d0&mask == 0 {
			return true
		}
		if d1&mask == 0 && hit[1] < 0 {
			hit[1] = j
		}
		if d2&mask == 0 && hit[2] < 0 {
			hit[2] = j
		}
		if d3&mask == 0 && hit[3] < 0 {
			hit[3] = j
		}
		return false
	}
	if (d0&mask == 0 || d1&mask == 0 || d2&mask == 0 || d3&mask == 0) && note(0, d0, d1, d2, d3) {
		return from
	}
	// Step j = i+1 slides wk[i] out and wk[i+64] in; equal lengths let
	// the compiler drop the bounds checks.
	w1, w2, w3 = w1[:len(w0)], w2[:len(w0)], w3[:len(w0)]
	for i := 0; i < len(w0)-windowSize; i++ {
		d0 ^= out[w0[i]]
		d1 ^= out[w1[i]]
		d2 ^= out[w2[i]]
		d3 ^= out[w3[i]]
		d0 = (d0<<8 | uint64(w0[i+windowSize])) ^ mod[byte(d0>>shift)]
		d1 = (d1<<8 | uint64(w1[i+windowSize])) ^ mod[byte(d1>>shift)]
		d2 = (d2<<8 | uint64(w2[i+windowSize])) ^ mod[byte(d2>>shift)]
		d3 = (d3<<8 | uint64(w3[i+windowSize])) ^ mod[byte(d3>>shift)]
		if (d0&mask == 0 || d1&mask == 0 || d2&mask == 0 || d3&mask == 0) && note(i+1, d0, d1, d2, d3) {
			return from + i + 1
		}
	}
	for k := 1; k < 4; k++ {
		if hit[k] >= 0 {
			return from + k*l + hit[k]
		}
	}
	return -1
}

// rabin is the chunker's state: a read buffer whose first 63 bytes carry
// over the end of the previous read, so that a window can reach back past
// the start of a fill.
type rabin struct {
	t        *rabinTables
	mask     uint64
	min, max int

	r      io.Reader
	buf    []byte // buf[:windowSize-1] history, then the read
	lo, hi int    // unconsumed bytes: buf[lo:hi]
	eof    bool
}

func newRabin(p Params, r io.Reader, readSize int) (*rabin, error) {
	if p.MinSize < windowSize {
		return nil, fmt.Errorf("chunk: min size %d is below the %d-byte window", p.MinSize, windowSize)
	}
	c := &rabin{
		t:    tablesFor(chunker.Pol(p.Polynomial)),
		mask: 1<<uint(p.AverageBits) - 1,
		min:  int(p.MinSize),
		max:  int(p.MaxSize),
		buf:  make([]byte, windowSize-1+readSize),
	}
	c.reset(r)
	return c, nil
}

func (c *rabin) reset(r io.Reader) {
	c.r = r
	c.lo, c.hi = windowSize-1, windowSize-1
	c.eof = false
}

// fill puts the last 63 bytes of the chunk so far (data), or all of a
// shorter one, just before the read, as the history of the windows that
// end on the first bytes read, and reads after them. Bytes before the
// chunk's start are never part of a window that is searched.
func (c *rabin) fill(data []byte) error {
	tail := data[max(len(data)-(windowSize-1), 0):]
	copy(c.buf[windowSize-1-len(tail):], tail)
	c.lo, c.hi = windowSize-1, windowSize-1
	n, err := io.ReadFull(c.r, c.buf[c.hi:])
	c.hi += n
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		c.eof = true
		return nil
	case err != nil:
		return err
	}
	return nil
}

// next appends the next chunk to data, as restic/chunker.Next does.
func (c *rabin) next(data []byte) ([]byte, error) {
	data = data[:0]
	for {
		if c.lo == c.hi {
			if c.eof {
				if len(data) > 0 {
					return data, nil
				}
				return nil, io.EOF
			}
			if k := c.directSize(data); k > 0 {
				var cut bool
				var err error
				if data, cut, err = c.direct(data, k); err != nil {
					return nil, err
				}
				if cut {
					return data, nil
				}
				continue
			}
			if err := c.fill(data); err != nil {
				return nil, err
			}
			continue
		}
		// The chunk has len(data) bytes so far; buf[lo] is its byte at that
		// offset. A cut after the byte at chunk offset q needs q+1 >= min,
		// and one is forced at q+1 == max.
		count := len(data)
		avail := c.hi - c.lo
		from, to := max(count, c.min-1), min(count+avail, c.max)
		if from < to {
			if x := c.t.scan(c.buf, c.lo+from-count, c.lo+to-count, c.mask); x >= 0 {
				data = c.appendChunk(data, c.buf[c.lo:x+1])
				c.lo = x + 1
				return data, nil
			}
			if to == c.max {
				end := c.lo + to - count
				data = c.appendChunk(data, c.buf[c.lo:end])
				c.lo = end
				return data, nil
			}
		}
		data = c.appendChunk(data, c.buf[c.lo:c.hi])
		c.lo = c.hi
	}
}

// Direct reads. A chunk used to be read into the chunker's buffer and
// copied from there into the caller's: on the bench tree (300 MiB) that
// copy was 0.32 of 3.3 CPU-s of a first backup, the caller's chunk
// buffers being cold in the cache. Now, when the chunker has no bytes
// left over and the caller's buffer has room, it reads straight into that
// buffer and searches there; only what a read brought past the cut is
// copied, into the chunker's buffer for the next chunk. To keep that
// small, a read goes no further than the chunk's minimum (no cut can come
// before it) and then directStep bytes at a time.
//
// First backups of the bench tree, old and new binaries interleaved:
// medians of 3.45 against 3.26 CPU-s in ten pairs, 3.29 against 3.20 in
// sixteen; this VM spreads one binary's runs by 20%, and the kernel's
// copy into the cold buffer now pays some of what the copy paid. Streams
// gain nothing measurable (the bench's 505 MiB dump on stdin: 4.20-4.25
// CPU-s with or without, with a step of 16 or 64 KiB).
const (
	// minDirect is the least room in the caller's buffer worth a direct
	// read. With less, the chunker reads into its own buffer and copies,
	// growing the caller's if the chunk goes on; growing it before the
	// read would allocate for streams that were about to end (a file
	// exactly as large as the buffer).
	minDirect = 4 << 10
	// directStep is the size of the reads past the minimum: what they
	// bring past the cut, half of it on average, is copied twice.
	directStep = 64 << 10
)

// directSize returns how many bytes to read straight into data, the chunk
// so far, or 0 when data has too little room and the read goes through
// the chunker's buffer. Past the minimum it is at most that buffer's
// size, which must hold what the read brings past a cut: a chunker made
// with NewChunkerSize(p, r, 64 KiB) reads as large as one of 512 KiB.
func (c *rabin) directSize(data []byte) int {
	count := len(data)
	k := min(cap(data)-count, c.max-count)
	if count < c.min {
		// Up to the minimum: no cut comes before it, so nothing read
		// lies past one, and the chunker's buffer need not hold it.
		k = min(k, c.min-count)
	} else {
		k = min(k, directStep, len(c.buf)-(windowSize-1))
	}
	if k < minDirect {
		return 0
	}
	return k
}

// direct reads up to k bytes after data and searches them for the cut. It
// returns the chunk and true when it found one (or reached the maximum
// size), the bytes past it going to the chunker's buffer; otherwise data
// with what was read appended, and false.
func (c *rabin) direct(data []byte, k int) ([]byte, bool, error) {
	count := len(data)
	n, err := io.ReadFull(c.r, data[count:count+k])
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		c.eof = true
	case err != nil:
		return nil, false, err
	}
	data = data[:count+n]
	from, to := max(count, c.min-1), min(count+n, c.max)
	if from >= to {
		return data, false, nil
	}
	end := -1
	if x := c.t.scan(data, from, to, c.mask); x >= 0 {
		end = x + 1
	} else if to == c.max {
		end = to
	}
	if end < 0 {
		return data, false, nil
	}
	c.lo = windowSize - 1
	c.hi = c.lo + copy(c.buf[c.lo:], data[end:])
	return data[:end], true, nil
}

// appendChunk appends b to the chunk data, growing it to twice its
// capacity (at most the maximum chunk size) when b does not fit, not by
// append's quarter: a chunk past the archiver's 2 MiB buffer grew
// 2.5, 3.1, 3.9, 4.9 and 6.1 MiB on its way to 6 MiB, 20 MiB of garbage,
// where doubling makes 12. On the bench tree (300 MiB) those copies were
// 110 MB of the backup's 280 MB of allocations, and the collector, with
// the heap at the memory limit, ran for each.
func (c *rabin) appendChunk(data, b []byte) []byte {
	if need := len(data) + len(b); need > cap(data) {
		grown := make([]byte, len(data), max(need, min(2*cap(data), c.max)))
		copy(grown, data)
		data = grown
	}
	return append(data, b...)
}
