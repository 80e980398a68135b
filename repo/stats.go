package repo

import (
	"context"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/pack"
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
}

// Stats computes Stats for the given snapshots.
func (r *Repository) Stats(ctx context.Context, snaps []SnapshotEntry) (*Stats, error) {
	if err := r.LoadIndex(ctx); err != nil {
		return nil, err
	}
	st := &Stats{Snapshots: len(snaps)}
	seen := map[blobKey]bool{}
	add := func(t pack.BlobType, id chunk.ID) {
		k := blobKey{t, id}
		if seen[k] {
			return
		}
		seen[k] = true
		if loc, ok := r.idx.Lookup(t, id); ok {
			st.UniqueBlobs++
			st.UniqueRawBytes += uint64(loc.Blob.RawLength)
			st.StoredBytes += uint64(loc.Blob.Length)
		}
	}
	// Logical sizes of a tree are computed once and reused, since
	// successive snapshots share most subtrees.
	sizes := map[chunk.ID][2]uint64{}
	var walk func(id chunk.ID) ([2]uint64, error)
	walk = func(id chunk.ID) ([2]uint64, error) {
		if s, ok := sizes[id]; ok {
			return s, nil
		}
		add(pack.TreeBlob, id)
		t, err := r.LoadTree(ctx, id)
		if err != nil {
			return [2]uint64{}, err
		}
		var s [2]uint64
		for _, n := range t.Nodes {
			switch n.Type {
			case snapshot.File:
				s[0] += n.Size
				s[1]++
				for _, b := range n.Content {
					add(pack.DataBlob, b)
				}
			case snapshot.Dir:
				sub, err := walk(*n.Subtree)
				if err != nil {
					return s, err
				}
				s[0] += sub[0]
				s[1] += sub[1]
			}
		}
		sizes[id] = s
		return s, nil
	}
	for _, sn := range snaps {
		for _, c := range sn.Components {
			s, err := walk(c.Tree)
			if err != nil {
				return nil, err
			}
			st.LogicalBytes += s[0]
			st.Files += s[1]
		}
	}
	if st.UniqueRawBytes > 0 {
		st.DedupRatio = float64(st.LogicalBytes) / float64(st.UniqueRawBytes)
	}
	if st.StoredBytes > 0 {
		st.CompressionRatio = float64(st.UniqueRawBytes) / float64(st.StoredBytes)
	}
	err := r.st.List(ctx, "data/", func(fi store.Info) error {
		st.RepositoryBytes += uint64(fi.Size)
		return nil
	})
	return st, err
}
