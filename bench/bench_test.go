//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
// damage the data.
const fakeCairn = `#!/bin/sh
set -e
repo="$CAIRN_REPOSITORY"
case "$1" in
init) mkdir -p "$repo" ;;
backup)
  rm -rf "$repo/snap"; mkdir -p "$repo/snap"
  if [ "$2" = "--stdin" ]; then cat > "$repo/snap/$3"
  else cp -a "${3#*=}" "$repo/snap/${3%%=*}"; fi ;;
restore)
  cp -a "$repo/snap/." "$5/"
  if [ -n "$CORRUPT" ]; then for f in "$5"/db "$5"/files/*; do if [ -f "$f" ]; then echo x >> "$f"; fi; done; fi ;;
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
		if res.Error != "" || !res.RestoreVerified || len(res.Steps) != 3 {
			t.Fatalf("%s: %+v", ds.name, res)
		}
		if s := res.step(stepBackup2); s.RepoAfter <= 0 || s.MBps <= 0 {
			t.Errorf("%s: implausible backup 2: %+v", ds.name, s)
		}
	}
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
