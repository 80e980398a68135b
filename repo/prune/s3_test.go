package prune_test

import (
	"os"
	"testing"

	"github.com/cairn-backup/cairn/internal/s3test"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/prune"
	"github.com/cairn-backup/cairn/store/s3"
)

func TestMain(m *testing.M) { os.Exit(s3test.Main(m)) }

// Prune on a real MinIO: the space comes back, kept snapshots restore, and
// a lock held beside it defers the deletion to the next run.
func TestPruneOnMinIO(t *testing.T) {
	srv := s3test.Shared(t)
	st, err := s3.Open(t.Context(), srv.Config(srv.NewBucket(t), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	h := makeHistory(t, st, 5)
	before := storedBytes(t, st)
	forget(t, st, h.ids[:2]...)

	other := open(t, st)
	l, err := other.LockAs(t.Context(), repo.LockShared, "backup")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := runPrune(t, st, prune.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.MarksWaiting != 1 || rep.DeletedPacks != 0 {
		t.Fatalf("prune beside a lock on MinIO: %+v", rep)
	}
	verify(t, st, h.data, h.ids[2:])
	l.Unlock()
	rep, err = runPrune(t, st, prune.Options{})
	if err != nil {
		t.Fatal(err)
	}
	after := storedBytes(t, st)
	t.Logf("MinIO: %d bytes before, %d after: %+v", before, after, rep)
	if rep.DeletedPacks == 0 || after > before*7/10 || count(t, st, "marks/") != 0 {
		t.Fatalf("prune on MinIO freed too little: %d → %d, %+v", before, after, rep)
	}
	verify(t, st, h.data, h.ids[2:])
}
