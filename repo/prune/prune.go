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
// Memory: the index (about 52 bytes per blob) plus two bits per blob (used,
// kept) and a few words per pack; trees are walked once each.
package prune

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/index"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
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

// bitmap is a set of index ordinals.
type bitmap []uint64

func newBitmap(n int) bitmap    { return make(bitmap, (n+63)/64) }
func (b bitmap) get(i int) bool { return b[i/64]&(1<<(i%64)) != 0 }
func (b bitmap) set(i int)      { b[i/64] |= 1 << (i % 64) }

// errNotIndexed is what the walk's tree loader returns for a tree the
// index lacks: the tree is recorded as missing (resurrection may find it in
// a marked pack), not as damage.
var errNotIndexed = errors.New("not in the index")

// walk marks every blob the snapshots use in p.used and lists the used
// blobs the index lacks in p.missing, with the shared tree walker (each
// tree once, loaded ahead concurrently).
func (p *pruner) walk(ctx context.Context) error {
	ix := p.r.Index()
	p.used = newBitmap(ix.Len())
	p.missing = nil
	use := func(t pack.BlobType, id chunk.ID) {
		if o := ix.Ordinal(t, id); o >= 0 {
			p.used.set(o)
		} else {
			p.missing = append(p.missing, blobRef{t, id})
		}
	}
	load := func(ctx context.Context, id chunk.ID) (*snapshot.Tree, error) {
		if ix.Ordinal(pack.TreeBlob, id) < 0 {
			return nil, errNotIndexed
		}
		return p.r.LoadTree(ctx, id)
	}
	w := p.r.NewWalker(repo.WalkOptions{Load: load})
	visit := repo.Visitor{
		// Callbacks run on this goroutine, one at a time.
		Tree: func(path string, id chunk.ID, t *snapshot.Tree, err error) error {
			if errors.Is(err, errNotIndexed) {
				use(pack.TreeBlob, id)
				return nil
			}
			if err != nil {
				// A tree that cannot be read may name blobs still in use.
				return fmt.Errorf("%w: %s: %w", ErrDamagedPack, path, err)
			}
			use(pack.TreeBlob, id)
			for _, n := range t.Nodes {
				for _, b := range n.Content {
					use(pack.DataBlob, b)
				}
			}
			return nil
		},
	}
	for _, s := range p.snaps {
		for _, c := range s.Components {
			if err := w.Walk(ctx, s.ID.Short()+"/"+c.Name, c.Tree, visit); err != nil {
				return err
			}
		}
	}
	slices.SortFunc(p.missing, func(a, b blobRef) int { return a.id.Compare(b.id) })
	p.missing = slices.CompactFunc(p.missing, func(a, b blobRef) bool { return a == b })
	return nil
}

// markedSet is every pack some mark lists.
func (p *pruner) markedSet() map[chunk.ID]string {
	out := map[chunk.ID]string{}
	for _, m := range p.marks {
		for _, mp := range m.Packs {
			out[mp.ID] = mp.Reason
		}
	}
	return out
}

// resurrect finds the missing blobs in marked packs, indexes those packs
// again and takes them out of their marks. A snapshot needs a marked pack
// when a backup that loaded the index before the pack was marked used a
// blob of it; this is the step that makes that safe. It reports whether
// it found any of the missing blobs (then p.missing is walked anew).
func (p *pruner) resurrect(ctx context.Context) (bool, error) {
	want := map[blobRef]bool{}
	for _, b := range p.missing {
		want[b] = true
	}
	revived := map[chunk.ID]bool{}
	var f index.File
	for id := range p.markedSet() {
		size, ok := p.sizes[id]
		if !ok {
			continue
		}
		blobs, err := p.r.LoadPackHeader(ctx, id, size)
		if err != nil {
			// A damaged marked pack cannot give anything back; if it held a
			// needed blob, that blob stays missing and we stop below.
			continue
		}
		if !slices.ContainsFunc(blobs, func(b pack.Blob) bool { return want[blobRef{b.Type, b.ID}] }) {
			continue
		}
		revived[id] = true
		f.Packs = append(f.Packs, index.PackBlobs{Pack: id, Blobs: blobs})
	}
	if len(revived) == 0 {
		return false, nil
	}
	{
		if p.opts.DryRun {
			p.opts.Progress(fmt.Sprintf("would resurrect %d marked packs that snapshots need", len(revived)))
		} else {
			if err := p.fresh(); err != nil {
				return false, err
			}
			if _, err := p.r.WriteIndex(ctx, &f); err != nil {
				return false, fmt.Errorf("resurrect marked packs: %w", err)
			}
			if err := p.unmark(ctx, revived); err != nil {
				return false, err
			}
		}
		p.rep.Resurrected += len(revived)
		for _, pb := range f.Packs {
			p.r.Index().AddPack(pb.Pack, pb.Blobs)
		}
		if p.opts.DryRun {
			for i := range p.marks {
				p.marks[i].Packs = slices.DeleteFunc(slices.Clone(p.marks[i].Packs), func(mp MarkedPack) bool { return revived[mp.ID] })
			}
		}
	}
	// The index changed, and with it the ordinals: walk again.
	return true, p.walk(ctx)
}

