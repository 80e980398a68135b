package repo_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/repo/archive"
	"github.com/cairn-backup/cairn/repo/restore"
	"github.com/cairn-backup/cairn/sources/tree"
)

// gatedStream is a dump that writes its first bytes, then waits for gate
// before the rest: a pg_dump whose snapshot is fixed while its data still
// streams. It fails the test instead of hanging if gate never opens.
type gatedStream struct {
	t    *testing.T
	gate <-chan struct{}
	sent int
}

func (g *gatedStream) Read(p []byte) (int, error) {
	switch g.sent {
	case 0:
		g.sent++
		return copy(p, "-- header written once the snapshot is taken\n"), nil
	case 1:
		select {
		case <-g.gate:
		case <-time.After(20 * time.Second):
			g.t.Error("the next component never started while this one streamed")
			return 0, errors.New("gate never opened")
		}
		g.sent++
		return copy(p, "rows\n"), nil
	}
	return 0, io.EOF
}

// TestComponentsOverlapAfterTheirPoint: a component whose source fixes its
// point at its first byte (or at its start) lets the next one start while
// its bytes still stream; order of points is kept, each point is in the
// manifest, and the skew of points is below the skew of durations.
func TestComponentsOverlapAfterTheirPoint(t *testing.T) {
	src := t.TempDir()
	writeTenants(t, src)
	filesStarted := make(chan struct{})
	var once sync.Once
	comps := []archive.ComponentSource{
		{Name: "db", Fixed: archive.FixedAtFirstByte, Start: func(context.Context) (archive.ComponentSource, error) {
			return archive.ComponentSource{Reader: &gatedStream{t: t, gate: filesStarted}}, nil
		}},
		{Name: "search", Fixed: archive.FixedAtStart, Start: func(context.Context) (archive.ComponentSource, error) {
			return archive.ComponentSource{Reader: &gatedStream{t: t, gate: filesStarted}}, nil
		}},
		treeSource(t, "files", src, func(context.Context) error { once.Do(func() { close(filesStarted) }); return nil }),
	}
	r := initRepo(t, memstore.New())
	res, err := archive.Backup(t.Context(), r, comps, archive.Options{Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Snapshot.Components
	if c[0].Name != "db" || c[1].Name != "search" || c[2].Name != "files" {
		t.Fatalf("components out of order: %s %s %s", c[0].Name, c[1].Name, c[2].Name)
	}
	if c[0].Point.IsZero() || c[1].Point.IsZero() || !c[2].Point.IsZero() {
		t.Errorf("points: db %v, search %v, files %v; want db and search only", c[0].Point, c[1].Point, c[2].Point)
	}
	if c[1].Point.Before(c[0].Point) || c[2].Started.Before(c[1].Point) || c[1].Started.Before(c[0].Point) {
		t.Errorf("points out of order: db %v, search started %v point %v, files started %v", c[0].Point, c[1].Started, c[1].Point, c[2].Started)
	}
	if !c[0].Finished.After(c[2].Started) {
		t.Errorf("db finished %v before files started %v: nothing overlapped", c[0].Finished, c[2].Started)
	}
	sn := res.Snapshot
	t.Logf("skew of durations %v, of points %v", sn.Skew(), sn.PointSkew())
	if sn.PointSkew() > sn.Skew() {
		t.Errorf("skew of points %v above the skew of durations %v", sn.PointSkew(), sn.Skew())
	}
	// The data is all there.
	dir, _, err := restoreSnapshot(t, r, res.ID.String(), restore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "db")); string(b) != "-- header written once the snapshot is taken\nrows\n" {
		t.Errorf("db restored as %q", b)
	}
	sameTree(t, src, filepath.Join(dir, "files"))
}

// treeSource is a directory component with a before hook.
func treeSource(t *testing.T, name, dir string, before func(context.Context) error) archive.ComponentSource {
	t.Helper()
	fs, err := tree.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return archive.ComponentSource{Name: name, Source: fs.Root(), FS: fs, Before: before}
}

// TestOverlappingComponentFailure: a component that fails while an
// earlier one still streams stops the backup; no snapshot is written and
// every after hook runs.
func TestOverlappingComponentFailure(t *testing.T) {
	src := t.TempDir()
	writeTenants(t, src)
	filesDone := make(chan struct{})
	var mu sync.Mutex
	var after []string
	hook := func(name string) func(context.Context) error {
		return func(context.Context) error {
			mu.Lock()
			after = append(after, name)
			mu.Unlock()
			if name == "files" {
				close(filesDone)
			}
			return nil
		}
	}
	boom := errors.New("files: disk on fire")
	comps := []archive.ComponentSource{
		{Name: "db", Fixed: archive.FixedAtFirstByte, After: hook("db"), Start: func(context.Context) (archive.ComponentSource, error) {
			return archive.ComponentSource{Reader: &gatedStream{t: t, gate: filesDone}}, nil
		}},
		{Name: "files", After: hook("files"), Start: func(context.Context) (archive.ComponentSource, error) {
			return archive.ComponentSource{}, boom
		}},
	}
	st := memstore.New()
	r := initRepo(t, st)
	_, err := archive.Backup(t.Context(), r, comps, archive.Options{Host: "h"})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	if n := snapshotCount(t, reopen(t, st)); n != 0 {
		t.Errorf("%d snapshots written by a failed backup", n)
	}
	if len(after) != 2 {
		t.Errorf("after hooks ran for %v, want db and files", after)
	}
}
