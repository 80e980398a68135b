package pack

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/klauspost/compress/zstd"
)

func testID(b byte) chunk.ID {
	var id chunk.ID
	for i := range id {
		id[i] = b ^ byte(i*7)
	}
	return id
}

// encodeBlob encodes plaintext and returns the stored form and its Blob.
func encodeBlob(e *Encoder, t BlobType, id chunk.ID, plaintext []byte) ([]byte, Blob) {
	stored, compressed := e.Encode(nil, t, id, plaintext)
	return stored, Blob{
		Type:       t,
		Compressed: compressed,
		ID:         id,
		Length:     uint32(len(stored)),
		RawLength:  uint32(len(plaintext)),
	}
}

func TestEncodeDecode(t *testing.T) {
	key := testKey(1)
	e := NewEncoder(*key)
	mixed := append(randomBytes(probeSize, 3), sqlText(probeMin, 3)...)
	tests := []struct {
		name       string
		typ        BlobType
		plaintext  []byte
		compressed bool
	}{
		{"empty", DataBlob, nil, false},
		{"one byte", DataBlob, []byte{'x'}, false},
		{"short text", TreeBlob, []byte(`{"nodes":[]}`), false},
		{"zeros 1KiB", DataBlob, make([]byte, 1024), true},
		{"text 4KiB", DataBlob, sqlText(4096, 1), true},
		{"text 1MiB", DataBlob, sqlText(1<<20, 2), true},
		{"tree 300KiB", TreeBlob, sqlText(300<<10, 3), true},
		{"random 1KiB", DataBlob, randomBytes(1024, 1), false},
		{"random 1MiB", DataBlob, randomBytes(1<<20, 2), false},
		{"random 8MiB", DataBlob, randomBytes(8<<20, 3), false},
		// The probe sees only random bytes and skips compression, which
		// would have paid: stored raw, still correct.
		{"random prefix then text", DataBlob, mixed, false},
		{"text then random", DataBlob, append(sqlText(probeMin, 4), randomBytes(probeSize, 4)...), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := chunk.NewHasher([32]byte{9}).Sum(tt.plaintext)
			prefix := []byte("prefix")
			stored, compressed := e.Encode(bytes.Clone(prefix), tt.typ, id, tt.plaintext)
			if !bytes.HasPrefix(stored, prefix) {
				t.Fatal("Encode did not keep dst's prefix")
			}
			stored = stored[len(prefix):]
			if compressed != tt.compressed {
				t.Errorf("compressed = %v, want %v (stored %d of %d bytes)", compressed, tt.compressed, len(stored), len(tt.plaintext))
			}
			if !compressed && len(stored) != len(tt.plaintext)+Overhead {
				t.Errorf("uncompressed stored length %d, want %d", len(stored), len(tt.plaintext)+Overhead)
			}
			if compressed && 8*(len(stored)-Overhead) > 7*len(tt.plaintext) {
				t.Errorf("compressed to %d of %d bytes, more than 7/8", len(stored)-Overhead, len(tt.plaintext))
			}
			b := Blob{Type: tt.typ, Compressed: compressed, ID: id, Length: uint32(len(stored)), RawLength: uint32(len(tt.plaintext))}
			got, err := Decode(key, []byte("dst"), b, stored)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !bytes.HasPrefix(got, []byte("dst")) || !bytes.Equal(got[3:], tt.plaintext) {
				t.Fatal("Decode returned other bytes")
			}
		})
	}
}

// TestEncodeConcurrent encodes from four times as many goroutines as can
// run at once, small blobs and blobs of several zstd blocks, and reads
// each back. No more zstd encoders are made than GOMAXPROCS, however many
// callers: the archiver encodes small files on more goroutines than
// cores, and encoders made on demand for them (and dropped when the free
// list was full) were allocated again and again, at 574 KiB to 2.5 MiB
// each.
func TestEncodeConcurrent(t *testing.T) {
	key := testKey(1)
	e := NewEncoder(*key)
	var wg sync.WaitGroup
	for g := range 4 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range 8 {
				pt := sqlText(10000+1000*i, uint64(g*100+i))
				switch i % 4 {
				case 1:
					pt = randomBytes(len(pt), uint64(g))
				case 2:
					pt = sqlText(300<<10, uint64(g*100+i)) // three blocks: history
				}
				stored, b := encodeBlob(e, DataBlob, testID(byte(i)), pt)
				got, err := Decode(key, nil, b, stored)
				if err != nil || !bytes.Equal(got, pt) {
					t.Errorf("goroutine %d blob %d: err %v, equal %v", g, i, err, bytes.Equal(got, pt))
				}
			}
		})
	}
	wg.Wait()
	if made, most := zstdMade.Load(), runtime.GOMAXPROCS(0); made > int32(most) || made < 1 {
		t.Errorf("%d zstd encoders made, want 1 to GOMAXPROCS (%d)", made, most)
	}
}

