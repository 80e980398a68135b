package index

import (
	"encoding/binary"
	"fmt"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/pack"
)

// Version 1 layout (all integers little-endian or uvarint; see
// docs/FORMAT.md, "Index files"):
//
//	"CIDX" 0x01
//	uvarint packCount
//	packCount × { packID[32] uvarint blobCount blobCount × blob[46] }
//	uvarint supersededCount
//	supersededCount × fileID[32]
//
//	blob = type[1] flags[1] id[32] offset[u32] length[u32] rawLength[u32]
//
// Uvarints must be minimally encoded and nothing may follow the last field,
// so every File has exactly one encoding.
const (
	v1HeaderSize = len(Magic) + 1
	v1BlobSize   = 1 + 1 + chunk.IDSize + 4 + 4 + 4 // 46
	v1MinPack    = chunk.IDSize + 1                 // pack ID and a one-byte count

	v1FlagCompressed = 1 << 0
)

func encodeV1(f *File) ([]byte, error) {
	size := v1HeaderSize + binary.MaxVarintLen64*2 + len(f.Supersedes)*chunk.IDSize
	for i := range f.Packs {
		size += chunk.IDSize + binary.MaxVarintLen64 + len(f.Packs[i].Blobs)*v1BlobSize
	}
	b := make([]byte, 0, size)
	b = append(b, Magic...)
	b = append(b, 1)
	b = binary.AppendUvarint(b, uint64(len(f.Packs)))
	for i := range f.Packs {
		pb := &f.Packs[i]
		if pb.Pack.IsNull() {
			return nil, fmt.Errorf("index: cannot encode pack %d: null pack ID", i)
		}
		b = append(b, pb.Pack[:]...)
		b = binary.AppendUvarint(b, uint64(len(pb.Blobs)))
		for j := range pb.Blobs {
			bl := &pb.Blobs[j]
			if why := checkBlob(bl); why != "" {
				return nil, fmt.Errorf("index: cannot encode pack %s: %s", pb.Pack.Short(), why)
			}
			var flags byte
			if bl.Compressed {
				flags |= v1FlagCompressed
			}
			b = append(b, byte(bl.Type), flags)
			b = append(b, bl.ID[:]...)
			b = binary.LittleEndian.AppendUint32(b, bl.Offset)
			b = binary.LittleEndian.AppendUint32(b, bl.Length)
			b = binary.LittleEndian.AppendUint32(b, bl.RawLength)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(f.Supersedes)))
	for i, id := range f.Supersedes {
		if id.IsNull() {
			return nil, fmt.Errorf("index: cannot encode superseded file %d: null ID", i)
		}
		b = append(b, id[:]...)
	}
	return b, nil
}

// v1Reader walks the input, remembering the offset for error messages.
type v1Reader struct {
	data []byte
	off  int
}

func (r *v1Reader) remaining() int { return len(r.data) - r.off }

// count reads a minimally encoded uvarint that counts items of at least
// itemSize bytes each, and rejects counts the remaining input cannot hold.
func (r *v1Reader) count(what string, itemSize int) (int, error) {
	x, n := binary.Uvarint(r.data[r.off:])
	switch {
	case n == 0:
		return 0, corruptf(r.off, "truncated %s count", what)
	case n < 0:
		return 0, corruptf(r.off, "%s count overflows 64 bits", what)
	case n != uvarintLen(x):
		return 0, corruptf(r.off, "%s count %d is not minimally encoded", what, x)
	}
	start := r.off
	r.off += n
	if x > uint64(r.remaining()/itemSize) {
		return 0, corruptf(start, "%s count %d needs at least %d bytes, %d remain", what, x, x*uint64(itemSize), r.remaining())
	}
	return int(x), nil
}

