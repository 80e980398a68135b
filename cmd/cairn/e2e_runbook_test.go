package main

// The vendor procedures of issue 10, end to end against a real PostgreSQL,
// the Elasticsearch emulator and real trees: hooks by phase, a restore plan
// checked before the first destructive step, and exit codes a cron job can
// trust.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/poll"
)

// almConfig is the ALM shared-space config of newAppEnv with the vendor's
// procedure as hooks: backup hooks around the backup only, and a restore
// that deactivates the space, drops the schema and imports the dump, closes
// and restores the indices, empties and restores the folder, then
// restarts and activates, or on failure records what it was told.
func almConfig(a *appEnv) {
	a.t.Helper()
	log := a.log
	sh := func(s string) string { return fmt.Sprintf("[sh, -c, %q]", s) }
	psql := fmt.Sprintf("[%q, -h, %s, -p, '%d', -U, %s, -d, %s, -q, -c, 'DROP SCHEMA public CASCADE; CREATE SCHEMA public']",
		a.pg.Bin("psql"), a.pg.Host, a.pg.Port, a.pg.User, a.pg.Database)
	cfg := fmt.Sprintf(`app: alm-sp1001
hooks:
  backup:
    before: %[1]s
    after: %[2]s
  restore:
    before: %[3]s
    after: %[4]s
    on_failure: %[5]s
components:
  - name: db
    command: [%[6]q, --format=custom, -Z0, --dbname=%[7]s]
    env: [PGHOST=%[8]s, PGPORT=%[9]d, PGUSER=%[10]s]
    restore: [%[11]q, --single-transaction, --exit-on-error, --dbname=%[7]s]
    hooks:
      restore:
        before: %[12]s
        after: %[13]s
  - name: search
    elasticsearch:
      url: %[14]s
      repository: cairn
      location: %[15]s
      indices: "mqm_sp1001*"
    hooks:
      restore:
        on_failure: %[16]s
  - name: files
    tree: %[17]s
    delete: true
`,
		sh("echo backup-before >> "+log), sh("echo backup-after >> "+log),
		sh("echo deactivate-$CAIRN_PHASE >> "+log), sh("echo restart activate >> "+log),
		sh(`echo "on_failure failed=$CAIRN_FAILED_COMPONENT restored=$CAIRN_RESTORED snapshot=$CAIRN_SNAPSHOT" >> `+log+`; echo "$CAIRN_ERROR" > `+log+`.error`),
		a.pg.Bin("pg_dump"), a.pg.Database, a.pg.Host, a.pg.Port, a.pg.User, a.pg.Bin("pg_restore"),
		psql, sh("echo db-imported >> "+log),
		a.emu.URL(), a.emu.RepoDir("cairn"),
		sh("echo search-on_failure-$CAIRN_COMPONENT >> "+log),
		a.files)
	write(a.t, a.config, []byte(cfg), 0o600)
	if err := os.Remove(a.log); err != nil && !os.IsNotExist(err) {
		a.t.Fatal(err)
	}
}

// change alters all three parts of the application after a backup.
func (a *appEnv) change() {
	a.t.Helper()
	a.pg.Exec(a.t, "UPDATE issues SET status = 'closed' WHERE id % 3 = 0; DELETE FROM issues WHERE id > 4900;")
	a.putDoc("mqm_sp1001_issues", "3", `{"title":"edited"}`)
	write(a.t, filepath.Join(a.files, "attachments", "late.bin"), []byte("added after the backup"), 0o644)
}

