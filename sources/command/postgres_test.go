package command

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/dbtest"
)

// pgSource is a database with what a dump must carry exactly: text with
// newlines, tabs, backslashes and non-ASCII, NULLs, bytea, jsonb, numeric,
// timestamps, a sequence, an index and a view. It is made once and only
// read by the tests.
var pgSource struct {
	once sync.Once
	db   *dbtest.Postgres
	sig  string
}

func sourcePostgres(t *testing.T) (*dbtest.Postgres, string) {
	t.Helper()
	pg := dbs.Postgres(t)
	pgSource.once.Do(func() {
		// Not NewDatabase: the source outlives the test that makes it,
		// and goes with the server.
		db := pg.WithDatabase("cairn_source")
		pg.Exec(t, "CREATE DATABASE cairn_source")
		db.Exec(t, `
CREATE TABLE items (
	id serial PRIMARY KEY,
	title text NOT NULL,
	body text,
	data bytea,
	doc jsonb,
	price numeric(12,4),
	created timestamptz
);
INSERT INTO items (title, body, data, doc, price, created)
SELECT 'item ' || i,
	CASE WHEN i % 7 = 0 THEN NULL ELSE E'line one\nline\ttwo \\ backslash ''quoted'' ' || repeat('ü', i % 5) END,
	decode(md5(i::text), 'hex'),
	jsonb_build_object('i', i, 'tags', jsonb_build_array('a', 'b')),
	i * 1.2345,
	timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute'
FROM generate_series(1, 5000) AS i;
CREATE INDEX items_title ON items (title);
CREATE VIEW cheap AS SELECT id, title FROM items WHERE price < 100;
`)
		pgSource.db = db
		pgSource.sig = pgSignature(t, db)
	})
	if pgSource.db == nil {
		t.Fatal("the source database could not be made (see the first test that tried)")
	}
	return pgSource.db, pgSource.sig
}

// pgSignature sums up the source's contents: equal signatures, equal rows.
func pgSignature(t *testing.T, db *dbtest.Postgres) string {
	t.Helper()
	return db.Query(t, `
SELECT count(*), md5(string_agg(i::text, E'\n' ORDER BY id)) FROM items i;
SELECT last_value FROM items_id_seq;
SELECT count(*) FROM cheap;
SELECT indexdef FROM pg_indexes WHERE tablename = 'items' ORDER BY indexname;`)
}

func pgDump(pg *dbtest.Postgres, args ...string) []string {
	argv := append([]string{pg.Bin("pg_dump")}, pg.ConnArgs()...)
	return append(append(argv, args...), pg.Database)
}

// pgRestore restores a custom or directory archive (path "" for stdin),
// stopping at the first error, all or nothing.
func pgRestore(pg *dbtest.Postgres, path string) []string {
	argv := append([]string{pg.Bin("pg_restore")}, pg.ConnArgs()...)
	argv = append(argv, "--exit-on-error", "--single-transaction", "--no-owner", "-d", pg.Database)
	if path != "" {
		argv = append(argv, path)
	}
	return argv
}

