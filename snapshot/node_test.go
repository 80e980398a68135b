package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/chunk"
)

func testID(b byte) chunk.ID {
	var id chunk.ID
	for i := range id {
		id[i] = b
	}
	return id
}

func idPtr(b byte) *chunk.ID {
	id := testID(b)
	return &id
}

// sampleNodes is a small tree with one node of each type, sorted by name.
func sampleNodes() []Node {
	mt := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	ct := mt.Add(time.Second)
	return []Node{
		{Name: "a.txt", Type: File, Mode: 0o644, ModTime: mt, ChangeTime: ct, Inode: 11, DeviceID: 3, UID: 1000, GID: 1000, Size: 5, Content: []chunk.ID{testID(1)}},
		{Name: "bin", Type: Dir, Mode: 0o755, ModTime: mt, ChangeTime: ct, Inode: 12, Subtree: idPtr(2)},
		{Name: "empty", Type: File, Mode: 0o600, ModTime: mt},
		{Name: "link", Type: Symlink, Mode: 0o777, ModTime: mt, LinkTarget: "../elsewhere"},
		{Name: "z\u00e9", Type: File, Mode: 0o4755, ModTime: mt, Size: 1 << 20, Content: []chunk.ID{testID(3), testID(4)}},
	}
}

func mustEncode(t testing.TB, tr *Tree) []byte {
	t.Helper()
	b, err := tr.Encode()
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return b
}

func TestTreeEncodeCanonical(t *testing.T) {
	want := mustEncode(t, &Tree{Nodes: sampleNodes()})

	reversed := sampleNodes()
	for i, j := 0, len(reversed)-1; i < j; i, j = i+1, j-1 {
		reversed[i], reversed[j] = reversed[j], reversed[i]
	}
	rotated := sampleNodes()
	rotated = append(rotated[2:], rotated[:2]...)

	zoned := func(name string, offset int) []Node {
		loc := time.FixedZone(name, offset)
		ns := sampleNodes()
		for i := range ns {
			ns[i].ModTime = ns[i].ModTime.In(loc)
			if !ns[i].ChangeTime.IsZero() {
				ns[i].ChangeTime = ns[i].ChangeTime.In(loc)
			}
		}
		return ns
	}
	local := sampleNodes()
	for i := range local {
		local[i].ModTime = local[i].ModTime.Local()
	}
	// time.Now-style values carry a monotonic clock reading; it must not
	// leak into the encoding.
	withMono := sampleNodes()
	now := time.Now()
	withMono[0].ModTime = now
	wantMono := sampleNodes()
	wantMono[0].ModTime = now.Round(0).UTC()

	for _, tc := range []struct {
		name  string
		nodes []Node
		want  []byte
	}{
		{"same order", sampleNodes(), want},
		{"reversed", reversed, want},
		{"rotated", rotated, want},
		{"times in UTC+5:30", zoned("IST", 5*3600+1800), want},
		{"times in UTC-8", zoned("PST", -8*3600), want},
		{"times in local zone", local, want},
		{"monotonic reading dropped", withMono, mustEncode(t, &Tree{Nodes: wantMono})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.nodes
			orig := append([]Node(nil), in...)
			got := mustEncode(t, &Tree{Nodes: in})
			if !bytes.Equal(got, tc.want) {
				t.Errorf("encoding differs:\n got %s\nwant %s", got, tc.want)
			}
			// Encode must not reorder or modify the caller's slice.
			for i := range in {
				if in[i].Name != orig[i].Name || !in[i].ModTime.Equal(orig[i].ModTime) || in[i].ModTime.Location() != orig[i].ModTime.Location() {
					t.Fatalf("Encode modified the caller's nodes at %d", i)
				}
			}
		})
	}

	t.Run("times are written in UTC", func(t *testing.T) {
		if !bytes.Contains(want, []byte(`"mtime":"2024-05-06T07:08:09.123456789Z"`)) {
			t.Errorf("encoding lacks the UTC mtime: %s", want)
		}
	})
	t.Run("zero ctime is omitted, zero mtime is not", func(t *testing.T) {
		b := mustEncode(t, &Tree{Nodes: []Node{{Name: "f", Type: File}}})
		if bytes.Contains(b, []byte("ctime")) {
			t.Errorf("zero ctime encoded: %s", b)
		}
		if !bytes.Contains(b, []byte(`"mtime":"0001-01-01T00:00:00Z"`)) {
			t.Errorf("zero mtime missing: %s", b)
		}
	})
	t.Run("HTML characters are not escaped", func(t *testing.T) {
		b := mustEncode(t, &Tree{Nodes: []Node{{Name: "a<b>&c", Type: File}}})
		if !bytes.Contains(b, []byte(`"a<b>&c"`)) {
			t.Errorf("name escaped: %s", b)
		}
	})
	t.Run("different trees encode differently", func(t *testing.T) {
		ns := sampleNodes()
		ns[0].Size++
		if bytes.Equal(mustEncode(t, &Tree{Nodes: ns}), want) {
			t.Error("a changed size did not change the encoding")
		}
	})
}

