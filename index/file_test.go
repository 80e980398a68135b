package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/pack"
)

func randID(r *rand.Rand) chunk.ID {
	var id chunk.ID
	for i := 0; i < chunk.IDSize; i += 8 {
		binary.LittleEndian.PutUint64(id[i:], r.Uint64())
	}
	return id
}

func randBlob(r *rand.Rand) pack.Blob {
	t := pack.DataBlob
	if r.IntN(4) == 0 {
		t = pack.TreeBlob
	}
	return pack.Blob{
		Type:       t,
		Compressed: r.IntN(2) == 0,
		ID:         randID(r),
		Offset:     r.Uint32N(1 << 30),
		Length:     r.Uint32N(1<<24) + 40,
		RawLength:  r.Uint32N(1 << 24),
	}
}

func randFile(r *rand.Rand, packs, maxBlobs, supersedes int) *File {
	f := &File{}
	for range packs {
		pb := PackBlobs{Pack: randID(r)}
		for range r.IntN(maxBlobs + 1) {
			pb.Blobs = append(pb.Blobs, randBlob(r))
		}
		f.Packs = append(f.Packs, pb)
	}
	for range supersedes {
		f.Supersedes = append(f.Supersedes, randID(r))
	}
	return f
}

// normalize turns empty slices into nil, as Decode returns them.
func normalize(f *File) *File {
	g := &File{}
	if len(f.Packs) > 0 {
		g.Packs = make([]PackBlobs, len(f.Packs))
		for i, pb := range f.Packs {
			g.Packs[i].Pack = pb.Pack
			if len(pb.Blobs) > 0 {
				g.Packs[i].Blobs = pb.Blobs
			}
		}
	}
	if len(f.Supersedes) > 0 {
		g.Supersedes = f.Supersedes
	}
	return g
}

// filesEqual is reflect.DeepEqual for Files, but fast under -race.
func filesEqual(a, b *File) bool {
	if len(a.Packs) != len(b.Packs) || (a.Packs == nil) != (b.Packs == nil) ||
		!slices.Equal(a.Supersedes, b.Supersedes) || (a.Supersedes == nil) != (b.Supersedes == nil) {
		return false
	}
	for i := range a.Packs {
		pa, pb := &a.Packs[i], &b.Packs[i]
		if pa.Pack != pb.Pack || !slices.Equal(pa.Blobs, pb.Blobs) || (pa.Blobs == nil) != (pb.Blobs == nil) {
			return false
		}
	}
	return true
}

func mustMarshal(t testing.TB, f *File) []byte {
	t.Helper()
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary: %v", err)
	}
	return b
}

func TestFileRoundtrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	id := randID(r)
	tests := []struct {
		name string
		f    *File
		size int // expected encoded size, or 0 to skip the check
	}{
		{"empty", &File{}, 7},
		{"empty slices", &File{Packs: []PackBlobs{}, Supersedes: []chunk.ID{}}, 7},
		{"pack without blobs", &File{Packs: []PackBlobs{{Pack: id}}}, 7 + 33},
		{"one blob", &File{Packs: []PackBlobs{{Pack: id, Blobs: []pack.Blob{randBlob(r)}}}}, 7 + 33 + 46},
		{"extremes", &File{Packs: []PackBlobs{{Pack: id, Blobs: []pack.Blob{
			{Type: pack.TreeBlob, Compressed: true, ID: id, Offset: 0, Length: 1<<32 - 1, RawLength: 1<<32 - 1},
			{Type: pack.DataBlob, ID: id, Offset: 1<<32 - 1, Length: 0},
		}}}}, 7 + 33 + 2*46},
		{"supersedes only", &File{Supersedes: []chunk.ID{randID(r), randID(r), randID(r)}}, 7 + 3*32},
		{"many packs", randFile(r, 300, 200, 0), 0},
		{"many packs and supersedes", randFile(r, 150, 1000, 40), 0},
		{"same pack twice", &File{Packs: []PackBlobs{
			{Pack: id, Blobs: []pack.Blob{randBlob(r)}},
			{Pack: id, Blobs: []pack.Blob{randBlob(r), randBlob(r)}},
		}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustMarshal(t, tt.f)
			if tt.size != 0 && len(b) != tt.size {
				t.Errorf("encoded size %d, want %d", len(b), tt.size)
			}
			var buf bytes.Buffer
			if err := tt.f.Encode(&buf); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), b) {
				t.Fatal("Encode and MarshalBinary differ")
			}
			if !bytes.HasPrefix(b, []byte("CIDX\x01")) {
				t.Fatalf("header %q", b[:5])
			}
			g, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !filesEqual(g, normalize(tt.f)) {
				t.Fatal("decoded file differs")
			}
			if b2 := mustMarshal(t, g); !bytes.Equal(b, b2) {
				t.Fatal("re-encoding differs")
			}
		})
	}
}