// TestALMSharedSpaceRestore is the ALM suite's shared-space procedure:
// Elasticsearch fails in the middle of the restore, after the schema was
// dropped and imported. activate must not run, on_failure must, told what
// was restored; the report names it; the folder is untouched. Then the
// restore is run again and everything is back. Before the fix the flat
// hooks ran for both phases, "activate" ran after the failure, and
// hooks.backup/hooks.restore were unknown keys.
func TestALMSharedSpaceRestore(t *testing.T) {
	a := newAppEnv(t, "")
	almConfig(a)
	db1, issues1, files1 := a.query(), a.docs("mqm_sp1001_issues"), captureTree(t, a.files)
	b := decodeJSON[backupOut](t, mustCairn(t, nil, "--config", a.config, "backup", "--json"))
	if got := a.hooks(); got != "backup-before backup-after" {
		t.Fatalf("backup ran hooks %q, want only the backup hooks", got)
	}
	os.Remove(a.log)
	a.change()
	db2, files2 := a.query(), captureTree(t, a.files)

	// The plan, printed without changing anything.
	r := mustCairn(t, nil, "--config", a.config, "restore", b.ShortID, "--dry-run")
	for _, want := range []string{"1. hook before: sh -c echo deactivate", "db: hook before:", "DROP SCHEMA", "db: pipe the dump", "search: write the repository files",
		"DESTROYS: indices mqm_sp1001_issues are closed and replaced", "files: restore 2 files", "DESTROYS: empties " + a.files, "hook after: sh -c echo restart activate", "checks passed"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, r.stdout)
		}
	}
	if a.hooks() != "" || a.query() != db2 {
		t.Fatalf("--dry-run changed something: hooks %q", a.hooks())
	}

	a.emu.RespondStatus("POST", "/_snapshot/", 500, "exception", "node left the cluster", -1)
	r = cairn(t, nil, "--config", a.config, "restore", b.ShortID)
	if r.code != 1 || !strings.Contains(r.stderr, "restore stopped at component search (already restored: db)") || !strings.Contains(r.stderr, "node left the cluster") {
		t.Errorf("want exit 1 naming the failed component and what was restored:\n%v", r)
	}
	want := fmt.Sprintf("deactivate-restore db-imported search-on_failure-search on_failure failed=search restored=db snapshot=%s", b.ID)
	if got := a.hooks(); got != want {
		t.Errorf("hooks ran as\n %q\nwant\n %q", got, want)
	}
	if e := string(readFile(t, a.log+".error")); !strings.Contains(e, "node left the cluster") {
		t.Errorf("CAIRN_ERROR = %q", e)
	}
	if a.query() != db1 {
		t.Error("the database was not restored before the failure")
	}
	compareTrees(t, files2, captureTree(t, a.files)) // not reached: untouched

	a.emu.ClearFaults()
	os.Remove(a.log)
	r = mustCairn(t, nil, "--config", a.config, "restore", "latest")
	if got := a.hooks(); got != "deactivate-restore db-imported restart activate" {
		t.Errorf("hooks ran as %q", got)
	}
	if a.query() != db1 || a.docs("mqm_sp1001_issues") != issues1 {
		t.Error("database or index not restored")
	}
	compareTrees(t, files1, captureTree(t, a.files))
}

// TestRestoreChecksBeforeDestroying: with Elasticsearch down, a restore
// stops before the first hook and before the database is touched, and
// says every problem at once. Before the fix the schema was dropped and
// replaced, then the search component failed.
func TestRestoreChecksBeforeDestroying(t *testing.T) {
	a := newAppEnv(t, "")
	almConfig(a)
	b := decodeJSON[backupOut](t, mustCairn(t, nil, "--config", a.config, "backup", "--json"))
	a.change()
	db2 := a.query()
	os.Remove(a.log)

	a.emu.Unreachable()
	if err := os.Chmod(filepath.Dir(a.files), 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Dir(a.files), 0o755) })
	if err := os.Chmod(a.files, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(a.files, 0o755) })
	r := cairn(t, nil, "--config", a.config, "restore", b.ShortID)
	if os.Geteuid() == 0 {
		t.Log("running as root: the unwritable directory is not a problem")
	}
	if r.code != 1 || !strings.Contains(r.stderr, "not started, nothing was changed") || !strings.Contains(r.stderr, "search: elasticsearch at "+a.emu.URL()) {
		t.Errorf("want the plan to fail on Elasticsearch:\n%v", r)
	}
	if os.Geteuid() != 0 && !strings.Contains(r.stderr, "files: "+a.files+" is not writable") {
		t.Errorf("the unwritable tree is not reported in the same pass:\n%v", r)
	}
	if got := a.hooks(); got != "" {
		t.Errorf("hooks ran: %q", got)
	}
	if a.query() != db2 {
		t.Error("the database was changed by a restore that could not succeed")
	}
}

