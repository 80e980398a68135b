package index

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/pack"
)

// ErrLimit is wrapped by the error of AddPack, AddFile(s) and Loader.Add
// for a blob or pack the in-memory index cannot represent: a stored or raw
// length above MaxLength (no valid blob comes near it), or more than
// MaxPacks packs. Nothing of the refused call is kept.
var ErrLimit = errors.New("index: beyond the in-memory index's limits")

const (
	// MaxLength is the largest stored or raw blob length the in-memory
	// index holds (29 bits). No reader accepts a larger blob: raw lengths
	// are at most pack.MaxRawLength (256 MiB), and a stored length at most
	// that plus zstd's worst-case growth plus the seal (docs/FORMAT.md,
	// "Limits and sizes"): 2^28 + 2^22 + 1064 < 2^29. The index file
	// format allows 32-bit lengths; a file that uses them is refused with
	// ErrLimit rather than truncated.
	MaxLength = 1<<lengthBits - 1
	// MaxPacks is the number of packs the in-memory index can number (28
	// bits): at the 16 MiB packs cairn writes, 4 PiB, forty times the
	// 100 TB docs/SCALING.md plans for.
	MaxPacks = 1 << packBits

	lengthBits = 29
	packBits   = 28
)

// The stored length of the largest blob a reader accepts must fit.
const _ = uint(MaxLength - (pack.MaxRawLength + pack.MaxRawLength/64 + 1024 + 40))

// entry is one blob, unpacked: what the tail and runs being merged hold
// (52 bytes with padding). The main array holds packed entries.
type entry struct {
	id     chunk.ID
	pack   uint32 // index into Index.packs
	offset uint32
	length uint32
	rawLen uint32
	typ    pack.BlobType
	flags  uint8
}

// packed is one entry of the main array in 46 bytes, against 52 for an
// entry, without losing anything:
//
//   - the first ID byte is not stored: main is sorted by ID, and
//     Index.lead records where each first byte's run of entries starts
//     (the bucket table keyed by at least the first 8 ID bits finds a
//     lookup's bucket from the wanted ID, so a lookup never needs it);
//   - lengths take 29 bits (MaxLength), the pack number 28 (MaxPacks),
//     the type and the compressed flag one bit each; the offset keeps its
//     32 bits (packs may be up to 4 GiB).
//
// meta layout, little-endian: bytes 0-3 offset; bytes 4-11 a 64-bit word
// with length in bits 0-28, raw length in 29-57, tree (type) in 58,
// compressed in 59 and the pack number's bits 0-3 in 60-63; bytes 12-14
// the pack number's bits 4-27. Byte arrays only, so the struct has no
// padding (alignment 1); unaligned 64-bit loads cost nothing on amd64 and
// arm64.
type packed struct {
	id   [chunk.IDSize - 1]byte // ID bytes 1..31
	meta [15]byte
}

const (
	entrySize  = int(unsafe.Sizeof(entry{}))
	packedSize = int(unsafe.Sizeof(packed{}))

	flagCompressed = 1 << 0

	lengthMask = 1<<lengthBits - 1
	bitTree    = 58
	bitComp    = 59
	bitPackLo  = 60
)

// checkEntryBlob reports a blob the in-memory index cannot hold, wrapping
// ErrLimit, or returns nil.
func checkEntryBlob(b *pack.Blob) error {
	switch {
	case b.Type != pack.DataBlob && b.Type != pack.TreeBlob:
		return fmt.Errorf("%w: blob %s has unknown type %d", ErrLimit, b.ID.Short(), uint8(b.Type))
	case b.Length > MaxLength:
		return fmt.Errorf("%w: blob %s: stored length %d is above %d (no reader accepts a blob above %d bytes)",
			ErrLimit, b.ID.Short(), b.Length, MaxLength, pack.MaxRawLength)
	case b.RawLength > MaxLength:
		return fmt.Errorf("%w: blob %s: raw length %d is above %d (no reader accepts a blob above %d bytes)",
			ErrLimit, b.ID.Short(), b.RawLength, MaxLength, pack.MaxRawLength)
	}
	return nil
}

// errTooManyPacks is the error for one pack more than limit.
func errTooManyPacks(limit int) error {
	return fmt.Errorf("%w: more than %d packs", ErrLimit, limit)
}

func newEntry(packNum uint32, b *pack.Blob) entry {
	e := entry{
		id:     b.ID,
		pack:   packNum,
		offset: b.Offset,
		length: b.Length,
		rawLen: b.RawLength,
		typ:    b.Type,
	}
	if b.Compressed {
		e.flags |= flagCompressed
	}
	return e
}

func (e *entry) blob() pack.Blob {
	return pack.Blob{
		Type:       e.typ,
		Compressed: e.flags&flagCompressed != 0,
		ID:         e.id,
		Offset:     e.offset,
		Length:     e.length,
		RawLength:  e.rawLen,
	}
}

// compact returns e packed. e's fields must be within the limits
// (checkEntryBlob, MaxPacks); the callers check before adding anything.
func (e *entry) compact() packed {
	var p packed
	copy(p.id[:], e.id[1:])
	p.set(e.pack, e.offset, e.length, e.rawLen, e.typ == pack.TreeBlob, e.flags&flagCompressed != 0)
	return p
}

// packBlob is newEntry(packNum, b).compact() without the detour.
func packBlob(packNum uint32, b *pack.Blob) packed {
	var p packed
	copy(p.id[:], b.ID[1:])
	p.set(packNum, b.Offset, b.Length, b.RawLength, b.Type == pack.TreeBlob, b.Compressed)
	return p
}

