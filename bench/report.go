//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// notes are printed with every report: they say what the numbers mean.
var notes = []string{
	"Data is warm in the page cache for all tools alike: the input was written (smallfiles: read and hashed) just before each backup and the repository just before each restore; caches are not dropped.",
	"MB/s = bytes of the whole input (also for backup 2) / wall seconds, MB = 10^6 bytes. Sizes are MiB = 2^20 bytes.",
	"cairn reads the dumps (dump, pgdump) on stdin (as with `pg_dump | cairn backup --stdin db`); restic, borg and kopia read the dump file by path.",
	"Each tool and data set gets its own fresh repository and cache; the cache is not counted in the repository size (apparent size of the files in the repo dir).",
	"Backup 2 runs on the same path as backup 1 after an in-place mutation, so each tool's change detection / parent snapshot applies.",
	"Peak RSS is ru_maxrss of the tool's process (started through a ~3 MiB spawner, which is the floor). Restore times exclude writeback of the restored files unless the tool syncs them itself.",
	"Every restore of the second snapshot is compared byte for byte (SHA-256) with v2; a wrong restore fails the run.",
	"check --read-data: cairn check --read-data, restic check --read-data, borg check --verify-data, kopia snapshot verify --verify-files-percent=100, run after the restore on the repository with both snapshots; its MB/s is over that tool's own repository size, so compare the times.",
	"chain ceiling column: cairn's chain (cutting, keyed BLAKE3, zstd with its probe and XChaCha20-Poly1305, the BLAKE3 that names packs) timed stage by stage on one goroutine over the v1 bytes already in memory, with fresh repository parameters, divided by the cores (a stream: never less than its cutting alone); its CPU time is the serial sum. It is what a first backup could take if nothing but the chain cost anything: no reading, no syscalls, no index, no key derivation. results.json has each stage under the run's chain.",
	"Verified restores are moved to a trash emptied after each data set, and a timed restore starts at least vm.dirty_expire_centisecs + 6 s after the last emptying: ext4 searches past inodes deleted more recently than that, which slowed whichever restore came soon after a deletion of many files.",
	"cp -a column: cp -a of the v2 tree into an empty directory, timed like a restore and verified the same way: the reference for tree restores.",
	"pgdump: plain pg_dump of a throwaway PostgreSQL (pgbench -i -s N plus an application table), v2 after N×1000 pgbench transactions, 1% of the application rows updated and 0.5% added; smallfiles: backup 2 of the same, unchanged tree.",
	"retention rows: a history of 4-hourly snapshots (backup --time; -retention-snapshots, 540 = 90 days) of a changing application (10 MiB static, an 8 MiB dump a twentieth of which changes per snapshot, 64 KiB of uploads added per snapshot; with -retention-files N instead N files of 256-1535 random bytes, a quarter rewritten per snapshot), then one forget --keep-hourly 6 --keep-daily 14 --keep-weekly 8 --keep-monthly 12 --prune (both tools default to 5% max unused); the newest snapshot is restored and compared afterwards. borg takes no part.",
}

// s3Notes are added when the S3 part ran.
var s3Notes = []string{
	"S3 rows (-s3): a MinIO server on 127.0.0.1 (single drive, data under the work dir, plain HTTP) started for the run; borg has no S3 backend and has no values there.",
	"backup to MinIO = first backup of v1 into a fresh S3 repository (cairn init --create-bucket; restic init), with a fresh cache; MB/s = v1 bytes / wall seconds.",
	"copy to MinIO: the local repository the run made (two snapshots) copied into a fresh S3 repository; MB/s = bytes of that tool's local packs (data/ dir) / wall seconds, so each tool is credited with its own repository's size.",
	"cairn copies into a replica made with init --replica-of LOCAL --same-data-key (whole packs, not decrypted) and into an unrelated repository (re-encrypted); restic has one kind of copy (re-encrypted, target made with init --copy-chunker-params): the same measurement is shown in both copy rows.",
	"restore from MinIO = the latest snapshot (v2) restored from the copy (cairn: the replica) with an empty cache, compared with v2; MB/s = v2 bytes / wall seconds.",
}