// TestRestoreLatestIsTheApplications: `--config a.yaml restore latest`
// picks app a's newest snapshot, not another application's; a snapshot
// whose component is of another kind than the config restores (a
// directory dump where the config pipes a stream) is refused before any
// hook runs. Before the fix, latest was the repository's newest and the
// restore command got a literal {path}.
func TestRestoreLatestIsTheApplications(t *testing.T) {
	testEnv(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	out := filepath.Join(dir, "restored")
	cfgA := filepath.Join(dir, "a.yaml")
	write(t, cfgA, []byte(fmt.Sprintf(`app: a
hooks:
  restore:
    before: [sh, -c, "echo drop-schema >> %[1]s"]
components:
  - name: db
    command: [sh, -c, "echo dump of a"]
    restore: [sh, -c, "cat > %[2]s"]
`, log, out)), 0o600)
	cfgB := filepath.Join(dir, "b.yaml")
	write(t, cfgB, []byte(fmt.Sprintf(`app: b
components:
  - name: db
    command: [sh, -c, "echo dump of b > {dir}/db.sql"]
    mode: dir
    dir: %s
    clean: true
    restore: [sh, -c, "cat {dir}/db.sql > %s"]
`, filepath.Join(dir, "dumpdir"), out)), 0o600)
	a := decodeJSON[backupOut](t, mustCairn(t, nil, "--config", cfgA, "backup", "--json"))
	b := decodeJSON[backupOut](t, mustCairn(t, nil, "--config", cfgB, "backup", "--json"))

	mustCairn(t, nil, "--config", cfgA, "restore", "latest")
	if got := string(readFile(t, out)); got != "dump of a\n" {
		t.Errorf("restore latest with a.yaml gave %q (snapshot a is %s, b is %s)", got, a.ShortID, b.ShortID)
	}
	os.Remove(log)
	r := cairn(t, nil, "--config", cfgA, "restore", b.ShortID)
	if r.code != 1 || !strings.Contains(r.stderr, "belongs to application \"b\"") || !strings.Contains(r.stderr, "db: the snapshot holds it as a tree, the config restores a stream") {
		t.Errorf("want the kind and application mismatch refused:\n%v", r)
	}
	if _, err := os.Stat(log); err == nil {
		t.Error("the restore before hook ran for a snapshot the config cannot restore")
	}
}

// TestRestoreConfigVerify: restore --config --verify reads every stream
// through the repository before the first destructive step, so a damaged
// dump stops the restore before the "drop" hook. Before the fix --verify
// was accepted and ignored.
func TestRestoreConfigVerify(t *testing.T) {
	repoDir := testEnv(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	cfg := filepath.Join(dir, "cairn.yaml")
	dump := filepath.Join(dir, "dump.bin")
	write(t, dump, randomBytes(11, 6<<20), 0o644)
	write(t, cfg, []byte(fmt.Sprintf(`app: v
hooks:
  restore:
    before: [sh, -c, "echo drop-schema >> %[1]s"]
components:
  - name: db
    command: [cat, %[2]s]
    restore: [sh, -c, "cat > /dev/null"]
`, log, dump)), 0o600)
	b := decodeJSON[backupOut](t, mustCairn(t, nil, "--config", cfg, "backup", "--json"))
	mustCairn(t, nil, "--config", cfg, "restore", "--verify", b.ShortID)
	if got := strings.TrimSpace(string(readFile(t, log))); got != "drop-schema" {
		t.Fatalf("hook log %q", got)
	}
	os.Remove(log)
	damageLargestPack(t, repoDir)
	r := cairn(t, nil, "--config", cfg, "restore", "--verify", b.ShortID)
	if r.code != 1 || !strings.Contains(r.stderr, "db: verify:") {
		t.Errorf("want the damaged stream found by --verify:\n%v", r)
	}
	if _, err := os.Stat(log); err == nil {
		t.Error("the before hook ran although the dump could not be read back")
	}
}

// damageLargestPack flips a byte three quarters into the largest pack.
func damageLargestPack(t *testing.T, repoDir string) {
	t.Helper()
	var largest string
	var size int64
	filepath.Walk(filepath.Join(repoDir, "data"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Size() > size {
			largest, size = p, fi.Size()
		}
		return nil
	})
	if largest == "" {
		t.Fatal("no pack")
	}
	b := readFile(t, largest)
	b[len(b)*3/4] ^= 0xff
	if err := os.Chmod(largest, 0o600); err != nil {
		t.Fatal(err)
	}
	write(t, largest, b, 0o600)
}

// TestExitCodeSnapshotWrittenThenFailed: a backup whose snapshot is
// written and whose after hook then fails exits 4, not 1 (which says no
// snapshot was written and makes a retrying cron job take a duplicate).
func TestExitCodeSnapshotWrittenThenFailed(t *testing.T) {
	testEnv(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "files", "a"), []byte("a"), 0o644)
	cfg := filepath.Join(dir, "cairn.yaml")
	write(t, cfg, []byte(fmt.Sprintf("hooks:\n  after: [sh, -c, \"echo restart failed >&2; exit 1\"]\ncomponents:\n  - name: files\n    tree: %s\n", filepath.Join(dir, "files"))), 0o600)
	r := cairn(t, nil, "--config", cfg, "backup")
	if r.code != 4 || !strings.Contains(r.stderr, "written, but the after hook failed") || !strings.Contains(r.stderr, "restart failed") {
		t.Errorf("want exit 4:\n%v", r)
	}
	if n := countSnapshots(t); n != 1 {
		t.Errorf("%d snapshots, want 1", n)
	}

	// Replication fails after the snapshot: exit 4 too, and the backup's
	// on_failure hook hears of it, told which snapshot was written.
	log := filepath.Join(dir, "log")
	write(t, cfg, []byte(fmt.Sprintf(`hooks:
  on_failure: [sh, -c, "echo \"$CAIRN_SNAPSHOT $CAIRN_ERROR\" >> %s"]
components:
  - name: files
    tree: %s
replicate:
  - repository: %s
`, log, filepath.Join(dir, "files"), filepath.Join(dir, "no-replica"))), 0o600)
	r = cairn(t, nil, "--config", cfg, "backup", "--json")
	b := decodeJSON[backupOut](t, r)
	if r.code != 4 || !strings.Contains(r.stderr, "replication to") {
		t.Errorf("failed replication: want exit 4:\n%v", r)
	}
	if got := string(readFile(t, log)); !strings.HasPrefix(got, b.ID+" ") || !strings.Contains(got, "no-replica") {
		t.Errorf("on_failure was told %q, want the snapshot %s and the replication error", got, b.ID)
	}
}

// TestOverlappingRuns: two runs of one application, as cron makes them.
// While the first is inside its before hook, a second fails at once
// (exit 13) or, with --wait, waits and runs after it; the hooks never
// interleave; each run dumps into a directory of its own inside dir:
// (without clean:), so neither records the other's dump nor a killed
// run's leftover, and the run directories are gone afterwards. Before the
// fix, run 2's clean emptied run 1's dump and run 1 archived run 2's.
func TestOverlappingRuns(t *testing.T) {
	testEnv(t)
	dir := t.TempDir()
	log, started, release := filepath.Join(dir, "log"), filepath.Join(dir, "started"), filepath.Join(dir, "release")
	dumps := filepath.Join(dir, "dumps")
	write(t, filepath.Join(dumps, "leftover-of-a-killed-run"), []byte("stale"), 0o644)
	cfg := filepath.Join(dir, "cairn.yaml")
	// The first run's before hook holds it until the test releases it;
	// the second's finds release present and goes straight on.
	write(t, cfg, []byte(fmt.Sprintf(`app: design
hooks:
  before: [sh, -c, "echo before >> %[1]s; touch %[2]s; while [ ! -e %[3]s ]; do sleep 0.02; done"]
  after: [sh, -c, "echo after >> %[1]s"]
components:
  - name: db
    command: [sh, -c, "l=$(ls -A {dir}); printf %%s \"$l\" > {dir}/listing; echo dumped > {dir}/data"]
    mode: dir
    dir: %[4]s
`, log, started, release, dumps)), 0o600)

	ctx := t.Context()
	first := exec.CommandContext(ctx, os.Args[0], "--config", cfg, "backup", "--tag", "first")
	first.Env = append(os.Environ(), "CAIRN_TEST_AS_CAIRN=1")
	var firstErr strings.Builder
	first.Stderr = &firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the first run's before hook", func() bool { _, err := os.Stat(started); return err == nil })

	r := cairn(t, nil, "--config", cfg, "backup", "--tag", "fail-fast")
	if r.code != 13 || !strings.Contains(r.stderr, "application design is already running") {
		t.Errorf("a second run while the first holds the run lock: want exit 13:\n%v", r)
	}

	second := exec.CommandContext(ctx, os.Args[0], "--config", cfg, "backup", "--tag", "second", "--wait", "2m")
	second.Env = first.Env
	stderr, err := second.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	var secondErr strings.Builder
	for sc.Scan() { // until it says it waits: then the first run still holds the lock
		secondErr.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "waiting up to 2m0s: application design is already running") {
			break
		}
	}
	write(t, release, nil, 0o644)
	go io.Copy(&secondErr, stderr)
	if err := first.Wait(); err != nil {
		t.Fatalf("first run: %v\n%s", err, firstErr.String())
	}
	if err := second.Wait(); err != nil {
		t.Fatalf("second run: %v\n%s", err, secondErr.String())
	}
	if got := strings.Join(strings.Fields(string(readFile(t, log))), " "); got != "before after before after" {
		t.Errorf("hooks ran as %q: the runs interleaved", got)
	}
	snaps := decodeJSON[[]snapshotOut](t, mustCairn(t, nil, "snapshots", "--json"))
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots, want 2 (fail-fast must not write one)", len(snaps))
	}
	for _, s := range snaps {
		ls := decodeJSON[[]lsOut](t, mustCairn(t, nil, "ls", "--json", s.ID, "db"))
		var names []string
		for _, e := range ls {
			names = append(names, e.Path)
		}
		if got := strings.Join(names, " "); got != "db/data db/listing" {
			t.Errorf("snapshot %v holds %q", s.Tags, got)
		}
		if got := mustCairn(t, nil, "dump", s.ID, "db/listing").stdout; got != "" {
			t.Errorf("snapshot %v: the run's dump directory held %q when its dump began", s.Tags, got)
		}
	}
	entries, err := os.ReadDir(dumps)
	if err != nil || len(entries) != 1 || entries[0].Name() != "leftover-of-a-killed-run" {
		t.Errorf("dump directory after the runs: %v %v", entries, err)
	}
}