// An empty directory's tree must encode the same however the empty node
// list was built: the archiver builds it with make([]Node, 0, n), a decoded
// `{"nodes":[]}` gives an empty slice, `{}` gives nil.
func TestTreeEncodeEmpty(t *testing.T) {
	want := mustEncode(t, &Tree{Nodes: []Node{}})
	for _, tc := range []struct {
		name string
		tree *Tree
	}{
		{"empty slice", &Tree{Nodes: make([]Node, 0, 8)}},
		{"nil slice", &Tree{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mustEncode(t, tc.tree)
			if !bytes.Equal(got, want) {
				t.Errorf("empty tree encodes as %s, want %s (equal trees must encode to equal bytes)", got, want)
			}
			back, err := DecodeTree(got)
			if err != nil {
				t.Fatalf("DecodeTree(%s): %v", got, err)
			}
			if len(back.Nodes) != 0 {
				t.Errorf("decoded %d nodes", len(back.Nodes))
			}
		})
	}
}

func TestTreeEncodeRejects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes []Node
		want  error // nil: any error
		msg   string
	}{
		{"empty name", []Node{{Name: "", Type: File}}, ErrBadName, ""},
		{"dot", []Node{{Name: ".", Type: Dir, Subtree: idPtr(1)}}, ErrBadName, ""},
		{"dot dot", []Node{{Name: "..", Type: Dir, Subtree: idPtr(1)}}, ErrBadName, ""},
		{"slash", []Node{{Name: "a/b", Type: File}}, ErrBadName, ""},
		{"NUL", []Node{{Name: "a\x00b", Type: File}}, ErrBadName, ""},
		{"duplicate", []Node{{Name: "x", Type: File}, {Name: "y", Type: File}, {Name: "x", Type: Symlink}}, nil, "duplicate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := (&Tree{Nodes: tc.nodes}).Encode()
			if err == nil {
				t.Fatalf("Encode succeeded: %s", b)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v is not %v", err, tc.want)
			}
			if tc.msg != "" && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

func TestTreeRoundTrip(t *testing.T) {
	in := &Tree{Nodes: sampleNodes()}
	b := mustEncode(t, in)
	out, err := DecodeTree(b)
	if err != nil {
		t.Fatalf("DecodeTree: %v", err)
	}
	if len(out.Nodes) != len(in.Nodes) {
		t.Fatalf("decoded %d nodes, want %d", len(out.Nodes), len(in.Nodes))
	}
	for i := range in.Nodes {
		a, b := in.Nodes[i], out.Nodes[i]
		if a.Name != b.Name || a.Type != b.Type || a.Mode != b.Mode || !a.ModTime.Equal(b.ModTime) ||
			!a.ChangeTime.Equal(b.ChangeTime) || a.Inode != b.Inode || a.DeviceID != b.DeviceID ||
			a.UID != b.UID || a.GID != b.GID || a.Size != b.Size || a.LinkTarget != b.LinkTarget ||
			len(a.Content) != len(b.Content) || (a.Subtree == nil) != (b.Subtree == nil) {
			t.Errorf("node %d: got %+v, want %+v", i, b, a)
			continue
		}
		for j := range a.Content {
			if a.Content[j] != b.Content[j] {
				t.Errorf("node %d content %d differs", i, j)
			}
		}
		if a.Subtree != nil && *a.Subtree != *b.Subtree {
			t.Errorf("node %d subtree differs", i)
		}
	}
	if again := mustEncode(t, out); !bytes.Equal(again, b) {
		t.Errorf("re-encoding a decoded tree changed it:\n got %s\nwant %s", again, b)
	}
}

func TestTreeFind(t *testing.T) {
	tr := &Tree{Nodes: sampleNodes()}
	for _, tc := range []struct {
		name  string
		found bool
	}{
		{"a.txt", true}, {"bin", true}, {"empty", true}, {"link", true}, {"z\u00e9", true},
		{"", false}, {"a", false}, {"bin/", false}, {"zz", false}, {"A.TXT", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := tr.Find(tc.name)
			if (n != nil) != tc.found {
				t.Fatalf("Find(%q) = %v, want found=%v", tc.name, n, tc.found)
			}
			if n != nil && n.Name != tc.name {
				t.Errorf("Find(%q) returned %q", tc.name, n.Name)
			}
		})
	}
	t.Run("nil tree", func(t *testing.T) {
		var nt *Tree
		if nt.Find("a") != nil {
			t.Error("nil tree found a node")
		}
	})
	t.Run("returns a pointer into the tree", func(t *testing.T) {
		tr.Find("a.txt").Size = 99
		if tr.Nodes[0].Size != 99 {
			t.Error("Find returned a copy")
		}
	})
}

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true}, {"...", true}, {".hidden", true}, {"a b", true}, {"a\\b", true}, {"\u00e9t\u00e9", true},
		{"-", true}, {"a..b", true}, {strings.Repeat("x", 300), true}, {"\n", true},
		{"", false}, {".", false}, {"..", false}, {"/", false}, {"a/b", false}, {"/abs", false},
		{"trailing/", false}, {"a\x00", false}, {"\x00", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidName(tc.name)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadName) {
				t.Errorf("error %v does not wrap ErrBadName", err)
			}
		})
	}
}

