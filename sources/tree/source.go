package tree

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/cairn-backup/cairn/snapshot"
)

// Source reads one directory tree. Paths given to its methods are relative to
// the root, slash-separated, "" for the root itself. It is safe for
// concurrent use.
type Source struct {
	root string
}

// ErrNotDir is returned by Open when the source path is not a directory.
var ErrNotDir = errors.New("tree: not a directory")

// Open checks that dir is a readable directory and returns a Source for it.
func Open(dir string) (*Source, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("tree: resolve %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("tree: source %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("tree: source %s: %w", abs, ErrNotDir)
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("tree: source %w", err)
	}
	f.Close()
	return &Source{root: abs}, nil
}

// Root returns the absolute path of the source directory.
func (s *Source) Root() string { return s.root }

func (s *Source) abs(rel string) string {
	if rel == "" {
		return s.root
	}
	return filepath.Join(s.root, filepath.FromSlash(rel))
}

// ReadDir lists the directory rel as nodes sorted by name, with metadata from
// lstat and no content. Named pipes and devices are nodes of their own
// (no content); a socket is listed as snapshot.Socket for the archiver to
// report and leave out.
// An entry that cannot be examined does not cost its siblings: ReadDir then
// returns the other nodes together with an error naming the failed ones.
func (s *Source) ReadDir(ctx context.Context, rel string) ([]snapshot.Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir := s.abs(rel)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("tree: read directory %w", err)
	}
	nodes := make([]snapshot.Node, 0, len(entries))
	var errs []error
	for _, e := range entries {
		fi, err := os.Lstat(filepath.Join(dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the listing; it was never in this snapshot
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("tree: %w", err))
			continue
		}
		n, ok, err := nodeFromInfo(filepath.Join(dir, e.Name()), fi)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			nodes = append(nodes, n)
		}
	}
	slices.SortFunc(nodes, func(a, b snapshot.Node) int { return strings.Compare(a.Name, b.Name) })
	return nodes, errors.Join(errs...)
}

// Stat returns the node of rel ("" is the root itself, named "").
func (s *Source) Stat(ctx context.Context, rel string) (snapshot.Node, error) {
	if err := ctx.Err(); err != nil {
		return snapshot.Node{}, err
	}
	p := s.abs(rel)
	fi, err := os.Lstat(p)
	if err != nil {
		return snapshot.Node{}, fmt.Errorf("tree: %w", err)
	}
	n, _, err := nodeFromInfo(p, fi)
	if rel == "" {
		n.Name = ""
	}
	return n, err
}

// Open opens the regular file rel for reading. Holes of a sparse file are
// not read (they come back as zeros), and once read to the end the reader's
// Changed method tells whether the file changed meanwhile (reader.go).
func (s *Source) Open(ctx context.Context, rel string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// O_NOFOLLOW: the node was a regular file at listing time; if it has been
	// replaced by a symlink since, do not read whatever it points to.
	f, err := os.OpenFile(s.abs(rel), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("tree: %w", err)
	}
	r, err := newFileReader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

func nodeFromInfo(path string, fi fs.FileInfo) (snapshot.Node, bool, error) {
	n := snapshot.Node{
		Name:    fi.Name(),
		Mode:    fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky),
		ModTime: fi.ModTime(),
	}
	switch {
	case fi.Mode().IsRegular():
		n.Type = snapshot.File
		n.Size = uint64(fi.Size())
	case fi.IsDir():
		n.Type = snapshot.Dir
	case fi.Mode()&fs.ModeSymlink != 0:
		n.Type = snapshot.Symlink
		target, err := os.Readlink(path)
		if err != nil {
			return n, false, fmt.Errorf("tree: %w", err)
		}
		n.LinkTarget = target
	case fi.Mode()&fs.ModeNamedPipe != 0:
		n.Type = snapshot.Fifo
	case fi.Mode()&fs.ModeDevice != 0:
		n.Type = snapshot.BlockDev
		if fi.Mode()&fs.ModeCharDevice != 0 {
			n.Type = snapshot.CharDev
		}
	case fi.Mode()&fs.ModeSocket != 0:
		n.Type = snapshot.Socket // listed so the archiver reports it skipped
	default:
		return n, false, nil
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if n.Type == snapshot.CharDev || n.Type == snapshot.BlockDev {
			n.Rdev = statRdev(st)
		}
		n.Links = uint64(st.Nlink)
		n.Inode = st.Ino
		n.DeviceID = uint64(st.Dev)
		n.UID, n.GID = st.Uid, st.Gid
		n.ChangeTime = statCtime(st)
	}
	return n, true, nil
}
