package elasticsearch_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/esemu"
	"github.com/cairn-backup/cairn/sources/elasticsearch"
)

// backedUp returns an env with a finished capture copied into a fresh
// directory below path.repo.
func backedUp(t *testing.T) (*env, *elasticsearch.Capture, string) {
	t.Helper()
	e := newEnv(t, esemu.Options{})
	seed(e)
	cp, err := elasticsearch.Backup(ctx(t), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := elasticsearch.NewRestoreDir(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(dir) != filepath.Dir(e.cfg.Location) {
		t.Fatalf("restore dir %s is not next to %s", dir, e.cfg.Location)
	}
	copyFS(t, cp, dir)
	if err := cp.Finish(ctx(t)); err != nil {
		t.Fatal(err)
	}
	return e, cp, dir
}

func TestRestoreRefusesRegisteredDirectory(t *testing.T) {
	e, cp, dir := backedUp(t)
	// Another repository is registered at the directory.
	e.call(e.es.Snapshot.CreateRepository("other", strings.NewReader(`{"type":"fs","settings":{"location":"`+dir+`","readonly":true}}`)))
	_, err := elasticsearch.Restore(ctx(t), e.cfg, elasticsearch.RestoreOptions{Dir: dir, RepoName: "r", Snapshot: cp.Snapshot()})
	if !errors.Is(err, elasticsearch.ErrDirInUse) {
		t.Fatalf("error %v", err)
	}
	wantErr(t, err, "registered repository other")
	// A directory inside a registered repository's is refused as well.
	sub := filepath.Join(e.cfg.Location, "nested")
	os.MkdirAll(sub, 0o755)
	copyFS(t, cp, sub)
	cfg := e.cfg
	cfg.Location = ""
	_, err = elasticsearch.Restore(ctx(t), cfg, elasticsearch.RestoreOptions{Dir: sub, RepoName: "r", Snapshot: cp.Snapshot()})
	if !errors.Is(err, elasticsearch.ErrDirInUse) {
		t.Fatalf("nested: %v", err)
	}
	// The backup repository's own directory.
	_, err = elasticsearch.Restore(ctx(t), e.cfg, elasticsearch.RestoreOptions{Dir: e.cfg.Location, RepoName: "r", Snapshot: cp.Snapshot()})
	if !errors.Is(err, elasticsearch.ErrDirInUse) {
		t.Fatalf("backup location: %v", err)
	}
	// A name that is already registered.
	e.call(e.es.Snapshot.DeleteRepository([]string{"other"}))
	_, err = elasticsearch.Restore(ctx(t), e.cfg, elasticsearch.RestoreOptions{Dir: dir, RepoName: "cairn", Snapshot: cp.Snapshot()})
	wantErr(t, err, "backup repository")
	e.call(e.es.Snapshot.CreateRepository("taken", strings.NewReader(`{"type":"fs","settings":{"location":"`+e.emu.RepoDir("t")+`"}}`)))
	_, err = elasticsearch.Restore(ctx(t), e.cfg, elasticsearch.RestoreOptions{Dir: dir, RepoName: "taken", Snapshot: cp.Snapshot()})
	wantErr(t, err, "repository taken is already registered")
	// An empty directory: nothing was written back.
	empty := e.emu.RepoDir("empty")
	os.MkdirAll(empty, 0o755)
	_, err = elasticsearch.Restore(ctx(t), e.cfg, elasticsearch.RestoreOptions{Dir: empty, RepoName: "r", Snapshot: cp.Snapshot()})
	wantErr(t, err, "no index-N file")
	// None of this touched the cluster's indices.
	for _, ix := range []string{"mqm_sp1001_items", "mqm_sp1001_users"} {
		if st, _ := e.emu.Index(ix); !st.Open {
			t.Errorf("%s closed by a refused restore", ix)
		}
	}
}

func TestRestoreDetectsCorruptBlob(t *testing.T) {
	e, cp, dir := backedUp(t)
	var blob string
	for _, f := range cp.Files() {
		if strings.Contains(f, "/__") {
			blob = f
			break
		}
	}
	p := filepath.Join(dir, filepath.FromSlash(blob))
	data, _ := os.ReadFile(p)
	data[len(data)/2] ^= 0x55
	os.WriteFile(p, data, 0o644)
	_, err := elasticsearch.Restore(ctx(t), e.cfg, elasticsearch.RestoreOptions{Dir: dir, RepoName: "r", Snapshot: cp.Snapshot()})
	wantErr(t, err, "shards failed to restore", "damaged")
	if _, ok := e.emu.Repository("r"); ok {
		t.Error("restore repository left registered after a failure")
	}
}

func TestRestoreMissingSnapshotInfo(t *testing.T) {
	e, cp, dir := backedUp(t)
	for _, f := range cp.Files() {
		if strings.HasPrefix(f, "snap-") {
			os.Remove(filepath.Join(dir, f))
		}
	}
	_, err := elasticsearch.Restore(ctx(t), e.cfg, elasticsearch.RestoreOptions{Dir: dir, RepoName: "r", Snapshot: cp.Snapshot()})
	wantErr(t, err, "HTTP 404 snapshot_missing_exception")
}

func TestRestoreReopensOnRefusal(t *testing.T) {
	e, cp, dir := backedUp(t)
	// Recreate users with another shard count: ES refuses to restore over it
	// after the source has closed it; the source reopens it.
	e.call(e.es.Indices.Delete([]string{"mqm_sp1001_users"}))
	e.createIndex("mqm_sp1001_users", 3)
	_, err := elasticsearch.Restore(ctx(t), e.cfg, elasticsearch.RestoreOptions{Dir: dir, RepoName: "r", Snapshot: cp.Snapshot(), Indices: "mqm_sp1001_users"})
	wantErr(t, err, "snapshot_restore_exception", "with [3] shards", "were reopened")
	if st, _ := e.emu.Index("mqm_sp1001_users"); !st.Open {
		t.Error("index left closed")
	}
}

func TestRestoreSelection(t *testing.T) {
	e, cp, dir := backedUp(t)
	_, err := elasticsearch.Restore(ctx(t), e.cfg, elasticsearch.RestoreOptions{Dir: dir, RepoName: "r", Snapshot: cp.Snapshot(), Indices: "mqm_nope"})
	wantErr(t, err, "mqm_nope is not in the snapshot")
	_, err = elasticsearch.Restore(ctx(t), e.cfg, elasticsearch.RestoreOptions{Dir: dir, RepoName: "r", Snapshot: "cairn-nope"})
	wantErr(t, err, "snapshot_missing_exception")
	res, err := elasticsearch.Restore(ctx(t), e.cfg, elasticsearch.RestoreOptions{Dir: dir, RepoName: "r", Snapshot: cp.Snapshot(),
		Indices: "mqm_*,-mqm_sp1001_items", RenamePattern: "(.+)", RenameReplacement: "copy_$1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Indices) != 1 || res.Indices[0] != "copy_mqm_sp1001_users" {
		t.Fatalf("%+v", res)
	}
}
