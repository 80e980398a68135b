package repo_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/faulty"
	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/internal/poll"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// fastLocks ages locks in a fraction of a second.
var fastLocks = repo.LockTiming{Refresh: 20 * time.Millisecond, Stale: 400 * time.Millisecond, Margin: 100 * time.Millisecond}

// A lock whose refreshes fail is lost before another host could see it
// stale, and a snapshot is not written under it. Before the fix the
// failed refresh was ignored and the snapshot written.
func TestLockRefreshFailureIsFatal(t *testing.T) {
	fs := faulty.New(memstore.New())
	r := initRepo(t, fs)
	if err := r.SetLockTiming(fastLocks); err != nil {
		t.Fatal(err)
	}
	l, err := r.Lock(t.Context(), false, "backup")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	// Healthy: the lock is refreshed and stays fresh past the stale limit.
	start := time.Now()
	poll.Until(t, "three stale periods", func() bool { return time.Since(start) > 3*fastLocks.Stale })
	if err := l.Fresh(fastLocks.Refresh); err != nil {
		t.Fatalf("a refreshed lock is not fresh: %v", err)
	}
	infos, err := r.ListLocks(t.Context())
	if err != nil || len(infos) != 1 || !infos[0].Refreshed.After(start) {
		t.Fatalf("lock record not refreshed: %+v, %v", infos, err)
	}
	if _, err := r.SaveSnapshot(t.Context(), &snapshot.Snapshot{Time: time.Now(), Host: "h"}); err != nil {
		t.Fatalf("save under a fresh lock: %v", err)
	}

	fs.FailPut(faulty.Prefix("locks/"), 0, nil) // every refresh fails from now on
	failedAt := time.Now()
	select {
	case <-l.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("a lock whose refreshes fail was never declared lost")
	}
	if lostAfter := time.Since(failedAt); lostAfter > fastLocks.Stale-fastLocks.Margin+fastLocks.Refresh {
		t.Errorf("lost only %s after refreshes began to fail; must be before Stale-Margin", lostAfter)
	}
	if !errors.Is(l.Err(), repo.ErrLockLost) {
		t.Fatalf("Err() = %v, want ErrLockLost", l.Err())
	}
	_, err = r.SaveSnapshot(t.Context(), &snapshot.Snapshot{Time: time.Now(), Host: "h"})
	if !errors.Is(err, repo.ErrLockLost) {
		t.Fatalf("SaveSnapshot under a lost lock: %v, want ErrLockLost", err)
	}
}

// A lock that is merely old (a refresh delayed, say by a stuck store) is
// not fresh enough to save a snapshot under, even before it is declared
// lost.
func TestSaveSnapshotNeedsFreshLock(t *testing.T) {
	fs := faulty.New(memstore.New())
	r := initRepo(t, fs)
	slow := repo.LockTiming{Refresh: 150 * time.Millisecond, Stale: 500 * time.Millisecond, Margin: 100 * time.Millisecond}
	if err := r.SetLockTiming(slow); err != nil {
		t.Fatal(err)
	}
	l, err := r.Lock(t.Context(), false, "backup")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	fs.FailPut(faulty.Prefix("locks/"), 0, nil)
	poll.Until(t, "the lock to age", func() bool { return l.Fresh(slow.Refresh) != nil })
	if _, err := r.SaveSnapshot(t.Context(), &snapshot.Snapshot{Time: time.Now(), Host: "h"}); !errors.Is(err, repo.ErrLockLost) {
		t.Fatalf("SaveSnapshot under an aging lock: %v, want ErrLockLost", err)
	}
	ids, _ := r.ListIDs(t.Context(), "snapshots/")
	if len(ids) != 0 {
		t.Fatalf("%d snapshots written", len(ids))
	}
}

