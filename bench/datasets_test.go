//go:build linux

package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The small-files tree is a pure function of its parameters, has the
// promised shape, and goes through the protocol: two backups of the same
// tree, a restore checked file by file, and cp -a as the reference.
func TestSmallFilesDataset(t *testing.T) {
	dir := t.TempDir()
	l := layout{root: filepath.Join(dir, "work")}
	p := smallParams{Version: smallGenVersion, Seed: 4, Files: 300, Dirs: 10}
	st, reused, err := prepareSmallFiles(l, p, t.Logf)
	if err != nil || reused {
		t.Fatal(err, reused)
	}
	if len(st.Manifest) != p.Files {
		t.Fatalf("%d files, want %d", len(st.Manifest), p.Files)
	}
	dirs := map[string]bool{}
	for _, f := range st.Manifest {
		dirs[filepath.Dir(f.Rel)] = true
		if f.Size < smallMin || f.Size >= smallMax {
			t.Fatalf("%s: %d bytes, outside [%d, %d)", f.Rel, f.Size, smallMin, smallMax)
		}
	}
	// log-uniform in [256 B, 16 KiB): mean 3.8 KiB; 300 files land within 20%.
	if mean := float64(st.Bytes) / float64(p.Files); len(dirs) != p.Dirs || mean < 3100 || mean > 4700 {
		t.Errorf("%d dirs, mean file size %.0f B; want %d dirs and about 3900 B", len(dirs), mean, p.Dirs)
	}
	again, reused, err := prepareSmallFiles(l, p, t.Logf)
	if err != nil || !reused || again.Bytes != st.Bytes {
		t.Fatalf("second prepare: reused %v, %v", reused, err)
	}
	// Same parameters elsewhere: the same bytes.
	other, _, err := prepareSmallFiles(layout{root: filepath.Join(dir, "other")}, p, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if err := compareManifests(st.Manifest, other.Manifest); err != nil {
		t.Fatalf("same seed, different tree: %v", err)
	}

	bin := filepath.Join(dir, "cairn")
	if err := os.WriteFile(bin, []byte(fakeCairn), 0o755); err != nil {
		t.Fatal(err)
	}
	b := &bench{ctx: t.Context(), l: l, timeout: time.Minute, logf: t.Logf}
	ds := smallFilesDataset(l, st)
	res := b.run(cairnTool{bin}, ds, 1)
	if res.Error != "" || !res.RestoreVerified || len(res.Steps) != 4 {
		t.Fatalf("%+v", res)
	}
	if s := res.step(stepBackup2); s.InputBytes != st.Bytes {
		t.Errorf("backup 2 input %d, want the whole tree %d", s.InputBytes, st.Bytes)
	}
	ref := b.cpReference(ds, 1)
	if ref.Error != "" || !ref.RestoreVerified || ref.Tool != cpTool || len(ref.Steps) != 1 || ref.Steps[0].MBps <= 0 {
		t.Fatalf("cp -a reference: %+v", ref)
	}
	if _, err := os.Stat(l.restore("cp", dsSmallFiles)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the verified copy was left behind: %v", err)
	}
	walk := b.statWalkReference(ds, 1)
	if walk.Error != "" || walk.Tool != statWalkTool || len(walk.Steps) != 1 || walk.Steps[0].Step != stepBackup2 ||
		walk.Steps[0].InputBytes != st.Bytes || walk.Steps[0].MBps <= 0 {
		t.Fatalf("stat walk reference: %+v", walk)
	}
	t.Setenv("CORRUPT", "1")
	if res := b.run(cairnTool{bin}, ds, 1); !res.RestoreWrong {
		t.Fatalf("corrupted restore not caught: %+v", res)
	}
	t.Setenv("CORRUPT", "")

	// Each run starts by reading the reused tree, which also catches a
	// tree changed since it was generated before any tool is timed on it.
	f := filepath.Join(l.smallTree(), filepath.FromSlash(st.Manifest[7].Rel))
	if err := os.WriteFile(f, []byte("edited by hand"), 0o644); err != nil {
		t.Fatal(err)
	}
	res = b.run(cairnTool{bin}, ds, 1)
	if !strings.Contains(res.Error, "small-files tree changed") || len(res.Steps) != 0 {
		t.Fatalf("a changed source tree was not refused before the first step: %+v", res)
	}
}

// The pgdump data set takes two real dumps of a throwaway PostgreSQL (about
// 15 s at scale 1, most of it initdb); skipped in -short runs and, with the
// message the benchmark prints, where PostgreSQL is not installed.
func TestPGDumpDataset(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL (-short)")
	}
	if err := findPostgres(); err != nil {
		t.Skip(err)
	}
	l := layout{root: t.TempDir()}
	p := pgParams{Version: pgGenVersion, Seed: 3, Scale: 1}
	st, reused, err := preparePGDump(t.Context(), l, p, t.Logf)
	if err != nil || reused {
		t.Fatal(err, reused)
	}
	// id % 100 = 3 picks exactly 1% of the ids; 0.5% are added.
	if st.AppRows != pgAppRowsPerScale || st.AppUpdated != pgAppRowsPerScale/100 || st.AppInserted != pgAppRowsPerScale/200 || st.Transactions != 1000 {
		t.Errorf("counts: %+v", st)
	}
	v1, v2 := readLines(t, l.pgV1()), readLines(t, l.pgV2())
	for _, want := range []string{"COPY public.pgbench_accounts ", "COPY public.app_orders ", "COPY public.pgbench_history "} {
		if !hasPrefixLine(v1, want) || !hasPrefixLine(v2, want) {
			t.Errorf("a dump lacks %q", want)
		}
	}
	// pgbench_history is empty in v1 and holds one row per transaction in
	// v2; refunds appear only in v2.
	if n := strings.Count(strings.Join(v2, "\n"), "\trefunded\t"); n != int(st.AppUpdated) {
		t.Errorf("v2 has %d refunded orders, want %d", n, st.AppUpdated)
	}
	if strings.Contains(strings.Join(v1, "\n"), "\trefunded\t") {
		t.Error("v1 has refunded orders")
	}
	if got := len(v2) - len(v1); got < int(st.Transactions+st.AppInserted) {
		t.Errorf("v2 has %d more lines than v1, want at least %d (history rows + new orders)", got, st.Transactions+st.AppInserted)
	}
	again, reused, err := preparePGDump(t.Context(), l, p, t.Logf)
	if err != nil || !reused || again.V2SHA != st.V2SHA {
		t.Fatalf("second prepare: reused %v, %v", reused, err)
	}

	// Through the protocol: cairn reads the dump on stdin, like the
	// generated one.
	bin := filepath.Join(t.TempDir(), "cairn")
	if err := os.WriteFile(bin, []byte(fakeCairn), 0o755); err != nil {
		t.Fatal(err)
	}
	b := &bench{ctx: t.Context(), l: l, timeout: time.Minute, logf: t.Logf}
	res := b.run(cairnTool{bin}, pgDumpDataset(l, st), 1)
	if res.Error != "" || !res.RestoreVerified || !strings.Contains(res.Steps[0].Command, "backup --stdin db < "+l.pgLive()) {
		t.Fatalf("%+v", res)
	}
}

