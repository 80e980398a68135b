package snapshot

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// Linux names are bytes. Issue 8's repro: "a\xf5" (invalid UTF-8) and
// "a\U0001F600" (valid) sort one way as bytes and the other way once the
// invalid byte is replaced by U+FFFD, and before raw names existed the
// replacement happened silently in encoding/json.
func TestTreeRawNamesRoundTrip(t *testing.T) {
	mt := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	in := &Tree{Nodes: []Node{
		{Name: "zz", Type: File, ModTime: mt},
		{Name: "a\xf5", Type: File, ModTime: mt},
		{Name: "a\xf0\x9f\x98\x80", Type: File, ModTime: mt},
		{Name: "bad\xff\xfename", Type: Symlink, ModTime: mt, LinkTarget: "../t\xe9st\x80"},
		{Name: "ok", Type: Symlink, ModTime: mt, LinkTarget: "plain"},
		{Name: "a\ufffd", Type: File, ModTime: mt}, // a valid name that looks like a repaired one
	}}
	enc := mustEncode(t, in)
	out, err := DecodeTree(enc)
	if err != nil {
		t.Fatalf("DecodeTree: %v\n%s", err, enc)
	}
	want := map[string]string{}
	for _, n := range in.Nodes {
		want[n.Name] = n.LinkTarget
	}
	if len(out.Nodes) != len(want) {
		t.Fatalf("decoded %d nodes, want %d", len(out.Nodes), len(want))
	}
	for _, n := range out.Nodes {
		target, ok := want[n.Name]
		if !ok {
			t.Errorf("decoded name %q was not written", n.Name)
			continue
		}
		if n.LinkTarget != target {
			t.Errorf("%q: link target %q, want %q", n.Name, n.LinkTarget, target)
		}
		if out.Find(n.Name) == nil {
			t.Errorf("Find(%q) misses it", n.Name)
		}
	}
	if again := mustEncode(t, out); !bytes.Equal(again, enc) {
		t.Errorf("re-encoding changed the tree:\n%s\n%s", enc, again)
	}
}

// A tree of valid names encodes exactly as it did before raw names
// existed, so unchanged directories in existing repositories still dedup.
func TestTreeValidNamesUnchanged(t *testing.T) {
	mt := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	got := string(mustEncode(t, &Tree{Nodes: []Node{
		{Name: "l", Type: Symlink, Mode: 0o777, ModTime: mt, LinkTarget: "z\u00e9"},
	}}))
	want := `{"nodes":[{"name":"l","type":"symlink","mode":511,"mtime":"2024-05-06T07:08:09Z","linktarget":"zé"}]}` + "\n"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestDecodeTreeRejectsBadRaw(t *testing.T) {
	mt := `"mtime":"2024-01-01T00:00:00Z"`
	for _, tc := range []struct{ name, node, msg string }{
		// base64 of "ab": valid UTF-8 has no raw form.
		{"raw of valid name", `{"name":"ab","type":"file",` + mt + `,"name_raw":"YWI="}`, "not canonical"},
		// base64 of "a\xff" whose repaired form is "a\ufffd", not "x".
		{"raw disagrees with name", `{"name":"x","type":"file",` + mt + `,"name_raw":"Yf8="}`, "does not match"},
		{"raw link target disagrees", `{"name":"s","type":"symlink",` + mt + `,"linktarget":"t","linktarget_raw":"Yf8="}`, "does not match"},
		// base64 of "a/\xff": a raw name must still be one path element.
		{"raw name with slash", `{"name":"a/\ufffd","type":"file",` + mt + `,"name_raw":"YS//"}`, "bad node name"},
		{"raw not base64", `{"name":"a","type":"file",` + mt + `,"name_raw":"!!"}`, "decode tree"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeTree([]byte(`{"nodes":[` + tc.node + `]}`))
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("DecodeTree = %v, want an error mentioning %q", err, tc.msg)
			}
		})
	}
}
