package prune

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
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
	if len(repack) > 0 {
		// Repack's buffers (the pack being written, the read window, the
		// batch of locations: 25 MiB) are garbage now; collected before
		// the index is written, its files reuse their pages instead of
		// growing the heap. The index holds no pointers, so a collection
		// takes milliseconds. On the retention bench's 794,000-blob
		// history, writing the index raised forget --prune's peak RSS
		// from repack's 103 MiB to 110 MiB without it, not at all with it.
		runtime.GC()
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

// repackWindow bounds one read from a pack being repacked: the kept blobs
// are read in runs of at most this many bytes (or one blob, if larger),
// not the whole pack. Reading whole packs held a 16 MiB buffer beside the
// pack being written (17 MiB) on top of the index: on the retention
// bench's history of 80,000 small files (13 snapshots, 300,000 blobs)
// forget --prune peaked at 68-75 MiB during repack, 20 MiB above the
// index walk. At 4 MiB a 16 MiB pack is still read in about four
// requests, which keeps S3's per-request latency out of the way.
var repackWindow int64 = 4 << 20 // a var for tests

// repackBatch bounds how many kept blobs' locations repack holds at once
// (48 bytes each), so that repacking many packs is not a second index:
// on the retention bench's history of 80,000 small files (36 snapshots,
// 780,000 blobs), 20 packs to repack held 15 MiB of them at once. Each
// batch costs one pass over the index (about 50 ms at 1 million blobs).
var repackBatch = 1 << 16

// repack copies the kept blobs of packs into new packs and returns them.
func (p *pruner) repack(ctx context.Context, packs []packStat, kept bitmap) ([]index.PackBlobs, error) {
	if len(packs) == 0 {
		return nil, nil
	}
	var keptBytes int
	for _, st := range packs {
		keptBytes += int(st.usedBytes) + pack.TailSize(st.usedBlobs)
	}
	var out []index.PackBlobs
	// One pack buffer for all new packs, no larger than what is copied:
	// each finished pack's bytes become the next one's buffer once stored
	// (a fresh 17 MiB buffer per pack was garbage until a collection).
	pw := p.r.NewPackWriter(min(p.opts.PackSize+1<<20, keptBytes))
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
		pw.Reuse(data)
		return nil
	}
	// One read buffer and one decode buffer for all packs.
	var data, plain []byte
	for len(packs) > 0 {
		n, blobs := 1, packs[0].usedBlobs
		for n < len(packs) && blobs+packs[n].usedBlobs <= repackBatch {
			blobs += packs[n].usedBlobs
			n++
		}
		batch := packs[:n]
		packs = packs[n:]
		want := p.keptBlobs(batch, kept)
		for _, st := range batch {
			p.opts.Progress(fmt.Sprintf("repacking %s", st.id.Short()))
			// In pack order, read in runs of at most repackWindow bytes.
			blobs := want[st.id]
			slices.SortFunc(blobs, func(a, b pack.Blob) int { return cmp.Compare(a.Offset, b.Offset) })
			size := p.sizes[st.id]
			for i := 0; i < len(blobs); {
				start := int64(blobs[i].Offset)
				end := start + int64(blobs[i].Length)
				j := i + 1
				for ; j < len(blobs); j++ {
					e := int64(blobs[j].Offset) + int64(blobs[j].Length)
					if e-start > repackWindow {
						break
					}
					end = max(end, e)
				}
				if end > size {
					return nil, fmt.Errorf("%w: blobs up to byte %d of pack %s, which has %d", ErrDamagedPack, end, st.id.Short(), size)
				}
				var err error
				if data, err = p.r.ReadPackRange(ctx, st.id, start, int(end-start), data); err != nil {
					return nil, fmt.Errorf("%w: %w", ErrDamagedPack, err)
				}
				for _, b := range blobs[i:j] {
					off := int64(b.Offset) - start
					stored := data[off : off+int64(b.Length)]
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
				i = j
			}
			delete(want, st.id)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// keptBlobs returns the kept blobs of packs, by pack, in one pass over
// the index.
func (p *pruner) keptBlobs(packs []packStat, kept bitmap) map[chunk.ID][]pack.Blob {
	want := make(map[chunk.ID][]pack.Blob, len(packs))
	for _, st := range packs {
		want[st.id] = make([]pack.Blob, 0, st.usedBlobs)
	}
	ord := 0
	p.r.Index().Each(func(loc index.Location) bool {
		if kept.get(ord) {
			if b, ok := want[loc.Pack]; ok {
				want[loc.Pack] = append(b, loc.Blob)
			}
		}
		ord++
		return true
	})
	return want
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

// maxBlobsPerIndexFile keeps the index files prune writes around 1 MiB.
// Writing one holds it twice (the file waiting to be written, so that the
// last can carry Supersedes, and the one being filled) plus its encoding
// and its sealed form: at 100,000 blobs (5 MiB files) that was 20 MiB above
// the index, and the peak of forget --prune on the retention bench's
// history of 80,000 small files (300,000 blobs: 63-68 MiB against 49
// during the walk). A repository of 2 million blobs gets 80 files, which
// LoadIndex reads 8 at a time.
const maxBlobsPerIndexFile = 25_000

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
