package repo

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/index"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/store"
)

// MaxReadGap is the largest run of unneeded bytes a pack read (restore,
// DumpFile) goes through rather than ending its Get and starting another:
// a Get costs a round trip, a gap its bytes. Measured through store/s3 on
// MinIO over loopback (2 loaded cores): a 4 KiB Get takes 1.6-3.4 ms, a
// 16 MiB Get streams at 755-990 MB/s, so the two cost the same at a gap of
// 1.5-3.3 MB; against a remote S3 (20-50 ms, 50-100 MB/s) it is 1-5 MB.
// 1 MiB stays below both, and bytes fetched for nothing also cost egress.
const MaxReadGap = 1 << 20

// ReadBlobs reads several blobs of one pack with as few ranged Gets as
// maxGap allows, and calls fn with each blob's verified plaintext, or with
// the error that blob met (a *BlobError), in the order of blobs.
//
// Blobs are taken in the order given (sort them by Offset) and grouped into
// runs: a blob joins the run before it when it starts at or after that
// run's end and at most maxGap bytes later. Each run is one Get of the
// range from its first blob's start to its last blob's end, streamed: the
// bytes between blobs are read and dropped, never held, and no byte of the
// pack is fetched twice for blobs that do not overlap. A gap costs its
// bytes; a new Get costs a round trip (see MaxReadGap for the
// measured trade-off).
//
// Memory: one stored blob and one plaintext at a time (at most the
// repository's largest blob each), whatever the size of the runs.
//
// A run that cannot be read (the pack is missing, the stream breaks) fails
// its remaining blobs, and a missing pack every blob after it; a blob that
// does not decode fails alone. Either way the other blobs are still
// delivered. ReadBlobs returns an error only when fn does, or ctx ends.
// plain is valid only until fn returns. fn runs on the caller's goroutine.
func (r *Repository) ReadBlobs(ctx context.Context, packID chunk.ID, blobs []pack.Blob, maxGap int64, fn func(i int, plain []byte, err error) error) error {
	return r.readBlobs(ctx, packID, blobs, maxGap, true, fn)
}

// readStoredBlobs is ReadBlobs without the decoding: fn gets each blob's
// stored bytes as they are in the pack, not yet checked (DecodeBlob
// decrypts and checks them), valid only until fn returns.
func (r *Repository) readStoredBlobs(ctx context.Context, packID chunk.ID, blobs []pack.Blob, maxGap int64, fn func(i int, stored []byte, err error) error) error {
	return r.readBlobs(ctx, packID, blobs, maxGap, false, fn)
}

func (r *Repository) readBlobs(ctx context.Context, packID chunk.ID, blobs []pack.Blob, maxGap int64, decode bool, fn func(i int, plain []byte, err error) error) error {
	fail := func(i int, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		b := blobs[i]
		return fn(i, nil, &BlobError{Type: b.Type, ID: b.ID, Pack: packID, Err: err})
	}
	var stored, plain []byte
	var missing error // set once a Get found no pack: no more Gets
	for start := 0; start < len(blobs); {
		if err := r.checkBlobLengths(blobs[start]); err != nil {
			if err := fail(start, err); err != nil {
				return err
			}
			start++
			continue
		}
		end := start + 1
		runEnd := int64(blobs[start].Offset) + int64(blobs[start].Length)
		for end < len(blobs) {
			b := blobs[end]
			if off := int64(b.Offset); off < runEnd || off-runEnd > maxGap || r.checkBlobLengths(b) != nil {
				break
			}
			runEnd = int64(b.Offset) + int64(b.Length)
			end++
		}
		if missing != nil {
			for i := start; i < end; i++ {
				if err := fail(i, missing); err != nil {
					return err
				}
			}
			start = end
			continue
		}
		var err error
		stored, plain, missing, err = r.readRun(ctx, packID, blobs, start, end, runEnd, stored, plain, decode, fn)
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		start = end
	}
	return nil
}

// readRun reads blobs[start:end], which lie in [blobs[start].Offset,
// runEnd) in this order, with one Get, and delivers them to fn, decoded
// or (decode false) as stored. It
// returns the buffers for the next run and, when the Get found no pack,
// the error that fails the runs after it too.
func (r *Repository) readRun(ctx context.Context, packID chunk.ID, blobs []pack.Blob, start, end int, runEnd int64, stored, plain []byte, decode bool, fn func(int, []byte, error) error) (_, _ []byte, missing, _ error) {
	first := int64(blobs[start].Offset)
	fail := func(from int, err error) error {
		for i := from; i < end; i++ {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			b := blobs[i]
			if err := fn(i, nil, &BlobError{Type: b.Type, ID: b.ID, Pack: packID, Err: err}); err != nil {
				return err
			}
		}
		return nil
	}
	rc, err := r.st.Get(ctx, PackName(packID), first, runEnd-first)
	if err != nil {
		err = fmt.Errorf("read: %w", err)
		if errors.Is(err, store.ErrNotFound) {
			missing = err
		}
		return stored, plain, missing, fail(start, err)
	}
	defer rc.Close()
	pos := first
	for i := start; i < end; i++ {
		if err := ctx.Err(); err != nil {
			return stored, plain, nil, err // a local file's reads do not see ctx
		}
		b := blobs[i]
		if gap := int64(b.Offset) - pos; gap > 0 {
			if _, err := io.CopyN(io.Discard, rc, gap); err != nil {
				return stored, plain, nil, fail(i, fmt.Errorf("read: %w", eofIsShort(err)))
			}
		}
		if cap(stored) < int(b.Length) {
			stored = make([]byte, b.Length)
		}
		stored = stored[:b.Length]
		if _, err := io.ReadFull(rc, stored); err != nil {
			return stored, plain, nil, fail(i, fmt.Errorf("read: %w", eofIsShort(err)))
		}
		pos = int64(b.Offset) + int64(b.Length)
		if !decode {
			if ferr := fn(i, stored, nil); ferr != nil {
				return stored, plain, nil, ferr
			}
			continue
		}
		out, err := r.DecodeBlob(plain, b, stored)
		if err != nil {
			err = &BlobError{Type: b.Type, ID: b.ID, Pack: packID, Err: err}
		} else {
			plain = out[:0]
		}
		if ferr := fn(i, out, err); ferr != nil {
			return stored, plain, nil, ferr
		}
	}
	return stored, plain, nil, nil
}

// eofIsShort turns io.EOF, a pack shorter than its index entries say,
// into io.ErrUnexpectedEOF, as store.ReadRange reports it.
func eofIsShort(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// checkBlobLengths refuses an index entry whose lengths no writer of this
// repository produces. The index is sealed, but a key holder can forge it:
// its lengths are checked before they size a read.
func (r *Repository) checkBlobLengths(b pack.Blob) error {
	if limit := r.rawLimit(b.Type); b.RawLength > limit || uint64(b.Length) > maxStoredLength(limit) {
		return fmt.Errorf("%w: %v blob %v: raw length %d, stored length %d: more than a blob of at most %d bytes takes", pack.ErrCorrupt, b.Type, b.ID.Short(), b.RawLength, b.Length, limit)
	}
	return nil
}

// LoadBlobAt is LoadBlob from one given copy of the blob (one of
// Index().LookupAll's locations), without trying the others.
func (r *Repository) LoadBlobAt(ctx context.Context, loc index.Location, dst []byte) ([]byte, error) {
	plain, err := r.loadBlobAt(ctx, loc, dst)
	if err != nil {
		return nil, &BlobError{Type: loc.Blob.Type, ID: loc.Blob.ID, Pack: loc.Pack, Err: err}
	}
	return plain, nil
}