// metric is one row of the table, read from a run.
type metric struct {
	name         string
	unit         string
	higherBetter bool
	value        func(r *runResult) (float64, bool)
	// optional rows are left out when no tool has a value: the S3 rows of a
	// run without -s3.
	optional bool
}

// stepMetric reads f of the first of steps the run has (restic's one copy
// stands in for both of cairn's).
func stepMetric(name, unit string, higher bool, f func(s *stepResult) float64, steps ...string) metric {
	return metric{name: name, unit: unit, higherBetter: higher, value: func(r *runResult) (float64, bool) {
		for _, step := range steps {
			if s := r.step(step); s != nil {
				return f(s), true
			}
		}
		return 0, false
	}}
}

func s3Metric(m metric) metric {
	m.optional = true
	return m
}

const mib = 1 << 20

func mbps(s *stepResult) float64   { return s.MBps }
func rssMiB(s *stepResult) float64 { return float64(s.MaxRSSKiB) / 1024 }
func cpuSec(s *stepResult) float64 { return s.UserSec + s.SysSec }

var metrics = []metric{
	stepMetric("backup 1 throughput", "MB/s", true, mbps, stepBackup1),
	stepMetric("backup 2 throughput", "MB/s", true, mbps, stepBackup2),
	stepMetric("restore throughput", "MB/s", true, mbps, stepRestore),
	stepMetric("repo size after backup 1", "MiB", false, func(s *stepResult) float64 { return float64(s.RepoAfter) / mib }, stepBackup1),
	stepMetric("bytes added by backup 2", "MiB", false, func(s *stepResult) float64 { return float64(s.RepoAfter-s.RepoBefore) / mib }, stepBackup2),
	stepMetric("peak RSS backup 1", "MiB", false, rssMiB, stepBackup1),
	stepMetric("peak RSS backup 2", "MiB", false, rssMiB, stepBackup2),
	stepMetric("peak RSS restore", "MiB", false, rssMiB, stepRestore),
	stepMetric("CPU time backup 1", "s", false, cpuSec, stepBackup1),
	stepMetric("CPU time backup 2", "s", false, cpuSec, stepBackup2),
	stepMetric("check --read-data time", "s", false, func(s *stepResult) float64 { return s.WallSec }, stepCheck),
	stepMetric("check --read-data throughput", "MB/s", true, mbps, stepCheck),
	stepMetric("peak RSS check --read-data", "MiB", false, rssMiB, stepCheck),
	s3Metric(stepMetric("backup to MinIO throughput", "MB/s", true, mbps, stepS3Backup)),
	s3Metric(stepMetric("peak RSS backup to MinIO", "MiB", false, rssMiB, stepS3Backup)),
	s3Metric(stepMetric("copy to MinIO (replica, packs)", "MB/s", true, mbps, stepCopyReplica, stepCopy)),
	s3Metric(stepMetric("copy to MinIO (unrelated)", "MB/s", true, mbps, stepCopyUnrelated, stepCopy)),
	s3Metric(stepMetric("restore from MinIO throughput", "MB/s", true, mbps, stepS3Restore)),
}

// tableRow is one metric of one data set, for every tool.
type tableRow struct {
	Dataset        string               `json:"dataset"`
	Metric         string               `json:"metric"`
	Unit           string               `json:"unit"`
	HigherIsBetter bool                 `json:"higher_is_better"`
	Values         map[string]*float64  `json:"values"`  // median of Samples
	Samples        map[string][]float64 `json:"samples"` // one per repetition
	// Ratios are cairn's value divided by each other tool's.
	Ratios map[string]*float64 `json:"cairn_over,omitempty"`
}

// toolInfo describes one tool of the run.
type toolInfo struct {
	Name     string `json:"name"`
	Path     string `json:"path,omitempty"`
	Version  string `json:"version,omitempty"`
	Settings string `json:"settings,omitempty"`
	Skipped  string `json:"skipped,omitempty"`
}

// s3Info describes the MinIO server of the S3 rows.
type s3Info struct {
	Path     string   `json:"path"`
	Version  string   `json:"version"`
	Endpoint string   `json:"endpoint"`
	Tools    []string `json:"tools"` // the tools measured on it
}

