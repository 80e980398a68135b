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
