// Package replicate copies snapshots between repositories (cairn copy),
// sending only what the target lacks: whole packs between replicas that
// share the data key, blobs between replicas that share the blob-ID key,
// and re-hashed blobs with rewritten trees between unrelated repositories.
package replicate

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/index"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"golang.org/x/sync/errgroup"
)

// Mode is how Copy moves data, decided by what the two repositories
// share.
type Mode string

const (
	// CopyPacks: same blob-ID key and data key (a replica made with
	// ShareDataKey): whole packs are copied as stored, never decrypted.
	CopyPacks Mode = "packs"
	// CopyBlobs: same blob-ID key (a replica): missing blobs are decrypted
	// and re-encrypted; trees are unchanged.
	CopyBlobs Mode = "blobs"
	// CopyRewrite: unrelated repositories: every blob is re-hashed with the
	// target's key and trees are rewritten to the new IDs.
	CopyRewrite Mode = "rewrite"
)

// Options tune Copy.
type Options struct {
	// Verify re-reads, from the target, every blob the copied snapshots
	// need and checks it against its ID.
	Verify   bool
	Saver    repo.SaverOptions
	Progress *repo.Progress
}

// CopiedSnapshot pairs a source snapshot with its copy.
type CopiedSnapshot struct {
	Source chunk.ID `json:"source"`
	Target chunk.ID `json:"target"`
}

// Result says what Copy did.
type Result struct {
	Mode    Mode             `json:"mode"`
	Copied  []CopiedSnapshot `json:"copied"`
	Skipped []chunk.ID       `json:"already_present"` // copies already in the target
	Blobs   uint64           `json:"blobs"`           // blobs sent (CopyBlobs, CopyRewrite)
	Packs   uint64           `json:"packs"`           // packs sent whole (CopyPacks)
	Bytes   uint64           `json:"bytes"`           // stored bytes written to the target
}

// copyMode tells how a copy from r to dst would move data.
func copyMode(r, dst *repo.Repository) Mode {
	idKey, dataKey := r.SharesKeys(dst)
	switch {
	case idKey && dataKey:
		return CopyPacks
	case idKey:
		return CopyBlobs
	}
	return CopyRewrite
}

// Copy copies snapshots from r to dst, sending only what dst lacks. Each
// snapshot appears in dst only after every blob it needs is durable and
// indexed there, so an interrupted copy leaves dst consistent, and running
// it again sends only what is still missing. A snapshot already copied
// (recognised by its Original) is skipped.
func Copy(ctx context.Context, r, dst *repo.Repository, snaps []repo.SnapshotEntry, opts Options) (*Result, error) {
	return copyTo(ctx, r, dst, snaps, opts, nil)
}

// CopyToAll copies to several targets at once, feeding them from one read
// of the source: the copies run side by side in the same order, and each
// blob or pack read from the source is shared by every target that needs
// it while it stays in a bounded cache (readCacheBytes). Results are in
// the order of dsts; the first failure is returned after all have stopped.
func CopyToAll(ctx context.Context, r *repo.Repository, dsts []*repo.Repository, snaps []repo.SnapshotEntry, opts Options) ([]*Result, error) {
	if err := r.LoadIndex(ctx); err != nil {
		return nil, err
	}
	if len(dsts) == 1 {
		res, err := copyTo(ctx, r, dsts[0], snaps, opts, nil) // nothing to share
		return []*Result{res}, err
	}
	shared := newSharedReads(readCacheBytes)
	results := make([]*Result, len(dsts))
	errs := make([]error, len(dsts))
	var wg sync.WaitGroup
	for i, dst := range dsts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = copyTo(ctx, r, dst, snaps, opts, shared)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("target %d (%s): %w", i+1, dst.Config().ID.Short(), errs[i])
			}
		}()
	}
	wg.Wait()
	return results, errors.Join(errs...)
}

// readCacheBytes bounds what CopyToAll keeps of the source for targets
// that lag behind: four 16 MiB packs' worth.
const readCacheBytes = 64 << 20

