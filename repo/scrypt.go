package repo

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/bits"
	"runtime"
)

// scryptKey is scrypt (RFC 7914), the key files' KDF. golang.org/x/crypto's
// scrypt.Key computes the same function (the tests compare the two on the
// RFC's vectors and on random inputs); cairn has its own for one reason,
// where the 128·N·r bytes of V live. x/crypto makes V on the Go heap, in
// 4 KiB pages the kernel faults in one at a time as ROMix first writes
// them: on the bench VM the default cost (N 2^15, r 8: 32 MiB) took 180 ms
// the first time in a process and 74 ms on memory already touched, and
// every cairn command pays the first time. scryptMemory (scrypt_linux.go)
// maps V itself and asks for transparent huge pages, 16 faults instead of
// 8,192, and gives it back to the kernel as soon as the key is derived, so
// the 32 MiB neither stays in the heap nor needs a collection to be reused.
//
// The caller validates n, r and p (KDFParams.validate); n must be a power
// of two and 128·n·r must fit in an int.
func scryptKey(password, salt []byte, n, r, p, keyLen int) ([]byte, error) {
	if n < 2 || n&(n-1) != 0 || r < 1 || p < 1 {
		return nil, errors.New("scrypt: bad parameters")
	}
	b, err := pbkdf2.Key(sha256.New, string(password), salt, 1, p*128*r)
	if err != nil {
		return nil, err
	}
	blockWords := 32 * r // one ROMix block of 128·r bytes, in words
	v, release := scryptMemory(blockWords * n)
	xy := make([]uint32, 2*blockWords)
	for i := range p {
		roMix(b[i*128*r:(i+1)*128*r], r, n, v, xy)
	}
	v = nil // nothing may touch an unmapped V, and a heap V must be garbage
	release()
	return pbkdf2.Key(sha256.New, string(password), b, 1, keyLen)
}

// heapScryptMemory is V on the Go heap, where no map is made. Its release
// collects: nothing else a command allocates early triggers a collection,
// so what it allocated next came on top of the garbage V (forget --prune's
// peak RSS in the retention bench was scrypt's 32 MiB plus its own 30),
// and a collection here takes a millisecond.
func heapScryptMemory(words int) ([]uint32, func()) {
	return make([]uint32, words), func() { runtime.GC() }
}

// roMix is scryptROMix (RFC 7914 §5) on one block b of 128·r bytes, in
// place. v holds n blocks, xy two. Each step of both loops is taken in
// pairs (n is even), BlockMix writing from x into y and back, so no block
// is copied but into v.
func roMix(b []byte, r, n int, v, xy []uint32) {
	words := 32 * r
	x, y := xy[:words], xy[words:]
	for i := range x {
		x[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	for i := 0; i < n; i += 2 {
		copy(v[i*words:], x)
		blockMix(x, y, r)
		copy(v[(i+1)*words:], y)
		blockMix(y, x, r)
	}
	mask := uint32(n - 1) // n ≤ 2^32: validate bounds 128·n·r
	for i := 0; i < n; i += 2 {
		j := int(integerify(x, r) & mask)
		xorWords(x, v[j*words:(j+1)*words])
		blockMix(x, y, r)
		j = int(integerify(y, r) & mask)
		xorWords(y, v[j*words:(j+1)*words])
		blockMix(y, x, r)
	}
	for i, w := range x {
		binary.LittleEndian.PutUint32(b[4*i:], w)
	}
}

// integerify is the low 32 bits of RFC 7914's Integerify: the last 64-byte
// block's first word. n ≤ 2^32, so the bits above never reach the mask.
func integerify(x []uint32, r int) uint32 { return x[(2*r-1)*16] }

func xorWords(dst, src []uint32) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] ^= src[i]
	}
}

