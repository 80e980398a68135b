package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// backupAt takes a small backup of src recorded at t; the files change a
// little each time, like a live application.
func backupAt(t *testing.T, src string, at time.Time, extra ...string) backupOut {
	t.Helper()
	write(t, filepath.Join(src, "changing.txt"), []byte(at.String()), 0o644)
	args := append([]string{"backup", "--json", "--time", at.Format(time.RFC3339), "--tree", "files=" + src}, extra...)
	return decodeJSON[backupOut](t, mustCairn(t, nil, args...))
}

func TestForgetPolicy(t *testing.T) {
	testEnv(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "stable.bin"), randomBytes(1, 64<<10), 0o644)
	start := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 15 { // 2.5 days, every 4 hours
		ids = append(ids, backupAt(t, src, start.Add(time.Duration(i)*4*time.Hour)).ID)
	}
	// Days (UTC): 1 March 02..22 (6), 2 March 02..22 (6), 3 March 02..10 (3).
	// keep-daily 2: the newest of 3 March and of 2 March; keep-last 2 adds
	// the second newest.
	want := map[string][]string{ids[14]: {"last", "daily"}, ids[13]: {"last"}, ids[11]: {"daily"}}
	dry := decodeJSON[[]forgetJSON](t, mustCairn(t, nil, "forget", "--keep-daily", "2", "--keep-last", "2", "--utc", "--dry-run", "--json"))
	if len(dry) != 1 || len(dry[0].Groups) != 1 || !dry[0].DryRun || dry[0].Kept != 3 || dry[0].Removed != 12 {
		t.Fatalf("dry run: %+v", dry)
	}
	for _, s := range dry[0].Groups[0].Snapshots {
		if w, ok := want[s.ID]; ok != s.Keep || strings.Join(w, ",") != strings.Join(s.Reasons, ",") {
			t.Errorf("snapshot %s at %s: keep=%v reasons %v, want %v", s.ID[:8], s.Time, s.Keep, s.Reasons, w)
		}
	}
	if n := len(decodeJSON[[]snapshotJSON](t, mustCairn(t, nil, "snapshots", "--json"))); n != 15 {
		t.Fatalf("dry run removed snapshots: %d left", n)
	}
	// The table names each rule.
	r := mustCairn(t, nil, "forget", "--keep-daily", "2", "--keep-last", "2", "--utc")
	if !strings.Contains(r.stdout, "last, daily") || !strings.Contains(r.stdout, "3 kept, 12 removed") {
		t.Fatalf("forget table:\n%s", r.stdout)
	}
	left := decodeJSON[[]snapshotJSON](t, mustCairn(t, nil, "snapshots", "--json"))
	if len(left) != 3 {
		t.Fatalf("%d snapshots left, want 3", len(left))
	}
	for _, s := range left {
		if _, ok := want[s.ID]; !ok {
			t.Errorf("snapshot %s kept, want removed", s.ShortID)
		}
	}
	// Restoring a kept snapshot still works (nothing is pruned yet).
	mustCairn(t, nil, "restore", "--snapshot", ids[11][:8], "--target", filepath.Join(t.TempDir(), "out"))
}

func TestForgetRefusals(t *testing.T) {
	testEnv(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "a"), []byte("a"), 0o644)
	b1 := backupAt(t, src, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	backupAt(t, src, time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC))
	count := func() int { return len(decodeJSON[[]snapshotJSON](t, mustCairn(t, nil, "snapshots", "--json"))) }

	if r := cairn(t, nil, "forget"); r.code == 0 || !strings.Contains(r.stderr, "no keep rule") {
		t.Fatalf("forget with no rule: %v", r)
	}
	if r := cairn(t, nil, "forget", b1.ID[:8], "deadbeef"); r.code == 0 || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("forget with an unknown ID: %v", r)
	}
	if r := cairn(t, nil, "forget", "--keep-daily", "x"); r.code == 0 {
		t.Fatalf("forget --keep-daily x: %v", r)
	}
	if r := cairn(t, nil, "forget", "--keep-within", "2w"); r.code == 0 || !strings.Contains(r.stderr, "units") {
		t.Fatalf("forget --keep-within 2w: %v", r)
	}
	if n := count(); n != 2 {
		t.Fatalf("a refused forget removed snapshots: %d left", n)
	}
	mustCairn(t, nil, "forget", b1.ID[:8])
	if n := count(); n != 1 {
		t.Fatalf("forget by ID: %d left, want 1", n)
	}
	// keep-min 0 without rules removes everything, on purpose.
	mustCairn(t, nil, "forget", "--keep-min", "0")
	if n := count(); n != 0 {
		t.Fatalf("forget --keep-min 0: %d left", n)
	}
}

