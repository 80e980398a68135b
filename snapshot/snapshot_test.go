package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidComponentName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"db", true},
		{"a", true},
		{"0", true},
		{"files", true},
		{"pg-main.dump_2", true},
		{"A.B-C_D", true},
		{"x.", true},
		{"a..b", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{".", false},
		{"..", false},
		{".hidden", false},
		{"-flag", false},
		{"_x", false},
		{"a/b", false},
		{"/abs", false},
		{"a b", false},
		{"a\x00", false},
		{"a\n", false},
		{"\u00e9t\u00e9", false},
		{"a:b", false},
		{"a\\b", false},
		{"*", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidComponentName(tc.name)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidComponentName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrBadComponentName) {
					t.Errorf("error %v does not wrap ErrBadComponentName", err)
				}
				if !strings.Contains(err.Error(), "letters, digits") {
					t.Errorf("error %q does not say what is allowed", err)
				}
			}
		})
	}
}

func manifestJSON(version int, comps ...string) []byte {
	var cs []string
	for _, c := range comps {
		cs = append(cs, `{"name":`+jsonString(c)+`,"kind":"tree","tree":"`+testID(1).String()+`","size":1,"files":1,"started":"2024-01-01T00:00:00Z","finished":"2024-01-01T00:00:01Z","added_bytes":0}`)
	}
	return []byte(`{"version":` + itoa(version) + `,"time":"2024-01-01T00:00:00Z","host":"h","components":[` + strings.Join(cs, ",") + `]}`)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestDecodeManifest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		data    []byte
		wantErr error // nil with msg "": success
		msg     string
	}{
		{"version 1", manifestJSON(1, "db", "files"), nil, ""},
		{"no components", manifestJSON(1), nil, ""},
		{"version 0", manifestJSON(0, "db"), ErrUnknownVersion, "version 0"},
		{"version missing", []byte(`{"time":"2024-01-01T00:00:00Z","components":[]}`), ErrUnknownVersion, "version 0"},
		{"negative version", manifestJSON(-1, "db"), ErrUnknownVersion, "-1"},
		{"version 2", manifestJSON(2, "db"), ErrUnknownVersion, "version 2 (this cairn reads up to 1)"},
		{"version 99", manifestJSON(99, "db"), ErrUnknownVersion, "99"},
		{"bad component name", manifestJSON(1, "../etc"), ErrBadComponentName, "../etc"},
		{"empty component name", manifestJSON(1, ""), ErrBadComponentName, ""},
		{"duplicate component", manifestJSON(1, "db", "files", "db"), nil, `duplicate component "db"`},
		{"not JSON", []byte(`{"version":1,`), nil, "decode manifest"},
		{"version not a number", []byte(`{"version":"1"}`), nil, "decode manifest"},
		// Issue 8, item 7: an unknown kind was restored into the target root.
		{"unknown kind", bytes.Replace(manifestJSON(1, "db"), []byte(`"kind":"tree"`), []byte(`"kind":"fifo"`), 1), ErrUnknownKind, `"fifo"`},
		{"missing kind", bytes.Replace(manifestJSON(1, "db"), []byte(`"kind":"tree",`), nil, 1), ErrUnknownKind, `""`},
		{"kind in capitals", bytes.Replace(manifestJSON(1, "db"), []byte(`"kind":"tree"`), []byte(`"kind":"TREE"`), 1), ErrUnknownKind, ""},
		{"oversized", append(manifestJSON(1, "db"), bytes.Repeat([]byte(" "), MaxManifestSize)...), nil, "exceeds the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sn, err := Decode(tc.data)
			if tc.wantErr == nil && tc.msg == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if sn.Version != 1 || sn.Host != "h" {
					t.Errorf("decoded %+v", sn)
				}
				return
			}
			if err == nil {
				t.Fatalf("Decode succeeded: %+v", sn)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v is not %v", err, tc.wantErr)
			}
			if tc.msg != "" && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

func TestManifestEncode(t *testing.T) {
	t0 := time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC)
	t.Run("zero version becomes the current one", func(t *testing.T) {
		sn := &Snapshot{Time: t0, Host: "h", Components: []Component{{Name: "db", Kind: KindStream, Tree: testID(1)}}}
		b, err := sn.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if sn.Version != Version {
			t.Errorf("Encode left Version %d", sn.Version)
		}
		back, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(Encode()): %v", err)
		}
		if back.Version != Version || !back.Time.Equal(t0) || back.Host != "h" || len(back.Components) != 1 ||
			back.Components[0].Name != "db" || back.Components[0].Kind != KindStream || back.Components[0].Tree != testID(1) {
			t.Errorf("round trip gave %+v", back)
		}
	})
	t.Run("a newer version is kept and then refused on decode", func(t *testing.T) {
		sn := &Snapshot{Version: Version + 1, Time: t0}
		b, err := sn.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(b); !errors.Is(err, ErrUnknownVersion) {
			t.Errorf("Decode of version %d: %v, want ErrUnknownVersion", Version+1, err)
		}
	})
	t.Run("an unknown kind is refused", func(t *testing.T) {
		sn := &Snapshot{Time: t0, Components: []Component{{Name: "x", Kind: "pipe"}}}
		if _, err := sn.Encode(); !errors.Is(err, ErrUnknownKind) {
			t.Errorf("Encode: %v, want ErrUnknownKind", err)
		}
	})
	t.Run("tags omitted when empty", func(t *testing.T) {
		b, err := (&Snapshot{Time: t0}).Encode()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "tags") {
			t.Errorf("empty tags encoded: %s", b)
		}
	})
}