type hostInfo struct {
	CPU       string `json:"cpu"`
	CPUs      int    `json:"cpus"`
	MemoryGiB int    `json:"memory_gib"`
	Kernel    string `json:"kernel"`
	Go        string `json:"go"`
}

// results is the JSON document written to results.json.
type results struct {
	Started     time.Time      `json:"started"`
	Repeat      int            `json:"repeat"`
	WallSeconds float64        `json:"wall_seconds"`
	Host        hostInfo       `json:"host"`
	Params      dataParams     `json:"data_params"`
	Dump        dumpStats      `json:"dump"`
	Tree        treeStats      `json:"tree"`
	PGDump      *pgStamp       `json:"pgdump,omitempty"`
	SmallFiles  *smallInfo     `json:"smallfiles,omitempty"`
	DataReused  bool           `json:"data_reused"`
	Tools       []toolInfo     `json:"tools"`
	S3          *s3Info        `json:"s3,omitempty"`
	Runs        []runResult    `json:"runs"`
	Table       []tableRow     `json:"table"`
	Targets     []targetResult `json:"targets"`
	Notes       []string       `json:"notes"`
}

// smallInfo is the smallfiles stamp without its manifest, for the report.
type smallInfo struct {
	Params     smallParams `json:"params"`
	Bytes      int64       `json:"bytes"`
	GenSeconds float64     `json:"generation_seconds"`
}

func smallSummary(st *smallStamp) *smallInfo {
	if st == nil {
		return nil
	}
	return &smallInfo{Params: st.Params, Bytes: st.Bytes, GenSeconds: st.GenSeconds}
}

