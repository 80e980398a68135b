package snapshot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/chunk"
)

// encodeJSON is the tree encoding as encoding/json writes it, the
// definition the hand-written encoder and parser must match byte for byte
// (it was Encode's implementation before them).
func encodeJSON(t *Tree) ([]byte, error) {
	nodes := make([]wireNode, len(t.Nodes))
	for i, n := range t.Nodes {
		nodes[i].Node = n
	}
	slices.SortFunc(nodes, func(a, b wireNode) int { return strings.Compare(a.Name, b.Name) })
	for i := range nodes {
		n := &nodes[i]
		n.ModTime = n.ModTime.UTC()
		n.ChangeTime = n.ChangeTime.UTC()
		n.Name, n.NameRaw = splitRaw(n.Name)
		n.LinkTarget, n.LinkTargetRaw = splitRaw(n.LinkTarget)
		n.HardLink, n.HardLinkRaw = splitRaw(n.HardLink)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(wireTree{Nodes: nodes}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// oddStrings are names and link targets that take every branch of JSON
// string escaping.
var oddStrings = []string{
	"plain", "z\u00e9", "a<b>&c", `quo"te`, `back\slash`, "tab\there", "nl\n", "cr\r", "bs\b", "ff\f",
	"\x01ctl\x1f", "del\x7f", "ls\u2028ps\u2029", "\u2027\u202a", "a\xff", "\xe2\x80", "emoji\U0001F600", "\ufffd",
}

// TestEncodeMatchesJSON: Encode writes what encoding/json writes, for
// every field set and unset and for names that need escaping.
func TestEncodeMatchesJSON(t *testing.T) {
	mt := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("x", 3600))
	full := Node{Name: "full", Type: File, Mode: 0o4755 | fs.ModeSetgid, ModTime: mt, ChangeTime: mt.Add(time.Millisecond),
		Inode: 1 << 63, DeviceID: 7, UID: 1<<32 - 1, GID: 5, Size: 1<<64 - 1, LinkTarget: "t", Content: []chunk.ID{testID(1), testID(0xab)},
		Subtree: idPtr(2), Inconsistent: true, Rdev: 9, HardLink: "a/b", Links: 3}
	trees := map[string][]Node{
		"sample":   sampleNodes(),
		"full":     {full},
		"zero":     {{Name: "z"}},
		"empty":    {},
		"nil":      nil,
		"times":    {{Name: "a", ModTime: time.Unix(0, 1)}, {Name: "b", ModTime: time.Unix(1, 100)}, {Name: "c", ChangeTime: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)}},
		"content":  {{Name: "empty content", Content: []chunk.ID{}}},
		"unsorted": {{Name: "b", Type: File}, {Name: "a", Type: Dir, Subtree: idPtr(3)}},
	}
	for i, s := range oddStrings {
		trees[fmt.Sprintf("odd %d", i)] = []Node{{Name: s, Type: Symlink, LinkTarget: s}, {Name: "h" + s, Type: File, HardLink: "d/" + s}}
	}
	for name, nodes := range trees {
		t.Run(name, func(t *testing.T) {
			tr := &Tree{Nodes: nodes}
			want, err := encodeJSON(tr)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tr.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Encode:\n got %s\nwant %s", got, want)
			}
		})
	}
	t.Run("year out of range", func(t *testing.T) {
		for _, y := range []int{-1, 10000} {
			tr := &Tree{Nodes: []Node{{Name: "y", ModTime: time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)}}}
			if _, err := encodeJSON(tr); err == nil {
				t.Fatalf("encoding/json accepts year %d", y)
			}
			if b, err := tr.Encode(); err == nil {
				t.Errorf("year %d encoded: %s", y, b)
			}
		}
	})
}