// TestSnapshotsBelongToTheirApplication: with --config, snapshots and
// copy --latest see only that application's snapshots; snapshots filters
// by --app, --host and --tag and shows the app and a copy's original.
// Before the fix, --config was ignored by both and there was no --tag.
func TestSnapshotsBelongToTheirApplication(t *testing.T) {
	testEnv(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "files", "f"), []byte("f"), 0o644)
	cfg := func(name string) string {
		p := filepath.Join(dir, name+".yaml")
		write(t, p, []byte(fmt.Sprintf("app: %s\ncomponents:\n  - name: files\n    tree: %s\n", name, filepath.Join(dir, "files"))), 0o600)
		return p
	}
	a, b := cfg("a"), cfg("b")
	a1 := decodeJSON[backupOut](t, mustCairn(t, nil, "--config", a, "backup", "--json", "--tag", "nightly"))
	decodeJSON[backupOut](t, mustCairn(t, nil, "--config", b, "backup", "--json", "--host", "other"))
	a2 := decodeJSON[backupOut](t, mustCairn(t, nil, "--config", a, "backup", "--json"))
	decodeJSON[backupOut](t, mustCairn(t, nil, "--config", b, "backup", "--json", "--tag", "nightly"))

	ids := func(args ...string) string {
		t.Helper()
		var out []string
		for _, s := range decodeJSON[[]snapshotJSON](t, mustCairn(t, nil, append(args, "--json")...)) {
			out = append(out, s.App+":"+s.ShortID)
		}
		return strings.Join(out, " ")
	}
	if got, want := ids("--config", a, "snapshots"), "a:"+a1.ShortID+" a:"+a2.ShortID; got != want {
		t.Errorf("snapshots with a.yaml: %s, want %s", got, want)
	}
	if got := ids("snapshots", "--app", "b", "--host", "other"); strings.Count(got, "b:") != 1 || strings.Contains(got, "a:") {
		t.Errorf("snapshots --app b --host other: %s", got)
	}
	if got := ids("--config", a, "snapshots", "--tag", "nightly"); got != "a:"+a1.ShortID {
		t.Errorf("snapshots --tag nightly with a.yaml: %s", got)
	}
	if got := ids("snapshots", "--tag", "nightly"); strings.Count(got, ":") != 2 {
		t.Errorf("snapshots --tag nightly: %s", got)
	}

	offsite := filepath.Join(dir, "offsite")
	t.Setenv("CAIRN_TO_PASSWORD", testPassword)
	mustCairn(t, nil, "-r", offsite, "init")
	mustCairn(t, nil, "--config", a, "copy", "--latest", "--to", offsite)
	copies := decodeJSON[[]snapshotJSON](t, mustCairn(t, nil, "-r", offsite, "snapshots", "--json"))
	if len(copies) != 1 || copies[0].App != "a" || copies[0].Original != a2.ID {
		t.Errorf("copy --latest with a.yaml copied %+v, want a copy of %s", copies, a2.ShortID)
	}
	if r := mustCairn(t, nil, "-r", offsite, "snapshots"); !strings.Contains(r.stdout, a2.ID[:8]) {
		t.Errorf("snapshots does not show the copy's original %s:\n%s", a2.ID[:8], r.stdout)
	}
}

