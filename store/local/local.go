// Package local implements store.Store on a directory of the local file
// system.
//
// Object "a/b/c" is the file <dir>/a/b/c. Put writes a temporary file next to
// the final one, fsyncs it, renames it into place and fsyncs the directory,
// so an object is either absent or complete even across a crash or power
// loss. Temporary files start with store.TempPrefix and are never listed; a
// crash can leave them behind, where they waste space but do no harm.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/cairn-backup/cairn/store"
)

var _ store.Store = (*Store)(nil)

// dirPerm is the mode of directories the store makes. Files get 0600 from
// os.CreateTemp. Backups are private even though their content is encrypted:
// names and sizes still say something.
const dirPerm = 0o700

// Store is a store.Store backed by a directory. It is safe for concurrent use.
type Store struct {
	root string // absolute, so a later chdir does not move the store

	// mkdirMu makes directory creation and the fsync of its parent one step
	// as seen by other Puts in this process: Put creates its temporary file
	// under the read lock, so it either finds the directory missing or finds
	// it already durable. Without it a Put could land in a directory another
	// Put has just made, return, and lose the object in a crash because that
	// directory's entry was not yet synced.
	mkdirMu sync.RWMutex

	// onReadDir, if set, is called with the slash-separated directory
	// relative to root before List reads it. Tests use it to check that List
	// walks only what the prefix needs.
	onReadDir func(rel string)
}

// Open opens the store in dir, which must be an existing directory.
func Open(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("local: open %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("local: open %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("local: open %s: not a directory", dir)
	}
	return &Store{root: abs}, nil
}

// Create makes dir (and missing parents) with mode 0700 and opens a store in
// it. It fails if dir exists and is not an empty directory, so that a store
// is never created on top of unrelated files.
func Create(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("local: create %s: %w", dir, err)
	}
	switch fi, err := os.Stat(abs); {
	case err == nil:
		if !fi.IsDir() {
			return nil, fmt.Errorf("local: create %s: exists and is not a directory", dir)
		}
		entries, err := os.ReadDir(abs)
		if err != nil {
			return nil, fmt.Errorf("local: create %s: %w", dir, err)
		}
		if len(entries) > 0 {
			return nil, fmt.Errorf("local: create %s: directory is not empty", dir)
		}
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(abs, dirPerm); err != nil {
			return nil, fmt.Errorf("local: create %s: %w", dir, err)
		}
		// The new directory must survive a crash like any object in it.
		if err := syncDir(filepath.Dir(abs)); err != nil {
			return nil, fmt.Errorf("local: create %s: %w", dir, err)
		}
	default:
		return nil, fmt.Errorf("local: create %s: %w", dir, err)
	}
	return &Store{root: abs}, nil
}

// Dir returns the absolute path of the store's directory.
func (s *Store) Dir() string { return s.root }

// Close implements store.Store. A local store holds no resources.
func (s *Store) Close() error { return nil }

// path returns the file for a name that has passed store.CheckName.
func (s *Store) path(name string) string {
	return filepath.Join(s.root, filepath.FromSlash(name))
}

// check runs the checks every operation starts with.
func check(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return store.CheckName(name)
}

func opErr(op, name string, err error) error {
	return fmt.Errorf("local: %s %s: %w", op, name, err)
}

