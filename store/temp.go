package store

import (
	"context"
	"time"
)

// TempFile is a temporary file a backend keeps beside its objects while it
// writes them (local: "<dir>/.tmp-…", renamed into place when complete).
type TempFile struct {
	Name    string // slash-separated, relative to the store, e.g. "data/ab/.tmp-123"
	Size    int64
	ModTime time.Time
}

// TempFiles is implemented by stores that can leave temporary files behind
// when a process is killed during Put. They are never objects (List skips
// them) and waste only space; check reports them and repair removes them.
type TempFiles interface {
	// ListTemp calls fn for each temporary file, in no particular order.
	ListTemp(ctx context.Context, fn func(TempFile) error) error
	// RemoveTemp removes one temporary file ListTemp reported; a missing
	// file is not an error.
	RemoveTemp(ctx context.Context, name string) error
}