func copyTo(ctx context.Context, r, dst *repo.Repository, snaps []repo.SnapshotEntry, opts Options, shared *sharedReads) (*Result, error) {
	if opts.Progress == nil {
		opts.Progress = &repo.Progress{}
	}
	if r.Config().ID == dst.Config().ID {
		return nil, fmt.Errorf("replicate: source and target are the same repository")
	}
	// Readers refuse a data blob above their own chunker's max_size, before
	// they allocate for it; blobs cut with a larger one would be written
	// and then unreadable in the target, which check would report as
	// missing. The stream set's max_size is never above the chunker's.
	if from, to := r.ChunkerParams().MaxSize, dst.ChunkerParams().MaxSize; from > to {
		return nil, fmt.Errorf("replicate: the target %s reads data blobs up to its chunker's max_size of %d bytes, but the source cuts them up to %d: a copy could not be read back (copy into a replica made with init --replica-of, or a repository with the same chunker parameters)",
			dst.Config().ID.Short(), to, from)
	}
	if err := r.LoadIndex(ctx); err != nil {
		return nil, err
	}
	if err := dst.LoadIndex(ctx); err != nil {
		return nil, err
	}
	have, err := dst.Snapshots(ctx)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	present := map[chunk.ID]bool{}
	for _, e := range have {
		if e.Original != nil {
			present[*e.Original] = true
		}
	}
	res := &Result{Mode: copyMode(r, dst)}
	c := &copier{src: r, dst: dst, res: res, opts: &opts, reads: shared, trees: map[chunk.ID]chunk.ID{}, data: map[chunk.ID]chunk.ID{}}
	for _, sn := range snaps {
		orig := sn.ID
		if sn.Original != nil {
			orig = *sn.Original
		}
		if present[orig] {
			res.Skipped = append(res.Skipped, sn.ID)
			continue
		}
		id, err := c.copySnapshot(ctx, sn, orig)
		if err != nil {
			res.Bytes = c.added.Load()
			return res, fmt.Errorf("copy snapshot %s: %w", sn.ID.Short(), err)
		}
		present[orig] = true
		res.Copied = append(res.Copied, CopiedSnapshot{Source: sn.ID, Target: id})
	}
	res.Bytes = c.added.Load()
	return res, nil
}

type copier struct {
	src, dst *repo.Repository
	res      *Result
	opts     *Options
	reads    *sharedReads // nil: no other target shares the reads
	// CopyRewrite: source ID → target ID, so shared trees and blobs are
	// converted once per run.
	trees, data map[chunk.ID]chunk.ID
	rewriter    *repo.Walker // CopyRewrite: visits each source tree once per run
	// srcPacks groups the source index by pack (CopyPacks; made at the
	// first pack copied): the source index does not change during a copy.
	srcPacks *index.ByPack
	// added counts stored bytes written to the target; the saver's
	// encoders add to it from their goroutines.
	added atomic.Uint64
}

func (c *copier) copySnapshot(ctx context.Context, sn repo.SnapshotEntry, orig chunk.ID) (chunk.ID, error) {
	out := *sn.Snapshot
	out.Components = slices.Clone(sn.Components)
	out.Original = &orig
	switch c.res.Mode {
	case CopyPacks:
		if err := c.copyPacks(ctx, sn.Snapshot); err != nil {
			return chunk.ID{}, err
		}
	case CopyBlobs:
		_, err := c.dst.WithSaver(ctx, c.opts.Saver, func(ctx context.Context, s *repo.Saver) error {
			return c.walkNeeded(ctx, sn.Snapshot, func(t pack.BlobType, id chunk.ID) error {
				if !s.Reserve(t, id) {
					return nil
				}
				data, err := c.loadBlob(ctx, t, id)
				if err != nil {
					return err
				}
				c.res.Blobs++
				return s.Save(ctx, t, id, data, &c.added)
			})
		})
		if err != nil {
			return chunk.ID{}, err
		}
	case CopyRewrite:
		_, err := c.dst.WithSaver(ctx, c.opts.Saver, func(ctx context.Context, s *repo.Saver) error {
			for i := range out.Components {
				id, err := c.rewriteTree(ctx, s, out.Components[i].Tree)
				if err != nil {
					return err
				}
				out.Components[i].Tree = id
			}
			return nil
		})
		if err != nil {
			return chunk.ID{}, err
		}
	}
	if c.opts.Verify {
		if err := c.verify(ctx, &out); err != nil {
			return chunk.ID{}, err
		}
	}
	return c.dst.SaveSnapshot(ctx, &out)
}

// loadBlob reads a source blob, through the shared reads when copying to
// several targets at once.
func (c *copier) loadBlob(ctx context.Context, t pack.BlobType, id chunk.ID) ([]byte, error) {
	return c.reads.get(blobKey{t, id}, func() ([]byte, error) { return c.src.LoadBlob(ctx, t, id, nil) })
}

