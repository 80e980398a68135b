package repo_test

// Repositories in a real MinIO server (internal/s3test), opened as cairn
// opens an s3: location: s3.Open wrapped in the retry decorator.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/internal/s3test"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/archive"
	"github.com/cairn-backup/cairn/repo/check"
	"github.com/cairn-backup/cairn/repo/restore"
	"github.com/cairn-backup/cairn/store"
	"github.com/cairn-backup/cairn/store/cache"
	"github.com/cairn-backup/cairn/store/retry"
	"github.com/cairn-backup/cairn/store/s3"
	"github.com/minio/minio-go/v7"
)

// One MinIO server for the whole binary, started by the first test that
// needs it and stopped here.
func TestMain(m *testing.M) {
	// minio-go sleeps up to DefaultRetryUnit after a failed request even
	// with its own retries off; the injected faults would spend the run
	// there.
	minio.DefaultRetryUnit = time.Millisecond
	os.Exit(s3test.Main(m))
}

// openS3 opens the store at cfg as cmd/cairn does, with retries; opts
// tunes them (the zero value is cairn's). The store is closed at the end of
// the test.
func openS3(t *testing.T, cfg s3.Config, opts retry.Options) store.Store {
	t.Helper()
	s, err := s3.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("s3.Open(%s): %v", cfg, err)
	}
	t.Cleanup(func() { s.Close() })
	return retry.New(s, opts)
}

// countGets counts the Gets that reach a store, by first name element.
type countGets struct {
	store.Store
	mu sync.Mutex
	n  map[string]int
}

func (c *countGets) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	top, _, _ := strings.Cut(name, "/")
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[top]++
	c.mu.Unlock()
	return c.Store.Get(ctx, name, offset, length)
}

func (c *countGets) count(top string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[top]
}

// checkRestore restores snapshot id and compares it with src and stream;
// the snapshot has files regular files, the stream included.
func checkRestore(t *testing.T, r *repo.Repository, id, src string, stream []byte, files uint64) {
	t.Helper()
	dir, rr, err := restoreSnapshot(t, r, id, restore.Options{Verify: true})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	sameTree(t, src, filepath.Join(dir, "files"))
	if got, err := os.ReadFile(filepath.Join(dir, "db")); err != nil || !bytes.Equal(got, stream) {
		t.Errorf("stream restored wrong (%d bytes, %v)", len(got), err)
	}
	if rr.Files != files {
		t.Errorf("restored %d files, want %d", rr.Files, files)
	}
}

func checkReadData(t *testing.T, r *repo.Repository) *check.Report {
	t.Helper()
	rep, err := check.Check(t.Context(), r, check.Options{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("check --read-data: %v %+v", err, rep)
	}
	return rep
}

// init, backup, restore and check --read-data of a repository under a
// prefix of a bucket, each from a fresh connection as separate commands
// would; then the same through the metadata cache, which must not download
// an index file or manifest twice.
func TestS3RoundTrip(t *testing.T) {
	srv := s3test.Shared(t)
	bucket := srv.NewBucket(t)
	cfg := srv.Config(bucket, "backups/host1")
	src := t.TempDir()
	writeTree(t, src, 21)
	stream := textData(22, 1<<20)

	r := initRepo(t, openS3(t, cfg, retry.Options{}))
	res, err := backup(t, r, src, stream, archive.Options{Saver: repo.SaverOptions{PackSize: 1 << 20}})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}

	r2 := reopen(t, openS3(t, cfg, retry.Options{}))
	checkRestore(t, r2, res.ID.String(), src, stream, 6)
	rep := checkReadData(t, reopen(t, openS3(t, cfg, retry.Options{})))
	if rep.Packs < 2 || rep.Snapshots != 1 || rep.ReadBytes == 0 {
		t.Errorf("check saw %d packs, %d snapshots, %d bytes read", rep.Packs, rep.Snapshots, rep.ReadBytes)
	}

	// The objects are keys under the prefix, named as FORMAT.md says.
	tops := map[string]int{}
	for obj := range srv.Client().ListObjects(t.Context(), bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		rest, ok := strings.CutPrefix(obj.Key, "backups/host1/")
		if !ok {
			t.Errorf("key %q outside the prefix", obj.Key)
		}
		top, _, _ := strings.Cut(rest, "/")
		tops[top]++
	}
	if tops["config"] != 1 || tops["keys"] != 1 || tops["index"] == 0 || tops["snapshots"] != 1 || tops["data"] != rep.Packs {
		t.Errorf("objects in the bucket by kind: %v", tops)
	}

	t.Run("cached", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "cache")
		open := func() (*repo.Repository, *countGets) {
			counted := &countGets{Store: openS3(t, cfg, retry.Options{})}
			c, err := cache.New(counted, dir)
			if err != nil {
				t.Fatal(err)
			}
			return reopen(t, c), counted
		}
		// The first command downloads the metadata once and keeps it.
		r, counted := open()
		if _, err := r.Snapshots(t.Context()); err != nil {
			t.Fatal(err)
		}
		checkRestore(t, r, res.ID.String(), src, stream, 6)
		if counted.count("index") == 0 || counted.count("snapshots") != 1 {
			t.Fatalf("first command: %d index and %d snapshot downloads", counted.count("index"), counted.count("snapshots"))
		}
		// A backup writes its new index file and manifest through.
		res2, err := backup(t, r, src, stream, archive.Options{})
		if err != nil {
			t.Fatalf("backup: %v", err)
		}
		// Later commands download none of it again.
		r, counted = open()
		if n := snapshotCount(t, r); n != 2 {
			t.Fatalf("%d snapshots, want 2", n)
		}
		checkRestore(t, r, res2.ID.String(), src, stream, 6)
		checkReadData(t, r)
		if _, err := backup(t, r, src, stream, archive.Options{}); err != nil {
			t.Fatalf("backup: %v", err)
		}
		if n, m := counted.count("index"), counted.count("snapshots"); n != 0 || m != 0 {
			t.Errorf("cached commands downloaded %d index files and %d manifests, want none", n, m)
		}
		if counted.count("data") == 0 {
			t.Error("packs were not read from the store")
		}
	})
}

