package local

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/cairn-backup/cairn/store"
)

var _ store.TempFiles = (*Store)(nil)

// ListTemp implements store.TempFiles: every file under the store whose
// name starts with store.TempPrefix.
func (s *Store) ListTemp(ctx context.Context, fn func(store.TempFile) error) error {
	err := filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if notFound(err) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), store.TempPrefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if notFound(err) {
				return nil
			}
			return err
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		return fn(store.TempFile{Name: filepath.ToSlash(rel), Size: fi.Size(), ModTime: fi.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("local: list temporary files: %w", err)
	}
	return nil
}

// RemoveTemp implements store.TempFiles. It removes only a file named like
// a temporary file, inside the store.
func (s *Store) RemoveTemp(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if path.Clean(name) != name || path.IsAbs(name) || strings.HasPrefix(name, "../") || !strings.HasPrefix(path.Base(name), store.TempPrefix) {
		return fmt.Errorf("local: remove temporary file %q: not a temporary file name", name)
	}
	if err := os.Remove(s.path(name)); err != nil && !notFound(err) {
		return fmt.Errorf("local: remove temporary file: %w", err)
	}
	return nil
}
