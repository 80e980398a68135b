// Package archive turns sources into a snapshot: each component's tree or
// stream is chunked, its new blobs saved through one repo.Saver session,
// and the manifest written only once every blob is durable and indexed.
package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"golang.org/x/sync/errgroup"
)

// FS is what the archiver reads a tree component from; sources/tree
// implements it for a local directory. Paths are relative and
// slash-separated, "" is the root. Methods are called from several
// goroutines. ReadDir returns nodes sorted by name without content; when
// some entries could not be examined it returns the others with a non-nil
// error, and the archiver records the error and keeps the others.
type FS interface {
	ReadDir(ctx context.Context, dir string) ([]snapshot.Node, error)
	Open(ctx context.Context, file string) (io.ReadCloser, error)
}

// ListedOpener is an FS that can open a file with the node ReadDir listed
// it with, sparing the stat that Open makes to learn the state to compare
// after reading (sources/tree: one system call of six per small file).
// Its reader reports a file changed since it was listed as changed, and
// the second attempt goes through Open.
type ListedOpener interface {
	OpenListed(ctx context.Context, file string, listed snapshot.Node) (io.ReadCloser, error)
}

// ComponentSource is one component to back up: a directory tree (FS) or a
// stream (Reader).
type ComponentSource struct {
	Name   string
	Source string    // recorded in the manifest: a path, "stdin", …
	FS     FS        // set for KindTree
	Reader io.Reader // set for KindStream
	// Finish, when set, runs after the component's data has been read and
	// before it counts as complete; an error fails the component and no
	// snapshot is written. A dump command's exit status and an
	// Elasticsearch repository generation that moved during the copy are
	// checked here.
	Finish func(ctx context.Context) error
	// Meta is recorded in the manifest's component.
	Meta map[string]string
	// Start, when set, is called when the component's turn comes — after
	// the components before it are complete — and returns the source to
	// read (its FS or Reader, Finish and Meta are taken from the result).
	// A dump command or an Elasticsearch snapshot starts here, so the
	// components are taken in order and as close together as possible.
	Start func(ctx context.Context) (ComponentSource, error)
	// Before and After run around the component (stop a worker, deactivate
	// a space). After runs whenever Before was attempted, also when the
	// component failed.
	Before, After func(ctx context.Context) error
	// OnFailure, when set, runs before After when the component failed,
	// and is given the error.
	OnFailure func(ctx context.Context, err error) error
	// Fixed says when the source fixes the state it delivers, which is
	// when the next component may start (see FixedAt).
	Fixed FixedAt
}

// FixedAt is when a component's source fixes the state it delivers: its
// point in time, recorded in the manifest (Component.Point). The next
// component starts as soon as it is fixed, while this one's bytes may
// still be read, so the components' points come in order and as close
// together as the sources allow: the skew of points approaches the
// longest component's own span instead of the sum of all durations.
//
// Components then run concurrently, each with its own readers (a stream
// one chunker buffer of the chunker's maximum size, a tree
// ReadConcurrency of them for large files and small buffers for small
// ones), all saving through the one saver, whose
// pipeline and memory bound are shared.
type FixedAt int

const (
	// FixedAtEnd: the state is not fixed before the data has been read
	// (a directory tree; a stream of unknown origin). The next component
	// starts after this one, and its after hook, have finished; no point
	// is recorded.
	FixedAtEnd FixedAt = iota
	// FixedAtFirstByte: a stream whose producer fixes its state before it
	// writes its first byte (pg_dump takes its snapshot, and holds it,
	// before any output). The point is the first byte's arrival.
	FixedAtFirstByte
	// FixedAtStart: the state is fixed when Start returns (an
	// Elasticsearch snapshot, complete when the snapshot call returns;
	// what remains is copying its immutable files).
	FixedAtStart
)

