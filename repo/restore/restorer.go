// Package restore writes a snapshot's components back into a directory:
// directories and symlinks first, then file contents a pack at a time,
// written at their offsets, then directory metadata deepest first.
//
// # How file contents are read
//
// The restore plans before it reads. From the index it finds, for every
// blob occurrence of every selected file, the pack, offset and length of
// the blob, and groups the occurrences by blob and the blobs by pack: a
// blob is read once however many files, and places in one file, need it.
// Packs are taken in the order the walk first needs them, so a file is
// finished soon after it is started.
//
// Workers (Options.Workers) each take one pack at a time and read it once
// (repo.ReadBlobs): one ranged Get from the first needed blob to the last,
// streamed, dropping the bytes of unneeded blobs between them; a gap of
// more than maxReadGap (1 MiB) ends the Get and the next needed blob starts
// another, so a pack that is mostly unneeded costs a few short Gets, never
// a byte twice. Each blob is decrypted, checked against its ID and written
// to every offset that needs it; an all-zero blob leaves a hole. One
// request per pack instead of one per blob is what an object store needs:
// on MinIO over loopback a ranged Get costs 1.6-3.4 ms before its first
// byte, as much as streaming 1.5-3 MB (see maxReadGap).
//
// Memory: no pack is held whole. A worker holds one stored blob and one
// or two plaintexts (at most the chunker's largest blob, 8 MiB by
// default, each) and at most heldFilesPerWorker open files. The plan is
// made and written in batches: the walk collects files until their plan
// would take more than Options.PlanBytes (16 MiB by default, some 25,000
// small files), then their contents are written (and verified) before
// the walk goes on. So a tree of any number of files restores in bounded
// memory; only a hash of each restored file's path is kept to the end,
// for hard links, and one entry per directory, for its metadata.
//
// Errors stay with the files that need them: a blob that does not decode,
// a pack that is missing or a read that breaks is tried from another copy
// of the blob if the index has one (a second Get, the one case that reads
// beyond a pack once), and otherwise fails exactly the files that need that
// blob; they are removed and reported, and the rest is restored.
//
// Tree blobs are read before the walk, a pack's tree blobs all at once
// when the tree first needs one of them (repo.PrefetchTrees), in a round
// of Gets per hop from pack to pack: about one Get per cluster of trees in a pack
// instead of one per directory (the bench's tree: 21 instead of 89); a
// tree that does not read there is read again by the walk, which fails
// exactly that subtree.
//
// Streams restored into a pipe (a command component's restore command,
// cairn dump) need their bytes in order and go through repo's DumpFile
// instead.
package restore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/index"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"golang.org/x/sync/errgroup"
)

// Target is where the restorer writes; sources/tree implements it for
// a directory, confined so no snapshot path can write outside it. Paths are
// relative and slash-separated.
type Target interface {
	Mkdir(rel string) error
	Create(rel string) (*os.File, error)
	// Reopen opens the file rel, made by Create, for writing, without
	// truncating it.
	Reopen(rel string) (*os.File, error)
	Remove(rel string) error
	Open(rel string) (*os.File, error)
	Symlink(rel, target string) error
	// Mknod makes a named pipe or device node (devices need root).
	Mknod(rel string, n *snapshot.Node) error
	// Link makes rel a hard link to the file at existing.
	Link(existing, rel string) error
	SetMetadata(rel string, n *snapshot.Node) error
	// SetFileMetadata sets the metadata of the regular file rel through
	// f, its handle from Create or Reopen, before f is closed.
	SetFileMetadata(rel string, f *os.File, n *snapshot.Node) error
}

// Options select and tune a restore.
type Options struct {
	// Components to restore; empty means all. "NAME/PATH" restores only
	// the subtree PATH of the tree component NAME (with the directories
	// above it), at the path it has in the snapshot.
	Components []string
	// Include and Exclude select paths within the tree components (see
	// Filter); a stream component cannot be filtered, so with either set
	// every selected component must be a tree.
	Include, Exclude []string
	// Workers restore packs in parallel, each one pack at a time (read,
	// decrypt, write); default 2×GOMAXPROCS, so I/O waits overlap with
	// decompression.
	Workers int
	// Verify re-reads every restored file and checks it against the
	// snapshot's blob IDs.
	Verify   bool
	Progress *repo.Progress
	// PlanBytes bounds the memory the plan of file contents takes (see
	// the package documentation): once the files the walk has found would
	// take more, their contents are written before the walk goes on.
	// Default DefaultPlanBytes.
	PlanBytes int64
}