func TestSkewSizeComponent(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	comp := func(name string, start, end float64, size uint64) Component {
		return Component{Name: name, Started: at(start), Finished: at(end), Size: size}
	}
	for _, tc := range []struct {
		name  string
		comps []Component
		skew  time.Duration
		size  uint64
	}{
		{"no components", nil, 0, 0},
		{"one", []Component{comp("a", 0, 2.5, 7)}, 2500 * time.Millisecond, 7},
		{"sequential", []Component{comp("a", 0, 1, 1), comp("b", 1, 3, 2), comp("c", 3, 10, 3)}, 10 * time.Second, 6},
		{"later component listed first", []Component{comp("b", 5, 6, 0), comp("a", 1, 2, 0)}, 5 * time.Second, 0},
		{"nested: the first spans the others", []Component{comp("a", 0, 100, 1), comp("b", 10, 20, 1)}, 100 * time.Second, 2},
		{"last to finish is in the middle", []Component{comp("a", 2, 3, 1), comp("b", 1, 9, 1), comp("c", 4, 5, 1)}, 8 * time.Second, 3},
		{"instantaneous", []Component{comp("a", 4, 4, 0)}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sn := &Snapshot{Components: tc.comps}
			if got := sn.Skew(); got != tc.skew {
				t.Errorf("Skew = %v, want %v", got, tc.skew)
			}
			if got := sn.Size(); got != tc.size {
				t.Errorf("Size = %d, want %d", got, tc.size)
			}
		})
	}
	t.Run("PointSkew", func(t *testing.T) {
		withPoint := func(c Component, p float64) Component { c.Point = at(p); return c }
		for _, tc := range []struct {
			name        string
			comps       []Component
			skew, point time.Duration
		}{
			{"no points: the same as Skew", []Component{comp("a", 0, 1, 0), comp("b", 1, 3, 0)}, 3 * time.Second, 3 * time.Second},
			// db fixed at 0.5 s and streamed until 30 s; search fixed at 2 s; files read from 2 to 12 s.
			{"overlapping, points fixed early", []Component{withPoint(comp("db", 0, 30, 0), 0.5), withPoint(comp("search", 0.5, 20, 0), 2), comp("files", 2, 12, 0)},
				30 * time.Second, 11500 * time.Millisecond},
			{"only points", []Component{withPoint(comp("db", 0, 30, 0), 1), withPoint(comp("search", 1, 20, 0), 4)}, 30 * time.Second, 3 * time.Second},
		} {
			sn := &Snapshot{Components: tc.comps}
			if got := sn.Skew(); got != tc.skew {
				t.Errorf("%s: Skew = %v, want %v", tc.name, got, tc.skew)
			}
			if got := sn.PointSkew(); got != tc.point {
				t.Errorf("%s: PointSkew = %v, want %v", tc.name, got, tc.point)
			}
		}
	})
	t.Run("Component", func(t *testing.T) {
		sn := &Snapshot{Components: []Component{comp("a", 0, 1, 1), comp("b", 0, 1, 2)}}
		if c := sn.Component("b"); c == nil || c.Size != 2 {
			t.Errorf("Component(b) = %+v", c)
		}
		if c := sn.Component("c"); c != nil {
			t.Errorf("Component(c) = %+v, want nil", c)
		}
		sn.Component("a").Size = 42
		if sn.Components[0].Size != 42 {
			t.Error("Component returned a copy, not a pointer into the snapshot")
		}
	})
}
