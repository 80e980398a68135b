package pack

import (
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/crypto/chacha20poly1305"
)

// blobADSize is the length of a blob's additional authenticated data: the
// type byte followed by the 32-byte ID.
const blobADSize = 1 + chunk.IDSize

// blobAD returns the additional data that binds a stored blob to its type
// and ID, so that one blob cannot be passed off as another under the same
// key.
func blobAD(t BlobType, id chunk.ID) [blobADSize]byte {
	var ad [blobADSize]byte
	ad[0] = byte(t)
	copy(ad[1:], id[:])
	return ad
}

// encoderLevel is the zstd level Encoder compresses with. The format does not
// record it; any level decodes with the same decoder.
//
// SpeedFastest, not SpeedDefault: compression is most of a backup's CPU
// time (75-80% of the CPU profile of a first backup at SpeedDefault), and
// fastest costs half as much for a few percent more bytes. Measured in 1 MiB
// pieces on the bench data (300 MiB SQL dump, 200 MiB tree, 2 shared cores):
// the dump took 1.9 CPU-s at fastest against 3.0-4.0 at default and stored
// 31.3% of its size against 29.5%; the tree 0.86 against 1.3 CPU-s, 61.2%
// against 59.4%.
const encoderLevel = zstd.SpeedFastest

const (
	// probeSize is how much of a large plaintext is compressed first to find
	// out cheaply whether the rest is worth compressing. 4 KiB, not 16:
	// on compressible data the probe is pure overhead, and stream chunks
	// average 192 KiB, where a 16 KiB probe was 6% of the CPU profile of
	// a first backup of the bench's generated dump. With 4 KiB probes from
	// 64 KiB on, that backup (505 MiB) took 3.72-3.80 user CPU-s against
	// 3.78-3.94; 4 KiB of random bytes still compress to more than 4 KiB,
	// so the probe still fails on random data.
	probeSize = 4 << 10
	// probeMin is the smallest plaintext for which the probe runs; below it
	// the probe would cost a large share of a full compression.
	probeMin = 16 * probeSize
	// encoderWindow is the zstd window. Each of an Encoder's compression
	// states holds two windows of history plus its match tables: 4 MiB of
	// history at a 2 MiB window, 2 MiB at 1 MiB (19 MiB in all at
	// SpeedDefault's default 8 MiB window). 1 MiB covers the default
	// chunker's average chunk, and matches further back are rare: at
	// SpeedFastest the bench dump and tree in 1 MiB pieces compressed to
	// the same bytes with a 1 and a 2 MiB window, and on SQL-like text the
	// ratio of 1 MiB and 8 MiB chunks does not change measurably with the
	// smaller window.
	encoderWindow = 1 << 20
)

// worthCompressing reports whether compressedLen bytes are small enough,
// compared with rawLen, to store the compressed form: at most 7/8 of the raw
// size. Data that shrinks less (media, already-compressed files, index
// segments) is cheaper to store raw than to decompress on every read.
func worthCompressing(compressedLen, rawLen int) bool {
	return rawLen > 0 && 8*int64(compressedLen) <= 7*int64(rawLen)
}

// probeFails reports whether a probe that compressed probeSize bytes to
// compressedLen shows the data to be essentially incompressible (saving less
// than 1/32). The threshold is looser than worthCompressing so that data
// which compresses unevenly is still tried in full.
func probeFails(compressedLen int) bool {
	return 32*compressedLen > 31*probeSize
}

// Encoder turns plaintext blobs into stored blobs: zstd compression when it
// pays, then XChaCha20-Poly1305 encryption bound to the blob's type and ID.
// It is safe for concurrent use; share one per repository.
type Encoder struct {
	aead    cipher.AEAD
	noProbe bool // benchmarks turn the probe off to measure what it saves
}

// NewEncoder returns an Encoder that encrypts with key.
func NewEncoder(key Key) *Encoder {
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		panic(err)
	}
	return &Encoder{aead: aead}
}

// zstdFree holds idle zstd encoders with one compression state each (about
// 2.5 MiB with encoderWindow at SpeedFastest, 574 KiB for one that has only
// compressed blobs of one zstd block), shared by all Encoders: the
// compression state does not depend on the key. No more than GOMAXPROCS of
// them exist, as many as can run at once: a caller that finds none free
// makes one while fewer exist, else waits for one. An encode never waits
// for anything else while it holds one, so the wait is short.
//
// Bounded, not made on demand: the archiver encodes small files on up to
// twice GOMAXPROCS readers besides the saver's encoders, and a free list
// that made an encoder whenever none was free, and dropped it when full,
// allocated and zeroed their histories again and again, and held more of
// them than can run; with the heap at a backup's memory limit, each
// MiB held is a MiB less room for garbage and more collections.
//
// BenchmarkZstdStrategy compares a free list with the alternatives on 1
// MiB of SQL-like text. A single zstd.Encoder with one state
// (WithEncoderConcurrency(1)) is safe for concurrent EncodeAll but
// serialises all callers on that state: its parallel throughput stays at its
// serial throughput, half that of the others on two cores. A single
// zstd.Encoder with GOMAXPROCS states scales like the pool; serially all
// three were equal within the noise of our measurements. A free list
// replaced the sync.Pool: the pool drops its encoders at every garbage
// collection, and each new one allocated its 4 MiB history again (24 MiB
// of new histories in one backup of the 300 MiB bench dump, with the
// collector running every few hundred milliseconds).
var (
	zstdFree = make(chan *zstd.Encoder, runtime.GOMAXPROCS(0))
	zstdMade atomic.Int32
)

