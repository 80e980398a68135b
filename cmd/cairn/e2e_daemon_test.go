package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/app/daemon"
	"github.com/cairn-backup/cairn/internal/dbtest"
	"github.com/cairn-backup/cairn/internal/poll"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// syncBuffer is a bytes.Buffer safe for a process writing and a test
// reading.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// scrape fetches /metrics and parses it with Prometheus' own parser.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// postgresEnv is a fresh repository (testEnv) and a fresh PostgreSQL
// database that the PG* variables point at, for cairn and the child
// processes and commands it starts.
func postgresEnv(t *testing.T) (*dbtest.Postgres, string) {
	t.Helper()
	pg := dbs.Postgres(t).NewDatabase(t)
	repoDir := testEnv(t)
	t.Setenv("PGHOST", pg.Host)
	t.Setenv("PGPORT", strconv.Itoa(pg.Port))
	t.Setenv("PGUSER", pg.User)
	return pg, repoDir
}

// metric is the value of name's series whose labels include want.
func metric(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		}
	}
	return -1
}

// TestDaemon runs `cairn daemon` as a process with a 2-second schedule
// against a real PostgreSQL database and a tree: snapshots appear,
// retention holds, runs never overlap, /metrics parses, SIGHUP applies a
// changed config, a failing backup is recorded and retried on the next
// tick, status flags an overdue snapshot, and SIGTERM stops it promptly.
func TestDaemon(t *testing.T) {
	pg, repoDir := postgresEnv(t)
	pg.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 2000) i;`)
	work := t.TempDir()
	files := filepath.Join(work, "files")
	write(t, filepath.Join(files, "a.bin"), randomBytes(7, 64<<10), 0o644)
	stateDir := filepath.Join(work, "state")
	cfgPath := filepath.Join(work, "alm.yaml")
	guard := filepath.Join(work, "running")
	failed := filepath.Join(work, "on_failure.log")
	sleep := "" // "sleep 60; " makes the dump hang
	// The dump refuses to start while another run's dump is going: an
	// overlap would show as a failed run.
	writeConfig := func(schedule, database string) {
		dump := fmt.Sprintf("mkdir %s && %s%s --format=custom -Z0 --dbname=%s; rc=$?; rmdir %s; exit $rc",
			shellQuote(guard), sleep, shellQuote(pg.Bin("pg_dump")), database, shellQuote(guard))
		cfg := fmt.Sprintf(`repository: %s
app: alm
schedule: %s
retention: {keep_last: 2}
drill: {every: 1h}
hooks:
  backup:
    on_failure: [sh, -c, 'echo "$CAIRN_ERROR" >> %s']
components:
  - name: db
    command: [sh, -c, %q]
  - name: files
    tree: %s
