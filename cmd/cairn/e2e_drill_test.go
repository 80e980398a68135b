package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/app/daemon"
	"github.com/cairn-backup/cairn/internal/esemu"
	es8 "github.com/elastic/go-elasticsearch/v8"
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

// TestDrillElasticsearch restores an Elasticsearch component's indices into
// the emulator under the drill prefix, counts them, and cleans up: no drill
// index and no scratch repository left, the live indices open and
// unchanged. A _restore the cluster refuses, or whose answer is lost after
// it ran, fails the drill and is cleaned up just the same.
func TestDrillElasticsearch(t *testing.T) {
	testEnv(t)
	emu := esemu.Start(t, esemu.Options{})
	client, err := es8.NewClient(es8.Config{Addresses: []string{emu.URL()}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		putDoc(t, client, "mqm_sp1001_issues", strconv.Itoa(i), fmt.Sprintf(`{"title":"issue %d"}`, i))
	}
	putDoc(t, client, "other_index", "1", `{"keep":"out of the pattern"}`)
	work := t.TempDir()
	stateDir := filepath.Join(work, "state")
	cfg := filepath.Join(work, "alm.yaml")
	write(t, cfg, []byte(fmt.Sprintf(`app: alm
components:
  - name: search
    elasticsearch:
      url: %s
      repository: cairn
      location: %s
      indices: "mqm_sp1001*"
drill:
  scratch: %s
  elasticsearch: {}
  probes:
    - name: restored index answers
      command: [curl, -fsS, "%s/cairn-drill-mqm_sp1001_issues/_count"]
`, emu.URL(), emu.RepoDir("cairn"), work, emu.URL())), 0o644)
	mustCairn(t, nil, "--config", cfg, "backup")
	live, _ := emu.Index("mqm_sp1001_issues")

	clean := func(t *testing.T) {
		t.Helper()
		for _, ix := range emu.Indices() {
			if strings.HasPrefix(ix, "cairn-drill-") {
				t.Errorf("drill index %s left behind", ix)
			}
		}
		res, err := client.Snapshot.GetRepository()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if body := string(b); strings.Contains(body, "cairn-drill-") {
			t.Errorf("scratch repository left registered: %s", body)
		}
		if ents, _ := os.ReadDir(emu.PathRepo()); len(ents) != 1 {
			t.Errorf("path.repo holds %v, want only the backup repository", ents)
		}
		now, ok := emu.Index("mqm_sp1001_issues")
		if !ok || !now.Open || now.Docs != 20 || now.UUID != live.UUID {
			t.Errorf("live index touched: %+v, was %+v", now, live)
		}
		if o, ok := emu.Index("other_index"); !ok || !o.Open || o.Docs != 1 {
			t.Errorf("other index touched: %+v", o)
		}
	}

	t.Run("good", func(t *testing.T) {
		r := cairn(t, nil, "--config", cfg, "drill", "--json", "--state-dir", stateDir)
		d := decodeJSON[drillOut](t, r)
		if r.code != 0 || !d.OK || len(d.Components) != 1 || len(d.Probes) != 1 {
			t.Fatalf("drill: %v", r)
		}
		if !strings.Contains(d.Components[0].Into, "cairn-drill-mqm_sp1001_issues 20 docs") {
			t.Errorf("component: %+v", d.Components[0])
		}
		clean(t)
	})

	for _, tc := range []struct {
		name, want string
		fault      func()
	}{
		{"restore refused", "injected restore failure", func() {
			emu.RespondStatus("POST", "/_snapshot/cairn-drill-", 500, "", "injected restore failure", -1)
		}},
		{"restore answer lost", "restore snapshot", func() { emu.Hangup("POST", "/_snapshot/cairn-drill-", -1, true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.fault()
			defer emu.ClearFaults()
			r := cairn(t, nil, "--config", cfg, "drill", "--json", "--state-dir", stateDir)
			d := decodeJSON[drillOut](t, r)
			if r.code != 1 || d.OK || len(d.Components) != 1 || !strings.Contains(d.Components[0].Error, tc.want) {
				t.Errorf("drill with a failing restore: %v", r)
			}
			clean(t)
		})
	}

	t.Run("prefix in use", func(t *testing.T) {
		putDoc(t, client, "cairn-drill-mine", "1", `{}`)
		r := cairn(t, nil, "--config", cfg, "drill", "--json", "--state-dir", stateDir)
		d := decodeJSON[drillOut](t, r)
		if r.code != 1 || len(d.Components) != 1 || !strings.Contains(d.Components[0].Error, "cairn-drill-mine already exist") {
			t.Errorf("drill with an index under the prefix: %v", r)
		}
		if _, ok := emu.Index("cairn-drill-mine"); !ok {
			t.Error("an index the drill did not make was deleted")
		}
	})
}
