// Package store defines the object store that holds a repository and its
// backends. A store keeps named, opaque byte objects; it never knows what they
// mean.
package store

import (
	"context"
	"errors"
	"io"
)

// ErrNotFound is returned (wrapped) by Get, Stat and Delete when the named
// object does not exist. Test with errors.Is.
var ErrNotFound = errors.New("store: object not found")

// Info describes one stored object.
type Info struct {
	Name string // full name, e.g. "data/ab/ab12…"
	Size int64
}

// Store is the contract every backend keeps.
//
// Names are slash-separated paths of lower-case letters, digits, '-', '_' and
// '.' ("config", "keys/…", "data/ab/ab12…"); backends map them to their own
// namespace. Every method refuses any other name (CheckName) with an error
// wrapping ErrInvalidName, and List any prefix CheckPrefix refuses, before
// touching anything. All methods are safe for concurrent use.
//
//   - Put is atomic: a reader sees either no object or the whole object under
//     name, never a partial one, also after a crash. Put replaces an existing
//     object atomically. When Put returns nil the object is durable.
//   - Get returns the bytes [offset, offset+length) of the object; length < 0
//     means to the end. A range past the end returns the bytes that exist.
//     The caller closes the reader. A missing object returns ErrNotFound.
//   - Read-after-write: once Put returns, Get, Stat and List see the object.
//   - List calls fn for every object whose name starts with prefix, in no
//     particular order; an error from fn stops the listing and is returned.
//     Each object is reported at most once, also when a backend retries a
//     listing that broke off (store/retry remembers what it reported). fn
//     is called from the goroutine that called List, one call at a time,
//     never concurrently, so it needs no locking of its own; it may call
//     the store's other methods. An object put or deleted while List runs
//     may or may not be reported.
//   - Delete of a missing object returns ErrNotFound.
type Store interface {
	Put(ctx context.Context, name string, data []byte) error
	Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error)
	Stat(ctx context.Context, name string) (Info, error)
	List(ctx context.Context, prefix string, fn func(Info) error) error
	Delete(ctx context.Context, name string) error
	Close() error
}

// ReadAll returns the whole object name.
func ReadAll(ctx context.Context, s Store, name string) ([]byte, error) {
	rc, err := s.Get(ctx, name, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// ReadRange returns length bytes at offset of object name, failing with
// io.ErrUnexpectedEOF when the object is shorter.
func ReadRange(ctx context.Context, s Store, name string, offset int64, length int) ([]byte, error) {
	rc, err := s.Get(ctx, name, offset, int64(length))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, length)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// Versioned is implemented by the readers that Get returns in backends that
// know which version of an object a reader reads (S3: the ETag). Two readers
// of one object with the same non-empty Version read the same bytes; after
// Put replaced the object, a new reader has another Version (or the same
// one, if the bytes are the same). Code that re-opens an object to resume a
// broken read (store/retry) uses it to tell a resumed stream from a spliced
// one.
type Versioned interface {
	Version() string
}