// buildTable computes the metric rows from the runs: the median over the
// repetitions that got that far.
func buildTable(datasets []string, tools []string, runs []runResult) []tableRow {
	var rows []tableRow
	for _, ds := range datasets {
		ms := metrics
		if ds == dsRetention {
			ms = retentionMetrics
		}
		for _, m := range ms {
			row := tableRow{Dataset: ds, Metric: m.name, Unit: m.unit, HigherIsBetter: m.higherBetter,
				Values: map[string]*float64{}, Samples: map[string][]float64{}}
			for _, t := range tools {
				for i := range runs {
					if r := &runs[i]; r.Tool == t && r.Dataset == ds {
						if v, ok := m.value(r); ok {
							row.Samples[t] = append(row.Samples[t], v)
						}
					}
				}
				if len(row.Samples[t]) > 0 {
					v := median(row.Samples[t])
					row.Values[t] = &v
				}
			}
			if m.optional && len(row.Values) == 0 {
				continue
			}
			if c := row.Values["cairn"]; c != nil {
				row.Ratios = map[string]*float64{}
				for _, t := range tools {
					if o := row.Values[t]; t != "cairn" && o != nil && *o != 0 {
						ratio := *c / *o
						row.Ratios[t] = &ratio
					}
				}
			}
			rows = append(rows, row)
		}
	}
	return rows
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// others are the tools cairn is compared with, when cairn ran.
func others(tools []string) []string {
	var o []string
	hasCairn := false
	for _, t := range tools {
		if t == "cairn" {
			hasCairn = true
		} else {
			o = append(o, t)
		}
	}
	if !hasCairn {
		return nil
	}
	return o
}

func repeatNote(n int) string {
	if n <= 1 {
		return "single run"
	}
	return fmt.Sprintf("median of %d runs", n)
}

func fmtVal(v *float64) string {
	switch {
	case v == nil:
		return "-"
	case *v >= 100 || *v <= -100:
		return fmt.Sprintf("%.0f", *v)
	case *v >= 10 || *v <= -10:
		return fmt.Sprintf("%.1f", *v)
	}
	return fmt.Sprintf("%.2f", *v)
}

func fmtRatio(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.2fx", *v)
}

func better(higher bool) string {
	if higher {
		return "higher"
	}
	return "lower"
}

// statusOf says whether all of a tool's runs on a data set succeeded with a
// verified restore; a wrong restore in any repetition wins.
func statusOf(runs []runResult, tool, ds string) string {
	status := "-"
	for _, r := range runs {
		if r.Tool != tool || r.Dataset != ds {
			continue
		}
		switch {
		case r.RestoreWrong:
			return "WRONG RESTORE"
		case r.Error != "":
			status = "FAILED"
		case r.RestoreVerified && status == "-":
			status = "ok"
		}
	}
	return status
}

// writeText prints the human-readable report.
func writeText(w io.Writer, res *results, tools []string) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	fmt.Fprintf(bw, "\n== cairn benchmark, %s, %s ==\n", res.Started.Format(time.RFC3339), repeatNote(res.Repeat))
	fmt.Fprintf(bw, "host: %s, %d CPUs, %d GiB RAM, Linux %s, %s\n", res.Host.CPU, res.Host.CPUs, res.Host.MemoryGiB, res.Host.Kernel, res.Host.Go)
	for _, t := range res.Tools {
		if t.Skipped != "" {
			fmt.Fprintf(bw, "tool %-6s SKIPPED: %s\n", t.Name, t.Skipped)
		} else {
			fmt.Fprintf(bw, "tool %-6s %s [%s]\n", t.Name, t.Version, t.Settings)
		}
	}
	if s := res.S3; s != nil {
		fmt.Fprintf(bw, "s3: %s at %s, for %s\n", s.Version, s.Endpoint, strings.Join(s.Tools, ", "))
	}
	writeDataSummary(bw, res)
	cmp := others(tools)
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := "data\tmetric\tunit\tbetter\t"
	for _, t := range tools {
		header += t + "\t"
	}
	for _, o := range cmp {
		header += "cairn/" + o + "\t"
	}
	fmt.Fprintln(tw, header)
	last := ""
	for _, row := range res.Table {
		if row.Dataset != last {
			line := row.Dataset + "\tstatus\t\t\t"
			for _, t := range tools {
				line += statusOf(res.Runs, t, row.Dataset) + "\t"
			}
			fmt.Fprintln(tw, line+strings.Repeat("\t", len(cmp)))
			last = row.Dataset
		}
		line := row.Dataset + "\t" + row.Metric + "\t" + row.Unit + "\t" + better(row.HigherIsBetter) + "\t"
		for _, t := range tools {
			line += fmtVal(row.Values[t]) + "\t"
		}
		for _, o := range cmp {
			line += fmtRatio(row.Ratios[o]) + "\t"
		}
		fmt.Fprintln(tw, line)
	}
	fmt.Fprintln(bw)
	tw.Flush()
	fmt.Fprintln(bw)
	if len(cmp) > 0 {
		fmt.Fprintln(bw, "cairn/X = cairn's value / X's value. Throughput (MB/s): >1 means cairn is faster. MiB and s: <1 means cairn uses less (better).")
	} else {
		fmt.Fprintln(bw, "cairn did not run: no ratios.")
	}
	writeTargets(bw, res.Targets)
	for _, n := range res.Notes {
		fmt.Fprintln(bw, "note: "+n)
	}
	for _, r := range res.Runs {
		if r.Error != "" {
			fmt.Fprintf(bw, "\nFAILED %s/%s (run %d):\n%s\n", r.Tool, r.Dataset, r.Rep, r.Error)
		}
	}
}

