package pack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/chunk"
	"golang.org/x/crypto/chacha20poly1305"
)

type testBlob struct {
	typ       BlobType
	plaintext []byte
}

// buildPack encodes and packs blobs and checks the Writer's bookkeeping.
func buildPack(t testing.TB, key *Key, blobs []testBlob) ([]byte, []Blob) {
	e := NewEncoder(*key)
	w := NewWriter(key)
	h := chunk.NewHasher([32]byte{7})
	var want []Blob
	for i, tb := range blobs {
		id := h.Sum(append([]byte{byte(tb.typ)}, tb.plaintext...))
		stored, compressed := e.Encode(nil, tb.typ, id, tb.plaintext)
		before := w.Size()
		b := w.Add(tb.typ, id, stored, compressed, uint32(len(tb.plaintext)))
		if w.Size() != before+len(stored)+HeaderEntrySize {
			t.Fatalf("blob %d: Size grew from %d to %d for %d stored bytes", i, before, w.Size(), len(stored))
		}
		if w.Count() != i+1 {
			t.Fatalf("Count = %d, want %d", w.Count(), i+1)
		}
		want = append(want, b)
	}
	size := w.Size()
	data, got := w.Finish()
	if len(data) != size {
		t.Fatalf("Size said %d, Finish wrote %d bytes", size, len(data))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Finish returned other blobs than Add")
	}
	if w.Count() != 0 || w.Size() != TailSize(0) {
		t.Fatalf("Writer not reset after Finish: count %d size %d", w.Count(), w.Size())
	}
	return data, got
}

