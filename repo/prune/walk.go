package prune

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

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
