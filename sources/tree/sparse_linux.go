package tree

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// sparseSeeker finds data and holes with lseek(2) SEEK_DATA/SEEK_HOLE, so
// a 10 GB sparse file with 1 MB of data costs 1 MB of reads. File systems
// without hole tracking report the whole file as data, which is correct.
type sparseSeeker struct{ fd int }

func newSparseSeeker(f *os.File) sparseSeeker { return sparseSeeker{fd: int(f.Fd())} }

// region returns the start of the next data at or after off and the end of
// that data (the next hole). ENXIO (no data after off) means a hole to the
// end of the file: data is reported as "very far".
func (s sparseSeeker) region(off int64) (data, hole int64, ok bool) {
	d, err := unix.Seek(s.fd, off, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) {
		return 1 << 62, 1 << 62, true
	}
	if err != nil {
		return 0, 0, false
	}
	h, err := unix.Seek(s.fd, d, unix.SEEK_HOLE)
	if err != nil {
		return 0, 0, false
	}
	return d, h, true
}
