package s3_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/s3test"
	"github.com/cairn-backup/cairn/internal/storetest"
	"github.com/cairn-backup/cairn/store"
	"github.com/cairn-backup/cairn/store/retry"
	"github.com/cairn-backup/cairn/store/s3"
	"github.com/minio/minio-go/v7"
)

// One MinIO server for the whole binary, started by the first test that needs
// it and stopped here.
func TestMain(m *testing.M) {
	// minio-go sleeps up to DefaultRetryUnit after a failed request even
	// with its retries off (MaxRetries 1); hundreds of injected faults would
	// spend most of the run there.
	minio.DefaultRetryUnit = time.Millisecond
	os.Exit(s3test.Main(m))
}

func open(t *testing.T, cfg s3.Config) *s3.Store {
	t.Helper()
	s, err := s3.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", cfg, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	srv := s3test.Shared(t)
	t.Run("BucketPerStore", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, func(t *testing.T) store.Store {
			s, err := s3.Open(t.Context(), srv.Config(srv.NewBucket(t), ""))
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
	t.Run("PrefixPerStore", func(t *testing.T) {
		t.Parallel()
		bucket := srv.NewBucket(t)
		var n atomic.Int64
		storetest.Run(t, func(t *testing.T) store.Store {
			cfg := srv.Config(bucket, fmt.Sprintf("repos/r%d", n.Add(1)))
			cfg.Region = "us-east-1" // no location lookup
			cfg.Connections = 4
			s, err := s3.Open(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
	t.Run("WithRetries", func(t *testing.T) {
		t.Parallel()
		bucket := srv.NewBucket(t)
		var n atomic.Int64
		storetest.Run(t, func(t *testing.T) store.Store {
			s, err := s3.Open(t.Context(), srv.Config(bucket, fmt.Sprintf("r%d", n.Add(1))))
			if err != nil {
				t.Fatal(err)
			}
			return retry.New(s, retry.Options{})
		})
	})
}

// Stores under different prefixes of one bucket do not see each other's
// objects, nor keys that are not object names.
func TestPrefixIsolation(t *testing.T) {
	srv := s3test.Shared(t)
	ctx := t.Context()
	bucket := srv.NewBucket(t)
	a := open(t, srv.Config(bucket, "a"))
	ab := open(t, srv.Config(bucket, "/a/b/"))
	if err := a.Put(ctx, "config", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := ab.Put(ctx, "config", []byte("ab")); err != nil {
		t.Fatal(err)
	}
	// Foreign keys: a folder marker, an upper-case name, a temp-file name.
	cl := srv.Client()
	for _, key := range []string{"a/b/folder/", "a/b/Foreign", "a/b/.tmp-x", "abc/config"} {
		if _, err := cl.PutObject(ctx, bucket, key, strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	listed := func(s store.Store) map[string]int64 {
		m := map[string]int64{}
		if err := s.List(ctx, "", func(i store.Info) error { m[i.Name] = i.Size; return nil }); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if got := listed(ab); len(got) != 1 || got["config"] != 2 {
		t.Errorf("store a/b lists %v, want only config (2 bytes)", got)
	}
	// Store "a" sees a/b's objects as b/…, which is what a prefix means.
	if got := listed(a); len(got) != 2 || got["config"] != 1 || got["b/config"] != 2 {
		t.Errorf("store a lists %v, want config and b/config", got)
	}
	if b, err := store.ReadAll(ctx, ab, "config"); err != nil || string(b) != "ab" {
		t.Errorf("a/b config = %q, %v", b, err)
	}
	// The key really is prefix/name.
	if _, err := cl.StatObject(ctx, bucket, "a/b/config", minio.StatObjectOptions{}); err != nil {
		t.Errorf("key a/b/config: %v", err)
	}
}

func TestWrongCredentials(t *testing.T) {
	srv := s3test.Shared(t)
	bucket := srv.NewBucket(t)
	for _, tc := range []struct {
		name       string
		access     string
		secret     string
		wantInText string
	}{
		{"unknown access key", "nosuchkey", s3test.SecretKey, "invalid access key"},
		{"wrong secret", s3test.AccessKey, "wrong-secret-key", "secret key does not match"},
	} {
		cfg := srv.Config(bucket, "")
		cfg.AccessKey, cfg.SecretKey = tc.access, tc.secret
		s, err := s3.Open(t.Context(), cfg)
		if err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded", tc.name)
			continue
		}
		msg := err.Error()
		if !errors.Is(err, s3.ErrAccessDenied) || store.Transient(err) ||
			!strings.Contains(msg, "access denied") || !strings.Contains(msg, tc.wantInText) ||
			!strings.Contains(msg, "http://"+srv.Endpoint) {
			t.Errorf("%s: Open: %v\nwant ErrAccessDenied, permanent, naming http://%s, saying %q", tc.name, err, srv.Endpoint, tc.wantInText)
		}
		t.Logf("%s: %v", tc.name, err)
	}
}

func TestMissingBucket(t *testing.T) {
	srv := s3test.Shared(t)
	name := srv.UniqueName(t)
	_, err := s3.Open(t.Context(), srv.Config(name, "p"))
	want := fmt.Sprintf("bucket %q does not exist", name)
	if !errors.Is(err, s3.ErrBucketNotFound) || !strings.Contains(err.Error(), want) ||
		!strings.Contains(err.Error(), "cairn init --create-bucket") {
		t.Fatalf("Open of a missing bucket: %v\nwant ErrBucketNotFound saying %q and the way out", err, want)
	}
	t.Logf("%v", err)

	cfg := srv.Config(name, "p")
	cfg.CreateBucket = true
	s := open(t, cfg)
	if err := s.Put(t.Context(), "config", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if ok, err := srv.Client().BucketExists(t.Context(), name); !ok || err != nil {
		t.Errorf("bucket not created: %v, %v", ok, err)
	}
	// CreateBucket on an existing bucket just opens it.
	s2 := open(t, cfg)
	if b, err := store.ReadAll(t.Context(), s2, "config"); err != nil || string(b) != "x" {
		t.Errorf("reopened store: %q, %v", b, err)
	}
	// And without it, now that it exists.
	cfg.CreateBucket = false
	open(t, cfg)
}

func TestUnreachableEndpoint(t *testing.T) {
	// A loopback port that was free a moment ago: connections are refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	start := time.Now()
	_, err = s3.Open(t.Context(), s3.Config{Endpoint: addr, Bucket: "bucket", AccessKey: "a", SecretKey: "s"})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open took %v", d)
	}
	if !errors.Is(err, s3.ErrUnreachable) || !store.Transient(err) ||
		!strings.Contains(err.Error(), "cannot connect to http://"+addr) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Open of a closed port: %v\nwant ErrUnreachable naming %s and the refusal", err, addr)
	}
	t.Logf("%v", err)
}

// An endpoint that accepts connections and never answers fails after the
// response-header timeout instead of hanging.
func TestSilentEndpoint(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	done := make(chan struct{})
	accepting := make(chan struct{})
	// Stop accepting before waiting for the connections: a WaitGroup must
	// not gain members while Wait runs (the race detector caught that when
	// the client retried during the wait).
	defer func() {
		l.Close()
		<-accepting
		close(done)
		conns.Wait()
	}()
	go func() {
		defer close(accepting)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				io.Copy(io.Discard, c) // read the request, say nothing
			})
			go func() { <-done; c.Close() }()
		}
	}()
	cfg := s3.WithTimeouts(s3.Config{Endpoint: l.Addr().String(), Bucket: "bucket", Region: "us-east-1"}, time.Second, 300*time.Millisecond)
	start := time.Now()
	_, err = s3.Open(t.Context(), cfg)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open took %v", d)
	}
	if !errors.Is(err, s3.ErrUnreachable) || !store.Transient(err) || !strings.Contains(err.Error(), "did not answer in time") {
		t.Fatalf("Open of a silent endpoint: %v\nwant ErrUnreachable saying it did not answer", err)
	}
	t.Logf("%v", err)
}

func TestCanceledOpen(t *testing.T) {
	srv := s3test.Shared(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s3.Open(ctx, srv.Config(srv.NewBucket(t), "")); !errors.Is(err, context.Canceled) {
		t.Errorf("Open with canceled context: %v", err)
	}
}

func TestTLSWithCustomCA(t *testing.T) {
	srv := s3test.Shared(t)
	p, err := s3test.NewProxy(srv.Endpoint, true)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cfg := srv.Config(srv.NewBucket(t), "")
	cfg.Endpoint, cfg.Secure = p.Endpoint, true

	_, err = s3.Open(t.Context(), cfg)
	if err == nil || store.Transient(err) || !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), "CA file") {
		t.Fatalf("Open over TLS without the CA: %v\nwant a permanent certificate error pointing at the CA file", err)
	}
	t.Logf("without CA: %v", err)

	cfg.CAFile = p.CAFile
	s := open(t, cfg)
	data := bytes.Repeat([]byte("tls"), 100_000)
	if err := s.Put(t.Context(), "data/x", data); err != nil {
		t.Fatal(err)
	}
	if b, err := store.ReadRange(t.Context(), s, "data/x", 3, 6); err != nil || string(b) != "tlstls" {
		t.Errorf("ReadRange over TLS = %q, %v", b, err)
	}
}

// The server checks what Put sends: a body damaged on the way is refused and
// nothing is stored.
func TestServerVerifiesChecksum(t *testing.T) {
	srv := s3test.Shared(t)
	p := newProxy(t, srv)
	s := open(t, proxied(srv, p, srv.NewBucket(t)))
	ctx := t.Context()
	for _, size := range []int{1, 1000, 5 << 20} {
		name := fmt.Sprintf("data/%d", size)
		p.FailNext(s3test.CorruptUpload)
		err := s.Put(ctx, name, bytes.Repeat([]byte{'c'}, size))
		if err == nil {
			t.Fatalf("Put of a body corrupted in transit (%d bytes) succeeded", size)
		}
		if !store.Transient(err) || !(strings.Contains(err.Error(), "BadDigest") || strings.Contains(err.Error(), "XAmzContentSHA256Mismatch")) {
			t.Errorf("Put of a corrupted body: %v\nwant a transient BadDigest or XAmzContentSHA256Mismatch", err)
		}
		t.Logf("%d bytes: %v", size, err)
		if _, err := s.Stat(ctx, name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after a refused Put, Stat = %v, want ErrNotFound", err)
		}
	}
	if _, faults := p.Counts(); faults[s3test.CorruptUpload] != 3 {
		t.Errorf("proxy corrupted %d uploads, want 3", faults[s3test.CorruptUpload])
	}
}

// The server also checks the payload's SHA-256 that Put signs: a request
// whose body matches its Content-MD5 but not its x-amz-content-sha256 is
// refused. (Put computes both from the same bytes; this sends a wrong one on
// purpose, the way Put sends them.)
func TestServerVerifiesSHA256(t *testing.T) {
	srv := s3test.Shared(t)
	bucket := srv.NewBucket(t)
	data := []byte("payload")
	sum := md5.Sum(data)
	wrong := sha256.Sum256([]byte("something else"))
	core := minio.Core{Client: srv.Client()}
	_, err := core.PutObject(t.Context(), bucket, "obj", bytes.NewReader(data), int64(len(data)),
		base64.StdEncoding.EncodeToString(sum[:]), hex.EncodeToString(wrong[:]),
		minio.PutObjectOptions{DisableContentSha256: true, DisableMultipart: true})
	if minio.ToErrorResponse(err).Code != "XAmzContentSHA256Mismatch" {
		t.Fatalf("PUT with a wrong x-amz-content-sha256: %v, want XAmzContentSHA256Mismatch", err)
	}
	if _, err := srv.Client().StatObject(t.Context(), bucket, "obj", minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
		t.Errorf("the refused object exists: %v", err)
	}
}

func newProxy(t *testing.T, srv *s3test.Server) *s3test.Proxy {
	t.Helper()
	p, err := s3test.NewProxy(srv.Endpoint, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func proxied(srv *s3test.Server, p *s3test.Proxy, bucket string) s3.Config {
	cfg := srv.Config(bucket, "")
	cfg.Endpoint = p.Endpoint
	return cfg
}

// Each fault, alone and without retries, surfaces as a transient error of
// the call it hit, and never leaves a partial object behind.
func TestFaultsSurfaceAsTransientErrors(t *testing.T) {
	srv := s3test.Shared(t)
	p := newProxy(t, srv)
	s := open(t, proxied(srv, p, srv.NewBucket(t)))
	ctx := t.Context()
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	if err := s.Put(ctx, "data/base", data); err != nil {
		t.Fatal(err)
	}
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: no error", what)
		} else if !store.Transient(err) {
			t.Errorf("%s: %v is not transient", what, err)
		}
	}
	for _, f := range s3test.AllFaults {
		name := "data/put-" + strings.ToLower(f.String())
		p.FailNext(f)
		check(f.String()+" Put", s.Put(ctx, name, data))
		switch info, err := s.Stat(ctx, name); {
		case f == s3test.DropResponse:
			// The server stored it; only the answer was lost.
			if err != nil || info.Size != int64(len(data)) {
				t.Errorf("%s: Stat after lost acknowledgement = %+v, %v; want the whole object", f, info, err)
			}
		case !errors.Is(err, store.ErrNotFound):
			t.Errorf("%s: Stat after failed Put = %+v, %v; want ErrNotFound", f, info, err)
		}

		if f == s3test.CorruptUpload || f == s3test.DropUpload {
			continue // GET, HEAD and list requests have no body
		}
		p.FailNext(f)
		rc, err := s.Get(ctx, "data/base", 0, -1)
		if err == nil {
			// DropResponse cuts the body, after the headers.
			_, err = io.ReadAll(rc)
			rc.Close()
		}
		check(f.String()+" Get", err)

		p.FailNext(f)
		_, err = s.Stat(ctx, "data/base")
		check(f.String()+" Stat", err)

		p.FailNext(f)
		check(f.String()+" List", s.List(ctx, "", func(store.Info) error { return nil }))

		p.FailNext(f)
		check(f.String()+" Delete", s.Delete(ctx, "data/missing"))
	}
	if b, err := store.ReadAll(ctx, s, "data/base"); err != nil || !bytes.Equal(b, data) {
		t.Errorf("data/base after the faults: %d bytes, %v", len(b), err)
	}
}

// content returns n bytes that differ per seed.
func content(seed, n int) []byte {
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

// size gives the objects of the fault tests a mix of sizes: mostly up to
// 200 kB, some empty, a few of 1 and 3 MiB.
func size(i int) int {
	switch {
	case i%10 == 0:
		return 0
	case i%20 == 1:
		return 1 << 20
	case i%50 == 2:
		return 3<<20 + 17
	}
	return 1 + (i*7919)%200_000
}

// Several hundred puts, gets and lists through a proxy that breaks a tenth of
// all requests in every way it knows; the retry decorator hides every
// failure, and every object reads back as it was written.
func TestRetriesThroughFaultyProxy(t *testing.T) {
	srv := s3test.Shared(t)
	p := newProxy(t, srv)
	inner := open(t, proxied(srv, p, srv.NewBucket(t)))
	var retries atomic.Int64
	s := retry.New(inner, retry.Options{
		MaxAttempts: 8,
		BaseDelay:   time.Millisecond,
		MaxDelay:    20 * time.Millisecond,
		OnRetry: func(op, name string, attempt int, err error, wait time.Duration) {
			retries.Add(1)
			if !store.Transient(err) {
				t.Errorf("retrying a permanent error: %v", err)
			}
		},
	})
	ctx := t.Context()
	p.SetFaults(0.10)

	const objects, workers = 200, 8
	name := func(i int) string { return fmt.Sprintf("data/%02x/obj%03d", i%16, i) }
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				if err := s.Put(ctx, name(i), content(i, size(i))); err != nil {
					t.Errorf("Put(%s): %v", name(i), err)
				}
			}
		})
	}
	for i := range objects {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if t.Failed() {
		return
	}

	for round := range 10 {
		listed := map[string]int64{}
		err := s.List(ctx, "data/", func(info store.Info) error {
			if _, dup := listed[info.Name]; dup {
				return fmt.Errorf("%s listed twice", info.Name)
			}
			listed[info.Name] = info.Size
			return nil
		})
		if err != nil {
			t.Fatalf("List round %d: %v", round, err)
		}
		if len(listed) != objects {
			t.Fatalf("List round %d: %d objects, want %d", round, len(listed), objects)
		}
		for i := range objects {
			if listed[name(i)] != int64(size(i)) {
				t.Fatalf("List round %d: %s has size %d, want %d", round, name(i), listed[name(i)], size(i))
			}
		}
	}

	jobs = make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				want := content(i, size(i))
				got, err := store.ReadAll(ctx, s, name(i))
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("ReadAll(%s) = %d bytes, %v; want the %d put", name(i), len(got), err, len(want))
					continue
				}
				if len(want) > 1000 {
					off := len(want) / 3
					got, err := store.ReadRange(ctx, s, name(i), int64(off), 500)
					if err != nil || !bytes.Equal(got, want[off:off+500]) {
						t.Errorf("ReadRange(%s, %d, 500): %v", name(i), off, err)
					}
				}
				if info, err := s.Stat(ctx, name(i)); err != nil || info.Size != int64(len(want)) {
					t.Errorf("Stat(%s) = %+v, %v", name(i), info, err)
				}
				if i%4 == 0 {
					// ErrNotFound: an attempt deleted it and its answer
					// was lost (see retry's Delete); the count below
					// checks that it is gone.
					if err := s.Delete(ctx, name(i)); err != nil && !errors.Is(err, store.ErrNotFound) {
						t.Errorf("Delete(%s): %v", name(i), err)
					}
				}
			}
		})
	}
	for i := range objects {
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	p.SetFaults(0)
	n := 0
	if err := inner.List(ctx, "", func(store.Info) error { n++; return nil }); err != nil || n != objects-objects/4 {
		t.Errorf("after deleting a quarter: %d objects, %v; want %d", n, err, objects-objects/4)
	}
	requests, faults := p.Counts()
	t.Logf("%d requests, faults %v, %d retries", requests, faults, retries.Load())
	for _, f := range s3test.AllFaults {
		if faults[f] == 0 {
			t.Errorf("the proxy never injected %s", f)
		}
	}
	if retries.Load() == 0 {
		t.Error("no retries")
	}
}

