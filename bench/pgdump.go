//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/internal/dbtest"
)

// The pgdump data set: a real pg_dump (plain format) of a throwaway
// PostgreSQL holding pgbench's tables and an application table, taken
// twice, before and after a round of pgbench transactions and an update
// of 1% of the application's rows. The server is the one the dump-source
// tests use (internal/dbtest: initdb in a temp dir, a free port on
// 127.0.0.1, fsync off) and lives only while the dumps are taken; the two
// dumps are kept under <dir>/pgdump and reused like the generated data.

// pgGenVersion names the recipe below; bump it when the SQL or the pgbench
// options change, so old dumps are not reused.
const pgGenVersion = 1

// pgAppRowsPerScale sizes the application table from -pg-scale: 20,000
// rows (about 7 MB of dump) per pgbench scale unit (100,000 accounts, about
// 10 MB of dump), so the application is about 40% of the dump and its text
// compresses like real data, unlike pgbench's blank-padded filler.
const pgAppRowsPerScale = 20000

type pgParams struct {
	Version int    `json:"generator_version"`
	Seed    uint64 `json:"seed"`
	Scale   int    `json:"pgbench_scale"`
}

// pgStamp describes the two dumps; written once they are complete.
type pgStamp struct {
	Params       pgParams `json:"params"`
	Server       string   `json:"server"` // pg_dump --version
	AppRows      int64    `json:"app_rows_v1"`
	AppUpdated   int64    `json:"app_rows_updated"`
	AppInserted  int64    `json:"app_rows_inserted"`
	Transactions int64    `json:"pgbench_transactions"`
	V1Bytes      int64    `json:"v1_bytes"`
	V2Bytes      int64    `json:"v2_bytes"`
	V1SHA        string   `json:"v1_sha256"`
	V2SHA        string   `json:"v2_sha256"`
	GenSeconds   float64  `json:"generation_seconds"`
}

func (l layout) pgRoot() string  { return filepath.Join(l.root, "pgdump") }
func (l layout) pgV1() string    { return filepath.Join(l.root, "pgdump", "v1", "app.sql") }
func (l layout) pgV2() string    { return filepath.Join(l.root, "pgdump", "v2", "app.sql") }
func (l layout) pgLive() string  { return filepath.Join(l.root, "pgdump", "live", "app.sql") }
func (l layout) pgStamp() string { return filepath.Join(l.root, "pgdump", "stamp.json") }

// errNoPostgres says the machine has no PostgreSQL to dump; the data set is
// skipped with this message.
var errNoPostgres = errors.New("PostgreSQL binaries (initdb, postgres, pgbench, pg_dump) not found in /usr/lib/postgresql/*/bin or PATH: run scripts/install-databases.sh (Debian: apt-get install postgresql postgresql-contrib)")

// findPostgres checks that initdb, postgres, pgbench and pg_dump are
// installed side by side, where dbtest looks for them.
func findPostgres() error {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		ok := true
		for _, b := range []string{"initdb", "postgres", "pgbench", "pg_dump"} {
			if _, err := os.Stat(filepath.Join(d, b)); err != nil {
				ok = false
			}
		}
		if ok {
			return nil
		}
	}
	return errNoPostgres
}

// preparePGDump returns the stamp of dumps matching p, taking them unless
// a previous run left them complete.
func preparePGDump(ctx context.Context, l layout, p pgParams, logf func(string, ...any)) (*pgStamp, bool, error) {
	if b, err := os.ReadFile(l.pgStamp()); err == nil {
		var old pgStamp
		if json.Unmarshal(b, &old) == nil && old.Params == p {
			if checkSize(l.pgV1(), old.V1Bytes) == nil && checkSize(l.pgV2(), old.V2Bytes) == nil {
				logf("pgdump: reusing %s (pgbench scale %d)", l.pgRoot(), p.Scale)
				return &old, true, nil
			}
		}
	}
	if err := findPostgres(); err != nil {
		return nil, false, err
	}
	if err := os.RemoveAll(l.pgRoot()); err != nil {
		return nil, false, err
	}
	logf("pgdump: starting a throwaway PostgreSQL, pgbench -i -s %d plus %d application rows...", p.Scale, int64(p.Scale)*pgAppRowsPerScale)
	start := time.Now()
	st, err := generatePGDump(ctx, l, p, logf)
	if err != nil {
		return nil, false, fmt.Errorf("pgdump: %w", err)
	}
	st.GenSeconds = time.Since(start).Seconds()
	b, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		return nil, false, err
	}
	if err := writeFileAtomic(l.pgStamp(), b); err != nil {
		return nil, false, err
	}
	logf("pgdump: v1 %.1f MiB, v2 %.1f MiB, taken in %.0f s", float64(st.V1Bytes)/mib, float64(st.V2Bytes)/mib, st.GenSeconds)
	return st, false, nil
}

