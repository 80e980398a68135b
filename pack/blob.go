// Package pack is the pack file format: blobs compressed with zstd and
// encrypted with XChaCha20-Poly1305, followed by an encrypted blob table.
// It works on bytes and io.ReaderAt, never on a store.
package pack

import (
	"fmt"

	"github.com/cairn-backup/cairn/chunk"
)

// BlobType tells data blobs (file content) from tree blobs (directory
// listings). The type is part of a blob's identity in the index.
type BlobType uint8

const (
	DataBlob BlobType = 1
	TreeBlob BlobType = 2
)

func (t BlobType) String() string {
	switch t {
	case DataBlob:
		return "data"
	case TreeBlob:
		return "tree"
	}
	return fmt.Sprintf("blobtype(%d)", uint8(t))
}

// Blob locates one blob inside a pack.
type Blob struct {
	Type       BlobType
	Compressed bool     // zstd-compressed before encryption
	ID         chunk.ID // keyed BLAKE3 of the plaintext
	Offset     uint32   // of the stored bytes from the start of the pack
	Length     uint32   // stored (encrypted) length
	RawLength  uint32   // plaintext length
}
