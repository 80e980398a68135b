package prune

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/index"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/store"
)

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
	if p.opts.DryRun {
		p.opts.Progress(fmt.Sprintf("would resurrect %d marked packs that snapshots need", len(revived)))
		for i := range p.marks {
			p.marks[i].Packs = slices.DeleteFunc(slices.Clone(p.marks[i].Packs), func(mp MarkedPack) bool { return revived[mp.ID] })
		}
	} else {
		if err := p.fresh(); err != nil {
			return false, err
		}
		// The index file first: a crash before the marks are rewritten
		// leaves the packs marked and indexed, and the sweep spares
		// packs the index names.
		if _, err := p.r.WriteIndex(ctx, &f); err != nil {
			return false, fmt.Errorf("resurrect marked packs: %w", err)
		}
		if err := p.unmark(ctx, revived); err != nil {
			return false, err
		}
	}
	p.rep.Resurrected += len(revived)
	for _, pb := range f.Packs {
		if err := p.r.Index().AddPack(pb.Pack, pb.Blobs); err != nil {
			return false, err
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
	p.opts.Progress(fmt.Sprintf("deleting the packs of %d marks", len(marks)))
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
