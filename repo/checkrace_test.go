package repo_test

import (
	"context"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/archive"
	"github.com/cairn-backup/cairn/repo/check"
	"github.com/cairn-backup/cairn/store"
)

// backedUp returns a repository in memory holding one backup of writeTree.
func backedUp(t *testing.T) (store.Store, *repo.Repository, *archive.Result) {
	t.Helper()
	st := memstore.New()
	r := initRepo(t, st)
	src := t.TempDir()
	writeTree(t, src, 1)
	res, err := backup(t, r, src, nil, archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st, r, res
}

// hookStore runs hook once, right after the first List of prefix returns:
// a deterministic stand-in for another process writing between two of
// this one's calls.
type hookStore struct {
	store.Store
	prefix string
	hook   func()
	done   bool
}

func (h *hookStore) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	err := h.Store.List(ctx, prefix, fn)
	if prefix == h.prefix && !h.done {
		h.done = true
		h.hook()
	}
	return err
}

// Issue 8, item 3: check loaded the index before it listed the snapshots,
// so a backup that finished in between left a snapshot whose blobs were in
// an index file check had not read, reported as damage on a healthy
// repository. Check must list snapshots first; whatever a backup writes
// after that is simply not checked this time.
func TestCheckDuringBackupReportsNoDamage(t *testing.T) {
	st, _, _ := backedUp(t)
	for _, between := range []string{"snapshots/", "index/", "data/"} {
		t.Run("backup after listing "+between, func(t *testing.T) {
			other := reopen(t, st) // the concurrent backup, as another process
			src2 := t.TempDir()
			writeTree(t, src2, uint64(len(between))+10)
			hs := &hookStore{Store: st, prefix: between, hook: func() {
				if _, err := backup(t, other, src2, textData(3, 1<<20), archive.Options{}); err != nil {
					t.Errorf("concurrent backup: %v", err)
				}
			}}
			checker := reopen(t, hs)
			rep, err := check.Check(t.Context(), checker, check.Options{ReadData: true})
			if err != nil {
				t.Fatal(err)
			}
			if !hs.done {
				t.Fatalf("check never listed %s", between)
			}
			if !rep.OK() {
				t.Fatalf("healthy repository reported damaged: errors %q, damaged %+v, affected %q", rep.Errors, rep.Damaged, rep.MissingFor)
			}
			for _, w := range rep.Warnings {
				if !strings.Contains(w, "not in any index") {
					t.Errorf("unexpected warning %q", w)
				}
			}
		})
	}
}

// A snapshot forgotten between check's listing and its reading of the
// manifest is gone, not damaged.
func TestCheckDuringForget(t *testing.T) {
	st, _, res := backedUp(t)
	hs := &hookStore{Store: st, prefix: "snapshots/", hook: func() {
		if err := st.Delete(t.Context(), "snapshots/"+res.ID.String()); err != nil {
			t.Error(err)
		}
	}}
	rep, err := check.Check(t.Context(), reopen(t, hs), check.Options{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Snapshots != 0 {
		t.Fatalf("a forgotten snapshot reported: errors %q, snapshots %d", rep.Errors, rep.Snapshots)
	}
}
