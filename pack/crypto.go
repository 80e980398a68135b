package pack

import (
	"crypto/rand"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// KeySize is the length of a Key.
const KeySize = chacha20poly1305.KeySize

// Key is a repository's data key. It encrypts every blob and pack header.
type Key [KeySize]byte

const (
	// NonceSize is the length of the random nonce that starts every sealed
	// message.
	NonceSize = chacha20poly1305.NonceSizeX // 24
	// TagSize is the length of the Poly1305 tag that ends every sealed
	// message.
	TagSize = chacha20poly1305.Overhead // 16
	// Overhead is how much longer a sealed message is than its plaintext.
	Overhead = NonceSize + TagSize // 40
)

// ErrCorrupt is wrapped by every error about data that fails authentication
// or is malformed. Test with errors.Is.
var ErrCorrupt = errors.New("pack: corrupt data")

// Seal encrypts and authenticates plaintext and the additional data ad with
// XChaCha20-Poly1305 under key, and appends nonce || ciphertext || tag to dst.
// The 24-byte nonce is drawn from crypto/rand.
//
// XChaCha20's 192-bit nonces are deliberate: random 96-bit nonces (as in
// AES-GCM) become unsafe after about 2^32 messages under one key, and a
// repository can hold more blobs than that.
//
// dst must not overlap plaintext.
func Seal(key *Key, dst, plaintext, ad []byte) []byte {
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		// NewX fails only for keys of the wrong length.
		panic(err)
	}
	n := len(dst)
	dst = grow(dst, NonceSize+len(plaintext)+TagSize)
	nonce := dst[n : n+NonceSize]
	// crypto/rand.Read never returns an error (Go 1.24+); it crashes the
	// program irrecoverably if the system's generator fails.
	_, _ = rand.Read(nonce)
	return aead.Seal(dst[:n+NonceSize], nonce, plaintext, ad)
}

// Open authenticates and decrypts sealed (nonce || ciphertext || tag, as made
// by Seal) with the additional data ad, and appends the plaintext to dst.
// Input that is too short or fails authentication (wrong key, wrong ad, any
// changed bit) yields an error wrapping ErrCorrupt.
//
// dst must not overlap sealed, except as sealed[NonceSize:NonceSize], which
// decrypts in place (the AEAD allows exactly that overlap).
func Open(key *Key, dst, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return dst, fmt.Errorf("%w: sealed message of %d bytes is shorter than the %d-byte overhead", ErrCorrupt, len(sealed), Overhead)
	}
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		panic(err)
	}
	out, err := aead.Open(dst, sealed[:NonceSize], sealed[NonceSize:], ad)
	if err != nil {
		return dst, fmt.Errorf("%w: authentication failed", ErrCorrupt)
	}
	return out, nil
}

// grow returns b with room for at least n more bytes beyond len(b).
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	return nb
}