// Options describe the snapshot to write.
type Options struct {
	Time    time.Time // snapshot time; default now
	Host    string
	App     string // application name recorded in the manifest
	Tags    []string
	Program string
	// ReadConcurrency is how many files larger than repo.InlineMax are
	// read and chunked at once (default 2: one core chunks and hashes
	// while the other compresses); twice as many goroutines read the small
	// files, each encoding its own (walk.go says why).
	ReadConcurrency int
	Saver           repo.SaverOptions
	// Progress, when set, is updated as the backup runs; read it from
	// another goroutine.
	Progress *repo.Progress
	// NoParent disables the unchanged-file shortcut (read everything).
	NoParent bool
	// Before and After run around the whole snapshot; After runs whenever
	// Before was attempted, also when the backup failed.
	Before, After func(ctx context.Context) error
	// OnFailure, when set, runs before After when the backup failed, and
	// is given the error.
	OnFailure func(ctx context.Context, err error) error
	// MaxSkew, when positive, fails a backup whose components' points in
	// time are further apart than this (snapshot.PointSkew; without points,
	// from the first start to the last end): the parts would not describe
	// one point in time closely enough. No snapshot is written.
	MaxSkew time.Duration
}

// ErrSkew is returned (wrapped) when a backup exceeds MaxSkew.
var ErrSkew = errors.New("archive: components too far apart in time")

// FileError is a file or directory that could not be read, or (Stored) a
// file that kept changing while it was read and was stored as read. The
// backup goes on and the snapshot records the count.
type FileError struct {
	Component string
	Path      string
	Err       error
	// Stored: the file is in the snapshot, marked Inconsistent; it changed
	// during both reads, so its content may mix two versions.
	Stored bool
}

func (e FileError) Error() string {
	if e.Stored {
		return fmt.Sprintf("%s/%s: stored as read, may be inconsistent: %v", e.Component, e.Path, e.Err)
	}
	return fmt.Sprintf("%s/%s: %v", e.Component, e.Path, e.Err)
}

// ChangeReporter is implemented by a file reader (sources/tree's) that can
// tell, once read to the end, whether the file changed while it was read.
type ChangeReporter interface {
	Changed() error
}

// Result is what Backup wrote.
type Result struct {
	ID         chunk.ID
	Snapshot   *snapshot.Snapshot
	FileErrors []FileError
	// Skipped lists what was left out on purpose (sockets: not data, and
	// nothing can restore them); it does not make a backup partial.
	Skipped []FileError
	Saver   repo.SaverStats
}

// Backup archives the components in order into one snapshot. The snapshot is
// written only if every component completed and every blob is durable and
// indexed; a file that cannot be read is left out and reported in
// FileErrors, but a failing component (missing source directory, failing
// stream) fails the whole backup and writes no snapshot.
func Backup(ctx context.Context, r *repo.Repository, comps []ComponentSource, opts Options) (*Result, error) {
	if len(comps) == 0 {
		return nil, errors.New("archive: nothing to back up: name at least one component")
	}
	seen := map[string]bool{}
	for _, c := range comps {
		if err := snapshot.ValidComponentName(c.Name); err != nil {
			return nil, err
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("archive: component %q given twice", c.Name)
		}
		seen[c.Name] = true
		if c.Start == nil && (c.FS == nil) == (c.Reader == nil) {
			return nil, fmt.Errorf("archive: component %q needs exactly one of a directory or a stream", c.Name)
		}
	}
	if opts.ReadConcurrency <= 0 {
		opts.ReadConcurrency = 2
	}
	if opts.Progress == nil {
		opts.Progress = &repo.Progress{}
	}
	if opts.Time.IsZero() {
		opts.Time = time.Now()
	}
	var parents []repo.SnapshotEntry
	if !opts.NoParent {
		// A damaged manifest only costs the shortcut for its components;
		// check reports it.
		all, err := r.Snapshots(ctx)
		if err != nil && !errors.Is(err, repo.ErrDamagedSnapshots) {
			return nil, err
		}
		parents = all
	}
	// After the snapshots, so the index covers every blob a parent (maybe
	// written by a backup that ran meanwhile) names.
	if err := r.LoadIndex(ctx); err != nil {
		return nil, err
	}

	if opts.Before != nil {
		if err := opts.Before(ctx); err != nil {
			err = fmt.Errorf("before hook: %w", err)
			return nil, errors.Join(err, runOnFailure(ctx, opts.OnFailure, err), runAfter(ctx, opts.After))
		}
	}
	res, err := backup(ctx, r, comps, parents, opts)
	if err != nil {
		err = errors.Join(err, runOnFailure(ctx, opts.OnFailure, err))
	}
	if aerr := runAfter(ctx, opts.After); aerr != nil {
		if err == nil {
			// The snapshot is written and complete; the hook's failure
			// is the operator's to fix, reported with the exit code.
			return res, fmt.Errorf("snapshot %s written, but the after hook failed: %w", res.ID.Short(), aerr)
		}
		err = errors.Join(err, aerr)
	}
	return res, err
}

