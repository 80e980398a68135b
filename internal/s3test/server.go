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
// The server is started by internal/minioserver, which the benchmark uses
// too. The minio binary is looked up on PATH and in $(go env GOPATH)/bin;
// when it is in neither, Shared fails the test and says to run
// scripts/install-minio.sh. Tests never skip for want of it.
package s3test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cairn-backup/cairn/internal/minioserver"
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
const InstallHint = minioserver.InstallHint

// Server is a running MinIO server on 127.0.0.1 (internal/minioserver) with
// a client to create buckets and look behind a store's back.
type Server struct {
	*minioserver.Server
	client  *minio.Client
	buckets atomic.Int64
}

// Start starts a MinIO server keeping its data in a new temporary directory
// and waits until it answers S3 calls (at most a minute). Stop ends it and
// removes the directory.
func Start(ctx context.Context) (*Server, error) {
	ms, err := minioserver.Start(ctx, minioserver.Options{User: AccessKey, Password: SecretKey})
	if err != nil {
		return nil, err
	}
	client, err := minio.New(ms.Endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(AccessKey, SecretKey, ""),
	})
	if err != nil {
		ms.Stop()
		return nil, err
	}
	return &Server{Server: ms, client: client}, nil
}

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
