package repo

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"
	"sync"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/snapshot"
)

// FindNode resolves "COMPONENT[/PATH]" in sn to a node. For a stream
// component without a path, the node is the stream itself. The component
// root of a tree is returned as a directory node.
func (r *Repository) FindNode(ctx context.Context, sn *snapshot.Snapshot, ref string) (*snapshot.Node, error) {
	name, rest, _ := strings.Cut(strings.Trim(ref, "/"), "/")
	c := sn.Component(name)
	if c == nil {
		return nil, fmt.Errorf("snapshot has no component %q", name)
	}
	if err := r.LoadIndex(ctx); err != nil {
		return nil, err
	}
	if c.Kind == snapshot.KindStream {
		if rest != "" {
			return nil, fmt.Errorf("component %q is a stream and has no paths", name)
		}
		rest = name
	}
	node := &snapshot.Node{Name: name, Type: snapshot.Dir, Subtree: &c.Tree}
	for _, part := range strings.Split(rest, "/") {
		if part == "" {
			continue
		}
		if node.Type != snapshot.Dir {
			return nil, fmt.Errorf("%s: not a directory", node.Name)
		}
		t, err := r.LoadTree(ctx, *node.Subtree)
		if err != nil {
			return nil, err
		}
		n := t.Find(part)
		if n == nil {
			return nil, fmt.Errorf("%s: no such file or directory in the snapshot", ref)
		}
		node = n
	}
	return node, nil
}