// psql runs a plain SQL script (from stdin, or -f path), all or nothing;
// without ON_ERROR_STOP psql exits 0 after failed statements.
func psql(pg *dbtest.Postgres, args ...string) []string {
	argv := append([]string{pg.Bin("psql")}, pg.ConnArgs()...)
	argv = append(argv, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-d", pg.Database)
	return append(argv, args...)
}

func TestPostgresStreamRoundTrip(t *testing.T) {
	src, want := sourcePostgres(t)
	for _, tc := range []struct {
		name       string
		dump       []string
		pipe       bool // StartWithPipe with -f {path}
		restore    func(*dbtest.Postgres) []string
		kind       string
		compressed bool
	}{
		{"custom -Z0, pg_restore", pgDump(src, "-Fc", "-Z0"), false, func(db *dbtest.Postgres) []string { return pgRestore(db, "") }, KindPGCustom, false},
		{"plain, psql", pgDump(src, "-Fp"), false, func(db *dbtest.Postgres) []string { return psql(db) }, "", false},
		{"custom default compression", pgDump(src, "-Fc"), false, func(db *dbtest.Postgres) []string { return pgRestore(db, "") }, KindPGCustom, true},
		// --no-sync: pg_dump fsyncs its output file, and fsync of a pipe
		// fails (EINVAL); see TestPostgresFailures.
		{"custom -Z0 through a named pipe", pgDump(src, "-Fc", "-Z0", "--no-sync", "-f", "{path}"), true, func(db *dbtest.Postgres) []string { return pgRestore(db, "") }, KindPGCustom, false},
		{"plain through a named pipe", pgDump(src, "-Fp", "-f", "{path}"), true, func(db *dbtest.Postgres) []string { return psql(db) }, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := bounded(t, 30*time.Second)
			spec := Spec{Argv: tc.dump}
			var s *Stream
			var err error
			if tc.pipe {
				s, err = StartWithPipe(ctx, spec)
			} else {
				s, err = Start(ctx, spec)
			}
			if err != nil {
				t.Fatal(err)
			}
			data, rerr, werr := readAll(t, ctx, s)
			if rerr != nil || werr != nil {
				t.Fatalf("read %v, wait %v\n%s", rerr, werr, s.Stderr())
			}
			if kind, compressed := s.Sniff(); kind != tc.kind || compressed != tc.compressed {
				t.Errorf("Sniff() = %q, %v; want %q, %v (header % x)", kind, compressed, tc.kind, tc.compressed, data[:16])
			}
			if kind, compressed := Sniff(data); kind != tc.kind || compressed != tc.compressed {
				t.Errorf("Sniff(data) = %q, %v", kind, compressed)
			}

			dst := dbs.Postgres(t).NewDatabase(t)
			if err := RestoreFromReader(ctx, Spec{Argv: tc.restore(dst)}, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			if got := pgSignature(t, dst); got != want {
				t.Errorf("restored database differs:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestPostgresDirectoryRoundTrip(t *testing.T) {
	src, want := sourcePostgres(t)
	for _, tc := range []struct {
		name       string
		args       []string
		compressed bool
	}{
		{"-Fd -Z0", []string{"-Fd", "-Z0", "-f", "{dir}"}, false},
		{"-Fd default compression", []string{"-Fd", "-f", "{dir}"}, true},
		{"-Fd parallel", []string{"-Fd", "-Z0", "-j", "2", "-f", "{dir}"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := bounded(t, 30*time.Second)
			dir := filepath.Join(t.TempDir(), "dump")
			d, err := RunToDir(ctx, Spec{Argv: pgDump(src, tc.args...), Clean: true}, dir)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dir, "toc.dat")); err != nil {
				t.Fatalf("no toc.dat: %v", err)
			}
			if kind, compressed := d.Sniff(); kind != KindPGDirectory || compressed != tc.compressed {
				t.Errorf("Sniff() = %q, %v; want %q, %v", kind, compressed, KindPGDirectory, tc.compressed)
			}
			// Here the caller archives dir as a tree; pg_restore reads
			// the directory back as the restorer would write it.
			dst := dbs.Postgres(t).NewDatabase(t)
			if err := Run(ctx, Spec{Argv: pgRestore(dst, dir)}); err != nil {
				t.Fatal(err)
			}
			if got := pgSignature(t, dst); got != want {
				t.Errorf("restored database differs:\n got %s\nwant %s", got, want)
			}
			if err := d.Done(); err != nil {
				t.Fatal(err)
			}
			if names := entries(t, dir); len(names) != 0 {
				t.Errorf("Done left %v", names)
			}
		})
	}
}

func TestPostgresFailures(t *testing.T) {
	src, _ := sourcePostgres(t)
	ctx := bounded(t, 30*time.Second)
	t.Run("pg_dump of a missing database", func(t *testing.T) {
		s, err := Start(ctx, Spec{Argv: pgDump(src.WithDatabase("no_such_db"), "-Fc", "-Z0")})
		if err != nil {
			t.Fatal(err)
		}
		_, _, werr := readAll(t, ctx, s)
		ee := isExitError(t, werr, 1, 0)
		if !strings.HasPrefix(werr.Error(), "command: pg_dump exited with status 1: pg_dump: error:") ||
			!strings.Contains(ee.Stderr, `database "no_such_db" does not exist`) {
			t.Errorf("error: %v", werr)
		}
	})
	t.Run("pg_dump to a named pipe, server unreachable", func(t *testing.T) {
		argv := []string{src.Bin("pg_dump"), "-h", "127.0.0.1", "-p", "1", "-f", "{path}", "app"}
		s, err := StartWithPipe(ctx, Spec{Argv: argv})
		if err != nil {
			t.Fatal(err)
		}
		_, _, werr := readAll(t, ctx, s)
		if ee := isExitError(t, werr, 1, 0); !strings.Contains(ee.Stderr, "Connection refused") {
			t.Errorf("error: %v", werr)
		}
	})
	t.Run("pg_dump -Fc to a named pipe without --no-sync", func(t *testing.T) {
		// pg_dump fsyncs a custom-format output file when it is done,
		// and fsync of a pipe fails: the whole dump went through, but
		// the exit status says it failed, so it must not count.
		s, err := StartWithPipe(ctx, Spec{Argv: pgDump(src, "-Fc", "-Z0", "-f", "{path}")})
		if err != nil {
			t.Fatal(err)
		}
		_, _, werr := readAll(t, ctx, s)
		if ee := isExitError(t, werr, 1, 0); !strings.Contains(ee.Stderr, "could not fsync file") {
			t.Errorf("error: %v", werr)
		}
	})
	t.Run("missing pg_dump", func(t *testing.T) {
		_, err := Start(ctx, Spec{Argv: []string{"pg_dumpx", "app"}})
		if !errors.Is(err, ErrNotFound) || err.Error() != "command: command not found: pg_dumpx" {
			t.Errorf("error: %v", err)
		}
	})
	t.Run("psql restore of bad SQL", func(t *testing.T) {
		dst := dbs.Postgres(t).NewDatabase(t)
		err := RestoreFromReader(ctx, Spec{Argv: psql(dst)}, strings.NewReader("CREATE TABLE ok (a int);\nSELEC 1;\n"))
		ee := isExitError(t, err, 3, 0)
		if !strings.Contains(ee.Stderr, `syntax error at or near "SELEC"`) {
			t.Errorf("error: %v", err)
		}
		if got := dst.Query(t, "SELECT to_regclass('ok') IS NULL"); got != "t" {
			t.Errorf("the statement before the error was committed")
		}
	})
	t.Run("pg_restore of a truncated archive", func(t *testing.T) {
		full := dump(t, ctx, Spec{Argv: pgDump(src, "-Fc", "-Z0")})
		dst := dbs.Postgres(t).NewDatabase(t)
		err := RestoreFromReader(ctx, Spec{Argv: pgRestore(dst, "")}, bytes.NewReader(full[:len(full)/2]))
		if ee := isExitError(t, err, 1, 0); !strings.Contains(ee.Stderr, "pg_restore: error:") {
			t.Errorf("error: %v", err)
		}
	})
	t.Run("reading the dump fails mid-way", func(t *testing.T) {
		dst := dbs.Postgres(t).NewDatabase(t)
		damaged := errors.New("pack 1a2b3c4d: blob 5e6f: authentication failed")
		r := io.MultiReader(strings.NewReader("CREATE TABLE partial (a int);\nINSERT INTO partial VALUES (1);\n"), errReader{damaged})
		err := RestoreFromReader(ctx, Spec{Argv: psql(dst)}, r)
		if !errors.Is(err, damaged) || !strings.Contains(err.Error(), "killed so that it does not restore a truncated dump") {
			t.Errorf("error: %v", err)
		}
		if got := dst.Query(t, "SELECT to_regclass('partial') IS NULL"); got != "t" {
			t.Errorf("a truncated dump was committed")
		}
	})
}

func TestPostgresRestoreViaFile(t *testing.T) {
	src, want := sourcePostgres(t)
	ctx := bounded(t, 30*time.Second)
	data := dump(t, ctx, Spec{Argv: pgDump(src, "-Fp")})
	dst := dbs.Postgres(t).NewDatabase(t)
	tmp := t.TempDir()
	if err := RestoreViaFile(ctx, Spec{Argv: psql(dst, "-f", "{path}")}, bytes.NewReader(data), tmp); err != nil {
		t.Fatal(err)
	}
	if got := pgSignature(t, dst); got != want {
		t.Errorf("restored database differs:\n got %s\nwant %s", got, want)
	}
	if names := entries(t, tmp); len(names) != 0 {
		t.Errorf("left in the temporary directory: %v", names)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
