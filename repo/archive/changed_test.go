package archive_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/archive"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/sources/tree"
)

// changingFS is a real directory source whose file "busy" is appended to
// in the middle of the first `times` reads, as a log file being written is.
type changingFS struct {
	*tree.Source
	dir   string
	mu    sync.Mutex
	times int
	opens int
}

type changingReader struct {
	io.ReadCloser
	change func()
}

func (c *changingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if c.change != nil && n > 0 {
		c.change()
		c.change = nil
	}
	return n, err
}

// Changed passes the tree reader's verdict on.
func (c *changingReader) Changed() error { return c.ReadCloser.(archive.ChangeReporter).Changed() }

func (c *changingFS) Open(ctx context.Context, rel string) (io.ReadCloser, error) {
	rc, err := c.Source.Open(ctx, rel)
	return c.wrap(rel, rc, err)
}

// OpenListed changes the file as Open does: the archiver's first attempt
// comes here.
func (c *changingFS) OpenListed(ctx context.Context, rel string, listed snapshot.Node) (io.ReadCloser, error) {
	rc, err := c.Source.OpenListed(ctx, rel, listed)
	return c.wrap(rel, rc, err)
}

// wrap makes rc, the opened file rel, append to the file while it is read,
// the first c.times times "busy" is opened.
func (c *changingFS) wrap(rel string, rc io.ReadCloser, err error) (io.ReadCloser, error) {
	if err != nil || rel != "busy" {
		return rc, err
	}
	c.mu.Lock()
	c.opens++
	mutate := c.opens <= c.times
	c.mu.Unlock()
	cr := &changingReader{ReadCloser: rc}
	if mutate {
		cr.change = func() {
			f, err := os.OpenFile(filepath.Join(c.dir, "busy"), os.O_APPEND|os.O_WRONLY, 0)
			if err == nil {
				f.WriteString("appended while being read\n")
				f.Close()
			}
		}
	}
	return cr, nil
}

// backupFS backs up fsys, the directory dir, as the component "files" into
// a new in-memory repository.
func backupFS(t *testing.T, dir string, fsys archive.FS) (*repo.Repository, *archive.Result) {
	t.Helper()
	r, err := repo.Init(t.Context(), memstore.New(), "pw", repo.InitOptions{KDF: repo.KDFParams{N: 1024, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := archive.Backup(t.Context(), r, []archive.ComponentSource{{Name: "files", Source: dir, FS: fsys}}, archive.Options{Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	return r, res
}

// TestFileChangedWhileRead: a file written to while it is read used to be
// stored as a torn mix with exit 0. It is now read again; if it changes
// again it is stored as read, marked inconsistent in the snapshot and
// reported (exit 3 in the CLI).
func TestFileChangedWhileRead(t *testing.T) {
	for _, tc := range []struct {
		name         string
		times        int
		inconsistent bool
	}{
		{"unchanged", 0, false},
		{"changed once: read again", 1, false},
		{"changed every time: stored and reported", 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			base := bytes.Repeat([]byte("log line\n"), 500_000) // 4.5 MB: several chunks
			if err := os.WriteFile(filepath.Join(dir, "busy"), base, 0o644); err != nil {
				t.Fatal(err)
			}
			src, err := tree.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			r, res := backupFS(t, dir, &changingFS{Source: src, dir: dir, times: tc.times})
			tr, err := r.LoadTree(t.Context(), res.Snapshot.Components[0].Tree)
			if err != nil {
				t.Fatal(err)
			}
			n := tr.Find("busy")
			if n == nil {
				t.Fatal("busy not in the snapshot")
			}
			if n.Inconsistent != tc.inconsistent {
				t.Errorf("Inconsistent = %v, want %v", n.Inconsistent, tc.inconsistent)
			}
			if tc.inconsistent {
				if len(res.FileErrors) != 1 || !res.FileErrors[0].Stored || res.Snapshot.Components[0].Errors != 1 {
					t.Errorf("want one stored-but-changed report, got %v (component errors %d)", res.FileErrors, res.Snapshot.Components[0].Errors)
				}
				return
			}
			if len(res.FileErrors) != 0 {
				t.Errorf("file errors %v", res.FileErrors)
			}
			// A consistent copy: exactly the file as it is now.
			now, _ := os.ReadFile(filepath.Join(dir, "busy"))
			if n.Size != uint64(len(now)) {
				t.Errorf("stored %d bytes, the file has %d", n.Size, len(now))
			}
		})
	}
}
