//go:build linux

// Command bench compares cairn with restic and borg on the same generated
// data: a PostgreSQL-style dump and a source tree, each backed up twice (the
// second time after a realistic mutation) and restored. See bench/README.md.
//
// Usage (from the repository root): go run ./bench [flags]
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

type config struct {
	dir         string
	dumpMiB     int
	treeMiB     int
	seed        uint64
	tools       []string
	datasets    []string
	bins        map[string]string
	jsonPath    string
	mdPath      string
	stepTimeout time.Duration
	repeat      int
	genOnly     bool
	s3          bool   // also measure backup and copy to a MinIO server
	minioBin    string // its binary
	minioFound  bool   // whether one was found (the default of -s3)
	retention   int    // snapshots in the retention history
	retFiles    int    // files of the retention history's many-files source (0: the application)
	pgScale     int    // pgbench scale of the pgdump data set
	smallFiles  int    // files of the smallfiles data set
	smallDirs   int    // and their directories
}

func parseFlags() (config, error) {
	c := config{bins: map[string]string{}}
	defDir := os.Getenv("CAIRN_BENCH_DIR")
	if defDir == "" {
		defDir = filepath.Join(os.TempDir(), "cairn-bench")
	}
	var tools, datasets, cairnBin, resticBin, borgBin, restic2Bin, kopiaBin string
	defMinio := findMinio()
	c.minioFound = defMinio != ""
	flag.StringVar(&c.dir, "dir", defDir, "work dir for data, repositories and results (default $CAIRN_BENCH_DIR or /tmp/cairn-bench)")
	flag.IntVar(&c.dumpMiB, "dump-mib", 500, "size of the SQL dump in MiB")
	flag.IntVar(&c.treeMiB, "tree-mib", 300, "size of the file tree in MiB")
	flag.Uint64Var(&c.seed, "seed", 1, "data generator seed (same seed and sizes = same bytes)")
	flag.StringVar(&tools, "tools", strings.Join(allTools, ","), "comma-separated tools to run (restic2 and kopia only when -restic2 / -kopia or $RESTIC_BIN / $KOPIA_BIN name a binary)")
	flag.StringVar(&datasets, "datasets", strings.Join(allDatasets, ","), "comma-separated data sets to run (pgdump: pg_dump of a throwaway PostgreSQL; smallfiles: many small files; retention: a history of 4-hourly snapshots, then forget --prune; cairn and restic)")
	flag.IntVar(&c.pgScale, "pg-scale", 20, "pgbench scale of the pgdump data set (20: about 2M accounts + 400k application rows, a 330 MB dump; 40: about 650 MB)")
	flag.IntVar(&c.smallFiles, "small-files", 200000, "files of the smallfiles data set (3.8 KiB on average)")
	flag.IntVar(&c.smallDirs, "small-dirs", 2000, "directories of the smallfiles data set")
	flag.StringVar(&restic2Bin, "restic2", os.Getenv("RESTIC_BIN"), "a second (newer) restic, its own column restic2 (default $RESTIC_BIN; none: skipped)")
	flag.StringVar(&kopiaBin, "kopia", os.Getenv("KOPIA_BIN"), "kopia binary (default $KOPIA_BIN; none: skipped)")
	flag.IntVar(&c.retention, "retention-snapshots", 540, "snapshots in the retention history (540 = 90 days of 4-hourly backups)")
	flag.IntVar(&c.retFiles, "retention-files", 0, "back up this many small files (a quarter rewritten per snapshot) in the retention history instead of the application: an index large beside fixed memory (80000 with -retention-snapshots 36: 794,000 blobs)")
	flag.StringVar(&cairnBin, "cairn", "./bin/cairn", "cairn binary")
	flag.StringVar(&resticBin, "restic", "restic", "restic binary")
	flag.StringVar(&borgBin, "borg", "borg", "borg binary")
	flag.StringVar(&c.jsonPath, "json", "", "results JSON file (default <dir>/results.json)")
	flag.StringVar(&c.mdPath, "md", "", "also write the results as markdown to this file")
	flag.DurationVar(&c.stepTimeout, "step-timeout", 2*time.Hour, "time limit of one timed command")
	flag.IntVar(&c.repeat, "repeat", 1, "run the whole protocol this many times; the table shows medians")
	flag.BoolVar(&c.genOnly, "gen-only", false, "only generate the data, run no tool")
	flag.BoolVar(&c.s3, "s3", defMinio != "", "also back up to and copy to a local MinIO server (default true when a minio binary is found)")
	flag.StringVar(&c.minioBin, "minio", cmp.Or(defMinio, "minio"), "minio binary for -s3 (default: $MINIO_BINARY, PATH, $(go env GOPATH)/bin)")
	flag.Parse()
	if flag.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if c.repeat < 1 {
		return c, errors.New("-repeat must be at least 1")
	}
	if c.dumpMiB < 1 || c.treeMiB < 1 {
		return c, errors.New("-dump-mib and -tree-mib must be at least 1")
	}
	if c.pgScale < 1 || c.smallFiles < 1 || c.smallDirs < 1 || c.smallDirs > c.smallFiles {
		return c, errors.New("-pg-scale, -small-files and -small-dirs must be at least 1, and -small-dirs at most -small-files")
	}
	c.bins = map[string]string{"cairn": cairnBin, "restic": resticBin, "borg": borgBin, "restic2": restic2Bin, "kopia": kopiaBin}
	var err error
	if c.tools, err = parseList(tools, allTools); err != nil {
		return c, fmt.Errorf("-tools: %w", err)
	}
	if c.retFiles < 0 {
		return c, errors.New("-retention-files must not be negative")
	}
	if c.retention < 2 {
		return c, errors.New("-retention-snapshots must be at least 2")
	}
	if c.datasets, err = parseList(datasets, allDatasets); err != nil {
		return c, fmt.Errorf("-datasets: %w", err)
	}
	if c.dir, err = filepath.Abs(c.dir); err != nil {
		return c, err
	}
	if c.jsonPath == "" {
		c.jsonPath = filepath.Join(c.dir, "results.json")
	}
	return c, nil
}

