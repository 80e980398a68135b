package tree

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// fileReader reads one regular file for the archiver. Holes of a sparse
// file are produced as zeros without reading them (platform files; Linux
// asks SEEK_DATA/SEEK_HOLE), and at the end the file's size, mtime, ctime
// and inode are compared with what they were when it was opened (or, from
// OpenListed, listed): a file written to while it was read is a torn mix
// of two versions, and Changed says so.
type fileReader struct {
	f       *os.File
	before  fileState
	off     int64 // next byte to return
	limit   int64 // size when opened: holes are zero-filled up to here
	data    int64 // end of the data region at off (reads from disk)
	hole    int64 // end of the hole at off (zeros, no read)
	sparse  sparseSeeker
	changed error
	diskRd  int64 // bytes read from disk, for tests
	preads  int   // pread calls, for tests
	atEnd   bool  // a read met the end of the file
	done    bool
}

// fileState is what must not move while a file is read.
type fileState struct {
	size         int64
	mtime, ctime time.Time
	ino          uint64 // 0: unknown
}

func stateOf(fi os.FileInfo) fileState {
	s := fileState{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ctime = statCtime(st)
		s.ino = uint64(st.Ino)
	}
	return s
}

func newFileReader(f *os.File) (*fileReader, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("tree: %w", err)
	}
	r := &fileReader{f: f, before: stateOf(fi), limit: fi.Size()}
	r.sparse = newSparseSeeker(f, fi)
	return r, nil
}

// Read returns the file's bytes; holes come back as zeros.
func (r *fileReader) Read(p []byte) (int, error) {
	if r.done {
		return 0, io.EOF
	}
	if r.atEnd {
		r.finish()
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if r.off >= r.data && r.off >= r.hole {
		r.next()
	}
	if r.off < r.hole {
		n := int(min(int64(len(p)), r.hole-r.off))
		clear(p[:n])
		r.off += int64(n)
		return n, nil
	}
	want := p
	if r.data > r.off {
		want = p[:min(int64(len(p)), r.data-r.off)]
	}
	n, err := r.pread(want)
	if err != nil {
		return 0, err
	}
	r.off += int64(n)
	r.diskRd += int64(n)
	if n == 0 {
		if r.off < r.data {
			// Shorter than when it was opened: the data region ended
			// early. The state check below reports it.
			r.data = r.off
		}
		r.finish()
		return 0, io.EOF
	}
	if r.off >= r.limit {
		// At the size it had when opened: the next Read need not ask
		// again to meet the end. finish compares the size after
		// reading with that one, so a file that grew meanwhile is
		// reported as changed, not cut short.
		r.atEnd = true
	}
	return n, nil
}

// pread is one pread(2) at r.off, not os.File.ReadAt, which asks again
// until p is full: for a file smaller than p that second call only met
// the end, and a backup of 200,000 small files made it for every one of
// them.
func (r *fileReader) pread(p []byte) (int, error) {
	var n int
	r.preads++
	err := ignoringEINTR(func() (err error) {
		n, err = unix.Pread(int(r.f.Fd()), p, r.off)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("tree: %w", &fs.PathError{Op: "read", Path: r.f.Name(), Err: err})
	}
	return n, nil
}

// next finds the region at r.off: zeros up to the next data (no further
// than the size at open), or data up to the next hole. Without hole
// support, everything is data.
func (r *fileReader) next() {
	data, hole, ok := r.sparse.region(r.off)
	switch {
	case !ok: // no sparse support, or an error: read everything
		r.data, r.hole = 1<<62, r.off
	case data > r.off: // in a hole
		r.hole, r.data = min(data, r.limit), r.off
		if r.hole <= r.off { // trailing hole past the size at open
			r.hole, r.data = r.off, 1<<62
		}
	default:
		r.data, r.hole = hole, r.off
	}
}

func (r *fileReader) finish() {
	r.done = true
	fi, err := r.f.Stat()
	if err != nil {
		r.changed = fmt.Errorf("stat after reading: %w", err)
		return
	}
	after := stateOf(fi)
	switch {
	case r.off != r.before.size:
		r.changed = fmt.Errorf("read %d bytes, the file had %d when opened", r.off, r.before.size)
	case after.size != r.before.size:
		r.changed = fmt.Errorf("size changed from %d to %d while being read", r.before.size, after.size)
	case !after.mtime.Equal(r.before.mtime):
		r.changed = fmt.Errorf("modified while being read")
	case !after.ctime.Equal(r.before.ctime):
		r.changed = fmt.Errorf("status changed while being read")
	case r.before.ino != 0 && after.ino != r.before.ino:
		r.changed = fmt.Errorf("replaced by another file while being read")
	}
}

// Changed reports, once Read has returned io.EOF, whether the file changed
// while it was read (nil: a consistent copy). The archiver re-reads such a
// file and reports it if it changes again.
func (r *fileReader) Changed() error {
	if !r.done {
		return fmt.Errorf("not read to the end")
	}
	return r.changed
}

func (r *fileReader) Close() error { return r.f.Close() }