// TestDesignServerProcedure is the PCB design server's procedure: the web
// service is stopped around the backup and started again even when the
// export fails; the database is exported to a file (pg_dump -Fc -f
// {path}, a named pipe) and the vault is a tree. Then the snapshot is
// restored to another database and directory without editing the config,
// through --set; the live database and vault are untouched.
func TestDesignServerProcedure(t *testing.T) {
	pg := dbs.Postgres(t).NewDatabase(t)
	copyDB := dbs.Postgres(t).NewDatabase(t)
	testEnv(t)
	pg.Exec(t, `CREATE TABLE parts (id int PRIMARY KEY, footprint text); INSERT INTO parts SELECT i, 'SOT-23-' || i FROM generate_series(1, 2000) i;`)
	query := "SELECT count(*), md5(string_agg(id || footprint, ',' ORDER BY id)) FROM parts"
	dir := t.TempDir()
	vault, log, stopped := filepath.Join(dir, "vault"), filepath.Join(dir, "log"), filepath.Join(dir, "service.stopped")
	write(t, filepath.Join(vault, "projects", "board.PcbDoc"), randomBytes(21, 300<<10), 0o644)
	cfg := filepath.Join(dir, "design.yaml")
	write(t, cfg, []byte(fmt.Sprintf(`app: design
hooks:
  backup:
    before: [sh, -c, "echo stop-service >> %[1]s; touch %[2]s"]
    after: [sh, -c, "echo start-service >> %[1]s; rm -f %[2]s"]
components:
  - name: db
    command: [%[3]q, -Fc, -Z0, --no-sync, -f, "{path}", %[4]s]
    mode: pipe
    env: [PGHOST=%[5]s, PGPORT=%[6]d, PGUSER=%[7]s]
    restore: [%[8]q, --single-transaction, --exit-on-error, --no-owner, --dbname=%[4]s]
  - name: vault
    tree: %[9]s
`, log, stopped, pg.Bin("pg_dump"), pg.Database, pg.Host, pg.Port, pg.User, pg.Bin("pg_restore"), vault)), 0o600)
	mustCairn(t, nil, "config", "check", cfg)
	r := cairn(t, nil, "--config", cfg, "--set", fmt.Sprintf("components.db.command=[%q, -Fc, -f, '{path}', %s]", pg.Bin("pg_dump"), pg.Database), "config", "check")
	if r.code != 1 || !strings.Contains(r.stdout, "add --no-sync") {
		t.Errorf("config check of pg_dump -f {path} in mode pipe without --no-sync:\n%v", r)
	}

	before, files := pg.Query(t, query), captureTree(t, vault)
	b := decodeJSON[backupOut](t, mustCairn(t, nil, "--config", cfg, "backup", "--json"))

	// The export fails: the service is started again all the same, and no
	// snapshot is written.
	r = cairn(t, nil, "--config", cfg, "--set", "components.db.command=[sh, -c, 'echo export failed >&2; exit 3', '{path}']", "backup")
	if r.code != 1 || !strings.Contains(r.stderr, "no snapshot written") || !strings.Contains(r.stderr, "export failed") {
		t.Errorf("failing export: want exit 1 and no snapshot:\n%v", r)
	}
	if got := strings.Join(strings.Fields(string(readFile(t, log))), " "); got != "stop-service start-service stop-service start-service" {
		t.Errorf("hooks ran as %q", got)
	}
	if _, err := os.Stat(stopped); err == nil {
		t.Error("the service was left stopped")
	}

	pg.Exec(t, "DELETE FROM parts WHERE id > 1000")
	write(t, filepath.Join(vault, "projects", "new.PcbDoc"), []byte("after the backup"), 0o644)
	live, liveFiles := pg.Query(t, query), captureTree(t, vault)

	other := filepath.Join(dir, "restored-vault")
	restore := fmt.Sprintf("components.db.restore=[%q, --single-transaction, --exit-on-error, --no-owner, --dbname=%s]", pg.Bin("pg_restore"), copyDB.Database)
	mustCairn(t, nil, "--config", cfg, "--set", restore, "--set", "components.vault.tree="+other, "restore", b.ShortID)
	if got := copyDB.Query(t, query); got != before {
		t.Errorf("the copy database holds %s, want %s", got, before)
	}
	compareTrees(t, files, captureTree(t, other))
	if pg.Query(t, query) != live {
		t.Error("the live database was changed by a restore to another one")
	}
	compareTrees(t, liveFiles, captureTree(t, vault))
}

