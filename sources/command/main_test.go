package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/dbtest"
)

// dbs are the package's database servers, started by the first test that
// needs each and shared by all: initdb and mariadb-install-db cost more
// than the tests themselves. Tests isolate themselves with NewDatabase.
var dbs dbtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	if err := dbs.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the test databases:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// bounded returns a context that ends well before the test binary's own
// timeout, so that a hang fails one test with a clear message instead of
// killing the whole run.
func bounded(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// readAll reads s to its end like the archiver does, then runs its Finish
// check; it returns the data, Read's error (nil for a clean end) and
// Wait's.
func readAll(t *testing.T, ctx context.Context, s *Stream) (data []byte, readErr, waitErr error) {
	t.Helper()
	var buf bytes.Buffer
	_, readErr = io.Copy(&buf, s)
	waitErr = s.Wait(ctx)
	if err := s.Close(); err != nil {
		t.Errorf("Close after Wait: %v", err)
	}
	return buf.Bytes(), readErr, waitErr
}

// dump runs spec to the end through a Stream and fails the test on any
// error.
func dump(t *testing.T, ctx context.Context, spec Spec) []byte {
	t.Helper()
	s, err := Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	data, rerr, werr := readAll(t, ctx, s)
	if rerr != nil || werr != nil {
		t.Fatalf("%s: read: %v, wait: %v\nstderr: %s", spec.commandLine(), rerr, werr, s.Stderr())
	}
	return data
}

// gone reports whether process pid has ended: it no longer exists, or is a
// zombie whose parent is not us (an orphan waiting for init, which in a
// container may never reap it).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// "pid (comm) S ppid …": the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z' && !strings.HasPrefix(s[i+4:], fmt.Sprint(os.Getpid())+" ")
}

// waitGone waits up to d for pid to end.
func waitGone(t *testing.T, pid int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !gone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still running %v after it should have been killed", pid, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// isExitError checks err is an *ExitError with the given status or signal.
func isExitError(t *testing.T, err error, status int, sig syscall.Signal) *ExitError {
	t.Helper()
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("error %v (%T) is not an *ExitError", err, err)
	}
	if ee.Status != status || ee.Signal != sig {
		t.Fatalf("ExitError status %d signal %v, want %d %v: %v", ee.Status, ee.Signal, status, sig, err)
	}
	return ee
}