func hasPrefixLine(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// fakeKopia follows the part of kopia's CLI the adapter uses: a filesystem
// repository named in the config file, a global compression policy, one
// snapshot per source (the latest), restore PATH TARGET, snapshot verify.
const fakeKopia = `#!/bin/sh
set -e
repo() { cat "$KOPIA_CONFIG_PATH"; }
case "$1 $2" in
"repository create")
  [ "$3 $4" = "filesystem --path" ]; mkdir -p "$5"; echo "$5" > "$KOPIA_CONFIG_PATH" ;;
"policy set")
  [ "$3 $4" = "--global --compression" ]; echo "$5" > "$(repo)/compression" ;;
"snapshot create")
  [ -f "$(repo)/compression" ]; rm -rf "$(repo)/snap"; mkdir "$(repo)/snap"
  cp -a "$3" "$(repo)/snap/root"; echo "$3" > "$(repo)/snap/source" ;;
"snapshot verify")
  [ "$3" = "--verify-files-percent=100" ] && [ -e "$(repo)/snap/root" ] ;;
"--version ")
  echo "0.0.0 fake" ;;
*)
  if [ "$1" != restore ] || [ "$(cat "$(repo)/snap/source")" != "$2" ]; then echo "bad call: $*" >&2; exit 2; fi
  if [ -d "$(repo)/snap/root" ]; then mkdir -p "$3"; cp -a "$(repo)/snap/root/." "$3/"; else cp "$(repo)/snap/root" "$3"; fi ;;
esac
`

// The kopia adapter: the compression policy after init, restore of the
// latest snapshot of the source path, verification of every file.
func TestKopiaAdapterWithFakeKopia(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "kopia")
	if err := os.WriteFile(bin, []byte(fakeKopia), 0o755); err != nil {
		t.Fatal(err)
	}
	l := layout{root: filepath.Join(dir, "work")}
	st, _, err := prepareData(l, dataParams{Version: genVersion, Seed: 2, DumpMiB: 1, TreeMiB: 1}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := newTool("kopia", bin)
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{ctx: t.Context(), l: l, timeout: time.Minute, logf: t.Logf}
	for _, ds := range []*dataset{dumpDataset(l, st), treeDataset(l, st)} {
		res := b.run(tl, ds, 1)
		if res.Error != "" || !res.RestoreVerified || len(res.Steps) != 4 {
			t.Fatalf("%s: %+v", ds.name, res)
		}
		c, err := os.ReadFile(filepath.Join(l.repo("kopia", ds.name), "compression"))
		if err != nil || strings.TrimSpace(string(c)) != "zstd" {
			t.Errorf("%s: compression policy %q, %v", ds.name, c, err)
		}
	}
}

// restic2 and kopia take part only when a binary is named; otherwise they
// are skipped with the variable to set.
func TestPeersSkippedWithoutBinary(t *testing.T) {
	c := config{tools: []string{"restic2", "kopia"}, bins: map[string]string{"restic2": "", "kopia": ""}}
	ts, infos, err := resolveTools(t.Context(), c)
	if err != nil || len(ts) != 0 || len(infos) != 2 {
		t.Fatalf("%v %v %+v", ts, err, infos)
	}
	for _, in := range infos {
		if !strings.Contains(in.Skipped, "$"+peerEnv[in.Name]+" is not set") {
			t.Errorf("%s: %q", in.Name, in.Skipped)
		}
	}
	// A second restic is its own column, with restic's commands.
	r, err := newTool("restic2", "/usr/bin/restic")
	if err != nil || r.name() != "restic2" || strings.Join(r.checkArgs("x"), " ") != "check --read-data" {
		t.Fatalf("%v %v", r, err)
	}
}

// Each target compares the medians: throughput as cairn/peer, seconds and
// MiB as peer/cairn; a skipped or failed peer gives no data, not a verdict.
func TestEvalTargets(t *testing.T) {
	v := func(f float64) *float64 { return &f }
	table := []tableRow{
		{Dataset: dsDump, Metric: "backup 1 throughput", HigherIsBetter: true, Values: map[string]*float64{"cairn": v(100), "restic": v(40), "kopia": v(60), ceilingTool: v(125)}},
		{Dataset: dsTree, Metric: "backup 1 throughput", HigherIsBetter: true, Values: map[string]*float64{"cairn": v(100), "restic": v(50)}},
		{Dataset: dsDump, Metric: "peak RSS backup 1", Values: map[string]*float64{"cairn": v(70), "borg": v(80)}},
		{Dataset: dsDump, Metric: "peak RSS restore", Values: map[string]*float64{"cairn": v(90), "borg": v(80)}},
		{Dataset: dsDump, Metric: "check --read-data time", Values: map[string]*float64{"cairn": v(5), "restic": v(12)}},
		{Dataset: dsDump, Metric: "restore throughput", HigherIsBetter: true, Values: map[string]*float64{"cairn": v(300)}},
		{Dataset: dsTree, Metric: "restore throughput", HigherIsBetter: true, Values: map[string]*float64{"cairn": v(100), cpTool: v(105)}},
		{Dataset: dsSmallFiles, Metric: "restore throughput", HigherIsBetter: true, Values: map[string]*float64{"cairn": v(50), cpTool: v(100)}},
		{Dataset: dsTree, Metric: "restore from MinIO throughput", HigherIsBetter: true, Values: map[string]*float64{"cairn": v(90), "restic": v(30)}},
	}
	infos := []toolInfo{{Name: "restic2", Skipped: "$RESTIC_BIN is not set"}}
	got := map[string]string{}
	for _, r := range evalTargets(table, infos) {
		got[r.Target+"/"+r.Dataset+"/"+r.Metric] = r.Status + " " + fmtAdv(r.Advantage)
	}
	want := map[string]string{
		"first backup ≥ 2× kopia/dump/backup 1 throughput":                            "NOT MET 1.67x",
		"first backup ≥ 2× kopia/tree/backup 1 throughput":                            "no data: kopia has no value -",
		"first backup ≥ 2.4× restic 0.14/dump/backup 1 throughput":                    "met 2.50x",
		"first backup ≥ 2.4× restic 0.14/tree/backup 1 throughput":                    "NOT MET 2.00x",
		"first backup ≥ 85% of the chain's two-core ceiling/dump/backup 1 throughput": "NOT MET 0.80x",
		"first backup ≥ 85% of the chain's two-core ceiling/tree/backup 1 throughput": "no data: chain ceiling has no value -",
		"peak RSS ≤ borg's on every phase/dump/peak RSS restore":                      "NOT MET 0.89x", // the worse of the two phases
		"check --read-data ≥ 2× restic 0.14/dump/check --read-data time":              "met 2.40x",
		"restore streams ≥ 1.5× restic 0.19 (restic2)/-/restore throughput":           "no data: restic2 skipped -",
		"tree restore within 1.1× of cp -a/tree/restore throughput":                   "met 0.95x",
		"tree restore within 1.1× of cp -a/smallfiles/restore throughput":             "NOT MET 0.50x",
		// restic 0.14's value does not stand in for the newer restic's.
		"restore from MinIO ≥ 1.5× restic 0.19 (restic2)/-/restore from MinIO throughput": "no data: restic2 skipped -",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %q, want %q", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d results, want %d: %v", len(got), len(want), got)
	}
}