func getZstd() *zstd.Encoder {
	select {
	case z := <-zstdFree:
		return z
	default:
	}
	if zstdMade.Add(1) <= int32(cap(zstdFree)) {
		return newZstdEncoder()
	}
	zstdMade.Add(-1)
	return <-zstdFree
}

func putZstd(z *zstd.Encoder) {
	zstdFree <- z // never blocks: no more exist than it holds
}

// newZstdEncoder returns a zstd encoder with one compression state.
func newZstdEncoder() *zstd.Encoder {
	z, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(encoderLevel),
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(encoderWindow),
		// The AEAD tag and the caller's keyed hash already detect any
		// change; a frame checksum would only cost time and 4 bytes.
		zstd.WithEncoderCRC(false),
	)
	if err != nil {
		// Only invalid options make NewWriter fail.
		panic(err)
	}
	return z
}

// Encode compresses and encrypts plaintext, the content of the blob of type t
// named id, and appends the stored form to dst. It reports whether the stored
// form is compressed: it is when zstd shrinks plaintext to at most 7/8 of its
// size; otherwise (and for empty plaintext) the raw bytes are encrypted.
//
// The stored form is nonce (24) || ciphertext || tag (16), sealed with the
// additional data t || id; it is len(plaintext)+Overhead bytes long when not
// compressed. Encode may use dst's spare capacity (and returns a slice with
// spare capacity when compressed), which must not overlap plaintext.
func (e *Encoder) Encode(dst []byte, t BlobType, id chunk.ID, plaintext []byte) (stored []byte, compressed bool) {
	ad := blobAD(t, id)
	n := len(dst)
	// Room for the nonce, the plaintext (or zstd output up to a bit more than
	// the plaintext, which is then discarded) and the tag.
	dst = grow(dst, Overhead+len(plaintext)+len(plaintext)>>6+64)
	head := dst[:n+NonceSize] // nonce bytes are filled in below

	body := head // head || plaintext to seal in place, when compressed
	if len(plaintext) > 0 {
		z := getZstd()
		if e.worthTrying(z, head, plaintext) {
			c := z.EncodeAll(plaintext, head)
			if worthCompressing(len(c)-len(head), len(plaintext)) {
				compressed = true
				body = grow(c, TagSize) // no-op unless zstd reallocated
			}
		}
		putZstd(z)
	}
	nonce := body[n : n+NonceSize]
	_, _ = rand.Read(nonce) // never fails; see Seal
	if compressed {
		z := body[n+NonceSize:]
		// Seal in place: dst is z[:0] and the tag fits in z's capacity.
		e.aead.Seal(z[:0], nonce, z, ad[:])
		return body[:len(body)+TagSize], true
	}
	return e.aead.Seal(body, nonce, plaintext, ad[:]), false
}

// worthTrying reports whether plaintext (not empty) is worth a full
// compression attempt with z. Large plaintexts are probed: when their first
// probeSize bytes do not compress at all, neither will the rest as a rule,
// and random data is skipped at a fraction of the cost. scratch is head,
// whose spare capacity the probe may overwrite.
func (e *Encoder) worthTrying(z *zstd.Encoder, scratch, plaintext []byte) bool {
	if e.noProbe || len(plaintext) < probeMin {
		return true
	}
	p := z.EncodeAll(plaintext[:probeSize], scratch)
	return !probeFails(len(p) - len(scratch))
}

// MaxRawLength bounds the plaintext of any blob a reader accepts: no
// writer produces a larger one (data blobs are at most the chunker's
// maximum, which chunk.Params caps at 64 MiB; tree blobs at most
// snapshot.MaxTreeSize, 256 MiB). A raw length above it, or above the
// tighter limit a caller passes to DecodeLimit, is corruption, and is
// refused before anything is allocated for it: a forged blob table must not
// make a reader allocate gigabytes.
const MaxRawLength = 256 << 20

