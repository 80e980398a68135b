package store

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// ErrTooLarge is returned (wrapped) by ReadAtMost for an object larger than
// the caller's limit.
var ErrTooLarge = errors.New("store: object larger than expected")

// ReadAtMost returns the whole object name, or an error wrapping
// ErrTooLarge when it holds more than max bytes. It never buffers more than
// max+1 bytes, so an object a hostile store inflates cannot exhaust memory.
func ReadAtMost(ctx context.Context, s Store, name string, max int64) ([]byte, error) {
	rc, err := s.Get(ctx, name, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(buf)) > max {
		return nil, fmt.Errorf("%w: %s exceeds %d bytes", ErrTooLarge, name, max)
	}
	return buf, nil
}

// maxSizeHint bounds the buffer ReadAllSize allocates up front on the word
// of a listing: a store that lists a huge size gets a growing buffer, not
// a huge allocation.
const maxSizeHint = 64 << 20

// ReadAllSize is ReadAll for an object whose size the caller has from List:
// it reads into one buffer of that size (up to 64 MiB) instead of growing
// one from 512 bytes, which allocates two to three times the object in all
// (LoadIndex reads every index file so; the garbage counted against its
// memory peak). size is only a hint: an object of another size is read
// whole all the same. The object is read into dst's storage when dst has
// the room (a caller reading many objects reuses one buffer, so the reads
// leave no garbage).
func ReadAllSize(ctx context.Context, s Store, name string, size int64, dst []byte) ([]byte, error) {
	rc, err := s.Get(ctx, name, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// One byte more than the size, so the end is seen without growing.
	buf := dst[:0]
	if want := min(max(size, 0), maxSizeHint) + 1; int64(cap(buf)) < want {
		buf = make([]byte, 0, want)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rc.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