// runOnFailure runs an on-failure hook, even when ctx is cancelled.
func runOnFailure(ctx context.Context, hook func(context.Context, error) error, cause error) error {
	if hook == nil {
		return nil
	}
	if err := hook(context.WithoutCancel(ctx), cause); err != nil {
		return fmt.Errorf("on_failure hook: %w", err)
	}
	return nil
}

// runAfter runs an after hook even when ctx is cancelled: a service
// stopped by the before hook must come back up.
func runAfter(ctx context.Context, hook func(context.Context) error) error {
	if hook == nil {
		return nil
	}
	if err := hook(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("after hook: %w", err)
	}
	return nil
}

func backup(ctx context.Context, r *repo.Repository, comps []ComponentSource, parents []repo.SnapshotEntry, opts Options) (*Result, error) {
	sn := &snapshot.Snapshot{
		Version: snapshot.Version,
		Time:    opts.Time.UTC(),
		Host:    opts.Host,
		App:     opts.App,
		Tags:    opts.Tags,
		Program: opts.Program,
	}
	res := &Result{Snapshot: sn}
	archs := make([]*archiver, len(comps))
	stats, err := r.WithSaver(ctx, opts.Saver, func(ctx context.Context, s *repo.Saver) error {
		done := make([]snapshot.Component, len(comps))
		err := runInOrder(ctx, comps, func(ctx context.Context, i int, fixed func()) error {
			c := comps[i]
			a := &archiver{r: r, s: s, opts: &opts, name: c.Name, prog: opts.Progress.Component(c.Name)}
			archs[i] = a
			comp, err := a.component(ctx, c, parents, fixed)
			if err != nil {
				return fmt.Errorf("component %s: %w", c.Name, err)
			}
			done[i] = comp
			return nil
		})
		for _, a := range archs {
			if a != nil {
				res.FileErrors = append(res.FileErrors, a.errs...)
				res.Skipped = append(res.Skipped, a.skipped...)
			}
		}
		if err != nil {
			return err
		}
		sn.Components = done
		if skew := sn.PointSkew(); opts.MaxSkew > 0 && skew > opts.MaxSkew {
			return fmt.Errorf("%w: their points in time are %s apart, more than --max-skew %s", ErrSkew, skew.Round(time.Millisecond), opts.MaxSkew)
		}
		return nil
	})
	res.Saver = stats
	if err != nil {
		return res, err
	}
	// Encoders count stored bytes as they go; only now are all counted.
	for i := range sn.Components {
		sn.Components[i].AddedBytes = archs[i].added.Load()
	}
	id, err := r.SaveSnapshot(ctx, sn)
	if err != nil {
		return res, err
	}
	res.ID = id
	return res, nil
}

