// Package s3test runs a real MinIO server for tests, and a fault-injecting
// proxy to put in front of it.
//
// One server serves a whole test binary: the first test that calls Shared
// starts it, and Main, called from TestMain, stops it when the tests are
// done:
//
//	func TestMain(m *testing.M) { os.Exit(s3test.Main(m)) }
//
//	func TestX(t *testing.T) {
//		srv := s3test.Shared(t)
//		st, err := s3.Open(t.Context(), srv.Config(srv.NewBucket(t), ""))
//		…
//	}
//
// The minio binary is looked up on PATH and in $(go env GOPATH)/bin; when it
// is in neither, Shared fails the test and says to run
// scripts/install-minio.sh. Tests never skip for want of it.
package s3test

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
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/store/s3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Credentials of the servers Start runs.
const (
	AccessKey = "cairntest"
	SecretKey = "cairntest-secret-key"
)

// InstallHint is the advice given when no minio binary is found.
const InstallHint = "minio server not found on PATH or in $(go env GOPATH)/bin: run scripts/install-minio.sh (it builds the pinned MinIO release with go install, a few minutes)"

// FindMinio returns the path of the minio binary: $MINIO_BINARY if set, else
// minio on PATH, else $(go env GOPATH)/bin/minio (also $GOBIN/minio).
func FindMinio() (string, error) {
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
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) == 2 {
			if lines[0] != "" {
				dirs = append(dirs, lines[0])
			}
			for p := range strings.SplitSeq(lines[1], string(os.PathListSeparator)) {
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

// Server is a running MinIO server on 127.0.0.1.
type Server struct {
	Endpoint string // host:port of the S3 API

	dir     string
	cmd     *exec.Cmd
	exited  chan struct{}
	log     *syncBuffer
	client  *minio.Client
	buckets atomic.Int64
}

// Start starts a MinIO server keeping its data in a new temporary directory
// and waits until it answers its health check (at most a minute). Stop ends
// it and removes the directory.
func Start(ctx context.Context) (*Server, error) {
	bin, err := FindMinio()
	if err != nil {
		return nil, err
	}
	var lastErr error
	// Free ports are found by binding and releasing them; another process
	// can take one in between, so a failed start is tried again.
	for range 3 {
		s, err := start(ctx, bin)
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

func start(ctx context.Context, bin string) (*Server, error) {
	dir, err := os.MkdirTemp("", "cairn-minio-")
	if err != nil {
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
	data := filepath.Join(dir, "data")
	cmd := exec.Command(bin, "server", data,
		"--address", apiAddr,
		"--console-address", consoleAddr,
		"--certs-dir", filepath.Join(dir, "certs"),
		"--quiet")
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+AccessKey,
		"MINIO_ROOT_PASSWORD="+SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CALLHOME_ENABLE=off",
		"MINIO_SCANNER_SPEED=slowest",
		"HOME="+dir, // keeps ~/.minio out of the real home
	)
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	s := &Server{Endpoint: apiAddr, dir: dir, cmd: cmd, exited: make(chan struct{}), log: log}
	go func() { cmd.Wait(); close(s.exited) }()

	if err := s.waitReady(ctx, time.Minute); err != nil {
		s.Stop()
		return nil, fmt.Errorf("minio server at %s: %w\n--- minio output ---\n%s", apiAddr, err, log.String())
	}
	s.client, err = minio.New(apiAddr, &minio.Options{
		Creds: credentials.NewStaticV4(AccessKey, SecretKey, ""),
	})
	if err != nil {
		s.Stop()
		return nil, err
	}
	// Even "ready", a fresh server answers S3 calls with 503
	// XMinioServerNotInitialized for a moment; wait until one succeeds.
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := s.client.ListBuckets(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("minio server at %s does not answer S3 calls: %w", apiAddr, err)
		}
		time.Sleep(50 * time.Millisecond)
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

func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	// "ready" rather than "live": a live server can still answer S3 calls
	// with 503 XMinioServerNotInitialized for a moment, which made the
	// first test against a fresh server see the wrong error now and then.
	url := "http://" + s.Endpoint + "/minio/health/ready"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("exited before it was ready (%v)", s.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("not ready after %v: %w", timeout, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop kills the server and removes its data.
func (s *Server) Stop() error {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
		<-s.exited
	}
	return os.RemoveAll(s.dir)
}

// Log returns what the server printed.
func (s *Server) Log() string { return s.log.String() }

// Config returns the configuration of a store in bucket under prefix, with
// the server's credentials.
func (s *Server) Config(bucket, prefix string) s3.Config {
	return s3.Config{
		Endpoint:  s.Endpoint,
		Bucket:    bucket,
		Prefix:    prefix,
		AccessKey: AccessKey,
		SecretKey: SecretKey,
	}
}

// NewBucket creates a bucket with a name no other call returns and returns
// the name. Buckets stay until the server stops.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test-%d-%d", os.Getpid(), s.buckets.Add(1))
	if err := s.client.MakeBucket(t.Context(), name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("creating bucket %s: %v", name, err)
	}
	return name
}

// UniqueName returns a bucket name that no other call returns and that does
// not exist (yet).
func (s *Server) UniqueName(t testing.TB) string {
	return fmt.Sprintf("absent-%d-%d", os.Getpid(), s.buckets.Add(1))
}

// Client returns a minio-go client of the server with its root credentials,
// to look behind a store's back.
func (s *Server) Client() *minio.Client { return s.client }

var shared struct {
	mu  sync.Mutex
	srv *Server
	err error
}

// Shared returns the test binary's server, starting it on first use. It
// fails t (with InstallHint if the binary is missing) when it cannot.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.err = Start(context.Background())
	}
	if shared.err != nil {
		t.Fatalf("MinIO: %v", shared.err)
	}
	return shared.srv
}

// Main runs the tests and then stops the shared server, if one was started.
// Call it from TestMain: os.Exit(s3test.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil {
		shared.srv.Stop()
		shared.srv = nil
	}
	return code
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a child's
// stdout and stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() > 1<<20 {
		return len(p), nil // enough to diagnose; keep memory bounded
	}
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