`, repoDir, schedule, failed, dump, files)
		write(t, cfgPath, []byte(cfg), 0o644)
	}
	writeConfig("{every: 2s}", pg.Database)

	var stderr syncBuffer
	cmd := exec.Command(os.Args[0], "daemon", "--config", cfgPath, "--state-dir", stateDir, "--listen", "127.0.0.1:0", "--log-format", "json")
	cmd.Env = append(os.Environ(), "CAIRN_TEST_AS_CAIRN=1")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", stderr.String())
		}
	}()

	var addr string
	addrRE := regexp.MustCompile(`"msg":"serving metrics","addr":"([^"]+)"`)
	poll.Until(t, "metrics address logged", func() bool {
		m := addrRE.FindStringSubmatch(stderr.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	state := func() daemon.State {
		st, err := daemon.ReadState(stateDir, "alm")
		if err != nil {
			t.Fatal(err)
		}
		return st
	}

	// Several ticks: snapshots appear, each run ok.
	seen := map[string]bool{}
	poll.Until(t, "four good runs", func() bool {
		if s := state().Outcome.Snapshot; s != "" {
			seen[s] = true
		}
		return metric(scrape(t, addr), "cairn_runs_total", map[string]string{"app": "alm", "result": "ok"}) >= 4
	})
	fams := scrape(t, addr)
	if n := metric(fams, "cairn_runs_total", map[string]string{"app": "alm", "result": "failed"}); n > 0 {
		t.Fatalf("%v runs failed (an overlap fails the dump)", n)
	}
	if v := metric(fams, "cairn_snapshots", map[string]string{"app": "alm"}); v != 2 {
		t.Errorf("cairn_snapshots %v with keep_last 2", v)
	}
	if v := metric(fams, "cairn_last_run_success", map[string]string{"app": "alm"}); v != 1 {
		t.Errorf("cairn_last_run_success %v", v)
	}
	// The repository holds at least the random 64 KiB file (it does not
	// compress) and, with no prune configured, its packs only grow: the
	// metric cannot exceed what is on disk after the scrape.
	onDisk := repoBytes(t, repoDir)
	if v := metric(fams, "cairn_repository_bytes", map[string]string{"app": "alm"}); v < 64<<10 || v > float64(onDisk) {
		t.Errorf("cairn_repository_bytes %v, want between 64 KiB and the %d bytes of packs on disk", v, onDisk)
	} else {
		t.Logf("cairn_repository_bytes %v, packs on disk %d", v, onDisk)
	}
	if v := metric(fams, "cairn_last_backup_read_bytes", map[string]string{"app": "alm"}); v < 64<<10 {
		t.Errorf("cairn_last_backup_read_bytes %v", v)
	}
	// The first run drilled its snapshot (drill every hour): restored into
	// a scratch directory and verified.
	if v := metric(fams, "cairn_last_drill_success", map[string]string{"app": "alm"}); v != 1 {
		t.Errorf("cairn_last_drill_success %v", v)
	}
	if v := metric(fams, "cairn_last_drill_restore_seconds", map[string]string{"app": "alm", "component": "files"}); v <= 0 {
		t.Errorf("cairn_last_drill_restore_seconds{component=files} %v", v)
	}
	if resp, err := http.Get("http://" + addr + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/healthz: %v %v", resp, err)
	}

	// SIGHUP with a longer interval: the next run moves an hour out.
	writeConfig("{every: 1h}", pg.Database)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the reloaded schedule planned", func() bool {
		st := state()
		return st.NextRun.Sub(st.LastAttempt) > 30*time.Minute
	})
	snaps := decodeJSON[[]snapshotOut](t, mustCairn(t, nil, "snapshots", "--json"))
	if len(snaps) != 2 {
		t.Errorf("%d snapshots with keep_last 2 after %d backups", len(snaps), len(seen))
	}

	// status: current against an RPO of an hour, overdue against one second.
	writeConfig("{every: 1h}", pg.Database)
	if r := cairn(t, nil, "status", "--config", cfgPath, "--state-dir", stateDir); r.code != 0 || !strings.Contains(r.stdout, "alm  OK") {
		t.Errorf("status of a current application: %v", r)
	}
	overdue := filepath.Join(work, "overdue.yaml")
	b, _ := os.ReadFile(cfgPath)
	write(t, overdue, bytes.Replace(b, []byte("{every: 1h}"), []byte("{every: 1h, rpo: 1s}"), 1), 0o644)
	time.Sleep(1100 * time.Millisecond) // the newest snapshot must become older than the RPO
	r := cairn(t, nil, "status", "--json", "--config", overdue, "--state-dir", stateDir)
	if r.code != exitAttention || !strings.Contains(r.stdout, "past the RPO") {
		t.Errorf("status of an overdue application: %v", r)
	}

	// A failing dump: recorded, exported, retried on the next tick.
	writeConfig("{every: 2s}", "no_such_database")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "two failed runs in a row", func() bool { return state().Failures >= 2 })
	st := state()
	if st.LastResult != "failed" || !strings.Contains(st.LastError, "no_such_database") {
		t.Errorf("state after failures: %+v", st)
	}
	if b, _ := os.ReadFile(failed); strings.Count(string(b), "no_such_database") < 2 {
		t.Errorf("on_failure ran for fewer than the two failed runs:\n%s", b)
	}
	fams = scrape(t, addr)
	if v := metric(fams, "cairn_last_run_success", map[string]string{"app": "alm"}); v != 0 {
		t.Errorf("cairn_last_run_success %v after a failure", v)
	}
	if r := cairn(t, nil, "status", "--config", cfgPath, "--state-dir", stateDir); r.code != exitAttention || !strings.Contains(r.stdout, "last run failed") {
		t.Errorf("status after a failed run: %v", r)
	}

	// SIGTERM in the middle of a dump: the daemon aborts the run (its child
	// gets SIGTERM and writes no snapshot) and exits within a bound.
	before := decodeJSON[[]snapshotOut](t, mustCairn(t, nil, "snapshots", "--json"))
	_ = os.Remove(guard) // the failed dumps' guard (the shell's rmdir ran, but be sure)
	sleep = "sleep 60; "
	writeConfig("{every: 2s}", pg.Database)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "a dump running", func() bool {
		_, err := os.Stat(guard)
		return err == nil
	})
	stopAt := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("daemon exit: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("daemon still running 15 s after SIGTERM")
	}
	t.Logf("stopped %s after SIGTERM", time.Since(stopAt).Round(time.Millisecond))
	if st := state(); st.LastResult != "failed" || !strings.Contains(st.LastError, "aborted") {
		t.Errorf("the aborted run: %+v", st)
	}
	after := decodeJSON[[]snapshotOut](t, mustCairn(t, nil, "snapshots", "--json"))
	if len(after) != len(before) {
		t.Errorf("%d snapshots before the aborted run, %d after", len(before), len(after))
	}
	mustCairn(t, nil, "check", "--read-data")
}
