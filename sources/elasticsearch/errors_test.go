package elasticsearch_test

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/esemu"
	"github.com/cairn-backup/cairn/sources/elasticsearch"
)

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}

func snapshotsIn(e *env, repo string) string {
	return e.call(e.es.Snapshot.Get(repo, []string{"_all"}))
}

func TestFailedSnapshot(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	seed(e)
	e.emu.FailNextSnapshot("node left the cluster during the snapshot")
	cp, err := elasticsearch.Backup(ctx(t), e.cfg)
	if cp != nil || !errors.Is(err, elasticsearch.ErrSnapshotFailed) {
		t.Fatalf("capture %v, error %v", cp, err)
	}
	wantErr(t, err, "FAILED", "node left the cluster", "mqm_sp1001_items", "was deleted")
	if s := snapshotsIn(e, "cairn"); strings.Contains(s, "cairn-") {
		t.Errorf("failed snapshot kept: %s", s)
	}
}

func TestPartialSnapshot(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	seed(e)
	e.emu.FailShard("mqm_sp1001_items", 1)
	_, err := elasticsearch.Backup(ctx(t), e.cfg)
	if !errors.Is(err, elasticsearch.ErrSnapshotPartial) {
		t.Fatalf("error %v", err)
	}
	wantErr(t, err, "PARTIAL", "index mqm_sp1001_items shard 1", "1 of 3 shards failed", "allow_partial")
	if s := snapshotsIn(e, "cairn"); strings.Contains(s, "cairn-") {
		t.Errorf("partial snapshot kept: %s", s)
	}

	e.cfg.AllowPartial = true
	cp, err := elasticsearch.Backup(ctx(t), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Meta()["snapshot_state"] != "PARTIAL" {
		t.Errorf("meta %v", cp.Meta())
	}
	dir := e.emu.RepoDir("restore-partial")
	copyFS(t, cp, dir)
	if err := cp.Finish(ctx(t)); err != nil {
		t.Fatal(err)
	}
	opts := elasticsearch.RestoreOptions{Dir: dir, RepoName: "r1", Snapshot: cp.Snapshot(), Indices: "mqm_sp1001_users",
		RenamePattern: "mqm_(.+)", RenameReplacement: "restored_$1"}
	_, err = elasticsearch.Restore(ctx(t), e.cfg, opts)
	if !errors.Is(err, elasticsearch.ErrSnapshotPartial) {
		t.Fatalf("restore of a partial snapshot without Partial: %v", err)
	}
	opts.Partial = true
	res, err := elasticsearch.Restore(ctx(t), e.cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Indices) != 1 || res.Indices[0] != "restored_sp1001_users" || len(res.Closed) != 0 {
		t.Fatalf("result %+v", res)
	}
	if got := e.docs("restored_sp1001_users"); len(got) != 2 {
		t.Errorf("renamed restore: %v", got)
	}
}

func TestUnreachable(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	e.emu.Unreachable()
	start := time.Now()
	_, err := elasticsearch.Backup(ctx(t), e.cfg)
	var te *elasticsearch.TransportError
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T)", err, err)
	}
	wantErr(t, err, "cannot get an answer from "+e.emu.URL(), "get cluster info")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}

	e.emu.Close()
	_, err = elasticsearch.Backup(ctx(t), e.cfg)
	wantErr(t, err, "cannot get an answer", "connection refused")
}

