package archive_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/sources/tree"
)

// growingFS is a real directory source whose file "grows" is listed small
// and rewritten to several MiB just before it is opened: a file that a
// reader of small files takes by its listed size and finds large.
type growingFS struct {
	*tree.Source
	dir   string
	large []byte
}

func (g *growingFS) Open(ctx context.Context, rel string) (io.ReadCloser, error) {
	if err := g.grow(rel); err != nil {
		return nil, err
	}
	return g.Source.Open(ctx, rel)
}

// OpenListed grows the file as Open does. Its reader finds the file
// changed since it was listed, and the archiver reads it again by Open:
// the test still sees a small reader take a large file.
func (g *growingFS) OpenListed(ctx context.Context, rel string, listed snapshot.Node) (io.ReadCloser, error) {
	if err := g.grow(rel); err != nil {
		return nil, err
	}
	return g.Source.OpenListed(ctx, rel, listed)
}

func (g *growingFS) grow(rel string) error {
	if rel != "grows" {
		return nil
	}
	return os.WriteFile(filepath.Join(g.dir, "grows"), g.large, 0o644)
}

// TestSmallAndLargeFiles backs up a tree of many small files (encoded by
// the readers of small files, each on its own goroutine), large ones (cut
// by the big readers, encoded by the saver's encoders), files of exactly
// repo.InlineMax and one byte more, and a file listed small that is large
// when read, then reads every file back from the repository.
func TestSmallAndLargeFiles(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(11, 12))
	text := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = "abcdefgh \n"[rng.IntN(10)]
		}
		return b
	}
	want := map[string][]byte{}
	for i := range 300 {
		want[fmt.Sprintf("small/%03d", i)] = text(1 + rng.IntN(20<<10))
	}
	want["edge/at"] = text(repo.InlineMax)
	want["edge/over"] = text(repo.InlineMax + 1)
	for i := range 3 {
		want[fmt.Sprintf("large/%d", i)] = text(3<<20 + rng.IntN(1<<20))
	}
	want["grows"] = []byte("small when listed\n")
	for name, b := range want {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src, err := tree.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	large := text(5 << 20) // several chunks, most of them past InlineMax
	want["grows"] = large
	r, res := backupFS(t, dir, &growingFS{Source: src, dir: dir, large: large})
	if len(res.FileErrors) != 0 {
		t.Fatalf("file errors: %v", res.FileErrors)
	}
	root, err := r.LoadTree(t.Context(), res.Snapshot.Components[0].Tree)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range want {
		dirName, base := filepath.Split(name)
		tr := root
		if dirName != "" {
			sub := root.Find(filepath.Clean(dirName))
			if sub == nil || sub.Subtree == nil {
				t.Fatalf("%s: directory not in the snapshot", dirName)
			}
			if tr, err = r.LoadTree(t.Context(), *sub.Subtree); err != nil {
				t.Fatal(err)
			}
		}
		n := tr.Find(base)
		if n == nil {
			t.Fatalf("%s: not in the snapshot", name)
		}
		var got []byte
		for _, id := range n.Content {
			blob, err := r.LoadBlob(t.Context(), pack.DataBlob, id, nil)
			if err != nil {
				t.Fatalf("%s: blob %s: %v", name, id.Short(), err)
			}
			got = append(got, blob...)
		}
		if !bytes.Equal(got, b) {
			t.Fatalf("%s: read back %d other bytes than the %d backed up", name, len(got), len(b))
		}
		if name == "grows" && len(n.Content) < 2 {
			t.Errorf("grows: %d chunks; the test wants a file of several", len(n.Content))
		}
	}
}
