package index

import (
	"errors"
	"fmt"
	"io"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/pack"
)

// File is the content of one index file: the blobs of some packs, and the
// index files this one replaces.
//
// A File is plaintext; the caller encrypts the encoded bytes and stores them
// under the hash of the stored object. See docs/FORMAT.md, "Index files", for the
// byte-level format.
type File struct {
	Packs []PackBlobs
	// Supersedes lists the IDs of index files whose content this file
	// replaces (written by compaction). A reader that loads this file ignores
	// the superseded files; Index.AddFile itself does not look at it.
	Supersedes []chunk.ID
}

// PackBlobs lists blobs stored in one pack. A pack normally appears once in
// a file; a pack with more blobs than a writer puts in one file may be split
// over several entries or files.
type PackBlobs struct {
	Pack  chunk.ID
	Blobs []pack.Blob
}

// Magic starts every index file.
const Magic = "CIDX"

// Version is the format version Encode writes.
const Version = 1

var (
	// ErrCorrupt is wrapped by every Decode error about malformed input
	// (truncated, trailing bytes, bad magic, invalid field). Test with
	// errors.Is.
	ErrCorrupt = errors.New("index: corrupt index file")
	// ErrUnknownVersion is wrapped by the Decode error for a file whose
	// version byte this build does not know; the message names the version.
	ErrUnknownVersion = errors.New("index: unknown index file version")
)

// Encode writes f in the current format (version 1) to w.
//
// It returns an error without writing anything if f holds a value the format
// cannot represent or Decode would reject: a blob type other than data or
// tree, an offset+length beyond 2^32-1, or a zero (null) pack, blob or
// superseded ID.
func (f *File) Encode(w io.Writer) error {
	b, err := f.MarshalBinary()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// MarshalBinary returns the encoding Encode writes.
func (f *File) MarshalBinary() ([]byte, error) {
	return encodeV1(f)
}

// Decode parses an index file of any supported version. Every error wraps
// ErrCorrupt or ErrUnknownVersion. Decode never panics, and allocates memory
// in proportion to len(data). The result does not alias data.
//
// Decode is the inverse of MarshalBinary: a File that decodes without error
// re-encodes to exactly data (the encoding is canonical).
func Decode(data []byte) (*File, error) {
	if err := checkHeader(data); err != nil {
		return nil, err
	}
	return decodeV1(data)
}

// checkHeader checks the magic and that the version is one this build reads
// (only 1 so far).
func checkHeader(data []byte) error {
	if len(data) < len(Magic)+1 {
		return corruptf(0, "file is %d bytes, shorter than the %d-byte header", len(data), len(Magic)+1)
	}
	if string(data[:len(Magic)]) != Magic {
		return corruptf(0, "bad magic %q, want %q", data[:len(Magic)], Magic)
	}
	if v := data[len(Magic)]; v != 1 {
		return fmt.Errorf("%w %d (this build reads version %d)", ErrUnknownVersion, v, Version)
	}
	return nil
}

// corruptf returns an error wrapping ErrCorrupt that names the byte offset
// where decoding failed.
func corruptf(off int, format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrCorrupt, off, fmt.Sprintf(format, args...))
}

// checkBlob reports why b cannot be stored in an index file, or "" if it can.
// Encode and every decoder apply the same rules.
func checkBlob(b *pack.Blob) string {
	switch {
	case b.Type != pack.DataBlob && b.Type != pack.TreeBlob:
		return fmt.Sprintf("blob %s has unknown type %d", b.ID.Short(), uint8(b.Type))
	case b.ID.IsNull():
		return "blob has the null ID"
	case uint64(b.Offset)+uint64(b.Length) > 1<<32-1:
		return fmt.Sprintf("blob %s: offset %d + length %d overflows 32 bits", b.ID.Short(), b.Offset, b.Length)
	}
	return ""
}

// Split returns f's packs divided into files of at most maxBlobs blobs each,
// in order. A pack's blobs stay in one file unless the pack alone has more
// than maxBlobs blobs, in which case it is split over consecutive files. The
// result shares blob slices with f; Supersedes is copied to the first file
// only. maxBlobs <= 0 means no limit. An f without packs yields one file
// (so its Supersedes are not lost).
func (f *File) Split(maxBlobs int) []*File {
	if maxBlobs <= 0 {
		maxBlobs = int(^uint(0) >> 1)
	}
	var out []*File
	cur := &File{Supersedes: f.Supersedes}
	n := 0 // blobs in cur
	for _, pb := range f.Packs {
		blobs := pb.Blobs
		if n > 0 && n+len(blobs) > maxBlobs {
			out = append(out, cur)
			cur, n = &File{}, 0
		}
		for {
			take := min(len(blobs), maxBlobs-n)
			cur.Packs = append(cur.Packs, PackBlobs{Pack: pb.Pack, Blobs: blobs[:take:take]})
			n += take
			blobs = blobs[take:]
			if len(blobs) == 0 {
				break
			}
			out = append(out, cur)
			cur, n = &File{}, 0
		}
	}
	return append(out, cur)
}

// NumBlobs returns the number of blobs listed in f.
func (f *File) NumBlobs() int {
	n := 0
	for _, pb := range f.Packs {
		n += len(pb.Blobs)
	}
	return n
}
