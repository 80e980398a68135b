package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/s3test"
)

// TestS3Repository runs the CLI against a repository on a real MinIO
// server: init (creating the bucket), backup, restore, check --read-data;
// and the clear errors for a missing bucket and wrong credentials.
func TestS3Repository(t *testing.T) {
	s3Env(t)
	url := s3URL(t)

	t.Run("missing bucket", func(t *testing.T) {
		r := cairn(t, nil, "-r", url, "init")
		if r.code != 1 || !strings.Contains(r.stderr, "--create-bucket") {
			t.Errorf("want a hint to --create-bucket:\n%v", r)
		}
	})
	mustCairn(t, nil, "-r", url, "init", "--create-bucket")

	src := filepath.Join(t.TempDir(), "src")
	a := randomBytes(3, 2<<20)
	write(t, filepath.Join(src, "a.bin"), a, 0o644)
	write(t, filepath.Join(src, "dir", "b.txt"), []byte("text"), 0o600)
	stream := bytes.Repeat([]byte("INSERT INTO t VALUES (1);\n"), 100000)
	b := decodeJSON[backupOut](t, mustCairn(t, stream, "-r", url, "backup", "--json", "--stdin", "db", "--tree", "files="+src))

	target := filepath.Join(t.TempDir(), "restore")
	mustCairn(t, nil, "-r", url, "restore", "--snapshot", b.ShortID, "--target", target, "--verify")
	if got := readFile(t, filepath.Join(target, "files", "a.bin")); !bytes.Equal(got, a) {
		t.Error("a.bin differs after a round trip through S3")
	}
	if got := readFile(t, filepath.Join(target, "db")); !bytes.Equal(got, stream) {
		t.Error("stream differs after a round trip through S3")
	}
	if r := mustCairn(t, nil, "-r", url, "check", "--read-data"); !strings.Contains(r.stdout, "no errors found") {
		t.Errorf("check: %v", r)
	}

	t.Run("wrong credentials", func(t *testing.T) {
		t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
		r := cairn(t, nil, "-r", url, "snapshots")
		if r.code != 1 || !strings.Contains(strings.ToLower(r.stderr), "access denied") {
			t.Errorf("want an access-denied error:\n%v", r)
		}
	})
}

// s3Env sets up the environment of a CLI test against the shared MinIO
// server, with a fresh cache directory in CAIRN_CACHE_DIR.
func s3Env(t *testing.T) {
	t.Setenv("CAIRN_REPOSITORY", "")
	t.Setenv("CAIRN_PASSWORD", testPassword)
	t.Setenv("CAIRN_PASSWORD_FILE", "")
	t.Setenv("CAIRN_KDF_N", "1024")
	t.Setenv("CAIRN_CACHE_DIR", t.TempDir())
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
}

// s3URL is the location of a repository in a bucket no other test uses
// (not created yet: init --create-bucket makes it).
func s3URL(t *testing.T) string {
	srv := s3test.Shared(t)
	return "s3:http://" + srv.Endpoint + "/" + srv.UniqueName(t) + "/apps/alm"
}