func TestPackRoundtrip(t *testing.T) {
	key := testKey(1)
	var many []testBlob
	for i := range 60 {
		typ := DataBlob
		if i%3 == 0 {
			typ = TreeBlob
		}
		var pt []byte
		switch i % 4 {
		case 0:
			pt = sqlText(1000+i*997, uint64(i))
		case 1:
			pt = randomBytes(500+i*331, uint64(i))
		case 2:
			pt = sqlText(i, uint64(i))
		case 3:
			pt = make([]byte, i*100)
		}
		many = append(many, testBlob{typ, pt})
	}
	tests := []struct {
		name  string
		blobs []testBlob
	}{
		{"no blobs", nil},
		{"one empty blob", []testBlob{{DataBlob, nil}}},
		{"one text blob", []testBlob{{DataBlob, sqlText(100000, 1)}}},
		{"one random blob", []testBlob{{TreeBlob, randomBytes(100000, 1)}}},
		{"many mixed", many},
		{"large", []testBlob{{DataBlob, sqlText(4<<20, 2)}, {DataBlob, randomBytes(4<<20, 2)}, {TreeBlob, []byte("{}")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, written := buildPack(t, key, tt.blobs)
			size := int64(len(data))
			blobs, err := ReadHeader(key, bytes.NewReader(data), size)
			if err != nil {
				t.Fatalf("ReadHeader: %v", err)
			}
			if len(blobs) != len(tt.blobs) || fmt.Sprint(blobs) != fmt.Sprint(written) {
				t.Fatalf("ReadHeader returned\n%v\nwant\n%v", blobs, written)
			}

			// The tail alone, as a reader with range requests sees it.
			tail := data[len(data)-TailSize(len(blobs)):]
			n, err := HeaderLength(tail[len(tail)-TrailerSize:])
			if err != nil || int(n) != len(tail)-TrailerSize {
				t.Fatalf("HeaderLength = %d, %v; want %d", n, err, len(tail)-TrailerSize)
			}
			parsed, err := ParseHeader(key, tail[:n], size)
			if err != nil || fmt.Sprint(parsed) != fmt.Sprint(blobs) {
				t.Fatalf("ParseHeader = %v, %v", parsed, err)
			}

			var off uint32
			for i, b := range blobs {
				if b.Offset != off {
					t.Fatalf("blob %d at offset %d, want %d", i, b.Offset, off)
				}
				off += b.Length
				pt, err := Decode(key, nil, b, data[b.Offset:b.Offset+b.Length])
				if err != nil {
					t.Fatalf("blob %d: Decode: %v", i, err)
				}
				if !bytes.Equal(pt, tt.blobs[i].plaintext) || b.Type != tt.blobs[i].typ {
					t.Fatalf("blob %d: wrong content or type", i)
				}
				wantCompressed := len(pt) > 0 && bytes.Contains(pt, []byte("INSERT")) || len(pt) > 200 && bytes.Equal(pt, make([]byte, len(pt)))
				if len(pt) >= 1000 && b.Compressed != wantCompressed {
					t.Errorf("blob %d (%d bytes): Compressed = %v", i, len(pt), b.Compressed)
				}
			}
			if ID(data) != chunk.ObjectID(data) {
				t.Fatal("ID differs from chunk.ObjectID")
			}
		})
	}
}

func TestTailSize(t *testing.T) {
	for _, n := range []int{0, 1, 2, 100} {
		if got, want := TailSize(n), 24+16+42*n+5; got != want {
			t.Errorf("TailSize(%d) = %d, want %d", n, got, want)
		}
	}
}

// TestWriterBuffer fills a Writer in a reused buffer up to what Fits
// allows and checks that the pack is built in that buffer, without
// growing it, and reads back.
func TestWriterBuffer(t *testing.T) {
	key := testKey(1)
	e := NewEncoder(*key)
	h := chunk.NewHasher([32]byte{7})
	buf := make([]byte, 123, 4096) // old contents: ignored
	w := NewWriterBuffer(key, buf)
	var want [][]byte
	for i := 0; ; i++ {
		plain := randomBytes(500, uint64(i))
		id := h.Sum(plain)
		stored, compressed := e.Encode(nil, DataBlob, id, plain)
		if !w.Fits(len(stored)) {
			if i < 2 {
				t.Fatalf("only %d blobs of 540 bytes fit in 4096", i)
			}
			if w.Size()+len(stored)+HeaderEntrySize <= cap(buf) {
				t.Fatalf("Fits refused a blob that fits: size %d + %d + entry, cap %d", w.Size(), len(stored), cap(buf))
			}
			break
		}
		w.Add(DataBlob, id, stored, compressed, uint32(len(plain)))
		want = append(want, plain)
	}
	data, blobs := w.Finish()
	if &data[0] != &buf[:1][0] || cap(data) != cap(buf) {
		t.Fatalf("Finish returned another buffer (cap %d, want %d)", cap(data), cap(buf))
	}
	for i, b := range blobs {
		got, err := Decode(key, nil, b, data[b.Offset:b.Offset+b.Length])
		if err != nil || !bytes.Equal(got, want[i]) {
			t.Fatalf("blob %d: %v", i, err)
		}
	}
}

// smallPack returns a pack of three short blobs.
func smallPack(t testing.TB, key *Key) []byte {
	data, _ := buildPack(t, key, []testBlob{
		{DataBlob, sqlText(3000, 1)},
		{TreeBlob, []byte(`{"nodes":[{"name":"a"}]}`)},
		{DataBlob, randomBytes(200, 1)},
	})
	return data
}

func TestReadHeaderTruncated(t *testing.T) {
	key := testKey(1)
	data := smallPack(t, key)
	for l := 0; l < len(data); l++ {
		t.Run(fmt.Sprint(l), func(t *testing.T) {
			p := data[:l]
			_, err := ReadHeader(key, bytes.NewReader(p), int64(l))
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnknownVersion) {
				t.Fatalf("err = %v, want ErrCorrupt or ErrUnknownVersion", err)
			}
			// The reader holds fewer bytes than size claims.
			_, err = ReadHeader(key, bytes.NewReader(p), int64(len(data)))
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("short reader: err = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestUnknownVersion(t *testing.T) {
	key := testKey(1)
	data := smallPack(t, key)
	for _, v := range []byte{0, 2, 0x7f, 0xff} {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			p := bytes.Clone(data)
			p[len(p)-1] = v
			_, err := ReadHeader(key, bytes.NewReader(p), int64(len(p)))
			if !errors.Is(err, ErrUnknownVersion) {
				t.Fatalf("err = %v, want ErrUnknownVersion", err)
			}
			if errors.Is(err, ErrCorrupt) {
				t.Error("unknown version also wraps ErrCorrupt")
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("version %d", v)) {
				t.Errorf("error %q does not name version %d", err, v)
			}
		})
	}
}

type errReaderAt struct{ err error }

func (r errReaderAt) ReadAt([]byte, int64) (int, error) { return 0, r.err }

func TestReadHeaderIOError(t *testing.T) {
	boom := errors.New("boom")
	_, err := ReadHeader(testKey(1), errReaderAt{boom}, 1000)
	if !errors.Is(err, boom) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want boom and not ErrCorrupt", err)
	}
}

// entry is a header entry as raw fields, for forging headers.
type entry struct {
	typ, flags  byte
	id          chunk.ID
	length, raw uint32
}

func (e entry) bytes() []byte {
	b := []byte{e.typ, e.flags}
	b = append(b, e.id[:]...)
	b = binary.LittleEndian.AppendUint32(b, e.length)
	return binary.LittleEndian.AppendUint32(b, e.raw)
}

// forgePack returns a pack of body bytes followed by a header holding
// entries, sealed with key and ad, and a trailer.
func forgePack(key *Key, body []byte, hdr []byte, ad []byte) []byte {
	p := Seal(key, bytes.Clone(body), hdr, ad)
	p = binary.LittleEndian.AppendUint32(p, uint32(len(p)-len(body)))
	return append(p, Version)
}

func TestReadHeaderMalformed(t *testing.T) {
	key := testKey(1)
	id := testID(1)
	ok := func(length, raw uint32) entry { return entry{1, 0, id, length, raw} }
	okc := func(length, raw uint32) entry { return entry{1, 1, id, length, raw} }
	body := make([]byte, 300)
	hdr := func(es ...entry) []byte {
		var b []byte
		for _, e := range es {
			b = append(b, e.bytes()...)
		}
		return b
	}
	tests := []struct {
		name string
		pack []byte
		want string
	}{
		{"blobs end before header", forgePack(key, body, hdr(ok(100, 60), ok(100, 60)), headerAD), "header starts at 300"},
		{"blobs end after header", forgePack(key, body, hdr(ok(200, 160), ok(200, 160)), headerAD), "beyond the header"},
		{"no entries but blob bytes", forgePack(key, body, nil, headerAD), "header starts at 300"},
		{"type 0", forgePack(key, body, hdr(entry{0, 0, id, 300, 260}), headerAD), "invalid blob type 0"},
		{"type 3", forgePack(key, body, hdr(entry{3, 0, id, 300, 260}), headerAD), "invalid blob type 3"},
		{"unknown flag", forgePack(key, body, hdr(entry{1, 2, id, 300, 260}), headerAD), "unknown flags"},
		{"null id", forgePack(key, body, hdr(entry{1, 0, chunk.ID{}, 300, 260}), headerAD), "null blob ID"},
		{"stored shorter than overhead", forgePack(key, body, hdr(ok(39, 0), okc(261, 1000)), headerAD), "shorter than the 40-byte overhead"},
		{"empty compressed", forgePack(key, body, hdr(okc(40, 0), okc(260, 1000)), headerAD), "empty zstd frame"},
		{"uncompressed raw mismatch", forgePack(key, body, hdr(ok(300, 261)), headerAD), "raw length 261"},
		{"header sealed with other ad", forgePack(key, body, hdr(ok(300, 260)), []byte("cairn pack header v2")), "authentication"},
		{"header sealed with other key", forgePack(testKey(2), body, hdr(ok(300, 260)), headerAD), "authentication"},
		{"header length not whole entries", forgePack(key, body, append(hdr(ok(300, 260)), 0), headerAD), "not 40 plus a multiple of 42"},
	}
	// A trailer claiming a header longer than the pack.
	long := forgePack(key, nil, hdr(ok(300, 260)), headerAD)
	binary.LittleEndian.PutUint32(long[len(long)-5:], uint32(len(long)-5+HeaderEntrySize))
	tests = append(tests, struct {
		name string
		pack []byte
		want string
	}{"header longer than pack", long, "exceeds"})
	// A trailer claiming a header shorter than the overhead.
	short := forgePack(key, nil, nil, headerAD)
	binary.LittleEndian.PutUint32(short[len(short)-5:], 2)
	tests = append(tests, struct {
		name string
		pack []byte
		want string
	}{"header length 2", short, "not 40 plus"})

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadHeader(key, bytes.NewReader(tt.pack), int64(len(tt.pack)))
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}

	// The same forgery with consistent fields is accepted.
	good := forgePack(key, body, hdr(ok(100, 60), okc(200, 1000)), headerAD)
	blobs, err := ReadHeader(key, bytes.NewReader(good), int64(len(good)))
	if err != nil || len(blobs) != 2 || blobs[1].Offset != 100 || !blobs[1].Compressed || blobs[1].RawLength != 1000 {
		t.Fatalf("consistent forgery: %v, %v", blobs, err)
	}
}