// runInOrder runs take for each component in order, each in its own
// goroutine: component i+1 starts once component i has called fixed (or
// returned). The first error cancels the others' context and is returned
// once all have returned.
func runInOrder(ctx context.Context, comps []ComponentSource, take func(ctx context.Context, i int, fixed func()) error) error {
	g, gctx := errgroup.WithContext(ctx)
	// failed is set before a failing component lets the next one go, so
	// the next one is not started (errgroup cancels gctx only after the
	// function has returned).
	var failed atomic.Bool
	var prev chan struct{}
	for i := range comps {
		if prev != nil {
			select {
			case <-prev:
			case <-gctx.Done():
			}
			if failed.Load() || gctx.Err() != nil {
				break
			}
		}
		ch := make(chan struct{})
		var once sync.Once
		fixed := func() { once.Do(func() { close(ch) }) }
		g.Go(func() error {
			err := take(gctx, i, fixed)
			if err != nil {
				failed.Store(true)
			}
			fixed()
			return err
		})
		prev = ch
	}
	return g.Wait()
}

// component takes one component: its before hook, its start, its data, its
// finish check, and its after hook (which runs whatever happened). It
// calls fixed when the source has fixed its state (c.Fixed), letting the
// next component start.
func (a *archiver) component(ctx context.Context, c ComponentSource, parents []repo.SnapshotEntry, fixed func()) (comp snapshot.Component, err error) {
	if c.Before != nil {
		if err := c.Before(ctx); err != nil {
			err = fmt.Errorf("before hook: %w", err)
			return comp, errors.Join(err, runOnFailure(ctx, c.OnFailure, err), runAfter(ctx, c.After))
		}
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, runOnFailure(ctx, c.OnFailure, err))
		}
		if aerr := runAfter(ctx, c.After); aerr != nil {
			err = errors.Join(err, aerr)
		}
	}()
	started := time.Now()
	if c.Start != nil {
		src, err := c.Start(ctx)
		if err != nil {
			return comp, err
		}
		if (src.FS == nil) == (src.Reader == nil) {
			return comp, errors.New("source gave neither or both of a directory and a stream")
		}
		c.FS, c.Reader, c.Finish, c.Meta = src.FS, src.Reader, src.Finish, src.Meta
		if src.Source != "" {
			c.Source = src.Source
		}
	}
	var point time.Time
	switch c.Fixed {
	case FixedAtStart:
		point = time.Now()
		fixed()
	case FixedAtFirstByte:
		if c.Reader == nil {
			return comp, errors.New("only a stream can fix its point in time at its first byte")
		}
		c.Reader = &firstByte{r: c.Reader, at: func() { point = time.Now(); fixed() }}
	}
	if c.FS != nil {
		comp, err = a.tree(ctx, c, findParentTree(parents, a.opts.Host, c), started)
	} else {
		comp, err = a.stream(ctx, c, started)
	}
	if err == nil && c.Finish != nil {
		err = c.Finish(ctx)
	}
	if err != nil {
		return comp, err
	}
	comp.Meta = c.Meta
	comp.Finished = time.Now().UTC()
	if !point.IsZero() {
		comp.Point = point.UTC()
	}
	return comp, nil
}

// firstByte calls at when the first bytes have been read from r.
type firstByte struct {
	r    io.Reader
	at   func()
	seen bool
}

func (f *firstByte) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && !f.seen {
		f.seen = true
		f.at()
	}
	return n, err
}

// findParentTree returns the root tree of the newest earlier backup of the
// same component from the same host and source, the baseline for skipping
// unchanged files.
func findParentTree(all []repo.SnapshotEntry, host string, c ComponentSource) *chunk.ID {
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Host != host {
			continue
		}
		pc := all[i].Component(c.Name)
		if pc != nil && pc.Kind == snapshot.KindTree && pc.Source == c.Source {
			id := pc.Tree
			return &id
		}
	}
	return nil
}

// archiver archives one component.
type archiver struct {
	r     *repo.Repository
	s     *repo.Saver
	opts  *Options
	name  string
	prog  *repo.Progress // the component's, counting on the job's too
	added atomic.Uint64

	mu      sync.Mutex
	errs    []FileError // guarded by mu
	skipped []FileError // guarded by mu

	files, dirs, size atomic.Uint64
}

func (a *archiver) fileError(p string, err error) {
	a.mu.Lock()
	a.errs = append(a.errs, FileError{Component: a.name, Path: p, Err: err})
	a.mu.Unlock()
	a.prog.Add(0, 0, 0, 1)
}