func (r *v1Reader) id(what string) (chunk.ID, error) {
	var id chunk.ID
	if r.remaining() < chunk.IDSize {
		return id, corruptf(r.off, "truncated %s", what)
	}
	copy(id[:], r.data[r.off:])
	if id.IsNull() {
		return id, corruptf(r.off, "null %s", what)
	}
	r.off += chunk.IDSize
	return id, nil
}

func (r *v1Reader) blob() (pack.Blob, error) {
	var bl pack.Blob
	if r.remaining() < v1BlobSize {
		return bl, corruptf(r.off, "truncated blob entry")
	}
	p := r.data[r.off : r.off+v1BlobSize]
	bl.Type = pack.BlobType(p[0])
	if flags := p[1]; flags&^v1FlagCompressed != 0 {
		return bl, corruptf(r.off+1, "unknown blob flags %#02x", flags)
	} else {
		bl.Compressed = flags&v1FlagCompressed != 0
	}
	copy(bl.ID[:], p[2:])
	p = p[2+chunk.IDSize:]
	bl.Offset = binary.LittleEndian.Uint32(p[0:])
	bl.Length = binary.LittleEndian.Uint32(p[4:])
	bl.RawLength = binary.LittleEndian.Uint32(p[8:])
	if why := checkBlob(&bl); why != "" {
		return bl, corruptf(r.off, "%s", why)
	}
	r.off += v1BlobSize
	return bl, nil
}

func decodeV1(data []byte) (*File, error) {
	f := &File{}
	var pb *PackBlobs
	sup, err := walkV1(data, func(id chunk.ID, nBlobs, nPacks int) {
		if f.Packs == nil {
			f.Packs = make([]PackBlobs, 0, nPacks)
		}
		f.Packs = append(f.Packs, PackBlobs{Pack: id})
		pb = &f.Packs[len(f.Packs)-1]
		if nBlobs > 0 {
			pb.Blobs = make([]pack.Blob, 0, nBlobs)
		}
	}, func(b *pack.Blob) {
		pb.Blobs = append(pb.Blobs, *b)
	})
	if err != nil {
		return nil, err
	}
	f.Supersedes = sup
	return f, nil
}

// walkV1 checks a whole version 1 file and reports its content as it goes:
// onPack for each pack (with its blob count and the file's pack count, both
// already checked against the remaining input), then onBlob for each of that pack's blobs (checked, and
// only valid until onBlob returns). It returns the superseded file IDs. On
// an error the callbacks may have seen part of the file; the caller drops
// what they built. Decode and Loader share it, so both apply every check.
func walkV1(data []byte, onPack func(id chunk.ID, nBlobs, nPacks int), onBlob func(*pack.Blob)) ([]chunk.ID, error) {
	r := &v1Reader{data: data, off: v1HeaderSize}
	nPacks, err := r.count("pack", v1MinPack)
	if err != nil {
		return nil, err
	}
	// One blob variable for the whole file: passed by address to onBlob it
	// lives on the heap, and one allocation per blob would cost a load of
	// millions of entries its own weight in garbage.
	var bl pack.Blob
	for range nPacks {
		id, err := r.id("pack ID")
		if err != nil {
			return nil, err
		}
		nBlobs, err := r.count("blob", v1BlobSize)
		if err != nil {
			return nil, err
		}
		onPack(id, nBlobs, nPacks)
		for range nBlobs {
			if bl, err = r.blob(); err != nil {
				return nil, err
			}
			onBlob(&bl)
		}
	}
	nSup, err := r.count("superseded file", chunk.IDSize)
	if err != nil {
		return nil, err
	}
	var sup []chunk.ID
	if nSup > 0 {
		sup = make([]chunk.ID, nSup)
	}
	for i := range sup {
		if sup[i], err = r.id("superseded file ID"); err != nil {
			return nil, err
		}
	}
	if r.remaining() != 0 {
		return nil, corruptf(r.off, "%d trailing bytes", r.remaining())
	}
	return sup, nil
}

// uvarintLen is the length of the minimal uvarint encoding of x.
func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}