// TestDecodeTreeExact: what Encode writes decodes as exact, by the
// hand-written parser; every other form of the same tree that
// encoding/json accepts decodes alike but is not exact, since Encode would
// not give those bytes back; and what encoding/json refuses stays refused.
func TestDecodeTreeExact(t *testing.T) {
	canon := string(mustEncode(t, &Tree{Nodes: sampleNodes()}))
	one := func(node string) string { return `{"nodes":[` + node + `]}` + "\n" }
	mt := `"mtime":"2024-05-06T07:08:09Z"`
	hexID := testID(0xab).String()
	for _, tc := range []struct {
		name  string
		data  string
		exact bool
	}{
		{"canonical", canon, true},
		{"empty", `{"nodes":[]}` + "\n", true},
		{"odd names", string(mustEncode(t, &Tree{Nodes: []Node{{Name: "a<b>&c\u00e9\U0001F600\ufffd\x7f", Type: File}}})), true},
		{"no final newline", strings.TrimSuffix(canon, "\n"), false},
		{"whitespace", strings.Replace(canon, `,"type"`, `, "type"`, 1), false},
		{"trailing space", canon + " ", false},
		{"keys reordered", one(`{"type":"file","name":"a","mode":0,` + mt + `}`), false},
		{"unknown key", one(`{"name":"a","type":"file","mode":0,` + mt + `,"x":1}`), false},
		{"zero written out", one(`{"name":"a","type":"file","mode":0,` + mt + `,"inode":0}`), false},
		{"leading zero", one(`{"name":"a","type":"file","mode":0420,` + mt + `}`), false},
		{"mode in exponent form", one(`{"name":"a","type":"file","mode":4.2e2,` + mt + `}`), false},
		{"false written out", one(`{"name":"a","type":"file","mode":0,` + mt + `,"inconsistent":false}`), false},
		{"empty content written out", one(`{"name":"a","type":"file","mode":0,` + mt + `,"content":[]}`), false},
		{"empty link target written out", one(`{"name":"a","type":"symlink","mode":0,` + mt + `,"linktarget":""}`), false},
		{"zero ctime written out", one(`{"name":"a","type":"file","mode":0,` + mt + `,"ctime":"0001-01-01T00:00:00Z"}`), false},
		{"time in a zone", one(`{"name":"a","type":"file","mode":0,"mtime":"2024-05-06T08:08:09+01:00"}`), false},
		{"trailing zeros in a fraction", one(`{"name":"a","type":"file","mode":0,"mtime":"2024-05-06T07:08:09.500Z"}`), false},
		{"zero fraction", one(`{"name":"a","type":"file","mode":0,"mtime":"2024-05-06T07:08:09.0Z"}`), false},
		{"uppercase hex", one(`{"name":"a","type":"file","mode":0,` + mt + `,"content":["` + strings.ToUpper(hexID) + `"]}`), false},
		{"escaped name", one(`{"name":"\u0061","type":"file","mode":0,` + mt + `}`), false},
		{"escape that Encode writes", string(mustEncode(t, &Tree{Nodes: []Node{{Name: `quo"te`, Type: File}}})), false},
		{"raw name", string(mustEncode(t, &Tree{Nodes: []Node{{Name: "a\xff", Type: File}}})), false},
		// Refused by both parsers: the hand-written one leaves these to
		// encoding/json, and the checks after it refuse them.
		{"day out of range", one(`{"name":"a","type":"file","mode":0,"mtime":"2024-02-30T07:08:09Z"}`), false},
		{"mode too large", one(`{"name":"a","type":"file","mode":4294967296,` + mt + `}`), false},
		{"unsorted", one(`{"name":"b","type":"file","mode":0,` + mt + `},{"name":"a","type":"file","mode":0,` + mt + `}`), false},
		{"unknown type", one(`{"name":"a","type":"door","mode":0,` + mt + `}`), false},
		{"directory without subtree", one(`{"name":"a","type":"dir","mode":0,` + mt + `}`), false},
		{"bad name", one(`{"name":"..","type":"file","mode":0,` + mt + `}`), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, exact, err := DecodeTreeExact([]byte(tc.data))
			want, wantErr := decodeJSON([]byte(tc.data))
			if wantErr == nil {
				wantErr = checkNodes(want)
			}
			if (err == nil) != (wantErr == nil) {
				t.Fatalf("DecodeTreeExact error %v, encoding/json's %v", err, wantErr)
			}
			if err != nil {
				return
			}
			if exact != tc.exact {
				t.Errorf("exact = %v, want %v", exact, tc.exact)
			}
			if !reflect.DeepEqual(tr.Nodes, want) && !(len(tr.Nodes) == 0 && len(want) == 0) {
				t.Errorf("decoded\n%+v\nencoding/json decodes\n%+v", tr.Nodes, want)
			}
			if exact {
				if got := mustEncode(t, tr); string(got) != tc.data {
					t.Errorf("exact, but Encode gives\n%s\nnot\n%s", got, tc.data)
				}
			}
		})
	}
}

