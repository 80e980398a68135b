package tree

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDenseFilesSkipTheHoleSearch: a file whose every byte has a block is
// read without SEEK_DATA/SEEK_HOLE; one with a hole still gets the search
// (TestSparseFileHolesNotRead checks that it then skips the hole).
func TestDenseFilesSkipTheHoleSearch(t *testing.T) {
	dir := t.TempDir()
	dense := filepath.Join(dir, "dense")
	writeFile(t, dense, "every byte written", 0o644)
	sparse := filepath.Join(dir, "sparse")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(64 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, tc := range []struct {
		path      string
		wantDense bool
	}{{dense, true}, {sparse, false}} {
		f, err := os.Open(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		if got := newSparseSeeker(f, fi).dense; got != tc.wantDense {
			t.Errorf("%s: dense = %v, want %v", filepath.Base(tc.path), got, tc.wantDense)
		}
		f.Close()
	}
}
