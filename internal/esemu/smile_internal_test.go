package esemu

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// TestSmileEncoding checks the encoder's bytes against the SMILE format
// specification for a shard-index-like document: a header with flags
// 0x05, short ASCII keys, a back-reference to a key seen before, small
// and VInt integers, and the long-string form.
func TestSmileEncoding(t *testing.T) {
	doc := map[string]any{"files": []any{
		map[string]any{"length": 3297, "name": "__1"},
		map[string]any{"length": -1, "name": strings.Repeat("x", 70)},
	}}
	got, err := toSmile(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{':', ')', '\n', 0x05, 0xfa, 0x84, 'f', 'i', 'l', 'e', 's', 0xf8,
		0xfa, 0x85, 'l', 'e', 'n', 'g', 't', 'h', 0x24, 0x67, 0x82, 0x83, 'n', 'a', 'm', 'e', 0x42, '_', '_', '1', 0xfb,
		0xfa, 0x41, 0xc1, 0x42, 0xe0}
	want = append(want, strings.Repeat("x", 70)...)
	want = append(want, 0xfc, 0xfb, 0xf9, 0xfb)
	if !bytes.Equal(got, want) {
		t.Fatalf("encoded\n% x\nwant\n% x", got, want)
	}
	var back map[string]any
	if err := fromSmile(got, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, map[string]any{"files": []any{
		map[string]any{"length": 3297.0, "name": "__1"},
		map[string]any{"length": -1.0, "name": strings.Repeat("x", 70)},
	}}) {
		t.Errorf("decoded %v", back)
	}
}

// TestSmileRoundTrip: every payload type the emulator writes survives.
func TestSmileRoundTrip(t *testing.T) {
	in := shardGens{
		Files: []fileInfo{{Name: "__a", PhysicalName: "_0.cfs", Length: 1 << 40, Checksum: "1t9f03t", PartSize: 1 << 20, WrittenBy: "9.12.0"},
			{Name: "v__b", PhysicalName: "segments_2", Length: 296, MetaHash: "AAEC", WrittenBy: "é"}},
		Snapshots: map[string]shardSnapRef{"s1": {Files: []string{"__a", "v__b"}, ShardStateID: "x"}},
	}
	for _, compress := range []bool{false, true} {
		data, err := encodeChecksumBlob(codecSnapshots, in, blobEncoding{compress: compress, smile: true})
		if err != nil {
			t.Fatal(err)
		}
		var out shardGens
		if err := decodeChecksumBlob(data, codecSnapshots, &out); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(in, out) {
			t.Errorf("compress %v: got %+v, want %+v", compress, out, in)
		}
	}
}
