// Package export writes a directory of a snapshot as one archive file — a
// tar (POSIX pax) or a zip — to a stream: cairn dump's output for a
// directory, e.g. one tenant's folder handed over by a SaaS operator.
package export

import (
	"archive/tar"
	"archive/zip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"golang.org/x/sys/unix"
)

// Format is an archive format.
type Format string

const (
	Tar Format = "tar" // POSIX pax: any name length and bytes, modes, times, owners, links, devices
	Zip Format = "zip" // for Windows users: names, modes, times, symlinks; hard links are copies
)

// ParseFormat checks a format name.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case Tar, Zip:
		return f, nil
	}
	return "", fmt.Errorf("export: unknown archive format %q (tar or zip)", s)
}

// Dir is the directory to write: its node (with Subtree) and where it is.
type Dir struct {
	Node *snapshot.Node
	// Path is the directory's path within its component, "" for the
	// component's root: hard links (recorded relative to the root) are
	// resolved against it.
	Path string
	// Name is the archive's top-level directory: every entry is
	// Name/… (tar -C PARENT -x puts the directory back where it was).
	Name string
}

// Result counts what was written. Skipped lists entries the format cannot
// hold (a named pipe or device in a zip), which are left out.
type Result struct {
	Files, Dirs, Bytes uint64
	Skipped            []string
}

// Write writes d and everything below it to w as an archive of format f,
// walking the snapshot's trees once with the repository's walker. Any tree
// or blob that cannot be read stops it with an error: a dump with a hole
// must not look complete.
func Write(ctx context.Context, r *repo.Repository, d Dir, f Format, w io.Writer) (*Result, error) {
	if d.Node == nil || d.Node.Type != snapshot.Dir || d.Node.Subtree == nil {
		return nil, fmt.Errorf("export: %s is not a directory", d.Name)
	}
	e := &exporter{r: r, d: d}
	switch f {
	case Tar:
		e.aw, e.written = &tarWriter{tw: tar.NewWriter(w)}, map[string]string{}
	case Zip:
		e.aw = &zipWriter{zw: zip.NewWriter(w)} // no hard links: each is a copy
	default:
		return nil, fmt.Errorf("export: unknown archive format %q", f)
	}
	if err := e.run(ctx); err != nil {
		return nil, err
	}
	if err := e.aw.Close(); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return &e.res, nil
}

// archiveWriter is one format's entry writer.
type archiveWriter interface {
	// Entry writes one entry named name; content, for a file, writes its
	// bytes. link, when set, is an earlier entry n is a hard link to.
	// It reports false for a node the format cannot hold.
	Entry(name string, n *snapshot.Node, link string, content func(io.Writer) error) (bool, error)
	Close() error
}

type exporter struct {
	r  *repo.Repository
	d  Dir
	aw archiveWriter
	// written maps the component path of each file written to its archive
	// name, for hard links to it; nil when the format has no hard links.
	written map[string]string
	res     Result
}

// name is the archive name of the component-relative path p (under d).
func (e *exporter) name(p string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(p, e.d.Path), "/")
	return path.Join(e.d.Name, rel)
}

func (e *exporter) run(ctx context.Context) error {
	if err := e.entry(ctx, e.d.Path, e.d.Node); err != nil {
		return err
	}
	w := e.r.NewWalker(repo.WalkOptions{EveryPath: true})
	return w.Walk(ctx, e.d.Path, *e.d.Node.Subtree, repo.Visitor{
		Enter: func(p string, n *snapshot.Node) (bool, error) {
			return true, e.entry(ctx, p, n)
		},
		Tree: func(dir string, _ chunk.ID, t *snapshot.Tree, err error) error {
			if err != nil {
				return fmt.Errorf("export: read directory %s: %w", e.name(dir), err)
			}
			for i := range t.Nodes {
				n := &t.Nodes[i]
				if n.Type == snapshot.Dir {
					continue // Enter
				}
				if err := e.entry(ctx, path.Join(dir, n.Name), n); err != nil {
					return err
				}
			}
			return nil
		},
	})
}