// FuzzTreeCodec holds the hand-written encoder and parser to
// encoding/json: any bytes the parser takes as exact decode to what
// encoding/json decodes and encode back to themselves, and whatever
// encoding/json accepts, DecodeTreeExact accepts too.
//
//	go test -run '^$' -fuzz FuzzTreeCodec -fuzztime 30s ./snapshot
func FuzzTreeCodec(f *testing.F) {
	seeds := [][]Node{sampleNodes(), {{Name: "z"}}}
	for _, s := range oddStrings {
		seeds = append(seeds, []Node{{Name: s, Type: Symlink, LinkTarget: s}})
	}
	for _, nodes := range seeds {
		b, err := (&Tree{Nodes: nodes}).Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"nodes":[{"name":"a","type":"file","mode":0,"mtime":"2024-02-30T07:08:09.10Z","inode":01}]}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, exact, err := DecodeTreeExact(data)
		want, wantErr := decodeJSON(data)
		if wantErr == nil {
			wantErr = checkNodes(want)
		}
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("DecodeTreeExact error %v, encoding/json's %v", err, wantErr)
		}
		if err != nil {
			return
		}
		if len(tr.Nodes) != len(want) || (len(want) > 0 && !reflect.DeepEqual(tr.Nodes, want)) {
			t.Fatalf("decoded\n%+v\nencoding/json decodes\n%+v", tr.Nodes, want)
		}
		enc, err := tr.Encode()
		jenc, jerr := encodeJSON(tr)
		if (err == nil) != (jerr == nil) || !bytes.Equal(enc, jenc) {
			t.Fatalf("Encode %q (%v), encoding/json %q (%v)", enc, err, jenc, jerr)
		}
		if exact && !bytes.Equal(enc, data) {
			t.Fatalf("exact, but encodes to\n%q\nnot\n%q", enc, data)
		}
	})
}

