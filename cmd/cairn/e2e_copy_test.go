package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/s3test"
)

type copyOut struct {
	Mode   string `json:"mode"`
	Copied []struct {
		Source string `json:"source"`
		Target string `json:"target"`
	} `json:"copied"`
	Skipped []string `json:"already_present"`
	Bytes   uint64   `json:"bytes"`
	Packs   uint64   `json:"packs"`
}

// copyResult decodes copy --json for one target: the one shape copy has
// for one target or several, {"targets": [...]}.
func copyResult(t *testing.T, r result) copyOut {
	t.Helper()
	out := decodeJSON[struct {
		Targets []copyOut `json:"targets"`
	}](t, r)
	if len(out.Targets) != 1 {
		t.Fatalf("copy --json: want one target, got %d:\n%s", len(out.Targets), r.stdout)
	}
	return out.Targets[0]
}

// TestCopyToAndFromMinIO replicates a local repository offsite to MinIO
// and back: a replica sharing the data key receives whole packs, a copy
// between unrelated repositories re-encrypts; each restores byte-identical,
// and a second copy sends nothing.
func TestCopyToAndFromMinIO(t *testing.T) {
	srv := s3test.Shared(t)
	local := testEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	t.Setenv("CAIRN_TO_PASSWORD", "offsite password")
	src := filepath.Join(t.TempDir(), "src")
	a := randomBytes(7, 1<<20)
	write(t, filepath.Join(src, "a.bin"), a, 0o644)
	stream := bytes.Repeat([]byte("COPY t FROM stdin;\n"), 50000)
	mustCairn(t, stream, "backup", "--stdin", "db", "--tree", "files="+src, "--time", "2026-01-01T00:00:00Z")
	write(t, filepath.Join(src, "b.txt"), []byte("second"), 0o644)
	mustCairn(t, stream, "backup", "--stdin", "db", "--tree", "files="+src, "--time", "2026-01-02T00:00:00Z")

	offsite := "s3:http://" + srv.Endpoint + "/" + srv.UniqueName(t) + "/replica"
	withPassword := func(pw string, args ...string) result {
		t.Setenv("CAIRN_PASSWORD", pw)
		defer t.Setenv("CAIRN_PASSWORD", testPassword)
		return mustCairn(t, nil, args...)
	}
	t.Setenv("CAIRN_FROM_PASSWORD", testPassword)
	withPassword("offsite password", "-r", offsite, "init", "--create-bucket", "--replica-of", local, "--same-data-key")

	out := copyResult(t, mustCairn(t, nil, "copy", "--to", offsite, "--json", "--verify"))
	if out.Mode != "packs" || len(out.Copied) != 2 || out.Packs == 0 {
		t.Fatalf("copy to the replica: %+v", out)
	}
	again := copyResult(t, mustCairn(t, nil, "copy", "--to", offsite, "--json"))
	if len(again.Copied) != 0 || len(again.Skipped) != 2 || again.Bytes != 0 {
		t.Errorf("second copy sent something: %+v", again)
	}
	target := filepath.Join(t.TempDir(), "from-offsite")
	withPassword("offsite password", "-r", offsite, "restore", "--snapshot", "latest", "--target", target, "--verify")
	if got := readFile(t, filepath.Join(target, "files", "b.txt")); string(got) != "second" {
		t.Errorf("restore from the replica: b.txt = %q", got)
	}
	if r := withPassword("offsite password", "-r", offsite, "check", "--read-data"); !strings.Contains(r.stdout, "no errors found") {
		t.Errorf("check of the replica: %v", r)
	}

	// Back from MinIO into an unrelated local repository: re-encrypted.
	back := filepath.Join(t.TempDir(), "back")
	withPassword("third", "-r", back, "init")
	t.Setenv("CAIRN_TO_PASSWORD", "third")
	t.Setenv("CAIRN_PASSWORD", "offsite password")
	rb := copyResult(t, mustCairn(t, nil, "-r", offsite, "copy", "--to", back, "--latest", "--json"))
	t.Setenv("CAIRN_PASSWORD", testPassword)
	if rb.Mode != "rewrite" || len(rb.Copied) != 1 {
		t.Fatalf("copy back: %+v", rb)
	}
	target2 := filepath.Join(t.TempDir(), "from-back")
	withPassword("third", "-r", back, "restore", "--snapshot", "latest", "--target", target2, "--verify")
	if got := readFile(t, filepath.Join(target2, "files", "a.bin")); !bytes.Equal(got, a) {
		t.Error("a.bin differs after local → MinIO → local")
	}
	if got := readFile(t, filepath.Join(target2, "db")); !bytes.Equal(got, stream) {
		t.Error("stream differs after local → MinIO → local")
	}
}