func TestDecodeTreeRejects(t *testing.T) {
	sub := testID(7).String()
	mt := `"mtime":"2024-01-01T00:00:00Z"`
	file := func(name string) string {
		return `{"name":` + jsonString(name) + `,"type":"file","mode":420,` + mt + `}`
	}
	tree := func(nodes ...string) string { return `{"nodes":[` + strings.Join(nodes, ",") + `]}` }
	for _, tc := range []struct {
		name string
		data string
		want error  // nil: any error
		msg  string // substring of the error
	}{
		{"not JSON", `{"nodes":[`, nil, "decode tree"},
		{"wrong JSON type", `[]`, nil, "decode tree"},
		{"nodes not a list", `{"nodes":{}}`, nil, "decode tree"},
		{"bad subtree ID", tree(`{"name":"d","type":"dir","mode":493,` + mt + `,"subtree":"xyz"}`), nil, "decode tree"},
		{"empty name", tree(file("")), ErrBadName, ""},
		{"dot", tree(file(".")), ErrBadName, ""},
		{"dot dot", tree(file("..")), ErrBadName, ""},
		{"dot dot dir", tree(`{"name":"..","type":"dir","mode":493,` + mt + `,"subtree":"` + sub + `"}`), ErrBadName, ""},
		{"slash", tree(file("a/b")), ErrBadName, ""},
		{"absolute", tree(file("/etc")), ErrBadName, ""},
		{"NUL", tree(file("a\x00b")), ErrBadName, ""},
		{"unsorted", tree(file("b"), file("a")), nil, "not sorted"},
		{"duplicate", tree(file("a"), file("a")), nil, "duplicated"},
		{"duplicate after others", tree(file("a"), file("b"), file("b")), nil, "duplicated"},
		{"bad name after good ones", tree(file("a"), file("b/c")), ErrBadName, ""},
		{"dir without subtree", tree(`{"name":"d","type":"dir","mode":493,` + mt + `}`), nil, "no subtree"},
		{"dir with null subtree", tree(`{"name":"d","type":"dir","mode":493,` + mt + `,"subtree":null}`), nil, "no subtree"},
		{"unknown type", tree(`{"name":"p","type":"door","mode":420,` + mt + `}`), nil, "unknown type"},
		{"socket is never stored", tree(`{"name":"p","type":"socket","mode":420,` + mt + `}`), nil, "unknown type"},
		{"hard link on a directory", tree(`{"name":"p","type":"symlink","mode":420,` + mt + `,"hardlink":"a"}`), nil, "bad hard link"},
		{"hard link escaping", tree(`{"name":"p","type":"file","mode":420,` + mt + `,"hardlink":"../a"}`), nil, "bad hard link"},
		{"missing type", tree(`{"name":"p","mode":420,` + mt + `}`), nil, "unknown type"},
		{"type in capitals", tree(`{"name":"p","type":"FILE","mode":420,` + mt + `}`), nil, "unknown type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := DecodeTree([]byte(tc.data))
			if err == nil {
				t.Fatalf("DecodeTree(%s) = %+v, want an error", tc.data, tr)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v is not %v", err, tc.want)
			}
			if tc.msg != "" && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

func TestDecodeTreeAccepts(t *testing.T) {
	sub := testID(7).String()
	mt := `"mtime":"2024-01-01T00:00:00+02:00"`
	for _, tc := range []struct {
		name  string
		data  string
		nodes int
	}{
		{"empty list", `{"nodes":[]}`, 0},
		{"no nodes field", `{}`, 0},
		{"null nodes", `{"nodes":null}`, 0},
		{"all types", `{"nodes":[{"name":"a","type":"dir","mode":493,` + mt + `,"subtree":"` + sub + `"},` +
			`{"name":"b","type":"file","mode":420,` + mt + `,"size":0},` +
			`{"name":"c","type":"symlink","mode":511,` + mt + `,"linktarget":"/abs/target"}]}`, 3},
		{"byte order, not locale order", `{"nodes":[{"name":"B","type":"file",` + mt + `},{"name":"a","type":"file",` + mt + `}]}`, 2},
		{"unknown fields ignored", `{"nodes":[{"name":"a","type":"file",` + mt + `,"xattrs":{"k":"v"}}],"extra":1}`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := DecodeTree([]byte(tc.data))
			if err != nil {
				t.Fatalf("DecodeTree: %v", err)
			}
			if len(tr.Nodes) != tc.nodes {
				t.Errorf("got %d nodes, want %d", len(tr.Nodes), tc.nodes)
			}
		})
	}
}

func jsonString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}
