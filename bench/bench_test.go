//go:build linux

package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/minioserver"
)

func TestMain(m *testing.M) {
	runAsSpawnerIfAsked() // runCmd re-executes the test binary as spawner
	os.Exit(m.Run())
}

// The benchmark is only meaningful if every run sees the same bytes.
func TestDumpDeterministic(t *testing.T) {
	dir := t.TempDir()
	a, err := generateDump(filepath.Join(dir, "a1"), filepath.Join(dir, "a2"), 7, 2<<20)
	if err != nil {
		t.Fatal(err)
	}
	b, err := generateDump(filepath.Join(dir, "b1"), filepath.Join(dir, "b2"), 7, 2<<20)
	if err != nil {
		t.Fatal(err)
	}
	if a.V1SHA != b.V1SHA || a.V2SHA != b.V2SHA {
		t.Fatalf("same seed gave different dumps: %+v vs %+v", a, b)
	}
	if a.V1SHA == a.V2SHA {
		t.Fatal("v2 equals v1")
	}
	if a.V1Bytes < 1<<20 || a.V1Bytes > 3<<20 {
		t.Errorf("v1 is %d bytes, want about 2 MiB", a.V1Bytes)
	}
	c, err := generateDump(filepath.Join(dir, "c1"), filepath.Join(dir, "c2"), 8, 2<<20)
	if err != nil {
		t.Fatal(err)
	}
	if c.V1SHA == a.V1SHA {
		t.Error("another seed gave the same dump")
	}
}

// v2 must be v1 with the documented edits and insertions, nothing else: every
// v1 row is still there in order, and rows are added in the middle.
func TestDumpMutationModel(t *testing.T) {
	dir := t.TempDir()
	st, err := generateDump(filepath.Join(dir, "v1"), filepath.Join(dir, "v2"), 3, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	v1 := readLines(t, filepath.Join(dir, "v1"))
	v2 := readLines(t, filepath.Join(dir, "v2"))
	var rows, edited, inserted int64
	for _, tb := range st.Tables {
		rows, edited, inserted = rows+tb.Rows, edited+tb.Edited, inserted+tb.Inserted
	}
	// Small tables round up to one run of ~50 rows, hence the wide band.
	if f := float64(edited) / float64(rows); f < 0.007 || f > 0.015 {
		t.Errorf("edited share %.4f, want ~0.01", f)
	}
	if f := float64(inserted) / float64(rows); f < 0.004 || f > 0.006 {
		t.Errorf("inserted share %.4f, want ~0.005", f)
	}
	if got := int64(len(v2) - len(v1)); got != inserted {
		t.Errorf("v2 has %d more lines than v1, want %d inserted rows", got, inserted)
	}
	// Walk both files: equal lines match, an edited row keeps its id.
	i, j, changed, insertedMid := 0, 0, 0, 0
	for i < len(v1) && j < len(v2) {
		switch {
		case v1[i] == v2[j]:
			i++
			j++
		case rowID(v1[i]) == rowID(v2[j]) && rowID(v1[i]) != "":
			changed++
			i++
			j++
		default:
			insertedMid++ // an inserted row before v1[i]
			j++
		}
	}
	// The sequences' setval lines change too, one per table.
	if changed <= len(st.Tables) || changed > int(edited)+len(st.Tables) {
		t.Errorf("%d lines changed in place, want up to %d edited rows + %d setval lines", changed, edited, len(st.Tables))
	}
	if insertedMid == 0 {
		t.Error("no rows inserted in the middle of a table")
	}
}

func rowID(line string) string {
	if s, ok := strings.CutPrefix(line, "SELECT pg_catalog.setval("); ok {
		seq, _, _ := strings.Cut(s, ",")
		return seq
	}
	if s, ok := strings.CutPrefix(line, "INSERT INTO public.users ("); ok {
		_, vals, _ := strings.Cut(s, "VALUES (")
		id, _, _ := strings.Cut(vals, ",")
		return "u" + id
	}
	id, _, ok := strings.Cut(line, "\t")
	if !ok {
		return ""
	}
	return id
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(b), "\n")
}

