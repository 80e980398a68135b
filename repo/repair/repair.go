// Package repair mends a repository after damage: it rebuilds the index
// from the packs' own headers, writes new snapshots without what was lost,
// and removes the temporary files killed processes left behind. Run it
// under an exclusive lock; every step writes what replaces before it
// removes what is replaced, so a crash at any point leaves a repository
// that opens and restores at least as much as before.
package repair

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/index"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/store"
	"golang.org/x/sync/errgroup"
)

// maxBlobsPerIndexFile keeps index files around 5 MiB, as prune does.
const maxBlobsPerIndexFile = 100_000

// IndexReport is what Index did.
type IndexReport struct {
	Packs      int               `json:"packs"`       // packs whose headers were indexed
	Blobs      int               `json:"blobs"`       // blobs in the new index
	Written    []chunk.ID        `json:"written"`     // new index files
	Removed    []chunk.ID        `json:"removed"`     // old index files deleted
	BadPacks   map[string]string `json:"bad_packs"`   // pack → why its header could not be read
	StrayNames []string          `json:"stray_names"` // objects under data/ that are not packs
}

// Index rebuilds the index from every pack's header: the new index files
// are written first (the last one supersedes every old file, so a crash
// before the old files are removed leaves them ignored, not loaded twice),
// then the old index files are removed. A pack whose header cannot be read
// is left out and reported; its blobs are lost (repair snapshots then
// drops what needed them). r's in-memory index is not used or changed.
func Index(ctx context.Context, r *repo.Repository) (*IndexReport, error) {
	rep := &IndexReport{BadPacks: map[string]string{}}
	sizes := map[chunk.ID]int64{}
	err := r.Store().List(ctx, "data/", func(fi store.Info) error {
		id, err := chunk.ParseID(path.Base(fi.Name))
		if err != nil || repo.PackName(id) != fi.Name {
			rep.StrayNames = append(rep.StrayNames, fi.Name)
			return nil
		}
		sizes[id] = fi.Size
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("repair index: list packs: %w", err)
	}
	old, err := r.ListIDs(ctx, "index/")
	if err != nil {
		return nil, fmt.Errorf("repair index: %w", err)
	}
	ids := make([]chunk.ID, 0, len(sizes))
	for id := range sizes {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, chunk.ID.Compare)

	var mu sync.Mutex
	packs := make([]index.PackBlobs, 0, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, id := range ids {
		g.Go(func() error {
			blobs, err := r.LoadPackHeader(gctx, id, sizes[id])
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if gctx.Err() != nil || !isCorrupt(err) {
					return err
				}
				rep.BadPacks[id.String()] = err.Error()
				return nil
			}
			packs = append(packs, index.PackBlobs{Pack: id, Blobs: blobs})
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("repair index: %w", err)
	}
	slices.SortFunc(packs, func(a, b index.PackBlobs) int { return a.Pack.Compare(b.Pack) })
	for _, p := range packs {
		rep.Blobs += len(p.Blobs)
	}
	rep.Packs = len(packs)

	files := (&index.File{Packs: packs}).Split(maxBlobsPerIndexFile)
	// Split puts Supersedes on the first file; it belongs on the last, so
	// that until every new file is durable the old ones still load.
	files[0].Supersedes = nil
	files[len(files)-1].Supersedes = old
	for _, f := range files {
		id, err := r.WriteIndex(ctx, f)
		if err != nil {
			return rep, fmt.Errorf("repair index: %w", err)
		}
		rep.Written = append(rep.Written, id)
	}
	for _, id := range old {
		if slices.Contains(rep.Written, id) {
			continue // an identical file was rewritten under the same name
		}
		if err := r.Delete(ctx, repo.IndexName(id)); err != nil {
			return rep, fmt.Errorf("repair index: %w", err)
		}
		rep.Removed = append(rep.Removed, id)
	}
	return rep, nil
}

// isCorrupt tells a pack whose bytes are wrong from a store that failed.
func isCorrupt(err error) bool {
	return errors.Is(err, pack.ErrCorrupt) || errors.Is(err, repo.ErrCorruptObject) || errors.Is(err, store.ErrNotFound)
}

// TempReport is what Temp removed.
type TempReport struct {
	Files []store.TempFile `json:"files"`
	Bytes int64            `json:"bytes"`
}

// Temp removes the temporary files killed processes left in the store
// (older than minAge; under an exclusive lock no one else is writing, and
// 0 removes all).
func Temp(ctx context.Context, r *repo.Repository, minAge time.Duration) (*TempReport, error) {
	files, err := r.OrphanedTempFiles(ctx, minAge)
	if err != nil {
		return nil, fmt.Errorf("repair: %w", err)
	}
	rep := &TempReport{}
	for _, f := range files {
		if err := r.RemoveTempFile(ctx, f.Name); err != nil {
			return rep, fmt.Errorf("repair: %w", err)
		}
		rep.Files = append(rep.Files, f)
		rep.Bytes += f.Size
	}
	return rep, nil
}

// RepairedTag marks the snapshots Snapshots writes.
const RepairedTag = "repaired"

// SnapshotRepair is one snapshot Snapshots rewrote.
type SnapshotRepair struct {
	Original chunk.ID `json:"original"`
	New      chunk.ID `json:"new"`
	Lost     []string `json:"lost"` // component/path of each file or directory left out
}

// SnapshotsReport is what Snapshots did.
type SnapshotsReport struct {
	Checked   int              `json:"checked"`
	Repaired  []SnapshotRepair `json:"repaired"`
	Forgotten []chunk.ID       `json:"forgotten,omitempty"`
}

// Snapshots writes, for every snapshot that needs a blob the index does not
// have or a tree that does not load, a new snapshot without what is lost:
// files whose data is missing and directories whose listing is unreadable
// are left out, and the new manifest says so (tag "repaired", field
// Repaired with the original's ID and the count). The originals are kept
// unless forget is set; then each is removed once its replacement is
// written. Run repair index first if index files were damaged: Snapshots
// trusts the loaded index.
func Snapshots(ctx context.Context, r *repo.Repository, forget bool) (*SnapshotsReport, error) {
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return nil, fmt.Errorf("repair snapshots: %w", err)
	}
	if err := r.LoadIndex(ctx); err != nil {
		return nil, fmt.Errorf("repair snapshots: %w", err)
	}
	// A blob is there if the index has it and its pack exists.
	packs := map[chunk.ID]bool{}
	err = r.Store().List(ctx, "data/", func(fi store.Info) error {
		if id, err := chunk.ParseID(path.Base(fi.Name)); err == nil {
			packs[id] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("repair snapshots: list packs: %w", err)
	}
	rep := &SnapshotsReport{Checked: len(snaps)}
	// A snapshot repaired by an earlier run keeps its original (unless
	// forgotten); it is not repaired a second time.
	done := map[chunk.ID]bool{}
	for _, sn := range snaps {
		if sn.Repaired != nil {
			done[sn.Repaired.From] = true
		}
	}
	for _, sn := range snaps {
		if done[sn.ID] {
			continue
		}
		var fixed *snapshot.Snapshot
		var lost []string
		_, err := r.WithSaver(ctx, repo.SaverOptions{}, func(ctx context.Context, s *repo.Saver) error {
			var err error
			fixed, lost, err = rewrite(ctx, r, s, sn, packs)
			return err
		})
		if err != nil {
			return rep, fmt.Errorf("repair snapshot %s: %w", sn.ID.Short(), err)
		}
		if len(lost) == 0 {
			continue
		}
		id, err := r.SaveSnapshot(ctx, fixed)
		if err != nil {
			return rep, fmt.Errorf("repair snapshot %s: %w", sn.ID.Short(), err)
		}
		rep.Repaired = append(rep.Repaired, SnapshotRepair{Original: sn.ID, New: id, Lost: lost})
		if forget {
			if err := r.Delete(ctx, "snapshots/"+sn.ID.String()); err != nil {
				return rep, fmt.Errorf("repair snapshot %s: %w", sn.ID.Short(), err)
			}
			rep.Forgotten = append(rep.Forgotten, sn.ID)
		}
	}
	return rep, nil
}

// rewrite returns sn without what is lost, and the paths it left out; nil
// lost means sn is whole.
func rewrite(ctx context.Context, r *repo.Repository, s *repo.Saver, entry repo.SnapshotEntry, packs map[chunk.ID]bool) (*snapshot.Snapshot, []string, error) {
	sn := entry.Snapshot
	out := *sn
	out.Components = slices.Clone(sn.Components)
	var lost []string
	for i := range out.Components {
		c := &out.Components[i]
		w := &rewriter{r: r, s: s, packs: packs, fixed: map[chunk.ID]chunk.ID{}, unreadable: map[chunk.ID]bool{}}
		root, ok, err := w.tree(ctx, c.Name, c.Tree)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			// The root listing itself is lost: the component keeps an
			// empty tree so the manifest stays well-formed.
			root, err = w.save(ctx, &snapshot.Tree{})
			if err != nil {
				return nil, nil, err
			}
			w.lost = append(w.lost, c.Name+"/")
		}
		c.Tree = root
		c.Errors += uint64(len(w.lost))
		lost = append(lost, w.lost...)
	}
	if len(lost) == 0 {
		return sn, nil, nil
	}
	out.Tags = append(slices.Clone(sn.Tags), RepairedTag)
	from := entry.ID
	if sn.Repaired != nil {
		from = sn.Repaired.From // through repeated repairs, the first
	}
	out.Repaired = &snapshot.Repaired{From: from, Time: time.Now().UTC().Truncate(time.Second), Lost: uint64(len(lost))}
	return &out, lost, nil
}

type rewriter struct {
	r     *repo.Repository
	s     *repo.Saver
	packs map[chunk.ID]bool
	added atomic.Uint64
	lost  []string
	// fixed maps a tree to its repaired tree (itself when whole);
	// unreadable holds the trees that cannot be loaded. The walker visits
	// a shared subtree once; its parents look it up here.
	fixed      map[chunk.ID]chunk.ID
	unreadable map[chunk.ID]bool
}

// tree returns the repaired form of the tree id at path p; ok is false when
// the tree itself cannot be loaded. It walks with the shared tree walker:
// each tree's repaired form is made in Leave, after its subtrees'.
func (w *rewriter) tree(ctx context.Context, p string, id chunk.ID) (chunk.ID, bool, error) {
	walker := w.r.NewWalker(repo.WalkOptions{})
	err := walker.Walk(ctx, p, id, repo.Visitor{
		Tree: func(_ string, id chunk.ID, _ *snapshot.Tree, err error) error {
			if err != nil {
				w.unreadable[id] = true
			}
			return nil // an unreadable tree is what repair leaves out
		},
		Leave: func(p string, _ *snapshot.Node, id chunk.ID, t *snapshot.Tree) error {
			if t == nil {
				return nil
			}
			changed := false
			nodes := make([]snapshot.Node, 0, len(t.Nodes))
			for _, n := range t.Nodes {
				np := p + "/" + n.Name
				switch n.Type {
				case snapshot.Dir:
					if n.Subtree == nil {
						break
					}
					if w.unreadable[*n.Subtree] {
						w.lost = append(w.lost, np+"/")
						changed = true
						continue
					}
					if sub := w.fixed[*n.Subtree]; sub != *n.Subtree {
						n.Subtree = &sub
						changed = true
					}
				case snapshot.File:
					if !w.have(n.Content) {
						w.lost = append(w.lost, np)
						changed = true
						continue
					}
				}
				nodes = append(nodes, n)
			}
			if !changed {
				w.fixed[id] = id
				return nil
			}
			fixed, err := w.save(ctx, &snapshot.Tree{Nodes: nodes})
			if err != nil {
				return err
			}
			w.fixed[id] = fixed
			return nil
		},
	})
	if err != nil {
		return id, false, err
	}
	if w.unreadable[id] {
		return id, false, nil
	}
	return w.fixed[id], true, nil
}

func (w *rewriter) have(content []chunk.ID) bool {
	for _, id := range content {
		loc, ok := w.r.Index().Lookup(pack.DataBlob, id)
		if !ok || !w.packs[loc.Pack] {
			return false
		}
	}
	return true
}

func (w *rewriter) save(ctx context.Context, t *snapshot.Tree) (chunk.ID, error) {
	buf, err := repo.EncodeTree(t)
	if err != nil {
		return chunk.ID{}, err
	}
	id := w.r.Hasher().Sum(buf)
	_, err = w.s.SaveIfNew(ctx, pack.TreeBlob, id, buf, &w.added)
	return id, err
}
