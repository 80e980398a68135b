package repo

import (
	"context"
	"errors"
	"fmt"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/index"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/store"
)

// This file is the repository API that maintenance jobs (prune) build on:
// packs and index files as objects, and the sealed mark objects of prune's
// two-phase deletion.

var adMark = []byte("cairn mark v1")

// maxMark bounds a mark object read from the store (a mark lists packs and
// locks: 64 MiB is over a million packs).
const maxMark = 64 << 20

// IndexName returns the store name of an index file.
func IndexName(id chunk.ID) string { return indexName(id) }

// MarkName returns the store name of a prune mark.
func MarkName(id chunk.ID) string { return "marks/" + id.String() }

// IndexFiles returns the index files LoadIndex loaded (those no other file
// supersedes) and those this Repository wrote since.
func (r *Repository) IndexFiles() []chunk.ID {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]chunk.ID(nil), r.indexFiles...)
}

// ListedIndexFiles returns every index file LoadIndex found, including
// those it skipped because another file supersedes them.
func (r *Repository) ListedIndexFiles() []chunk.ID {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]chunk.ID(nil), r.indexListed...)
}

// LoadIndexFile reads and decodes one index file.
func (r *Repository) LoadIndexFile(ctx context.Context, id chunk.ID) (*index.File, error) {
	return r.loadIndexFile(ctx, id)
}

// NewPackWriter returns a pack writer sealed with the repository's key.
func (r *Repository) NewPackWriter(size int) *pack.Writer {
	return pack.NewWriterSize(&r.key, size)
}

// PutPack stores a finished pack under its hash.
func (r *Repository) PutPack(ctx context.Context, data []byte) (chunk.ID, error) {
	id := pack.ID(data)
	if err := r.st.Put(ctx, PackName(id), data); err != nil {
		return id, fmt.Errorf("write pack %s: %w", id.Short(), err)
	}
	return id, nil
}

// LoadPackHeader reads the blob table of the pack id of size bytes from
// the store (two range reads: trailer, header).
func (r *Repository) LoadPackHeader(ctx context.Context, id chunk.ID, size int64) ([]pack.Blob, error) {
	if size < pack.TrailerSize {
		return nil, fmt.Errorf("pack %s: %w: %d bytes", id.Short(), pack.ErrCorrupt, size)
	}
	trailer, err := store.ReadRange(ctx, r.st, PackName(id), size-pack.TrailerSize, pack.TrailerSize)
	if err != nil {
		return nil, fmt.Errorf("read pack %s: %w", id.Short(), err)
	}
	n, err := pack.HeaderLength(trailer)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", id.Short(), err)
	}
	if int64(n) > size-pack.TrailerSize {
		return nil, fmt.Errorf("pack %s: %w: header of %d bytes in %d", id.Short(), pack.ErrCorrupt, n, size)
	}
	hdr, err := store.ReadRange(ctx, r.st, PackName(id), size-pack.TrailerSize-int64(n), int(n))
	if err != nil {
		return nil, fmt.Errorf("read pack %s: %w", id.Short(), err)
	}
	blobs, err := pack.ParseHeader(&r.key, hdr, size)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", id.Short(), err)
	}
	return blobs, nil
}

// Delete removes an object by name; a missing object is not an error.
func (r *Repository) Delete(ctx context.Context, name string) error {
	if err := r.st.Delete(ctx, name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// SaveMark stores a sealed prune mark and returns its ID.
func (r *Repository) SaveMark(ctx context.Context, plain []byte) (chunk.ID, error) {
	return r.writeSealed(ctx, "marks/", plain, adMark)
}

// LoadMark reads and opens one prune mark.
func (r *Repository) LoadMark(ctx context.Context, id chunk.ID) ([]byte, error) {
	fi, err := r.st.Stat(ctx, MarkName(id))
	if err != nil {
		return nil, fmt.Errorf("load mark %s: %w", id.Short(), err)
	}
	if fi.Size > maxMark {
		return nil, fmt.Errorf("load mark %s: %w: %d bytes", id.Short(), ErrCorruptObject, fi.Size)
	}
	buf, err := r.readObject(ctx, MarkName(id), id)
	if err != nil {
		return nil, err
	}
	plain, err := pack.Open(&r.key, nil, buf, adMark)
	if err != nil {
		return nil, fmt.Errorf("load mark %s: %w", id.Short(), err)
	}
	return plain, nil
}
