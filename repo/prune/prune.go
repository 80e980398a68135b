// Package prune gives back the space that forgotten snapshots held, without
// blocking backups: packs no snapshot needs are marked in one run and
// deleted by a later run, once every process that could have seen them in
// the index has ended (the argument is in docs/FORMAT.md, "Prune").
//
// One run does, in order:
//
//  1. Sweep: for each earlier mark whose named locks are all gone, delete
//     its packs, after re-reading every snapshot and resurrecting (indexing
//     again) any marked pack that holds a blob a snapshot needs.
//  2. Mark: find the blobs no snapshot uses; copy the used blobs of packs
//     that are mostly garbage into new packs; write the new index, then
//     remove the index files it supersedes; then list the locks and write
//     a mark naming the packs to delete and those locks.
//
// Memory: the index (about 53 bytes per blob) plus two bits per blob (used,
// kept) and a few words per pack; trees are walked once each; repack holds
// the pack it writes (PackSize + 1 MiB), a 4 MiB read window and the
// locations of at most 65,536 kept blobs; the new index is written in
// files of 25,000 blobs. A soft memory limit of the index plus PackSize +
// 24 MiB keeps the collector's slack inside that. On the retention
// bench's history of 80,000 small files (36 snapshots, 794,000 blobs,
// 40.4 MiB of index) forget --prune peaks at 90-93 MiB RSS, 2.2-2.3 × the
// index, of which 47-49 MiB is the floor of any command that opens the
// repository (scrypt's 32 MiB, binary pages and runtime); it was 146-155
// MiB.
package prune

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/store"
)

// Options tune a prune. Zero values take the defaults.
type Options struct {
	// MaxUnused is the share of unused bytes left in kept packs that is
	// tolerated, relative to the used bytes (default 0.05, restic's
	// default too): packs are repacked, mostly-garbage first, until what
	// stays unused is below it.
	MaxUnused float64
	// MaxRepackBytes bounds the stored bytes of the packs repacked in one
	// run (0: no bound).
	MaxRepackBytes int64
	// PackSize is the size of the packs written when repacking (16 MiB).
	PackSize int
	// DryRun computes and reports; nothing is written or deleted.
	DryRun bool
	// Lock is the prune's own lock; it must be fresh before each change.
	// Locks the Repository holds are left out of the marks. Nil in tests
	// that hold none.
	Lock *repo.Lock
	// Now is the clock (time.Now).
	Now func() time.Time
	// Progress, when set, receives a line per stage.
	Progress func(string)
}

