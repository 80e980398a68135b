package tree

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
)

// Target writes a restored tree into one directory. Every operation goes
// through an os.Root, so no path in a snapshot — "..", an absolute name, or
// a symlink restored earlier that points elsewhere — can make it write
// outside the directory. Each operation works on one name inside a cached
// handle of its parent directory (dircache.go), so deep trees cost no more
// per entry than shallow ones. Paths are relative and slash-separated. Safe for
// concurrent use on distinct paths.
type Target struct {
	root *os.Root
	dirs *dirCache
	dir  string
	// asRoot is true when running as root (which restores owners): read
	// once, not for every file.
	asRoot bool
	// NoOwner keeps what a root restore would otherwise apply from the
	// snapshot: owners (files belong to the restoring user) and the
	// setuid and setgid bits (cleared). Set it before the first call.
	NoOwner bool
}

// ErrTargetNotDir is returned when the restore target exists and is not a
// directory.
var ErrTargetNotDir = errors.New("tree: restore target is not a directory")

// OpenTarget creates dir (and its parents) if needed and returns a Target
// confined to it.
func OpenTarget(dir string) (*Target, error) {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return nil, fmt.Errorf("%w: %s", ErrTargetNotDir, dir)
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("tree: create restore target: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("tree: restore target: %w", err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("tree: open restore target: %w", err)
	}
	return &Target{root: r, dirs: newDirCache(r), dir: dir, asRoot: os.Geteuid() == 0}, nil
}

// Dir returns the target directory as given.
func (t *Target) Dir() string { return t.dir }

// Close releases the target.
func (t *Target) Close() error {
	t.dirs.close()
	return t.root.Close()
}

func clean(rel string) (string, error) {
	if rel == "" {
		return ".", nil
	}
	if path.IsAbs(rel) || path.Clean(rel) != rel || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%w: path %q is not clean and relative", snapshot.ErrBadName, rel)
	}
	return rel, nil
}

// at resolves rel to its parent directory's handle and its last element;
// rel "" is the target itself, returned as (root, "."). Call release when
// done with the handle.
func (t *Target) at(rel string) (r *os.Root, base string, release func(), err error) {
	p, err := clean(rel)
	if err != nil {
		return nil, "", nil, err
	}
	if p == "." {
		return t.root, ".", func() {}, nil
	}
	r, release, err = t.dirs.acquire(path.Dir(p))
	if err != nil {
		return nil, "", nil, fmt.Errorf("tree: %s: %w", p, err)
	}
	return r, path.Base(p), release, nil
}

// Mkdir creates the directory rel; an existing directory is fine.
func (t *Target) Mkdir(rel string) error {
	r, base, release, err := t.at(rel)
	if err != nil {
		return err
	}
	defer release()
	if base == "." {
		return nil
	}
	err = r.Mkdir(base, 0o700)
	if errors.Is(err, fs.ErrExist) {
		fi, serr := r.Lstat(base)
		if serr == nil && fi.IsDir() {
			return nil
		}
		return fmt.Errorf("tree: %s exists and is not a directory", rel)
	}
	if err != nil {
		return fmt.Errorf("tree: %w", err)
	}
	return nil
}

// writeFlags open a file for writing. O_NONBLOCK, which means nothing
// for a regular file, spares the poller's dance os.OpenFile does for a
// descriptor opened blocking: two fcntl calls to make it non-blocking, an
// epoll_ctl the kernel refuses for a regular file, two to make it
// blocking again; with it only the epoll_ctl is left. (A FIFO put at the
// path meanwhile fails to open instead of blocking the restore.)
const writeFlags = os.O_WRONLY | syscall.O_NONBLOCK

// Create creates (or truncates) the regular file rel for writing. A symlink
// already at rel is replaced, never followed.
//
// A restore mostly creates files where there is nothing: the exclusive
// create, which fails on anything at rel and follows no symlink, comes
// first, and only when something is there is it looked at (a stat) and
// replaced or truncated. One call per new file instead of two.
func (t *Target) Create(rel string) (*os.File, error) {
	r, base, release, err := t.at(rel)
	if err != nil {
		return nil, err
	}
	defer release()
	f, err := r.OpenFile(base, writeFlags|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		return f, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("tree: %w", err)
	}
	if fi, err := r.Lstat(base); err == nil && !fi.Mode().IsRegular() {
		if err := t.replace(r, rel, base); err != nil {
			return nil, err
		}
	}
	f, err = r.OpenFile(base, writeFlags|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("tree: %w", err)
	}
	return f, nil
}

// Reopen opens the file rel, made by Create, for writing again, without
// truncating it: a restore closes a file between the packs that fill it.
func (t *Target) Reopen(rel string) (*os.File, error) {
	r, base, release, err := t.at(rel)
	if err != nil {
		return nil, err
	}
	defer release()
	f, err := r.OpenFile(base, writeFlags, 0)
	if err != nil {
		return nil, fmt.Errorf("tree: %w", err)
	}
	return f, nil
}

// replace removes what is at rel (base in r) so something else can be made
// there, dropping cached handles of directories at or under it.
func (t *Target) replace(r *os.Root, rel, base string) error {
	t.dirs.forget(rel)
	if err := r.RemoveAll(base); err != nil {
		return fmt.Errorf("tree: replace %s: %w", rel, err)
	}
	return nil
}

