package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/dbtest"
	"github.com/cairn-backup/cairn/internal/esemu"
	es8 "github.com/elastic/go-elasticsearch/v8"
)

// appEnv is a whole application: a PostgreSQL database, an Elasticsearch
// cluster (the emulator: no real cluster can be installed here) and a file
// repository, described by one cairn.yaml.
type appEnv struct {
	t      *testing.T
	emu    *esemu.Server
	es     *es8.Client
	files  string
	config string
	log    string // hooks append here
	pg     *dbtest.Postgres
	query  func() string
}

func newAppEnv(t *testing.T, dumpCmd string) *appEnv {
	pg := dbs.Postgres(t).NewDatabase(t)
	testEnv(t)
	pg.Exec(t, `CREATE TABLE issues (id int PRIMARY KEY, title text, status text);
		INSERT INTO issues SELECT i, 'issue ' || i, 'open' FROM generate_series(1, 5000) i;`)
	emu := esemu.Start(t, esemu.Options{})
	client, err := es8.NewClient(es8.Config{Addresses: []string{emu.URL()}})
	if err != nil {
		t.Fatal(err)
	}
	a := &appEnv{t: t, emu: emu, es: client, pg: pg, files: filepath.Join(t.TempDir(), "storage"), log: filepath.Join(t.TempDir(), "hooks.log")}
	a.query = func() string {
		return pg.Query(t, "SELECT count(*), md5(string_agg(id || title || status, ',' ORDER BY id)) FROM issues")
	}
	for i := range 20 {
		a.putDoc("mqm_sp1001_issues", strconv.Itoa(i), fmt.Sprintf(`{"title":"issue %d"}`, i))
	}
	a.putDoc("other_index", "1", `{"keep":"out of the pattern"}`)
	write(t, filepath.Join(a.files, "attachments", "a.bin"), randomBytes(5, 200<<10), 0o644)
	write(t, filepath.Join(a.files, "scripts", "s.sh"), []byte("echo hi\n"), 0o750)

	if dumpCmd == "" {
		dumpCmd = fmt.Sprintf("[%q, --format=custom, -Z0, --dbname=%s]", pg.Bin("pg_dump"), pg.Database)
	}
	a.config = filepath.Join(t.TempDir(), "cairn.yaml")
	cfg := fmt.Sprintf(`# the ALM space sp1001
app: alm-sp1001
max_skew: 5m
hooks:
  before: [sh, -c, "echo before >> %[1]s"]
  after: [sh, -c, "echo after >> %[1]s"]
components:
  - name: db
    command: %[2]s
    env: [PGHOST=%[3]s, PGPORT=%[4]d, PGUSER=%[5]s]
    restore: [%[6]q, --clean, --if-exists, --single-transaction, --exit-on-error, --dbname=%[7]s]
    hooks:
      after: [sh, -c, "echo db-after >> %[1]s"]
  - name: search
    elasticsearch:
      url: %[8]s
      repository: cairn
      location: %[9]s
      indices: "mqm_sp1001*"
  - name: files
    tree: %[10]s
    delete: true
`, a.log, dumpCmd, pg.Host, pg.Port, pg.User, pg.Bin("pg_restore"), pg.Database, emu.URL(), emu.RepoDir("cairn"), a.files)
	if err := os.WriteFile(a.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *appEnv) putDoc(index, id, body string) {
	a.t.Helper()
	putDoc(a.t, a.es, index, id, body)
}

// putDoc indexes one document, visible at once (refresh).
func putDoc(t *testing.T, es *es8.Client, index, id, body string) {
	t.Helper()
	res, err := es.Index(index, strings.NewReader(body), es.Index.WithDocumentID(id), es.Index.WithRefresh("true"))
	if err != nil || res.IsError() {
		t.Fatalf("index %s/%s: %v %v", index, id, err, res)
	}
	res.Body.Close()
}

func (a *appEnv) docs(index string) string {
	a.t.Helper()
	d, err := a.emu.Docs(index)
	if err != nil {
		a.t.Fatal(err)
	}
	b, _ := json.Marshal(d) // map keys sorted: a stable fingerprint
	return string(b)
}

func (a *appEnv) hooks() string {
	b, _ := os.ReadFile(a.log)
	return strings.Join(strings.Fields(string(b)), " ")
}

// TestApplicationRoundTrip is the mission in one test: back up a database,
// an Elasticsearch index pattern and a file repository through one config,
// change all three, and restore the first snapshot to the live targets.
func TestApplicationRoundTrip(t *testing.T) {
	a := newAppEnv(t, "")
	if r := mustCairn(t, nil, "config", "check", a.config); !strings.Contains(r.stdout, "3 components") {
		t.Fatalf("config check: %v", r)
	}
	db1, issues1, other1, files1 := a.query(), a.docs("mqm_sp1001_issues"), a.docs("other_index"), captureTree(t, a.files)

	b1 := decodeJSON[backupOut](t, mustCairn(t, nil, "--config", a.config, "backup", "--json"))
	if got := a.hooks(); got != "before db-after after" {
		t.Errorf("hooks ran as %q", got)
	}
	names := []string{}
	for _, c := range b1.Components {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "db,search,files" {
		t.Fatalf("components %v, want db,search,files in order", names)
	}

	// Nothing changed: the second backup adds almost nothing.
	b2 := decodeJSON[backupOut](t, mustCairn(t, nil, "--config", a.config, "backup", "--json"))
	t.Logf("first backup added %d bytes, an unchanged second one %d", b1.AddedBytes, b2.AddedBytes)
	if b2.AddedBytes > b1.AddedBytes/10 {
		t.Errorf("unchanged application: second backup added %d bytes (first %d)", b2.AddedBytes, b1.AddedBytes)
	}

	// Everything changes.
	a.pg.Exec(t, "UPDATE issues SET status = 'closed' WHERE id % 3 = 0; DELETE FROM issues WHERE id > 4900;")
	a.putDoc("mqm_sp1001_issues", "3", `{"title":"edited"}`)
	a.putDoc("mqm_sp1001_issues", "99", `{"title":"new"}`)
	a.putDoc("other_index", "2", `{"keep":"added after"}`)
	write(t, filepath.Join(a.files, "attachments", "late.bin"), []byte("added after the backup"), 0o644)
	if err := os.Remove(filepath.Join(a.files, "scripts", "s.sh")); err != nil {
		t.Fatal(err)
	}
	mustCairn(t, nil, "--config", a.config, "backup") // a third snapshot, with the changes
	if a.query() == db1 || a.docs("mqm_sp1001_issues") == issues1 {
		t.Fatal("the changes did not take")
	}

	r := mustCairn(t, nil, "--config", a.config, "restore", "--snapshot", b1.ShortID)
	if !strings.Contains(r.stdout, "live targets") {
		t.Errorf("restore output: %v", r)
	}
	if got := a.docs("mqm_sp1001_issues"); got != issues1 {
		t.Errorf("search index after restore:\n got %s\nwant %s", got, issues1)
	}
	if got := a.docs("other_index"); got == other1 {
		t.Error("an index outside the pattern was restored too")
	}
	compareTrees(t, files1, captureTree(t, a.files))
	if got := a.query(); got != db1 {
		t.Errorf("database after restore: %s, want %s", got, db1)
	}
}

// TestApplicationBackupFailures: a dump that fails in any way, or an
// Elasticsearch snapshot that is FAILED, PARTIAL or unreachable, leaves no
// snapshot, and the after hooks still run.
func TestApplicationBackupFailures(t *testing.T) {
	tests := []struct {
		name, dump string
		setup      func(*appEnv)
		msg        string
	}{
		{"dump exits 1", `[sh, -c, "echo partial; echo 'pg_dump: error: connection refused' >&2; exit 1"]`, nil, "connection refused"},
		{"dump killed", `[sh, -c, "echo partial; kill -9 $$"]`, nil, "signal"},
		{"dump missing", `[pg_dump_not_installed]`, nil, "command not found"},
		{"elasticsearch FAILED", "", func(a *appEnv) { a.emu.FailNextSnapshot("disk full") }, "disk full"},
		{"elasticsearch PARTIAL", "", func(a *appEnv) { a.emu.FailShard("mqm_sp1001_issues", 0) }, "partial"},
		{"elasticsearch unreachable", "", func(a *appEnv) { a.emu.Unreachable() }, "search"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAppEnv(t, tc.dump)
			if tc.setup != nil {
				tc.setup(a)
			}
			r := cairn(t, nil, "--config", a.config, "backup")
			if r.code != 1 || !strings.Contains(strings.ToLower(r.stderr), strings.ToLower(tc.msg)) || !strings.Contains(r.stderr, "no snapshot written") {
				t.Errorf("want exit 1, %q and no snapshot:\n%v", tc.msg, r)
			}
			if n := countSnapshots(t); n != 0 {
				t.Errorf("%d snapshots written", n)
			}
			if got := a.hooks(); !strings.HasPrefix(got, "before") || !strings.HasSuffix(got, "after") {
				t.Errorf("hooks ran as %q; the after hook must run on failure", got)
			}
		})
	}
}

func TestConfigCheckReportsEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cairn.yaml")
	write(t, path, []byte(`app: alm
components:
  - name: db
    command: [pg_dump]
    tree: /srv
  - name: db
    tree: relative/path
  - name: search
    elasticsearch:
      url: http://127.0.0.1:9200
  - name: bad/name
    tree: /srv/x
    colour: blue
`), 0o600)
	r := cairn(t, nil, "config", "check", path)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%v", r.code, r)
	}
	if !strings.Contains(r.stdout, path+`:13: component "bad/name": unknown key "colour"`) {
		t.Errorf("unknown field not reported with its line:\n%v", r)
	}
	write(t, path, []byte(`app: alm
components:
  - name: db
    command: [pg_dump]
    tree: /srv
  - name: db
    tree: relative/path
  - name: search
    elasticsearch:
      url: http://127.0.0.1:9200
`), 0o600)
	r = cairn(t, nil, "config", "check", path)
	for _, want := range []string{
		path + ":3: component \"db\": give exactly one of command, elasticsearch or tree",
		path + ":6: component \"db\" is also defined at line 3",
		path + ":6: component \"db\": tree \"relative/path\" must be an absolute path",
		path + ":8: component \"search\": elasticsearch needs url, repository, location and indices",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("missing %q in:\n%s", want, r.stdout)
		}
	}
}

