package repo

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/index"
	"github.com/cairn-backup/cairn/pack"
	"golang.org/x/sync/errgroup"
)

// SaverOptions tune a blob-saving session. Zero values take the defaults.
type SaverOptions struct {
	// PackSize is the size at which a pack is closed and uploaded. 16 MiB
	// keeps object counts low on S3 and a pack's upload short enough to retry.
	PackSize int
	// Encoders compress and encrypt in parallel; default GOMAXPROCS, because
	// zstd is the most expensive stage of a backup.
	Encoders int
	// Uploaders put packs in parallel; default 2.
	Uploaders int
	// PackBuffers bounds the packs held in memory at once: the one being
	// filled plus those waiting for or in an upload. Each is about
	// PackSize, the largest share of a backup's memory. Default
	// Uploaders+1: every uploader busy while the encoders fill the next
	// pack. At 2 (1 uploader) on a local store the encoders wait for the
	// fsync of the previous pack.
	PackBuffers int
	// IndexEvery writes an index file after this many packs (default 64,
	// ~1 GiB), so a backup that dies halfway keeps what it uploaded: the
	// next run finds those blobs and does not send them again.
	IndexEvery int
	// Memory, when positive, is the memory the session should stay
	// within (at least MinMemory); the pack buffers get what the rest
	// leaves (PackBuffersFor). Fields set explicitly win.
	Memory int64
}

const (
	// fixedMemory is what a backup holds besides its pack buffers,
	// measured on first backups of the bench data at 2 cores: about
	// 16 MiB of resident program and runtime outside the Go heap
	// (`cairn --help` alone peaks at 15 MiB), 4 MiB of zstd history and
	// 4.5 MiB of encoding buffers for two encoders, 6-8 MiB of chunks
	// between the chunker and the encoders, and 16 MiB or more of room
	// for garbage. Without that room (40 MiB in all, two 16 MiB packs at
	// 80 MiB) the heap sat at the memory limit and the collector ran
	// back to back: 160 collections in a backup of the 200 MiB tree, and
	// 2.6-2.8 CPU-s against 2.2-2.4 with the room (and 12 MiB packs).
	fixedMemory = 56 << 20
	// minPackSize is the smallest pack a memory budget shrinks packs to.
	minPackSize = 4 << 20
	// MinMemory is the smallest memory budget: the fixed part and two of
	// the smallest packs.
	MinMemory = fixedMemory + 2*(minPackSize+packReserve)
	// packReserve is the room a pack buffer has beyond PackSize: a pack
	// is closed at the first blob that takes it past PackSize, or before
	// one that does not fit the buffer.
	packReserve = 256 << 10
)

// PackBuffersFor returns how many pack buffers, and of which pack size,
// fit in a memory budget of memory bytes once the fixed part is taken:
// each buffer holds a pack of packSize plus packReserve. When two buffers
// of packSize do not fit the packs shrink (to minPackSize at the least),
// since a session needs one pack to fill and one to upload; when more
// fit, more packs upload at once (up to 8), which helps on a store with
// latency.
func PackBuffersFor(memory int64, packSize int) (buffers, size int) {
	avail := memory - fixedMemory
	per := int64(packSize) + packReserve
	if avail < 2*per {
		return 2, max(int(avail/2)-packReserve, minPackSize)
	}
	return int(min(avail/per, 8)), packSize
}

// ApplyDefaults fills in zero fields with their defaults.
func (o *SaverOptions) ApplyDefaults() {
	if o.PackSize <= 0 {
		o.PackSize = 16 << 20
		if o.Memory > 0 && o.PackBuffers <= 0 {
			o.PackBuffers, o.PackSize = PackBuffersFor(o.Memory, o.PackSize)
		}
	}
	if o.Memory > 0 && o.PackBuffers <= 0 {
		o.PackBuffers, _ = PackBuffersFor(o.Memory, o.PackSize)
	}
	if o.Encoders <= 0 {
		o.Encoders = runtime.GOMAXPROCS(0)
	}
	if o.Uploaders <= 0 {
		o.Uploaders = 2
		if o.PackBuffers > 0 {
			o.Uploaders = o.PackBuffers - 1
		}
	}
	if o.IndexEvery <= 0 {
		o.IndexEvery = 64
	}
	if o.PackBuffers <= 0 {
		o.PackBuffers = o.Uploaders + 1
	}
	// One pack to fill and one to upload at the least, or nothing moves.
	o.PackBuffers = max(o.PackBuffers, 2)
	o.Uploaders = min(o.Uploaders, o.PackBuffers-1)
}

// SaverStats counts what a session added.
type SaverStats struct {
	Blobs       uint64 // new blobs
	RawBytes    uint64 // their plaintext size
	StoredBytes uint64 // their size in packs
	Packs       uint64
	IndexFiles  uint64
}

