package repo_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/repo/archive"
	"github.com/cairn-backup/cairn/repo/restore"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/sources/tree"
)

// cancellingTarget cancels the restore's context at the n-th call of op
// and counts the calls of every kind made after that.
type cancellingTarget struct {
	*tree.Target
	op     string
	n      int64
	cancel context.CancelFunc
	calls  atomic.Int64
	after  atomic.Int64 // calls of any kind after the cancel
}

func (c *cancellingTarget) count(op string) {
	if c.calls.Load() >= c.n {
		c.after.Add(1)
	}
	if op == c.op && c.calls.Add(1) == c.n {
		c.cancel()
	}
}

func (c *cancellingTarget) Mkdir(rel string) error { c.count("mkdir"); return c.Target.Mkdir(rel) }
func (c *cancellingTarget) Create(rel string) (*os.File, error) {
	c.count("create")
	return c.Target.Create(rel)
}
func (c *cancellingTarget) SetMetadata(rel string, n *snapshot.Node) error {
	c.count("meta")
	return c.Target.SetMetadata(rel, n)
}

// TestRestoreHonoursCancel: SIGTERM cancels the context; a restore must
// stop promptly (it used to create the whole tree and set every
// directory's metadata first) and leave no partly written file behind
// looking restored.
func TestRestoreHonoursCancel(t *testing.T) {
	src := t.TempDir()
	deep := src
	for range 200 {
		deep = filepath.Join(deep, "d")
	}
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for i := range 40 {
		name := filepath.Join("files", string(rune('a'+i%26))+strings.Repeat("x", i/26))
		files[name] = randomData(uint64(i), 300<<10)
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := initRepo(t, memstore.New())
	res, err := backup(t, r, src, nil, archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		op       string
		n        int64
		maxAfter int64
	}{
		{"mkdir", 20, 2},
		{"meta", 45, 2},          // directories only (files get theirs through SetFileMetadata): in the directories' pass
		{"create", 5, 2 * 4 * 2}, // workers already holding a job finish it
	} {
		t.Run(tc.op, func(t *testing.T) {
			dir := t.TempDir()
			tg, err := tree.OpenTarget(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			ct := &cancellingTarget{Target: tg, op: tc.op, n: tc.n, cancel: cancel}
			start := time.Now()
			_, err = restore.Restore(ctx, r, res.Snapshot, ct, restore.Options{Workers: 2})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Restore after cancel = %v, want context.Canceled", err)
			}
			if a := ct.after.Load(); a > tc.maxAfter {
				t.Errorf("%d target operations after the cancel, want at most %d", a, tc.maxAfter)
			}
			t.Logf("stopped %s after the cancel, %d operations after it", time.Since(start).Round(time.Millisecond), ct.after.Load())
			for name, want := range files {
				got, err := os.ReadFile(filepath.Join(dir, "files", name))
				if errors.Is(err, os.ErrNotExist) {
					continue
				}
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s left behind with %d of %d bytes (%v)", name, len(got), len(want), err)
				}
			}
		})
	}
}