// TestConfiguredReplication: replicate: targets receive each new snapshot
// after a configured backup; a failing replication reports that the
// snapshot was written and exits 1.
func TestConfiguredReplication(t *testing.T) {
	testEnv(t)
	dir := t.TempDir()
	files := filepath.Join(dir, "files")
	write(t, filepath.Join(files, "a.txt"), []byte("replicate me"), 0o644)
	offsite := filepath.Join(dir, "offsite")
	pwFile := filepath.Join(dir, "offsite-password")
	write(t, pwFile, []byte("offsite secret\n"), 0o600)
	t.Setenv("CAIRN_PASSWORD", "offsite secret")
	mustCairn(t, nil, "-r", offsite, "init")
	t.Setenv("CAIRN_PASSWORD", testPassword)

	cfg := filepath.Join(dir, "cairn.yaml")
	write(t, cfg, []byte(fmt.Sprintf("app: web\ncomponents:\n  - name: files\n    tree: %s\nreplicate:\n  - repository: %s\n    password_file: %s\n", files, offsite, pwFile)), 0o600)
	b := decodeJSON[backupOut](t, mustCairn(t, nil, "--config", cfg, "backup", "--json"))

	t.Setenv("CAIRN_PASSWORD", "offsite secret")
	snaps := decodeJSON[[]snapshotOut](t, mustCairn(t, nil, "-r", offsite, "snapshots", "--json"))
	t.Setenv("CAIRN_PASSWORD", testPassword)
	if len(snaps) != 1 || !snaps[0].Time.Equal(b.Time) {
		t.Fatalf("offsite snapshots %+v after backup %s", snaps, b.ShortID)
	}

	write(t, cfg, []byte(fmt.Sprintf("components:\n  - name: files\n    tree: %s\nreplicate:\n  - repository: %s\n", files, filepath.Join(dir, "missing"))), 0o600)
	r := cairn(t, nil, "--config", cfg, "backup")
	if r.code != 4 || !strings.Contains(r.stderr, "written, but replication to") {
		t.Errorf("want exit 4 saying the snapshot was written but not replicated:\n%v", r)
	}
	if n := countSnapshots(t); n != 2 {
		t.Errorf("%d local snapshots, want 2", n)
	}
}