// TestConfigCheckOnThisHost: config check reports, in one pass with the
// file's own problems (a type error included), what it can find on this
// host without side effects: programs not on PATH, an unreadable password
// file, a missing tree, a malformed Elasticsearch URL. Before the fix a
// type error hid every other problem and nothing on the host was looked
// at.
func TestConfigCheckOnThisHost(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cairn.yaml")
	write(t, path, []byte(fmt.Sprintf(`app: alm
password_file: %[1]s/no-password
max_skew: [1, 2]
hooks:
  restore:
    after: [alm-admin-not-installed, activate]
components:
  - name: db
    command: [pg_dump_not_installed, alm]
    restore: [sh, -c, "pg_restore"]
  - name: search
    elasticsearch: {url: "localhost:9200", repository: cairn, location: /var/lib/es, indices: "mqm*"}
  - name: files
    tree: %[1]s/no-such-dir
`, dir)), 0o600)
	r := cairn(t, nil, "config", "check", path)
	if r.code != 1 {
		t.Fatalf("exit %d:\n%v", r.code, r)
	}
	for _, want := range []string{
		path + ":3:",
		"password_file " + dir + "/no-password: no such file or directory",
		`hooks.restore.after: alm-admin-not-installed: not found`,
		path + `:8: component "db": command: pg_dump_not_installed: not found`,
		path + `:11: component "search": elasticsearch url "localhost:9200": want http:// or https://`,
		path + `:13: component "files": tree ` + dir + "/no-such-dir: no such file or directory",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("config check does not report %q:\n%s", want, r.stdout)
		}
	}
}

