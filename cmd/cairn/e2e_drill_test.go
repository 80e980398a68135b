package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/app/daemon"
)

type drillOut struct {
	OK         bool   `json:"ok"`
	Snapshot   string `json:"snapshot"`
	Error      string `json:"error"`
	Components []struct {
		Name    string  `json:"name"`
		Into    string  `json:"into"`
		Seconds float64 `json:"seconds"`
		Error   string  `json:"error"`
	} `json:"components"`
	Probes []struct {
		Name  string `json:"name"`
		Error string `json:"error"`
	} `json:"probes"`
	Cleanup []string `json:"cleanup_problems"`
}

// TestDrill restores a PostgreSQL dump into a scratch database and a tree
// into a scratch directory, runs probes, and finds a probe that returns no
// rows and a corrupted pack; whatever happens, no scratch database or
// directory is left behind.
func TestDrill(t *testing.T) {
	pg, repoDir := postgresEnv(t)
	pg.Exec(t, `CREATE TABLE issues (id int PRIMARY KEY, title text); INSERT INTO issues SELECT i, 'issue ' || i FROM generate_series(1, 5000) i;`)
	work := t.TempDir()
	files := filepath.Join(work, "files")
	write(t, filepath.Join(files, "a.bin"), randomBytes(3, 100<<10), 0o644)
	scratch := filepath.Join(work, "scratch")
	if err := os.Mkdir(scratch, 0o755); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(work, "state")
	drillDB := pg.Database + "_drill"
	q := func(s string) string { return strconv.Quote(s) }
	config := func(query string) string {
		p := filepath.Join(work, "alm.yaml")
		write(t, p, []byte(fmt.Sprintf(`repository: %s
app: alm
components:
  - name: db
    command: [%s, --format=custom, -Z0, --dbname=%s]
  - name: files
    tree: %s
drill:
  scratch: %s
  components:
    db:
      setup: [%s, %s]
      restore: [%s, --no-owner, --exit-on-error, --dbname=%s]
      cleanup: [%s, --if-exists, %s]
  probes:
    - name: issues
      command: [%s, -d, %s, -tAc, %s]
      require_output: true
    - name: attachment
      command: [test, -s, "{scratch}/files/a.bin"]
`, repoDir, q(pg.Bin("pg_dump")), pg.Database, files, scratch, q(pg.Bin("createdb")), drillDB,
			q(pg.Bin("pg_restore")), drillDB, q(pg.Bin("dropdb")), drillDB, q(pg.Bin("psql")), drillDB, q(query))), 0o644)
		return p
	}
	leftovers := func(t *testing.T) {
		t.Helper()
		if ents, _ := os.ReadDir(scratch); len(ents) > 0 {
			t.Errorf("scratch area not cleaned up: %v", ents)
		}
		if n := pg.Query(t, "SELECT count(*) FROM pg_database WHERE datname = '"+drillDB+"'"); n != "0" {
			t.Errorf("scratch database %s left behind (%s)", drillDB, n)
		}
	}
	good := config("SELECT id FROM issues WHERE id = 4999")
	mustCairn(t, nil, "--config", good, "backup")

	t.Run("good", func(t *testing.T) {
		r := cairn(t, nil, "--config", good, "drill", "--json", "--state-dir", stateDir)
		d := decodeJSON[drillOut](t, r)
		if r.code != 0 || !d.OK || len(d.Components) != 2 || len(d.Probes) != 2 {
			t.Fatalf("drill: %v", r)
		}
		if !strings.Contains(d.Components[0].Into, "pg_restore") || d.Components[0].Seconds <= 0 {
			t.Errorf("db component: %+v", d.Components[0])
		}
		rec, err := daemon.ReadDrill(stateDir, "alm")
		if err != nil || rec == nil || !rec.OK || rec.RestoreSeconds["db"] <= 0 {
			t.Errorf("recorded drill: %+v, %v", rec, err)
		}
		leftovers(t)
	})

	t.Run("probe returns no rows", func(t *testing.T) {
		r := cairn(t, nil, "--config", config("SELECT id FROM issues WHERE id > 100000"), "drill", "--json", "--state-dir", stateDir)
		d := decodeJSON[drillOut](t, r)
		if r.code != 1 || d.OK || !strings.Contains(d.Probes[0].Error, "returned none") || d.Probes[1].Error != "" {
			t.Errorf("drill with an empty probe: %v", r)
		}
		if rec, _ := daemon.ReadDrill(stateDir, "alm"); rec == nil || rec.OK {
			t.Errorf("recorded drill: %+v", rec)
		}
		leftovers(t)
	})

	t.Run("corrupted pack", func(t *testing.T) {
		rp := openRepoAPI(t, repoDir)
		loc := locate(t, rp, "latest", "files/a.bin", false)
		p := packPath(repoDir, loc.Pack)
		b := readFile(t, p)
		b[loc.Blob.Offset+loc.Blob.Length/2] ^= 0x40
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
		write(t, p, b, 0o444)
		r := cairn(t, nil, "--config", good, "drill", "--json", "--state-dir", stateDir)
		d := decodeJSON[drillOut](t, r)
		if r.code != 1 || d.OK || d.Components[1].Name != "files" || !strings.Contains(d.Components[1].Error, "a.bin") || d.Components[0].Error != "" {
			t.Errorf("drill over a corrupted pack: %v", r)
		}
		leftovers(t)
	})
}
