package pack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/cairn-backup/cairn/chunk"
)

// ErrUnknownVersion is wrapped by the error for a pack whose version byte is
// not Version; the error names the version found.
var ErrUnknownVersion = errors.New("pack: unknown format version")

// corruptPack returns an ErrCorrupt-wrapping error about a pack.
func corruptPack(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// HeaderLength checks a pack's trailer (its last TrailerSize bytes) and
// returns the length of the sealed header that precedes it. A trailer of the
// wrong length yields ErrCorrupt, a version other than Version yields
// ErrUnknownVersion; a length that cannot be a sealed header (shorter than
// Overhead, or not Overhead plus a whole number of entries) yields
// ErrCorrupt.
func HeaderLength(trailer []byte) (uint32, error) {
	if len(trailer) != TrailerSize {
		return 0, corruptPack("trailer is %d bytes, want %d", len(trailer), TrailerSize)
	}
	if v := trailer[4]; v != Version {
		return 0, fmt.Errorf("%w %d (this program reads version %d)", ErrUnknownVersion, v, Version)
	}
	n := binary.LittleEndian.Uint32(trailer)
	if n < Overhead || (n-Overhead)%HeaderEntrySize != 0 {
		return 0, corruptPack("header length %d is not %d plus a multiple of %d", n, Overhead, HeaderEntrySize)
	}
	return n, nil
}

// ReadHeader reads the blob table of the pack of size bytes in r: the
// trailer, then the sealed header. It checks everything the table claims (see
// ParseHeader). A pack too short for its trailer or header, a header that
// fails authentication or any malformed entry yields an error wrapping
// ErrCorrupt with the reason; an unknown version yields ErrUnknownVersion.
// Errors from r are returned wrapped; an io.EOF from r (the pack is shorter
// than size) also wraps ErrCorrupt.
func ReadHeader(key *Key, r io.ReaderAt, size int64) ([]Blob, error) {
	if size < TrailerSize+Overhead {
		return nil, corruptPack("%d bytes is too short for a pack", size)
	}
	var trailer [TrailerSize]byte
	if err := readAt(r, trailer[:], size-TrailerSize); err != nil {
		return nil, err
	}
	n, err := HeaderLength(trailer[:])
	if err != nil {
		return nil, err
	}
	if int64(n) > size-TrailerSize {
		return nil, corruptPack("header length %d exceeds the %d bytes before the trailer", n, size-TrailerSize)
	}
	hdr := make([]byte, n)
	if err := readAt(r, hdr, size-TrailerSize-int64(n)); err != nil {
		return nil, err
	}
	return ParseHeader(key, hdr, size)
}

// readAt fills p from r at off.
func readAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: read %d of %d bytes at offset %d: %w", ErrCorrupt, n, len(p), off, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("pack: read %d bytes at offset %d: %w", len(p), off, err)
}

// ParseHeader opens headerSealed, the sealed header of a pack of packSize
// bytes (the bytes just before the trailer), and returns its blobs with their
// offsets. It checks that every entry is well formed (type 1 or 2, no unknown
// flags, non-null ID, stored length at least Overhead and more than Overhead
// when compressed, stored length exactly raw length + Overhead when not
// compressed) and that the stored blobs exactly fill the pack before the
// header. Any failure yields an error wrapping ErrCorrupt.
func ParseHeader(key *Key, headerSealed []byte, packSize int64) ([]Blob, error) {
	hl := int64(len(headerSealed))
	if hl < Overhead || (hl-Overhead)%HeaderEntrySize != 0 {
		return nil, corruptPack("header length %d is not %d plus a multiple of %d", hl, Overhead, HeaderEntrySize)
	}
	headerOffset := packSize - TrailerSize - hl
	if headerOffset < 0 {
		return nil, corruptPack("header of %d bytes does not fit a pack of %d bytes", hl, packSize)
	}
	if headerOffset > math.MaxUint32 {
		return nil, corruptPack("blobs end at offset %d, beyond the 4 GiB limit", headerOffset)
	}
	hdr, err := Open(key, make([]byte, 0, hl-Overhead), headerSealed, headerAD)
	if err != nil {
		return nil, fmt.Errorf("%w: header: authentication failed", ErrCorrupt)
	}
	count := len(hdr) / HeaderEntrySize
	blobs := make([]Blob, count)
	var off uint64
	for i := range blobs {
		e := hdr[i*HeaderEntrySize : (i+1)*HeaderEntrySize]
		b := Blob{
			Type:       BlobType(e[0]),
			Compressed: e[1]&flagCompressed != 0,
			Offset:     uint32(off), // checked below
			Length:     binary.LittleEndian.Uint32(e[34:38]),
			RawLength:  binary.LittleEndian.Uint32(e[38:42]),
		}
		copy(b.ID[:], e[2:34])
		if err := checkEntry(b, e[1]); err != nil {
			return nil, fmt.Errorf("%w: header entry %d: %s", ErrCorrupt, i, err)
		}
		off += uint64(b.Length)
		if off > uint64(headerOffset) {
			return nil, corruptPack("header entry %d: blobs end at offset %d, beyond the header at %d", i, off, headerOffset)
		}
		blobs[i] = b
	}
	if off != uint64(headerOffset) {
		return nil, corruptPack("blobs end at offset %d but the header starts at %d", off, headerOffset)
	}
	return blobs, nil
}

// checkEntry reports what is malformed about one header entry.
func checkEntry(b Blob, flags byte) error {
	switch {
	case b.Type != DataBlob && b.Type != TreeBlob:
		return fmt.Errorf("invalid blob type %d", b.Type)
	case flags&^flagCompressed != 0:
		return fmt.Errorf("unknown flags %#02x", flags)
	case b.ID == chunk.ID{}:
		return errors.New("null blob ID")
	case b.Length < Overhead:
		return fmt.Errorf("stored length %d is shorter than the %d-byte overhead", b.Length, Overhead)
	case b.Compressed && b.Length == Overhead:
		return errors.New("compressed blob with an empty zstd frame")
	case !b.Compressed && uint64(b.Length) != uint64(b.RawLength)+Overhead:
		return fmt.Errorf("uncompressed blob of stored length %d has raw length %d", b.Length, b.RawLength)
	}
	return nil
}
