package repo

import (
	"cmp"
	"context"
	"path"
	"slices"
	"sync"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/snapshot"
	"golang.org/x/sync/errgroup"
)

// TreePrefetch holds tree blobs read ahead of a walk, a pack at a time, so
// that the walk (WalkOptions.Load = Load) does not pay one small Get per
// directory: on an object store each Get costs a round trip (1.6-3.4 ms
// on MinIO over loopback, see MaxReadGap), and a 15k-file tree has about
// 2k directories.
//
// Memory: at most prefetchTreeBytes of tree plaintext; trees beyond that
// are not prefetched, and Load reads them one by one as before. A tree's
// bytes are dropped once the walk has taken it at every path it was
// prefetched for.
//
// Load is safe for concurrent use.
type TreePrefetch struct {
	r  *Repository
	mu sync.Mutex
	// trees is guarded by mu: plaintext and the loads still expected.
	trees map[chunk.ID]*prefetched
	bytes int64 // guarded by mu: plaintext held in trees
}

type prefetched struct {
	plain []byte
	uses  int
}

// prefetchTreeBytes bounds the plaintext a TreePrefetch holds. A tree
// node takes about 100-200 bytes, so 32 MiB covers trees of some 200k
// entries; the walk holds the decoded trees of the files it restores
// anyway, which take more.
const prefetchTreeBytes = 32 << 20

// prefetchPaths bounds the paths a prefetch queues (about 100 bytes
// each). A tree can name the same subtree many times, so paths can grow
// much faster than the trees the store holds; past the bound the walk
// loads the rest itself. A 15k-file tree has about 2k directories.
const prefetchPaths = 1 << 18

// prefetchPacks is how many packs a prefetch reads at once.
const prefetchPacks = 8

// treeAt is a tree to prefetch and the path the walk finds it at.
type treeAt struct {
	path string
	id   chunk.ID
}

// PrefetchTrees reads the trees below root (found at path p) level by
// level: each level's tree blobs are grouped by the pack that holds them
// and each pack's are read with ReadBlobs (one ranged Get unless more than
// MaxReadGap lies between two of them), several packs at once. A
// directory whose path descend refuses is not read, nor anything below
// it. So a walk costs about one Get per pack per level instead of one per
// directory: the trees of one backup are written together into a few
// packs.
//
// A tree that is missing, does not read or does not decode is left out:
// Load then reads it as LoadTree does and returns the same error, so the
// walk fails exactly that subtree, as without a prefetch. PrefetchTrees
// returns an error only when ctx ends.
func (r *Repository) PrefetchTrees(ctx context.Context, p string, root chunk.ID, descend func(path string) bool) (*TreePrefetch, error) {
	tp := &TreePrefetch{r: r, trees: map[chunk.ID]*prefetched{}}
	level := []treeAt{{p, root}}
	queued := 1
	for len(level) > 0 {
		next, err := tp.readLevel(ctx, level, descend, prefetchPaths-queued)
		if err != nil {
			return nil, err
		}
		level, queued = next, queued+len(next)
	}
	return tp, nil
}

// readLevel prefetches the trees of one level and returns the next.
// It queues at most room paths.
func (tp *TreePrefetch) readLevel(ctx context.Context, level []treeAt, descend func(string) bool, room int) ([]treeAt, error) {
	paths := map[chunk.ID][]string{}
	for _, t := range level {
		paths[t.id] = append(paths[t.id], t.path)
	}
	var (
		mu   sync.Mutex // guards next
		next []treeAt
	)
	// expand queues the subdirectories of tree id, at each of its paths.
	expand := func(id chunk.ID, t *snapshot.Tree) {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range paths[id] {
			for i := range t.Nodes {
				n := &t.Nodes[i]
				if n.Type != snapshot.Dir || n.Subtree == nil {
					continue
				}
				if len(next) >= room {
					return
				}
				if cp := path.Join(p, n.Name); descend == nil || descend(cp) {
					next = append(next, treeAt{cp, *n.Subtree})
				}
			}
		}
	}
	byPack := map[chunk.ID][]pack.Blob{}
	for id, ps := range paths {
		tp.mu.Lock()
		have := tp.trees[id]
		if have != nil {
			have.uses += len(ps) // also at an earlier level
		}
		tp.mu.Unlock()
		if have != nil {
			if t, err := snapshot.DecodeTree(have.plain); err == nil {
				expand(id, t)
			}
			continue
		}
		if locs := tp.r.idx.LookupAll(pack.TreeBlob, id); len(locs) > 0 {
			byPack[locs[0].Pack] = append(byPack[locs[0].Pack], locs[0].Blob)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(prefetchPacks)
	for pk, blobs := range byPack {
		slices.SortFunc(blobs, func(a, b pack.Blob) int { return cmp.Compare(a.Offset, b.Offset) })
		g.Go(func() error {
			return tp.r.ReadBlobs(gctx, pk, blobs, MaxReadGap, func(i int, plain []byte, err error) error {
				if err != nil {
					return nil // Load reads it again and reports it
				}
				t, err := snapshot.DecodeTree(plain)
				if err != nil {
					return nil
				}
				id := blobs[i].ID
				tp.mu.Lock()
				full := tp.bytes+int64(len(plain)) > prefetchTreeBytes
				if !full {
					tp.trees[id] = &prefetched{plain: slices.Clone(plain), uses: len(paths[id])}
					tp.bytes += int64(len(plain))
				}
				tp.mu.Unlock()
				if !full {
					expand(id, t)
				}
				return nil
			})
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return next, nil
}

// Load returns tree id from the prefetch, or reads it with LoadTree when
// the prefetch does not hold it.
func (tp *TreePrefetch) Load(ctx context.Context, id chunk.ID) (*snapshot.Tree, error) {
	tp.mu.Lock()
	e := tp.trees[id]
	if e != nil {
		if e.uses--; e.uses <= 0 {
			delete(tp.trees, id)
			tp.bytes -= int64(len(e.plain))
		}
	}
	tp.mu.Unlock()
	if e == nil {
		return tp.r.LoadTree(ctx, id)
	}
	return DecodeTree(id, e.plain, nil)
}