// Without the retry decorator, the same faults reach the caller, each as a
// transient error, and no object is ever partial.
func TestFaultsWithoutRetries(t *testing.T) {
	srv := s3test.Shared(t)
	p := newProxy(t, srv)
	s := open(t, proxied(srv, p, srv.NewBucket(t)))
	ctx := t.Context()
	p.SetFaults(0.25)
	failed := 0
	for i := range 120 {
		name := fmt.Sprintf("data/%03d", i)
		data := content(i, size(i))
		err := s.Put(ctx, name, data)
		if err == nil {
			var b []byte
			b, err = store.ReadAll(ctx, s, name)
			if err == nil && !bytes.Equal(b, data) {
				t.Fatalf("%s read back %d bytes that differ from the %d put", name, len(b), len(data))
			}
		}
		if err == nil {
			err = s.List(ctx, "data/", func(store.Info) error { return nil })
		}
		if err != nil {
			failed++
			if !store.Transient(err) {
				t.Errorf("%s: %v is not transient", name, err)
			}
		}
	}
	if failed == 0 {
		t.Error("no operation failed")
	}
	// Whatever was stored is whole.
	p.SetFaults(0)
	err := s.List(ctx, "", func(info store.Info) error {
		var i int
		fmt.Sscanf(info.Name, "data/%d", &i)
		b, err := store.ReadAll(ctx, s, info.Name)
		if err != nil || !bytes.Equal(b, content(i, size(i))) {
			return fmt.Errorf("%s: %d bytes, %v: not the object put", info.Name, len(b), err)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	_, faults := p.Counts()
	t.Logf("%d of 120 rounds failed; faults %v", failed, faults)
}

func TestConnectionsLimit(t *testing.T) {
	srv := s3test.Shared(t)
	p := newProxy(t, srv)
	cfg := proxied(srv, p, srv.NewBucket(t))
	cfg.Connections = 2
	cfg.Region = "us-east-1"
	s := open(t, cfg)
	var wg sync.WaitGroup
	data := make([]byte, 256<<10)
	for i := range 24 {
		wg.Go(func() {
			if err := s.Put(t.Context(), fmt.Sprintf("data/%d", i), data); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := p.MaxInFlight(); got > cfg.Connections {
		t.Errorf("up to %d requests in flight, want at most %d", got, cfg.Connections)
	} else if got < cfg.Connections {
		t.Errorf("at most %d requests in flight, want %d: the test shows nothing", got, cfg.Connections)
	}
}

// A Get's body that breaks mid-way is resumed by the retry decorator at the
// offset reached, and the caller sees one clean stream.
func TestGetResumesMidBody(t *testing.T) {
	srv := s3test.Shared(t)
	p := newProxy(t, srv)
	inner := open(t, proxied(srv, p, srv.NewBucket(t)))
	var reads atomic.Int64
	s := retry.New(inner, retry.Options{BaseDelay: time.Millisecond, OnRetry: func(op, _ string, _ int, _ error, _ time.Duration) {
		if op == "read" {
			reads.Add(1)
		}
	}})
	ctx := t.Context()
	data := content(7, 4<<20)
	if err := s.Put(ctx, "data/big", data); err != nil {
		t.Fatal(err)
	}
	p.FailNext(s3test.DropResponse, s3test.DropResponse, s3test.DropResponse)
	got, err := store.ReadAll(ctx, s, "data/big")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadAll through three cut responses: %d bytes, %v", len(got), err)
	}
	if reads.Load() != 3 {
		t.Errorf("%d resumed reads, want 3", reads.Load())
	}
	p.FailNext(s3test.DropResponse, s3test.SlowDown, s3test.DropResponse)
	got, err = store.ReadRange(ctx, s, "data/big", 1000, 2<<20)
	if err != nil || !bytes.Equal(got, data[1000:1000+2<<20]) {
		t.Fatalf("ReadRange through cut responses: %d bytes, %v", len(got), err)
	}
}

// A broken read is not resumed on a newer version of the object: S3's ETag
// tells them apart, and the caller gets retry.ErrReplaced rather than a
// stream spliced from two versions.
func TestGetReplacedWhileResuming(t *testing.T) {
	srv := s3test.Shared(t)
	p := newProxy(t, srv)
	bucket := srv.NewBucket(t)
	inner := open(t, proxied(srv, p, bucket))
	direct := open(t, srv.Config(bucket, ""))
	ctx := t.Context()
	v1, v2 := content(1, 1<<20), content(2, 1<<20)
	if err := inner.Put(ctx, "config", v1); err != nil {
		t.Fatal(err)
	}
	s := retry.New(inner, retry.Options{BaseDelay: time.Millisecond, OnRetry: func(op, _ string, _ int, _ error, _ time.Duration) {
		if op == "read" {
			if err := direct.Put(ctx, "config", v2); err != nil {
				t.Error(err)
			}
		}
	}})
	p.FailNext(s3test.DropResponse)
	got, err := store.ReadAll(ctx, s, "config")
	if !errors.Is(err, retry.ErrReplaced) {
		t.Fatalf("ReadAll across a replacement: %d bytes, %v; want ErrReplaced", len(got), err)
	}
	if !bytes.Equal(got, v1[:len(got)]) {
		t.Error("the bytes delivered before the error are not all of the first version")
	}
	t.Logf("%v", err)
	if got, err := store.ReadAll(ctx, s, "config"); err != nil || !bytes.Equal(got, v2) {
		t.Errorf("reading again: %d bytes, %v; want the new version whole", len(got), err)
	}
}