// DefaultPlanBytes is Options.PlanBytes's default: about 25,000 small
// files a batch. Holding the plan of 200,000 small files at once took
// 129 MiB of heap (the decoded trees, the files and their blobs); a
// batch costs the walk a pause and a pack shared by two batches a second
// Get, nothing more.
const DefaultPlanBytes = 16 << 20

// Error is one path that was not restored, or restored wrong.
type Error struct {
	Path string
	Err  error
}

func (e Error) Error() string { return fmt.Sprintf("%s: %v", e.Path, e.Err) }
func (e Error) Unwrap() error { return e.Err }

// Result reports a restore. Errors lists every path that failed;
// everything else was restored.
type Result struct {
	Files, Dirs, Bytes uint64
	Errors             []Error
}

// ErrIncomplete is returned (wrapped) when some paths failed.
var ErrIncomplete = errors.New("restore: restore incomplete")

type restoreFile struct {
	path    string
	node    *snapshot.Node
	offsets []int64 // of each blob, in the file

	// A file is created at its first blob and open while a worker holds
	// it (fileHandles); between the packs that fill it, it is closed.
	mu        sync.Mutex
	f         *os.File // guarded by mu
	created   bool     // guarded by mu
	refs      int      // workers holding f (guarded by mu)
	remaining int      // blob occurrences not yet delivered (guarded by mu)
	failed    atomic.Bool
	closed    atomic.Bool // finish ran: complete, or removed
	// hole is set when an all-zero blob was left unwritten: only then
	// is the file shorter than its size before finish truncates it.
	hole atomic.Bool
}

type restorer struct {
	r    *repo.Repository
	t    Target
	opts Options
	mu   sync.Mutex
	errs []Error // guarded by mu
	// files is the batch of files found by the walk and not yet written;
	// planned estimates the memory their plan takes (planCost).
	files   []*restoreFile
	planned int64
	// restored holds the files of earlier batches restored complete, for
	// the hard links made last.
	restored pathSet
	dirs     []dirMeta
	links    []hardLink
	root     string // the component being walked: hard links are relative to it
	filter   *Filter
	// dirState records, for the component being walked, directories the
	// filter only passes through: created (true) when something below
	// them is restored, or failed (false).
	pending  map[string]*snapshot.Node
	dirState map[string]bool
	selected int // paths the filter selected in the component being walked
	res      Result
	nbytes   atomic.Uint64
}

// hardLink is a file node that shares its inode with an earlier one
// (Node.HardLink): made with link(2) once that file is restored. The
// node is a copy: a pointer into its tree would keep the whole tree.
type hardLink struct {
	path, first string
	node        snapshot.Node
}

// dirMeta is a directory whose metadata is set last; its node is a copy
// for the same reason.
type dirMeta struct {
	path string
	node snapshot.Node
}

func (rs *restorer) fail(p string, err error) {
	rs.mu.Lock()
	rs.errs = append(rs.errs, Error{Path: p, Err: err})
	rs.mu.Unlock()
}

// Restore writes the selected components of sn into t: a tree component to
// NAME/…, a stream component to the file NAME. A file whose blobs cannot be
// read is reported and the others are still restored; the returned error
// then wraps ErrIncomplete.
func Restore(ctx context.Context, r *repo.Repository, sn *snapshot.Snapshot, t Target, opts Options) (*Result, error) {
	if opts.Workers <= 0 {
		opts.Workers = 2 * runtime.GOMAXPROCS(0)
	}
	if opts.Progress == nil {
		opts.Progress = &repo.Progress{}
	}
	if opts.PlanBytes <= 0 {
		opts.PlanBytes = DefaultPlanBytes
	}
	comps, filters, err := selectComponents(sn, opts)
	if err != nil {
		return nil, err
	}
	if err := r.LoadIndex(ctx); err != nil {
		return nil, err
	}
	for _, c := range comps {
		for _, sub := range filters[c.Name].Subtrees {
			if _, err := r.FindNode(ctx, sn, c.Name+"/"+sub); err != nil {
				return nil, fmt.Errorf("restore component %s: %w", c.Name, err)
			}
		}
	}
	rs := &restorer{r: r, t: t, opts: opts, restored: newPathSet()}
	if err := rs.restore(ctx, comps, filters); err != nil {
		rs.removeUnfinished()
		return nil, err
	}
	rs.res.Bytes = rs.nbytes.Load()
	rs.res.Errors = rs.errs
	slices.SortFunc(rs.res.Errors, func(a, b Error) int {
		switch {
		case a.Path < b.Path:
			return -1
		case a.Path > b.Path:
			return 1
		}
		return 0
	})
	if len(rs.res.Errors) > 0 {
		return &rs.res, fmt.Errorf("%w: %d paths failed", ErrIncomplete, len(rs.res.Errors))
	}
	return &rs.res, nil
}