// unmark rewrites every mark that lists one of packs without them. The new
// mark is written before the old one is removed, so a crash leaves the
// packs marked twice (harmless), never a pack unmarked and unindexed.
func (p *pruner) unmark(ctx context.Context, packs map[chunk.ID]bool) error {
	for i, m := range p.marks {
		keep := slices.DeleteFunc(slices.Clone(m.Packs), func(mp MarkedPack) bool { return packs[mp.ID] })
		if len(keep) == len(m.Packs) {
			continue
		}
		nm := m.Mark
		nm.Packs = keep
		if len(keep) > 0 {
			id, err := saveMark(ctx, p.r, nm)
			if err != nil {
				return err
			}
			p.marks[i] = storedMark{ID: id, Mark: nm}
		} else {
			p.marks[i] = storedMark{Mark: nm}
		}
		if err := p.r.Delete(ctx, repo.MarkName(m.ID)); err != nil {
			return err
		}
	}
	p.marks = slices.DeleteFunc(p.marks, func(m storedMark) bool { return m.ID.IsNull() })
	return nil
}

// eligible returns the marks whose named locks are all gone.
func (p *pruner) eligible() []storedMark {
	present := map[string]repo.LockInfo{}
	for _, l := range p.locks {
		present[l.Name] = l
	}
	timing := p.r.LockTiming()
	now := p.locksAt
	var out []storedMark
	for _, m := range p.marks {
		ok := true
		for _, name := range m.Locks {
			if l, held := present[name]; held && !l.Gone(timing, now, p.host) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, m)
		} else {
			p.rep.MarksWaiting++
		}
	}
	return out
}

// sweep deletes the packs of marks, then the marks. Packs an index file
// names (an unindexed pack whose backup finished) are spared.
func (p *pruner) sweep(ctx context.Context, marks []storedMark) error {
	if len(marks) == 0 {
		return nil
	}
	indexed := p.indexedPacks()
	var del []MarkedPack
	for _, m := range marks {
		for _, mp := range m.Packs {
			// A pack the index names is spared: an unindexed pack whose
			// backup finished, or a pack resurrected by a prune that died
			// before it could rewrite the mark. This run's own rewrite
			// dropped some packs from the index: those are not spared.
			if _, ok := slices.BinarySearchFunc(indexed, mp.ID, chunk.ID.Compare); ok && !p.dropped[mp.ID] {
				continue
			}
			del = append(del, mp)
		}
	}
	if p.opts.DryRun {
		for _, mp := range del {
			if size, ok := p.sizes[mp.ID]; ok {
				p.rep.DeletedPacks++
				p.rep.FreedBytes += uint64(size)
			}
		}
		p.rep.MarksSwept += len(marks)
		return nil
	}
	// Right before deleting: an index file written since the index was
	// loaded may name a marked unindexed pack (its backup finished). Such
	// packs are spared.
	spare, err := p.newlyIndexed(ctx)
	if err != nil {
		return err
	}
	for _, mp := range del {
		if spare[mp.ID] {
			continue
		}
		if err := p.fresh(); err != nil {
			return err
		}
		if err := p.r.Delete(ctx, repo.PackName(mp.ID)); err != nil {
			return err
		}
		if size, ok := p.sizes[mp.ID]; ok {
			p.rep.DeletedPacks++
			p.rep.FreedBytes += uint64(size)
			delete(p.sizes, mp.ID)
		}
	}
	gone := map[chunk.ID]bool{}
	for _, m := range marks {
		if err := p.r.Delete(ctx, repo.MarkName(m.ID)); err != nil {
			return err
		}
		gone[m.ID] = true
		p.rep.MarksSwept++
	}
	p.marks = slices.DeleteFunc(p.marks, func(m storedMark) bool { return gone[m.ID] })
	return nil
}