// TestCommandModes takes a real PostgreSQL database through each way a
// dump tool can be driven from cairn.yaml: stdout, a named pipe ({path}),
// a directory ({dir}, pg_dump -Fd), and back through stdin, a file
// ({path}, restore_via_file) or a directory ({dir}).
func TestCommandModes(t *testing.T) {
	pg := dbs.Postgres(t).NewDatabase(t)
	testEnv(t)
	pg.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 3000) i;`)
	query := "SELECT count(*), md5(string_agg(id || v, ',' ORDER BY id)) FROM t"
	before := pg.Query(t, query)
	dumpDir := filepath.Join(t.TempDir(), "dump")
	env := fmt.Sprintf("[PGHOST=%s, PGPORT=%d, PGUSER=%s]", pg.Host, pg.Port, pg.User)
	dump, restore := fmt.Sprintf("%q", pg.Bin("pg_dump")), fmt.Sprintf("%q", pg.Bin("pg_restore"))
	common := "--clean, --if-exists, --single-transaction, --exit-on-error, --dbname=" + pg.Database
	tests := []struct{ name, component string }{
		{"stream, restore through a file", fmt.Sprintf(`command: [%s, -Fc, -Z0, %s]
    restore: [%s, %s, "{path}"]
    restore_via_file: true`, dump, pg.Database, restore, common)},
		{"named pipe", fmt.Sprintf(`command: [%s, -Fc, -Z0, --no-sync, -f, "{path}", %s]
    mode: pipe
    restore: [%s, %s]`, dump, pg.Database, restore, common)},
		{"directory", fmt.Sprintf(`command: [%s, -Fd, -Z0, --no-sync, -f, "{dir}/db", %s]
    mode: dir
    dir: %s
    clean: true
    restore: [%s, %s, "{dir}/db"]`, dump, pg.Database, dumpDir, restore, common)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "cairn.yaml")
			write(t, cfg, []byte("components:\n  - name: db\n    env: "+env+"\n    "+tc.component+"\n"), 0o600)
			mustCairn(t, nil, "config", "check", cfg)
			b := decodeJSON[backupOut](t, mustCairn(t, nil, "--config", cfg, "backup", "--json"))
			pg.Exec(t, "DELETE FROM t WHERE id % 2 = 0; UPDATE t SET v = 'x' WHERE id < 10;")
			if pg.Query(t, query) == before {
				t.Fatal("the change did not take")
			}
			mustCairn(t, nil, "--config", cfg, "restore", "--snapshot", b.ShortID)
			if got := pg.Query(t, query); got != before {
				t.Errorf("after restore %s, want %s", got, before)
			}
		})
	}
}