// TestScriptContract: --json failures are JSON on stdout with the exit
// code, and -q prints nothing when a command succeeds. Before the fix a
// failed --json command left stdout empty and -q still printed the backup
// summary.
func TestScriptContract(t *testing.T) {
	testEnv(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "files", "f"), []byte("f"), 0o644)
	r := cairn(t, nil, "backup", "--json", "--tree", "files="+filepath.Join(dir, "missing"))
	e := decodeJSON[errorJSON](t, r)
	if r.code != 1 || e.ExitCode != 1 || !strings.Contains(e.Error, "missing") || !strings.Contains(r.stderr, e.Error) {
		t.Errorf("failed backup --json: %+v\n%v", e, r)
	}
	r = cairn(t, nil, "-r", filepath.Join(dir, "nowhere"), "snapshots", "--json")
	if e := decodeJSON[errorJSON](t, r); r.code != 10 || e.ExitCode != 10 {
		t.Errorf("no repository, --json: %+v\n%v", e, r)
	}
	for _, args := range [][]string{
		{"backup", "--tree", "files=" + filepath.Join(dir, "files")},
		{"restore", "latest", "--target", filepath.Join(dir, "restored")},
		{"check"},
		{"forget", "--keep-last", "5"},
	} {
		if r := mustCairn(t, nil, append([]string{"-q"}, args...)...); r.stdout != "" || r.stderr != "" {
			t.Errorf("cairn -q %s printed:\n%v", strings.Join(args, " "), r)
		}
	}
	if r := mustCairn(t, nil, "-q", "snapshots"); !strings.Contains(r.stdout, "1 snapshots") {
		t.Errorf("-q snapshots must still list them:\n%v", r)
	}
}

