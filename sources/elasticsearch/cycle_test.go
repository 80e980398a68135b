package elasticsearch_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/esemu"
	"github.com/cairn-backup/cairn/sources/elasticsearch"
)

func seed(e *env) {
	e.createIndex("mqm_sp1001_items", 2)
	e.createIndex("mqm_sp1001_users", 1)
	e.createIndex("other_app", 1)
	items := map[string]string{}
	for i := range 40 {
		items["i"+itoa(i)] = `{"title":"item ` + itoa(i) + `","n":` + itoa(i) + `}`
	}
	e.put("mqm_sp1001_items", items)
	e.flush("mqm_sp1001_items")
	e.put("mqm_sp1001_items", map[string]string{"late1": `{"title":"late"}`})
	e.put("mqm_sp1001_users", map[string]string{"u1": `{"name":"ada"}`, "u2": `{"name":"bob"}`})
	e.put("other_app", map[string]string{"x": `{"y":1}`})
}

// TestFullCycle backs up, copies the captured files into a fresh
// directory, changes the indices and restores: the documents are exactly
// those of backup time.
func TestFullCycle(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	seed(e)
	c := ctx(t)
	cp, err := elasticsearch.Backup(c, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	meta := cp.Meta()
	if meta["snapshot"] == "" || meta["repository"] != "cairn" || meta["generation"] != "0" || meta["repository_uuid"] == "" {
		t.Fatalf("meta %v", meta)
	}
	if got := cp.Indices(); !slices.Equal(got, []string{"mqm_sp1001_items", "mqm_sp1001_users"}) {
		t.Fatalf("indices %v", got)
	}
	for _, f := range cp.Files() {
		if strings.HasPrefix(f, "tests-") || strings.HasPrefix(f, "pending-") {
			t.Errorf("captured transient file %s", f)
		}
	}
	want := map[string]map[string]string{
		"mqm_sp1001_items": e.docs("mqm_sp1001_items"),
		"mqm_sp1001_users": e.docs("mqm_sp1001_users"),
	}
	dir := e.emu.RepoDir("restore-1")
	n := copyFS(t, cp, dir)
	if n != len(cp.Files()) {
		t.Fatalf("copied %d files, capture lists %d", n, len(cp.Files()))
	}
	if err := cp.Finish(c); err != nil {
		t.Fatal(err)
	}

	// Change everything after the backup.
	e.put("mqm_sp1001_items", map[string]string{"new": `{"title":"new"}`, "i1": `{"title":"changed"}`})
	e.del("mqm_sp1001_items", "i2", "late1")
	e.del("mqm_sp1001_users", "u1")
	e.put("other_app", map[string]string{"z": `{"y":2}`})
	e.put("mqm_sp1001_new", map[string]string{"n": `{"created":"after the backup"}`})
	otherBefore := e.docs("other_app")

	res, err := elasticsearch.Restore(c, e.cfg, elasticsearch.RestoreOptions{
		Dir: dir, RepoName: "cairn-restore-1", Snapshot: meta["snapshot"], Indices: e.cfg.Indices,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Indices, []string{"mqm_sp1001_items", "mqm_sp1001_users"}) || !slices.Equal(res.Closed, res.Indices) {
		t.Fatalf("result %+v", res)
	}
	if !slices.Equal(res.Extra, []string{"mqm_sp1001_new"}) {
		t.Errorf("extra indices %v", res.Extra)
	}
	if st, _ := e.emu.Index("mqm_sp1001_new"); !st.Open || st.Docs != 1 {
		t.Errorf("index created after the backup was touched: %+v", st)
	}
	for ix, docs := range want {
		if got := e.docs(ix); !maps.Equal(got, docs) {
			t.Errorf("%s after restore:\n got %v\nwant %v", ix, got, docs)
		}
		// Through the REST API too.
		var cnt struct{ Count int }
		if err := json.Unmarshal([]byte(e.call(e.es.Count(e.es.Count.WithIndex(ix)))), &cnt); err != nil || cnt.Count != len(docs) {
			t.Errorf("%s count %d (%v), want %d", ix, cnt.Count, err, len(docs))
		}
		for id, src := range docs {
			body := e.call(e.es.Get(ix, id))
			if !strings.Contains(body, `"_source":`+src) {
				t.Errorf("%s/%s: %s, want source %s", ix, id, body, src)
			}
		}
		st, _ := e.emu.Index(ix)
		if !st.Open {
			t.Errorf("%s is closed after restore", ix)
		}
	}
	if got := e.docs("other_app"); !maps.Equal(got, otherBefore) {
		t.Errorf("other_app changed by the restore: %v", got)
	}
	if _, ok := e.emu.Repository("cairn-restore-1"); ok {
		t.Error("restore repository still registered")
	}
	for _, r := range e.emu.Requests() {
		if strings.Contains(r, "_close") && strings.Contains(r, "*") {
			t.Errorf("closed by wildcard: %s", r)
		}
	}
	// The backup repository was never touched by the restore: still usable.
	if info, _ := e.emu.Repository("cairn"); info.TrackedGen != 0 {
		t.Errorf("backup repository generation %d, want 0", info.TrackedGen)
	}
	if _, err := elasticsearch.Backup(c, e.cfg); err != nil {
		t.Fatalf("backup after restore: %v", err)
	}
}

type fileStat struct {
	size  int64
	mtime time.Time
	ino   uint64
	data  []byte
}

func statTree(t *testing.T, root string) map[string]fileStat {
	t.Helper()
	out := map[string]fileStat{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = fileStat{fi.Size(), fi.ModTime(), fi.Sys().(*syscall.Stat_t).Ino, data}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// isDataBlob tells a data blob (the bytes of one Lucene file) by its name's
// "__" prefix. A shard's index-<uuid> may hold "__" inside its random UUID,
// so a test for "__" anywhere in the name takes that file for one.
func isDataBlob(p string) bool { return strings.HasPrefix(filepath.Base(p), "__") }

// TestSecondSnapshotKeepsBlobs: a second backup leaves the data blobs of
// the first byte-identical with unchanged mtime and inode, adds blobs only
// for the changed index, and the archiver would see identical nodes.
func TestSecondSnapshotKeepsBlobs(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	seed(e)
	c := ctx(t)
	e.cfg.DeleteOlder = true
	cp1, err := elasticsearch.Backup(c, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := cp1.Finish(c); err != nil {
		t.Fatal(err)
	}
	// Date the data blobs back, so a rewrite shows in the mtime whatever
	// the file system's timestamp granularity (instead of sleeping past it).
	past := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	blobs, _ := filepath.Glob(filepath.Join(e.cfg.Location, "indices", "*", "*", "__*"))
	for _, b := range blobs {
		if err := os.Chtimes(b, past, past); err != nil {
			t.Fatal(err)
		}
	}
	before := statTree(t, e.cfg.Location)
	nodes1 := map[string]string{}
	collectNodes(t, cp1, "", nodes1)

	e.put("mqm_sp1001_users", map[string]string{"u3": `{"name":"cy"}`})
	cp2, err := elasticsearch.Backup(c, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	after := statTree(t, e.cfg.Location)
	var oldData, newData int
	for p, st := range before {
		if !isDataBlob(p) {
			continue
		}
		oldData++
		a, ok := after[p]
		if !ok {
			t.Errorf("data blob %s vanished", p)
			continue
		}
		if a.size != st.size || !a.mtime.Equal(st.mtime) || a.ino != st.ino || !bytes.Equal(a.data, st.data) {
			t.Errorf("data blob %s changed", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok && isDataBlob(p) {
			newData++
		}
	}
	if oldData == 0 || newData == 0 {
		t.Fatalf("old data blobs %d, new %d", oldData, newData)
	}
	if _, ok := after["index-0"]; ok {
		t.Error("index-0 still there after generation 1")
	}
	if cp2.Generation() != 1 {
		t.Errorf("generation %d", cp2.Generation())
	}
	// Unchanged index: every captured file of mqm_sp1001_items except its
	// shard generation and snap files is the same node as before.
	nodes2 := map[string]string{}
	collectNodes(t, cp2, "", nodes2)
	same := 0
	for p, n1 := range nodes1 {
		if isDataBlob(p) {
			if nodes2[p] != n1 {
				t.Errorf("node %s differs:\n%s\n%s", p, n1, nodes2[p])
			}
			same++
		}
	}
	if same != oldData {
		t.Errorf("%d unchanged data nodes, want %d", same, oldData)
	}
	if err := cp2.Finish(c); err != nil {
		t.Fatal(err)
	}
	deleted, err := cp2.DeleteOlder(c)
	if err != nil || !slices.Equal(deleted, []string{cp1.Snapshot()}) {
		t.Fatalf("DeleteOlder: %v %v", deleted, err)
	}
	// Blobs still referenced by the newest snapshot survive the deletion.
	final := statTree(t, e.cfg.Location)
	for p, st := range before {
		if isDataBlob(p) && strings.Contains(p, "/") {
			if a, ok := final[p]; ok && !a.mtime.Equal(st.mtime) {
				t.Errorf("%s rewritten by the deletion", p)
			}
		}
	}
	body := e.call(e.es.Snapshot.Get("cairn", []string{"_all"}))
	if strings.Contains(body, cp1.Snapshot()) || !strings.Contains(body, cp2.Snapshot()) {
		t.Errorf("snapshots after DeleteOlder: %s", body)
	}
}

func collectNodes(t *testing.T, cp *elasticsearch.Capture, dir string, out map[string]string) {
	t.Helper()
	nodes, err := cp.ReadDir(ctx(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		p := n.Name
		if dir != "" {
			p = dir + "/" + n.Name
		}
		if n.Type == "dir" {
			collectNodes(t, cp, p, out)
			continue
		}
		out[p] = n.ModTime.String() + " " + n.ChangeTime.String() + " " + itoa(int(n.Inode)) + " " + itoa(int(n.Size)) + " " + n.Mode.String()
	}
}

// TestDeleteOlderNeedsFinish: nothing is deleted before the copy is proven
// consistent.
func TestDeleteOlderNeedsFinish(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	seed(e)
	e.cfg.DeleteOlder = true
	cp, err := elasticsearch.Backup(ctx(t), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.DeleteOlder(ctx(t)); err == nil {
		t.Fatal("DeleteOlder before Finish succeeded")
	}
	e.cfg.DeleteOlder = false
	cp, err = elasticsearch.Backup(ctx(t), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := cp.DeleteOlder(ctx(t)); err != nil || d != nil {
		t.Fatalf("DeleteOlder without the option: %v %v", d, err)
	}
}