// TestDecodeDoesNotAlias checks that the decoded File does not share memory
// with the input.
func TestDecodeDoesNotAlias(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	f := randFile(r, 3, 5, 2)
	b := mustMarshal(t, f)
	g, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	clear(b)
	if !reflect.DeepEqual(g, normalize(f)) {
		t.Fatal("decoded file changed when the input was overwritten")
	}
}

func TestDecodeRejectsTruncation(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, f := range []*File{
		{},
		randFile(r, 4, 3, 0),
		randFile(r, 3, 5, 3),
		{Supersedes: []chunk.ID{randID(r)}},
	} {
		b := mustMarshal(t, f)
		for n := range len(b) {
			if _, err := Decode(b[:n]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode of %d of %d bytes: got %v, want ErrCorrupt", n, len(b), err)
			}
		}
		for _, extra := range []string{"\x00", "x", strings.Repeat("\x00", 32)} {
			if _, err := Decode(append(b[:len(b):len(b)], extra...)); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode with %d trailing bytes: got %v, want ErrCorrupt", len(extra), err)
			}
		}
	}
}

func TestDecodeRejectsBadHeader(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	b := mustMarshal(t, randFile(r, 2, 2, 1))
	for bit := range 8 * len(Magic) {
		c := bytes.Clone(b)
		c[bit/8] ^= 1 << (bit % 8)
		if _, err := Decode(c); !errors.Is(err, ErrCorrupt) {
			t.Errorf("magic bit %d flipped: got %v, want ErrCorrupt", bit, err)
		}
	}
	for bit := range 8 {
		c := bytes.Clone(b)
		c[len(Magic)] ^= 1 << bit
		_, err := Decode(c)
		if !errors.Is(err, ErrUnknownVersion) {
			t.Errorf("version bit %d flipped: got %v, want ErrUnknownVersion", bit, err)
			continue
		}
		if want := " " + strconv.Itoa(int(c[len(Magic)])) + " "; !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name version %d", err, c[len(Magic)])
		}
	}
}

