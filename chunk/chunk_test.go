package chunk_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cairn-backup/cairn/chunk"
)

func TestParseID(t *testing.T) {
	valid := "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	tests := []struct {
		in   string
		ok   bool
		want string
	}{
		{valid, true, valid},
		{"00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF", true, valid},
		{valid[:63], false, ""},
		{valid + "0", false, ""},
		{"zz" + valid[2:], false, ""},
		{"", false, ""},
	}
	for _, tc := range tests {
		id, err := chunk.ParseID(tc.in)
		if tc.ok != (err == nil) {
			t.Errorf("ParseID(%q): err %v", tc.in, err)
			continue
		}
		if !tc.ok {
			if !errors.Is(err, chunk.ErrInvalidID) {
				t.Errorf("ParseID(%q): %v is not ErrInvalidID", tc.in, err)
			}
			continue
		}
		if id.String() != tc.want || id.Short() != tc.want[:8] {
			t.Errorf("ParseID(%q) = %s / %s", tc.in, id, id.Short())
		}
		var back chunk.ID
		if err := back.UnmarshalText([]byte(id.String())); err != nil || back != id {
			t.Errorf("text round trip: %v %v", back, err)
		}
	}
}

func TestHasherIsKeyed(t *testing.T) {
	data := []byte("the same content")
	h1 := chunk.NewHasher([32]byte{1})
	h2 := chunk.NewHasher([32]byte{2})
	if a, b := h1.Sum(data), h1.Sum(slices.Clone(data)); a != b {
		t.Fatal("hash not deterministic")
	}
	if h1.Sum(data) == h2.Sum(data) {
		t.Fatal("different keys gave the same ID: the store would leak which content it holds")
	}
	if h1.Sum(data) == chunk.ObjectID(data) {
		t.Fatal("keyed ID equals the unkeyed object ID")
	}
}

// An ObjectHasher fed in pieces of any size names an object as ObjectID
// does over its whole bytes, and Reset starts a new object.
func TestObjectHasherPieces(t *testing.T) {
	data := make([]byte, 3<<20+17)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	want := chunk.ObjectID(data)
	h := chunk.NewObjectHasher()
	for _, piece := range []int{1, 1000, 1 << 10, 8 << 10, 1 << 20, len(data)} {
		t.Run(fmt.Sprint(piece), func(t *testing.T) {
			h.Write([]byte("left over from the previous object"))
			h.Reset()
			for off := 0; off < len(data); off += piece {
				h.Write(data[off:min(off+piece, len(data))])
			}
			if got := h.Sum(); got != want {
				t.Fatalf("in pieces of %d: %v, want %v", piece, got, want)
			}
		})
	}
	h.Reset()
	if got := h.Sum(); got != chunk.ObjectID(nil) {
		t.Fatalf("empty object: %v, want %v", got, chunk.ObjectID(nil))
	}
}

func TestParamsValidate(t *testing.T) {
	p, err := chunk.DefaultParams()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("default params invalid: %v", err)
	}
	bad := []func(*chunk.Params){
		func(p *chunk.Params) { p.Algorithm = "fastcdc" },
		func(p *chunk.Params) { p.Polynomial = 4 }, // x^2: reducible
		func(p *chunk.Params) { p.MinSize = 0 },
		func(p *chunk.Params) { p.MaxSize = p.MinSize - 1 },
		func(p *chunk.Params) { p.AverageBits = 40 },
	}
	for i, f := range bad {
		q := p
		f(&q)
		if q.Validate() == nil {
			t.Errorf("case %d: invalid params accepted: %+v", i, q)
		}
	}
	s, err := chunk.DefaultStreamParams()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("default stream params invalid: %v", err)
	}
	if s.MinSize != 64<<10 || s.AverageBits != 17 || s.MaxSize != 1<<20 {
		t.Errorf("stream params %+v, want the 64 KiB / 128 KiB / 1 MiB that docs/SCALING.md chose", s)
	}
	if s.Polynomial == p.Polynomial {
		t.Error("stream params share the files' polynomial; each set draws its own")
	}
}

func chunks(t *testing.T, p chunk.Params, data []byte) [][]byte {
	t.Helper()
	c := chunk.NewChunker(p, bytes.NewReader(data))
	var out [][]byte
	buf := make([]byte, 0, p.MaxSize)
	for {
		b, err := c.Next(buf)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytes.Clone(b))
	}
}

// TestChunkerIsContentDefined checks the property deduplication rests on:
// an insertion changes only the chunks around it, and boundaries respect
// the size bounds.
func TestChunkerIsContentDefined(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params func() (chunk.Params, error)
	}{
		{"files", chunk.DefaultParams},
		{"streams", chunk.DefaultStreamParams},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tc.params()
			if err != nil {
				t.Fatal(err)
			}
			testContentDefined(t, p)
		})
	}
}

func testContentDefined(t *testing.T, p chunk.Params) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 24<<20)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	a := chunks(t, p, data)
	if !bytes.Equal(bytes.Join(a, nil), data) {
		t.Fatal("chunks do not reassemble the input")
	}
	for i, c := range a {
		if uint(len(c)) > p.MaxSize || (i < len(a)-1 && uint(len(c)) < p.MinSize) {
			t.Fatalf("chunk %d has %d bytes, outside %d..%d", i, len(c), p.MinSize, p.MaxSize)
		}
	}
	edited := append(append(bytes.Clone(data[:12<<20]), []byte("inserted row")...), data[12<<20:]...)
	b := chunks(t, p, edited)
	seen := map[string]bool{}
	for _, c := range a {
		seen[string(c)] = true
	}
	changed := 0
	for _, c := range b {
		if !seen[string(c)] {
			changed++
		}
	}
	if changed > 2 {
		t.Errorf("an insertion changed %d of %d chunks; want at most 2", changed, len(b))
	}
	// Reset reuses the chunker for a second stream with the same result.
	c := chunk.NewChunker(p, bytes.NewReader(nil))
	c.Reset(bytes.NewReader(data))
	first, err := c.Next(make([]byte, 0, p.MaxSize))
	if err != nil || !bytes.Equal(first, a[0]) {
		t.Errorf("after Reset the first chunk differs (err %v)", err)
	}
}