func TestParseHeaderSize(t *testing.T) {
	key := testKey(1)
	data := smallPack(t, key)
	n, err := HeaderLength(data[len(data)-TrailerSize:])
	if err != nil {
		t.Fatal(err)
	}
	hdr := data[len(data)-TrailerSize-int(n) : len(data)-TrailerSize]
	for _, size := range []int64{0, int64(n), int64(len(data)) - 1, int64(len(data)) + 1, 1 << 40} {
		if _, err := ParseHeader(key, hdr, size); !errors.Is(err, ErrCorrupt) {
			t.Errorf("pack size %d: err = %v, want ErrCorrupt", size, err)
		}
	}
	for _, tr := range [][]byte{nil, {1, 2, 3, 4}, {1, 2, 3, 4, 1, 0}} {
		if _, err := HeaderLength(tr); !errors.Is(err, ErrCorrupt) {
			t.Errorf("HeaderLength(%v): err = %v, want ErrCorrupt", tr, err)
		}
	}
}

func TestWriterAddPanics(t *testing.T) {
	id := testID(1)
	tests := []struct {
		name       string
		typ        BlobType
		stored     []byte
		compressed bool
		raw        uint32
	}{
		{"type 0", 0, make([]byte, 50), false, 10},
		{"type 3", 3, make([]byte, 50), false, 10},
		{"shorter than overhead", DataBlob, make([]byte, 39), true, 10},
		{"compressed without frame", DataBlob, make([]byte, 40), true, 0},
		{"uncompressed raw mismatch", DataBlob, make([]byte, 50), false, 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("Add did not panic")
				}
			}()
			NewWriter(testKey(1)).Add(tt.typ, id, tt.stored, tt.compressed, tt.raw)
		})
	}
}

