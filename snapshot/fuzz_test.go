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
		`{"nodes":[{"name":"p","type":"socket"}]}`,
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
			case File, Symlink, Fifo, CharDev, BlockDev:
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

// FuzzDecodeManifest feeds arbitrary bytes to Decode, which reads snapshot
// manifests. An accepted manifest has a known version, valid unique
// component names and known kinds, and re-encodes to a fixed point.
//
//	go test -run '^$' -fuzz FuzzDecodeManifest -fuzztime 15s ./snapshot
func FuzzDecodeManifest(f *testing.F) {
	orig := testID(9)
	full := &Snapshot{Version: 1, Host: "h", App: "a", Tags: []string{"x"}, Program: "cairn test", Original: &orig,
		Components: []Component{
			{Name: "db", Kind: KindStream, Tree: testID(1), Source: "stdin", Size: 10, Files: 1, Meta: map[string]string{"command": "pg_dump"}},
			{Name: "files", Kind: KindTree, Tree: testID(2), Size: 3, Files: 2, Dirs: 1, Errors: 1},
		}}
	seed, err := full.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(manifestJSON(1, "db", "files"))
	f.Add(manifestJSON(2, "db"))
	f.Add(manifestJSON(1, "db", "db"))
	f.Add(bytes.Replace(manifestJSON(1, "db"), []byte(`"kind":"tree"`), []byte(`"kind":"fifo"`), 1))
	f.Add([]byte(`{"version":1,"components":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		sn, err := Decode(data)
		if err != nil {
			if sn != nil {
				t.Fatal("a manifest returned with an error")
			}
			return
		}
		if sn.Version < 1 || sn.Version > Version {
			t.Fatalf("accepted version %d", sn.Version)
		}
		seen := map[string]bool{}
		for _, c := range sn.Components {
			if ValidComponentName(c.Name) != nil || ValidKind(c.Kind) != nil || seen[c.Name] {
				t.Fatalf("accepted component %q of kind %q", c.Name, c.Kind)
			}
			seen[c.Name] = true
			if sn.Component(c.Name) == nil {
				t.Fatalf("Component(%q) misses it", c.Name)
			}
		}
		enc, err := sn.Encode()
		if err != nil {
			return // a time JSON cannot write (year beyond 9999 after the zone)
		}
		back, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded manifest does not decode: %v\n%s", err, enc)
		}
		enc2, err := back.Encode()
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not a fixed point (%v):\n%s\n%s", err, enc, enc2)
		}
	})
}