// restore walks the components, writing file contents a batch at a time,
// then makes the hard links and sets the directories' metadata. On an
// error the batch being written is left to the caller's
// removeUnfinished.
func (rs *restorer) restore(ctx context.Context, comps []snapshot.Component, filters map[string]*Filter) error {
	t := rs.t
	// Streams are checked before anything is written: a batch of the
	// components before them may be written before the walk reaches them.
	for _, c := range comps {
		if c.Kind == snapshot.KindStream {
			if err := rs.checkStream(ctx, c); err != nil {
				return fmt.Errorf("restore component %s: %w", c.Name, err)
			}
		}
	}
	for _, c := range comps {
		dir := ""
		if c.Kind == snapshot.KindTree {
			dir = c.Name
			if err := t.Mkdir(dir); err != nil {
				return fmt.Errorf("restore component %s: %w", c.Name, err)
			}
		}
		rs.root = dir
		rs.filter = filters[c.Name]
		rs.pending, rs.dirState, rs.selected = map[string]*snapshot.Node{}, map[string]bool{}, 0
		if err := rs.walk(ctx, dir, c.Tree); err != nil {
			return err
		}
		if !rs.filter.empty() && rs.selected == 0 {
			return fmt.Errorf("restore component %s: %w (%s)", c.Name, ErrNothingSelected, rs.filter)
		}
		if c.Kind == snapshot.KindTree {
			// The component root takes the mode of the backed-up directory's
			// entries' parent only through its entries; give it 0755.
			rs.dirs = append(rs.dirs, dirMeta{path: dir, node: snapshot.Node{Type: snapshot.Dir, Mode: 0o755, ModTime: c.Started}})
		}
	}
	if err := rs.flush(ctx); err != nil {
		return err
	}
	if err := rs.linkFiles(ctx); err != nil {
		return err
	}
	// Directory times last, and deepest first (walk appends a directory
	// after its children): writing into a directory changes its mtime, and
	// a parent's mode may forbid entering it.
	for i := range rs.dirs {
		d := &rs.dirs[i]
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := t.SetMetadata(d.path, &d.node); err != nil {
			rs.fail(d.path, err)
		}
	}
	return nil
}

// add puts f in the batch, and writes the batch when its plan has grown
// past Options.PlanBytes.
func (rs *restorer) add(ctx context.Context, f *restoreFile) error {
	rs.files = append(rs.files, f)
	rs.planned += planCost(f.node)
	if rs.planned < rs.opts.PlanBytes {
		return nil
	}
	return rs.flush(ctx)
}

// planFileBytes and planBlobBytes estimate what a file of the batch holds
// until it is written: its node and its share of the decoded tree, the
// restoreFile and its path, and per blob occurrence the content ID, the
// offset, the blobTarget and, for a blob not seen before in the batch,
// its blobUse, map entry and place in a packJob. Measured on the bench's
// 200,000 small files (one blob each): 129 MiB of heap with every file
// planned at once, about 650 bytes a file.
const (
	planFileBytes = 512
	planBlobBytes = 160
)

func planCost(n *snapshot.Node) int64 {
	return planFileBytes + planBlobBytes*int64(len(n.Content))
}

// flush writes the contents of the batch (and verifies them, with
// Options.Verify), then lets it go, keeping only the paths restored
// complete.
func (rs *restorer) flush(ctx context.Context) error {
	if len(rs.files) == 0 {
		return nil
	}
	if err := rs.writeFiles(ctx); err != nil {
		return err
	}
	if rs.opts.Verify {
		if err := rs.verify(ctx); err != nil {
			return err
		}
	}
	for _, f := range rs.files {
		if f.closed.Load() && !f.failed.Load() {
			rs.restored.add(f.path)
		}
	}
	clear(rs.files) // the batch's nodes and trees
	rs.files, rs.planned = rs.files[:0], 0
	return nil
}