// TestDecodeRejectsInvalid edits single fields of a valid one-pack,
// one-blob, one-superseded-file encoding.
func TestDecodeRejectsInvalid(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	f := &File{
		Packs:      []PackBlobs{{Pack: randID(r), Blobs: []pack.Blob{randBlob(r)}}},
		Supersedes: []chunk.ID{randID(r)},
	}
	valid := mustMarshal(t, f)
	const (
		packCountAt = 5
		packIDAt    = 6
		blobCountAt = packIDAt + 32
		blobAt      = blobCountAt + 1
		supCountAt  = blobAt + 46
		supAt       = supCountAt + 1
	)
	if len(valid) != supAt+32 {
		t.Fatalf("layout: %d bytes", len(valid))
	}
	edit := func(fn func(b []byte) []byte) []byte { return fn(bytes.Clone(valid)) }
	zero32 := make([]byte, 32)
	tests := []struct {
		name string
		data []byte
		want string // substring of the error
	}{
		{"blob type 0", edit(func(b []byte) []byte { b[blobAt] = 0; return b }), "unknown type 0"},
		{"blob type 3", edit(func(b []byte) []byte { b[blobAt] = 3; return b }), "unknown type 3"},
		{"reserved flag", edit(func(b []byte) []byte { b[blobAt+1] |= 2; return b }), "flags"},
		{"flag bit 7", edit(func(b []byte) []byte { b[blobAt+1] |= 0x80; return b }), "flags"},
		{"null pack ID", edit(func(b []byte) []byte { copy(b[packIDAt:], zero32); return b }), "null pack ID"},
		{"null blob ID", edit(func(b []byte) []byte { copy(b[blobAt+2:], zero32); return b }), "null ID"},
		{"null superseded ID", edit(func(b []byte) []byte { copy(b[supAt:], zero32); return b }), "null superseded"},
		{"offset overflow", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[blobAt+34:], 1<<31)
			binary.LittleEndian.PutUint32(b[blobAt+38:], 1<<31)
			return b
		}), "overflows"},
		{"pack count too large", edit(func(b []byte) []byte { b[packCountAt] = 4; return b }), "pack count 4 needs"},
		{"blob count too large", edit(func(b []byte) []byte { b[blobCountAt] = 2; return b }), "blob count 2"},
		{"superseded count too large", edit(func(b []byte) []byte { b[supCountAt] = 2; return b }), "superseded file count 2"},
		{"superseded count too small", edit(func(b []byte) []byte { b[supCountAt] = 0; return b }), "trailing"},
		{"huge pack count", append([]byte("CIDX\x01\xff\xff\xff\xff\xff\xff\xff\xff\x7f"), valid[6:]...), "pack count"},
		{"varint overflow", []byte("CIDX\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), "overflows 64 bits"},
		{"non-minimal varint", []byte("CIDX\x01\x80\x00\x00"), "not minimally encoded"},
		{"truncated varint", []byte("CIDX\x01\x80"), "truncated pack count"},
		{"short header", []byte("CIDX"), "header"},
		{"empty", nil, "header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.data)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestEncodeRejectsInvalid(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	good := randBlob(r)
	mod := func(fn func(b *pack.Blob)) *File {
		b := good
		fn(&b)
		return &File{Packs: []PackBlobs{{Pack: randID(r), Blobs: []pack.Blob{b}}}}
	}
	tests := []struct {
		name string
		f    *File
	}{
		{"type 0", mod(func(b *pack.Blob) { b.Type = 0 })},
		{"type 9", mod(func(b *pack.Blob) { b.Type = 9 })},
		{"null blob ID", mod(func(b *pack.Blob) { b.ID = chunk.ID{} })},
		{"overflow", mod(func(b *pack.Blob) { b.Offset, b.Length = 1<<32-1, 1 })},
		{"null pack", &File{Packs: []PackBlobs{{Blobs: []pack.Blob{good}}}}},
		{"null superseded", &File{Supersedes: []chunk.ID{{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := tt.f.Encode(&buf); err == nil {
				t.Fatal("Encode succeeded")
			}
			if buf.Len() != 0 {
				t.Fatal("Encode wrote despite the error")
			}
		})
	}
}

func TestSplit(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	mk := func(sizes ...int) *File {
		f := &File{Supersedes: []chunk.ID{randID(r)}}
		for _, n := range sizes {
			pb := PackBlobs{Pack: randID(r)}
			for range n {
				pb.Blobs = append(pb.Blobs, randBlob(r))
			}
			f.Packs = append(f.Packs, pb)
		}
		return f
	}
	tests := []struct {
		name  string
		sizes []int
		max   int
		want  [][]int // blobs per pack entry, per file
	}{
		{"no packs", nil, 10, [][]int{nil}},
		{"no limit", []int{5, 6, 7}, 0, [][]int{{5, 6, 7}}},
		{"fits", []int{5, 5}, 10, [][]int{{5, 5}}},
		{"next pack starts a file", []int{5, 6, 4}, 10, [][]int{{5}, {6, 4}}},
		{"big pack split", []int{3, 25, 2}, 10, [][]int{{3}, {10}, {10}, {5, 2}}},
		{"one per file", []int{1, 1, 1}, 1, [][]int{{1}, {1}, {1}}},
		{"empty pack", []int{10, 0, 1}, 10, [][]int{{10, 0}, {1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mk(tt.sizes...)
			files := f.Split(tt.max)
			var got [][]int
			var joined []pack.Blob
			var want []pack.Blob
			for _, pb := range f.Packs {
				want = append(want, pb.Blobs...)
			}
			for i, g := range files {
				var sizes []int
				for _, pb := range g.Packs {
					sizes = append(sizes, len(pb.Blobs))
					joined = append(joined, pb.Blobs...)
				}
				got = append(got, sizes)
				if (i == 0) != (len(g.Supersedes) > 0) {
					t.Errorf("file %d has %d superseded IDs", i, len(g.Supersedes))
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("split %v, want %v", got, tt.want)
			}
			if !reflect.DeepEqual(joined, want) {
				t.Fatal("blobs changed or reordered")
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	r := rand.New(rand.NewPCG(15, 16))
	for _, file := range []*File{
		{},
		randFile(r, 1, 1, 0),
		randFile(r, 3, 4, 2),
		{Supersedes: []chunk.ID{randID(r)}},
	} {
		f.Add(mustMarshal(f, file))
	}
	f.Add([]byte("CIDX\x02"))
	f.Add([]byte("CIDX\x01\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnknownVersion) {
				t.Fatalf("error wraps neither sentinel: %v", err)
			}
			if g != nil {
				t.Fatal("non-nil File with an error")
			}
			return
		}
		// The encoding is canonical: what decodes re-encodes to the input.
		b, err := g.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encoding a decoded file: %v", err)
		}
		if !bytes.Equal(b, data) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", data, b)
		}
	})
}

// TestSpecExample checks the example in docs/FORMAT.md ("Index files",
// "Example") byte for byte.
func TestSpecExample(t *testing.T) {
	var p, x chunk.ID
	for i := range p {
		p[i], x[i] = 0xa0+byte(i%16), 0x10+byte(i)
	}
	f := &File{Packs: []PackBlobs{{Pack: p, Blobs: []pack.Blob{
		{Type: pack.DataBlob, Compressed: true, ID: x, Offset: 0, Length: 1000, RawLength: 4096},
	}}}}
	var want []byte
	want = append(want, "CIDX\x01\x01"...)
	want = append(want, p[:]...)
	want = append(want, 0x01, 0x01, 0x01)
	want = append(want, x[:]...)
	want = append(want, 0, 0, 0, 0, 0xe8, 0x03, 0, 0, 0x00, 0x10, 0, 0, 0x00)
	got := mustMarshal(t, f)
	if !bytes.Equal(got, want) || len(got) != 86 {
		t.Fatalf("got  %x\nwant %x", got, want)
	}
	if got := mustMarshal(t, &File{}); string(got) != "CIDX\x01\x00\x00" {
		t.Fatalf("empty file: %x", got)
	}
}