// blockMix is scryptBlockMix (RFC 7914 §4): in's 2r 64-byte blocks through
// Salsa20/8 in a chain, the outputs written to out even blocks first, then
// odd.
func blockMix(in, out []uint32, r int) {
	var t [16]uint32
	copy(t[:], in[(2*r-1)*16:])
	for i := 0; i < 2*r; i += 2 {
		salsaXOR(&t, in[i*16:], out[(i/2)*16:])
		salsaXOR(&t, in[(i+1)*16:], out[(r+i/2)*16:])
	}
}

// salsaXOR sets t to Salsa20/8(t ⊕ in) and writes it to out too: the core
// of RFC 7914 §3 with the state in sixteen locals, so that the compiler
// keeps it in registers.
func salsaXOR(t *[16]uint32, in, out []uint32) {
	in, out = in[:16], out[:16]
	w0, w1, w2, w3 := t[0]^in[0], t[1]^in[1], t[2]^in[2], t[3]^in[3]
	w4, w5, w6, w7 := t[4]^in[4], t[5]^in[5], t[6]^in[6], t[7]^in[7]
	w8, w9, w10, w11 := t[8]^in[8], t[9]^in[9], t[10]^in[10], t[11]^in[11]
	w12, w13, w14, w15 := t[12]^in[12], t[13]^in[13], t[14]^in[14], t[15]^in[15]

	x0, x1, x2, x3, x4, x5, x6, x7 := w0, w1, w2, w3, w4, w5, w6, w7
	x8, x9, x10, x11, x12, x13, x14, x15 := w8, w9, w10, w11, w12, w13, w14, w15
	rotl := bits.RotateLeft32
	for range 4 { // 8 rounds: four double rounds
		// columns
		x4 ^= rotl(x0+x12, 7)
		x8 ^= rotl(x4+x0, 9)
		x12 ^= rotl(x8+x4, 13)
		x0 ^= rotl(x12+x8, 18)
		x9 ^= rotl(x5+x1, 7)
		x13 ^= rotl(x9+x5, 9)
		x1 ^= rotl(x13+x9, 13)
		x5 ^= rotl(x1+x13, 18)
		x14 ^= rotl(x10+x6, 7)
		x2 ^= rotl(x14+x10, 9)
		x6 ^= rotl(x2+x14, 13)
		x10 ^= rotl(x6+x2, 18)
		x3 ^= rotl(x15+x11, 7)
		x7 ^= rotl(x3+x15, 9)
		x11 ^= rotl(x7+x3, 13)
		x15 ^= rotl(x11+x7, 18)
		// rows
		x1 ^= rotl(x0+x3, 7)
		x2 ^= rotl(x1+x0, 9)
		x3 ^= rotl(x2+x1, 13)
		x0 ^= rotl(x3+x2, 18)
		x6 ^= rotl(x5+x4, 7)
		x7 ^= rotl(x6+x5, 9)
		x4 ^= rotl(x7+x6, 13)
		x5 ^= rotl(x4+x7, 18)
		x11 ^= rotl(x10+x9, 7)
		x8 ^= rotl(x11+x10, 9)
		x9 ^= rotl(x8+x11, 13)
		x10 ^= rotl(x9+x8, 18)
		x12 ^= rotl(x15+x14, 7)
		x13 ^= rotl(x12+x15, 9)
		x14 ^= rotl(x13+x12, 13)
		x15 ^= rotl(x14+x13, 18)
	}
	x0 += w0
	x1 += w1
	x2 += w2
	x3 += w3
	x4 += w4
	x5 += w5
	x6 += w6
	x7 += w7
	x8 += w8
	x9 += w9
	x10 += w10
	x11 += w11
	x12 += w12
	x13 += w13
	x14 += w14
	x15 += w15
	out[0], out[1], out[2], out[3] = x0, x1, x2, x3
	out[4], out[5], out[6], out[7] = x4, x5, x6, x7
	out[8], out[9], out[10], out[11] = x8, x9, x10, x11
	out[12], out[13], out[14], out[15] = x12, x13, x14, x15
	*t = [16]uint32{x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15}
}