func (a *archiver) finish(c *snapshot.Component, started time.Time, root chunk.ID) {
	c.Tree = root
	c.Started = started.UTC()
	c.Finished = time.Now().UTC()
	c.Files = a.files.Load()
	c.Dirs = a.dirs.Load()
	c.Size = a.size.Load()
	c.Errors = uint64(len(a.errs))
}

// stream stores one stream as a tree with a single file node named after the
// component.
func (a *archiver) stream(ctx context.Context, c ComponentSource, started time.Time) (snapshot.Component, error) {
	comp := snapshot.Component{Name: c.Name, Kind: snapshot.KindStream, Source: c.Source}
	// Streams (dumps) have a chunker set of their own, with smaller chunks
	// than files (repo.Repository.StreamChunkerParams).
	fr := &fileReader{ch: chunk.NewChunkerSize(a.r.StreamChunkerParams(), nil, chunkerReadSize)}
	content, size, err := a.chunkStreamPiped(ctx, fr, c.Reader)
	if err != nil {
		return comp, fmt.Errorf("read stream: %w", err)
	}
	node := snapshot.Node{Name: c.Name, Type: snapshot.File, Mode: 0o600, ModTime: started.Truncate(time.Second), Size: size, Content: content}
	a.files.Add(1)
	a.size.Add(size)
	a.prog.Add(1, 0, 0, 0)
	root, err := a.saveTree(ctx, &snapshot.Tree{Nodes: []snapshot.Node{node}})
	if err != nil {
		return comp, err
	}
	a.finish(&comp, started, root)
	return comp, nil
}

// fileReader is one reading goroutine's chunker, reused across files (its
// tables and its read buffer).
type fileReader struct {
	ch *chunk.Chunker
	// small, when not nil, is the buffer this reader cuts into: a
	// reader of small files (walk.go) holds repo.InlineMax bytes, not a
	// chunk buffer that a large file may have filled to 2 MiB.
	small []byte
}

// chunkerReadSize is the chunkers' own read buffer. Their reads go
// straight into the chunk buffers, up to the chunk's minimum in one read
// and then 64 KiB at a time; their own buffer holds only what a read
// brought past a cut, and 512 KiB of it held 448 KiB of heap that was
// never used, per reader.
const chunkerReadSize = 64 << 10

func (a *archiver) newReader() *fileReader {
	return &fileReader{ch: chunk.NewChunkerSize(a.r.ChunkerParams(), nil, chunkerReadSize)}
}

// newSmallReader returns a reader for files of at most repo.InlineMax
// bytes, which reads them in one call into a buffer of that size, not 512
// KiB: the four small readers would otherwise hold 2 MiB of heap, which
// the memory limit takes from the room for garbage.
func (a *archiver) newSmallReader() *fileReader {
	return &fileReader{
		ch:    chunk.NewChunkerSize(a.r.ChunkerParams(), nil, repo.InlineMax),
		small: make([]byte, 0, repo.InlineMax),
	}
}

// chunkBufSize is the capacity of a new chunk buffer: twice the default
// chunker's average, so that about 95% of its chunks fit without the
// buffer growing; one that grew is kept for the next chunk.
const chunkBufSize = 2 << 20

// chunkBufs recycles chunk buffers. The chunker cuts each chunk into a
// buffer from here, and a new blob's buffer goes to the saver, which gives
// it back once the blob is encoded: no copy and no allocation per chunk.
// Cloning each new chunk into a fresh slice made 1.3 GB of garbage on the
// 1.32 GB bench set, and the runtime zeroed every byte of it. A free list,
// not a sync.Pool: the pool empties at every collection, and refilling it
// made more garbage that brought on the next.
//
// No more buffers exist than are in flight at once (a reader's, the
// saver's queue, the encoders'), fewer than its capacity; a buffer
// returned to a full list is dropped.
var chunkBufs = make(chan []byte, 32)