// Applying the planned mutation to a fresh v1 copy must give the same v2
// every time: that is what lets the bench judge restores against v2.
func TestTreeMutationReproducible(t *testing.T) {
	dir := t.TempDir()
	l := layout{root: dir}
	p := dataParams{Version: genVersion, Seed: 5, DumpMiB: 1, TreeMiB: 2}
	st, err := generateData(l, p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Tree.V1Files < 5 || st.Tree.V1Bytes < 2<<20 {
		t.Fatalf("tree too small: %+v", st.Tree)
	}
	live := filepath.Join(dir, "live")
	if err := copyTree(l.treeV1(), live); err != nil {
		t.Fatal(err)
	}
	_, _, ops, _ := treePlan(p)
	if err := applyTreeMutation(live, ops); err != nil {
		t.Fatal(err)
	}
	got, err := manifest(live)
	if err != nil {
		t.Fatal(err)
	}
	if err := compareManifests(st.TreeV2, got); err != nil {
		t.Fatal(err)
	}
	if compareManifests(st.TreeV1, st.TreeV2) == nil {
		t.Fatal("v2 equals v1")
	}
}

func TestCompareManifestsReportsDifferences(t *testing.T) {
	want := []fileSum{{"a", 1, "x"}, {"b", 2, "y"}}
	got := []fileSum{{"a", 1, "x"}, {"b", 2, "z"}, {"c", 3, "w"}}
	err := compareManifests(want, got)
	if err == nil || !strings.Contains(err.Error(), "1 unexpected, 1 different") {
		t.Fatalf("got %v", err)
	}
	if err := compareManifests(want, want); err != nil {
		t.Fatal(err)
	}
}

func TestTailBufferKeepsTail(t *testing.T) {
	tb := &tailBuffer{max: 8}
	for _, s := range []string{"hello ", "wonderful ", "world"} {
		tb.Write([]byte(s))
	}
	if got := tb.String(); got != "ul world" {
		t.Fatalf("got %q", got)
	}
}

// fakeCairn implements the cairn CLI contract with cp, to test the cairn
// adapter and the protocol without a real cairn. CORRUPT=1 makes its restore
// damage the data. An s3:http://HOST/BUCKET/PREFIX repository is the
// directory $FAKE_S3/BUCKET/PREFIX; a copy to a repository made with
// --replica-of reports mode "packs" unless NO_PACKS=1.
const fakeCairn = `#!/bin/sh
set -e
loc() { case "$1" in s3:*) echo "$FAKE_S3/${1#s3:http://*/}" ;; *) echo "$1" ;; esac; }
repo=$(loc "$CAIRN_REPOSITORY")
case "$1" in
init)
  mkdir -p "$repo"
  if [ "$3" = "--replica-of" ] && [ -z "$NO_PACKS" ]; then touch "$repo/replica"; fi ;;
backup)
  rm -rf "$repo/data"; mkdir -p "$repo/data"
  if [ "$2" = "--stdin" ]; then cat > "$repo/data/$3"
  else cp -a "${3#*=}" "$repo/data/${3%%=*}"; fi ;;
restore)
  cp -a "$repo/data/." "$5/"
  if [ -n "$CORRUPT" ]; then find "$5" -type f | head -n 3 | while read -r f; do echo x >> "$f"; done; fi ;;
check)
  [ "$2" = "--read-data" ] && [ -d "$repo/data" ] || { echo "check: usage or no data" >&2; exit 2; }
  if [ -n "$BAD_REPO" ]; then echo "pack damaged" >&2; exit 1; fi
  echo "no errors found" ;;
copy)
  target=$(loc "$3"); cp -a "$repo/data" "$target/"
  mode=rewrite; if [ -f "$target/replica" ]; then mode=packs; fi
  echo "{\"targets\": [{\"mode\": \"$mode\", \"copied\": [{}, {}]}]}" ;;
*) echo "unknown command $1" >&2; exit 2 ;;
esac
`

func TestProtocolWithFakeCairn(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "cairn")
	if err := os.WriteFile(bin, []byte(fakeCairn), 0o755); err != nil {
		t.Fatal(err)
	}
	l := layout{root: filepath.Join(dir, "work")}
	st, _, err := prepareData(l, dataParams{Version: genVersion, Seed: 2, DumpMiB: 1, TreeMiB: 1}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{ctx: t.Context(), l: l, timeout: time.Minute, logf: t.Logf}
	for _, ds := range []*dataset{dumpDataset(l, st), treeDataset(l, st)} {
		res := b.run(cairnTool{bin}, ds, 1)
		if res.Error != "" || !res.RestoreVerified || len(res.Steps) != 4 {
			t.Fatalf("%s: %+v", ds.name, res)
		}
		if s := res.step(stepBackup2); s.RepoAfter <= 0 || s.MBps <= 0 {
			t.Errorf("%s: implausible backup 2: %+v", ds.name, s)
		}
		// The check reads the whole repository: its input is the repository.
		if s := res.step(stepCheck); s == nil || s.InputBytes != s.RepoAfter || s.InputBytes <= 0 || !strings.HasSuffix(s.Command, " check --read-data") {
			t.Errorf("%s: implausible check: %+v", ds.name, s)
		}
		// The verified restore is in the trash, not deleted (trash.go).
		if _, err := os.Lstat(l.restore("cairn", ds.name)); !os.IsNotExist(err) {
			t.Errorf("%s: the restore target is still in place: %v", ds.name, err)
		}
	}
	if entries, err := os.ReadDir(l.trash()); err != nil || !slices.ContainsFunc(entries, func(e os.DirEntry) bool { return strings.HasSuffix(e.Name(), "-cairn-"+dsTree) }) {
		t.Errorf("the tree's restore is not in the trash: %v, %v", entries, err)
	}
	t.Setenv("BAD_REPO", "1")
	if res := b.run(cairnTool{bin}, dumpDataset(l, st), 1); !strings.Contains(res.Error, "pack damaged") || !res.RestoreVerified || res.RestoreWrong {
		t.Fatalf("a failing check did not fail the run: %+v", res)
	}
	os.Unsetenv("BAD_REPO")
	t.Setenv("CORRUPT", "1")
	for _, ds := range []*dataset{dumpDataset(l, st), treeDataset(l, st)} {
		res := b.run(cairnTool{bin}, ds, 1)
		if !res.RestoreWrong || res.RestoreVerified {
			t.Fatalf("%s: corrupted restore not caught: %+v", ds.name, res)
		}
	}
}

// A failing command must report its command line, status and stderr.
func TestRunCmdFailureReport(t *testing.T) {
	_, err := runCmd(t.Context(), cmdSpec{Path: "/bin/sh", Args: []string{"-c", "echo boom >&2; exit 3"}})
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "/bin/sh -c") {
		t.Fatalf("got %v", err)
	}
}