// A backup through a proxy that breaks a tenth of all requests, in every
// way it knows, completes with the retry decorator; what it wrote passes
// check --read-data read straight from MinIO, and restores exactly, also
// through the faults.
func TestS3BackupThroughFaults(t *testing.T) {
	srv := s3test.Shared(t)
	p, err := s3test.NewProxy(srv.Endpoint, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	cfg := srv.Config(srv.NewBucket(t), "repo")
	proxied := cfg
	proxied.Endpoint = p.Endpoint

	var retries atomic.Int64
	opts := retry.Options{
		MaxAttempts: 8,
		BaseDelay:   2 * time.Millisecond,
		MaxDelay:    50 * time.Millisecond,
		OnRetry: func(op, name string, attempt int, err error, _ time.Duration) {
			retries.Add(1)
			if !store.Transient(err) {
				t.Errorf("retried a permanent error: %s %s: %v", op, name, err)
			}
		},
	}
	st := openS3(t, proxied, opts)
	p.SetFaults(0.10, s3test.AllFaults...)

	// Small files in tiny packs, for a few hundred requests: enough for
	// every kind of fault to strike the backup.
	src := t.TempDir()
	writeTree(t, src, 31)
	const small = 300
	for i := range small {
		name := filepath.Join(src, "many", fmt.Sprintf("f%03d", i))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, randomData(uint64(100+i), 3000+i*37), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stream := textData(32, 2<<20)
	r := initRepo(t, st)
	res, err := backup(t, r, src, stream, archive.Options{Saver: repo.SaverOptions{PackSize: 8 << 10}})
	if err != nil {
		t.Fatalf("backup through faults: %v", err)
	}
	requests, faults := p.Counts()
	t.Logf("backup: %d requests, faults %v, %d retries", requests, faults, retries.Load())
	// (Fewer retries than faults: net/http itself replays a GET or HEAD
	// whose reused connection broke before an answer.)
	for _, f := range s3test.AllFaults {
		if faults[f] == 0 {
			t.Errorf("the proxy never injected %s into the backup", f)
		}
	}
	if retries.Load() == 0 {
		t.Error("the store never retried")
	}
	checkRestore(t, reopen(t, st), res.ID.String(), src, stream, 6+small)
	p.SetFaults(0)

	requests, faults = p.Counts()
	t.Logf("backup and restore: %d requests, faults %v, %d retries", requests, faults, retries.Load())

	direct := reopen(t, openS3(t, cfg, retry.Options{}))
	rep := checkReadData(t, direct)
	if len(rep.Warnings) > 0 {
		t.Errorf("check warnings after the faults: %q", rep.Warnings)
	}
	checkRestore(t, direct, res.ID.String(), src, stream, 6+small)
}

// A pack deleted or corrupted on the server behind the repository's back:
// check names the pack and its blobs, and a restore brings back every file
// that does not need it, reporting the one that does.
func TestS3DamagedPack(t *testing.T) {
	srv := s3test.Shared(t)
	cl := srv.Client()
	tests := []struct {
		name       string
		damage     func(ctx context.Context, bucket, key string, blobs []pack.Blob) error
		readData   bool
		wantReason string
	}{
		{"deleted", func(ctx context.Context, bucket, key string, _ []pack.Blob) error {
			return cl.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{})
		}, false, "missing from the store"},
		{"corrupted", func(ctx context.Context, bucket, key string, blobs []pack.Blob) error {
			obj, err := cl.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
			if err != nil {
				return err
			}
			buf, err := io.ReadAll(obj)
			obj.Close()
			if err != nil {
				return err
			}
			// Flip a byte in the middle of a data blob. The order of blobs
			// in a pack is not fixed (the tree can come first), so a fixed
			// offset such as len/3 sometimes hit the tree instead, whose
			// damage this snapshot's restore does not need (CI stop 14).
			for _, b := range blobs {
				if b.Type == pack.DataBlob {
					buf[b.Offset+b.Length/2] ^= 0x40
					break
				}
			}
			_, err = cl.PutObject(ctx, bucket, key, bytes.NewReader(buf), int64(len(buf)), minio.PutObjectOptions{})
			return err
		}, true, "do not decrypt to their ID"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			bucket := srv.NewBucket(t)
			cfg := srv.Config(bucket, "repo")
			st := openS3(t, cfg, retry.Options{})
			r := initRepo(t, st)
			src := t.TempDir()
			a, b := textData(41, 1<<20), textData(42, 1<<20)
			if err := os.WriteFile(filepath.Join(src, "a.txt"), a, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := backup(t, r, src, nil, archive.Options{}); err != nil {
				t.Fatal(err)
			}
			var packs []string
			var firstSize int64
			if err := st.List(ctx, "data/", func(fi store.Info) error {
				packs, firstSize = append(packs, fi.Name), fi.Size
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(packs) != 1 {
				t.Fatalf("want 1 pack after the first backup, got %d", len(packs))
			}
			// b.txt lands in a second pack; a.txt's blobs stay in the first.
			if err := os.WriteFile(filepath.Join(src, "b.txt"), b, 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := backup(t, r, src, nil, archive.Options{})
			if err != nil {
				t.Fatal(err)
			}

			packID, err := chunk.ParseID(path.Base(packs[0]))
			if err != nil {
				t.Fatal(err)
			}
			blobs, err := r.LoadPackHeader(ctx, packID, firstSize)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.damage(ctx, bucket, "repo/"+packs[0], blobs); err != nil {
				t.Fatalf("damaging %s: %v", packs[0], err)
			}

			r2 := reopen(t, openS3(t, cfg, retry.Options{}))
			rep, err := check.Check(ctx, r2, check.Options{ReadData: tc.readData})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || len(rep.Damaged) != 1 {
				t.Fatalf("check: want exactly the damaged pack, got %+v", rep)
			}
			d := rep.Damaged[0]
			if !strings.HasSuffix(packs[0], d.Pack.String()) || len(d.Blobs) == 0 || !strings.Contains(d.Reason, tc.wantReason) {
				t.Fatalf("check reported %s (%q, %d blobs); want %s, %q, its blobs", d.Pack, d.Reason, len(d.Blobs), packs[0], tc.wantReason)
			}
			t.Logf("check: pack %s: %s; blobs %v; errors %q", d.Pack.Short(), d.Reason, d.Blobs, rep.Errors)

			dir, rr, err := restoreSnapshot(t, r2, res.ID.String(), restore.Options{})
			if !errors.Is(err, restore.ErrIncomplete) {
				t.Fatalf("restore: got %v, want ErrRestoreIncomplete", err)
			}
			if len(rr.Errors) != 1 || rr.Errors[0].Path != "files/a.txt" {
				t.Fatalf("restore: want exactly files/a.txt reported, got %+v", rr.Errors)
			}
			t.Logf("restore: %v", rr.Errors[0])
			if got, _ := os.ReadFile(filepath.Join(dir, "files", "b.txt")); !bytes.Equal(got, b) {
				t.Error("b.txt, in an undamaged pack, not restored")
			}
		})
	}
}

// Wrong credentials and an endpoint that refuses connections fail at open,
// before any repository call, saying what is wrong and where.
func TestS3OpenErrors(t *testing.T) {
	srv := s3test.Shared(t)
	bucket := srv.NewBucket(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	tests := []struct {
		name      string
		cfg       func(s3.Config) s3.Config
		want      error
		transient bool
		text      []string
	}{
		{"unknown access key", func(c s3.Config) s3.Config { c.AccessKey = "nosuchkey"; return c },
			s3.ErrAccessDenied, false, []string{"access denied", "invalid access key", "http://" + srv.Endpoint}},
		{"wrong secret key", func(c s3.Config) s3.Config { c.SecretKey = "wrong-secret-key"; return c },
			s3.ErrAccessDenied, false, []string{"access denied", "secret key does not match", "http://" + srv.Endpoint}},
		{"closed port", func(c s3.Config) s3.Config { c.Endpoint = closed; return c },
			s3.ErrUnreachable, true, []string{"endpoint unreachable", "http://" + closed, "connection refused"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			s, err := s3.Open(t.Context(), tc.cfg(srv.Config(bucket, "repo")))
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Open took %v", d)
			}
			if !errors.Is(err, tc.want) || store.Transient(err) != tc.transient {
				t.Errorf("Open: %v\nwant %v, transient %v", err, tc.want, tc.transient)
			}
			for _, s := range tc.text {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Open: %q does not say %q", err, s)
				}
			}
			t.Logf("%v", err)
		})
	}
}