// TestFormatExample checks the worked example of docs/format-pack.md with a
// reader written from the specification, using the AEAD directly.
func TestFormatExample(t *testing.T) {
	key := testKey(5)
	id := testID(5)
	plaintext := []byte("0123456789")
	stored, compressed := NewEncoder(*key).Encode(nil, DataBlob, id, plaintext)
	if compressed {
		t.Fatal("10 bytes compressed")
	}
	w := NewWriter(key)
	w.Add(DataBlob, id, stored, false, 10)
	p, _ := w.Finish()
	if len(p) != 137 {
		t.Fatalf("pack is %d bytes, want 137", len(p))
	}
	if !bytes.Equal(p[132:], []byte{0x52, 0, 0, 0, 1}) {
		t.Fatalf("trailer % x", p[132:])
	}
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := aead.Open(nil, p[50:74], p[74:132], []byte("cairn pack header v1"))
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte{1, 0}, id[:]...), 0x32, 0, 0, 0, 0x0a, 0, 0, 0)
	if !bytes.Equal(hdr, want) {
		t.Fatalf("header plaintext\n% x\nwant\n% x", hdr, want)
	}
	got, err := aead.Open(nil, p[0:24], p[24:50], append([]byte{1}, id[:]...))
	if err != nil || !bytes.Equal(got, plaintext) {
		t.Fatalf("blob: %q, %v", got, err)
	}
}

// A Writer reusing a finished pack's storage writes the same bytes as a new
// one, without allocating a pack buffer.
func TestWriterReuse(t *testing.T) {
	key := testKey(3)
	e := NewEncoder(*key)
	h := chunk.NewHasher([32]byte{7})
	add := func(w *Writer, n int) {
		for i := range n {
			p := bytes.Repeat([]byte{byte(i)}, 1000+i)
			id := h.Sum(p)
			stored, compressed := e.Encode(nil, DataBlob, id, p)
			w.Add(DataBlob, id, stored, compressed, uint32(len(p)))
		}
	}
	w := NewWriter(key)
	add(w, 5)
	first, _ := w.Finish()
	w.Reuse(first)
	add(w, 3)
	second, blobs := w.Finish()
	if &second[0] != &first[0] {
		t.Fatal("the second pack did not reuse the first one's storage")
	}
	got, err := ReadHeader(key, bytes.NewReader(second), int64(len(second)))
	if err != nil || fmt.Sprint(got) != fmt.Sprint(blobs) {
		t.Fatalf("reused pack's header: %v, %v; want %v", got, err, blobs)
	}
	w.Add(DataBlob, blobs[0].ID, second[blobs[0].Offset:blobs[0].Offset+blobs[0].Length], blobs[0].Compressed, blobs[0].RawLength)
	defer func() {
		if recover() == nil {
			t.Fatal("Reuse of a Writer holding blobs did not panic")
		}
	}()
	w.Reuse(nil)
}
