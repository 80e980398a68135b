package repo

import (
	"cmp"
	"context"
	"fmt"
	"path"
	"slices"
	"sync"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/index"
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
// Memory: at most prefetchTreeBytes of tree blobs as stored, compressed
// (including trees of the packs read that the walk turns out not to
// need, dropped when the prefetch ends); trees beyond that are not
// prefetched, and Load reads them one by one as before. Load decodes a
// tree (decrypts, decompresses, checks, decodes) when the walk takes it,
// and a tree's bytes are dropped once the walk has taken it at every
// path it was prefetched for.
//
// Load is safe for concurrent use.
type TreePrefetch struct {
	r  *Repository
	mu sync.Mutex
	// trees is guarded by mu: stored blobs and the loads still expected.
	trees map[chunk.ID]*prefetched
	// spare (guarded by mu) holds trees read with a pack's others that no
	// level has asked for yet; dropped when the prefetch ends.
	spare map[chunk.ID]*prefetched
	bytes int64 // guarded by mu: stored bytes held in trees and spare
	// swept holds the packs whose tree blobs have been read (only the
	// goroutine running PrefetchTrees uses it).
	swept map[chunk.ID]bool
	// rounds counts the rounds of pack reads, for tests.
	rounds int
}

// prefetched is a tree blob as stored (compressed and sealed), decoded
// by Load.
type prefetched struct {
	stored []byte
	blob   pack.Blob
	uses   int
}

// decode decrypts, checks and decodes e's tree; buf is reused for the
// plaintext and returned.
func (e *prefetched) decode(r *Repository, buf []byte) (*snapshot.Tree, []byte, error) {
	plain, err := r.DecodeBlob(buf, e.blob, e.stored)
	if err != nil {
		return nil, buf, err
	}
	t, err := snapshot.DecodeTree(plain)
	return t, plain[:0], err
}

// prefetchTreeBytes bounds the stored tree blobs a TreePrefetch holds.
// Held as stored, trees take about a quarter of their plaintext: the
// 2,041 trees of the bench's 200,000 small files took 12.3 MiB against
// about 47 MiB, where 32 MiB of plaintext (the bound before) held only
// part of them and was most of a restore's heap besides the index. Decoding a tree twice (to find
// its subtrees here, then for the walk) costs a decompression, little
// beside the JSON decoding both need. 16 MiB holds the trees of about
// 260,000 files.
const prefetchTreeBytes = 16 << 20

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

// PrefetchTrees reads the trees below root (found at path p). It
// expands, level after level, every tree that a pack read so far holds;
// the packs that hold the trees it finds missing are then read together,
// for all their tree blobs (ReadBlobs: one ranged Get unless more than
// MaxReadGap lies between two of them), several packs at once, and the
// expansion goes on from the trees they bring. The trees of one backup
// are written together into a few packs, so most trees are found
// already read, and the rounds of Gets are as many as the hops from one
// pack to the next along the tree, not as many as its levels. A
// directory whose path descend refuses is not followed. So a walk costs
// about one Get per cluster of trees in a pack instead of one per
// directory. Measured on the bench's tree (89 directories, 7 levels,
// trees in 5 data packs): 21 tree Gets; 43 reading only each level's
// trees; 89 before.
//
// A tree that is missing, does not read or does not decode is left out:
// Load then reads it as LoadTree does and returns the same error, so the
// walk fails exactly that subtree, as without a prefetch. PrefetchTrees
// returns an error only when ctx ends.
func (r *Repository) PrefetchTrees(ctx context.Context, p string, root chunk.ID, descend func(path string) bool) (*TreePrefetch, error) {
	tp := &TreePrefetch{r: r, trees: map[chunk.ID]*prefetched{}, spare: map[chunk.ID]*prefetched{}, swept: map[chunk.ID]bool{}}
	level := []treeAt{{p, root}}
	queued := 1
	// missing collects the trees of the levels expanded so far that no
	// pack read yet holds. They are read together, once every tree held
	// has been expanded: a round of reads per hop from one pack to the
	// next along the tree, not per level (TestPrefetchReadsPacksPerHop:
	// two rounds where level by level took three). A snapshot of one
	// backup has few hops: on the bench's tree restored from MinIO the
	// prefetch took as long either way (82-274 ms before, 96-135 after);
	// the rounds saved are those of a snapshot whose trees lie in the
	// packs of many backups.
	var missing []treeAt
	for len(level) > 0 || len(missing) > 0 {
		if len(level) == 0 {
			next, err := tp.readMissing(ctx, missing, descend, prefetchPaths-queued)
			if err != nil {
				return nil, err
			}
			tp.rounds++
			level, missing, queued = next, nil, queued+len(next)
			continue
		}
		next, miss := tp.expandHeld(level, descend, prefetchPaths-queued)
		level, missing, queued = next, append(missing, miss...), queued+len(next)
	}
	for _, e := range tp.spare {
		tp.bytes -= int64(len(e.stored))
	}
	tp.spare, tp.swept = nil, nil // other snapshots' trees
	return tp, nil
}

// byTree groups the paths of a level by the tree found at them.
func byTree(level []treeAt) map[chunk.ID][]string {
	paths := map[chunk.ID][]string{}
	for _, t := range level {
		paths[t.id] = append(paths[t.id], t.path)
	}
	return paths
}

// expander queues the subdirectories of expanded trees, at most room.
type expander struct {
	paths   map[chunk.ID][]string
	descend func(string) bool
	room    int
	mu      sync.Mutex // guards next
	next    []treeAt
}

// expand queues the subdirectories of tree id, at each of its paths.
func (x *expander) expand(id chunk.ID, t *snapshot.Tree) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, p := range x.paths[id] {
		for i := range t.Nodes {
			n := &t.Nodes[i]
			if n.Type != snapshot.Dir || n.Subtree == nil {
				continue
			}
			if len(x.next) >= x.room {
				return
			}
			if cp := path.Join(p, n.Name); x.descend == nil || x.descend(cp) {
				x.next = append(x.next, treeAt{cp, *n.Subtree})
			}
		}
	}
}

