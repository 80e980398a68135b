package repo

import (
	"context"
	"time"

	"github.com/cairn-backup/cairn/store"
)

// TempInFlight is how old a temporary file must be before it counts as
// orphaned: a Put renames its temporary file into place within seconds
// (a 16 MiB pack takes well under one on a local disk), so anything older
// was left by a process that was killed.
const TempInFlight = 15 * time.Minute

// OrphanedTempFiles lists the temporary files a killed process left in the
// store (only stores that keep such files, local directories, have any),
// those older than minAge. They are not objects and harm nothing but space.
func (r *Repository) OrphanedTempFiles(ctx context.Context, minAge time.Duration) ([]store.TempFile, error) {
	tf, ok := r.st.(store.TempFiles)
	if !ok {
		return nil, nil
	}
	cutoff := time.Now().Add(-minAge)
	var out []store.TempFile
	err := tf.ListTemp(ctx, func(f store.TempFile) error {
		if minAge <= 0 || f.ModTime.Before(cutoff) {
			out = append(out, f)
		}
		return nil
	})
	return out, err
}

// RemoveTempFile removes one temporary file OrphanedTempFiles listed.
func (r *Repository) RemoveTempFile(ctx context.Context, name string) error {
	tf, ok := r.st.(store.TempFiles)
	if !ok {
		return nil
	}
	return tf.RemoveTemp(ctx, name)
}
