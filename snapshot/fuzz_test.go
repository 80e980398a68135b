package snapshot

import (
	"bytes"
	"testing"
)

// FuzzDecodeTree feeds arbitrary bytes to DecodeTree, which reads tree
// blobs from the repository. It must never panic, and a tree it accepts
// must hold only what the restorer relies on: valid, strictly sorted names
// and a subtree for every directory. When such a tree re-encodes, the
// encoding must decode again and be a fixed point.
//
//	go test -run '^$' -fuzz FuzzDecodeTree -fuzztime 15s ./snapshot
func FuzzDecodeTree(f *testing.F) {
	seed, err := (&Tree{Nodes: sampleNodes()}).Encode()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(seed),
		`{"nodes":[]}`,
		`{}`,
		`null`,
		`{"nodes":[{"name":"..","type":"dir","subtree":"` + testID(1).String() + `"}]}`,
		`{"nodes":[{"name":"a/b","type":"file"}]}`,
		`{"nodes":[{"name":"b","type":"file"},{"name":"a","type":"file"}]}`,
		`{"nodes":[{"name":"a","type":"file"},{"name":"a","type":"file"}]}`,
		`{"nodes":[{"name":"d","type":"dir"}]}`,
		`{"nodes":[{"name":"p","type":"fifo"}]}`,
		`{"nodes":[{"name":"t","type":"file","mtime":"0000-01-01T00:00:00+01:00"}]}`,
		`{"nodes":[{"name":"s","type":"symlink","linktarget":"/etc/passwd","content":["` + testID(2).String() + `"]}]}`,
		`{"nodes":[{"name":"\u0000","type":"file"}]}`,
		`{"nodes":[{"name":"\xff","type":"file"}]}`,
		`{"nodes":[{"name":"a\ufffd","type":"file","name_raw":"Yf8="},{"name":"b","type":"symlink","linktarget":"\ufffd","linktarget_raw":"gA=="}]}`,
		`{"nodes":[{"name":"ab","type":"file","name_raw":"YWI="}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := DecodeTree(data)
		if err != nil {
			if tr != nil {
				t.Fatalf("DecodeTree returned a tree with error %v", err)
			}
			return
		}
		for i, n := range tr.Nodes {
			if err := ValidName(n.Name); err != nil {
				t.Fatalf("accepted bad name: %v", err)
			}
			if i > 0 && tr.Nodes[i-1].Name >= n.Name {
				t.Fatalf("accepted unsorted or duplicate names %q, %q", tr.Nodes[i-1].Name, n.Name)
			}
			switch n.Type {
			case File, Symlink:
			case Dir:
				if n.Subtree == nil {
					t.Fatalf("accepted directory %q without subtree", n.Name)
				}
			default:
				t.Fatalf("accepted unknown type %q", n.Type)
			}
			if tr.Find(n.Name) == nil {
				t.Fatalf("Find(%q) misses an accepted node", n.Name)
			}
		}
		enc, err := tr.Encode()
		if err != nil {
			// Times that are only representable in their own zone (year 0
			// at +01:00 is year -1 in UTC) cannot be written in UTC; that is
			// an encoding failure, not a panic.
			return
		}
		tr2, err := DecodeTree(enc)
		if err != nil {
			t.Fatalf("re-encoded tree does not decode: %v\n%s", err, enc)
		}
		enc2, err := tr2.Encode()
		if err != nil {
			t.Fatalf("second Encode: %v", err)
		}
		for i := range tr.Nodes {
			// Names and link targets are bytes and survive byte-exact.
			if tr.Nodes[i].Name != tr2.Nodes[i].Name || tr.Nodes[i].LinkTarget != tr2.Nodes[i].LinkTarget {
				t.Fatalf("node %d: %q -> %q, link %q -> %q", i, tr.Nodes[i].Name, tr2.Nodes[i].Name, tr.Nodes[i].LinkTarget, tr2.Nodes[i].LinkTarget)
			}
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not a fixed point:\n%s\n%s", enc, enc2)
		}
	})
}
