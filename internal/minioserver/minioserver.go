// Package minioserver runs a real MinIO server on loopback: the one
// launcher behind the S3 tests (internal/s3test) and the benchmark's S3
// part (bench -s3).
//
// The binary is the one scripts/install-minio.sh builds; Find looks for it
// the same way for both.
package minioserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// InstallHint is the advice given when no minio binary is found.
const InstallHint = "minio server not found on PATH or in $(go env GOPATH)/bin: run scripts/install-minio.sh (it builds the pinned MinIO release with go install, a few minutes)"

// Find returns the path of the minio binary: $MINIO_BINARY if set, else
// minio on PATH, else minio in $GOBIN, $(go env GOPATH)/bin or ~/go/bin.
func Find() (string, error) {
	if p := os.Getenv("MINIO_BINARY"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("MINIO_BINARY: %w", err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) == 2 {
			if lines[0] != "" {
				dirs = append(dirs, lines[0])
			}
			for _, p := range filepath.SplitList(lines[1]) {
				dirs = append(dirs, filepath.Join(p, "bin"))
			}
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "minio")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", errors.New(InstallHint)
}

// Options describe the server to start.
type Options struct {
	// Binary is the minio executable; default Find's answer.
	Binary string
	// Dir holds the server's data (Dir/data), certs directory and HOME. It
	// is emptied first (a killed run may have left one) and removed by
	// Stop. Default: a new temporary directory.
	Dir string
	// User and Password are the root credentials (at least 3 and 8
	// characters).
	User, Password string
	// Env is the environment the server starts with, before its own
	// settings; default os.Environ().
	Env []string
}

// Server is a running MinIO server on 127.0.0.1.
type Server struct {
	Endpoint string // host:port of the S3 API
	Dir      string // see Options.Dir

	cmd    *exec.Cmd
	exited chan struct{}
	log    *tailBuffer
}

// Start starts a server and waits until its S3 API answers (at most a
// minute). Free ports are found by binding and releasing them; another
// process can take one in between, so a failed start is tried again.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Binary == "" {
		bin, err := Find()
		if err != nil {
			return nil, err
		}
		opts.Binary = bin
	}
	if opts.Env == nil {
		opts.Env = os.Environ()
	}
	temp := opts.Dir == ""
	var lastErr error
	for range 3 {
		if temp {
			dir, err := os.MkdirTemp("", "cairn-minio-")
			if err != nil {
				return nil, err
			}
			opts.Dir = dir
		}
		s, err := start(ctx, opts)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func start(ctx context.Context, opts Options) (*Server, error) {
	dir := opts.Dir
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	apiAddr, err := freeAddr()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	consoleAddr, err := freeAddr()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.Command(opts.Binary, "server", filepath.Join(dir, "data"),
		"--address", apiAddr, "--console-address", consoleAddr,
		"--certs-dir", filepath.Join(dir, "certs"), "--quiet")
	cmd.Env = append(slices.Clip(opts.Env),
		"MINIO_ROOT_USER="+opts.User,
		"MINIO_ROOT_PASSWORD="+opts.Password,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CALLHOME_ENABLE=off",
		"MINIO_SCANNER_SPEED=slowest", // no background scans during tests and timed steps
		"HOME="+dir,                   // keeps ~/.minio out of the real home
	)
	log := &tailBuffer{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = log, log
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", opts.Binary, err)
	}
	s := &Server{Endpoint: apiAddr, Dir: dir, cmd: cmd, exited: make(chan struct{}), log: log}
	go func() { cmd.Wait(); close(s.exited) }()
	if err := s.waitReady(ctx, time.Minute); err != nil {
		s.Stop()
		return nil, fmt.Errorf("minio server at %s: %w\n--- minio output (tail) ---\n%s", apiAddr, err, log.String())
	}
	return s, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitReady waits for /minio/health/ready, then for the S3 API itself: a
// fresh server answers S3 requests with 503 XMinioServerNotInitialized for
// a moment after it is "ready", which made the first test against a fresh
// server see the wrong error now and then. An unsigned ListBuckets is
// refused with 403 AccessDenied once the S3 layer is up, which is all
// there is to know.
func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for _, check := range []struct {
		path string
		ok   func(code int) bool
	}{
		{"/minio/health/ready", func(code int) bool { return code == http.StatusOK }},
		{"/", func(code int) bool { return code != http.StatusServiceUnavailable }},
	} {
		last := "no answer"
		for {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Endpoint+check.path, nil)
			if err != nil {
				return err
			}
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
				if check.ok(resp.StatusCode) {
					break
				}
				last = resp.Status
			}
			// Polled: the server announces readiness nowhere else.
			select {
			case <-s.exited:
				return fmt.Errorf("exited before it was ready (%v)", s.cmd.ProcessState)
			case <-ctx.Done():
				return fmt.Errorf("GET %s: not ready after %v (last: %s)", check.path, timeout, last)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// Stop kills the server, waits for it and removes its directory.
func (s *Server) Stop() error {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
		<-s.exited
	}
	return os.RemoveAll(s.Dir)
}

// Exited reports whether the server process has ended.
func (s *Server) Exited() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

// Log returns the end of what the server printed.
func (s *Server) Log() string { return s.log.String() }

// tailBuffer keeps the last max bytes written to it; safe for the
// concurrent writes of a child's stdout and stderr.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if extra := t.buf.Len() - t.max; extra > 0 {
		t.buf.Next(extra)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