func (p *packed) set(packNum, offset, length, rawLen uint32, tree, compressed bool) {
	w := uint64(length)&lengthMask | uint64(rawLen)&lengthMask<<lengthBits | uint64(packNum&0xf)<<bitPackLo
	if tree {
		w |= 1 << bitTree
	}
	if compressed {
		w |= 1 << bitComp
	}
	binary.LittleEndian.PutUint32(p.meta[0:], offset)
	binary.LittleEndian.PutUint64(p.meta[4:], w)
	p.meta[12], p.meta[13], p.meta[14] = byte(packNum>>4), byte(packNum>>12), byte(packNum>>20)
}

func (p *packed) word() uint64 { return binary.LittleEndian.Uint64(p.meta[4:]) }

func (p *packed) packNum() uint32 {
	return uint32(p.word()>>bitPackLo) | uint32(p.meta[12])<<4 | uint32(p.meta[13])<<12 | uint32(p.meta[14])<<20
}

func (p *packed) setPackNum(num uint32) {
	w := p.word()&^(0xf<<bitPackLo) | uint64(num&0xf)<<bitPackLo
	binary.LittleEndian.PutUint64(p.meta[4:], w)
	p.meta[12], p.meta[13], p.meta[14] = byte(num>>4), byte(num>>12), byte(num>>20)
}

func (p *packed) offset() uint32 { return binary.LittleEndian.Uint32(p.meta[0:]) }
func (p *packed) length() uint32 { return uint32(p.word() & lengthMask) }
func (p *packed) rawLen() uint32 { return uint32(p.word() >> lengthBits & lengthMask) }

// tree is 1 for a tree blob, 0 for a data blob: ordered like the types.
func (p *packed) tree() uint8 { return uint8(p.word() >> bitTree & 1) }

func (p *packed) typ() pack.BlobType { return pack.DataBlob + pack.BlobType(p.tree()) }

func (p *packed) compressed() bool { return p.word()>>bitComp&1 != 0 }

// hasID reports whether p holds the ID id, given that its first byte is
// id's.
func (p *packed) hasID(id *chunk.ID) bool { return p.id == [chunk.IDSize - 1]byte(id[1:]) }

// fullID returns p's ID, given its first byte.
func (p *packed) fullID(first byte) chunk.ID {
	var id chunk.ID
	id[0] = first
	copy(id[1:], p.id[:])
	return id
}

// blob returns p as a blob with the ID id (p's, found by the caller).
func (p *packed) blob(id *chunk.ID) pack.Blob {
	return pack.Blob{
		Type:       p.typ(),
		Compressed: p.compressed(),
		ID:         *id,
		Offset:     p.offset(),
		Length:     p.length(),
		RawLength:  p.rawLen(),
	}
}

// unpack returns p as an entry, given its first ID byte.
func (p *packed) unpack(first byte) entry {
	e := entry{
		id:     p.fullID(first),
		pack:   p.packNum(),
		offset: p.offset(),
		length: p.length(),
		rawLen: p.rawLen(),
		typ:    p.typ(),
	}
	if p.compressed() {
		e.flags |= flagCompressed
	}
	return e
}

// hi8 returns the first eight bytes of id as a big-endian integer, which
// orders like the bytes.
func hi8(id *chunk.ID) uint64 { return binary.BigEndian.Uint64(id[:8]) }

// phi8 is hi8 of p's stored ID bytes (ID bytes 1..8).
func phi8(p *packed) uint64 { return binary.BigEndian.Uint64(p.id[:8]) }

// compareEntries orders entries by (id, typ).
func compareEntries(a, b *entry) int {
	if c := cmp.Compare(hi8(&a.id), hi8(&b.id)); c != 0 {
		return c
	}
	if c := bytes.Compare(a.id[8:], b.id[8:]); c != 0 {
		return c
	}
	return cmp.Compare(a.typ, b.typ)
}

// comparePacked orders packed entries with the same first ID byte by (id,
// typ).
func comparePacked(a, b *packed) int {
	if c := cmp.Compare(phi8(a), phi8(b)); c != 0 {
		return c
	}
	if c := bytes.Compare(a.id[8:], b.id[8:]); c != 0 {
		return c
	}
	return cmp.Compare(a.tree(), b.tree())
}

// comparePackedEntry orders p, whose first ID byte is first, against e by
// (id, typ).
func comparePackedEntry(first byte, p *packed, e *entry) int {
	if c := cmp.Compare(first, e.id[0]); c != 0 {
		return c
	}
	if c := cmp.Compare(phi8(p), binary.BigEndian.Uint64(e.id[1:9])); c != 0 {
		return c
	}
	if c := bytes.Compare(p.id[8:], e.id[9:]); c != 0 {
		return c
	}
	return cmp.Compare(p.typ(), e.typ)
}

// compareFull orders packed entries with the same first ID byte by (id,
// typ), then by every other field, so that identical entries are adjacent
// and ties are broken by pack number.
func compareFull(a, b *packed) int {
	if c := comparePacked(a, b); c != 0 {
		return c
	}
	if c := cmp.Compare(a.packNum(), b.packNum()); c != 0 {
		return c
	}
	if c := cmp.Compare(a.offset(), b.offset()); c != 0 {
		return c
	}
	// The rest of the word: length, raw length, compressed.
	return cmp.Compare(a.word()&^(1<<bitTree|0xf<<bitPackLo), b.word()&^(1<<bitTree|0xf<<bitPackLo))
}
