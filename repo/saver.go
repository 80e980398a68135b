package repo

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

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
	// IndexEvery writes an index file after this many packs (default 64,
	// ~1 GiB), so a backup that dies halfway keeps what it uploaded: the
	// next run finds those blobs and does not send them again.
	IndexEvery int
}

// ApplyDefaults fills in zero fields with their defaults.
func (o *SaverOptions) ApplyDefaults() {
	if o.PackSize <= 0 {
		o.PackSize = 16 << 20
	}
	if o.Encoders <= 0 {
		o.Encoders = runtime.GOMAXPROCS(0)
	}
	if o.Uploaders <= 0 {
		o.Uploaders = 2
	}
	if o.IndexEvery <= 0 {
		o.IndexEvery = 64
	}
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
	pw     *pack.Writer // the open pack (guarded by packMu)

	idxMu   sync.Mutex
	pending index.File // uploaded packs not yet in an index file (guarded by idxMu)

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
		r:        r,
		opts:     opts,
		ctx:      gctx,
		jobs:     make(chan saveJob, opts.Encoders),
		uploads:  make(chan finishedPack, 1),
		inflight: map[blobKey]struct{}{},
		pw:       r.newPackWriter(opts),
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
		if s.pw.Count() > 0 {
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

// newPackWriter reserves the pack size plus one average chunk: a pack is
// closed at the first blob that takes it past PackSize.
func (r *Repository) newPackWriter(opts SaverOptions) *pack.Writer {
	return pack.NewWriterSize(&r.key, opts.PackSize+1<<20)
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
	select {
	case s.jobs <- saveJob{key: blobKey{t, id}, data: data, counter: counter}:
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

func (s *Saver) encodeLoop(ctx context.Context) error {
	for job := range s.jobs {
		if ctx.Err() != nil {
			continue // drain so senders never block on a dead session
		}
		stored, compressed := s.r.enc.Encode(nil, job.key.t, job.key.id, job.data)
		if job.counter != nil {
			job.counter.Add(uint64(len(stored)))
		}
		s.blobs.Add(1)
		s.raw.Add(uint64(len(job.data)))
		s.stored.Add(uint64(len(stored)))
		s.packMu.Lock()
		s.pw.Add(job.key.t, job.key.id, stored, compressed, uint32(len(job.data)))
		var full *finishedPack
		if s.pw.Size() >= s.opts.PackSize {
			data, blobs := s.pw.Finish()
			full = &finishedPack{data, blobs}
			s.pw = s.r.newPackWriter(s.opts)
		}
		s.packMu.Unlock()
		if full != nil {
			select {
			case s.uploads <- *full:
			case <-ctx.Done():
			}
		}
	}
	return ctx.Err()
}

func (s *Saver) uploadLoop(ctx context.Context) error {
	for p := range s.uploads {
		if err := ctx.Err(); err != nil {
			continue
		}
		id := pack.ID(p.data)
		if err := s.r.st.Put(ctx, PackName(id), p.data); err != nil {
			return fmt.Errorf("upload pack %s: %w", id.Short(), err)
		}
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
		flush := len(s.pending.Packs) >= s.opts.IndexEvery
		s.idxMu.Unlock()
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
	return nil
}