// BenchmarkTreeCodec: a directory of 1,000 small files, encoded and
// decoded, by hand and by encoding/json.
//
//	go test -run '^$' -bench TreeCodec -benchmem ./snapshot
func BenchmarkTreeCodec(b *testing.B) {
	mt := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	tr := &Tree{Nodes: make([]Node, 1000)}
	for i := range tr.Nodes {
		tr.Nodes[i] = Node{Name: fmt.Sprintf("f%05d.txt", i), Type: File, Mode: 0o644, ModTime: mt, ChangeTime: mt.Add(time.Duration(i)),
			Inode: uint64(1e6 + i), DeviceID: 2049, UID: 1000, GID: 1000, Size: uint64(i * 4), Content: []chunk.ID{testID(byte(i))}}
	}
	enc := mustEncode(b, tr)
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			if _, err := tr.Encode(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode-json", func(b *testing.B) {
		for b.Loop() {
			if _, err := encodeJSON(tr); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			if _, exact, err := DecodeTreeExact(enc); err != nil || !exact {
				b.Fatal(err, exact)
			}
		}
	})
	b.Run("decode-json", func(b *testing.B) {
		for b.Loop() {
			nodes, err := decodeJSON(enc)
			if err != nil {
				b.Fatal(err)
			}
			if err := checkNodes(nodes); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestNodeEqual: two nodes are Equal exactly when they encode alike, for
// a change to any one field of Node (a field added later is covered
// without touching this test; Links is the one field not stored).
func TestNodeEqual(t *testing.T) {
	base := sampleNodes()[0]
	base.Links = 2
	typ := reflect.TypeFor[Node]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		t.Run(f.Name, func(t *testing.T) {
			changed := base
			v := reflect.ValueOf(&changed).Elem().Field(i)
			switch v.Interface().(type) {
			case string, NodeType:
				v.SetString(v.String() + "x")
			case time.Time:
				v.Set(reflect.ValueOf(v.Interface().(time.Time).Add(time.Nanosecond)))
			case []chunk.ID:
				v.Set(reflect.ValueOf(append(slices.Clone(base.Content), testID(7))))
			case *chunk.ID:
				v.Set(reflect.ValueOf(idPtr(8)))
			case bool:
				v.SetBool(!v.Bool())
			default:
				switch v.Kind() {
				case reflect.Uint64, reflect.Uint32:
					v.SetUint(v.Uint() + 1)
				default:
					t.Fatalf("no change made for a field of type %s: extend the test", f.Type)
				}
			}
			if f.Name == "Name" { // another node, whatever else it holds
				if base.Equal(&changed) {
					t.Error("renamed node is Equal")
				}
				return
			}
			sameBytes := bytes.Equal(mustEncode(t, &Tree{Nodes: []Node{base}}), mustEncode(t, &Tree{Nodes: []Node{changed}}))
			if eq := base.Equal(&changed); eq != sameBytes {
				t.Errorf("changing %s: Equal = %v, encodings equal = %v", f.Name, eq, sameBytes)
			}
			if f.Name != "Links" && sameBytes {
				t.Errorf("changing %s does not change the encoding", f.Name)
			}
		})
	}
	t.Run("times compare as instants", func(t *testing.T) {
		zoned := base
		zoned.ModTime = base.ModTime.In(time.FixedZone("x", -7200))
		if !base.Equal(&zoned) {
			t.Error("the same instant in another zone is not Equal")
		}
	})
	t.Run("nil and empty content", func(t *testing.T) {
		a, b := Node{Name: "a"}, Node{Name: "a", Content: []chunk.ID{}}
		if !a.Equal(&b) {
			t.Error("nil and empty content (encoded alike) are not Equal")
		}
	})
}

// TestParseTimeExact: the parser takes a time exactly when time.Time
// writes it back to the same bytes, over every day of some leap and
// common years, fractions of every length, and fields one step out of
// range.
func TestParseTimeExact(t *testing.T) {
	var cands []string
	for _, y := range []int{0, 1, 1900, 1970, 2000, 2023, 2024, 2100, 9999} {
		for d := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() == y; d = d.AddDate(0, 0, 1) {
			s := d.Format("2006-01-02")
			cands = append(cands, s+"T23:59:59Z")
		}
		for _, md := range []string{"02-29", "02-30", "04-31", "12-32", "13-01", "00-10", "01-00"} {
			cands = append(cands, fmt.Sprintf("%04d-%sT00:00:00Z", y, md))
		}
	}
	for _, tm := range []string{"24:00:00", "23:60:00", "23:59:60", "00:00:00", "1:00:00", "12:00:0a"} {
		cands = append(cands, "2024-05-06T"+tm+"Z")
	}
	for _, frac := range []string{".1", ".12", ".000000001", ".123456789", ".1234567891", ".10", ".0", ".", ".12a", ".000000000"} {
		cands = append(cands, "2024-05-06T07:08:09"+frac+"Z")
	}
	cands = append(cands, "2024-05-06T07:08:09+00:00", "2024-05-06 07:08:09Z", "+024-05-06T07:08:09Z", "2024-05-06T07:08:09z")
	for _, s := range cands {
		want := false
		if tm, err := time.Parse(time.RFC3339Nano, s); err == nil {
			want = tm.UTC().Format(time.RFC3339Nano) == s
		}
		p := parser{b: []byte(`"` + s + `"`)}
		tm, ok := p.time()
		if ok != want {
			t.Errorf("%s: parsed %v, want %v", s, ok, want)
			continue
		}
		if ok && tm.Format(time.RFC3339Nano) != s {
			t.Errorf("%s: parsed as %s", s, tm.Format(time.RFC3339Nano))
		}
	}
}