// An unreadable lock record blocks exclusive and prune lockers (it may be
// a live lock); shared lockers go ahead. Before the fix it was skipped.
func TestUnreadableLockBlocksExclusive(t *testing.T) {
	for _, junk := range []string{"{not json", "", `{"exclusive":false}`, strings.Repeat("x", 1<<20)} {
		st := memstore.New()
		r := initRepo(t, st)
		if err := st.Put(t.Context(), "locks/0123456789abcdef0123456789abcdef", []byte(junk)); err != nil {
			t.Fatal(err)
		}
		for _, kind := range []repo.LockKind{repo.LockExclusive, repo.LockPrune} {
			_, err := r.LockAs(t.Context(), kind, "prune")
			if !errors.Is(err, repo.ErrLocked) || !strings.Contains(err.Error(), "cannot be read") {
				t.Fatalf("%s lock over an unreadable record %.20q: %v, want locked", kind, junk, err)
			}
		}
		l, err := r.LockAs(t.Context(), repo.LockShared, "backup")
		if err != nil {
			t.Fatalf("shared lock over an unreadable record: %v", err)
		}
		l.Unlock()
	}
}

func TestPruneLockExcludesOnlyPrunes(t *testing.T) {
	r := initRepo(t, memstore.New())
	ctx := t.Context()
	backup, err := r.LockAs(ctx, repo.LockShared, "backup")
	if err != nil {
		t.Fatal(err)
	}
	defer backup.Unlock()
	prune, err := r.LockAs(ctx, repo.LockPrune, "prune")
	if err != nil {
		t.Fatalf("prune lock beside a backup: %v", err)
	}
	if _, err := r.LockAs(ctx, repo.LockPrune, "prune"); !errors.Is(err, repo.ErrLocked) {
		t.Fatalf("second prune: %v, want locked", err)
	}
	if _, err := r.LockAs(ctx, repo.LockExclusive, "x"); !errors.Is(err, repo.ErrLocked) {
		t.Fatalf("exclusive beside a prune: %v, want locked", err)
	}
	b2, err := r.LockAs(ctx, repo.LockShared, "backup")
	if err != nil {
		t.Fatalf("backup beside a prune: %v", err)
	}
	b2.Unlock()
	prune.Unlock()
}

// An application's run lock excludes only another run of the same
// application, on any host, until its holder stops refreshing it.
func TestRunLock(t *testing.T) {
	st := memstore.New()
	r := initRepo(t, st)
	ctx := t.Context()
	a, err := r.LockRun(ctx, "alm", "backup")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.LockRun(ctx, "alm", "restore")
	var le *repo.LockError
	if !errors.Is(err, repo.ErrRunInProgress) || errors.Is(err, repo.ErrLocked) || !errors.As(err, &le) || !strings.Contains(err.Error(), "application alm is already running") {
		t.Fatalf("second run of alm: %v, want ErrRunInProgress", err)
	}
	other, err := r.LockRun(ctx, "design", "backup")
	if err != nil {
		t.Fatalf("another application beside alm: %v", err)
	}
	other.Unlock()
	shared, err := r.LockAs(ctx, repo.LockShared, "copy")
	if err != nil {
		t.Fatalf("a shared lock beside a run: %v", err)
	}
	shared.Unlock()
	if _, err := r.LockAs(ctx, repo.LockExclusive, "x"); !errors.Is(err, repo.ErrLocked) {
		t.Fatalf("exclusive beside a run: %v, want locked", err)
	}
	a.Unlock()

	// A run lock of a dead holder on another host, not refreshed for
	// longer than Stale, is in nobody's way.
	old := time.Now().Add(-2 * repo.DefaultLockTiming.Stale).UTC().Format(time.RFC3339Nano)
	rec := `{"exclusive":false,"host":"elsewhere","pid":4242,"time":"` + old + `","refreshed":"` + old + `","run":"alm"}`
	if err := st.Put(ctx, "locks/00ff00ff00ff00ff00ff00ff00ff00ff", []byte(rec)); err != nil {
		t.Fatal(err)
	}
	b, err := r.LockRun(ctx, "alm", "backup")
	if err != nil {
		t.Fatalf("run lock beside a stale one: %v", err)
	}
	b.Unlock()
	fresh := time.Now().UTC().Format(time.RFC3339Nano)
	rec = `{"exclusive":false,"host":"elsewhere","pid":4242,"time":"` + fresh + `","refreshed":"` + fresh + `","run":"alm"}`
	if err := st.Put(ctx, "locks/00ff00ff00ff00ff00ff00ff00ff00fe", []byte(rec)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.LockRun(ctx, "alm", "backup"); !errors.Is(err, repo.ErrRunInProgress) {
		t.Fatalf("run lock of a live holder on another host: %v, want ErrRunInProgress", err)
	}
}