func getChunkBuf() []byte {
	select {
	case b := <-chunkBufs:
		return b
	default:
		return make([]byte, 0, chunkBufSize)
	}
}

// putChunkBuf gives b back for the next chunk if it is a chunk buffer of
// the first size. Keeping the ones that grew (up to 4 MiB) let every
// buffer drift up to the largest chunk seen, 11 MiB of buffers in flight
// instead of 6-8, with the heap at the memory limit; a small reader's own
// buffer (fileReader.small) stays with its reader.
func putChunkBuf(b []byte) {
	if cap(b) != chunkBufSize {
		return
	}
	select {
	case chunkBufs <- b[:0]:
	default:
	}
}

// chunkStream splits r into blobs, saves the new ones and returns the
// content list and length.
func (a *archiver) chunkStream(ctx context.Context, fr *fileReader, r io.Reader) ([]chunk.ID, uint64, error) {
	ch := fr.ch
	ch.Reset(r)
	var content []chunk.ID
	var size uint64
	buf := fr.small
	if buf == nil {
		buf = getChunkBuf()
	}
	defer func() { putChunkBuf(buf) }() // keeps only chunk buffers
	for {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		data, err := ch.Next(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, err
		}
		if cap(data) != cap(buf) {
			// The chunk outgrew buf and the chunker moved it to a
			// larger buffer: buf goes back for the next chunk rather
			// than to the collector. Only here, once the chunk is
			// whole; after a failed read buf is still this function's
			// and the deferred put is its only one.
			//
			// The grown buffers are not kept: two of them (at most 8
			// MiB each, one per large file read at once) held for the
			// next large chunk took so much of the room under the
			// memory limit that a first backup of the bench tree (300
			// MiB, 23 chunks above 2 MiB) collected 430 times instead
			// of 50-90.
			putChunkBuf(buf)
		}
		buf = data[:0]
		id, handed, err := a.saveChunk(ctx, data, true)
		if err != nil {
			return nil, 0, err
		}
		content = append(content, id)
		size += uint64(len(data))
		if handed {
			buf = getChunkBuf() // data is the saver's until it is encoded
		}
	}
	return content, size, nil
}

// saveChunk hashes one cut chunk, counts it, and saves it when the
// repository does not have it yet. When handed is true the saver owns data
// until it is encoded and gives the buffer back to chunkBufs; otherwise
// data is still the caller's. inline asks for a chunk of at most
// repo.InlineMax to be encoded on this goroutine (repo.Saver.SaveInline):
// the files of a tree are mostly one small chunk each, and handing each
// to an encoder goroutine and back cost more than encoding it here.
func (a *archiver) saveChunk(ctx context.Context, data []byte, inline bool) (id chunk.ID, handed bool, err error) {
	id = a.r.Hasher().Sum(data)
	a.prog.Add(0, uint64(len(data)), uint64(len(data)), 0)
	if !a.s.Reserve(pack.DataBlob, id) {
		return id, false, nil
	}
	if inline && len(data) <= repo.InlineMax {
		return id, false, a.s.SaveInline(ctx, pack.DataBlob, id, data, &a.added)
	}
	return id, true, a.s.SaveRelease(ctx, pack.DataBlob, id, data, &a.added, putChunkBuf)
}

// pipedChunks is how many cut chunks may wait between a stream's chunker
// and its hasher. First backups of the bench dumps took the same time
// with 1, 2 and 4 (pg_dump 0.71-0.76 s, generated dump 2.13-2.24 s), and
// each costs a chunk buffer of memory (peak RSS 64, 65 and 69 MiB).
const pipedChunks = 2

