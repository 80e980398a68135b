package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestComponentsTakenCloserTogether backs up the application with
// start_next: pg_dump's first byte and the Elasticsearch snapshot's return
// let the next component start. The dump is held back after its first
// bytes until the files component has begun (its before hook leaves a
// marker), so the backup only completes if the components really overlap;
// taken one after the other it would fail. The points are recorded in
// order, and the restore is exact.
func TestComponentsTakenCloserTogether(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "files-started")
	dump := filepath.Join(t.TempDir(), "db.dump")
	a := newAppEnv(t, "")
	pgDump := a.pg.Bin("pg_dump")
	gated := fmt.Sprintf(`%s --format=custom -Z0 --dbname=%s -f %s && head -c 4096 %s && i=0 && while [ ! -e %s ]; do i=$((i+1)); [ $i -lt 600 ] || { echo files never started >&2; exit 1; }; sleep 0.05; done && tail -c +4097 %s`,
		pgDump, a.pg.Database, dump, dump, marker, dump)
	cfg, err := os.ReadFile(a.config)
	if err != nil {
		t.Fatal(err)
	}
	s := string(cfg)
	s = strings.Replace(s, fmt.Sprintf("command: [%q, --format=custom, -Z0, --dbname=%s]", pgDump, a.pg.Database), fmt.Sprintf("command: [sh, -c, %q]", gated), 1)
	s = strings.Replace(s, "  - name: search\n", "    start_next: on_first_byte\n  - name: search\n", 1)
	s = strings.Replace(s, "  - name: files\n", fmt.Sprintf("    start_next: on_snapshot\n  - name: files\n    hooks:\n      before: [touch, %s]\n", marker), 1)
	if err := os.WriteFile(a.config, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCairn(t, nil, "config", "check", a.config)
	db1, issues1, files1 := a.query(), a.docs("mqm_sp1001_issues"), captureTree(t, a.files)

	b := decodeJSON[struct {
		backupOut
		PointSkew float64 `json:"point_skew_seconds"`
		Skew      float64 `json:"skew_seconds"`
		Comps     []struct {
			Name              string
			Started, Finished time.Time
			Point             time.Time
		} `json:"components"`
	}](t, mustCairn(t, nil, "--config", a.config, "backup", "--json"))
	db, search, files := b.Comps[0], b.Comps[1], b.Comps[2]
	t.Logf("db %v..%v point %v; search %v..%v point %v; files %v..%v; skew of points %.3fs, of durations %.3fs",
		db.Started, db.Finished, db.Point, search.Started, search.Finished, search.Point, files.Started, files.Finished, b.PointSkew, b.Skew)
	if db.Name != "db" || search.Name != "search" || files.Name != "files" {
		t.Fatalf("components out of order: %s %s %s", db.Name, search.Name, files.Name)
	}
	if db.Point.IsZero() || search.Point.IsZero() || !files.Point.IsZero() {
		t.Fatalf("points: db %v search %v files %v", db.Point, search.Point, files.Point)
	}
	if search.Started.Before(db.Point) || search.Point.Before(db.Point) || files.Started.Before(search.Point) {
		t.Error("a component started before the one ahead of it had fixed its point")
	}
	if !db.Finished.After(files.Started) {
		t.Error("the dump finished before the files began: nothing overlapped")
	}
	if b.PointSkew > b.Skew {
		t.Errorf("skew of points %.3fs above the skew of durations %.3fs", b.PointSkew, b.Skew)
	}
	if r := mustCairn(t, nil, "--config", a.config, "snapshots"); !strings.Contains(r.stdout, "Skew (points/durations)") {
		t.Errorf("snapshots does not show both skews:\n%s", r.stdout)
	}

	a.pg.Exec(t, "DELETE FROM issues WHERE id > 100")
	a.putDoc("mqm_sp1001_issues", "3", `{"title":"edited"}`)
	write(t, filepath.Join(a.files, "attachments", "late.bin"), []byte("late"), 0o644)
	mustCairn(t, nil, "--config", a.config, "restore", "--snapshot", b.ShortID)
	if got := a.query(); got != db1 {
		t.Errorf("database after restore: %s, want %s", got, db1)
	}
	if got := a.docs("mqm_sp1001_issues"); got != issues1 {
		t.Errorf("index after restore: %s, want %s", got, issues1)
	}
	compareTrees(t, files1, captureTree(t, a.files))
}
