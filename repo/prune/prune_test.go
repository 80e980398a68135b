package prune_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/internal/faulty"
	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/archive"
	"github.com/cairn-backup/cairn/repo/check"
	"github.com/cairn-backup/cairn/repo/prune"
	"github.com/cairn-backup/cairn/repo/restore"
	"github.com/cairn-backup/cairn/sources/tree"
	"github.com/cairn-backup/cairn/store"
)

var testKDF = repo.InitOptions{KDF: repo.KDFParams{N: 1024, R: 8, P: 1}}

// fastLocks lets a lock go stale in seconds.
var fastLocks = repo.LockTiming{Refresh: 100 * time.Millisecond, Stale: 2 * time.Second, Margin: 500 * time.Millisecond}

func open(t *testing.T, st store.Store) *repo.Repository {
	t.Helper()
	r, err := repo.Open(t.Context(), st, "pw")
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if err := r.SetLockTiming(fastLocks); err != nil {
		t.Fatal(err)
	}
	return r
}

// randomData is n incompressible bytes, the same for the same seed. ChaCha8
// fills the buffer in blocks: byte by byte, the histories of these tests
// took most of their time under -race.
func randomData(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

// history backs up n streams: each is a part shared by all (seed 0) and a
// part of its own, so forgetting a snapshot makes its own part garbage in
// packs that also hold live data.
type history struct {
	st    store.Store
	ids   []chunk.ID
	data  map[chunk.ID][]byte
	packs int
}

func makeHistory(t *testing.T, st store.Store, n int) *history {
	t.Helper()
	r, err := repo.Init(t.Context(), st, "pw", testKDF)
	if err != nil {
		t.Fatal(err)
	}
	h := &history{st: st, data: map[chunk.ID][]byte{}}
	shared := randomData(1000, 3<<20)
	for i := range n {
		r := open(t, st)
		data := append(slices.Clone(shared), randomData(uint64(i+1), 3<<20)...)
		id := backupStream(t, r, data, time.Date(2026, 1, 1, 4*i, 0, 0, 0, time.UTC))
		h.ids = append(h.ids, id)
		h.data[id] = data
	}
	_ = r
	h.packs = count(t, st, "data/")
	return h
}

func backupStream(t *testing.T, r *repo.Repository, data []byte, at time.Time) chunk.ID {
	t.Helper()
	res, err := archive.Backup(t.Context(), r, []archive.ComponentSource{{Name: "db", Source: "stdin", Reader: bytes.NewReader(data)}},
		archive.Options{Host: "h", Time: at, Saver: repo.SaverOptions{PackSize: 4 << 20}})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return res.ID
}

func count(t *testing.T, st store.Store, prefix string) int {
	t.Helper()
	n := 0
	if err := st.List(t.Context(), prefix, func(store.Info) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func storedBytes(t *testing.T, st store.Store) int64 {
	t.Helper()
	var n int64
	_ = st.List(t.Context(), "data/", func(fi store.Info) error { n += fi.Size; return nil })
	return n
}

func forget(t *testing.T, st store.Store, ids ...chunk.ID) {
	t.Helper()
	r := open(t, st)
	for _, id := range ids {
		if err := r.RemoveSnapshot(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	}
}

func runPrune(t *testing.T, st store.Store, opts prune.Options) (*prune.Report, error) {
	t.Helper()
	r := open(t, st)
	l, err := r.LockAs(t.Context(), repo.LockPrune, "prune")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	opts.Lock = l
	return prune.Run(t.Context(), r, opts)
}

// verify checks the repository and restores every snapshot in want
// byte-exact.
func verify(t *testing.T, st store.Store, want map[chunk.ID][]byte, live []chunk.ID) {
	t.Helper()
	verifyData(t, st, want, live, true)
}

// verifyData is verify; without readData check reads structure only (the
// restores still read every byte the live snapshots need).
func verifyData(t *testing.T, st store.Store, want map[chunk.ID][]byte, live []chunk.ID, readData bool) {
	t.Helper()
	r := open(t, st)
	rep, err := check.Check(t.Context(), r, check.Options{ReadData: readData})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("check: errors %v damaged %v", rep.Errors, rep.Damaged)
	}
	for _, id := range live {
		sn, err := r.LoadSnapshot(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		tg, err := tree.OpenTarget(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := restore.Restore(t.Context(), r, sn, tg, restore.Options{}); err != nil {
			t.Fatalf("restore %s: %v", id.Short(), err)
		}
		tg.Close()
		got, err := os.ReadFile(filepath.Join(dir, "db"))
		if err != nil || !bytes.Equal(got, want[id]) {
			t.Fatalf("snapshot %s restored %d bytes (%v), want its %d bytes", id.Short(), len(got), err, len(want[id]))
		}
	}
}

func TestPruneFreesSpaceAndKeepsWhatIsUsed(t *testing.T) {
	st := memstore.New()
	h := makeHistory(t, st, 6)
	before := storedBytes(t, st)
	forget(t, st, h.ids[:3]...)

	dry, err := runPrune(t, st, prune.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !dry.DryRun || dry.MarkedBytes == 0 || storedBytes(t, st) != before || count(t, st, "marks/") != 0 {
		t.Fatalf("dry run: %+v; store changed: %v", dry, storedBytes(t, st) != before)
	}
	rep, err := runPrune(t, st, prune.Options{})
	if err != nil {
		t.Fatal(err)
	}
	after := storedBytes(t, st)
	t.Logf("before %d after %d: %+v", before, after, rep)
	if rep.GarbagePacks+rep.RepackedPacks == 0 || rep.FreedBytes == 0 || rep.MarksSwept != 1 {
		t.Fatalf("nothing freed: %+v", rep)
	}
	// Each forgotten snapshot held 3 MiB of its own (random, so stored
	// about as large): about half the repository goes.
	if after > before*6/10 {
		t.Fatalf("store holds %d bytes after prune, %d before", after, before)
	}
	if count(t, st, "marks/") != 0 {
		t.Fatal("a swept mark was left")
	}
	verify(t, st, h.data, h.ids[3:])
	// A second prune finds nothing to do.
	rep, err = runPrune(t, st, prune.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.GarbagePacks+rep.RepackedPacks+rep.Unindexed != 0 || rep.FreedBytes != 0 {
		t.Fatalf("second prune: %+v", rep)
	}
}

// While another process holds a lock, prune marks but does not delete; the
// next prune after the lock is released deletes.
func TestPruneWaitsForLocks(t *testing.T) {
	st := memstore.New()
	h := makeHistory(t, st, 4)
	forget(t, st, h.ids[:2]...)
	other := open(t, st)
	l, err := other.LockAs(t.Context(), repo.LockShared, "backup")
	if err != nil {
		t.Fatal(err)
	}
	before := names(t, st, "data/")
	rep, err := runPrune(t, st, prune.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.MarksWaiting != 1 || rep.DeletedPacks != 0 || count(t, st, "marks/") != 1 {
		t.Fatalf("prune beside a backup deleted at once: %+v", rep)
	}
	for _, n := range before {
		if _, err := st.Stat(t.Context(), n); err != nil {
			t.Fatalf("pack %s deleted while a backup held its lock", n)
		}
	}
	verify(t, st, h.data, h.ids[2:])
	// Still held: the next prune waits too.
	if rep, err = runPrune(t, st, prune.Options{}); err != nil || rep.DeletedPacks != 0 {
		t.Fatalf("second prune while the lock is held: %+v, %v", rep, err)
	}
	l.Unlock()
	rep, err = runPrune(t, st, prune.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.DeletedPacks == 0 || rep.MarksWaiting != 0 || count(t, st, "marks/") != 0 {
		t.Fatalf("prune after the lock was released: %+v", rep)
	}
	verify(t, st, h.data, h.ids[2:])
}

// A lock whose holder stopped refreshing it counts as gone only after
// Stale+Margin.
func TestPruneTreatsStaleLocksAsGone(t *testing.T) {
	st := faulty.New(memstore.New())
	h := makeHistory(t, st, 3)
	forget(t, st, h.ids[0])
	other := open(t, st)
	l, err := other.LockAs(t.Context(), repo.LockShared, "backup")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	if _, err := runPrune(t, st, prune.Options{}); err != nil {
		t.Fatal(err)
	}
	st.FailPut(faulty.Prefix("locks/"+l.Name()[len("locks/"):]), 0, nil) // the holder hangs
	<-l.Lost()
	lostAt := time.Now()
	// Right after the holder gave up, its lock is not yet stale to others:
	// the holder gives up at Stale-Margin, others see it gone at
	// Stale+Margin. (On a machine so loaded that this prune took longer
	// than 2*Margin, the window has passed and nothing can be said.)
	rep, err := runPrune(t, st, prune.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(lostAt); took < 2*fastLocks.Margin && rep.DeletedPacks != 0 {
		t.Fatalf("swept %s after the holder gave up, before Stale+Margin: %+v", took, rep)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		rep, err = runPrune(t, st, prune.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.DeletedPacks > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(fastLocks.Refresh)
	}
	if rep.DeletedPacks == 0 {
		t.Fatalf("a stale lock blocked the sweep forever: %+v", rep)
	}
	st.Reset()
	verify(t, st, h.data, h.ids[1:])
}

// A backup that loaded the index before prune marked a pack may write a
// snapshot that uses it; the sweep finds that and indexes the pack again
// instead of deleting it.
//
// Two snapshots are forgotten and only the first comes back, so the mark
// always keeps packs the late snapshot does not need (the second's own):
// taking the revived packs out of it is then a Put of the rewritten mark,
// and the sweep has something to delete. With one snapshot forgotten it
// depended on how its blobs fell into packs whether the late snapshot
// needed every marked pack (the mark is then only deleted, no Put, and
// nothing is left to sweep): the test failed 2 runs in 6.
func TestPruneResurrectsWhatALateSnapshotNeeds(t *testing.T) {
	st := faulty.New(memstore.New())
	h := makeHistory(t, st, 3)
	old := h.ids[0]
	r := open(t, st)
	sn, err := r.LoadSnapshot(t.Context(), old)
	if err != nil {
		t.Fatal(err)
	}
	forget(t, st, old, h.ids[1])
	// The "backup": it holds a lock from before the prune and deduplicated
	// everything against the old index.
	backup := open(t, st)
	l, err := backup.LockAs(t.Context(), repo.LockShared, "backup")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := runPrune(t, st, prune.Options{})
	if err != nil || rep.MarksWaiting != 1 {
		t.Fatalf("prune: %+v, %v", rep, err)
	}
	sn.Time = sn.Time.Add(time.Hour)
	late, err := backup.SaveSnapshot(t.Context(), sn)
	if err != nil {
		t.Fatal(err)
	}
	h.data[late] = h.data[old]
	// check sees the snapshot's blobs in marked packs and says so.
	cr := open(t, st)
	marked, err := prune.MarkedPacks(t.Context(), cr)
	if err != nil {
		t.Fatal(err)
	}
	crep, err := check.Check(t.Context(), cr, check.Options{Marked: marked})
	if err != nil || !strings.Contains(strings.Join(crep.Warnings, "\n"), "resurrection") {
		t.Fatalf("check of a snapshot that needs marked packs: %v, warnings %q", err, crep.Warnings)
	}
	l.Unlock()
	// The first try dies after indexing the needed packs again, before
	// it could take them out of the mark: the next run must not delete
	// them. The mark keeps the second forgotten snapshot's packs, so it
	// is rewritten (a Put) whatever the pack layout.
	st.FailPut(faulty.Prefix("marks/"), 1, nil)
	if _, err := runPrune(t, st, prune.Options{}); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("prune with a failing mark write: %v", err)
	}
	st.Reset()
	rep, err = runPrune(t, st, prune.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Every mark is swept, the second snapshot's own packs are deleted,
	// and the packs the late snapshot needs were spared (verify reads
	// every blob). Not asserted: that no garbage is left, since which copy
	// of a blob stored twice is kept follows the index order, which a
	// rewritten index can change (2 runs in 60).
	if n := count(t, st, "marks/"); n != 0 {
		t.Fatalf("%d marks left after the sweep: %+v", n, rep)
	}
	if rep.DeletedPacks == 0 {
		t.Fatalf("nothing deleted after the resurrection: %+v", rep)
	}
	verify(t, st, h.data, []chunk.ID{late, h.ids[2]})
}

// A pack to repack whose used blob is damaged stops the prune before
// anything is deleted.
func TestPruneStopsOnDamagedPack(t *testing.T) {
	// Whether forgetting the oldest snapshot leaves a pack partly used
	// (so that prune must read live blobs to repack it) depends on where
	// the repository's random chunker polynomial cuts: about one history
	// in ten has only wholly-garbage packs, and prune rightly reads
	// nothing. Build histories until a dry run plans a repack.
	var (
		inner *memstore.Store
		h     *history
	)
	for attempt := 0; ; attempt++ {
		if attempt == 10 {
			t.Fatal("no history of 10 left a pack to repack")
		}
		inner = memstore.New()
		h = makeHistory(t, inner, 3)
		forget(t, inner, h.ids[0])
		rep, err := runPrune(t, inner, prune.Options{MaxUnused: 0.0001, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if rep.RepackedPacks > 0 {
			break
		}
	}
	st := faulty.New(inner)
	// Damage every pack on read every 256 KiB from 256 KiB on: every data
	// blob prune copies (at least 512 KiB, the chunker's minimum, but for
	// a stream's last) covers one of these bytes, while the small packs
	// of trees are left readable, so the walk gets through.
	for off := int64(256 << 10); off <= 16<<20; off += 256 << 10 {
		st.FlipBitOnGet(faulty.Prefix("data/"), off)
	}
	packsBefore := names(t, inner, "data/")
	rep, err := runPrune(t, st, prune.Options{MaxUnused: 0.0001})
	if !errors.Is(err, prune.ErrDamagedPack) {
		t.Fatalf("prune over a damaged pack: %+v, %v; want ErrDamagedPack", rep, err)
	}
	for _, n := range packsBefore {
		if _, err := inner.Stat(t.Context(), n); err != nil {
			t.Fatalf("pack %s was deleted by a prune that stopped", n)
		}
	}
	st.Reset()
	verify(t, st, h.data, h.ids[1:])
}

func names(t *testing.T, st store.Store, prefix string) []string {
	t.Helper()
	var out []string
	_ = st.List(t.Context(), prefix, func(fi store.Info) error { out = append(out, fi.Name); return nil })
	return out
}

// A store failing at any write or delete of a prune leaves a repository in
// which every kept snapshot restores, and the next prune finishes.
func TestPruneStoreFailsHalfway(t *testing.T) {
	base := memstore.New()
	h := makeHistory(t, base, 4)
	forget(t, base, h.ids[:2]...)
	snap := copyStore(t, base)
	// Count the prune's writes and deletes on a clean copy first.
	probe := faulty.New(copyStore(t, snap))
	if _, err := runPrune(t, probe, prune.Options{MaxUnused: 0.0001}); err != nil {
		t.Fatal(err)
	}
	puts := probe.Puts()
	if puts < 3 {
		t.Fatalf("prune made only %d writes", puts)
	}
	for n := 1; n <= puts+3; n++ {
		st := faulty.New(copyStore(t, snap))
		if n <= puts {
			st.FailPut(func(name string) bool { return name[:6] != "locks/" }, n, nil)
		} else {
			st.FailDelete(nil, n-puts, nil)
		}
		_, err := runPrune(t, st, prune.Options{MaxUnused: 0.0001})
		st.Reset()
		verifyData(t, st, h.data, h.ids[2:], false)
		if rep, err2 := runPrune(t, st, prune.Options{MaxUnused: 0.0001}); err2 != nil {
			t.Fatalf("fault %d (%v): the next prune failed: %+v, %v", n, err, rep, err2)
		}
		verify(t, st, h.data, h.ids[2:])
		if rep, _ := runPrune(t, st, prune.Options{MaxUnused: 0.0001}); rep.GarbagePacks+rep.Unindexed+rep.MarksWaiting != 0 {
			t.Fatalf("fault %d: garbage left after two prunes: %+v", n, rep)
		}
	}
}

func copyStore(t *testing.T, src store.Store) store.Store {
	t.Helper()
	dst := memstore.New()
	ctx := context.Background()
	err := src.List(ctx, "", func(fi store.Info) error {
		b, err := store.ReadAll(ctx, src, fi.Name)
		if err != nil {
			return err
		}
		return dst.Put(ctx, fi.Name, b)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}