// DumpFile writes a file node's content to w in order.
//
// The content is taken in windows of consecutive blobs holding at most
// dumpWindowBytes of distinct plaintext. A window's blobs are grouped by
// the pack that holds them, and each pack's are read together
// (ReadBlobs: one ranged Get unless more than MaxReadGap of other blobs
// lies between them), the packs of a window concurrently; then the window
// is written in content order. A file whose blobs were written together
// so costs about one Get per pack instead of one per blob: on an object
// store a Get's round trip, not its bytes, is what a blob-by-blob dump
// pays for. Windows, not runs of one pack, because a backup's encoders
// fill several packs at once: a file's blobs alternate between them
// (measured in TestDumpReadsRuns: by-pack runs took 13 Gets for a
// 13-blob file in 5 packs). The next window is read while one is written.
//
// Memory: two windows of plaintext (2 × 16 MiB, or one blob larger than
// that), plus each pack reader's ReadBlobs buffers (one stored blob and
// one plaintext).
//
// A blob that fails in its pack read is loaded again on its own
// (LoadBlob), which tries every copy the index knows and returns the
// error a blob-by-blob dump returned: the stream is written up to the
// first blob that cannot be read and fails with that blob's error.
func (r *Repository) DumpFile(ctx context.Context, n *snapshot.Node, w io.Writer) error {
	if n.Type != snapshot.File {
		return fmt.Errorf("%s is a %s, not a file", n.Name, n.Type)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// One window loads (buffered) while the loop below writes the last.
	loaded := make(chan dumpWindow, 1)
	go func() {
		defer close(loaded)
		for win := range r.dumpWindows(n.Content) {
			r.readDumpWindow(ctx, &win)
			select {
			case loaded <- win:
			case <-ctx.Done():
				return
			}
		}
	}()
	for win := range loaded {
		for _, ref := range win.refs {
			if err := win.errs[ref]; err != nil {
				return err
			}
			if _, err := w.Write(win.plain[ref]); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// dumpWindowBytes bounds the distinct plaintext of a DumpFile window. A
// window must span the packs a backup fills at once (one per encoder,
// 2 MiB-16 MiB each) for their blobs to be read with one Get per pack;
// 16 MiB holds two of the largest ones.
const dumpWindowBytes = 16 << 20

// dumpWindow is consecutive content blobs of a file: the distinct ones,
// grouped by pack (first copy in the index) in ascending offset order,
// and for each content position the index of its blob. A blob missing from
// the index is a group with a null pack.
type dumpWindow struct {
	blobs  []pack.Blob
	packs  []chunk.ID // per blob
	groups [][2]int   // blobs[g[0]:g[1]] are one pack's, sorted
	refs   []int
	plain  [][]byte // per blob, once read
	errs   []error  // per blob, once read
}

// dumpWindows cuts content into windows, in content order.
func (r *Repository) dumpWindows(content []chunk.ID) iter.Seq[dumpWindow] {
	return func(yield func(dumpWindow) bool) {
		var cur dumpWindow
		var raw int64
		at := map[chunk.ID]int{} // cur's blob index by ID
		flush := func() bool {
			if len(cur.refs) == 0 {
				return true
			}
			win := cur
			cur, raw = dumpWindow{}, 0
			clear(at)
			win.sort()
			return yield(win)
		}
		for _, id := range content {
			if i, ok := at[id]; ok { // a repeated block: no new bytes
				cur.refs = append(cur.refs, i)
				continue
			}
			var p chunk.ID
			b := pack.Blob{Type: pack.DataBlob, ID: id}
			if loc, ok := r.idx.Lookup(pack.DataBlob, id); ok {
				p, b = loc.Pack, loc.Blob
			}
			if len(cur.refs) > 0 && raw+int64(b.RawLength) > dumpWindowBytes {
				if !flush() {
					return
				}
			}
			at[id] = len(cur.blobs)
			cur.refs = append(cur.refs, len(cur.blobs))
			cur.blobs = append(cur.blobs, b)
			cur.packs = append(cur.packs, p)
			raw += int64(b.RawLength)
		}
		flush()
	}
}

// sort orders the window's blobs by pack and offset and finds the groups.
func (win *dumpWindow) sort() {
	order := make([]int, len(win.blobs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		if c := win.packs[a].Compare(win.packs[b]); c != 0 {
			return c
		}
		return cmp.Compare(win.blobs[a].Offset, win.blobs[b].Offset)
	})
	blobs, packs, pos := make([]pack.Blob, len(order)), make([]chunk.ID, len(order)), make([]int, len(order))
	for i, o := range order {
		blobs[i], packs[i], pos[o] = win.blobs[o], win.packs[o], i
	}
	for i, ref := range win.refs {
		win.refs[i] = pos[ref]
	}
	win.blobs, win.packs = blobs, packs
	for start := 0; start < len(blobs); {
		end := start + 1
		for end < len(blobs) && packs[end] == packs[start] {
			end++
		}
		win.groups = append(win.groups, [2]int{start, end})
		start = end
	}
}

// readDumpWindow reads a window's blobs, a pack per goroutine. A blob
// that fails there is loaded again from any copy (in content order, so
// the error kept is the first the stream meets), and the first one that
// still fails ends the window.
func (r *Repository) readDumpWindow(ctx context.Context, win *dumpWindow) {
	win.plain, win.errs = make([][]byte, len(win.blobs)), make([]error, len(win.blobs))
	failed := make([]bool, len(win.blobs))
	var wg sync.WaitGroup
	for _, g := range win.groups {
		if win.packs[g[0]].IsNull() {
			failed[g[0]] = true // not in the index: LoadBlob says so
			continue
		}
		wg.Go(func() {
			err := r.ReadBlobs(ctx, win.packs[g[0]], win.blobs[g[0]:g[1]], MaxReadGap, func(i int, plain []byte, err error) error {
				if err != nil {
					failed[g[0]+i] = true
				} else {
					win.plain[g[0]+i] = bytes.Clone(plain)
				}
				return nil
			})
			if err != nil { // ctx ended
				for i := g[0]; i < g[1]; i++ {
					failed[i] = true
				}
			}
		})
	}
	wg.Wait()
	for _, i := range win.refs {
		if !failed[i] {
			continue
		}
		data, err := r.LoadBlob(ctx, pack.DataBlob, win.blobs[i].ID, nil)
		if err != nil {
			win.errs[i] = err
			return
		}
		win.plain[i], failed[i] = data, false
	}
}
