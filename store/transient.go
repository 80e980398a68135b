package store

import (
	"context"
	"errors"
)

// ErrTransient is wrapped by errors that a backend knows to be passing: a
// server that asked the client to slow down, a 5xx answer, a connection that
// was reset or timed out. Trying the same call again may succeed. Backends
// mark such errors with MarkTransient; callers test with Transient.
var ErrTransient = errors.New("store: transient failure")

// MarkTransient returns err marked as transient: Transient reports true for it
// and errors.Is(err, ErrTransient) holds, while its message stays err's. A nil
// err stays nil.
func MarkTransient(err error) error {
	if err == nil {
		return nil
	}
	return &transientError{err: err}
}

type transientError struct{ err error }

func (e *transientError) Error() string   { return e.err.Error() }
func (e *transientError) Unwrap() []error { return []error{e.err, ErrTransient} }

// Transient reports whether err is worth retrying: it wraps ErrTransient, or
// the first error in its chain with a Temporary method (as net's and
// net/http's errors have) says so.
//
// ErrNotFound, ErrInvalidName and context.Canceled are never transient,
// whatever else the chain holds: a missing object does not appear by asking
// again, and a caller that gave up must not be kept waiting. An error that
// matches context.DeadlineExceeded is transient only when marked: net/http's
// timeouts match it too, and only the backend knows whether the deadline
// was its transport's or the caller's. Code that retries must check its own
// context as well.
func Transient(err error) bool {
	switch {
	case err == nil,
		errors.Is(err, ErrNotFound),
		errors.Is(err, ErrInvalidName),
		errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, ErrTransient):
		return true
	case errors.Is(err, context.DeadlineExceeded):
		return false
	}
	var t interface{ Temporary() bool }
	if errors.As(err, &t) {
		return t.Temporary()
	}
	return false
}
