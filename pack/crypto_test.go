package pack

import (
	"bytes"
	"errors"
	"testing"
)

func testKey(b byte) *Key {
	var k Key
	for i := range k {
		k[i] = b + byte(i)
	}
	return &k
}

func TestSealOpen(t *testing.T) {
	key := testKey(1)
	ad := []byte("ad")
	for _, size := range []int{0, 1, 63, 64, 65, 1000, 1 << 16} {
		pt := randomBytes(size, uint64(size))
		prefix := []byte("prefix")
		sealed := Seal(key, append([]byte(nil), prefix...), pt, ad)
		if !bytes.Equal(sealed[:len(prefix)], prefix) {
			t.Fatalf("size %d: Seal did not keep dst's prefix", size)
		}
		sealed = sealed[len(prefix):]
		if len(sealed) != size+Overhead {
			t.Fatalf("size %d: sealed length %d, want %d", size, len(sealed), size+Overhead)
		}
		got, err := Open(key, []byte("x"), sealed, ad)
		if err != nil {
			t.Fatalf("size %d: Open: %v", size, err)
		}
		if !bytes.Equal(got, append([]byte("x"), pt...)) {
			t.Fatalf("size %d: Open returned other bytes", size)
		}
	}
}

func TestSealNoncesDiffer(t *testing.T) {
	key := testKey(1)
	a := Seal(key, nil, []byte("same"), nil)
	b := Seal(key, nil, []byte("same"), nil)
	if bytes.Equal(a[:NonceSize], b[:NonceSize]) || bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext are equal")
	}
}

func TestOpenRejects(t *testing.T) {
	key := testKey(1)
	ad := []byte("ad")
	sealed := Seal(key, nil, []byte("some plaintext of a few bytes"), ad)
	flip := func(i int) []byte {
		s := bytes.Clone(sealed)
		s[i] ^= 0x10
		return s
	}
	tests := []struct {
		name   string
		key    *Key
		sealed []byte
		ad     []byte
	}{
		{"empty", key, nil, ad},
		{"short", key, sealed[:Overhead-1], ad},
		{"truncated", key, sealed[:len(sealed)-1], ad},
		{"extended", key, append(bytes.Clone(sealed), 0), ad},
		{"nonce", key, flip(0), ad},
		{"ciphertext", key, flip(NonceSize + 3), ad},
		{"tag", key, flip(len(sealed) - 1), ad},
		{"wrong ad", key, sealed, []byte("ae")},
		{"no ad", key, sealed, nil},
		{"wrong key", testKey(2), sealed, ad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := Open(tt.key, dst, tt.sealed, tt.ad)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			if string(got) != "keep" {
				t.Fatalf("dst changed to %q", got)
			}
		})
	}
}