func (e *exporter) entry(ctx context.Context, p string, n *snapshot.Node) error {
	name := e.name(p)
	var link string
	if n.Type == snapshot.File && n.HardLink != "" {
		link = e.written[n.HardLink] // "" when the first path is outside d: write the content
	}
	var content func(io.Writer) error
	if n.Type == snapshot.File && link == "" {
		content = func(w io.Writer) error { return e.r.DumpFile(ctx, n, w) }
	}
	ok, err := e.aw.Entry(name, n, link, content)
	if err != nil {
		return fmt.Errorf("export: %s: %w", name, err)
	}
	switch {
	case !ok:
		e.res.Skipped = append(e.res.Skipped, name)
	case n.Type == snapshot.Dir:
		e.res.Dirs++
	default:
		e.res.Files++
		if content != nil {
			e.res.Bytes += n.Size
		}
		if e.written != nil && n.Type == snapshot.File && link == "" {
			e.written[strings.TrimPrefix(p, "/")] = name
		}
	}
	return nil
}

type tarWriter struct{ tw *tar.Writer }

func (t *tarWriter) Entry(name string, n *snapshot.Node, link string, content func(io.Writer) error) (bool, error) {
	h := &tar.Header{
		Name:    name,
		Mode:    tarMode(n.Mode),
		ModTime: n.ModTime,
		Uid:     int(n.UID),
		Gid:     int(n.GID),
		// pax: names and link targets of any length and any bytes,
		// sub-second times, large ids and sizes.
		Format: tar.FormatPAX,
	}
	switch {
	case n.Type == snapshot.Dir:
		h.Typeflag, h.Name = tar.TypeDir, name+"/"
	case n.Type == snapshot.File && link != "":
		h.Typeflag, h.Linkname = tar.TypeLink, link
	case n.Type == snapshot.File:
		h.Typeflag, h.Size = tar.TypeReg, int64(n.Size)
	case n.Type == snapshot.Symlink:
		h.Typeflag, h.Linkname = tar.TypeSymlink, n.LinkTarget
	case n.Type == snapshot.Fifo:
		h.Typeflag = tar.TypeFifo
	case n.Type == snapshot.CharDev, n.Type == snapshot.BlockDev:
		h.Typeflag = tar.TypeChar
		if n.Type == snapshot.BlockDev {
			h.Typeflag = tar.TypeBlock
		}
		h.Devmajor, h.Devminor = int64(unix.Major(n.Rdev)), int64(unix.Minor(n.Rdev))
	default:
		return false, nil
	}
	if err := t.tw.WriteHeader(h); err != nil {
		return false, err
	}
	if h.Typeflag == tar.TypeReg {
		cw := &countWriter{w: t.tw}
		if err := content(cw); err != nil {
			return false, err
		}
		if cw.n != n.Size {
			return false, fmt.Errorf("content is %d bytes, the snapshot says %d", cw.n, n.Size)
		}
	}
	return true, nil
}

func (t *tarWriter) Close() error { return t.tw.Close() }

// tarMode is a node's mode as tar's c_ISUID/c_ISGID/c_ISVTX bits and
// permissions.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

type zipWriter struct{ zw *zip.Writer }

func (z *zipWriter) Entry(name string, n *snapshot.Node, _ string, content func(io.Writer) error) (bool, error) {
	h := &zip.FileHeader{Name: name, Modified: n.ModTime, Method: zip.Deflate}
	mode := n.Mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	switch n.Type {
	case snapshot.Dir:
		h.Name, h.Method = name+"/", zip.Store
		mode |= fs.ModeDir
	case snapshot.File:
		if content == nil { // a hard link: zip has none, so the content again
			return false, fmt.Errorf("zip: internal error: hard link %s without content", name)
		}
	case snapshot.Symlink:
		mode |= fs.ModeSymlink // Info-ZIP: the target is the entry's content
	default:
		return false, nil
	}
	h.SetMode(mode)
	fw, err := z.zw.CreateHeader(h)
	if err != nil {
		return false, err
	}
	switch n.Type {
	case snapshot.File:
		return true, content(fw)
	case snapshot.Symlink:
		_, err := io.WriteString(fw, n.LinkTarget)
		return true, err
	}
	return true, nil
}

func (z *zipWriter) Close() error { return z.zw.Close() }

type countWriter struct {
	w io.Writer
	n uint64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += uint64(n)
	return n, err
}
