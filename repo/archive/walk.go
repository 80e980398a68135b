package archive

import (
	"container/list"
	"context"
	"errors"
	"path"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"golang.org/x/sync/errgroup"
)

// result is a node that may not be ready yet.
type result struct {
	node snapshot.Node
	skip bool // unreadable: leave it out of the tree
}

type future chan result

type fileJob struct {
	path string
	node snapshot.Node
	out  future
}

// tree archives a directory. The walk runs in one goroutine in name order;
// directories are listed ahead of it (readAhead), files go to
// 2*ReadConcurrency goroutines (ReadConcurrency of them at a time on large
// files), and each directory's tree is assembled by its
// own goroutine once its entries are done, so the walk never waits on a
// slow file.
func (a *archiver) tree(ctx context.Context, c ComponentSource, parent *chunk.ID, started time.Time) (snapshot.Component, error) {
	comp := snapshot.Component{Name: c.Name, Kind: snapshot.KindTree, Source: c.Source}
	// The root is read first so a missing or unreadable source fails the
	// component instead of producing an empty snapshot.
	root, _ := a.list(ctx, c.FS, dirReq{parent: parent}, nil)
	if root.err != nil && root.nodes == nil {
		return comp, root.err
	}
	if root.err != nil {
		a.fileError("", root.err)
	}
	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan fileJob)
	// A file larger than repo.InlineMax is read with one of
	// ReadConcurrency big readers, and its chunks go to the saver's
	// encoders (but for one of at most repo.InlineMax, its tail, which the
	// reader encodes): that bounds the chunk buffers in flight. A
	// small file is read by any of twice as many goroutines with its own
	// small reader, which encodes the file's one chunk itself (saveChunk,
	// repo.Saver.SaveInline): such a reader spends much of its time in
	// system calls (an open, two fstats, a read and a close a file), and
	// two readers handing each file to an encoder left the two cores
	// idle 14-15% of a first backup of the bench's 200,000 small files
	// (1.70-1.72 cores busy). With four that encode, and the zstd
	// encoders bounded to GOMAXPROCS (pack.getZstd), 1.78-1.81 were
	// busy, and the backup took 8.1-8.9 s and 14.6-15.9 CPU-s against
	// 10.3-10.7 s and 17.7-18.3 (four interleaved pairs, repository on
	// tmpfs); the bench tree's first backup took the same or less.
	bigReaders := make(chan *fileReader, a.opts.ReadConcurrency)
	for range a.opts.ReadConcurrency {
		bigReaders <- a.newReader()
	}
	for range 2 * a.opts.ReadConcurrency {
		g.Go(func() error {
			small := a.newSmallReader()
			for job := range jobs {
				fr := small
				if job.node.Size > repo.InlineMax {
					select {
					case fr = <-bigReaders:
					case <-gctx.Done():
						return gctx.Err()
					}
				}
				err := a.readFile(gctx, c.FS, fr, job)
				if fr != small {
					bigReaders <- fr
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	// Bound the number of directory goroutines waiting on their entries.
	dirSem := make(chan struct{}, 4096)
	var rootOut future
	g.Go(func() error {
		defer close(jobs)
		ra := newReadAhead(gctx, a, c.FS)
		defer ra.close()
		w := &walker{a: a, jobs: jobs, sem: dirSem, g: g, ra: ra, links: map[[2]uint64]string{}}
		f, err := w.dir(gctx, "", snapshot.Node{Type: snapshot.Dir}, root)
		rootOut = f
		return err
	})
	if err := g.Wait(); err != nil {
		return comp, err
	}
	// The walker's goroutines have all finished: g.Wait covers them.
	rootRes := <-rootOut
	a.finish(&comp, started, *rootRes.node.Subtree)
	return comp, nil
}

// dirReq asks for a directory's listing.
type dirReq struct {
	path   string
	parent *chunk.ID // the directory's tree in the parent snapshot
}

// listing is what the walk needs of a directory before it goes through
// its entries.
type listing struct {
	nodes []snapshot.Node // sorted by name
	err   error           // from ReadDir: entries, or all of it, unreadable
	// parent is the directory in the parent snapshot, nil if it had none
	// or its tree could not be read (that only costs the shortcut).
	parent *parentDir
}

// parentDir is a directory's listing in the parent snapshot.
type parentDir struct {
	id    chunk.ID
	nodes []snapshot.Node
	// exact: the nodes encode to the blob id names
	// (snapshot.DecodeTreeExact), so a directory whose nodes are Equal to
	// these has the tree id without encoding it.
	exact bool
	// indexed[i] says that every content blob of nodes[i] is in the
	// index, so the file may keep them. The index only grows during a
	// backup: what it holds when the listing is made it holds when the
	// snapshot is written.
	indexed []bool
}

// list reads a directory and its tree in the parent snapshot, and looks
// the parent's content blobs up in the index. It runs ahead of the walk,
// on several goroutines at once. buf, when large enough, lends storage
// for the tree blob; list returns the storage it used, the caller's again.
func (a *archiver) list(ctx context.Context, fsys FS, req dirReq, buf []byte) (listing, []byte) {
	nodes, err := fsys.ReadDir(ctx, req.path)
	l := listing{nodes: nodes, err: err}
	if req.parent == nil || (err != nil && nodes == nil) {
		return l, buf
	}
	plain, err := a.r.LoadBlob(ctx, pack.TreeBlob, *req.parent, buf)
	if err != nil {
		return l, buf
	}
	t, exact, err := snapshot.DecodeTreeExact(plain)
	if err != nil {
		return l, plain
	}
	p := &parentDir{id: *req.parent, nodes: t.Nodes, exact: exact, indexed: make([]bool, len(t.Nodes))}
	idx := a.r.Index()
	for i := range p.nodes {
		n := &p.nodes[i]
		if n.Type != snapshot.File {
			continue
		}
		p.indexed[i] = true
		for _, id := range n.Content {
			if !idx.Has(pack.DataBlob, id) {
				p.indexed[i] = false
				break
			}
		}
	}
	l.parent = p
	return l, plain
}

type walker struct {
	a    *archiver
	jobs chan<- fileJob
	sem  chan struct{}
	g    *errgroup.Group
	ra   *readAhead
	// links maps the device and inode of each file with more than one
	// link to the first path it was seen at (the walk is one goroutine in
	// name order, so "first" is the same on every run).
	links map[[2]uint64]string
}

// waiting is a directory entry whose node comes later: a file being
// read, a subdirectory being walked.
type waiting struct {
	i   int // its place in the listing
	out future
	// subtree, for a subdirectory whose other fields are Equal to its
	// node in the parent tree, is the parent's subtree ID: the
	// directory's tree is the parent's if the subdirectory's comes out
	// the same.
	subtree *chunk.ID
}

// dir queues the entries of one directory and returns a future of its node
// (with Subtree set) that resolves once every entry is done.
//
// A directory whose every entry comes out Equal to its node in the parent
// tree (files unchanged, subdirectories with the parent's subtree IDs) has
// the parent's tree: its ID is taken without encoding, hashing or saving
// the tree again: 1.0-1.6 of the 7.8 CPU-seconds an unchanged backup of a
// million files took once trees were encoded by hand.
//
// The listing's nodes become the tree's: each is completed in place
// (content, hard link, subtree), without a copy per entry.
func (w *walker) dir(ctx context.Context, dirPath string, self snapshot.Node, l listing) (future, error) {
	nodes, parent := l.nodes, l.parent
	// Both listings are sorted by name: one pass finds each entry's node
	// in the parent, and the subdirectories are listed ahead in the order
	// the walk comes to them.
	prevOf := make([]int32, len(nodes))
	var subs []dirReq
	k := 0
	for i := range nodes {
		prevOf[i] = -1
		if parent != nil {
			for k < len(parent.nodes) && parent.nodes[k].Name < nodes[i].Name {
				k++
			}
			if k < len(parent.nodes) && parent.nodes[k].Name == nodes[i].Name {
				prevOf[i] = int32(k)
			}
		}
		if nodes[i].Type == snapshot.Dir {
			req := dirReq{path: path.Join(dirPath, nodes[i].Name)}
			if prevOf[i] >= 0 {
				if prev := &parent.nodes[prevOf[i]]; prev.Type == snapshot.Dir {
					req.parent = prev.Subtree
				}
			}
			subs = append(subs, req)
		}
	}
	w.ra.queue(subs)

	var pending []waiting
	// gone[i]: the entry is left out of the tree (a socket, an unreadable
	// file or directory); made when the first one is.
	var gone []bool
	leave := func(i int) {
		if gone == nil {
			gone = make([]bool, len(nodes))
		}
		gone[i] = true
	}
	// same: every entry so far is Equal to the parent's node of its name
	// (subdirectories but their subtree); matched counts them.
	same := parent != nil && parent.exact
	matched := 0
	// Unchanged files are counted once for the directory: atomic adds
	// per file, on counters every walker shares, showed in the profile.
	var unchangedFiles, unchangedBytes uint64
	for i := range nodes {
		n := &nodes[i]
		var prev *snapshot.Node
		indexed := false
		if prevOf[i] >= 0 {
			prev, indexed = &parent.nodes[prevOf[i]], parent.indexed[prevOf[i]]
		}
		switch n.Type {
		case snapshot.File:
			if n.Links > 1 && n.Inode != 0 {
				key := [2]uint64{n.DeviceID, n.Inode}
				if first, ok := w.links[key]; ok {
					n.HardLink = first
				} else {
					w.links[key] = path.Join(dirPath, n.Name)
				}
			}
			if unchanged(n, prev) && indexed {
				n.Content = prev.Content
				unchangedFiles++
				unchangedBytes += n.Size
				same = same && prev.Equal(n)
				matched++
				continue
			}
			same = false
			f := make(future, 1)
			select {
			case w.jobs <- fileJob{path: path.Join(dirPath, n.Name), node: *n, out: f}:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			pending = append(pending, waiting{i: i, out: f})
		case snapshot.Dir:
			p := path.Join(dirPath, n.Name)
			sub, err := w.ra.take(dirReq{path: p})
			if err != nil {
				return nil, err
			}
			if sub.err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				w.a.fileError(p, sub.err)
				if sub.nodes == nil {
					leave(i)
					continue
				}
			}
			var want *chunk.ID
			if prev != nil && prev.Type == snapshot.Dir && prev.Subtree != nil {
				m := *n
				m.Subtree = prev.Subtree
				if prev.Equal(&m) {
					id := *prev.Subtree // a copy: the parent's nodes are not kept
					want = &id
					matched++
				}
			}
			same = same && want != nil
			f, err := w.dir(ctx, p, *n, sub)
			if err != nil {
				return nil, err
			}
			pending = append(pending, waiting{i: i, out: f, subtree: want})
		case snapshot.Socket:
			w.a.mu.Lock()
			w.a.skipped = append(w.a.skipped, FileError{Component: w.a.name, Path: path.Join(dirPath, n.Name), Err: errors.New("socket: not data, left out")})
			w.a.mu.Unlock()
			leave(i)
		default: // symlinks, named pipes, devices: the node is all there is
			same = same && prev != nil && prev.Equal(n)
			matched++
		}
	}
	w.a.files.Add(unchangedFiles)
	w.a.size.Add(unchangedBytes)
	w.a.prog.Add(unchangedFiles, unchangedBytes, 0, 0)
	// Every node of the new tree is Equal to one of the parent's, and
	// there are as many: the parent's tree, unless a subdirectory's
	// subtree changes.
	var parentID chunk.ID
	if same && matched == len(parent.nodes) {
		parentID = parent.id
	} else {
		same = false
	}
	out := make(future, 1)
	select {
	case w.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	w.g.Go(func() error {
		defer func() { <-w.sem }()
		for _, p := range pending {
			select {
			case r := <-p.out:
				if r.skip {
					same = false
					leave(p.i)
					continue
				}
				if p.subtree != nil && *p.subtree != *r.node.Subtree {
					same = false
				}
				nodes[p.i] = r.node
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		id := parentID
		if !same {
			kept := nodes
			if gone != nil {
				kept = nodes[:0]
				for i := range nodes {
					if !gone[i] {
						kept = append(kept, nodes[i])
					}
				}
			}
			var err error
			if id, err = w.a.saveTree(ctx, &snapshot.Tree{Nodes: kept}); err != nil {
				return err
			}
		}
		w.a.dirs.Add(1)
		self.Subtree = &id
		out <- result{node: self}
		return nil
	})
	return out, nil
}

// unchanged reports whether a file can reuse its parent snapshot's content
// without being read, if every blob of it is still in the index: same
// type, size, mtime, ctime and inode. mtime alone misses same-second
// rewrites.
func unchanged(n, prev *snapshot.Node) bool {
	return prev != nil && prev.Type == snapshot.File && !prev.Inconsistent && prev.Size == n.Size &&
		prev.ModTime.Equal(n.ModTime) && prev.ChangeTime.Equal(n.ChangeTime) &&
		prev.Inode == n.Inode && !n.ChangeTime.IsZero()
}

// dirAhead is how many listers list directories ahead of the walk, and
// dirWaiting how many listings may wait to be taken (bounding the memory:
// a listing of 1,000 files and its parent tree take about 0.4 MiB).
// Listing, loading the parent's tree and the index lookups took nine
// tenths of the walk's time on a million unchanged files; two listers and
// the walk share the two cores (four cost 0.5 CPU-seconds more for no
// time gained).
const (
	dirAhead   = 2
	dirWaiting = 4 * dirAhead
)

// readAhead lists directories ahead of the walk, in the order the walk
// will take them (depth first: a directory's subdirectories before its
// later siblings). Only the walking goroutine calls queue and take;
// dirAhead listers, started with it, take the next request themselves
// whenever fewer than dirWaiting listings wait. Each listing writes only
// its dirLoad, published by closing done. repo.Walker reads trees ahead
// the same way.
//
// The listers live as long as the walk. A goroutine started per
// directory, by the walk when it took a listing, kept both cores busy
// only half the time on an unchanged re-backup of 200,000 files in 2,000
// directories: each listing then waited for the walk to wake, and each
// new goroutine for an idle processor to wake (a scheduler trace showed
// the walk running on 1.0 of the 2 cores, with goroutines runnable but
// not running 0.28 of the time).
type readAhead struct {
	a      *archiver
	fs     FS
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	more *sync.Cond // signalled when there may be a request to start
	// pending holds requests not started, in the order the walk needs
	// them; queued indexes it by path.
	pending *list.List
	queued  map[string]*list.Element
	// started holds listings begun and not yet taken, running or done:
	// at most dirWaiting, plus those the walk lists itself.
	started map[string]*dirLoad
	closed  bool
}

type dirLoad struct {
	done chan struct{}
	l    listing
}

func newReadAhead(ctx context.Context, a *archiver, fsys FS) *readAhead {
	ctx, cancel := context.WithCancel(ctx)
	ra := &readAhead{
		a: a, fs: fsys, ctx: ctx, cancel: cancel,
		pending: list.New(),
		queued:  map[string]*list.Element{},
		started: map[string]*dirLoad{},
	}
	ra.more = sync.NewCond(&ra.mu)
	for range dirAhead {
		ra.wg.Add(1)
		go ra.lister()
	}
	return ra
}

// close stops the listers and waits for them.
func (ra *readAhead) close() {
	ra.cancel()
	ra.mu.Lock()
	ra.closed = true
	ra.more.Broadcast()
	ra.mu.Unlock()
	ra.wg.Wait()
}

// lister lists the next pending directory whenever fewer than dirWaiting
// listings wait to be taken. Its buffer lends storage to the parent
// trees it loads: one buffer each instead of a quarter of a megabyte of
// garbage per directory.
func (ra *readAhead) lister() {
	defer ra.wg.Done()
	var buf []byte
	for {
		ra.mu.Lock()
		for !ra.closed && (ra.pending.Len() == 0 || len(ra.started) >= dirWaiting) {
			ra.more.Wait()
		}
		if ra.closed {
			ra.mu.Unlock()
			return
		}
		r := ra.pending.Remove(ra.pending.Front()).(dirReq)
		delete(ra.queued, r.path)
		d := &dirLoad{done: make(chan struct{})}
		ra.started[r.path] = d
		ra.mu.Unlock()

		d.l, buf = ra.a.list(ra.ctx, ra.fs, r, buf)
		buf = buf[:0]
		close(d.done)
	}
}

// queue asks for subdirectories of the directory being walked, in order:
// in a depth-first walk they come right after it, before anything queued
// earlier.
func (ra *readAhead) queue(reqs []dirReq) {
	if len(reqs) == 0 {
		return
	}
	ra.mu.Lock()
	var last *list.Element
	for _, r := range reqs {
		if last == nil {
			last = ra.pending.PushFront(r)
		} else {
			last = ra.pending.InsertAfter(r, last)
		}
		ra.queued[r.path] = last
	}
	ra.more.Broadcast()
	ra.mu.Unlock()
}

// take returns the listing of r.path, queued earlier, from the read-ahead
// or, when no lister has started it, by listing it on the walk's own
// goroutine.
func (ra *readAhead) take(r dirReq) (listing, error) {
	var l listing
	ra.mu.Lock()
	if d := ra.started[r.path]; d != nil {
		delete(ra.started, r.path)
		ra.more.Signal() // a place for another listing
		ra.mu.Unlock()
		select {
		case <-d.done:
			l = d.l
		case <-ra.ctx.Done():
		}
	} else {
		if e := ra.queued[r.path]; e != nil {
			r = ra.pending.Remove(e).(dirReq)
			delete(ra.queued, r.path)
		}
		ra.mu.Unlock()
		l, _ = ra.a.list(ra.ctx, ra.fs, r, nil)
	}
	// A listing cut short by the cancellation is not a listing.
	if err := ra.ctx.Err(); err != nil {
		return listing{}, err
	}
	return l, nil
}