type blobKey struct {
	t  pack.BlobType
	id chunk.ID
}

type saveJob struct {
	key     blobKey
	data    []byte
	counter *atomic.Uint64 // receives the stored size, for per-component stats
	release func([]byte)   // when non-nil, gets data back once it is encoded
}

type finishedPack struct {
	data  []byte
	blobs []pack.Blob
}

// Saver packs and uploads blobs during one session. Reserve, Save and Stats
// are safe for concurrent use.
type Saver struct {
	r    *Repository
	opts SaverOptions
	ctx  context.Context

	jobs    chan saveJob
	uploads chan finishedPack

	mu       sync.Mutex
	inflight map[blobKey]struct{} // reserved, not yet in the index (guarded by mu)

	packMu sync.Mutex
	pw     *pack.Writer // the open pack, nil until the next blob (guarded by packMu)

	// freePacks holds the buffers of uploaded packs for the next ones;
	// packBufs counts the buffers in existence, at most opts.PackBuffers.
	freePacks chan []byte
	packBufs  atomic.Int32

	idxMu        sync.Mutex
	pending      index.File // uploaded packs not yet in an index file (guarded by idxMu)
	pendingBlobs int        // blobs in pending (guarded by idxMu)

	blobs, raw, stored, packs, indexFiles atomic.Uint64
}

// WithSaver runs fn with a Saver and, when fn returns nil, flushes the last
// pack, waits for every upload and writes the index. When it returns nil
// every blob saved is durable and indexed; only then may a snapshot that
// needs them be written. On failure it still indexes the packs that did
// reach the store, so a retried backup does not upload them again.
func (r *Repository) WithSaver(ctx context.Context, opts SaverOptions, fn func(ctx context.Context, s *Saver) error) (SaverStats, error) {
	opts.ApplyDefaults()
	if err := r.LoadIndex(ctx); err != nil {
		return SaverStats{}, err
	}
	g, gctx := errgroup.WithContext(ctx)
	s := &Saver{
		r:    r,
		opts: opts,
		ctx:  gctx,
		// Unbuffered: a queued chunk is a chunk buffer held (about 2 MiB
		// each), and the readers, which chunk and hash faster than the
		// encoders compress, always have the next one ready.
		jobs:     make(chan saveJob),
		uploads:  make(chan finishedPack, 1),
		inflight: map[blobKey]struct{}{},

		freePacks: make(chan []byte, opts.PackBuffers),
	}
	var encoders sync.WaitGroup
	for range opts.Encoders {
		encoders.Add(1)
		g.Go(func() error {
			defer encoders.Done()
			return s.encodeLoop(gctx)
		})
	}
	var uploaders sync.WaitGroup
	for range opts.Uploaders {
		uploaders.Add(1)
		g.Go(func() error {
			defer uploaders.Done()
			return s.uploadLoop(gctx)
		})
	}
	fnErr := fn(gctx, s)
	close(s.jobs)
	encoders.Wait()
	if fnErr == nil && gctx.Err() == nil {
		s.packMu.Lock()
		if s.pw != nil && s.pw.Count() > 0 {
			data, blobs := s.pw.Finish()
			s.pw = nil
			select {
			case s.uploads <- finishedPack{data, blobs}:
			case <-gctx.Done():
			}
		}
		s.packMu.Unlock()
	}
	close(s.uploads)
	uploaders.Wait()
	// When a stage failed, fn usually saw only the cancellation that
	// followed; the stage's error is the cause worth reporting.
	err := g.Wait()
	if err == nil {
		err = fnErr
	}
	// Index what is durable, also on failure; use a context that a cancelled
	// backup has not cancelled, since these packs are already paid for.
	if ierr := s.flushIndex(context.WithoutCancel(ctx)); ierr != nil && err == nil {
		err = ierr
	}
	return s.Stats(), err
}