// parseList splits a comma-separated list, keeping the order of known.
func parseList(s string, known []string) ([]string, error) {
	var out []string
	for _, v := range strings.Split(s, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		if !slices.Contains(known, v) {
			return nil, fmt.Errorf("unknown %q (known: %s)", v, strings.Join(known, ", "))
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	slices.SortStableFunc(out, func(a, b string) int { return slices.Index(known, a) - slices.Index(known, b) })
	return out, nil
}

// allDatasets is every data set, in the order they run.
var allDatasets = []string{dsDump, dsTree, dsPGDump, dsSmallFiles, dsRetention}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

// resolveTools finds each requested tool's binary. A missing restic or borg
// is skipped with a message; a missing cairn is an error, since comparing
// against cairn is the point of the run.
func resolveTools(ctx context.Context, c config) ([]tool, []toolInfo, error) {
	var ts []tool
	var infos []toolInfo
	for _, name := range c.tools {
		if env, ok := peerEnv[name]; ok && c.bins[name] == "" {
			msg := fmt.Sprintf("$%s is not set: point it (or -%s) at a %s binary to add its column (none is downloaded)", env, name, strings.TrimSuffix(name, "2"))
			logf("SKIPPING %s: %s", name, msg)
			infos = append(infos, toolInfo{Name: name, Skipped: msg})
			continue
		}
		bin, err := exec.LookPath(c.bins[name])
		if err == nil {
			bin, err = filepath.Abs(bin) // borg runs in the restore dir
		}
		if err != nil {
			if name == "cairn" {
				return nil, nil, fmt.Errorf("cairn binary %q not found (%v): build it first (make build), pass -cairn PATH, or leave it out with -tools restic,borg", c.bins[name], err)
			}
			msg := fmt.Sprintf("binary %q not found (%v); install it (apt-get install %s) or pass -%s PATH", c.bins[name], err, debPackage(name), name)
			if env, ok := peerEnv[name]; ok {
				msg = fmt.Sprintf("binary %q ($%s or -%s) not found (%v)", c.bins[name], env, name, err)
			}
			logf("SKIPPING %s: %s", name, msg)
			infos = append(infos, toolInfo{Name: name, Skipped: msg})
			continue
		}
		t, err := newTool(name, bin)
		if err != nil {
			return nil, nil, err
		}
		v, err := t.version(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: cannot get its version: %w", name, err)
		}
		logf("tool %s: %s (%s)", name, v, bin)
		ts = append(ts, t)
		infos = append(infos, toolInfo{Name: name, Path: bin, Version: v, Settings: t.settings()})
	}
	return ts, infos, nil
}

// resolveMinio finds the minio binary for -s3, or says how to get one. It
// returns nil when none of the tools has an S3 backend (only borg runs).
func resolveMinio(ctx context.Context, c config, ts []tool) (*s3Info, error) {
	var users []string
	for _, t := range ts {
		if _, ok := t.(s3Tool); ok {
			users = append(users, t.name())
		}
	}
	if len(users) == 0 {
		logf("-s3: none of the tools has an S3 backend (borg has none); no S3 rows")
		return nil, nil
	}
	bin, err := exec.LookPath(c.minioBin)
	if err == nil {
		bin, err = filepath.Abs(bin)
	}
	if err != nil {
		return nil, fmt.Errorf("-s3: minio binary %q not found (%v): %s", c.minioBin, err, minioInstallHint)
	}
	return &s3Info{Path: bin, Version: s3Version(ctx, bin), Tools: users}, nil
}

func debPackage(tool string) string {
	if tool == "borg" {
		return "borgbackup"
	}
	return tool
}

func main() {
	runAsSpawnerIfAsked()
	c, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	started := time.Now()
	// Interrupting the run also kills the tool it is waiting for.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	l := layout{root: c.dir}
	var ts []tool
	var infos []toolInfo
	var err error
	if !c.genOnly {
		if ts, infos, err = resolveTools(ctx, c); err != nil {
			return err
		}
		if len(ts) == 0 {
			return errors.New("none of the requested tools is installed")
		}
	}
	var s3 *s3Info
	if !c.s3 && !c.minioFound && !c.genOnly {
		logf("no minio binary found, so no S3 rows: run scripts/install-minio.sh or pass -minio PATH")
	}
	if c.s3 && !c.genOnly {
		if s3, err = resolveMinio(ctx, c, ts); err != nil {
			return err
		}
	}
	params := dataParams{Version: genVersion, Seed: c.seed, DumpMiB: c.dumpMiB, TreeMiB: c.treeMiB}
	st, reused, err := prepareData(l, params, logf)
	if err != nil {
		return fmt.Errorf("prepare data: %w", err)
	}
	var pgSt *pgStamp
	var smallSt *smallStamp
	var skipped []string // data sets that cannot run here, with the reason
	if slices.Contains(c.datasets, dsPGDump) {
		pgSt, _, err = preparePGDump(ctx, l, pgParams{Version: pgGenVersion, Seed: c.seed, Scale: c.pgScale}, logf)
		if errors.Is(err, errNoPostgres) {
			logf("SKIPPING data set pgdump: %v", err)
			skipped = append(skipped, "pgdump skipped: "+err.Error())
		} else if err != nil {
			return err
		}
	}
	if slices.Contains(c.datasets, dsSmallFiles) {
		if smallSt, _, err = prepareSmallFiles(l, smallParams{Version: smallGenVersion, Seed: c.seed, Files: c.smallFiles, Dirs: c.smallDirs}, logf); err != nil {
			return fmt.Errorf("prepare smallfiles: %w", err)
		}
	}
	if c.genOnly {
		return nil
	}
	b := &bench{ctx: ctx, l: l, timeout: c.stepTimeout, logf: logf}
	// A run that was stopped leaves its trash; its names would collide.
	if err := b.emptyTrash(); err != nil {
		return fmt.Errorf("empty the trash: %w", err)
	}
	if s3 != nil {
		m, err := startMinio(ctx, s3.Path, filepath.Join(c.dir, "minio"))
		if err != nil {
			return fmt.Errorf("-s3: %w", err)
		}
		// Deferred, so the server goes on every way out of run; if we are
		// killed instead, its parent-death signal ends it.
		defer func() {
			if err := m.stop(); err != nil {
				logf("minio: stop: %v", err)
			}
		}()
		s3.Endpoint = m.Endpoint
		b.minio = m
		logf("minio: %s serving at %s (data in %s)", s3.Version, m.Endpoint, m.Dir)
	}
	datasets := slices.DeleteFunc(slices.Clone(c.datasets), func(ds string) bool { return ds == dsPGDump && pgSt == nil })
	var runs []runResult
	// Repetitions go round all tools, so a slow spell of the machine does
	// not hit one tool's runs only.
	for rep := 1; rep <= c.repeat; rep++ {
		if c.repeat > 1 {
			logf("== run %d of %d ==", rep, c.repeat)
		}
		for _, name := range datasets {
			if name == dsRetention {
				for _, t := range ts {
					// The history is long (540 backups): the retention row
					// compares cairn with Debian's restic only.
					if rt, ok := t.(retentionTool); ok && t.name() != "restic2" {
						runs = append(runs, b.runRetention(rt, retentionHistory{Snapshots: c.retention, Files: c.retFiles}, c.seed, rep))
					}
					if ctx.Err() != nil {
						return ctx.Err()
					}
				}
				continue
			}
			var ds *dataset
			switch name {
			case dsDump:
				ds = dumpDataset(l, st)
			case dsTree:
				ds = treeDataset(l, st)
			case dsPGDump:
				ds = pgDumpDataset(l, pgSt)
			case dsSmallFiles:
				ds = smallFilesDataset(l, smallSt)
			}
			for _, t := range ts {
				runs = append(runs, b.run(t, ds, rep))
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
			runs = append(runs, b.ceilingReference(ds, rep))
			if ds.v2Dir != "" {
				runs = append(runs, b.cpReference(ds, rep))
			}
			if ds.name == dsSmallFiles {
				runs = append(runs, b.statWalkReference(ds, rep))
			}
			// The data set's restores are all timed: free their files now,
			// where no timed restore follows for a while (trash.go).
			if err := b.emptyTrash(); err != nil {
				return fmt.Errorf("empty the trash: %w", err)
			}
		}
	}
	var ran []string
	for _, t := range ts {
		ran = append(ran, t.name())
	}
	if slices.ContainsFunc(datasets, func(ds string) bool { return ds != dsRetention }) {
		ran = append(ran, ceilingTool)
	}
	if slices.Contains(datasets, dsTree) || slices.Contains(datasets, dsSmallFiles) {
		ran = append(ran, cpTool)
	}
	if slices.Contains(datasets, dsSmallFiles) {
		ran = append(ran, statWalkTool)
	}
	table := buildTable(datasets, ran, runs)
	res := &results{
		Started: started, Repeat: c.repeat, Host: host(), Params: params, Dump: st.Dump, Tree: st.Tree,
		PGDump: pgSt, SmallFiles: smallSummary(smallSt),
		DataReused: reused, Tools: infos, S3: s3, Runs: runs, Table: table, Targets: evalTargets(table, infos),
		Notes: append(slices.Clip(notes), skipped...),
	}
	if s3 != nil {
		res.Notes = append(slices.Clip(res.Notes), s3Notes...)
	}
	res.WallSeconds = time.Since(started).Seconds()
	writeText(os.Stdout, res, ran)
	if err := writeResults(c, res, ran); err != nil {
		return err
	}
	data := "reused"
	if !reused {
		data = fmt.Sprintf("generated in %.0f s", st.GenSeconds)
	}
	fmt.Printf("total wall time %.0f s (data %s)\n", res.WallSeconds, data)
	return runsError(runs)
}

func writeResults(c config, res *results, ran []string) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(c.jsonPath, append(b, '\n')); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	fmt.Printf("results: %s\n", c.jsonPath)
	if c.mdPath != "" {
		if err := writeMarkdown(c.mdPath, res, ran); err != nil {
			return fmt.Errorf("write markdown: %w", err)
		}
		fmt.Printf("markdown: %s\n", c.mdPath)
	}
	return nil
}

// runsError fails the run if any tool failed a step or restored wrong data.
func runsError(runs []runResult) error {
	var failed, wrong []string
	for _, r := range runs {
		switch {
		case r.RestoreWrong:
			wrong = append(wrong, fmt.Sprintf("%s/%s (run %d)", r.Tool, r.Dataset, r.Rep))
		case r.Error != "":
			failed = append(failed, fmt.Sprintf("%s/%s (run %d)", r.Tool, r.Dataset, r.Rep))
		}
	}
	var msgs []string
	if len(wrong) > 0 {
		msgs = append(msgs, "WRONG RESTORE by "+strings.Join(wrong, ", "))
	}
	if len(failed) > 0 {
		msgs = append(msgs, "failed: "+strings.Join(failed, ", "))
	}
	if len(msgs) > 0 {
		return errors.New(strings.Join(msgs, "; "))
	}
	return nil
}
