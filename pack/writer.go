package pack

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/cairn-backup/cairn/chunk"
)

// Version is the pack format version this package writes and reads. It is
// the last byte of every pack.
const Version = 1

const (
	// TrailerSize is the length of the trailer that ends every pack: the
	// sealed header's length (uint32 little-endian) and the version byte.
	TrailerSize = 5
	// HeaderEntrySize is the length of one blob's entry in the header
	// plaintext: type (1), flags (1), ID (32), stored length (4), raw
	// length (4).
	HeaderEntrySize = 2 + chunk.IDSize + 4 + 4
	// flagCompressed is bit 0 of an entry's flags byte; the other bits
	// must be 0.
	flagCompressed = 1 << 0
)

// headerAD is the additional data the header is sealed with.
var headerAD = []byte("cairn pack header v1")

// TailSize returns the length of the sealed header plus the trailer of a
// pack of blobCount blobs: how many bytes at the end of a pack hold its blob
// table. A reader that knows the count (from an index) can fetch exactly the
// tail with one range read.
func TailSize(blobCount int) int {
	return Overhead + blobCount*HeaderEntrySize + TrailerSize
}

// ID returns the name of a pack in a store: the unkeyed BLAKE3 of all its
// bytes (chunk.ObjectID).
func ID(packBytes []byte) chunk.ID { return chunk.ObjectID(packBytes) }

// Writer assembles one pack in memory. Packs are small (about 16 MiB), so
// the caller uploads the finished bytes in one piece. A Writer is not safe
// for concurrent use.
type Writer struct {
	key   Key
	buf   []byte
	blobs []Blob
}

// NewWriter returns an empty Writer that seals the header with key.
func NewWriter(key *Key) *Writer {
	return &Writer{key: *key}
}

// NewWriterSize is NewWriter with room for size bytes of blobs reserved up
// front, so that filling a pack of about that size does not reallocate and
// copy it several times over (and leave the garbage behind).
func NewWriterSize(key *Key, size int) *Writer {
	return &Writer{key: *key, buf: make([]byte, 0, size)}
}

// NewWriterBuffer is NewWriter filling buf's storage (from index 0): a
// caller that uploads many packs passes the buffer of an uploaded one back
// in, so a backup does not allocate (and the runtime zero) 16 MiB per pack.
// buf must not be used elsewhere until Finish returns it.
func NewWriterBuffer(key *Key, buf []byte) *Writer {
	return &Writer{key: *key, buf: buf[:0]}
}

// Add appends one stored blob (as made by Encoder.Encode: compressed tells
// whether it holds a zstd frame, rawLength is the plaintext length) and
// returns its Blob with its offset in the pack.
//
// Add panics on arguments that would make a malformed pack: an invalid type,
// a stored form shorter than Overhead, an uncompressed stored form whose
// length is not rawLength+Overhead, or a pack that would reach 4 GiB.
func (w *Writer) Add(t BlobType, id chunk.ID, stored []byte, compressed bool, rawLength uint32) Blob {
	if t != DataBlob && t != TreeBlob {
		panic(fmt.Sprintf("pack: Add: invalid blob type %d", t))
	}
	if len(stored) < Overhead || compressed && len(stored) == Overhead {
		panic(fmt.Sprintf("pack: Add: stored form of %d bytes is too short", len(stored)))
	}
	if !compressed && uint64(len(stored)) != uint64(rawLength)+Overhead {
		panic(fmt.Sprintf("pack: Add: uncompressed stored form of %d bytes for raw length %d", len(stored), rawLength))
	}
	if uint64(len(w.buf))+uint64(len(stored))+uint64(TailSize(len(w.blobs)+1)) > math.MaxUint32 {
		panic("pack: Add: pack would reach 4 GiB")
	}
	b := Blob{
		Type:       t,
		Compressed: compressed,
		ID:         id,
		Offset:     uint32(len(w.buf)),
		Length:     uint32(len(stored)),
		RawLength:  rawLength,
	}
	w.buf = append(w.buf, stored...)
	w.blobs = append(w.blobs, b)
	return b
}

// Size returns the length the pack would have if finished now, header and
// trailer included (exact: the header's size depends only on the count).
func (w *Writer) Size() int { return len(w.buf) + TailSize(len(w.blobs)) }

// Fits reports whether a stored blob of storedLen bytes, and then the
// finished pack's header and trailer, fit in the Writer's buffer without
// growing it. A caller that reuses pack buffers closes the pack first when
// not, rather than have Add copy the whole pack into a larger buffer.
func (w *Writer) Fits(storedLen int) bool {
	return len(w.buf)+storedLen+TailSize(len(w.blobs)+1) <= cap(w.buf)
}

// Count returns the number of blobs added.
func (w *Writer) Count() int { return len(w.blobs) }

// Finish appends the sealed header and the trailer and returns the pack's
// bytes and its blobs in order. The Writer is then empty and may be reused;
// the returned slices belong to the caller.
func (w *Writer) Finish() (data []byte, blobs []Blob) {
	hdr := make([]byte, 0, len(w.blobs)*HeaderEntrySize)
	for _, b := range w.blobs {
		hdr = appendEntry(hdr, b)
	}
	data = grow(w.buf, TailSize(len(w.blobs)))
	start := len(data)
	data = Seal(&w.key, data, hdr, headerAD)
	data = binary.LittleEndian.AppendUint32(data, uint32(len(data)-start))
	data = append(data, Version)
	blobs = w.blobs
	w.buf, w.blobs = nil, nil
	return data, blobs
}

// Reuse makes an empty Writer (new, or after Finish) assemble the next pack
// in buf's storage: the bytes of a finished pack the caller has stored and
// no longer needs. A caller writing many packs in a row (prune's repack)
// then allocates one pack buffer instead of one per pack, each garbage the
// size of a pack until the next collection.
func (w *Writer) Reuse(buf []byte) {
	if len(w.blobs) != 0 || len(w.buf) != 0 {
		panic("pack: Reuse of a Writer holding blobs")
	}
	w.buf = buf[:0]
}

// appendEntry appends b's 42-byte header entry to dst.
func appendEntry(dst []byte, b Blob) []byte {
	var flags byte
	if b.Compressed {
		flags |= flagCompressed
	}
	dst = append(dst, byte(b.Type), flags)
	dst = append(dst, b.ID[:]...)
	dst = binary.LittleEndian.AppendUint32(dst, b.Length)
	return binary.LittleEndian.AppendUint32(dst, b.RawLength)
}