// newPackWriter starts a pack in a free buffer, or in a new one while
// fewer than PackBuffers exist, else waits for an upload to free one: this
// is what bounds a backup's memory when the store is slower than the
// encoders. A new buffer reserves the pack size plus one average chunk,
// since a pack is closed at the first blob that takes it past PackSize.
func (s *Saver) newPackWriter(ctx context.Context) (*pack.Writer, error) {
	select {
	case b := <-s.freePacks:
		return pack.NewWriterBuffer(&s.r.key, b), nil
	default:
	}
	if s.packBufs.Add(1) <= int32(s.opts.PackBuffers) {
		return pack.NewWriterSize(&s.r.key, s.opts.PackSize+packReserve), nil
	}
	s.packBufs.Add(-1)
	select {
	case b := <-s.freePacks:
		return pack.NewWriterBuffer(&s.r.key, b), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// freePack gives an uploaded pack's buffer to the next pack. The store
// keeps nothing of what it was given once Put has returned.
func (s *Saver) freePack(b []byte) {
	select {
	case s.freePacks <- b[:0]:
	default: // cannot happen: no more than PackBuffers buffers exist
	}
}

// Err is non-nil once the session has failed (a stage returned an error)
// or its context was cancelled: a caller's error seen after that is likely
// the consequence, not the cause.
func (s *Saver) Err() error { return s.ctx.Err() }

// Stats returns what the session has added so far.
func (s *Saver) Stats() SaverStats {
	return SaverStats{
		Blobs: s.blobs.Load(), RawBytes: s.raw.Load(), StoredBytes: s.stored.Load(),
		Packs: s.packs.Load(), IndexFiles: s.indexFiles.Load(),
	}
}

// Reserve reports whether the blob must be saved: true means it is neither
// in the repository nor already on its way there, and the caller now owes
// one Save of it. Deduplication happens here.
func (s *Saver) Reserve(t pack.BlobType, id chunk.ID) bool {
	k := blobKey{t, id}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.inflight[k]; ok {
		return false
	}
	if s.r.idx.Has(t, id) {
		return false
	}
	s.inflight[k] = struct{}{}
	return true
}

// Save queues a reserved blob. data must not be modified afterwards. The
// stored size is added to counter when non-nil.
func (s *Saver) Save(ctx context.Context, t pack.BlobType, id chunk.ID, data []byte, counter *atomic.Uint64) error {
	return s.SaveRelease(ctx, t, id, data, counter, nil)
}

// SaveRelease is Save for a caller that reuses its buffers: once the blob
// is encoded (or dropped because the session failed), release, when
// non-nil, is called with data on an encoder's goroutine, and data is the
// caller's again. When SaveRelease returns an error, data was not queued
// and release is not called.
func (s *Saver) SaveRelease(ctx context.Context, t pack.BlobType, id chunk.ID, data []byte, counter *atomic.Uint64, release func([]byte)) error {
	select {
	case s.jobs <- saveJob{key: blobKey{t, id}, data: data, counter: counter, release: release}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SaveIfNew reserves and saves a blob whose ID the caller computed, and
// reports whether it was new.
func (s *Saver) SaveIfNew(ctx context.Context, t pack.BlobType, id chunk.ID, data []byte, counter *atomic.Uint64) (bool, error) {
	if !s.Reserve(t, id) {
		return false, nil
	}
	return true, s.Save(ctx, t, id, data, counter)
}

// maxScratch is the largest encoding buffer an encoder keeps for the next
// blob: room for a 2 MiB chunk, most of the default chunker's. A larger
// chunk (up to the chunker's 8 MiB maximum) gets its own, so the rest of
// the backup does not hold that much per encoder; keeping up to 4 MiB,
// the two encoders held 8 MiB of a heap at its memory limit.
const maxScratch = 2<<20 + 256<<10

func (s *Saver) encodeLoop(ctx context.Context) error {
	// Blobs are encoded into scratch and copied into the pack: one
	// allocation per encoder instead of one per blob (1.3 GB of garbage
	// on the 1.32 GB bench set, which the collector had to chase).
	var scratch []byte
	for job := range s.jobs {
		if ctx.Err() != nil {
			if job.release != nil {
				job.release(job.data)
			}
			continue // drain so senders never block on a dead session
		}
		// Room for the stored form (pack.Encoder.Encode's worst case):
		// the most the buffer is kept for, so that it is made once.
		if need := encodeRoom(len(job.data)); cap(scratch) < need && need <= maxScratch {
			scratch = make([]byte, 0, maxScratch)
		}
		scratch = s.encode(ctx, job, scratch)
	}
	return ctx.Err()
}

// encode compresses and encrypts one blob into scratch, adds it to the
// open pack and hands the packs it filled to the uploaders. It returns
// the buffer to encode the next blob into: scratch, or the larger one
// Encode made when scratch was too small for this blob and that buffer
// is small enough to keep.
func (s *Saver) encode(ctx context.Context, job saveJob, scratch []byte) []byte {
	stored, compressed := s.r.enc.Encode(scratch[:0], job.key.t, job.key.id, job.data)
	if job.release != nil {
		job.release(job.data)
	}
	rawLen := uint32(len(job.data))
	if job.counter != nil {
		job.counter.Add(uint64(len(stored)))
	}
	s.blobs.Add(1)
	s.raw.Add(uint64(rawLen))
	s.stored.Add(uint64(len(stored)))
	s.packMu.Lock()
	var full []finishedPack
	if s.pw != nil && s.pw.Count() > 0 && !s.pw.Fits(len(stored)) {
		// Close the pack early rather than grow its buffer: a
		// pack copied into a larger buffer left the old one as
		// garbage and raised the peak.
		data, blobs := s.pw.Finish()
		full = append(full, finishedPack{data, blobs})
		s.pw = nil
	}
	if s.pw == nil {
		pw, err := s.newPackWriter(ctx)
		if err != nil {
			s.packMu.Unlock()
			return scratch // cancelled: the session fails, nothing to add to
		}
		s.pw = pw
	}
	s.pw.Add(job.key.t, job.key.id, stored, compressed, rawLen)
	if s.pw.Size() >= s.opts.PackSize {
		data, blobs := s.pw.Finish()
		full = append(full, finishedPack{data, blobs})
		s.pw = nil // the next blob waits for a buffer, not this one
	}
	s.packMu.Unlock()
	if cap(stored) <= maxScratch {
		scratch = stored[:0]
	}
	for _, p := range full {
		select {
		case s.uploads <- p:
		case <-ctx.Done():
		}
	}
	return scratch
}

// InlineMax is the largest blob SaveInline takes: a small file is one
// chunk of at most this, and encoding it costs less than handing it over.
const InlineMax = 64 << 10

// encodeRoom is room for the stored form of a blob of n bytes:
// pack.Encoder.Encode's worst case, so that it never reallocates.
func encodeRoom(n int) int { return n + n>>6 + 4<<10 }

// inlineScratch holds encoding buffers for SaveInline, shared by all
// sessions; a caller that finds none makes one, and one given back to a
// full list is dropped.
var inlineScratch = make(chan []byte, 2*runtime.GOMAXPROCS(0))

// SaveInline saves a reserved blob of at most InlineMax bytes on the
// caller's goroutine: it compresses, encrypts and packs data before it
// returns, and data is the caller's again. It is for the many small files
// of a tree, where the handover to an encoder goroutine cost more than the
// encoding. A larger blob goes through the encoders as with Save. The
// stored size is added to counter when non-nil.
func (s *Saver) SaveInline(ctx context.Context, t pack.BlobType, id chunk.ID, data []byte, counter *atomic.Uint64) error {
	if len(data) > InlineMax {
		return s.Save(ctx, t, id, data, counter)
	}
	if err := cmp.Or(ctx.Err(), s.ctx.Err()); err != nil {
		return err
	}
	var scratch []byte
	select {
	case scratch = <-inlineScratch:
	default:
		scratch = make([]byte, 0, encodeRoom(InlineMax))
	}
	// The session's context, as the encoders use: waiting for a pack
	// buffer ends when the session fails.
	scratch = s.encode(s.ctx, saveJob{key: blobKey{t, id}, data: data, counter: counter}, scratch)
	select {
	case inlineScratch <- scratch[:0]:
	default:
	}
	return s.ctx.Err()
}

// pendingBlobBytes is the memory of one blob of an index file not yet
// written: its entry (pack.Blob) and its share of the slices' growth.
const pendingBlobBytes = int(unsafe.Sizeof(pack.Blob{})) * 5 / 4

func (s *Saver) uploadLoop(ctx context.Context) error {
	for p := range s.uploads {
		if err := ctx.Err(); err != nil {
			continue
		}
		id := pack.ID(p.data)
		if err := s.r.st.Put(ctx, PackName(id), p.data); err != nil {
			return fmt.Errorf("upload pack %s: %w", id.Short(), err)
		}
		s.freePack(p.data)
		s.packs.Add(1)
		// Durable now: make the blobs visible to Reserve through the index
		// before they leave the in-flight set, so no window lets a
		// duplicate through.
		if err := s.r.idx.AddPack(id, p.blobs); err != nil {
			return err
		}
		s.mu.Lock()
		for _, b := range p.blobs {
			delete(s.inflight, blobKey{b.Type, b.ID})
		}
		s.mu.Unlock()
		s.idxMu.Lock()
		s.pending.Packs = append(s.pending.Packs, index.PackBlobs{Pack: id, Blobs: p.blobs})
		s.pendingBlobs += len(p.blobs)
		flush := len(s.pending.Packs) >= s.opts.IndexEvery
		pending := s.pendingBlobs * pendingBlobBytes
		s.idxMu.Unlock()
		s.r.IndexGrew(pending)
		if flush {
			if err := s.flushIndex(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// flushIndex writes an index file for the packs uploaded since the last one.
func (s *Saver) flushIndex(ctx context.Context) error {
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	if len(s.pending.Packs) == 0 {
		return nil
	}
	if _, err := s.r.WriteIndex(ctx, &s.pending); err != nil {
		return err
	}
	s.indexFiles.Add(1)
	s.pending = index.File{}
	s.pendingBlobs = 0
	return nil
}
