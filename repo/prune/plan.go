package prune

import (
	"context"
	"fmt"
	"slices"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/index"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/repo"
)

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
	p.opts.Progress("deciding what to delete and repack")
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
	// One read buffer and one decode buffer for all packs: the pack writer
	// copies what it adds, and a fresh buffer per pack was garbage the size
	// of a pack (with GOGC=25 it raised the peak: the forget+prune bench row
	// allocated 160 MiB reading packs).
	var data, plain []byte
	for _, st := range packs {
		p.opts.Progress(fmt.Sprintf("repacking %s", st.id.Short()))
		var err error
		data, err = p.r.ReadPackSize(ctx, st.id, p.sizes[st.id], data)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrDamagedPack, err)
		}
		for _, b := range want[st.id] {
			end := uint64(b.Offset) + uint64(b.Length)
			if end > uint64(len(data)) {
				return nil, fmt.Errorf("%w: blob %s beyond the end of pack %s", ErrDamagedPack, b.ID.Short(), st.id.Short())
			}
			stored := data[b.Offset:end]
			if plain, err = p.r.DecodeBlob(plain, b, stored); err != nil {
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
	p.opts.Progress("writing the new index")
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
