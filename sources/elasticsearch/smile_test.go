package elasticsearch

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"reflect"
	"strings"
	"testing"
)

// smileDoc prepends the header Elasticsearch writes (shared names on,
// shared values off, raw binary allowed: flags 0x05) unless flags say
// otherwise.
func smileDoc(flags byte, body ...byte) []byte {
	return append([]byte{':', ')', '\n', flags}, body...)
}

func str(tok byte, s string) []byte { return append([]byte{tok}, s...) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestSmileTokens decodes one document per token kind, typed in by hand
// from the SMILE format specification, not produced by an encoder.
func TestSmileTokens(t *testing.T) {
	long64 := strings.Repeat("x", 64)
	tests := []struct {
		name  string
		flags byte
		body  []byte
		want  any
	}{
		{"literals", 0x05, []byte{0xf8, 0x20, 0x21, 0x22, 0x23, 0xf9}, []any{"", nil, false, true}},
		{"small ints", 0x05, []byte{0xf8, 0xc0, 0xc1, 0xc2, 0xdf, 0xf9}, []any{int64(0), int64(-1), int64(1), int64(-16)}},
		// 3297 zigzag = 6594 = 0x19c2: 0x67 then 0x80|0x02 (the length of _6.cfs in a 5.6 shard index file).
		{"int32", 0x05, []byte{0x24, 0x67, 0x82}, int64(3297)},
		{"int64 max", 0x05, []byte{0x25, 0x03, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0xbe}, int64(math.MaxInt64)},
		{"negative long", 0x05, []byte{0x25, 0x81}, int64(-1)},
		{"double 1.5", 0x05, []byte{0x29, 0x00, 0x3f, 0x7c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, 1.5},
		{"float 2", 0x05, []byte{0x28, 0x04, 0x00, 0x00, 0x00, 0x00}, 2.0},
		{"tiny ascii", 0x05, str(0x42, "__1"), "__1"},
		{"small ascii", 0x05, str(0x7f, long64), long64},
		{"tiny unicode", 0x05, str(0x81, "é!"), "é!"},
		{"long ascii", 0x05, cat(str(0xe0, strings.Repeat("y", 70)), []byte{0xfc}), strings.Repeat("y", 70)},
		{"raw binary skipped", 0x05, []byte{0xf8, 0xfd, 0x83, 1, 2, 3, 0x23, 0xf9}, []any{nil, true}},
		{"7-bit binary skipped", 0x05, []byte{0xf8, 0xe8, 0x82, 0x01, 0x02, 0x03, 0x23, 0xf9}, []any{nil, true}},
		{"object with shared names", 0x05,
			cat([]byte{0xf8, 0xfa}, str(0x83, "name"), str(0x42, "__0"), []byte{0xfb, 0xfa, 0x40}, str(0x42, "__1"), []byte{0xfb, 0xf9}),
			[]any{map[string]any{"name": "__0"}, map[string]any{"name": "__1"}}},
		{"shared values", 0x07, cat([]byte{0xf8}, str(0x41, "ab"), []byte{0x01, 0xf9}), []any{"ab", "ab"}},
		{"long shared value", 0x07, cat([]byte{0xf8}, str(0x41, "ab"), []byte{0xec, 0x00, 0xf9}), []any{"ab", "ab"}},
		{"long name", 0x05, cat([]byte{0xfa, 0x34}, []byte(strings.Repeat("k", 70)), []byte{0xfc, 0x23, 0xfb}),
			map[string]any{strings.Repeat("k", 70): true}},
		{"empty name", 0x05, []byte{0xfa, 0x20, 0x21, 0xfb}, map[string]any{"": nil}},
		{"unicode name", 0x05, cat([]byte{0xfa}, str(0xc0, "é"), []byte{0x23, 0xfb}), map[string]any{"é": true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeSmile(smileDoc(tc.flags, tc.body...))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestSmileRefusesDamage(t *testing.T) {
	tests := []struct {
		name string
		doc  []byte
	}{
		{"no header", []byte{0xfa, 0xfb}},
		{"version 1", []byte{':', ')', '\n', 0x15, 0x21}},
		{"empty", smileDoc(0x05)},
		{"truncated string", smileDoc(0x05, 0x45, 'a')},
		{"undefined shared name", smileDoc(0x05, 0xfa, 0x40, 0x21, 0xfb)},
		{"undefined shared value", smileDoc(0x07, 0x01)},
		{"unterminated long string", smileDoc(0x05, 0xe0, 'a', 'b')},
		{"binary longer than input", smileDoc(0x05, 0xfd, 0x3f, 0x7f, 0x7f, 0xbf)},
		{"7-bit binary longer than input", smileDoc(0x05, 0xe8, 0x3f, 0x7f, 0x7f, 0xbf)},
		{"reserved token", smileDoc(0x05, 0x00)},
		{"end object in value position", smileDoc(0x05, 0xf8, 0xfb)},
		{"unclosed array", smileDoc(0x05, 0xf8, 0x21)},
		{"vint too long", smileDoc(0x05, 0x24, 0x01, 0x01, 0x01, 0x01, 0x01, 0x81)},
		{"invalid utf-8", smileDoc(0x05, 0x80, 0xff, 0xfe)},
		{"nested too deeply", smileDoc(0x05, bytes.Repeat([]byte{0xf8}, 100)...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if v, err := decodeSmile(tc.doc); !errors.Is(err, errSmile) {
				t.Fatalf("decoded %#v, %v; want errSmile", v, err)
			}
		})
	}
}

// checksumBlob wraps a payload as Elasticsearch's ChecksumBlobStoreFormat
// does, built here from the Lucene CodecUtil layout, not by the code under
// test.
func checksumBlob(codec string, payload []byte, compress bool) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, uint32(0x3FD76C17))
	b.WriteByte(byte(len(codec)))
	b.WriteString(codec)
	binary.Write(&b, binary.BigEndian, uint32(1))
	if compress {
		b.WriteString("DFL\x00")
		w, _ := flate.NewWriter(&b, flate.BestSpeed)
		w.Write(payload)
		w.Close()
	} else {
		b.Write(payload)
	}
	binary.Write(&b, binary.BigEndian, uint32(0xC02893E8))
	binary.Write(&b, binary.BigEndian, uint32(0))
	binary.Write(&b, binary.BigEndian, uint64(crc32.ChecksumIEEE(b.Bytes())))
	return b.Bytes()
}

// shardIndexSmile is a shard index file as ES 5.6 wrote it (the shape of
// a real one, abridged): two files, one split in three parts, one
// snapshot.
var shardIndexSmile = smileDoc(0x05, cat(
	[]byte{0xfa}, str(0x84, "files"), []byte{0xf8, 0xfa},
	str(0x83, "name"), str(0x42, "__1"),
	str(0x8c, "physical_name"), str(0x45, "_6.cfs"),
	str(0x85, "length"), []byte{0x24, 0x67, 0x82},
	str(0x88, "part_size"), []byte{0x24, 0x28, 0xa8}, // 1300: zigzag 2600 = 40<<6 | 40
	[]byte{0xfb, 0xfa, 0x41}, str(0x42, "__0"),
	[]byte{0x42}, str(0x45, "_6.cfe"),
	[]byte{0x43, 0x24, 0x0b, 0x96},
	[]byte{0xfb, 0xf9},
	str(0x88, "snapshots"), []byte{0xfa}, str(0x8b, "rfs_snapshot"), []byte{0xfa, 0x40, 0xf8},
	str(0x42, "__0"), str(0x42, "__1"), []byte{0xf9, 0xfb, 0xfb, 0xfb},
)...)

func TestShardIndexFile(t *testing.T) {
	for _, compress := range []bool{false, true} {
		v, err := decodeChecksumBlob(checksumBlob(codecShardSnapshots, shardIndexSmile, compress), codecShardSnapshots)
		if err != nil {
			t.Fatal(err)
		}
		si, err := parseShardIndex(v)
		if err != nil {
			t.Fatal(err)
		}
		var blobs []string
		for _, f := range si.files {
			b, err := f.blobs()
			if err != nil {
				t.Fatal(err)
			}
			blobs = append(blobs, b...)
		}
		if want := []string{"__1.part0", "__1.part1", "__1.part2", "__0"}; !reflect.DeepEqual(blobs, want) {
			t.Errorf("blobs %v, want %v", blobs, want)
		}
		if !reflect.DeepEqual(si.snapshots, map[string]bool{"rfs_snapshot": true}) {
			t.Errorf("snapshots %v", si.snapshots)
		}
	}
	// The emulator's JSON payload reads the same way.
	js := `{"files":[{"name":"__1","length":3297,"part_size":1300},{"name":"__0","length":363},{"name":"v__x","length":9}],` +
		`"snapshots":{"rfs_snapshot":{"files":["__0","__1","v__x"]}}}`
	v, err := decodeChecksumBlob(checksumBlob(codecShardSnapshots, []byte(js), true), codecShardSnapshots)
	if err != nil {
		t.Fatal(err)
	}
	if si, err := parseShardIndex(v); err != nil || len(si.files) != 3 || !si.snapshots["rfs_snapshot"] {
		t.Fatalf("%+v, %v", si, err)
	}
}

func TestChecksumBlobRefused(t *testing.T) {
	good := checksumBlob(codecShardSnapshots, shardIndexSmile, false)
	flip := bytes.Clone(good)
	flip[30] ^= 1
	tests := map[string][]byte{
		"bit flip":        flip,
		"other codec":     checksumBlob("snapshot", shardIndexSmile, false),
		"neither":         checksumBlob(codecShardSnapshots, []byte("LZF?"), false),
		"truncated":       good[:len(good)-3],
		"bad json":        checksumBlob(codecShardSnapshots, []byte(`{"files":`), false),
		"bad deflate":     checksumBlob(codecShardSnapshots, []byte("DFL\x00\xff\xff"), false),
		"too short":       good[:10],
		"no codec header": append([]byte{0, 0, 0, 0}, good[4:]...),
	}
	for name, data := range tests {
		if _, err := decodeChecksumBlob(data, codecShardSnapshots); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestShardFileBlobs(t *testing.T) {
	tests := []struct {
		f    shardFile
		want []string
		err  bool
	}{
		{shardFile{name: "__a", length: 0}, []string{"__a"}, false},
		{shardFile{name: "__a", length: 10, partSize: math.MaxInt64}, []string{"__a"}, false},
		{shardFile{name: "__a", length: 10, partSize: 10}, []string{"__a"}, false},
		{shardFile{name: "__a", length: 11, partSize: 10}, []string{"__a.part0", "__a.part1"}, false},
		{shardFile{name: "v__a", length: 11}, nil, false},
		{shardFile{name: "__../x", length: 1}, nil, true},
		{shardFile{name: "_a", length: 1}, nil, true},
		{shardFile{name: "__a", length: -1}, nil, true},
		{shardFile{name: "__a", length: math.MaxInt64, partSize: 1}, nil, true},
	}
	for _, tc := range tests {
		got, err := tc.f.blobs()
		if (err != nil) != tc.err || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%+v: %v, %v; want %v (error %v)", tc.f, got, err, tc.want, tc.err)
		}
	}
}

func TestParseShardIndexRefuses(t *testing.T) {
	for name, v := range map[string]any{
		"not an object":         []any{},
		"file without length":   map[string]any{"files": []any{map[string]any{"name": "__a"}}},
		"snapshot unknown file": map[string]any{"files": []any{}, "snapshots": map[string]any{"s": map[string]any{"files": []any{"__a"}}}},
		"part size a string":    map[string]any{"files": []any{map[string]any{"name": "__a", "length": int64(1), "part_size": "1mb"}}},
	} {
		if _, err := parseShardIndex(v); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzDecodeChecksumBlob: nothing read from an Elasticsearch repository
// can crash cairn or make it allocate without bound.
func FuzzDecodeChecksumBlob(f *testing.F) {
	f.Add(checksumBlob(codecShardSnapshots, shardIndexSmile, false))
	f.Add(checksumBlob(codecShardSnapshots, shardIndexSmile, true))
	f.Add(checksumBlob(codecShardSnapshots, []byte(`{"files":[{"name":"__a","length":1}]}`), false))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := decodeChecksumBlob(data, codecShardSnapshots)
		if err == nil {
			if si, err := parseShardIndex(v); err == nil {
				for _, f := range si.files {
					f.blobs()
				}
			}
		}
	})
}

// FuzzDecodeSmile feeds the SMILE decoder directly, past the checksum.
func FuzzDecodeSmile(f *testing.F) {
	f.Add(shardIndexSmile)
	f.Add(smileDoc(0x07, cat([]byte{0xf8}, str(0x41, "ab"), []byte{0x01, 0xf9})...))
	f.Fuzz(func(t *testing.T, data []byte) {
		decodeSmile(data)
	})
}
