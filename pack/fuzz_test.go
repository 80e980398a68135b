package pack

import (
	"bytes"
	"errors"
	"testing"
)

func FuzzReadHeader(f *testing.F) {
	key := testKey(1)
	valid := smallPack(f, key)
	f.Add(valid)
	f.Add(valid[len(valid)-TailSize(3):])
	f.Add([]byte{})
	f.Add([]byte{40, 0, 0, 0, 1})
	empty, _ := NewWriter(key).Finish()
	f.Add(empty)
	id := testID(1)
	f.Add(forgePack(key, make([]byte, 100), entry{1, 0, id, 100, 60}.bytes(), headerAD))
	f.Add(forgePack(key, make([]byte, 100), entry{2, 1, id, 100, 1 << 31}.bytes(), headerAD))
	f.Add(forgePack(key, make([]byte, 100), entry{2, 1, id, 0xffffffff, 0}.bytes(), headerAD))

	f.Fuzz(func(t *testing.T, data []byte) {
		size := int64(len(data))
		blobs, err := ReadHeader(key, bytes.NewReader(data), size)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnknownVersion) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		var off uint32
		for i, b := range blobs {
			if b.Offset != off || b.Length < Overhead || (b.Type != DataBlob && b.Type != TreeBlob) {
				t.Fatalf("blob %d accepted malformed: %+v", i, b)
			}
			off += b.Length
		}
		if int64(off)+int64(TailSize(len(blobs))) != size {
			t.Fatalf("blobs end at %d, tail %d, size %d", off, TailSize(len(blobs)), size)
		}
		// Decoding accepted blobs must not panic either.
		for _, b := range blobs {
			if b.RawLength > 1<<24 {
				continue
			}
			_, _ = Decode(key, nil, b, data[b.Offset:b.Offset+b.Length])
		}
		n, err := HeaderLength(data[size-TrailerSize:])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseHeader(key, data[size-TrailerSize-int64(n):size-TrailerSize], size); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzDecode feeds Decode arbitrary stored forms and, more usefully, arbitrary
// payloads sealed with the right key and AD, which reach the zstd decoder.
func FuzzDecode(f *testing.F) {
	key := testKey(1)
	e := NewEncoder(*key)
	for i, pt := range [][]byte{nil, []byte("a"), sqlText(5000, 1), randomBytes(300, 1), make([]byte, 70000)} {
		id := testID(byte(i))
		stored, compressed := e.Encode(nil, DataBlob, id, pt)
		payload := stored[NonceSize : len(stored)-TagSize]
		if compressed {
			// The plaintext payload is a zstd frame; unseal it for the corpus.
			payload, _ = Open(key, nil, stored, func() []byte { a := blobAD(DataBlob, id); return a[:] }())
		}
		f.Add(payload, true, compressed, uint32(len(pt)), byte(DataBlob))
		f.Add(stored, false, compressed, uint32(len(pt)), byte(DataBlob))
	}
	f.Add(zstdEncode(f, sqlText(3000, 2), false), true, true, uint32(3000), byte(TreeBlob))
	f.Add(zstdEncode(f, sqlText(3000, 2), true), true, true, uint32(2999), byte(TreeBlob))

	f.Fuzz(func(t *testing.T, payload []byte, seal, compressed bool, raw uint32, typ byte) {
		raw %= 1 << 20 // Decode allocates the raw length up front.
		b := Blob{Type: BlobType(typ), Compressed: compressed, ID: testID(typ), RawLength: raw}
		stored := payload
		if seal {
			stored = sealFrame(key, &b, payload)
		} else {
			b.Length = uint32(len(stored))
		}
		got, err := Decode(key, []byte("dst"), b, stored)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			if string(got) != "dst" {
				t.Fatalf("dst changed on error")
			}
			return
		}
		if len(got) != 3+int(raw) || string(got[:3]) != "dst" {
			t.Fatalf("got %d bytes for raw length %d", len(got), raw)
		}
		// Bounded allocation: the output buffer is sized by the raw
		// length (with append's growth), never by what the frame claims.
		if cap(got) > 2*(3+int(raw))+64 {
			t.Fatalf("output capacity %d for raw length %d", cap(got), raw)
		}
		if seal && !compressed && !bytes.Equal(got[3:], payload) {
			t.Fatal("uncompressed blob decoded to other bytes")
		}
	})
}

// FuzzPackRoundTrip builds a pack from fuzzed blobs with the real encoder
// and writer and asserts the round trip: the header reads back exactly as
// written, every blob decodes to its plaintext, and DecodeLimit refuses a
// limit below a blob's raw length.
func FuzzPackRoundTrip(f *testing.F) {
	f.Add([]byte("hello"), uint8(1), uint8(3))
	f.Add(sqlText(20000, 1), uint8(4), uint8(0))
	f.Add(randomBytes(5000, 2), uint8(2), uint8(1))
	f.Add([]byte{}, uint8(1), uint8(1))
	key := testKey(1)
	e := NewEncoder(*key)
	f.Fuzz(func(t *testing.T, data []byte, parts, trees uint8) {
		n := int(parts%8) + 1
		w := NewWriter(key)
		var plains [][]byte
		for i := range n {
			pt := data[i*len(data)/n : (i+1)*len(data)/n]
			typ := DataBlob
			if int(trees)>>i&1 == 1 {
				typ = TreeBlob
			}
			id := testID(byte(i))
			stored, compressed := e.Encode(nil, typ, id, pt)
			w.Add(typ, id, stored, compressed, uint32(len(pt)))
			plains = append(plains, pt)
		}
		packed, written := w.Finish()
		read, err := ReadHeader(key, bytes.NewReader(packed), int64(len(packed)))
		if err != nil {
			t.Fatalf("ReadHeader of a written pack: %v", err)
		}
		if len(read) != len(written) {
			t.Fatalf("read %d blobs, wrote %d", len(read), len(written))
		}
		for i, b := range read {
			if b != written[i] {
				t.Fatalf("blob %d: read %+v, wrote %+v", i, b, written[i])
			}
			stored := packed[b.Offset : b.Offset+b.Length]
			got, err := Decode(key, nil, b, stored)
			if err != nil || !bytes.Equal(got, plains[i]) {
				t.Fatalf("blob %d: err %v, equal %v", i, err, bytes.Equal(got, plains[i]))
			}
			if b.RawLength > 0 {
				if _, err := DecodeLimit(key, nil, b, stored, b.RawLength-1); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("blob %d: DecodeLimit below its raw length: %v", i, err)
				}
			}
		}
	})
}
