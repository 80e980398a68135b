package archive_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/archive"
	"github.com/cairn-backup/cairn/sources/tree"
)

// TestComponentProgress: a backup counts each component on its own (for
// a progress line per component) and the job's totals are their sums.
func TestComponentProgress(t *testing.T) {
	dir := t.TempDir()
	for name, size := range map[string]int{"a": 100_000, "b": 3_000} {
		if err := os.WriteFile(filepath.Join(dir, name), bytes.Repeat([]byte(name), size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src, err := tree.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(t.Context(), memstore.New(), "pw", repo.InitOptions{KDF: repo.KDFParams{N: 1024, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	var prog repo.Progress
	dump := bytes.Repeat([]byte("row\n"), 50_000)
	_, err = archive.Backup(t.Context(), r, []archive.ComponentSource{
		{Name: "db", Source: "pg_dump", Reader: bytes.NewReader(dump)},
		{Name: "files", Source: dir, FS: src},
	}, archive.Options{Host: "h", Progress: &prog})
	if err != nil {
		t.Fatal(err)
	}
	type counts struct{ files, bytes uint64 }
	want := map[string]counts{"db": {1, uint64(len(dump))}, "files": {2, 103_000}}
	comps := prog.Components()
	if len(comps) != 2 || comps[0].Name() != "db" || comps[1].Name() != "files" {
		t.Fatalf("components %v", comps)
	}
	var sum counts
	for _, c := range comps {
		got := counts{c.Files.Load(), c.Bytes.Load()}
		if got != want[c.Name()] {
			t.Errorf("%s: %+v, want %+v", c.Name(), got, want[c.Name()])
		}
		sum.files += got.files
		sum.bytes += got.bytes
	}
	if job := (counts{prog.Files.Load(), prog.Bytes.Load()}); job != sum {
		t.Errorf("job %+v, components sum to %+v", job, sum)
	}
}
