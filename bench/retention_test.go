//go:build linux

package main

import (
	"path/filepath"
	"testing"
)

// manyFilesState writes n files at step 0 and rewrites the quarter of them
// whose number is the step's modulo 4 at each later step, the same bytes
// for the same seed.
func TestManyFilesState(t *testing.T) {
	const n = 1000
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	var prev []fileSum
	for i := range 3 {
		for _, dir := range []string{a, b} {
			if err := manyFilesState(dir, 7, n, i); err != nil {
				t.Fatal(err)
			}
		}
		ma, err := manifest(a)
		if err != nil {
			t.Fatal(err)
		}
		mb, err := manifest(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := compareManifests(ma, mb); err != nil {
			t.Fatalf("step %d: two runs differ: %v", i, err)
		}
		if len(ma) != n {
			t.Fatalf("step %d: %d files, want %d", i, len(ma), n)
		}
		if prev != nil {
			changed := 0
			for k := range ma {
				if ma[k] != prev[k] {
					changed++
				}
			}
			if changed != n/manyFilesRewrite {
				t.Fatalf("step %d rewrote %d files, want %d", i, changed, n/manyFilesRewrite)
			}
		}
		prev = ma
	}
}
