package chunk

import (
	"github.com/zeebo/blake3"
)

// KeySize is the length of the secret that keys blob IDs.
const KeySize = 32

// Hasher computes blob IDs for one repository. It is safe for concurrent use:
// each call derives its own hash state from the keyed prototype.
type Hasher struct {
	proto *blake3.Hasher
}

// NewHasher returns a Hasher keyed with key. Two repositories that share the
// key (a replica and its source) compute the same IDs for the same content.
func NewHasher(key [KeySize]byte) *Hasher {
	h, err := blake3.NewKeyed(key[:])
	if err != nil {
		// NewKeyed fails only for keys that are not 32 bytes long.
		panic(err)
	}
	return &Hasher{proto: h}
}

// Sum returns the blob ID of data.
func (h *Hasher) Sum(data []byte) ID {
	d := h.proto.Clone()
	_, _ = d.Write(data)
	var id ID
	d.Sum(id[:0])
	return id
}

// ObjectID returns the unkeyed BLAKE3 of stored bytes, the name of every
// immutable object in a store. Anyone can verify it without the password.
func ObjectID(data []byte) ID {
	return ID(blake3.Sum256(data))
}

// ObjectHasher computes an ObjectID over bytes written in pieces, so that a
// reader can hash an object while it streams in, each piece while it is
// still in the CPU cache. It is not safe for concurrent use.
type ObjectHasher struct {
	h *blake3.Hasher
}

// NewObjectHasher returns an ObjectHasher ready for the first piece.
func NewObjectHasher() *ObjectHasher { return &ObjectHasher{h: blake3.New()} }

// Write adds p to the object's bytes; it never fails.
func (o *ObjectHasher) Write(p []byte) (int, error) { return o.h.Write(p) }

// Sum returns the ObjectID of the bytes written since the last Reset.
func (o *ObjectHasher) Sum() ID {
	var id ID
	o.h.Sum(id[:0])
	return id
}

// Reset forgets the bytes written, for the next object.
func (o *ObjectHasher) Reset() { o.h.Reset() }
