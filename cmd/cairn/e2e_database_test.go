package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/dbtest"
	"github.com/cairn-backup/cairn/internal/s3test"
)

var dbs dbtest.Shared

func TestMain(m *testing.M) {
	// When a process test re-executes this binary as the cairn command.
	asCairn()
	code := s3test.Main(m) // runs the tests, then stops MinIO if one started
	dbs.Close()
	os.Exit(code)
}

// TestPostgresRoundTrip backs up a real PostgreSQL database with pg_dump
// through --command, together with a file tree, changes both, and restores
// the first snapshot: the database through pg_restore, the files into a
// directory. Rows and files are exactly as at the first backup.
func TestPostgresRoundTrip(t *testing.T) {
	pg := dbs.Postgres(t).NewDatabase(t)
	testEnv(t)
	t.Setenv("PGHOST", pg.Host)
	t.Setenv("PGPORT", strconv.Itoa(pg.Port))
	t.Setenv("PGUSER", pg.User)
	pg.Exec(t, `CREATE TABLE issues (id int PRIMARY KEY, title text, status text, body bytea);
		INSERT INTO issues SELECT i, 'issue ' || i, 'open', decode(md5(i::text), 'hex') FROM generate_series(1, 20000) i;`)
	const query = "SELECT count(*), md5(string_agg(id || title || status || encode(body, 'hex'), ',' ORDER BY id)) FROM issues"
	before := pg.Query(t, query)

	src := filepath.Join(t.TempDir(), "storage")
	write(t, filepath.Join(src, "attachments", "1.bin"), randomBytes(1, 300<<10), 0o644)
	dump := shellQuote(pg.Bin("pg_dump")) + " --format=custom -Z0 --dbname=" + pg.Database
	b1 := decodeJSON[backupOut](t, mustCairn(t, nil, "backup", "--json", "--command", "db="+dump, "--tree", "files="+src))
	if b1.Components[0].Name != "db" || b1.Components[0].Size == 0 {
		t.Fatalf("db component: %+v", b1.Components[0])
	}

	// The application moves on: rows change, a file is added.
	pg.Exec(t, `UPDATE issues SET status = 'closed' WHERE id % 7 = 0; DELETE FROM issues WHERE id > 19000;
		INSERT INTO issues VALUES (50000, 'new', 'open', NULL);`)
	write(t, filepath.Join(src, "attachments", "2.bin"), []byte("added later"), 0o644)
	b2 := decodeJSON[backupOut](t, mustCairn(t, nil, "backup", "--json", "--command", "db="+dump, "--tree", "files="+src))
	if b2.AddedBytes >= b1.AddedBytes {
		t.Errorf("second backup added %d bytes, first %d: no dedup", b2.AddedBytes, b1.AddedBytes)
	}
	if pg.Query(t, query) == before {
		t.Fatal("the change did not change the table")
	}

	restore := shellQuote(pg.Bin("pg_restore")) + " --clean --if-exists --single-transaction --exit-on-error --dbname=" + pg.Database
	target := filepath.Join(t.TempDir(), "restore")
	mustCairn(t, nil, "restore", "--snapshot", b1.ShortID, "--command", "db="+restore, "--target", target)
	if got := pg.Query(t, query); got != before {
		t.Errorf("after restore: %s, want %s", got, before)
	}
	if _, err := os.Stat(filepath.Join(target, "files", "attachments", "2.bin")); !os.IsNotExist(err) {
		t.Errorf("file added after the first backup was restored: %v", err)
	}
	if _, err := os.Stat(filepath.Join(target, "db")); !os.IsNotExist(err) {
		t.Errorf("the piped component was also written to the target: %v", err)
	}

	t.Run("failing restore command", func(t *testing.T) {
		r := cairn(t, nil, "restore", "--snapshot", b1.ShortID, "--component", "db", "--command", "db="+shellQuote(pg.Bin("pg_restore"))+" --dbname=no_such_database")
		if r.code != 1 || !strings.Contains(r.stderr, "no_such_database") {
			t.Errorf("want exit 1 naming the database:\n%v", r)
		}
	})
	t.Run("a tree cannot be piped", func(t *testing.T) {
		r := cairn(t, nil, "restore", "--snapshot", b1.ShortID, "--command", "files=cat")
		if r.code != 1 || !strings.Contains(r.stderr, "only a stream can be piped") {
			t.Errorf("%v", r)
		}
	})
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// TestMariaDBRoundTrip is the same round trip with mariadb-dump in and
// mariadb out: the command source is not PostgreSQL-shaped.
func TestMariaDBRoundTrip(t *testing.T) {
	my := dbs.MariaDB(t).NewDatabase(t)
	testEnv(t)
	my.Exec(t, `CREATE TABLE issues (id int PRIMARY KEY, title varchar(100), status varchar(10));
		INSERT INTO issues SELECT seq, CONCAT('issue ', seq), 'open' FROM seq_1_to_20000;`)
	const query = "SELECT COUNT(*), MD5(GROUP_CONCAT(id, title, status ORDER BY id SEPARATOR ',')) FROM issues"
	before := my.Query(t, "SET SESSION group_concat_max_len = 100000000; "+query)

	conn := shellQuote(my.ClientArgs()[0])
	dump := shellQuote(my.DumpBin()) + " " + conn + " --single-transaction " + my.Database
	b1 := decodeJSON[backupOut](t, mustCairn(t, nil, "backup", "--json", "--command", "db="+dump))

	my.Exec(t, "UPDATE issues SET status = 'closed' WHERE id % 3 = 0; DELETE FROM issues WHERE id < 100;")
	if my.Query(t, "SET SESSION group_concat_max_len = 100000000; "+query) == before {
		t.Fatal("the change did not change the table")
	}
	restore := shellQuote(my.ClientBin()) + " " + conn + " " + my.Database
	mustCairn(t, nil, "restore", "--snapshot", b1.ShortID, "--command", "db="+restore)
	if got := my.Query(t, "SET SESSION group_concat_max_len = 100000000; "+query); got != before {
		t.Errorf("after restore: %s, want %s", got, before)
	}
}
