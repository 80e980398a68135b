package store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/cairn-backup/cairn/store"
)

type temporary bool

func (t temporary) Error() string   { return "temporary?" }
func (t temporary) Temporary() bool { return bool(t) }

// timeoutErr is like net/http's timeout awaiting response headers.
type timeoutErr struct{}

func (timeoutErr) Error() string        { return "timeout awaiting response headers" }
func (timeoutErr) Timeout() bool        { return true }
func (timeoutErr) Temporary() bool      { return true }
func (timeoutErr) Is(target error) bool { return target == context.DeadlineExceeded }

func TestTransient(t *testing.T) {
	base := errors.New("503 SlowDown")
	marked := store.MarkTransient(base)
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", base, false},
		{"marked", marked, true},
		{"marked, wrapped", fmt.Errorf("put x: %w", marked), true},
		{"wraps ErrTransient", fmt.Errorf("reset: %w", store.ErrTransient), true},
		{"Temporary true", fmt.Errorf("x: %w", temporary(true)), true},
		{"Temporary false", temporary(false), false},
		{"net: i/o timeout", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, true},
		// net calls a reset permanent; backends mark it themselves.
		{"net: connection reset", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, false},
		{"net: connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, false},
		{"not found, marked", store.MarkTransient(fmt.Errorf("x: %w", store.ErrNotFound)), false},
		{"invalid name, marked", store.MarkTransient(store.ErrInvalidName), false},
		{"canceled, marked", store.MarkTransient(context.Canceled), false},
		{"deadline", fmt.Errorf("put: %w", context.DeadlineExceeded), false},
		{"transport timeout, matching DeadlineExceeded", fmt.Errorf("get: %w", timeoutErr{}), false},
		{"transport timeout, marked", store.MarkTransient(fmt.Errorf("get: %w", timeoutErr{})), true},
	} {
		if got := store.Transient(tc.err); got != tc.want {
			t.Errorf("%s: Transient(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
	if marked.Error() != base.Error() {
		t.Errorf("MarkTransient changed the message: %q", marked)
	}
	if !errors.Is(marked, base) || !errors.Is(marked, store.ErrTransient) {
		t.Error("MarkTransient's error does not wrap both the error and ErrTransient")
	}
	if store.MarkTransient(nil) != nil {
		t.Error("MarkTransient(nil) != nil")
	}
}
