package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBackupEmptyStdin: a pipe hides its producer's exit status, so an
// empty stream on stdin (pg_dump failing before it wrote anything) must
// not be recorded as a good dump.
func TestBackupEmptyStdin(t *testing.T) {
	testEnv(t)
	r := cairn(t, nil, "backup", "--stdin", "db")
	if r.code != 1 || !strings.Contains(r.stderr, "no snapshot written") || !strings.Contains(r.stderr, "--allow-empty") {
		t.Errorf("empty stdin: want exit 1 naming --allow-empty:\n%v", r)
	}
	if n := countSnapshots(t); n != 0 {
		t.Fatalf("an empty stdin wrote %d snapshots", n)
	}
	r = cairn(t, nil, "backup", "--command", "db=true")
	if r.code != 1 || countSnapshots(t) != 0 {
		t.Fatalf("an empty --command was accepted:\n%v", r)
	}
	mustCairn(t, nil, "backup", "--stdin", "db", "--allow-empty")
	mustCairn(t, nil, "backup", "--command", "db=true", "--allow-empty")
	mustCairn(t, []byte("x"), "backup", "--stdin", "db")
	if n := countSnapshots(t); n != 3 {
		t.Errorf("%d snapshots, want 3", n)
	}
}

// TestRestoreCommandChecksFirst: every --command and the target are checked
// before the first component is piped; a typo in the second --command used
// to fail only after the first had replaced the database.
func TestRestoreCommandChecksFirst(t *testing.T) {
	testEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	write(t, filepath.Join(src, "a"), []byte("file"), 0o644)
	mustCairn(t, nil, "backup", "--command", "db=echo dump", "--command", "search=echo index", "--tree", "files="+src)
	marker := filepath.Join(t.TempDir(), "restored")
	pipeDB := "db=sh -c 'cat > " + marker + "'"
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"unknown component", []string{"--command", pipeDB, "--command", "serach=cat", "--target", t.TempDir()}, `no component "serach"`},
		{"tree piped", []string{"--command", pipeDB, "--command", "files=cat", "--target", t.TempDir()}, "only a stream can be piped"},
		{"no target", []string{"--command", pipeDB}, "needs --target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := cairn(t, nil, append([]string{"restore", "--snapshot", "latest"}, tc.args...)...)
			if r.code == 0 || !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("want a failure saying %q:\n%v", tc.msg, r)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the db component was piped before the error was found")
			}
		})
	}
	target := t.TempDir()
	mustCairn(t, nil, "restore", "--snapshot", "latest", "--command", pipeDB, "--command", "search=cat", "--target", target)
	if b, err := os.ReadFile(marker); err != nil || string(b) != "dump\n" {
		t.Errorf("db piped %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(target, "files", "a")); err != nil || string(b) != "file" {
		t.Errorf("files/a restored %q, %v", b, err)
	}
}

// TestInitReplicaPasswordFile: a --from-password-file that cannot be read is
// an error, not silently replaced by the new repository's password.
func TestInitReplicaPasswordFile(t *testing.T) {
	testEnv(t)
	src := os.Getenv("CAIRN_REPOSITORY")
	dir := t.TempDir()
	r := cairn(t, nil, "-r", filepath.Join(dir, "replica"), "init", "--replica-of", src, "--from-password-file", filepath.Join(dir, "missing"))
	if r.code == 0 || !strings.Contains(r.stderr, "read password file") {
		t.Errorf("an unreadable --from-password-file was swallowed:\n%v", r)
	}
	t.Setenv("CAIRN_FROM_PASSWORD_FILE", filepath.Join(dir, "missing"))
	r = cairn(t, nil, "-r", filepath.Join(dir, "replica2"), "init", "--replica-of", src)
	if r.code == 0 || !strings.Contains(r.stderr, "read password file") {
		t.Errorf("an unreadable CAIRN_FROM_PASSWORD_FILE was swallowed:\n%v", r)
	}
	t.Setenv("CAIRN_FROM_PASSWORD_FILE", "")
	mustCairn(t, nil, "-r", filepath.Join(dir, "replica3"), "init", "--replica-of", src)
}