func generatePGDump(ctx context.Context, l layout, p pgParams, logf func(string, ...any)) (st *pgStamp, err error) {
	// A short directory under TMPDIR: the server may run as an unprivileged
	// user (when we are root), which dbtest lets reach only TMPDIR, and the
	// socket path must stay short.
	tmp, err := os.MkdirTemp("", "cairn-bench-pg-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	pg, err := dbtest.LaunchPostgres(filepath.Join(tmp, "pg"))
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := pg.Stop(); serr != nil && err == nil {
			err = fmt.Errorf("stop PostgreSQL: %w", serr)
		}
	}()
	if _, err := pg.Psql(ctx, "CREATE DATABASE bench"); err != nil {
		return nil, err
	}
	db := pg.WithDatabase("bench")
	run := func(what string, bin string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, pg.Bin(bin), append(append(pg.ConnArgs(), args...), "bench")...)
		cmd.Env = db.Env()
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("%s: %s %s: %w\n%s", what, bin, strings.Join(args, " "), err, indentTail(string(out), 10))
		}
		return string(out), nil
	}
	st = &pgStamp{Params: p}
	for _, d := range []string{filepath.Dir(l.pgV1()), filepath.Dir(l.pgV2())} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if v, err := exec.CommandContext(ctx, pg.Bin("pg_dump"), "--version").Output(); err == nil {
		st.Server = strings.TrimSpace(string(v))
	}
	if _, err := run("load pgbench tables", "pgbench", "-i", "-q", "-s", strconv.Itoa(p.Scale)); err != nil {
		return nil, err
	}
	st.AppRows = int64(p.Scale) * pgAppRowsPerScale
	if _, err := db.Psql(ctx, appTableSQL(p.Seed, st.AppRows)); err != nil {
		return nil, fmt.Errorf("load application table: %w", err)
	}
	if _, err := run("dump v1", "pg_dump", "-f", l.pgV1()+".tmp"); err != nil {
		return nil, err
	}
	logf("pgdump: v1 dumped; running pgbench transactions and application updates")
	// 1,000 TPC-B transactions per scale unit touch about 1% of the
	// accounts (and add as many history rows); two clients, as a small
	// application would have.
	st.Transactions = int64(p.Scale) * 1000
	if _, err := run("pgbench transactions", "pgbench", "-n", "-c", "2", "-j", "2",
		"-t", strconv.FormatInt(st.Transactions/2, 10), "--random-seed="+strconv.FormatUint(p.Seed, 10)); err != nil {
		return nil, err
	}
	out, err := db.Psql(ctx, appChangeSQL(p.Seed, st.AppRows))
	if err != nil {
		return nil, fmt.Errorf("change application table: %w", err)
	}
	if _, err := fmt.Sscanf(lastLine(out), "%d|%d", &st.AppUpdated, &st.AppInserted); err != nil {
		return nil, fmt.Errorf("change application table: cannot read counts from %q: %w", out, err)
	}
	if _, err := run("dump v2", "pg_dump", "-f", l.pgV2()+".tmp"); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		path      string
		sum       *string
		n         *int64
		finalName string
	}{{l.pgV1() + ".tmp", &st.V1SHA, &st.V1Bytes, l.pgV1()}, {l.pgV2() + ".tmp", &st.V2SHA, &st.V2Bytes, l.pgV2()}} {
		if *f.sum, *f.n, err = hashFile(f.path); err != nil {
			return nil, err
		}
		if err := os.Rename(f.path, f.finalName); err != nil {
			return nil, err
		}
	}
	if st.V1SHA == st.V2SHA {
		return nil, errors.New("v2 dump equals v1: the transactions changed nothing")
	}
	return st, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// appWords is the vocabulary of the application's text columns: the head
// of the generator's vocabulary, quoted as an SQL array.
func appWords() string {
	vocab, _ := language()
	var b strings.Builder
	b.WriteString("ARRAY[")
	for i, w := range vocab[:min(400, len(vocab))] {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("'" + strings.ReplaceAll(w, "'", "''") + "'")
	}
	b.WriteString("]")
	return b.String()
}