// selectComponents resolves opts.Components ("NAME" or "NAME/PATH") to
// the snapshot's components, in the order first named (all of them, in
// snapshot order, when none is named), and builds each one's filter. It
// checks everything it can before anything is written: a kind this code
// does not know has no place in the target (restoring it like a stream
// would put its tree in the target's root, over the other components),
// and a stream has no paths to select.
func selectComponents(sn *snapshot.Snapshot, opts Options) ([]snapshot.Component, map[string]*Filter, error) {
	var comps []snapshot.Component
	filters := map[string]*Filter{}
	whole := map[string]bool{}
	for _, ref := range opts.Components {
		name, sub, _ := strings.Cut(strings.Trim(ref, "/"), "/")
		c := sn.Component(name)
		if c == nil {
			return nil, nil, fmt.Errorf("restore: snapshot has no component %q", name)
		}
		if filters[name] == nil {
			filters[name] = &Filter{}
			comps = append(comps, *c)
		}
		if sub == "" {
			whole[name] = true
		} else {
			filters[name].Subtrees = append(filters[name].Subtrees, sub)
		}
	}
	if len(opts.Components) == 0 {
		comps = sn.Components
	}
	for _, c := range comps {
		if err := snapshot.ValidKind(c.Kind); err != nil {
			return nil, nil, fmt.Errorf("restore component %s: %w", c.Name, err)
		}
		f := filters[c.Name]
		if f == nil || whole[c.Name] {
			f = &Filter{}
			filters[c.Name] = f
		}
		f.Include, f.Exclude = opts.Include, opts.Exclude
		if c.Kind == snapshot.KindStream && !f.empty() {
			return nil, nil, fmt.Errorf("restore component %s: a stream has no paths to select (%s); name only tree components with --component", c.Name, f)
		}
		if err := f.compile(); err != nil {
			return nil, nil, err
		}
	}
	return comps, filters, nil
}

// checkStream insists that a stream's tree is what the archiver writes: one
// file named after the component. Anything else would write somewhere the
// user did not ask for.
func (rs *restorer) checkStream(ctx context.Context, c snapshot.Component) error {
	tree, err := rs.r.LoadTree(ctx, c.Tree)
	if err != nil {
		return err
	}
	if len(tree.Nodes) != 1 || tree.Nodes[0].Name != c.Name || tree.Nodes[0].Type != snapshot.File {
		return fmt.Errorf("stream component's tree must hold exactly one file named %q", c.Name)
	}
	return nil
}

// walk creates directories and symlinks and collects files, at every
// path a tree appears under. A directory that cannot be created or a tree
// that cannot be read is reported and the rest goes on; a cancelled
// restore (SIGTERM) stops between directories rather than after the whole
// tree has been created.
func (rs *restorer) walk(ctx context.Context, dir string, treeID chunk.ID) error {
	trees, err := rs.r.PrefetchTrees(ctx, dir, treeID, func(p string) bool { return rs.filter.Descend(rs.rel(p)) })
	if err != nil {
		return err
	}
	w := rs.r.NewWalker(repo.WalkOptions{EveryPath: true, Load: trees.Load})
	return w.Walk(ctx, dir, treeID, repo.Visitor{
		Enter: func(p string, n *snapshot.Node) (bool, error) {
			rel := rs.rel(p)
			if !rs.filter.Descend(rel) {
				return false, nil
			}
			if !rs.filter.Selected(rel) {
				rs.pending[p] = n // made when something below is restored
				return true, nil
			}
			rs.selected++
			if !rs.makeParents(path.Dir(p)) {
				return false, nil
			}
			if err := rs.t.Mkdir(p); err != nil {
				rs.fail(p, err)
				rs.dirState[p] = false
				return false, nil
			}
			rs.dirState[p] = true
			rs.res.Dirs++
			return true, nil
		},
		Tree: func(dir string, _ chunk.ID, tree *snapshot.Tree, err error) error {
			if err != nil {
				rs.fail(dir, err)
				return nil
			}
			for i := range tree.Nodes {
				n := &tree.Nodes[i]
				p := path.Join(dir, n.Name)
				if n.Type == snapshot.Dir {
					continue // Enter
				}
				if !rs.filter.Selected(rs.rel(p)) {
					continue
				}
				rs.selected++
				if !rs.makeParents(dir) {
					continue
				}
				switch n.Type {
				case snapshot.Symlink:
					if err := rs.t.Symlink(p, n.LinkTarget); err != nil {
						rs.fail(p, err)
						continue
					}
					if err := rs.t.SetMetadata(p, n); err != nil {
						rs.fail(p, err)
					}
				case snapshot.File:
					if n.HardLink != "" {
						rs.links = append(rs.links, hardLink{path: p, first: path.Join(rs.root, n.HardLink), node: *n})
						continue
					}
					if err := rs.add(ctx, &restoreFile{path: p, node: n}); err != nil {
						return err
					}
				case snapshot.Fifo, snapshot.CharDev, snapshot.BlockDev:
					if err := rs.t.Mknod(p, n); err != nil {
						rs.fail(p, err)
						continue
					}
					if err := rs.t.SetMetadata(p, n); err != nil {
						rs.fail(p, err)
						continue
					}
					rs.res.Files++
				}
			}
			return nil
		},
		// Directory metadata is set last, children before parents (see
		// Restore): Leave comes after everything below.
		Leave: func(p string, n *snapshot.Node, _ chunk.ID, _ *snapshot.Tree) error {
			if n != nil && rs.dirState[p] {
				rs.dirs = append(rs.dirs, dirMeta{path: p, node: *n})
			}
			return nil
		},
	})
}

