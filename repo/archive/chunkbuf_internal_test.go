package archive

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// failingFS lists one large file whose reads give 3 MiB of one byte (no
// cut before the chunker's 8 MiB maximum, whatever the polynomial: the
// window's fingerprint never changes) and then fail.
type failingFS struct{}

func (failingFS) ReadDir(context.Context, string) ([]snapshot.Node, error) {
	return []snapshot.Node{{Name: "f", Type: snapshot.File, Mode: 0o644, Size: 4 << 20}}, nil
}

func (failingFS) Open(context.Context, string) (io.ReadCloser, error) {
	r := io.MultiReader(bytes.NewReader(bytes.Repeat([]byte{0xFF}, 3<<20)), iotest.ErrReader(errors.New("disk on fire")))
	return io.NopCloser(r), nil
}

// TestChunkBufferGivenBackOnce: a file whose read fails after its chunk
// outgrew the 2 MiB chunk buffer gives that buffer back to chunkBufs
// once. Given back twice, two readers would later cut chunks into the
// same memory, and one blob's bytes could change under its ID between
// hashing and encoding.
func TestChunkBufferGivenBackOnce(t *testing.T) {
	for len(chunkBufs) > 0 {
		<-chunkBufs
	}
	r, err := repo.Init(t.Context(), memstore.New(), "pw", repo.InitOptions{KDF: repo.KDFParams{N: 1024, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Backup(t.Context(), r, []ComponentSource{{Name: "files", Source: "/x", FS: failingFS{}}}, Options{Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.FileErrors) != 1 {
		t.Fatalf("file errors %v, want the one read error", res.FileErrors)
	}
	seen := map[*byte]bool{}
	for len(chunkBufs) > 0 {
		b := <-chunkBufs
		p := &b[:1][0]
		if seen[p] {
			t.Fatal("a chunk buffer is in chunkBufs twice")
		}
		seen[p] = true
	}
}