func (o *Options) applyDefaults() {
	if o.MaxUnused <= 0 {
		o.MaxUnused = 0.05
	}
	if o.PackSize <= 0 {
		o.PackSize = 16 << 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Progress == nil {
		o.Progress = func(string) {}
	}
}

// Report says what a prune did (or, with DryRun, would do).
type Report struct {
	DryRun    bool `json:"dry_run"`
	Snapshots int  `json:"snapshots"`

	Packs         int    `json:"packs"`          // indexed packs before
	StoredBytes   uint64 `json:"stored_bytes"`   // their bytes
	UsedBlobs     int    `json:"used_blobs"`     // distinct blobs snapshots use
	UsedBytes     uint64 `json:"used_bytes"`     // stored bytes of one copy of each
	UnusedBytes   uint64 `json:"unused_bytes"`   // stored bytes of the rest
	GarbagePacks  int    `json:"garbage_packs"`  // packs with no used blob: marked
	RepackedPacks int    `json:"repacked_packs"` // packs whose used blobs were copied: marked
	RepackedBytes uint64 `json:"repacked_bytes"` // their used bytes, written anew
	WrittenPacks  int    `json:"written_packs"`
	Unindexed     int    `json:"unindexed_packs"` // packs no index names: marked
	MarkedBytes   uint64 `json:"marked_bytes"`    // stored bytes of the packs marked this run

	// Sweep of earlier marks (and of this run's, when no lock stood in
	// the way).
	MarksSwept   int    `json:"marks_swept"`
	MarksWaiting int    `json:"marks_waiting"` // marks whose locks are still held
	DeletedPacks int    `json:"deleted_packs"`
	FreedBytes   uint64 `json:"freed_bytes"`
	Resurrected  int    `json:"resurrected_packs"` // marked packs a snapshot turned out to need
}

// ErrMissingBlobs is returned when a snapshot needs a blob that neither the
// index nor any marked pack holds: the repository is damaged, and prune
// deletes nothing until check and repair have looked at it.
var ErrMissingBlobs = errors.New("prune: snapshots need blobs the repository does not have; nothing deleted (run cairn check)")

// ErrDamagedPack is returned when a used blob cannot be read from the pack
// prune would repack: nothing is deleted.
var ErrDamagedPack = errors.New("prune: a used blob is unreadable; nothing deleted (run cairn check --read-data)")

type pruner struct {
	r    *repo.Repository
	opts Options
	rep  *Report
	host string
	// What this run read, in order: locks, then snapshots, then the index,
	// then the packs in the store.
	marks   []storedMark
	locks   []repo.LockInfo
	locksAt time.Time         // when locks was listed: their age is judged then
	dropped map[chunk.ID]bool // packs this run's index rewrite left out
	snaps   []repo.SnapshotEntry
	sizes   map[chunk.ID]int64 // packs in the store
	used    bitmap             // over index ordinals: first entry of each used blob
	missing []blobRef          // used blobs the index does not have
}

type blobRef struct {
	t  pack.BlobType
	id chunk.ID
}

// Run prunes r. r must not have loaded its index yet.
func Run(ctx context.Context, r *repo.Repository, opts Options) (*Report, error) {
	opts.applyDefaults()
	host, _ := os.Hostname()
	p := &pruner{r: r, opts: opts, rep: &Report{DryRun: opts.DryRun}, host: host}
	if err := p.run(ctx); err != nil {
		return p.rep, err
	}
	return p.rep, nil
}

// fresh fails unless the prune's own lock is demonstrably held: a prune
// whose lock may look stale could race a second prune.
func (p *pruner) fresh() error {
	if p.opts.Lock == nil {
		return nil
	}
	return p.opts.Lock.Fresh(p.r.LockTiming().Refresh)
}

func (p *pruner) run(ctx context.Context) error {
	var err error
	// Marks and locks are read before the snapshots and the index: a mark
	// whose locks are gone now can have no writer left that loaded an
	// index naming its packs, so every snapshot that needs them is in the
	// listing below and every index file naming them in the index below.
	if p.marks, err = LoadMarks(ctx, p.r); err != nil {
		return err
	}
	if p.locks, err = p.r.ListLocks(ctx); err != nil {
		return err
	}
	p.locksAt = p.opts.Now()
	p.opts.Progress("listing snapshots")
	snaps, err := p.r.Snapshots(ctx)
	if err != nil {
		return fmt.Errorf("prune needs every snapshot to know what is used: %w", err)
	}
	p.snaps = snaps
	p.rep.Snapshots = len(snaps)
	p.opts.Progress("loading the index")
	if err := p.r.LoadIndex(ctx); err != nil {
		return err
	}
	defer p.limitMemory()()
	if p.sizes, err = listPacks(ctx, p.r); err != nil {
		return err
	}
	p.opts.Progress(fmt.Sprintf("finding the blobs %d snapshots use", len(snaps)))
	if err := p.walk(ctx); err != nil {
		return err
	}
	// A resurrected pack may hold a tree whose blobs are in another
	// marked pack: repeat until nothing more is found.
	for len(p.missing) > 0 {
		found, err := p.resurrect(ctx)
		if err != nil {
			return err
		}
		if !found {
			b := p.missing[0]
			return fmt.Errorf("%w: %d blobs, e.g. %s blob %s", ErrMissingBlobs, len(p.missing), b.t, b.id)
		}
	}
	if err := p.sweep(ctx, p.eligible()); err != nil {
		return err
	}
	return p.mark(ctx)
}

// limitHeadroom is what prune's memory limit allows beyond the index: the
// pack being written by repack (PackSize plus 1 MiB), its read window and
// batch of locations (7 MiB), the walk's trees in flight and the runtime's
// own, with room to spare.
func (o *Options) limitHeadroom() int64 { return int64(o.PackSize) + 24<<20 }

// limitMemory sets a soft memory limit (debug.SetMemoryLimit) of the
// loaded index plus limitHeadroom, unless a lower one is set (GOMEMLIMIT),
// and returns the function that restores the old one.
//
// Without it the heap may grow GOGC (25% in cairn then; the default 100%
// now, where cmd/cairn sets the same limit) beyond what is live, and
// prune's live heap is mostly the index. Because the index holds no
// pointers, a collection costs about the same whatever its size, so
// collecting more often near the limit is cheap. On the retention bench's
// history of 80,000 small files (36 snapshots, 794,000 blobs, 40.4 MiB of
// index), forget --prune peaked at 103 MiB RSS without a limit, 89-90 MiB
// with it (GOMEMLIMIT 72 to 80 MiB), in about the same time. Below what
// is live the limit only makes the collector run more (at most half the
// CPU, the runtime's own cap), never fails an allocation.
func (p *pruner) limitMemory() (restore func()) {
	limit := int64(p.r.Index().MemoryBytes()) + p.opts.limitHeadroom()
	old := debug.SetMemoryLimit(-1)
	if old <= limit {
		return func() {}
	}
	debug.SetMemoryLimit(limit)
	return func() { debug.SetMemoryLimit(old) }
}

func listPacks(ctx context.Context, r *repo.Repository) (map[chunk.ID]int64, error) {
	sizes := map[chunk.ID]int64{}
	err := r.Store().List(ctx, "data/", func(fi store.Info) error {
		if len(fi.Name) < 2*chunk.IDSize {
			return nil
		}
		id, err := chunk.ParseID(fi.Name[len(fi.Name)-2*chunk.IDSize:])
		if err == nil && repo.PackName(id) == fi.Name {
			sizes[id] = fi.Size
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	return sizes, nil
}