// expandHeld expands the trees of level that earlier reads hold and
// returns their subdirectories (at most room) and the trees of level not
// held, to be read.
func (tp *TreePrefetch) expandHeld(level []treeAt, descend func(string) bool, room int) (next, missing []treeAt) {
	x := &expander{paths: byTree(level), descend: descend, room: room}
	var scratch []byte // plaintext of the tree being expanded
	for id, ps := range x.paths {
		tp.mu.Lock()
		have := tp.trees[id]
		if have != nil {
			have.uses += len(ps) // also at an earlier level
		} else if have = tp.spare[id]; have != nil {
			delete(tp.spare, id) // read with an earlier level's pack
			have.uses = len(ps)
			tp.trees[id] = have
		}
		tp.mu.Unlock()
		if have == nil {
			for _, p := range ps {
				missing = append(missing, treeAt{p, id})
			}
			continue
		}
		var t *snapshot.Tree
		var err error
		if t, scratch, err = have.decode(tp.r, scratch); err == nil {
			x.expand(id, t)
		}
	}
	return x.next, missing
}

// readMissing reads the packs that hold the trees missing and have not
// been read yet, every tree blob of each (the deeper levels' trees were
// written beside them: one Each over the index per round finds them),
// several packs at once. It returns the subdirectories (at most room) of
// the missing trees read.
func (tp *TreePrefetch) readMissing(ctx context.Context, missing []treeAt, descend func(string) bool, room int) ([]treeAt, error) {
	x := &expander{paths: byTree(missing), descend: descend, room: room}
	newPacks := map[chunk.ID]bool{}
	for id := range x.paths {
		// A tree of a pack read before did not read or decode there; the
		// walk reads it again and reports it.
		if loc, ok := tp.r.idx.Lookup(pack.TreeBlob, id); ok && !tp.swept[loc.Pack] {
			newPacks[loc.Pack] = true
		}
	}
	byPack := map[chunk.ID][]pack.Blob{}
	if len(newPacks) > 0 {
		tp.r.idx.Each(func(loc index.Location) bool {
			if loc.Blob.Type == pack.TreeBlob && newPacks[loc.Pack] {
				byPack[loc.Pack] = append(byPack[loc.Pack], loc.Blob)
			}
			return true
		})
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(prefetchPacks)
	for pk, blobs := range byPack {
		tp.swept[pk] = true
		slices.SortFunc(blobs, func(a, b pack.Blob) int { return cmp.Compare(a.Offset, b.Offset) })
		g.Go(func() error {
			var scratch []byte
			return tp.r.readStoredBlobs(gctx, pk, blobs, MaxReadGap, func(i int, stored []byte, err error) error {
				if err != nil {
					return nil // Load reads it again and reports it
				}
				e := &prefetched{stored: stored, blob: blobs[i]}
				var t *snapshot.Tree
				if t, scratch, err = e.decode(tp.r, scratch); err != nil {
					return nil
				}
				id := blobs[i].ID
				ps, needed := x.paths[id]
				tp.mu.Lock()
				full := tp.bytes+int64(len(stored)) > prefetchTreeBytes
				known := tp.trees[id] != nil || tp.spare[id] != nil
				if !full && !known {
					e.stored, e.uses = slices.Clone(stored), len(ps)
					if needed {
						tp.trees[id] = e
					} else {
						tp.spare[id] = e
					}
					tp.bytes += int64(len(stored))
				}
				tp.mu.Unlock()
				if needed && !full && !known {
					x.expand(id, t)
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
	return x.next, nil
}

// Load returns tree id from the prefetch, or reads it with LoadTree when
// the prefetch does not hold it.
func (tp *TreePrefetch) Load(ctx context.Context, id chunk.ID) (*snapshot.Tree, error) {
	tp.mu.Lock()
	e := tp.trees[id]
	if e != nil {
		if e.uses--; e.uses <= 0 {
			delete(tp.trees, id)
			tp.bytes -= int64(len(e.stored))
		}
	}
	tp.mu.Unlock()
	if e == nil {
		return tp.r.LoadTree(ctx, id)
	}
	t, _, err := e.decode(tp.r, nil)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", id.Short(), err)
	}
	return t, nil
}