// Peak RSS must be the command's own, in KiB: a command that touches 64 MiB
// reports at least that, and a tiny command is not charged with our memory
// (see spawn.go), even after we touched 256 MiB ourselves.
func TestRunCmdMeasuresCommandRSS(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "BENCH_RSS_HELPER=1")
	u, err := runCmd(t.Context(), cmdSpec{Path: exe, Args: []string{"-test.run=^TestRSSHelper$"}, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if u.MaxRSSKiB < 64<<10 || u.MaxRSSKiB > 256<<10 {
		t.Errorf("command touching 64 MiB reported max RSS %d KiB", u.MaxRSSKiB)
	}
	rssSink = make([]byte, 256<<20)
	for i := range rssSink {
		rssSink[i] = 1
	}
	u, err = runCmd(t.Context(), cmdSpec{Path: "/bin/true"})
	rssSink = nil
	if err != nil {
		t.Fatal(err)
	}
	// The floor is the spawner's own size: ~4 MiB normally, ~20 MiB in a
	// race-detector build. Either is far below the 256 MiB we touched.
	if u.MaxRSSKiB <= 0 || u.MaxRSSKiB > 64<<10 {
		t.Errorf("/bin/true reported max RSS %d KiB; our own memory leaks into the figure", u.MaxRSSKiB)
	}
	t.Logf("/bin/true: max RSS %d KiB (the spawner floor)", u.MaxRSSKiB)
}

var rssSink []byte

// TestRSSHelper is the command of TestRunCmdMeasuresCommandRSS.
func TestRSSHelper(t *testing.T) {
	if os.Getenv("BENCH_RSS_HELPER") != "1" {
		t.Skip("helper process only")
	}
	rssSink = make([]byte, 64<<20)
	for i := range rssSink {
		rssSink[i] = byte(i)
	}
}

// The table shows medians over repetitions and cairn/X ratios of them.
func TestBuildTableMediansAndRatios(t *testing.T) {
	mk := func(tool string, rep int, mbps float64) runResult {
		return runResult{Rep: rep, Tool: tool, Dataset: dsDump, RestoreVerified: true,
			Steps: []stepResult{{Step: stepBackup1, MBps: mbps}}}
	}
	runs := []runResult{mk("cairn", 1, 100), mk("restic", 1, 40), mk("cairn", 2, 300), mk("restic", 2, 50), mk("cairn", 3, 200), mk("restic", 3, 60)}
	rows := buildTable([]string{dsDump}, []string{"cairn", "restic"}, runs)
	row := rows[0]
	if row.Metric != "backup 1 throughput" || *row.Values["cairn"] != 200 || *row.Values["restic"] != 50 || *row.Ratios["restic"] != 4 {
		t.Fatalf("got %+v", row)
	}
	if rows[1].Values["cairn"] != nil {
		t.Errorf("a step that never ran has a value: %+v", rows[1])
	}
	if got := statusOf(append(runs, runResult{Tool: "restic", Dataset: dsDump, RestoreWrong: true}), "restic", dsDump); got != "WRONG RESTORE" {
		t.Errorf("status %q", got)
	}
}

// The S3 part runs after the local protocol: a backup into a fresh S3
// repository and cairn's two copies of the local repository, each measured;
// a copy in the wrong mode fails the run. MinIO is faked by the fake cairn's
// directories, so this runs anywhere.
func TestS3ProtocolWithFakeCairn(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "cairn")
	if err := os.WriteFile(bin, []byte(fakeCairn), 0o755); err != nil {
		t.Fatal(err)
	}
	l := layout{root: filepath.Join(dir, "work")}
	st, _, err := prepareData(l, dataParams{Version: genVersion, Seed: 2, DumpMiB: 1, TreeMiB: 1}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	m := &minioServer{&minioserver.Server{Endpoint: "127.0.0.1:9", Dir: filepath.Join(dir, "minio")}}
	t.Setenv("FAKE_S3", filepath.Join(m.Dir, "data"))
	b := &bench{ctx: t.Context(), l: l, timeout: time.Minute, logf: t.Logf, minio: m}
	var runs []runResult
	for _, ds := range []*dataset{dumpDataset(l, st), treeDataset(l, st)} {
		res := b.run(cairnTool{bin}, ds, 1)
		if res.Error != "" || !res.RestoreVerified || len(res.Steps) != 8 || res.step(stepS3Restore) == nil {
			t.Fatalf("%s: %+v", ds.name, res)
		}
		bk := res.step(stepS3Backup)
		if bk == nil || bk.InputBytes != ds.v1Bytes || bk.RepoAfter <= 0 || bk.MBps <= 0 {
			t.Errorf("%s: implausible backup to MinIO: %+v", ds.name, bk)
		}
		packs, err := dirSize(filepath.Join(l.repo("cairn", ds.name), "data"))
		if err != nil {
			t.Fatal(err)
		}
		for _, step := range []string{stepCopyReplica, stepCopyUnrelated} {
			if s := res.step(step); s == nil || s.InputBytes != packs || s.RepoAfter < packs || !strings.Contains(s.Command, " copy --to s3:http://127.0.0.1:9/cairn-bench/"+ds.name+"-") {
				t.Errorf("%s: implausible %s: %+v", ds.name, step, s)
			}
		}
		runs = append(runs, res)
	}
	rows := buildTable([]string{dsDump, dsTree}, []string{"cairn"}, runs)
	if len(rows) != 2*len(metrics) {
		t.Errorf("%d rows, want all %d metrics for both data sets", len(rows), 2*len(metrics))
	}

	// Another repetition gets new S3 repositories.
	t.Setenv("NO_PACKS", "1")
	res := b.run(cairnTool{bin}, dumpDataset(l, st), 2)
	if s := res.step(stepS3Backup); s == nil || s.RepoAfter <= 0 {
		t.Errorf("repetition 2: backup to MinIO: %+v", s)
	}
	if _, err := os.Stat(filepath.Join(m.Dir, "data", "cairn-bench", "dump-run2-replica")); err != nil {
		t.Errorf("repetition 2: %v", err)
	}
	if !strings.Contains(res.Error, `mode "rewrite"`) || res.step(stepCopyUnrelated) != nil {
		t.Fatalf("a replica copy that re-encrypted was not caught: %+v", res)
	}
}

// restic's one copy stands in for both of cairn's copy rows; the S3 rows
// are left out of a run without them.
func TestBuildTableS3Rows(t *testing.T) {
	steps := func(names ...string) []stepResult {
		var s []stepResult
		for i, n := range names {
			s = append(s, stepResult{Step: n, MBps: float64(10 * (i + 1))})
		}
		return s
	}
	runs := []runResult{
		{Rep: 1, Tool: "cairn", Dataset: dsDump, Steps: steps(stepBackup1, stepS3Backup, stepCopyReplica, stepCopyUnrelated)},
		{Rep: 1, Tool: "restic", Dataset: dsDump, Steps: steps(stepBackup1, stepS3Backup, stepCopy)},
		{Rep: 1, Tool: "borg", Dataset: dsDump, Steps: steps(stepBackup1)},
	}
	byName := map[string]tableRow{}
	for _, r := range buildTable([]string{dsDump}, []string{"cairn", "restic", "borg"}, runs) {
		byName[r.Metric] = r
	}
	replica, unrelated := byName["copy to MinIO (replica, packs)"], byName["copy to MinIO (unrelated)"]
	if *replica.Values["cairn"] != 30 || *unrelated.Values["cairn"] != 40 || *replica.Values["restic"] != 30 || *unrelated.Values["restic"] != 30 {
		t.Fatalf("copy rows: %+v %+v", replica, unrelated)
	}
	if *unrelated.Ratios["restic"] != 40.0/30 || replica.Values["borg"] != nil || replica.Ratios["borg"] != nil {
		t.Errorf("copy rows: %+v %+v", replica, unrelated)
	}
	if r := byName["backup to MinIO throughput"]; *r.Values["cairn"] != 20 || *r.Values["restic"] != 20 {
		t.Errorf("backup to MinIO: %+v", r)
	}
	for _, r := range buildTable([]string{dsDump}, []string{"cairn", "borg"}, runs[2:]) {
		if strings.Contains(r.Metric, "MinIO") {
			t.Errorf("S3 row in a run without S3 steps: %+v", r)
		}
	}
}

func TestCopyChecks(t *testing.T) {
	if err := checkCairnCopy(`{"targets": [{"mode": "packs", "copied": [{}, {}], "bytes": 5}]}`, "packs", 2); err != nil {
		t.Error(err)
	}
	for _, out := range []string{`{"targets": [{"mode": "rewrite", "copied": [{}, {}]}]}`, `{"targets": [{"mode": "packs", "copied": [{}]}]}`,
		`{"targets": []}`, `{"mode": "packs", "copied": [{}, {}]}`, "copied snapshot 1 as 2"} {
		if checkCairnCopy(out, "packs", 2) == nil {
			t.Errorf("accepted %q", out)
		}
	}
	out := "snapshot 9a1300de of [/x] at 2026-11-22)\n  copy started, this may take a while...\n\nsnapshot 3de60b0d saved\nsnapshot 1b2c saved\n"
	if err := checkResticCopy(out, 2); err != nil {
		t.Error(err)
	}
	if checkResticCopy(out, 3) == nil {
		t.Error("accepted 2 saved snapshots for 3")
	}
	// restic 0.19 names the source snapshot on the same line.
	out019 := "snapshot b2ba751a saved, copied from source snapshot c2cb9820\nsnapshot fe381980 saved, copied from source snapshot a0a71e51\n"
	if err := checkResticCopy(out019, 2); err != nil {
		t.Error(err)
	}
	if checkResticCopy("snapshot b2ba751a saved, but not really\n", 1) == nil {
		t.Error("accepted a line that is not restic's")
	}
}