// indexedPacks returns the packs the loaded index names, sorted.
func (p *pruner) indexedPacks() []chunk.ID {
	ids := p.r.Index().Packs()
	slices.SortFunc(ids, chunk.ID.Compare)
	return ids
}

// newlyIndexed loads the index files written since the index was loaded
// and returns the packs they name.
func (p *pruner) newlyIndexed(ctx context.Context) (map[chunk.ID]bool, error) {
	known := map[chunk.ID]bool{}
	for _, id := range append(p.r.ListedIndexFiles(), p.r.IndexFiles()...) {
		known[id] = true
	}
	ids, err := p.r.ListIDs(ctx, "index/")
	if err != nil {
		return nil, err
	}
	out := map[chunk.ID]bool{}
	for _, id := range ids {
		if known[id] {
			continue
		}
		f, err := p.r.LoadIndexFile(ctx, id)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			return nil, err
		}
		for _, pb := range f.Packs {
			out[pb.Pack] = true
		}
	}
	return out, nil
}

// packStat is what the index says about one pack.
type packStat struct {
	id          chunk.ID
	usedBytes   uint64
	unusedBytes uint64
	usedBlobs   int
	blobs       int
}

// mark decides which packs to delete and repack, repacks, rewrites the
// index and writes a mark.
func (p *pruner) mark(ctx context.Context) error {
	ix := p.r.Index()
	marked := p.markedSet()
	// One pass over the index in ordinal order: copies of a blob are
	// adjacent, the first copy of a used blob is the one kept.
	packNum := map[chunk.ID]int{}
	var stats []packStat
	kept := newBitmap(ix.Len())
	var prev blobRef
	keeperFound := false
	ord, firstOrd := 0, 0
	ix.Each(func(loc index.Location) bool {
		i := ord
		ord++
		k := blobRef{loc.Blob.Type, loc.Blob.ID}
		if i == 0 || k != prev {
			prev, firstOrd, keeperFound = k, i, false
		}
		n, ok := packNum[loc.Pack]
		if !ok {
			n = len(stats)
			packNum[loc.Pack] = n
			stats = append(stats, packStat{id: loc.Pack})
		}
		st := &stats[n]
		st.blobs++
		size := uint64(loc.Blob.Length)
		// The used bit is on the blob's first copy (its Ordinal).
		if !keeperFound && p.used.get(firstOrd) {
			keeperFound = true
			kept.set(i)
			st.usedBytes += size
			st.usedBlobs++
			p.rep.UsedBlobs++
			p.rep.UsedBytes += size
			return true
		}
		st.unusedBytes += size
		p.rep.UnusedBytes += size
		return true
	})
	p.rep.Packs = len(stats)
	var garbage, candidates []packStat
	for _, st := range stats {
		p.rep.StoredBytes += st.usedBytes + st.unusedBytes
		if _, ok := marked[st.id]; ok {
			continue // an unindexed marked pack indexed since: the sweep decides
		}
		if _, ok := p.sizes[st.id]; !ok {
			if st.usedBlobs > 0 {
				return fmt.Errorf("%w: pack %s, which holds %d used blobs, is missing from the store", ErrDamagedPack, st.id.Short(), st.usedBlobs)
			}
			garbage = append(garbage, st) // nothing to delete, but drop it from the index
			continue
		}
		switch {
		case st.usedBlobs == 0:
			garbage = append(garbage, st)
		case st.unusedBytes > 0:
			candidates = append(candidates, st)
		}
	}
	// Repack the packs with the largest unused share first, until what
	// stays unused is within MaxUnused of the used bytes.
	slices.SortFunc(candidates, func(a, b packStat) int {
		ra := float64(a.unusedBytes) / float64(a.usedBytes+a.unusedBytes)
		rb := float64(b.unusedBytes) / float64(b.usedBytes+b.unusedBytes)
		switch {
		case ra > rb:
			return -1
		case ra < rb:
			return 1
		}
		return a.id.Compare(b.id)
	})
	unused := uint64(0)
	for _, st := range candidates {
		unused += st.unusedBytes
	}
	limit := uint64(p.opts.MaxUnused * float64(p.rep.UsedBytes))
	var repack []packStat
	var repackBytes int64
	for _, st := range candidates {
		if unused <= limit {
			break
		}
		size := int64(st.usedBytes + st.unusedBytes)
		if p.opts.MaxRepackBytes > 0 && repackBytes+size > p.opts.MaxRepackBytes {
			continue
		}
		repack = append(repack, st)
		repackBytes += size
		unused -= st.unusedBytes
	}
	var unindexed []MarkedPack
	indexed := p.indexedPacks()
	for id, size := range p.sizes {
		if _, ok := marked[id]; ok {
			continue
		}
		if _, ok := slices.BinarySearchFunc(indexed, id, chunk.ID.Compare); !ok {
			unindexed = append(unindexed, MarkedPack{ID: id, Reason: ReasonUnindexed, Size: size})
		}
	}
	slices.SortFunc(unindexed, func(a, b MarkedPack) int { return a.ID.Compare(b.ID) })

	var m Mark
	for _, st := range garbage {
		if size, ok := p.sizes[st.id]; ok {
			m.Packs = append(m.Packs, MarkedPack{ID: st.id, Reason: ReasonGarbage, Size: size})
		}
	}
	for _, st := range repack {
		m.Packs = append(m.Packs, MarkedPack{ID: st.id, Reason: ReasonRepacked, Size: p.sizes[st.id]})
		p.rep.RepackedBytes += st.usedBytes
	}
	m.Packs = append(m.Packs, unindexed...)
	p.rep.GarbagePacks = len(garbage)
	p.rep.RepackedPacks = len(repack)
	p.rep.Unindexed = len(unindexed)
	for _, mp := range m.Packs {
		p.rep.MarkedBytes += uint64(mp.Size)
	}
	if p.opts.DryRun {
		return nil
	}
	if len(garbage) == 0 && len(repack) == 0 && len(unindexed) == 0 {
		return p.removeSuperseded(ctx)
	}

	// Copy the used blobs of the packs to repack; nothing is deleted yet,
	// so a failure here leaves only unindexed packs for the next prune.
	newPacks, err := p.repack(ctx, repack, kept)
	if err != nil {
		return err
	}
	// The new index: the old one without the garbage and repacked packs,
	// with the new packs.
	drop := map[chunk.ID]struct{}{}
	for _, st := range garbage {
		drop[st.id] = struct{}{}
	}
	for _, st := range repack {
		drop[st.id] = struct{}{}
	}
	if len(drop) > 0 || len(newPacks) > 0 {
		if err := p.rewriteIndex(ctx, drop, newPacks); err != nil {
			return err
		}
		p.dropped = map[chunk.ID]bool{}
		for id := range drop {
			p.dropped[id] = true
		}
	}
	// The locks present now, after the index change: any other process
	// either holds one of them, or started after the change and never saw
	// the marked packs in an index.
	if err := p.fresh(); err != nil {
		return err
	}
	locks, err := p.r.ListLocks(ctx)
	if err != nil {
		return err
	}
	others := 0
	timing := p.r.LockTiming()
	own := p.r.HeldLocks()
	for _, l := range locks {
		if slices.Contains(own, l.Name) {
			continue // ours: this process uses no blob from an old index
		}
		m.Locks = append(m.Locks, l.Name)
		if !l.Gone(timing, p.opts.Now(), p.host) {
			others++
		}
	}
	m.Time = p.opts.Now().UTC()
	id, err := saveMark(ctx, p.r, m)
	if err != nil {
		return err
	}
	sm := storedMark{ID: id, Mark: m}
	p.marks = append(p.marks, sm)
	if others > 0 {
		p.rep.MarksWaiting++
		return nil
	}
	// No other process held a lock when the index changed, so none can
	// use the marked packs from an index it loaded earlier; a snapshot
	// written between our listing and the lock listing could still, so
	// the packs are swept now only if the snapshots are still those we
	// walked. Otherwise the next prune sweeps them.
	same, err := p.sameSnapshots(ctx)
	if err != nil || !same {
		p.rep.MarksWaiting++
		return err
	}
	return p.sweep(ctx, []storedMark{sm})
}