// loadTree reads and decodes a source tree through the shared reads.
func (c *copier) loadTree(ctx context.Context, id chunk.ID) (*snapshot.Tree, error) {
	buf, err := c.loadBlob(ctx, pack.TreeBlob, id)
	return repo.DecodeTree(id, buf, err)
}

// walkNeeded calls fn for every blob that sn needs, a tree before the
// data blobs of its files. Trees are visited once per snapshot.
func (c *copier) walkNeeded(ctx context.Context, sn *snapshot.Snapshot, fn func(pack.BlobType, chunk.ID) error) error {
	w := c.src.NewWalker(repo.WalkOptions{Load: c.loadTree})
	visit := repo.Visitor{Tree: func(_ string, id chunk.ID, t *snapshot.Tree, err error) error {
		if err != nil {
			return err
		}
		if err := fn(pack.TreeBlob, id); err != nil {
			return err
		}
		for _, n := range t.Nodes {
			if n.Type != snapshot.File {
				continue
			}
			for _, b := range n.Content {
				if err := fn(pack.DataBlob, b); err != nil {
					return err
				}
			}
		}
		return nil
	}}
	for _, comp := range sn.Components {
		if err := w.Walk(ctx, comp.Name, comp.Tree, visit); err != nil {
			return err
		}
	}
	return nil
}