// retention: in cairn.yaml is the policy of forget --config; a replica
// keeps by its own.
func TestForgetConfigRetention(t *testing.T) {
	repoDir := testEnv(t)
	replica := filepath.Join(t.TempDir(), "replica")
	mustCairn(t, nil, "init", "-r", replica)
	src := t.TempDir()
	write(t, filepath.Join(src, "a"), []byte("a"), 0o644)
	cfg := filepath.Join(t.TempDir(), "cairn.yaml")
	if err := os.WriteFile(cfg, []byte(`repository: `+repoDir+`
app: alm
components:
  - name: files
    tree: `+src+`
retention:
  keep_last: 2
replicate:
  - repository: `+replica+`
    retention:
      keep_last: 4
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CAIRN_TO_PASSWORD", testPassword)
	for i := range 6 {
		mustCairn(t, nil, "--config", cfg, "backup", "--time", time.Date(2026, 1, 1, i, 0, 0, 0, time.UTC).Format(time.RFC3339))
	}
	// Another application's snapshot in the same repository is not this
	// config's to thin.
	backupAt(t, src, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	res := decodeJSON[[]forgetJSON](t, mustCairn(t, nil, "--config", cfg, "forget", "--json"))
	if len(res) != 2 || res[0].Kept != 2 || res[0].Removed != 4 || res[1].Kept != 4 || res[1].Removed != 2 {
		t.Fatalf("forget --config: %+v", res)
	}
	if n := len(decodeJSON[[]snapshotJSON](t, mustCairn(t, nil, "snapshots", "--json"))); n != 3 {
		t.Fatalf("%d snapshots in the repository, want 2 of alm and the other one", n)
	}
	if n := len(decodeJSON[[]snapshotJSON](t, mustCairn(t, nil, "-r", replica, "snapshots", "--json"))); n != 4 {
		t.Fatalf("%d snapshots in the replica, want 4", n)
	}
}

func repoBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	_ = filepath.Walk(filepath.Join(dir, "data"), func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func TestForgetPrune(t *testing.T) {
	repoDir := testEnv(t)
	src := t.TempDir()
	var ids []string
	for i := range 6 {
		write(t, filepath.Join(src, "own.bin"), randomBytes(uint64(i+10), 1<<20), 0o644)
		ids = append(ids, backupAt(t, src, time.Date(2026, 2, 1, 4*i, 0, 0, 0, time.UTC)).ID)
	}
	before := repoBytes(t, repoDir)
	dry := decodeJSON[pruneJSON](t, mustCairn(t, nil, "prune", "--dry-run", "--json"))
	if !dry.DryRun || dry.MarkedBytes != 0 {
		t.Fatalf("prune with nothing forgotten: %+v", dry)
	}
	res := decodeJSON[[]forgetJSON](t, mustCairn(t, nil, "forget", "--keep-last", "2", "--prune", "--json"))
	if len(res) != 1 || res[0].Prune == nil || res[0].Prune.DeletedPacks == 0 || res[0].Prune.FreedBytes == 0 {
		t.Fatalf("forget --prune: %+v", res)
	}
	after := repoBytes(t, repoDir)
	if after > before/2 {
		t.Fatalf("repository data %d bytes after forget --keep-last 2 --prune, %d before", after, before)
	}
	if r := mustCairn(t, nil, "check", "--read-data"); !strings.Contains(r.stdout, "no errors found") {
		t.Fatalf("check after prune: %v", r)
	}
	for _, id := range ids[4:] {
		out := filepath.Join(t.TempDir(), "out")
		mustCairn(t, nil, "restore", "--snapshot", id[:8], "--target", out)
	}
	r := mustCairn(t, nil, "prune")
	if !strings.Contains(r.stdout, "0 packs deleted") {
		t.Fatalf("second prune:\n%s", r.stdout)
	}
	if r := cairn(t, nil, "prune", "--max-unused", "lots"); r.code == 0 {
		t.Fatalf("prune --max-unused lots: %v", r)
	}
}