func (p *pruner) sameSnapshots(ctx context.Context) (bool, error) {
	ids, err := p.r.ListIDs(ctx, "snapshots/")
	if err != nil {
		return false, err
	}
	have := map[chunk.ID]bool{}
	for _, s := range p.snaps {
		have[s.ID] = true
	}
	for _, id := range ids {
		if !have[id] {
			return false, nil
		}
	}
	return true, nil
}

// repack copies the kept blobs of packs into new packs and returns them.
func (p *pruner) repack(ctx context.Context, packs []packStat, kept bitmap) ([]index.PackBlobs, error) {
	if len(packs) == 0 {
		return nil, nil
	}
	ix := p.r.Index()
	want := map[chunk.ID][]pack.Blob{}
	for _, st := range packs {
		want[st.id] = nil
	}
	ord := 0
	ix.Each(func(loc index.Location) bool {
		if _, ok := want[loc.Pack]; ok && kept.get(ord) {
			want[loc.Pack] = append(want[loc.Pack], loc.Blob)
		}
		ord++
		return true
	})
	var out []index.PackBlobs
	pw := p.r.NewPackWriter(p.opts.PackSize + 1<<20)
	flush := func() error {
		if pw.Count() == 0 {
			return nil
		}
		if err := p.fresh(); err != nil {
			return err
		}
		data, blobs := pw.Finish()
		id, err := p.r.PutPack(ctx, data)
		if err != nil {
			return err
		}
		p.rep.WrittenPacks++
		out = append(out, index.PackBlobs{Pack: id, Blobs: blobs})
		pw = p.r.NewPackWriter(p.opts.PackSize + 1<<20)
		return nil
	}
	for _, st := range packs {
		p.opts.Progress(fmt.Sprintf("repacking %s", st.id.Short()))
		data, err := p.r.ReadPack(ctx, st.id)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrDamagedPack, err)
		}
		for _, b := range want[st.id] {
			end := uint64(b.Offset) + uint64(b.Length)
			if end > uint64(len(data)) {
				return nil, fmt.Errorf("%w: blob %s beyond the end of pack %s", ErrDamagedPack, b.ID.Short(), st.id.Short())
			}
			stored := data[b.Offset:end]
			if _, err := p.r.DecodeBlob(nil, b, stored); err != nil {
				return nil, fmt.Errorf("%w: %s blob %s in pack %s: %w", ErrDamagedPack, b.Type, b.ID.Short(), st.id.Short(), err)
			}
			pw.Add(b.Type, b.ID, stored, b.Compressed, b.RawLength)
			if pw.Size() >= p.opts.PackSize {
				if err := flush(); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// removeSuperseded deletes index files that a loaded file supersedes (a
// prune that crashed after writing the new index left them).
func (p *pruner) removeSuperseded(ctx context.Context) error {
	live := map[chunk.ID]bool{}
	for _, id := range p.r.IndexFiles() {
		live[id] = true
	}
	for _, id := range p.r.ListedIndexFiles() {
		if live[id] {
			continue
		}
		if err := p.fresh(); err != nil {
			return err
		}
		if err := p.r.Delete(ctx, repo.IndexName(id)); err != nil {
			return err
		}
	}
	return nil
}

// maxBlobsPerIndexFile keeps index files around 5 MiB.
const maxBlobsPerIndexFile = 100_000

// rewriteIndex writes the whole index anew without the packs in drop and
// with add, then removes the index files it replaces. Only the last new
// file supersedes the old ones: until it is durable, readers load the old
// files (and the new ones beside them, which only duplicates entries); a
// crash never leaves a pack's entries in no loaded file.
func (p *pruner) rewriteIndex(ctx context.Context, drop map[chunk.ID]struct{}, add []index.PackBlobs) error {
	// Every file this run knows: the loaded ones, superseded ones a crashed
	// prune left, and those this run wrote (resurrections).
	old := append(p.r.ListedIndexFiles(), p.r.IndexFiles()...)
	slices.SortFunc(old, chunk.ID.Compare)
	old = slices.Compact(old)
	write := func(f *index.File) error {
		if err := p.fresh(); err != nil {
			return err
		}
		_, err := p.r.WriteIndex(ctx, f)
		return err
	}
	// The new packs first, in files of their own.
	if len(add) > 0 {
		for _, f := range (&index.File{Packs: add}).Split(maxBlobsPerIndexFile) {
			if err := write(f); err != nil {
				return err
			}
		}
	}
	// Then the loaded index without the dropped packs, streamed file by
	// file (the in-memory index is not copied or changed); each file is
	// written when the next is ready, so the last can carry Supersedes.
	var pending *index.File
	err := p.r.Index().EachFile(maxBlobsPerIndexFile, func(id chunk.ID) bool {
		_, ok := drop[id]
		return ok
	}, func(f *index.File) error {
		if pending != nil {
			if err := write(pending); err != nil {
				return err
			}
		}
		pending = f
		return nil
	})
	if err != nil {
		return err
	}
	pending.Supersedes = old
	if err := write(pending); err != nil {
		return err
	}
	for _, id := range old {
		if err := p.r.Delete(ctx, repo.IndexName(id)); err != nil {
			return err
		}
	}
	return nil
}