// rel is p's path within the component being walked.
func (rs *restorer) rel(p string) string {
	if rs.root == "" {
		return p // a stream: never filtered
	}
	if p == rs.root {
		return ""
	}
	return strings.TrimPrefix(p, rs.root+"/")
}

// makeParents creates the directories the filter passed through on the
// way to dir, top down, each with its own metadata (set deepest first by
// Leave, like every restored directory). It reports whether dir exists.
func (rs *restorer) makeParents(dir string) bool {
	if dir == rs.root || dir == "." || dir == "" {
		return true
	}
	if ok, seen := rs.dirState[dir]; seen {
		return ok
	}
	if _, ok := rs.pending[dir]; !ok {
		return true // a component root, or made by Enter
	}
	if !rs.makeParents(path.Dir(dir)) {
		rs.dirState[dir] = false
		return false
	}
	if err := rs.t.Mkdir(dir); err != nil {
		rs.fail(dir, err)
		rs.dirState[dir] = false
		return false
	}
	rs.dirState[dir] = true
	rs.res.Dirs++
	return true
}

// maxReadGap is the largest run of unneeded bytes a pack read goes through
// rather than ending its Get and starting another (see repo.MaxReadGap for
// the measurement).
const maxReadGap = repo.MaxReadGap

// heldFilesPerWorker bounds the files a worker keeps open: the files of
// the blob it writes and those it wrote last. A file whose other blobs
// come from other packs is closed between them and reopened, so open
// files stay at most Workers×heldFilesPerWorker however the snapshot's
// blobs are spread (a blob shared by the first chunk of every file of a
// large tree would otherwise open them all at once).
const heldFilesPerWorker = 32

// blobUse is one blob the restore reads and every place it goes.
type blobUse struct {
	loc     index.Location
	targets []blobTarget
}

// blobTarget is one occurrence of a blob in a file.
type blobTarget struct {
	file *restoreFile
	i    int // index in file.node.Content
}

// packJob is one pack and the blobs the restore needs from it, by offset.
type packJob struct {
	id   chunk.ID
	uses []*blobUse
}

