// Package stats sums up what a set of snapshots holds and what it costs:
// logical size, unique blobs, stored size, dedup and compression ratios.
package stats

import (
	"context"
	"fmt"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/store"
)

// Stats sums up what a set of snapshots holds and what it costs.
type Stats struct {
	Snapshots int `json:"snapshots"`
	// LogicalBytes is the size of every file of every snapshot, counted
	// each time it appears: what restoring them all would write.
	LogicalBytes uint64 `json:"logical_bytes"`
	Files        uint64 `json:"files"`
	// UniqueBlobs / UniqueRawBytes: distinct blobs they reference and their
	// plaintext size; StoredBytes: the same blobs as stored (compressed,
	// encrypted).
	UniqueBlobs    uint64 `json:"unique_blobs"`
	UniqueRawBytes uint64 `json:"unique_raw_bytes"`
	StoredBytes    uint64 `json:"stored_bytes"`
	// DedupRatio = LogicalBytes / UniqueRawBytes; CompressionRatio =
	// UniqueRawBytes / StoredBytes.
	DedupRatio       float64 `json:"dedup_ratio"`
	CompressionRatio float64 `json:"compression_ratio"`
	// RepositoryBytes is the size of all packs in the store, including
	// blobs of other snapshots and garbage.
	RepositoryBytes uint64 `json:"repository_bytes"`
	// Components breaks the figures down by component name: a compressed
	// database dump shows here as a dedup ratio near 1.
	Components []ComponentStats `json:"components"`
}

// ComponentStats are Stats for one component name across the snapshots.
type ComponentStats struct {
	Name             string  `json:"name"`
	LogicalBytes     uint64  `json:"logical_bytes"`
	UniqueRawBytes   uint64  `json:"unique_raw_bytes"`
	StoredBytes      uint64  `json:"stored_bytes"`
	DedupRatio       float64 `json:"dedup_ratio"`
	CompressionRatio float64 `json:"compression_ratio"`
}

// Compute computes Stats for the given snapshots.
func Compute(ctx context.Context, r *repo.Repository, snaps []repo.SnapshotEntry) (*Stats, error) {
	if err := r.LoadIndex(ctx); err != nil {
		return nil, err
	}
	st := &Stats{Snapshots: len(snaps)}
	all := newStatsWalker(ctx, r)
	byName := map[string]*statsWalker{}
	var names []string
	for _, sn := range snaps {
		for _, c := range sn.Components {
			w := byName[c.Name]
			if w == nil {
				w = newStatsWalker(ctx, r)
				byName[c.Name] = w
				names = append(names, c.Name)
			}
			s, err := all.walk(c.Tree)
			if err != nil {
				return nil, err
			}
			st.LogicalBytes += s[0]
			st.Files += s[1]
			if _, err := w.walk(c.Tree); err != nil {
				return nil, err
			}
			w.logical += s[0]
		}
	}
	st.UniqueBlobs, st.UniqueRawBytes, st.StoredBytes = all.blobs, all.raw, all.stored
	st.DedupRatio, st.CompressionRatio = ratio(st.LogicalBytes, st.UniqueRawBytes), ratio(st.UniqueRawBytes, st.StoredBytes)
	for _, name := range names {
		w := byName[name]
		st.Components = append(st.Components, ComponentStats{
			Name: name, LogicalBytes: w.logical, UniqueRawBytes: w.raw, StoredBytes: w.stored,
			DedupRatio: ratio(w.logical, w.raw), CompressionRatio: ratio(w.raw, w.stored),
		})
	}
	var err error
	st.RepositoryBytes, err = PackBytes(ctx, r.Store())
	return st, err
}

// PackBytes is the size of all packs in the store, from its listing
// alone (no pack is read): nearly all of a repository's bytes, the index
// and snapshot files being a small fraction.
func PackBytes(ctx context.Context, s store.Store) (uint64, error) {
	var n uint64
	err := s.List(ctx, "data/", func(fi store.Info) error {
		n += uint64(fi.Size)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("list packs: %w", err)
	}
	return n, nil
}

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

type blobKey struct {
	t  pack.BlobType
	id chunk.ID
}

// statsWalker sums the unique blobs below the trees it is given. Logical
// sizes of a tree are computed once and reused, since successive snapshots
// share most subtrees.
type statsWalker struct {
	ctx                context.Context
	r                  *repo.Repository
	w                  *repo.Walker // visits each tree once across walks
	seen               map[blobKey]bool
	sizes              map[chunk.ID][2]uint64 // tree → logical bytes, files
	blobs, raw, stored uint64
	logical            uint64
}

func newStatsWalker(ctx context.Context, r *repo.Repository) *statsWalker {
	return &statsWalker{ctx: ctx, r: r, w: r.NewWalker(repo.WalkOptions{}), seen: map[blobKey]bool{}, sizes: map[chunk.ID][2]uint64{}}
}

func (w *statsWalker) add(t pack.BlobType, id chunk.ID) {
	k := blobKey{t, id}
	if w.seen[k] {
		return
	}
	w.seen[k] = true
	if loc, ok := w.r.Index().Lookup(t, id); ok {
		w.blobs++
		w.raw += uint64(loc.Blob.RawLength)
		w.stored += uint64(loc.Blob.Length)
	}
}

// walk returns the logical bytes and files below the tree id.
func (w *statsWalker) walk(id chunk.ID) ([2]uint64, error) {
	err := w.w.Walk(w.ctx, "", id, repo.Visitor{
		Tree: func(_ string, id chunk.ID, t *snapshot.Tree, err error) error {
			w.add(pack.TreeBlob, id)
			return err
		},
		Leave: func(_ string, _ *snapshot.Node, id chunk.ID, t *snapshot.Tree) error {
			var s [2]uint64
			for _, n := range t.Nodes {
				switch n.Type {
				case snapshot.File:
					s[0] += n.Size
					s[1]++
					for _, b := range n.Content {
						w.add(pack.DataBlob, b)
					}
				case snapshot.Dir:
					if n.Subtree != nil {
						sub := w.sizes[*n.Subtree]
						s[0] += sub[0]
						s[1] += sub[1]
					}
				}
			}
			w.sizes[id] = s
			return nil
		},
	})
	return w.sizes[id], err
}