// copyPacks sends, as stored, every source pack that holds a blob the
// target lacks, then indexes them in the target. A pack also holding blobs
// the target has is sent whole anyway: duplicates cost space until prune,
// never correctness.
func (c *copier) copyPacks(ctx context.Context, sn *snapshot.Snapshot) error {
	packs := map[chunk.ID]bool{}
	err := c.walkNeeded(ctx, sn, func(t pack.BlobType, id chunk.ID) error {
		if c.dst.Index().Has(t, id) {
			return nil
		}
		loc, ok := c.src.Index().Lookup(t, id)
		if !ok {
			return &repo.BlobError{Type: t, ID: id, Err: repo.ErrBlobNotFound}
		}
		packs[loc.Pack] = true
		return nil
	})
	if err != nil {
		return err
	}
	ids := make([]chunk.ID, 0, len(packs))
	for id := range packs {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, chunk.ID.Compare)
	var (
		mu   sync.Mutex
		done index.File // copied, not yet in an index file (guarded by mu)
	)
	opts := c.opts.Saver
	opts.ApplyDefaults()
	every := opts.IndexEvery
	flush := func(ctx context.Context) error { // with mu held
		if len(done.Packs) == 0 {
			return nil
		}
		if _, err := c.dst.WriteIndex(ctx, &done); err != nil {
			return err
		}
		for _, p := range done.Packs {
			if err := c.dst.Index().AddPack(p.Pack, p.Blobs); err != nil {
				return err
			}
		}
		done = index.File{}
		return nil
	}
	if c.srcPacks == nil && len(ids) > 0 {
		c.srcPacks = c.src.Index().ByPack()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, id := range ids {
		g.Go(func() error {
			buf, err := c.reads.get(id, func() ([]byte, error) { return c.src.ReadPack(gctx, id) })
			if err != nil {
				return err
			}
			if err := c.dst.Store().Put(gctx, repo.PackName(id), buf); err != nil {
				return fmt.Errorf("write pack %s: %w", id.Short(), err)
			}
			c.opts.Progress.Bytes.Add(uint64(len(buf)))
			mu.Lock()
			defer mu.Unlock()
			done.Packs = append(done.Packs, index.PackBlobs{Pack: id, Blobs: c.srcPacks.Blobs(id)})
			c.res.Packs++
			c.added.Add(uint64(len(buf)))
			if len(done.Packs) >= every {
				return flush(gctx)
			}
			return nil
		})
	}
	err = g.Wait()
	// Index what arrived, also after a failure: those packs are durable,
	// and a resumed copy then does not send them again.
	mu.Lock()
	defer mu.Unlock()
	if ierr := flush(context.WithoutCancel(ctx)); ierr != nil && err == nil {
		err = ierr
	}
	return err
}

// rewriteTree copies a tree between repositories with different ID keys:
// every data blob is re-hashed with the target's key, and each tree is
// re-encoded with the new IDs once its subtrees have theirs. It returns
// the tree's ID in the target.
func (c *copier) rewriteTree(ctx context.Context, s *repo.Saver, root chunk.ID) (chunk.ID, error) {
	if c.rewriter == nil {
		// One walker for the whole run: a tree rewritten for an earlier
		// snapshot is in c.trees and is not loaded again.
		c.rewriter = c.src.NewWalker(repo.WalkOptions{Load: c.loadTree})
	}
	save := func(t pack.BlobType, id chunk.ID, data []byte) error {
		if !s.Reserve(t, id) {
			return nil
		}
		c.res.Blobs++
		return s.Save(ctx, t, id, data, &c.added)
	}
	err := c.rewriter.Walk(ctx, "", root, repo.Visitor{
		Tree: func(_ string, _ chunk.ID, t *snapshot.Tree, err error) error {
			if err != nil {
				return err
			}
			for i := range t.Nodes {
				n := &t.Nodes[i]
				if n.Type != snapshot.File {
					continue
				}
				for j, b := range n.Content {
					nb, ok := c.data[b]
					if !ok {
						data, err := c.loadBlob(ctx, pack.DataBlob, b)
						if err != nil {
							return err
						}
						nb = c.dst.Hasher().Sum(data)
						if err := save(pack.DataBlob, nb, data); err != nil {
							return err
						}
						c.data[b] = nb
					}
					n.Content[j] = nb
				}
			}
			return nil
		},
		Leave: func(_ string, _ *snapshot.Node, id chunk.ID, t *snapshot.Tree) error {
			for i := range t.Nodes {
				if n := &t.Nodes[i]; n.Type == snapshot.Dir && n.Subtree != nil {
					sub := c.trees[*n.Subtree]
					n.Subtree = &sub
				}
			}
			buf, err := repo.EncodeTree(t)
			if err != nil {
				return err
			}
			nid := c.dst.Hasher().Sum(buf)
			if err := save(pack.TreeBlob, nid, buf); err != nil {
				return err
			}
			c.trees[id] = nid
			return nil
		},
	})
	return c.trees[root], err
}

// verify reads back from the target every blob sn needs.
func (c *copier) verify(ctx context.Context, sn *snapshot.Snapshot) error {
	dstCopier := &copier{src: c.dst}
	return dstCopier.walkNeeded(ctx, sn, func(t pack.BlobType, id chunk.ID) error {
		if t == pack.TreeBlob {
			return nil // walkNeeded has just loaded and checked it
		}
		if _, err := c.dst.LoadBlob(ctx, t, id, nil); err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		return nil
	})
}

// blobKey names a blob in the shared reads (packs are keyed by their ID).
type blobKey struct {
	t  pack.BlobType
	id chunk.ID
}

// sharedReads lets several copies share what they read from the source: the
// first to ask for a key loads it, the others wait for that load, and the
// result is kept (least recently used first out) within a byte budget.
// A nil *sharedReads just loads. The returned bytes must not be modified.
type sharedReads struct {
	mu      sync.Mutex
	entries map[any]*readEntry // guarded by mu
	lru     *list.List         // of keys, most recent at the front; guarded by mu
	size    int                // bytes held; guarded by mu
	budget  int
}

type readEntry struct {
	done chan struct{}
	data []byte
	err  error
	elem *list.Element
}

func newSharedReads(budget int) *sharedReads {
	return &sharedReads{entries: map[any]*readEntry{}, lru: list.New(), budget: budget}
}

func (s *sharedReads) get(key any, load func() ([]byte, error)) ([]byte, error) {
	if s == nil {
		return load()
	}
	s.mu.Lock()
	if e, ok := s.entries[key]; ok {
		if e.elem != nil {
			s.lru.MoveToFront(e.elem)
		}
		s.mu.Unlock()
		<-e.done
		return e.data, e.err
	}
	e := &readEntry{done: make(chan struct{})}
	s.entries[key] = e
	s.mu.Unlock()

	e.data, e.err = load()
	close(e.done)

	s.mu.Lock()
	defer s.mu.Unlock()
	if e.err != nil {
		delete(s.entries, key) // let another target try again
		return e.data, e.err
	}
	e.elem = s.lru.PushFront(key)
	s.size += len(e.data)
	for s.size > s.budget && s.lru.Len() > 1 {
		old := s.lru.Back()
		oe := s.entries[old.Value]
		s.lru.Remove(old)
		delete(s.entries, old.Value)
		s.size -= len(oe.data)
	}
	return e.data, nil
}
