package pack

import (
	"bytes"
	"errors"
	"runtime"
	"testing"
)

// Issue 8, item 4: a hostile repository stored 1 GiB of 'A' in 156 KB and
// restore allocated it in full. A raw length above the caller's limit (the
// chunker maximum) or MaxRawLength is corruption, refused before anything
// is allocated for it.
func TestDecodeLimit(t *testing.T) {
	key := testKey(1)
	e := NewEncoder(*key)
	big := bytes.Repeat([]byte{'A'}, 9<<20)
	stored, b := encodeBlob(e, DataBlob, testID(1), big)
	if !b.Compressed || len(stored) > 64<<10 {
		t.Fatalf("expected a small compressed blob, got %d bytes (compressed %v)", len(stored), b.Compressed)
	}
	if got, err := DecodeLimit(key, nil, b, stored, 9<<20); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("within the limit: err %v", err)
	}
	if _, err := DecodeLimit(key, nil, b, stored, 8<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("above the limit: got %v, want ErrCorrupt", err)
	}

	// A forged raw length of 4 GiB-1 for a tiny frame: refused by Decode
	// itself, without allocating it.
	forged := b
	forged.RawLength = 1<<32 - 1
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Decode(key, nil, forged, stored)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("forged raw length: got %v, want ErrCorrupt", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("refusing a forged raw length allocated %d bytes", n)
	}
}

// A frame that declares a window beyond MaxRawLength is refused by the
// decoder's own limits, whatever the blob table says.
func TestDecoderWindowLimit(t *testing.T) {
	frame := []byte{
		0x28, 0xb5, 0x2f, 0xfd, // magic
		0x00,             // frame header: no content size, not single segment
		19 << 3,          // window descriptor: 2^(10+19) = 512 MiB
		0x09, 0x00, 0x00, // last block, raw, 1 byte
		'x',
	}
	if _, err := decoder().DecodeAll(frame, make([]byte, 0, 1)); err == nil {
		t.Fatal("a frame declaring a 512 MiB window decoded")
	}
	frame[5] = 10 << 3 // 1 MiB: fine
	if out, err := decoder().DecodeAll(frame, make([]byte, 0, 1)); err != nil || string(out) != "x" {
		t.Fatalf("a frame declaring a 1 MiB window: %q, %v", out, err)
	}
}