// Open opens the file rel for reading (restore --verify).
func (t *Target) Open(rel string) (*os.File, error) {
	r, base, release, err := t.at(rel)
	if err != nil {
		return nil, err
	}
	defer release()
	f, err := r.Open(base)
	if err != nil {
		return nil, fmt.Errorf("tree: %w", err)
	}
	return f, nil
}

// Remove removes the file rel (a file the restorer could not complete).
func (t *Target) Remove(rel string) error {
	r, base, release, err := t.at(rel)
	if err != nil {
		return err
	}
	defer release()
	t.dirs.forget(rel)
	if err := r.Remove(base); err != nil {
		return fmt.Errorf("tree: %w", err)
	}
	return nil
}

// clear resolves rel like at and removes whatever is there, so a symlink,
// special file or link can be made in its place; rel may not be the target
// itself.
func (t *Target) clear(rel string) (r *os.Root, base string, release func(), err error) {
	r, base, release, err = t.at(rel)
	if err != nil {
		return nil, "", nil, err
	}
	if base == "." {
		release()
		return nil, "", nil, fmt.Errorf("%w: the target itself cannot be replaced", snapshot.ErrBadName)
	}
	if _, err := r.Lstat(base); err == nil {
		if err := t.replace(r, rel, base); err != nil {
			release()
			return nil, "", nil, err
		}
	}
	return r, base, release, nil
}

// Symlink creates a symlink at rel pointing at target, replacing what is
// there. The link itself may point anywhere; the Target never follows it.
func (t *Target) Symlink(rel, target string) error {
	r, base, release, err := t.clear(rel)
	if err != nil {
		return err
	}
	defer release()
	if err := r.Symlink(target, base); err != nil {
		return fmt.Errorf("tree: %w", err)
	}
	return nil
}

// Mknod creates the named pipe or device node n at rel, replacing what is
// there. Creating a device node needs root; without it the error says so.
func (t *Target) Mknod(rel string, n *snapshot.Node) error {
	r, base, release, err := t.clear(rel)
	if err != nil {
		return err
	}
	defer release()
	if err := mknodAt(r, base, n); err != nil {
		if (n.Type == snapshot.CharDev || n.Type == snapshot.BlockDev) && os.Geteuid() != 0 {
			return fmt.Errorf("tree: %s device %s not restored: creating device nodes needs root: %w", n.Type, rel, err)
		}
		return fmt.Errorf("tree: mknod %s: %w", rel, err)
	}
	return nil
}

// Link makes rel a hard link to the file at existing, replacing what is at
// rel. Both stay inside the target.
func (t *Target) Link(existing, rel string) error {
	old, err := clean(existing)
	if err != nil {
		return err
	}
	_, _, release, err := t.clear(rel)
	if err != nil {
		return err
	}
	defer release()
	// Through the target root: existing may be anywhere in the target.
	if err := t.root.Link(old, rel); err != nil {
		return fmt.Errorf("tree: %w", err)
	}
	return nil
}

// SetMetadata applies mode and modification time (and ownership, when
// running as root) to rel. Symlinks get neither mode nor times: Linux has no
// lchmod, and following them could touch files outside the target.
func (t *Target) SetMetadata(rel string, n *snapshot.Node) error {
	r, base, release, err := t.at(rel)
	if err != nil {
		return err
	}
	defer release()
	chown := t.asRoot && !t.NoOwner
	if n.Type == snapshot.Symlink {
		if chown {
			_ = r.Lchown(base, int(n.UID), int(n.GID))
		}
		return nil
	}
	if chown {
		// Ownership is best effort: the user may not exist on this host.
		_ = r.Chown(base, int(n.UID), int(n.GID))
	}
	if err := r.Chmod(base, t.mode(n)); err != nil {
		return fmt.Errorf("tree: %w", err)
	}
	if err := r.Chtimes(base, time.Time{}, n.ModTime); err != nil {
		return fmt.Errorf("tree: %w", err)
	}
	return nil
}

// mode is the mode to give n: without the setuid and setgid bits with
// NoOwner.
func (t *Target) mode(n *snapshot.Node) fs.FileMode {
	if t.NoOwner {
		return n.Mode &^ (fs.ModeSetuid | fs.ModeSetgid)
	}
	return n.Mode
}

// SetFileMetadata is SetMetadata for the regular file rel through f, its
// open handle (from Create or Reopen): fchown, fchmod and futimens on the
// file itself, where SetMetadata resolves rel for each and, through the
// os.Root, reads it as a link first (readlinkat) to refuse a symlink: six
// calls against three, and no path that could lead anywhere else.
func (t *Target) SetFileMetadata(rel string, f *os.File, n *snapshot.Node) error {
	if t.asRoot && !t.NoOwner {
		// Ownership is best effort: the user may not exist on this host.
		_ = f.Chown(int(n.UID), int(n.GID))
	}
	if err := f.Chmod(t.mode(n)); err != nil {
		return fmt.Errorf("tree: %w", err)
	}
	if err := setModTime(f, n.ModTime); err != nil {
		if !errors.Is(err, errors.ErrUnsupported) {
			return fmt.Errorf("tree: %s: set times: %w", rel, err)
		}
		r, base, release, err := t.at(rel)
		if err != nil {
			return err
		}
		defer release()
		if err := r.Chtimes(base, time.Time{}, n.ModTime); err != nil {
			return fmt.Errorf("tree: %w", err)
		}
	}
	return nil
}
