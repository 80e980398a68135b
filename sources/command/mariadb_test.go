package command

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/dbtest"
)

// myFixture fills db with what a dump must carry exactly: utf8mb4 text with
// quotes, newlines, tabs and backslashes, NULLs, binary data, decimals,
// microsecond datetimes, an AUTO_INCREMENT counter, a view and a trigger.
func myFixture(t *testing.T, db *dbtest.MariaDB) {
	t.Helper()
	db.Exec(t, `
CREATE TABLE items (
	id INT PRIMARY KEY AUTO_INCREMENT,
	title VARCHAR(200) NOT NULL,
	body TEXT,
	data BLOB,
	price DECIMAL(12,4),
	created DATETIME(6),
	KEY items_title (title)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE audit (n INT) ENGINE=InnoDB;
CREATE TRIGGER items_audit AFTER INSERT ON items FOR EACH ROW INSERT INTO audit VALUES (NEW.id);
INSERT INTO items (title, body, data, price, created)
SELECT CONCAT('item ', seq),
	IF(seq % 7 = 0, NULL, CONCAT('line one\nline\ttwo \\ backslash \'quoted\' ', REPEAT('ü', seq % 5))),
	UNHEX(MD5(seq)),
	seq * 1.2345,
	TIMESTAMP'2024-01-01 00:00:00.123456' + INTERVAL seq MINUTE
FROM seq_1_to_5000;
DELETE FROM items WHERE id = 5000;
CREATE VIEW cheap AS SELECT id, title FROM items WHERE price < 100;
`)
}

// mySignature sums up the fixture's contents: equal signatures, equal rows.
func mySignature(t *testing.T, db *dbtest.MariaDB) string {
	t.Helper()
	return db.Query(t, `
SET SESSION group_concat_max_len = 1073741824;
SELECT COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', id, title, IFNULL(body, 'NULL'), HEX(data), price, created) ORDER BY id SEPARATOR '\n')) FROM items;
SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'items';
SELECT COUNT(*), SUM(n) FROM audit;
SELECT COUNT(*) FROM cheap;
SELECT ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE();`)
}

func TestMariaDBRoundTrip(t *testing.T) {
	my := dbs.MariaDB(t)
	src := my.NewDatabase(t)
	myFixture(t, src)
	want := mySignature(t, src)
	if !strings.HasPrefix(want, "4999\t") {
		t.Fatalf("fixture signature %q", want)
	}
	dumpArgv := func(extra ...string) []string {
		argv := append([]string{my.DumpBin()}, my.ClientArgs()...)
		argv = append(argv, "--single-transaction", "--routines", "--triggers", "--events")
		return append(append(argv, extra...), src.Database)
	}
	restore := func(dst *dbtest.MariaDB) Spec {
		return Spec{Argv: append(append([]string{my.ClientBin()}, my.ClientArgs()...), dst.Database)}
	}
	for _, tc := range []struct {
		name string
		pipe bool
		argv []string
	}{
		{"stdout", false, dumpArgv()},
		{"named pipe", true, dumpArgv("--result-file={path}")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := bounded(t, 30*time.Second)
			var s *Stream
			var err error
			if tc.pipe {
				s, err = StartWithPipe(ctx, Spec{Argv: tc.argv})
			} else {
				s, err = Start(ctx, Spec{Argv: tc.argv})
			}
			if err != nil {
				t.Fatal(err)
			}
			data, rerr, werr := readAll(t, ctx, s)
			if rerr != nil || werr != nil {
				t.Fatalf("read %v, wait %v\n%s", rerr, werr, s.Stderr())
			}
			if kind, compressed := s.Sniff(); kind != "" || compressed {
				t.Errorf("Sniff() = %q, %v for plain SQL", kind, compressed)
			}
			if !bytes.Contains(data, []byte("INSERT INTO `items`")) {
				t.Fatalf("dump lacks the rows: %.300s", data)
			}
			dst := my.NewDatabase(t)
			if err := RestoreFromReader(ctx, restore(dst), bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			if got := mySignature(t, dst); got != want {
				t.Errorf("restored database differs:\n got %s\nwant %s", got, want)
			}
		})
	}
	t.Run("dump of a missing database", func(t *testing.T) {
		ctx := bounded(t, 30*time.Second)
		argv := append(append([]string{my.DumpBin()}, my.ClientArgs()...), "--single-transaction", "no_such_db")
		s, err := Start(ctx, Spec{Argv: argv})
		if err != nil {
			t.Fatal(err)
		}
		_, _, werr := readAll(t, ctx, s)
		ee := isExitError(t, werr, 2, 0)
		if !strings.Contains(ee.Stderr, "Unknown database 'no_such_db'") {
			t.Errorf("error: %v", werr)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		ctx := bounded(t, 30*time.Second)
		argv := []string{my.DumpBin(), "--no-defaults", "-h", my.Host, "-P", strconv.Itoa(my.Port), "-u", my.User, "--password=wrong", src.Database}
		s, err := Start(ctx, Spec{Argv: argv})
		if err != nil {
			t.Fatal(err)
		}
		_, _, werr := readAll(t, ctx, s)
		if ee := isExitError(t, werr, 2, 0); !strings.Contains(ee.Stderr, "Access denied") {
			t.Errorf("error: %v", werr)
		}
	})
	t.Run("restore stops at a bad statement", func(t *testing.T) {
		ctx := bounded(t, 30*time.Second)
		dst := my.NewDatabase(t)
		err := RestoreFromReader(ctx, restore(dst), strings.NewReader("CREATE TABLE ok (a INT);\nINSERT INTO missing VALUES (1);\nCREATE TABLE after (a INT);\n"))
		ee := isExitError(t, err, 1, 0)
		if !strings.Contains(ee.Stderr, "doesn't exist") {
			t.Errorf("error: %v", err)
		}
		if got := dst.Query(t, "SHOW TABLES"); got != "ok" {
			t.Errorf("tables after the failed restore: %q", got)
		}
	})
}
