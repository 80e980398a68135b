package local

import (
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/cairn-backup/cairn/store"
)

// List must read only the directories that can hold matching names: a
// repository has hundreds of thousands of data objects, and listing "keys/"
// must not walk them.
func TestListReadsOnlyPrefixDirs(t *testing.T) {
	s, err := Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, name := range []string{"config", "data/ab/ab1", "data/ab/ab2", "data/ac/ac1", "data/cd/cd1", "index/i1", "keys/k1"} {
		if err := s.Put(ctx, name, []byte(name)); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var read []string
	s.onReadDir = func(rel string) {
		mu.Lock()
		read = append(read, rel)
		mu.Unlock()
	}
	for _, tc := range []struct {
		prefix string
		dirs   []string
		n      int
	}{
		{"keys/", []string{"keys"}, 1},
		{"data/ab/", []string{"data/ab"}, 2},
		{"data/ab/ab1", []string{"data/ab"}, 1},
		{"data/a", []string{"data", "data/ab", "data/ac"}, 3},
		{"data/", []string{"data", "data/ab", "data/ac", "data/cd"}, 4},
		{"d", []string{"", "data", "data/ab", "data/ac", "data/cd"}, 4},
		{"config", []string{""}, 1},
		{"missing/", []string{"missing"}, 0},
		{"data/zz/", []string{"data/zz"}, 0},
		{"", []string{"", "data", "data/ab", "data/ac", "data/cd", "index", "keys"}, 7},
	} {
		read = nil
		n := 0
		if err := s.List(ctx, tc.prefix, func(store.Info) error { n++; return nil }); err != nil {
			t.Fatalf("List(%q): %v", tc.prefix, err)
		}
		slices.Sort(read)
		if !slices.Equal(read, tc.dirs) || n != tc.n {
			t.Errorf("List(%q) read %q and found %d objects, want %q and %d", tc.prefix, read, n, tc.dirs, tc.n)
		}
	}
}