// chunkStreamPiped is chunkStream for one large stream, with the cutting
// and the hashing on two goroutines. A stream is read by one goroutine
// only, and while the encoders had little to do (a dump's long runs that
// compress to almost nothing) that goroutine was the whole backup:
// reading, cutting and hashing a chunk, then waiting on the encoders,
// with one of the two cores idle for 30-40% of a first backup of the
// bench's pg_dump. Piped, that backup (280 MiB) takes 0.71-0.74 s
// against 0.77-0.79 s, the generated dump (505 MiB) 2.13-2.18 s against
// 2.18-2.27 s.
func (a *archiver) chunkStreamPiped(ctx context.Context, fr *fileReader, r io.Reader) ([]chunk.ID, uint64, error) {
	g, gctx := errgroup.WithContext(ctx)
	cut := make(chan []byte, pipedChunks)
	g.Go(func() error {
		defer close(cut)
		ch := fr.ch
		ch.Reset(r)
		for {
			if err := gctx.Err(); err != nil {
				return err
			}
			buf := getChunkBuf()
			data, err := ch.Next(buf)
			if err != nil {
				putChunkBuf(buf)
				if err == io.EOF {
					return nil
				}
				return err
			}
			select {
			case cut <- data:
			case <-gctx.Done():
				putChunkBuf(data)
				return gctx.Err()
			}
		}
	})
	var content []chunk.ID
	var size uint64
	g.Go(func() error {
		for data := range cut {
			// Not inline: this goroutine is the stream's only hasher,
			// and the encoders keep up with it only in parallel.
			id, handed, err := a.saveChunk(gctx, data, false)
			if err != nil {
				return err
			}
			content = append(content, id)
			size += uint64(len(data))
			if !handed {
				putChunkBuf(data)
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, 0, err
	}
	return content, size, nil
}

func (a *archiver) saveTree(ctx context.Context, t *snapshot.Tree) (chunk.ID, error) {
	buf, err := repo.EncodeTree(t)
	if err != nil {
		return chunk.ID{}, err
	}
	id := a.r.Hasher().Sum(buf)
	if _, err := a.s.SaveIfNew(ctx, pack.TreeBlob, id, buf, &a.added); err != nil {
		return id, err
	}
	return id, nil
}

// readFile chunks one file. A file that cannot be opened or read is left out
// and reported; only store and context errors stop the backup. A file that
// changed while it was read (its reader is a ChangeReporter) is read once
// more; if it changes again it is stored as read, marked Inconsistent in
// its node and reported, so the operator knows that copy may be torn.
func (a *archiver) readFile(ctx context.Context, fsys FS, fr *fileReader, job fileJob) error {
	var (
		content []chunk.ID
		size    uint64
		changed error
	)
	for attempt := 0; attempt < 2; attempt++ {
		var rc io.ReadCloser
		var err error
		if lo, ok := fsys.(ListedOpener); ok && attempt == 0 {
			rc, err = lo.OpenListed(ctx, job.path, job.node)
		} else {
			rc, err = fsys.Open(ctx, job.path)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			a.fileError(job.path, err)
			job.out <- result{skip: true}
			return nil
		}
		content, size, err = a.chunkStream(ctx, fr, &readTracker{r: rc})
		changed = nil
		if cr, ok := rc.(ChangeReporter); ok && err == nil {
			changed = cr.Changed()
		}
		rc.Close()
		if err != nil {
			if ctx.Err() != nil || a.s.Err() != nil {
				return err
			}
			var re *readError
			if errors.As(err, &re) {
				a.fileError(job.path, re.err)
				job.out <- result{skip: true}
				return nil
			}
			return err
		}
		if changed == nil {
			break
		}
	}
	n := job.node
	n.Content = content
	n.Size = size // what was read, if the file changed under us
	if changed != nil {
		n.Inconsistent = true
		a.mu.Lock()
		a.errs = append(a.errs, FileError{Component: a.name, Path: job.path, Err: changed, Stored: true})
		a.mu.Unlock()
		a.prog.Add(0, 0, 0, 1)
	}
	a.files.Add(1)
	a.size.Add(size)
	a.prog.Add(1, 0, 0, 0)
	job.out <- result{node: n}
	return nil
}

// readTracker marks errors from the source so they are told apart from the
// repository's.
type readTracker struct{ r io.Reader }

type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }

func (t *readTracker) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		return n, &readError{err}
	}
	return n, err
}