// notFound reports whether err from the file system means the object is
// missing. ENOTDIR counts: "a/b" cannot exist while "a" is a file.
func notFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Put implements store.Store.
func (s *Store) Put(ctx context.Context, name string, data []byte) error {
	if err := check(ctx, name); err != nil {
		return opErr("put", name, err)
	}
	final := s.path(name)
	dir := filepath.Dir(final)

	s.mkdirMu.RLock()
	f, err := os.CreateTemp(dir, store.TempPrefix+"*")
	s.mkdirMu.RUnlock()
	if errors.Is(err, fs.ErrNotExist) {
		if err := s.mkdirs(dir); err != nil {
			return opErr("put", name, err)
		}
		f, err = os.CreateTemp(dir, store.TempPrefix+"*")
	}
	if err != nil {
		return opErr("put", name, err)
	}
	tmp := f.Name()
	renamed := false
	defer func() {
		if !renamed {
			f.Close()      // may already be closed; the error is irrelevant
			os.Remove(tmp) // best effort; a leftover is invisible anyway
		}
	}()

	if _, err := f.Write(data); err != nil {
		return opErr("put", name, err)
	}
	if err := f.Sync(); err != nil {
		return opErr("put", name, err)
	}
	if err := f.Close(); err != nil {
		return opErr("put", name, err)
	}
	// Last chance to honour cancellation without leaving a visible object.
	if err := ctx.Err(); err != nil {
		return opErr("put", name, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return opErr("put", name, err)
	}
	renamed = true
	// The rename is only durable once the directory entry is.
	if err := syncDir(dir); err != nil {
		return opErr("put", name, err)
	}
	return nil
}

// mkdirs creates dir and its missing ancestors below the root, fsyncing the
// parent of each so the new entries survive a crash.
func (s *Store) mkdirs(dir string) error {
	rel, err := filepath.Rel(s.root, dir)
	if err != nil {
		return err
	}
	s.mkdirMu.Lock()
	defer s.mkdirMu.Unlock()
	parent := s.root
	for seg := range strings.SplitSeq(rel, string(filepath.Separator)) {
		p := filepath.Join(parent, seg)
		err := os.Mkdir(p, dirPerm)
		switch {
		case err == nil:
			if err := syncDir(parent); err != nil {
				return err
			}
		case errors.Is(err, fs.ErrExist):
			// Made earlier, or by another process; either way it is there.
		default:
			return err
		}
		parent = p
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

// Get implements store.Store. The reader reads from the file opened at the
// time of the call, so a concurrent Put of the same name (which renames a new
// file into place) does not change what it returns. It stops with the
// context's error once ctx is done.
func (s *Store) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := check(ctx, name); err != nil {
		return nil, opErr("get", name, err)
	}
	if offset < 0 {
		return nil, opErr("get", name, fmt.Errorf("negative offset %d", offset))
	}
	f, err := os.Open(s.path(name))
	if err != nil {
		if notFound(err) {
			return nil, opErr("get", name, store.ErrNotFound)
		}
		return nil, opErr("get", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, opErr("get", name, err)
	}
	if !fi.Mode().IsRegular() {
		// A directory such as "data" is not an object.
		f.Close()
		return nil, opErr("get", name, store.ErrNotFound)
	}
	size := fi.Size()
	n := size - offset
	if n <= 0 {
		f.Close()
		return io.NopCloser(strings.NewReader("")), nil
	}
	if length >= 0 && length < n {
		n = length
	}
	return &reader{ctx: ctx, r: io.NewSectionReader(f, offset, n), f: f}, nil
}

type reader struct {
	ctx context.Context
	r   *io.SectionReader
	f   *os.File
}

func (r *reader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

func (r *reader) Close() error { return r.f.Close() }

// Stat implements store.Store.
func (s *Store) Stat(ctx context.Context, name string) (store.Info, error) {
	if err := check(ctx, name); err != nil {
		return store.Info{}, opErr("stat", name, err)
	}
	fi, err := os.Lstat(s.path(name))
	if err != nil {
		if notFound(err) {
			return store.Info{}, opErr("stat", name, store.ErrNotFound)
		}
		return store.Info{}, opErr("stat", name, err)
	}
	if !fi.Mode().IsRegular() {
		return store.Info{}, opErr("stat", name, store.ErrNotFound)
	}
	return store.Info{Name: name, Size: fi.Size()}, nil
}

// Delete implements store.Store. Empty directories are left in place: they
// are cheap, and removing them would race with Puts that are about to use
// them.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := check(ctx, name); err != nil {
		return opErr("delete", name, err)
	}
	p := s.path(name)
	// os.Remove would happily remove an empty directory such as "data".
	fi, err := os.Lstat(p)
	if err == nil && !fi.Mode().IsRegular() {
		return opErr("delete", name, store.ErrNotFound)
	}
	if err == nil {
		err = os.Remove(p)
	}
	if err != nil {
		if notFound(err) {
			return opErr("delete", name, store.ErrNotFound)
		}
		return opErr("delete", name, err)
	}
	return nil
}

// List implements store.Store. It reads only the directories that can hold
// names with the prefix: "data/ab/" reads <dir>/data/ab and below, "data/a"
// reads <dir>/data and the subdirectories starting with "a". Files that are
// not valid object names (temporary files, strays) are skipped.
func (s *Store) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("local: list %s: %w", prefix, err)
	}
	if err := store.CheckPrefix(prefix); err != nil {
		return fmt.Errorf("local: list %s: %w", prefix, err)
	}
	start := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = prefix[:i]
	}
	err := s.walk(ctx, start, prefix, fn)
	var fe fnError
	if errors.As(err, &fe) {
		return fe.err // the caller's own error, as the contract says
	}
	if err != nil {
		return fmt.Errorf("local: list %s: %w", prefix, err)
	}
	return nil
}

// fnError carries an error returned by List's callback out of the walk
// unwrapped.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// walk lists the directory rel (slash-separated, "" for the root).
func (s *Store) walk(ctx context.Context, rel, prefix string, fn func(store.Info) error) error {
	if s.onReadDir != nil {
		s.onReadDir(rel)
	}
	entries, err := os.ReadDir(filepath.Join(s.root, filepath.FromSlash(rel)))
	if err != nil {
		// A missing prefix directory, or one deleted while we walk, simply
		// holds no objects.
		if notFound(err) {
			return nil
		}
		return err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := e.Name()
		if rel != "" {
			name = rel + "/" + name
		}
		if e.IsDir() {
			sub := name + "/"
			if (strings.HasPrefix(sub, prefix) || strings.HasPrefix(prefix, sub)) && store.CheckPrefix(sub) == nil {
				if err := s.walk(ctx, name, prefix, fn); err != nil {
					return err
				}
			}
			continue
		}
		if !e.Type().IsRegular() || !strings.HasPrefix(name, prefix) || store.CheckName(name) != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			if notFound(err) {
				continue // deleted since ReadDir
			}
			return err
		}
		if err := fn(store.Info{Name: name, Size: fi.Size()}); err != nil {
			return fnError{err}
		}
	}
	return nil
}