// TestBackupOnFailure: a failing dump runs the component's and the
// application's backup on_failure hooks, each told the error, and the
// after hooks still run (the service comes back); no snapshot is written.
func TestBackupOnFailure(t *testing.T) {
	testEnv(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	hook := func(s string) string { return fmt.Sprintf("[sh, -c, %q]", s+" >> "+log) }
	cfg := filepath.Join(dir, "cairn.yaml")
	write(t, cfg, []byte(fmt.Sprintf(`app: web
hooks:
  backup:
    before: %s
    after: %s
    on_failure: %s
components:
  - name: db
    command: [sh, -c, "echo disk full >&2; exit 2"]
    hooks:
      backup:
        after: %s
        on_failure: %s
`, hook("echo stop"), hook("echo start"), hook(`echo "app-on_failure $CAIRN_PHASE $CAIRN_HOOK"`),
		hook("echo db-after"), hook(`echo "db-on_failure $CAIRN_COMPONENT $CAIRN_ERROR"`))), 0o600)
	r := cairn(t, nil, "--config", cfg, "backup")
	if r.code != 1 || !strings.Contains(r.stderr, "no snapshot written") {
		t.Errorf("want exit 1, no snapshot:\n%v", r)
	}
	got := strings.Join(strings.Fields(string(readFile(t, log))), " ")
	if !strings.HasPrefix(got, "stop db-on_failure db ") || !strings.Contains(got, "disk full") ||
		!strings.HasSuffix(got, "db-after app-on_failure backup on_failure start") {
		t.Errorf("hooks ran as %q", got)
	}
	if n := countSnapshots(t); n != 0 {
		t.Errorf("%d snapshots", n)
	}
}