func TestServerErrors(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	seed(e)
	e.emu.RespondStatus("PUT", "/_snapshot/cairn/", 500, "snapshot_exception", "[cairn:x] disk on fire", 1)
	_, err := elasticsearch.Backup(ctx(t), e.cfg)
	var ae *elasticsearch.APIError
	if !errors.As(err, &ae) || ae.Status != 500 || !ae.IsType("snapshot_exception") {
		t.Fatalf("error %v", err)
	}
	wantErr(t, err, "create snapshot cairn-", "HTTP 500 snapshot_exception", "disk on fire")

	// 503 twice on an idempotent call: retried with backoff, then fine.
	e.emu.RespondStatus("GET", "/_resolve/", 503, "", "", 2)
	cp, err := elasticsearch.Backup(ctx(t), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	_ = cp

	// 503 on create is not retried (a resend would collide with itself).
	e.emu.RespondStatus("PUT", "/_snapshot/cairn/", 503, "", "", 1)
	_, err = elasticsearch.Backup(ctx(t), e.cfg)
	wantErr(t, err, "HTTP 503 concurrent_snapshot_execution_exception")

	// The create's answer is lost: the snapshot is found by its cairn id.
	e.emu.Hangup("PUT", "/_snapshot/cairn/", 1, true)
	cp, err = elasticsearch.Backup(ctx(t), e.cfg)
	if err != nil {
		t.Fatalf("lost create answer: %v", err)
	}
	if err := cp.Finish(ctx(t)); err != nil {
		t.Fatal(err)
	}
	// Lost before ES saw it: a clear transport error.
	e.emu.Hangup("PUT", "/_snapshot/cairn/", 1, false)
	_, err = elasticsearch.Backup(ctx(t), e.cfg)
	wantErr(t, err, "create snapshot", "cannot get an answer")
}

func TestProductCheck(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	e.emu.OmitProductHeader(true)
	_, err := elasticsearch.Backup(ctx(t), e.cfg)
	wantErr(t, err, "not Elasticsearch")
}

func TestOldVersionRefused(t *testing.T) {
	e := newEnv(t, esemu.Options{Version: "7.13.4"})
	_, err := elasticsearch.Backup(ctx(t), e.cfg)
	wantErr(t, err, "7.13.4", "7.14 or newer")
}

func TestGenerationMovedDuringCopy(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	seed(e)
	cp, err := elasticsearch.Backup(ctx(t), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := cp.Open(ctx(t), "index-0")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, r)
	r.Close()
	if _, err := e.emu.ForeignWriter("cairn"); err != nil {
		t.Fatal(err)
	}
	err = cp.Finish(ctx(t))
	if !errors.Is(err, elasticsearch.ErrGenerationMoved) {
		t.Fatalf("Finish: %v", err)
	}
	wantErr(t, err, "generation 0", "index.latest=1")

	// The next backup notices the other writer.
	_, err = elasticsearch.Backup(ctx(t), e.cfg)
	if !errors.Is(err, elasticsearch.ErrForeignWriter) {
		t.Fatalf("backup after foreign write: %v", err)
	}
}

func TestConcurrentSnapshotDuringCopy(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	seed(e)
	cp, err := elasticsearch.Backup(ctx(t), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	// ES takes another snapshot while the files are read: it replaces
	// index-0 by index-1, and the archiver's listing reports the loss.
	e.call(e.es.Snapshot.Create("cairn", "someone-else", e.es.Snapshot.Create.WithWaitForCompletion(true)))
	if _, err := cp.ReadDir(ctx(t), ""); err == nil {
		t.Error("ReadDir: no error for the vanished index-0")
	}
	if err := cp.Finish(ctx(t)); !errors.Is(err, elasticsearch.ErrGenerationMoved) {
		t.Fatalf("Finish: %v", err)
	}
}

func TestMissingReferencedFile(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	seed(e)
	cp, err := elasticsearch.Backup(ctx(t), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	var victim string
	for _, f := range cp.Files() {
		if strings.HasPrefix(f, "meta-") {
			victim = f
		}
	}
	os.Remove(filepath.Join(e.cfg.Location, victim))
	if _, err := cp.ReadDir(ctx(t), ""); err == nil {
		t.Error("ReadDir hides a missing referenced file")
	}
	wantErr(t, cp.Finish(ctx(t)), victim, "incomplete")
}

func TestLocationOutsidePathRepo(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	seed(e)
	e.cfg.Location = t.TempDir()
	_, err := elasticsearch.Backup(ctx(t), e.cfg)
	wantErr(t, err, "register snapshot repository cairn", "doesn't match any of the locations specified by path.repo", "path.repo setting")
}

func TestLocationMismatch(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	seed(e)
	e.call(e.es.Snapshot.CreateRepository("cairn", strings.NewReader(`{"type":"fs","settings":{"location":"`+e.emu.RepoDir("elsewhere")+`"}}`)))
	_, err := elasticsearch.Backup(ctx(t), e.cfg)
	if !errors.Is(err, elasticsearch.ErrLocationMismatch) {
		t.Fatalf("error %v", err)
	}
	wantErr(t, err, "elsewhere")
}

func TestSLMRefused(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	seed(e)
	e.emu.SetSLMPolicy("nightly", "cairn")
	_, err := elasticsearch.Backup(ctx(t), e.cfg)
	wantErr(t, err, "SLM policies nightly write to repository cairn")
}

func TestNothingMatches(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	seed(e)
	e.cfg.Indices = "mqm_nope*"
	_, err := elasticsearch.Backup(ctx(t), e.cfg)
	wantErr(t, err, `no index matches "mqm_nope*"`)
	e.cfg.Indices = "mqm_sp1001*"
	e.call(e.es.Indices.Close([]string{"mqm_sp1001_users"}))
	_, err = elasticsearch.Backup(ctx(t), e.cfg)
	wantErr(t, err, "mqm_sp1001_users", "closed")
}

func TestConfigChecks(t *testing.T) {
	base := elasticsearch.Config{URL: "http://127.0.0.1:1", Repository: "cairn", Location: "/x", Indices: "mqm*"}
	for name, mut := range map[string]func(*elasticsearch.Config){
		"relative location": func(c *elasticsearch.Config) { c.Location = "repo" },
		"upper pattern":     func(c *elasticsearch.Config) { c.Indices = "MQM*" },
		"no pattern":        func(c *elasticsearch.Config) { c.Indices = "" },
		"bad prefix":        func(c *elasticsearch.Config) { c.SnapshotPrefix = "_x" },
		"bad repo":          func(c *elasticsearch.Config) { c.Repository = "a/b" },
	} {
		cfg := base
		mut(&cfg)
		if _, err := elasticsearch.Backup(ctx(t), cfg); err == nil || strings.Contains(err.Error(), "cannot get an answer") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestSlowSnapshotAndLateCleanup: a snapshot that stays IN_PROGRESS, and
// old metadata deleted after the create answer, still give a consistent
// capture.
func TestSlowSnapshotAndLateCleanup(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	seed(e)
	if _, err := elasticsearch.Backup(ctx(t), e.cfg); err != nil {
		t.Fatal(err)
	}
	e.put("mqm_sp1001_users", map[string]string{"u9": `{"name":"late"}`})
	// The snapshot stays IN_PROGRESS, and the old metadata stays, until
	// the test releases them: no delay to race.
	releaseSnapshot := e.emu.HoldSnapshots()
	defer releaseSnapshot()
	releaseCleanup := e.emu.HoldCleanup()
	defer releaseCleanup()
	type backup struct {
		cp  *elasticsearch.Capture
		err error
	}
	done := make(chan backup, 1)
	go func() {
		cp, err := elasticsearch.Backup(ctx(t), e.cfg)
		done <- backup{cp, err}
	}()
	// Wait (polling the emulator: it announces nothing) until the
	// snapshot is seen running; it cannot finish before the release.
	waitCtx := ctx(t)
	for len(e.emu.Running()) == 0 {
		select {
		case b := <-done:
			t.Fatalf("backup returned before its snapshot was seen running: %v", b.err)
		case <-waitCtx.Done():
			t.Fatal("snapshot never seen running")
		case <-time.After(time.Millisecond):
		}
	}
	releaseSnapshot()
	b := <-done
	cp, err := b.cp, b.err
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.cfg.Location, "index-0")); err != nil {
		t.Fatalf("old generation already gone: the cleanup hold did not apply (%v)", err)
	}
	for _, f := range cp.Files() {
		if f == "index-0" {
			t.Error("superseded index-0 captured")
		}
	}
	dir := e.emu.RepoDir("restore-late")
	copyFS(t, cp, dir)
	// Finish after the late cleanup has removed the old generation.
	releaseCleanup() // returns once the cleanup has run
	if _, err := os.Stat(filepath.Join(e.cfg.Location, "index-0")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the late cleanup did not remove index-0: %v", err)
	}
	if err := cp.Finish(ctx(t)); err != nil {
		t.Fatal(err)
	}
	want := e.docs("mqm_sp1001_users")
	e.del("mqm_sp1001_users", "u9")
	if _, err := elasticsearch.Restore(ctx(t), e.cfg, elasticsearch.RestoreOptions{Dir: dir, RepoName: "r", Snapshot: cp.Snapshot(), Indices: "mqm_sp1001_users"}); err != nil {
		t.Fatal(err)
	}
	if got := e.docs("mqm_sp1001_users"); len(got) != len(want) || got["u9"] != want["u9"] {
		t.Errorf("restored %v, want %v", got, want)
	}
}
