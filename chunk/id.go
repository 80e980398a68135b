// Package chunk splits streams into content-defined chunks and names them.
//
// A chunk's identity is its ID: the BLAKE3 hash of its plaintext, keyed with a
// per-repository secret so that the store does not reveal which well-known
// files a repository holds. Equal content yields equal IDs within a
// repository (and across replicas that share the key), which is what makes
// deduplication work.
package chunk

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// IDSize is the length of an ID in bytes.
const IDSize = 32

// ID names a blob (keyed BLAKE3 of its plaintext) or a stored object (plain
// BLAKE3 of its stored bytes). It is a value type usable as a map key.
type ID [IDSize]byte

// ErrInvalidID is returned by ParseID for text that is not 64 hex digits.
var ErrInvalidID = errors.New("chunk: invalid ID")

// ParseID parses the 64-digit lower- or upper-case hex form of an ID.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDSize {
		return id, fmt.Errorf("%w: %q has %d characters, want %d", ErrInvalidID, s, len(s), 2*IDSize)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("%w: %q: %v", ErrInvalidID, s, err)
	}
	return id, nil
}

// String returns the 64-digit lower-case hex form.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 8 hex digits, the form shown to users.
func (id ID) Short() string { return hex.EncodeToString(id[:4]) }

// IsNull reports whether id is the zero ID, which never names a blob.
func (id ID) IsNull() bool { return id == ID{} }

// MarshalText encodes the ID as hex, so IDs appear as strings in JSON.
func (id ID) MarshalText() ([]byte, error) {
	b := make([]byte, 2*IDSize)
	hex.Encode(b, id[:])
	return b, nil
}

// UnmarshalText parses the hex form.
func (id *ID) UnmarshalText(b []byte) error {
	p, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = p
	return nil
}

// Less orders IDs bytewise; sorted ID arrays use it.
func (id ID) Less(o ID) bool {
	for i := range id {
		if id[i] != o[i] {
			return id[i] < o[i]
		}
	}
	return false
}

// Compare returns -1, 0 or +1 comparing id and o bytewise.
func (id ID) Compare(o ID) int {
	for i := range id {
		if id[i] != o[i] {
			if id[i] < o[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}
