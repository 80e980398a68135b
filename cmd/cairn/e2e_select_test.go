package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSelectByHost: -H/--host filters where snapshots are selected
// (restore latest, snapshots, stats, copy), and restore takes its snapshot
// as an argument as well as with --snapshot.
func TestSelectByHost(t *testing.T) {
	testEnv(t) // an initialised repository
	src := filepath.Join(t.TempDir(), "src")
	write(t, filepath.Join(src, "f.txt"), []byte("from a"), 0o644)
	a := decodeJSON[backupOut](t, mustCairn(t, nil, "backup", "--json", "--host", "a", "--tree", "files="+src))
	write(t, filepath.Join(src, "f.txt"), []byte("from b"), 0o644)
	b := decodeJSON[backupOut](t, mustCairn(t, nil, "backup", "--json", "--host", "b", "--tree", "files="+src))

	restored := func(t *testing.T, args ...string) string {
		t.Helper()
		target := filepath.Join(t.TempDir(), "t")
		mustCairn(t, nil, append([]string{"restore", "--target", target}, args...)...)
		return string(readFile(t, filepath.Join(target, "files", "f.txt")))
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"positional latest", []string{"latest"}, "from b"},
		{"latest of host a", []string{"latest", "-H", "a"}, "from a"},
		{"latest of host a, long flag", []string{"--snapshot", "latest", "--host", "a"}, "from a"},
		{"positional ID", []string{a.ShortID}, "from a"},
		{"ID with a host filter that does not apply to IDs", []string{b.ShortID, "-H", "a"}, "from b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := restored(t, tc.args...); got != tc.want {
				t.Errorf("restored %q, want %q", got, tc.want)
			}
		})
	}
	if r := cairn(t, nil, "restore", a.ShortID, "--snapshot", b.ShortID, "--target", t.TempDir()); r.code != 1 || !strings.Contains(r.stderr, "given twice") {
		t.Errorf("two different snapshots: %v", r)
	}
	if r := cairn(t, nil, "restore", "latest", "-H", "nowhere", "--target", t.TempDir()); r.code == 0 || !strings.Contains(r.stderr, "snapshot not found") {
		t.Errorf("latest of an unknown host: %v", r)
	}

	list := decodeJSON[[]snapshotOut](t, mustCairn(t, nil, "snapshots", "--json", "-H", "b"))
	if len(list) != 1 || list[0].ID != b.ID {
		t.Errorf("snapshots -H b: %+v", list)
	}
	st := decodeJSON[struct {
		Snapshots int `json:"snapshots"`
	}](t, mustCairn(t, nil, "stats", "--json", "-H", "a", "-H", "b"))
	if st.Snapshots != 2 {
		t.Errorf("stats -H a -H b counted %d snapshots, want 2", st.Snapshots)
	}

	dst := filepath.Join(t.TempDir(), "dst")
	mustCairn(t, nil, "-r", dst, "init")
	t.Setenv("CAIRN_TO_PASSWORD", testPassword)
	mustCairn(t, nil, "copy", "--to", dst, "-H", "a")
	copied := decodeJSON[[]snapshotOut](t, mustCairn(t, nil, "-r", dst, "snapshots", "--json"))
	if len(copied) != 1 || copied[0].Host != "a" {
		t.Errorf("copy -H a copied %+v", copied)
	}
	if r := cairn(t, nil, "copy", "--to", dst, "-H", "nowhere"); r.code != 1 || !strings.Contains(r.stderr, "no snapshots to copy") {
		t.Errorf("copy of an unknown host: %v", r)
	}
}

// TestCacheDirFlag: --cache-dir puts a remote repository's cache where it
// says, ahead of CAIRN_CACHE_DIR.
func TestCacheDirFlag(t *testing.T) {
	s3Env(t)
	env := os.Getenv("CAIRN_CACHE_DIR")
	url := s3URL(t)
	mustCairn(t, nil, "-r", url, "init", "--create-bucket")
	dir := filepath.Join(t.TempDir(), "cache")
	mustCairn(t, nil, "-r", url, "--cache-dir", dir, "snapshots")
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 1 {
		t.Errorf("--cache-dir %s holds %d entries (%v), want one repository's cache", dir, len(ents), err)
	}
	if ents, _ := os.ReadDir(env); len(ents) != 0 {
		t.Errorf("CAIRN_CACHE_DIR used although --cache-dir was given: %d entries", len(ents))
	}
}
