package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDamagedIndexFile: one damaged index file used to stop every command
// although every pack was intact. Commands that can go on now do, with a
// warning; check reports it; prune refuses; repair index rebuilds the
// index from the packs and everything restores byte-exact again.
func TestDamagedIndexFile(t *testing.T) {
	repoDir := testEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	write(t, filepath.Join(src, "a.bin"), randomBytes(1, 3<<20), 0o644)
	write(t, filepath.Join(src, "b.txt"), textBytes(2, 1<<20), 0o644)
	want := captureTree(t, src)
	b1 := decodeJSON[backupOut](t, mustCairn(t, nil, "backup", "--json", "--tree", "files="+src))
	idx, _ := filepath.Glob(filepath.Join(repoDir, "index", "*"))
	if len(idx) != 1 {
		t.Fatalf("%d index files after one backup", len(idx))
	}
	b, _ := os.ReadFile(idx[0])
	b[len(b)/2] ^= 0x40
	os.WriteFile(idx[0], b, 0o600)

	r := cairn(t, nil, "check")
	if r.code != 1 || !strings.Contains(r.stdout, "damaged index file") || !strings.Contains(r.stdout, "repair index") {
		t.Errorf("check: want exit 1 naming the damaged index file:\n%v", r)
	}
	r = cairn(t, nil, "prune")
	if r.code == 0 || !strings.Contains(r.stderr, "repair index") {
		t.Errorf("prune went on without an index file:\n%v", r)
	}
	r = mustCairn(t, nil, "backup", "--tree", "files="+src)
	if !strings.Contains(r.stderr, "cairn: warning: damaged index file "+filepath.Base(idx[0])[:8]) {
		t.Errorf("backup gave no warning:\n%v", r)
	}
	// The second backup stored the blobs again: latest restores whole.
	// With --log-format json the same warning is a JSON record naming the
	// index file.
	out := t.TempDir()
	r = mustCairn(t, nil, "restore", "--snapshot", "latest", "--target", out, "--log-format", "json")
	var rec struct{ Level, Msg, Index string }
	if err := json.Unmarshal([]byte(strings.SplitN(r.stderr, "\n", 2)[0]), &rec); err != nil || rec.Level != "WARN" ||
		!strings.HasPrefix(rec.Msg, "damaged index file") || rec.Index != filepath.Base(idx[0]) {
		t.Errorf("restore --log-format json: want a JSON warning naming %s first on stderr (%v):\n%v", filepath.Base(idx[0]), err, r)
	}
	compareTrees(t, want, captureTree(t, filepath.Join(out, "files")))

	r = mustCairn(t, nil, "repair", "index")
	if !strings.Contains(r.stdout, "removed 2 old ones") {
		t.Errorf("repair index:\n%v", r)
	}
	mustCairn(t, nil, "check", "--read-data")
	out = t.TempDir()
	mustCairn(t, nil, "restore", "--snapshot", b1.ShortID, "--target", out)
	compareTrees(t, want, captureTree(t, filepath.Join(out, "files")))
}

// TestOrphanedTempFiles: temporary files a killed process left in a local
// repository were invisible to check. Check lists them (a warning, not
// damage) and repair removes them.
func TestOrphanedTempFiles(t *testing.T) {
	repoDir := testEnv(t)
	mustCairn(t, []byte("x"), "backup", "--stdin", "db")
	old := time.Now().Add(-time.Hour)
	var temps []string
	for _, p := range []string{"data/ab/.tmp-123456", "index/.tmp-99", ".tmp-7"} {
		full := filepath.Join(repoDir, filepath.FromSlash(p))
		write(t, full, make([]byte, 1000), 0o600)
		os.Chtimes(full, old, old)
		temps = append(temps, full)
	}
	fresh := filepath.Join(repoDir, "data", "ab", ".tmp-inflight")
	write(t, fresh, []byte("a Put in progress"), 0o600)

	r := mustCairn(t, nil, "check")
	for _, p := range []string{"data/ab/.tmp-123456", "index/.tmp-99", ".tmp-7"} {
		if !strings.Contains(r.stdout, "orphaned temporary file "+p) {
			t.Errorf("check does not list %s:\n%v", p, r)
		}
	}
	if strings.Contains(r.stdout, "inflight") {
		t.Errorf("check lists a temporary file still being written:\n%v", r)
	}
	r = mustCairn(t, nil, "repair")
	if !strings.Contains(r.stdout, "removed 4 temporary files") {
		t.Errorf("repair:\n%v", r)
	}
	for _, p := range append(temps, fresh) {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there: %v", p, err)
		}
	}
	if r := mustCairn(t, nil, "check"); strings.Contains(r.stdout, "temporary") {
		t.Errorf("check after repair:\n%v", r)
	}
}

// TestRepairSnapshots: a lost pack leaves snapshots that cannot restore
// some files. repair snapshots writes marked replacements without them;
// with --forget the damaged originals go and check is clean again.
func TestRepairSnapshots(t *testing.T) {
	repoDir := testEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	write(t, filepath.Join(src, "big.bin"), randomBytes(5, 2<<20), 0o644)
	b1 := decodeJSON[backupOut](t, mustCairn(t, nil, "backup", "--json", "--tree", "files="+src))
	packs1, _ := filepath.Glob(filepath.Join(repoDir, "data", "*", "*"))
	write(t, filepath.Join(src, "keep.txt"), []byte("small, kept"), 0o644)
	b2 := decodeJSON[backupOut](t, mustCairn(t, nil, "backup", "--json", "--tree", "files="+src))
	// The first backup's pack holds big.bin's data (which the second
	// backup reuses) and the first backup's tree.
	if len(packs1) != 1 {
		t.Fatalf("%d packs after the first backup", len(packs1))
	}
	os.Remove(packs1[0])
	if r := cairn(t, nil, "check"); r.code != 1 {
		t.Fatalf("check after deleting a pack:\n%v", r)
	}
	mustCairn(t, nil, "repair", "index")
	r := mustCairn(t, nil, "repair", "snapshots", "--forget")
	if !strings.Contains(r.stdout, "snapshot "+b2.ShortID+" repaired as") || !strings.Contains(r.stdout, "  files/big.bin\n") ||
		!strings.Contains(r.stdout, "snapshot "+b1.ShortID+" repaired as") {
		t.Fatalf("repair snapshots:\n%v", r)
	}
	mustCairn(t, nil, "check", "--read-data")
	snaps := decodeJSON[[]snapshotOut](t, mustCairn(t, nil, "snapshots", "--json"))
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots after repair --forget, want 2", len(snaps))
	}
	for _, sn := range snaps {
		if sn.ShortID == b1.ShortID || sn.ShortID == b2.ShortID {
			t.Errorf("the damaged original %s is still there", sn.ShortID)
		}
		if len(sn.Tags) != 1 || sn.Tags[0] != "repaired" {
			t.Errorf("snapshot %s tags %q, want repaired", sn.ShortID, sn.Tags)
		}
	}
	out := t.TempDir()
	mustCairn(t, nil, "restore", "--snapshot", "latest", "--target", out)
	if b, err := os.ReadFile(filepath.Join(out, "files", "keep.txt")); err != nil || string(b) != "small, kept" {
		t.Errorf("keep.txt: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(out, "files", "big.bin")); !os.IsNotExist(err) {
		t.Errorf("big.bin restored from a repaired snapshot: %v", err)
	}
	// A second run finds nothing more to do.
	if r := mustCairn(t, nil, "repair", "snapshots"); !strings.Contains(r.stdout, "repaired 0") {
		t.Errorf("second repair snapshots:\n%v", r)
	}
}