// writeFiles restores rs.files a pack at a time (see the package
// documentation): plan which blobs of which files each pack serves, then
// let Workers each read one pack at a time, once, and write its blobs to
// every offset that needs them.
func (rs *restorer) writeFiles(ctx context.Context) error {
	empty, packs := rs.planPacks()
	g, gctx := errgroup.WithContext(ctx)
	type job struct {
		pack  *packJob
		empty *restoreFile
	}
	jobs := make(chan job)
	for range rs.opts.Workers {
		g.Go(func() error {
			w := &worker{rs: rs}
			defer w.releaseAll()
			for j := range jobs {
				if j.empty != nil {
					w.emptyFile(j.empty)
					continue
				}
				if err := w.readPack(gctx, j.pack); err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(jobs)
		for _, f := range empty {
			select {
			case jobs <- job{empty: f}:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		for _, p := range packs {
			select {
			case jobs <- job{pack: p}:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	return g.Wait()
}

// planPacks finds every blob of rs.files in the index and groups their
// occurrences by blob and the blobs by pack. Packs come in the order the
// files first need them (walk order), so a file's packs are read close
// together and it is finished soon after it is started. Files without
// content are returned apart; a file with a blob the index lacks fails
// here and reads nothing.
//
// Memory: one blobTarget (16 bytes) per blob occurrence and one blobUse
// per distinct blob, beside the offsets the files keep for verify.
func (rs *restorer) planPacks() (empty []*restoreFile, packs []*packJob) {
	uses := map[chunk.ID]*blobUse{}
	byPack := map[chunk.ID]*packJob{}
	for _, f := range rs.files {
		locs, err := rs.plan(f)
		if err != nil {
			f.failed.Store(true)
			rs.fail(f.path, err)
			continue
		}
		if len(locs) == 0 {
			empty = append(empty, f)
			continue
		}
		f.remaining = len(locs)
		for i, loc := range locs {
			u := uses[loc.Blob.ID]
			if u == nil {
				u = &blobUse{loc: loc}
				uses[loc.Blob.ID] = u
				p := byPack[loc.Pack]
				if p == nil {
					p = &packJob{id: loc.Pack}
					byPack[loc.Pack] = p
					packs = append(packs, p)
				}
				p.uses = append(p.uses, u)
			}
			u.targets = append(u.targets, blobTarget{file: f, i: i})
		}
	}
	for _, p := range packs {
		slices.SortFunc(p.uses, func(a, b *blobUse) int { return cmp.Compare(a.loc.Blob.Offset, b.loc.Blob.Offset) })
	}
	return empty, packs
}

// plan computes each blob's offset, and finds its location, in the index.
func (rs *restorer) plan(f *restoreFile) ([]index.Location, error) {
	f.offsets = make([]int64, len(f.node.Content))
	locs := make([]index.Location, len(f.node.Content))
	var off int64
	for i, id := range f.node.Content {
		loc, ok := rs.r.Index().Lookup(pack.DataBlob, id)
		if !ok {
			return nil, &repo.BlobError{Type: pack.DataBlob, ID: id, Err: repo.ErrBlobNotFound}
		}
		locs[i] = loc
		f.offsets[i] = off
		off += int64(loc.Blob.RawLength)
	}
	if uint64(off) != f.node.Size {
		return nil, fmt.Errorf("blobs add up to %d bytes, the snapshot says %d", off, f.node.Size)
	}
	return locs, nil
}

// worker restores packs one at a time. It holds the files it writes open
// (at most heldFilesPerWorker, least recently written dropped first), and
// lets go of all of them after each pack. Its buffers are one stored blob
// and one plaintext (ReadBlobs), and one more plaintext for a blob read
// from another copy: with the chunker's largest blob (8 MiB by default)
// at most about 3×8 MiB a worker, and no pack is ever held whole.
type worker struct {
	rs   *restorer
	held []*restoreFile // oldest first
	buf  []byte         // for blobs read from another copy
}

func (w *worker) readPack(ctx context.Context, p *packJob) error {
	defer w.releaseAll()
	blobs := make([]pack.Blob, len(p.uses))
	for i, u := range p.uses {
		blobs[i] = u.loc.Blob
	}
	return w.rs.r.ReadBlobs(ctx, p.id, blobs, maxReadGap, func(i int, plain []byte, err error) error {
		if err := ctx.Err(); err != nil {
			return err // stop between blobs, not after the pack
		}
		u := p.uses[i]
		if err != nil {
			plain, err = w.otherCopy(ctx, u, err)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		w.deliver(u, plain, err)
		return nil
	})
}

// otherCopy reads a blob that failed in its pack from another copy, if
// the index has one (a blob stored twice, after a crash or by concurrent
// backups), as LoadBlob does; else it returns the first error.
func (w *worker) otherCopy(ctx context.Context, u *blobUse, first error) ([]byte, error) {
	for _, loc := range w.rs.r.Index().LookupAll(pack.DataBlob, u.loc.Blob.ID) {
		if loc.Pack == u.loc.Pack {
			continue
		}
		plain, err := w.rs.r.LoadBlobAt(ctx, loc, w.buf)
		if err == nil {
			w.buf = plain[:0]
			return plain, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, first
}

// deliver writes a blob (or its error) to every occurrence.
func (w *worker) deliver(u *blobUse, plain []byte, err error) {
	rs := w.rs
	zero := err == nil && isZero(plain)
	for _, t := range u.targets {
		f := t.file
		switch {
		case err != nil:
			rs.failFile(f, err)
		case f.failed.Load():
		default:
			rs.nbytes.Add(uint64(len(plain)))
			rs.opts.Progress.Bytes.Add(uint64(len(plain)))
			fh, err := w.hold(f)
			if err != nil {
				rs.failFile(f, err)
				break
			}
			if zero {
				f.hole.Store(true)
				break // leave a hole; finish truncates to the length
			}
			if _, err := fh.WriteAt(plain, f.offsets[t.i]); err != nil {
				rs.failFile(f, err)
			}
		}
		w.delivered(f)
	}
}

// emptyFile restores a file without content.
func (w *worker) emptyFile(f *restoreFile) {
	if _, err := w.hold(f); err != nil {
		w.rs.failFile(f, err)
	}
	f.mu.Lock()
	f.remaining = 0
	f.mu.Unlock()
	w.release(f)
}

// hold returns f's open handle, creating the file at its first blob and
// reopening it after a pack that left it closed.
func (w *worker) hold(f *restoreFile) (*os.File, error) {
	if i := slices.Index(w.held, f); i >= 0 {
		w.held = append(append(w.held[:i:i], w.held[i+1:]...), f) // most recent last
		return f.f, nil
	}
	f.mu.Lock()
	if f.f == nil {
		var err error
		if !f.created {
			f.f, err = w.rs.t.Create(f.path)
			f.created = err == nil
		} else {
			f.f, err = w.rs.t.Reopen(f.path)
		}
		if err != nil {
			f.f = nil
			f.mu.Unlock()
			return nil, err
		}
	}
	f.refs++
	fh := f.f
	f.mu.Unlock()
	w.held = append(w.held, f)
	if len(w.held) > heldFilesPerWorker {
		old := w.held[0]
		w.held = w.held[1:]
		w.unref(old)
	}
	return fh, nil
}

// delivered counts one occurrence of f done; after its last one f is let
// go at once, and finished if no other worker holds it.
func (w *worker) delivered(f *restoreFile) {
	f.mu.Lock()
	f.remaining--
	last := f.remaining == 0
	f.mu.Unlock()
	if !last {
		return
	}
	if slices.Contains(w.held, f) {
		w.release(f)
		return
	}
	f.mu.Lock()
	if f.refs == 0 {
		w.rs.finish(f)
	}
	f.mu.Unlock()
}

// release lets go of f if this worker holds it.
func (w *worker) release(f *restoreFile) {
	if i := slices.Index(w.held, f); i >= 0 {
		w.held = slices.Delete(w.held, i, i+1)
		w.unref(f)
		return
	}
	f.mu.Lock()
	if f.refs == 0 && f.remaining == 0 && !f.closed.Load() {
		w.rs.finish(f)
	}
	f.mu.Unlock()
}

func (w *worker) releaseAll() {
	for _, f := range w.held {
		w.unref(f)
	}
	w.held = w.held[:0]
}

// unref drops one hold of f: the last one closes it, and finishes it
// when all of its blobs are delivered.
func (w *worker) unref(f *restoreFile) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refs--
	if f.refs > 0 {
		return
	}
	if f.remaining == 0 {
		w.rs.finish(f)
		return
	}
	if err := f.f.Close(); err != nil {
		w.rs.failFile(f, err)
	}
	f.f = nil
}

// linkFiles makes each hard link to the file restored first. A link whose
// first file was not restored (its data was lost, or the selection left
// it out) gets its own copy of the content instead, which every
// hard-linked node carries. Every batch is written when it runs.
func (rs *restorer) linkFiles(ctx context.Context) error {
	for i := range rs.links {
		l := &rs.links[i]
		if !rs.restored.has(l.first) {
			if err := rs.add(ctx, &restoreFile{path: l.path, node: &l.node}); err != nil {
				return err
			}
			continue
		}
		if err := rs.t.Link(l.first, l.path); err != nil {
			rs.fail(l.path, err)
			continue
		}
		rs.res.Files++
		rs.opts.Progress.Files.Add(1)
	}
	return rs.flush(ctx)
}

// pathSet is a set of paths kept as 64-bit hashes with a random seed: 8
// to 16 bytes a path instead of the path, for the files restored in
// earlier batches (200,000 paths: about 3 MiB against 11). A path not in
// the set is taken for one in it with a chance of about n/2^64, and then
// only makes a hard link within the target to the file at that path.
type pathSet struct {
	seed maphash.Seed
	m    map[uint64]struct{}
}

func newPathSet() pathSet { return pathSet{seed: maphash.MakeSeed(), m: map[uint64]struct{}{}} }

func (s pathSet) add(p string) { s.m[maphash.String(s.seed, p)] = struct{}{} }

func (s pathSet) has(p string) bool {
	_, ok := s.m[maphash.String(s.seed, p)]
	return ok
}

// removeUnfinished removes the files a stopped restore (cancelled, or a
// store error) had created but not finished: a file with part of its
// content must not stay behind looking restored. Files already complete
// keep their content and metadata.
func (rs *restorer) removeUnfinished() {
	for _, f := range rs.files {
		if f.created && !f.closed.Load() {
			if f.f != nil {
				f.f.Close()
			}
			_ = rs.t.Remove(f.path)
		}
	}
}

// finish ends a file once every blob occurrence was delivered and no
// worker holds it; f.mu is held.
func (rs *restorer) finish(f *restoreFile) {
	defer f.closed.Store(true)
	if f.failed.Load() {
		// Content is missing: do not leave a file that has the right size
		// and mtime and so looks restored to rsync or to the next backup.
		if f.f != nil {
			f.f.Close()
			f.f = nil
		}
		if f.created {
			if err := rs.t.Remove(f.path); err != nil {
				rs.fail(f.path, fmt.Errorf("remove incomplete file: %w", err))
			}
		}
		return
	}
	if f.f == nil { // not reached: a file not failed was held at its last blob
		var err error
		if f.f, err = rs.t.Reopen(f.path); err != nil {
			rs.failFile(f, err)
			return
		}
	}
	// Create leaves a file empty, so after every blob is written it has
	// its size unless zero blobs at its end were left as holes: one
	// ftruncate fewer for most files. The metadata goes through the open
	// handle, without resolving the path again (three calls, not six).
	var err error
	if f.hole.Load() {
		err = f.f.Truncate(int64(f.node.Size))
	}
	if err == nil {
		err = rs.t.SetFileMetadata(f.path, f.f, f.node)
	}
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	f.f = nil
	if err != nil && f.failed.CompareAndSwap(false, true) {
		rs.fail(f.path, err)
	}
	if !f.failed.Load() {
		rs.mu.Lock()
		rs.res.Files++
		rs.mu.Unlock()
		rs.opts.Progress.Files.Add(1)
	}
}

// failFile reports f's first error; its other blobs are then not written.
func (rs *restorer) failFile(f *restoreFile, err error) {
	if f.failed.CompareAndSwap(false, true) {
		rs.fail(f.path, err)
	}
}

func isZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// verify re-reads every restored file and checks each blob's keyed hash.
func (rs *restorer) verify(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, f := range rs.files {
		if f.failed.Load() || f.offsets == nil {
			continue
		}
		g.Go(func() error {
			if err := rs.verifyFile(gctx, f); err != nil {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				rs.failFile(f, fmt.Errorf("verify: %w", err))
			}
			return nil
		})
	}
	return g.Wait()
}

func (rs *restorer) verifyFile(ctx context.Context, f *restoreFile) error {
	fh, err := rs.t.Open(f.path)
	if err != nil {
		return err
	}
	defer fh.Close()
	var buf []byte
	for i, id := range f.node.Content {
		if err := ctx.Err(); err != nil {
			return err
		}
		end := f.node.Size
		if i+1 < len(f.offsets) {
			end = uint64(f.offsets[i+1])
		}
		n := int(end - uint64(f.offsets[i]))
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(fh, buf); err != nil {
			return fmt.Errorf("read at %d: %w", f.offsets[i], err)
		}
		if rs.r.Hasher().Sum(buf) != id {
			return fmt.Errorf("content at offset %d does not match blob %s", f.offsets[i], id.Short())
		}
	}
	var one [1]byte
	if n, _ := fh.Read(one[:]); n != 0 {
		return fmt.Errorf("file is longer than %d bytes", f.node.Size)
	}
	return nil
}