func TestDecodeRejects(t *testing.T) {
	key := testKey(1)
	e := NewEncoder(*key)
	id := testID(1)
	text := sqlText(50000, 1)
	random := randomBytes(5000, 1)
	for _, kind := range []struct {
		name string
		pt   []byte
	}{{"compressed", text}, {"uncompressed", random}} {
		stored, b := encodeBlob(e, DataBlob, id, kind.pt)
		if b.Compressed != (kind.name == "compressed") {
			t.Fatalf("%s: Compressed = %v", kind.name, b.Compressed)
		}
		n := len(stored)
		flip := func(i int) []byte {
			s := bytes.Clone(stored)
			s[i] ^= 0x01
			return s
		}
		with := func(f func(*Blob)) Blob {
			c := b
			f(&c)
			return c
		}
		tests := []struct {
			name   string
			key    *Key
			b      Blob
			stored []byte
		}{
			{"nonce first byte", key, b, flip(0)},
			{"nonce last byte", key, b, flip(NonceSize - 1)},
			{"ciphertext first byte", key, b, flip(NonceSize)},
			{"ciphertext middle", key, b, flip(NonceSize + (n-Overhead)/2)},
			{"ciphertext last byte", key, b, flip(n - TagSize - 1)},
			{"tag first byte", key, b, flip(n - TagSize)},
			{"tag last byte", key, b, flip(n - 1)},
			{"other id", key, with(func(b *Blob) { b.ID[31] ^= 1 }), stored},
			{"other type", key, with(func(b *Blob) { b.Type = TreeBlob }), stored},
			{"wrong key", testKey(2), b, stored},
			{"truncated", key, with(func(b *Blob) { b.Length-- }), stored[:n-1]},
			{"length mismatch", key, with(func(b *Blob) { b.Length++ }), stored},
			{"raw length +1", key, with(func(b *Blob) { b.RawLength++ }), stored},
			{"raw length -1", key, with(func(b *Blob) { b.RawLength-- }), stored},
			{"raw length 0", key, with(func(b *Blob) { b.RawLength = 0 }), stored},
			{"compressed flag flipped", key, with(func(b *Blob) { b.Compressed = !b.Compressed }), stored},
			{"shorter than overhead", key, with(func(b *Blob) { b.Length = Overhead - 1 }), stored[:Overhead-1]},
			{"empty", key, with(func(b *Blob) { b.Length = 0 }), nil},
		}
		for _, tt := range tests {
			t.Run(kind.name+"/"+tt.name, func(t *testing.T) {
				dst := []byte("keep")
				got, err := Decode(tt.key, dst, tt.b, tt.stored)
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("err = %v, want ErrCorrupt", err)
				}
				if !strings.Contains(err.Error(), tt.b.ID.String()) {
					t.Errorf("error %q does not name the blob", err)
				}
				if string(got) != "keep" {
					t.Errorf("dst changed to %q", got)
				}
			})
		}
	}
}

// sealFrame seals an arbitrary payload as blob b would be, so that tests can
// feed the decompressor frames Encode would never write.
func sealFrame(key *Key, b *Blob, payload []byte) []byte {
	ad := blobAD(b.Type, b.ID)
	s := Seal(key, nil, payload, ad[:])
	b.Length = uint32(len(s))
	return s
}

func TestDecodeBoundsOutput(t *testing.T) {
	key := testKey(1)
	big := sqlText(8<<20, 7)
	withFCS := zstdEncode(t, big, true)
	noFCS := zstdEncode(t, big, false)
	if h := new(zstd.Header); h.Decode(noFCS) != nil || h.HasFCS {
		t.Fatal("streamed frame has a content size")
	}
	tests := []struct {
		name  string
		frame []byte
		raw   uint32
	}{
		{"content size above raw length", withFCS, 1000},
		{"no content size, output above raw length", noFCS, 1000},
		{"content size below raw length", withFCS, uint32(len(big)) + 1},
		{"no content size, output below raw length", noFCS, uint32(len(big)) + 1},
		{"garbage", []byte("definitely not a zstd frame"), 10},
		{"two frames", append(bytes.Clone(zstdEncode(t, big[:100], true)), zstdEncode(t, big[:100], true)...), 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := Blob{Type: DataBlob, Compressed: true, ID: testID(3), RawLength: tt.raw}
			stored := sealFrame(key, &b, tt.frame)
			Decode(key, nil, b, stored) // warm up pools and decoder state
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := Decode(key, nil, b, stored)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			// The raw length, the decrypted frame (if the pool lost its
			// buffer) and slack for the decoder's block buffers; never the
			// 8 MiB the frame holds.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(tt.raw)+uint64(len(stored))+1<<20 {
				t.Errorf("allocated %d bytes for a raw length of %d", alloc, tt.raw)
			}
		})
	}
}

// zstdEncode compresses src as one frame, with the frame content size in its
// header, or streamed, which leaves it out when src spans several blocks.
func zstdEncode(tb testing.TB, src []byte, fcs bool) []byte {
	var buf bytes.Buffer
	if fcs {
		z, err := zstd.NewWriter(nil)
		if err != nil {
			tb.Fatal(err)
		}
		return z.EncodeAll(src, nil)
	}
	z, err := zstd.NewWriter(&buf)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := z.Write(src); err != nil {
		tb.Fatal(err)
	}
	if err := z.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