// appTableSQL creates and fills app_orders: an order table with a JSON
// column and a free-text note, rows created 71 s apart. Words are drawn
// with random()*random(), so low ranks are frequent, as in real text.
func appTableSQL(seed uint64, rows int64) string {
	return fmt.Sprintf(`
SELECT setseed(%f);
CREATE FUNCTION pg_temp.w(k int) RETURNS text LANGUAGE sql VOLATILE AS $$
  SELECT string_agg((%s)[1 + floor(random() * random() * 400)::int], ' ') FROM generate_series(1, k)
$$;
CREATE TABLE app_orders (
  id bigserial PRIMARY KEY,
  customer_id integer NOT NULL,
  status text NOT NULL,
  total_cents bigint NOT NULL,
  items jsonb NOT NULL,
  note text,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
INSERT INTO app_orders (customer_id, status, total_cents, items, note, created_at, updated_at)
SELECT (random() * 100000)::int,
  (ARRAY['new','paid','shipped','delivered','returned'])[1 + floor(random() * 5)::int],
  (random() * 100000)::bigint,
  jsonb_build_object('sku', 'SKU-' || lpad((random() * 50000)::int::text, 6, '0'), 'qty', 1 + (random() * 4)::int,
    'gift', random() < 0.1, 'ref', md5(i::text), 'tags', jsonb_build_array(pg_temp.w(1), pg_temp.w(1))),
  CASE WHEN random() < 0.7 THEN pg_temp.w(5 + (random() * 40)::int) END,
  timestamptz '2024-01-01 00:00:00+00' + i * interval '71 seconds',
  timestamptz '2024-01-01 00:00:00+00' + i * interval '71 seconds'
FROM generate_series(1, %d) i;
CREATE INDEX app_orders_customer ON app_orders (customer_id);
`, float64(seed%1000)/1000, appWords(), rows)
}

// appChangeSQL is the application's activity between the dumps: 1% of the
// orders refunded (rows spread over the whole table), 0.5% new orders. It
// prints "updated|inserted".
func appChangeSQL(seed uint64, rows int64) string {
	return fmt.Sprintf(`
SELECT setseed(%f);
CREATE FUNCTION pg_temp.w(k int) RETURNS text LANGUAGE sql VOLATILE AS $$
  SELECT string_agg((%s)[1 + floor(random() * random() * 400)::int], ' ') FROM generate_series(1, k)
$$;
WITH u AS (
  UPDATE app_orders SET status = 'refunded', total_cents = total_cents / 2,
    note = coalesce(note || ' ', '') || 'refund: ' || pg_temp.w(8), updated_at = updated_at + interval '30 days'
  WHERE id %% 100 = %d RETURNING 1
), n AS (
  INSERT INTO app_orders (customer_id, status, total_cents, items, note, created_at, updated_at)
  SELECT (random() * 100000)::int, 'new', (random() * 100000)::bigint,
    jsonb_build_object('sku', 'SKU-' || lpad((random() * 50000)::int::text, 6, '0'), 'qty', 1, 'gift', false, 'ref', md5(i::text), 'tags', jsonb_build_array(pg_temp.w(1))),
    pg_temp.w(5 + (random() * 40)::int),
    timestamptz '2024-01-01 00:00:00+00' + i * interval '71 seconds',
    timestamptz '2024-01-01 00:00:00+00' + i * interval '71 seconds'
  FROM generate_series(%d, %d) i RETURNING 1
)
SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM n);
`, float64((seed+1)%1000)/1000, appWords(), seed%100, rows+1, rows+rows/200)
}

// pgDumpDataset backs up the dump like the generated one: cairn reads it on
// stdin, restic, borg and kopia by path; v2 overwrites the live file.
func pgDumpDataset(l layout, st *pgStamp) *dataset {
	return &dataset{
		name: dsPGDump, src: l.pgLive(), v1Bytes: st.V1Bytes, v2Bytes: st.V2Bytes,
		reset: func() error {
			if err := os.RemoveAll(filepath.Dir(l.pgLive())); err != nil {
				return err
			}
			return copyFile(l.pgV1(), l.pgLive(), false)
		},
		mutate: func() error { return copyFile(l.pgV2(), l.pgLive(), false) },
		verify: func(restored string) error {
			sum, n, err := hashFile(restored)
			if err != nil {
				return err
			}
			if sum != st.V2SHA || n != st.V2Bytes {
				return fmt.Errorf("%s: got %d bytes sha256 %.12s, want %d bytes sha256 %.12s", restored, n, sum, st.V2Bytes, st.V2SHA)
			}
			return nil
		},
	}
}