// decoder decompresses blobs. DecodeAll is safe for concurrent use and runs
// up to GOMAXPROCS decodes at a time. WithDecodeAllCapLimit makes it stop
// rather than write past cap(dst), so that a blob never decodes to more than
// its recorded raw length and a forged size field cannot make it allocate.
// The window and memory limits bound what a frame header can ask for
// (klauspost's defaults are 512 MiB and 64 GiB) to what a blob can hold.
var decoder = sync.OnceValue(func() *zstd.Decoder {
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderMaxWindow(MaxRawLength),
		zstd.WithDecoderMaxMemory(MaxRawLength),
	)
	if err != nil {
		panic(err)
	}
	return d
})

// zstdSlack is room left past a blob's raw length for zstd's sequence
// decoder: its fast copies move 16-byte blocks and may write up to 15
// bytes past a match (klauspost/compress's compressedBlockOverAlloc), so
// with the output capped at exactly the raw length it takes the
// bounds-exact copies for every block that ends within 128 KiB of the
// frame's end. In check --read-data's profile (208 MiB of packs of SQL
// text and files, 3 runs merged) those copies were 11% of the sequence
// decoding; with the slack they are gone and DecodeAll took 4% less.
const zstdSlack = 16

// scratchPool holds buffers for decrypted zstd frames.
var scratchPool sync.Pool // of *[]byte

// corruptBlob returns an ErrCorrupt-wrapping error about blob b.
func corruptBlob(b Blob, format string, args ...any) error {
	return fmt.Errorf("%w: %v blob %v: %s", ErrCorrupt, b.Type, b.ID, fmt.Sprintf(format, args...))
}

// Decode decrypts and, if b.Compressed, decompresses stored, the stored form
// of blob b, and appends the plaintext to dst. It allocates at most
// b.RawLength+16 bytes for the plaintext. Every failure (a stored length other
// than b.Length, a raw length above MaxRawLength, an authentication
// failure, a wrong key, type or ID, a zstd error, a plaintext length other
// than b.RawLength) yields an error wrapping ErrCorrupt that names the
// blob; dst is then returned unchanged.
//
// Decode does not check the plaintext against b.ID: the caller, which holds
// the ID key, must. dst must not overlap stored. Decode is safe for
// concurrent use.
func Decode(key *Key, dst []byte, b Blob, stored []byte) ([]byte, error) {
	return DecodeLimit(key, dst, b, stored, MaxRawLength)
}

// DecodeLimit is Decode with a tighter bound on the raw length: a
// repository passes its chunker's maximum for data blobs. A blob whose raw
// length exceeds maxRaw is corrupt and nothing is allocated for it.
func DecodeLimit(key *Key, dst []byte, b Blob, stored []byte, maxRaw uint32) ([]byte, error) {
	maxRaw = min(maxRaw, MaxRawLength)
	if b.RawLength > maxRaw {
		return dst, corruptBlob(b, "raw length %d exceeds the limit of %d for %v blobs", b.RawLength, maxRaw, b.Type)
	}
	if uint64(len(stored)) != uint64(b.Length) {
		return dst, corruptBlob(b, "stored form is %d bytes, blob table says %d", len(stored), b.Length)
	}
	if len(stored) < Overhead {
		return dst, corruptBlob(b, "stored form of %d bytes is shorter than the %d-byte overhead", len(stored), Overhead)
	}
	if !b.Compressed && uint64(len(stored)-Overhead) != uint64(b.RawLength) {
		return dst, corruptBlob(b, "uncompressed stored form of %d bytes cannot hold %d bytes", len(stored), b.RawLength)
	}
	ad := blobAD(b.Type, b.ID)
	n := len(dst)
	raw := int(b.RawLength)

	if !b.Compressed {
		out, err := Open(key, grow(dst, raw), stored, ad[:])
		if err != nil {
			return dst, corruptBlob(b, "authentication failed")
		}
		return out, nil
	}

	bp, _ := scratchPool.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer scratchPool.Put(bp)
	frame, err := Open(key, grow((*bp)[:0], len(stored)-Overhead), stored, ad[:])
	*bp = frame[:0]
	if err != nil {
		return dst, corruptBlob(b, "authentication failed")
	}
	if len(frame) == 0 {
		return dst, corruptBlob(b, "empty zstd frame")
	}

	if cap(dst)-n < raw {
		dst = grow(dst, raw+zstdSlack)
	}
	// A slice whose capacity is the raw length, plus zstdSlack when dst
	// has the room: with WithDecodeAllCapLimit the decoder fails rather
	// than exceed it, and more than raw bytes are refused below.
	window := dst[n:n:min(cap(dst), n+raw+zstdSlack)]
	out, err := decoder().DecodeAll(frame, window)
	if err != nil {
		return dst[:n], corruptBlob(b, "zstd: %v", err)
	}
	if len(out) != raw {
		return dst[:n], corruptBlob(b, "decompressed to %d bytes, blob table says %d", len(out), raw)
	}
	if raw > 0 && &out[0] != &dst[n : n+1][0] {
		// Not expected with the cap limit, but never return bytes that are
		// not in dst.
		copy(dst[n:n+raw], out)
	}
	return dst[:n+raw], nil
}