func writeDataSummary(w io.Writer, res *results) {
	d, t := res.Dump, res.Tree
	var rows, edited, inserted int64
	for _, tb := range d.Tables {
		rows, edited, inserted = rows+tb.Rows, edited+tb.Edited, inserted+tb.Inserted
	}
	if rows > 0 {
		fmt.Fprintf(w, "dump: v1 %.1f MiB, %d rows; v2 %.1f MiB: %d rows edited (%.2f%%), %d inserted (%.2f%%)\n",
			float64(d.V1Bytes)/mib, rows, float64(d.V2Bytes)/mib, edited, 100*float64(edited)/float64(rows), inserted, 100*float64(inserted)/float64(rows))
	}
	if p := res.PGDump; p != nil {
		fmt.Fprintf(w, "pgdump: %s, pgbench scale %d + %d application rows; v1 %.1f MiB, v2 %.1f MiB after %d pgbench transactions, %d application rows updated, %d inserted\n",
			p.Server, p.Params.Scale, p.AppRows, float64(p.V1Bytes)/mib, float64(p.V2Bytes)/mib, p.Transactions, p.AppUpdated, p.AppInserted)
	}
	if s := res.SmallFiles; s != nil {
		fmt.Fprintf(w, "smallfiles: %d files in %d dirs, %.1f MiB (%.1f KiB on average), unchanged between the two backups\n",
			s.Params.Files, s.Params.Dirs, float64(s.Bytes)/mib, float64(s.Bytes)/1024/float64(s.Params.Files))
	}
	if t.V1Files > 0 {
		m := t.Mutation
		fmt.Fprintf(w, "tree: v1 %.1f MiB in %d files, %d dirs, %.0f%% of bytes random; v2 %.1f MiB in %d files: %d rewritten, %d patched, %d with insertion, %d added, %d deleted\n",
			float64(t.V1Bytes)/mib, t.V1Files, t.Dirs, 100*float64(t.V1BinaryBytes)/float64(t.V1Bytes), float64(t.V2Bytes)/mib, t.V2Files,
			m.Rewritten, m.Patched, m.Inserted, m.Added, m.Deleted)
	}
}

// writeMarkdown writes the table as GitHub markdown.
func writeMarkdown(path string, res *results, tools []string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	cmp := others(tools)
	fmt.Fprintf(w, "# cairn benchmark %s, %s\n\n", res.Started.Format("2006-01-02 15:04"), repeatNote(res.Repeat))
	fmt.Fprintf(w, "Host: %s, %d CPUs, %d GiB RAM, Linux %s, %s. Total wall time %.0f s.\n\n", res.Host.CPU, res.Host.CPUs, res.Host.MemoryGiB, res.Host.Kernel, res.Host.Go, res.WallSeconds)
	for _, t := range res.Tools {
		if t.Skipped != "" {
			fmt.Fprintf(w, "- %s: skipped (%s)\n", t.Name, t.Skipped)
		} else {
			fmt.Fprintf(w, "- %s: `%s` — %s\n", t.Name, t.Version, t.Settings)
		}
	}
	if s := res.S3; s != nil {
		fmt.Fprintf(w, "- S3 rows: `%s` on %s, for %s\n", s.Version, s.Endpoint, strings.Join(s.Tools, ", "))
	}
	fmt.Fprintln(w)
	var sb strings.Builder
	writeDataSummary(&sb, res)
	for _, l := range strings.Split(strings.TrimSpace(sb.String()), "\n") {
		fmt.Fprintf(w, "- %s\n", l)
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, "| data | metric | unit | better |")
	for _, t := range tools {
		fmt.Fprintf(w, " %s |", t)
	}
	for _, o := range cmp {
		fmt.Fprintf(w, " cairn/%s |", o)
	}
	fmt.Fprintf(w, "\n|---|---|---|---|%s\n", strings.Repeat("---:|", len(tools)+len(cmp)))
	for _, row := range res.Table {
		fmt.Fprintf(w, "| %s | %s | %s | %s |", row.Dataset, row.Metric, row.Unit, better(row.HigherIsBetter))
		for _, t := range tools {
			fmt.Fprintf(w, " %s |", fmtVal(row.Values[t]))
		}
		for _, o := range cmp {
			fmt.Fprintf(w, " %s |", fmtRatio(row.Ratios[o]))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	if len(cmp) > 0 {
		fmt.Fprintln(w, "cairn/X = cairn's value / X's value: for MB/s >1 means cairn is faster; for MiB and s <1 means cairn uses less.")
		fmt.Fprintln(w)
	}
	writeTargetsMarkdown(w, res.Targets)
	for _, n := range res.Notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// host describes the machine, for the record.
func host() hostInfo {
	h := hostInfo{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				h.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		h.MemoryGiB = int((uint64(si.Totalram)*uint64(si.Unit) + 1<<29) >> 30)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	return h
}
