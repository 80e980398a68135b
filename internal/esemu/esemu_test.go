package esemu_test

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/esemu"
	"github.com/cairn-backup/cairn/internal/poll"
	es8 "github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
)

type env struct {
	t   *testing.T
	emu *esemu.Server
	es  *es8.Client
}

func newEnv(t *testing.T, opts esemu.Options) *env {
	t.Helper()
	if opts.SegmentPadding == 0 {
		opts.SegmentPadding = 2 << 10
	}
	emu := esemu.Start(t, opts)
	es, err := es8.NewClient(es8.Config{Addresses: []string{emu.URL()}, DisableRetry: true})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t, emu, es}
}

type result struct {
	status int
	body   string
	header http.Header
}

func (e *env) try(res *esapi.Response, err error) result {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return result{res.StatusCode, string(b), res.Header}
}

func (e *env) ok(res *esapi.Response, err error) string {
	e.t.Helper()
	r := e.try(res, err)
	if r.status > 299 {
		e.t.Fatalf("HTTP %d: %s", r.status, r.body)
	}
	return r.body
}

// fails checks an error response: status, error.type and a reason part.
func (e *env) fails(r result, status int, typ, reason string) {
	e.t.Helper()
	var env struct {
		Error struct {
			Type      string `json:"type"`
			Reason    string `json:"reason"`
			RootCause []struct {
				Type string `json:"type"`
			} `json:"root_cause"`
			CausedBy *struct {
				Reason string `json:"reason"`
			} `json:"caused_by"`
		} `json:"error"`
		Status int `json:"status"`
	}
	if err := json.Unmarshal([]byte(r.body), &env); err != nil {
		e.t.Fatalf("error body %q: %v", r.body, err)
	}
	full := env.Error.Reason
	if env.Error.CausedBy != nil {
		full += " / " + env.Error.CausedBy.Reason
	}
	if r.status != status || env.Status != status || env.Error.Type != typ || !strings.Contains(full, reason) || len(env.Error.RootCause) == 0 {
		e.t.Fatalf("got HTTP %d %s, want %d %s %q", r.status, r.body, status, typ, reason)
	}
	if r.header.Get("X-Elastic-Product") != "Elasticsearch" {
		e.t.Fatal("error response without product header")
	}
}

func (e *env) index(name string, shards int, docs map[string]string) {
	e.t.Helper()
	e.ok(e.es.Indices.Create(name, e.es.Indices.Create.WithBody(strings.NewReader(
		`{"settings":{"number_of_shards":`+strconv.Itoa(shards)+`,"number_of_replicas":0},"mappings":{"properties":{"n":{"type":"long"}}}}`))))
	e.put(name, docs)
}

func (e *env) put(name string, docs map[string]string) {
	e.t.Helper()
	for id, src := range docs {
		e.ok(e.es.Index(name, strings.NewReader(src), e.es.Index.WithDocumentID(id)))
	}
}

func (e *env) repo(name string, settings string) string {
	e.t.Helper()
	loc := e.emu.RepoDir(name)
	e.ok(e.es.Snapshot.CreateRepository(name, strings.NewReader(`{"type":"fs","settings":{"location":"`+loc+`"`+settings+`}}`)))
	return loc
}

func (e *env) snapshot(repo, name, indices string) map[string]any {
	e.t.Helper()
	body := e.ok(e.es.Snapshot.Create(repo, name, e.es.Snapshot.Create.WithWaitForCompletion(true),
		e.es.Snapshot.Create.WithBody(strings.NewReader(`{"indices":"`+indices+`","include_global_state":false}`))))
	var out struct{ Snapshot map[string]any }
	json.Unmarshal([]byte(body), &out)
	if out.Snapshot["state"] != "SUCCESS" {
		e.t.Fatalf("snapshot: %s", body)
	}
	return out.Snapshot
}

func docs(n int, tag string) map[string]string {
	out := map[string]string{}
	for i := range n {
		out[tag+strconv.Itoa(i)] = `{"n":` + strconv.Itoa(i) + `,"tag":"` + tag + `"}`
	}
	return out
}

type file struct {
	data  []byte
	mtime time.Time
}

func tree(t *testing.T, root string) map[string]file {
	t.Helper()
	out := map[string]file{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if d.IsDir() {
			return nil
		}
		fi, _ := d.Info()
		data, _ := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = file{data, fi.ModTime()}
		return nil
	})
	return out
}

// checkLucene verifies a CodecUtil header (magic, codec name) and footer
// (magic, algorithm 0, CRC32 of everything before the checksum) written by
// the emulator, independently of its code, and returns the payload start.
func checkLucene(t *testing.T, name string, data []byte, codec string) int {
	t.Helper()
	if len(data) < 4+1+4+16 || binary.BigEndian.Uint32(data) != 0x3FD76C17 {
		t.Fatalf("%s: bad header magic", name)
	}
	n := int(data[4]) // codec names here are < 128 bytes: a one-byte VInt
	got := string(data[5 : 5+n])
	if codec != "" && got != codec {
		t.Fatalf("%s: codec %q, want %q", name, got, codec)
	}
	if v := binary.BigEndian.Uint32(data[5+n:]); v != 1 {
		t.Fatalf("%s: version %d", name, v)
	}
	f := data[len(data)-16:]
	if binary.BigEndian.Uint32(f) != 0xC02893E8 || binary.BigEndian.Uint32(f[4:]) != 0 {
		t.Fatalf("%s: bad footer", name)
	}
	if crc := crc32.ChecksumIEEE(data[:len(data)-8]); uint64(crc) != binary.BigEndian.Uint64(f[8:]) {
		t.Fatalf("%s: CRC mismatch", name)
	}
	return 5 + n + 4
}

// checksumPayload decodes a metadata blob's payload ("DFL\0"+DEFLATE of
// the emulator's JSON stand-in for SMILE).
func checksumPayload(t *testing.T, name string, data []byte, codec string) map[string]any {
	t.Helper()
	off := checkLucene(t, name, data, codec)
	p := data[off : len(data)-16]
	if !bytes.HasPrefix(p, []byte("DFL\x00")) {
		t.Fatalf("%s: payload not compressed", name)
	}
	raw, err := io.ReadAll(flate.NewReader(bytes.NewReader(p[4:])))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}

type repoData struct {
	MinVersion string `json:"min_version"`
	UUID       string `json:"uuid"`
	ClusterID  string `json:"cluster_id"`
	Snapshots  []struct {
		Name                string            `json:"name"`
		UUID                string            `json:"uuid"`
		State               int               `json:"state"`
		IndexMetadataLookup map[string]string `json:"index_metadata_lookup"`
		Version             any               `json:"version"`
		StartTimeMillis     int64             `json:"start_time_millis"`
		EndTimeMillis       int64             `json:"end_time_millis"`
		SLMPolicy           string            `json:"slm_policy"`
	} `json:"snapshots"`
	Indices map[string]struct {
		ID               string   `json:"id"`
		Snapshots        []string `json:"snapshots"`
		ShardGenerations []string `json:"shard_generations"`
	} `json:"indices"`
	IndexMetadataIdentifiers map[string]string `json:"index_metadata_identifiers"`
}

func readRepoData(t *testing.T, files map[string]file) (int64, repoData) {
	t.Helper()
	var gens []int64
	for p := range files {
		if g, ok := strings.CutPrefix(p, "index-"); ok && !strings.Contains(p, "/") {
			n, err := strconv.ParseInt(g, 10, 64)
			if err != nil {
				t.Fatalf("root file %s", p)
			}
			gens = append(gens, n)
		}
	}
	if len(gens) != 1 {
		t.Fatalf("root generations %v, want exactly one", gens)
	}
	latest := files["index.latest"].data
	if len(latest) != 8 || int64(binary.BigEndian.Uint64(latest)) != gens[0] {
		t.Fatalf("index.latest %x, generation %d", latest, gens[0])
	}
	var rd repoData
	dec := json.NewDecoder(bytes.NewReader(files["index-"+strconv.FormatInt(gens[0], 10)].data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rd); err != nil {
		t.Fatalf("index-%d: %v", gens[0], err)
	}
	return gens[0], rd
}

var base64UUID = func(s string) bool {
	if len(s) != 22 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// checkLayout verifies the layout rules of docs/ELASTICSEARCH.md §1-§3 on a repository directory and
// returns its repository data.
func checkLayout(t *testing.T, loc string) (int64, repoData, map[string]file) {
	t.Helper()
	files := tree(t, loc)
	gen, rd := readRepoData(t, files)
	if rd.MinVersion == "" || !base64UUID(rd.UUID) || !base64UUID(rd.ClusterID) {
		t.Fatalf("index-%d header: %+v", gen, rd)
	}
	for p, f := range files {
		base := filepath.Base(p)
		depth := strings.Count(p, "/")
		switch {
		case strings.HasPrefix(base, "pending-") || strings.HasPrefix(p, "tests-"):
			t.Errorf("transient file left: %s", p)
		case depth == 0 && strings.HasPrefix(base, "snap-"):
			checksumPayload(t, p, f.data, "snapshot")
		case depth == 0 && strings.HasPrefix(base, "meta-"):
			checksumPayload(t, p, f.data, "metadata")
		case depth == 2 && strings.HasPrefix(base, "meta-"):
			checksumPayload(t, p, f.data, "index-metadata")
		case depth == 3 && strings.HasPrefix(base, "snap-"):
			checksumPayload(t, p, f.data, "snapshot")
		case depth == 3 && strings.HasPrefix(base, "index-"):
			checksumPayload(t, p, f.data, "snapshots")
		case depth == 3 && strings.HasPrefix(base, "__"):
			if !base64UUID(strings.SplitN(base[2:], ".", 2)[0]) {
				t.Errorf("data blob name %s", p)
			}
			if !strings.Contains(base, ".part") {
				checkLucene(t, p, f.data, "")
			}
		case depth == 0 && (base == "index.latest" || strings.HasPrefix(base, "index-")):
		default:
			t.Errorf("unexpected file %s", p)
		}
	}
	for _, sn := range rd.Snapshots {
		for _, name := range []string{"snap-" + sn.UUID + ".dat", "meta-" + sn.UUID + ".dat"} {
			if _, ok := files[name]; !ok {
				t.Errorf("snapshot %s: %s missing", sn.Name, name)
			}
		}
		for id, ident := range sn.IndexMetadataLookup {
			blob, ok := rd.IndexMetadataIdentifiers[ident]
			if !ok {
				t.Errorf("identifier %s not in index_metadata_identifiers", ident)
			}
			if _, ok := files["indices/"+id+"/meta-"+blob+".dat"]; !ok {
				t.Errorf("index metadata indices/%s/meta-%s.dat missing", id, blob)
			}
			if !strings.HasSuffix(ident, "-1-1-1") {
				t.Errorf("identifier %s: want <uuid>-<history>-settings-mapping-aliases versions", ident)
			}
		}
	}
	for name, ix := range rd.Indices {
		if !base64UUID(ix.ID) {
			t.Errorf("index %s id %q", name, ix.ID)
		}
		for s, g := range ix.ShardGenerations {
			p := "indices/" + ix.ID + "/" + strconv.Itoa(s) + "/index-" + g
			if _, ok := files[p]; !ok {
				t.Errorf("shard generation %s missing", p)
			}
			// Exactly one generation per shard once cleanup has run.
			n := 0
			for q := range files {
				if strings.HasPrefix(q, "indices/"+ix.ID+"/"+strconv.Itoa(s)+"/index-") {
					n++
				}
			}
			if n != 1 {
				t.Errorf("shard %s/%d has %d generation files", name, s, n)
			}
		}
	}
	return gen, rd, files
}

func TestLayoutFirstSnapshot(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	e.index("mqm_a", 2, docs(30, "a"))
	e.index("mqm_b", 1, docs(5, "b"))
	loc := e.repo("r", "")
	e.snapshot("r", "s1", "mqm_*")
	gen, rd, files := checkLayout(t, loc)
	if gen != 0 || len(rd.Snapshots) != 1 || rd.Snapshots[0].State != 1 || len(rd.Indices) != 2 {
		t.Fatalf("generation %d, data %+v", gen, rd)
	}
	if rd.ClusterID != e.emu.ClusterUUID() {
		t.Errorf("cluster_id %s, want %s", rd.ClusterID, e.emu.ClusterUUID())
	}
	if len(rd.Indices["mqm_a"].ShardGenerations) != 2 {
		t.Errorf("shard generations %v", rd.Indices["mqm_a"].ShardGenerations)
	}
	// Small files are virtual: no __ blob holds a segments_N or .si file.
	blobs := 0
	for p, f := range files {
		if strings.Contains(p, "/__") {
			blobs++
			if bytes.Contains(f.data[:40], []byte("segments")) || bytes.Contains(f.data[:40], []byte("SegmentInfo")) {
				t.Errorf("%s holds a file that should be virtual", p)
			}
		}
	}
	if blobs != 3*2 { // .cfs and .cfe of one segment per shard, 3 shards
		t.Errorf("%d data blobs, want 6", blobs)
	}
	// GET shows the repository uuid read from index-N.
	body := e.ok(e.es.Snapshot.GetRepository(e.es.Snapshot.GetRepository.WithRepository("r")))
	if !strings.Contains(body, `"uuid":"`+rd.UUID+`"`) || !strings.Contains(body, `"location":"`+loc+`"`) {
		t.Errorf("get repository: %s", body)
	}
}

func TestIncrementalSecondSnapshot(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	e.index("mqm_a", 1, docs(20, "a"))
	e.index("mqm_b", 1, docs(20, "b"))
	loc := e.repo("r", "")
	e.snapshot("r", "s1", "mqm_*")
	_, rd1, before := checkLayout(t, loc)
	// Date the data blobs back, so a rewrite shows in the mtime whatever
	// the file system's timestamp granularity (instead of sleeping past it).
	past := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	for p, f := range before {
		if strings.Contains(p, "/__") {
			if err := os.Chtimes(filepath.Join(loc, filepath.FromSlash(p)), past, past); err != nil {
				t.Fatal(err)
			}
			f.mtime = past
			before[p] = f
		}
	}
	e.put("mqm_a", docs(3, "more"))
	e.snapshot("r", "s2", "mqm_*")
	gen, rd2, after := checkLayout(t, loc)
	if gen != 1 {
		t.Fatalf("generation %d", gen)
	}
	if rd2.UUID != rd1.UUID {
		t.Error("repository uuid changed")
	}
	aDir := "indices/" + rd2.Indices["mqm_a"].ID + "/0/"
	bDir := "indices/" + rd2.Indices["mqm_b"].ID + "/0/"
	for p, f := range before {
		if !strings.Contains(p, "/__") {
			continue
		}
		g, ok := after[p]
		if !ok || !bytes.Equal(g.data, f.data) || !g.mtime.Equal(f.mtime) {
			t.Errorf("data blob %s changed or vanished", p)
		}
	}
	var newA, newB, newMeta int
	for p := range after {
		if _, old := before[p]; old {
			continue
		}
		switch {
		case strings.HasPrefix(p, aDir+"__"):
			newA++
		case strings.HasPrefix(p, bDir+"__"):
			newB++
		case strings.HasPrefix(p, "indices/") && strings.HasPrefix(filepath.Base(p), "meta-"):
			newMeta++
		}
	}
	if newA != 2 || newB != 0 || newMeta != 0 {
		t.Errorf("new blobs: a %d (want 2), b %d (want 0), index metadata %d (want 0: reused)", newA, newB, newMeta)
	}
	if rd2.Indices["mqm_b"].ShardGenerations[0] == rd1.Indices["mqm_b"].ShardGenerations[0] {
		t.Error("unchanged shard kept its generation; a snapshot writes a new one")
	}
	var st struct {
		Snapshots []struct {
			Indices map[string]struct {
				Stats struct {
					Incremental struct {
						FileCount int `json:"file_count"`
					} `json:"incremental"`
					Total struct {
						FileCount int `json:"file_count"`
					} `json:"total"`
				} `json:"stats"`
			} `json:"indices"`
		} `json:"snapshots"`
	}
	json.Unmarshal([]byte(e.ok(e.es.Snapshot.Status(e.es.Snapshot.Status.WithRepository("r"), e.es.Snapshot.Status.WithSnapshot("s2")))), &st)
	s := st.Snapshots[0].Indices
	if s["mqm_b"].Stats.Incremental.FileCount != 0 || s["mqm_a"].Stats.Incremental.FileCount == 0 || s["mqm_b"].Stats.Total.FileCount == 0 {
		t.Errorf("status stats %+v", s)
	}
}

func TestDeleteSnapshot(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	e.index("mqm_a", 1, docs(10, "a"))
	e.index("mqm_gone", 1, docs(2, "g"))
	loc := e.repo("r", "")
	e.snapshot("r", "s1", "mqm_*")
	_, rd1, _ := checkLayout(t, loc)
	e.ok(e.es.Indices.Forcemerge(e.es.Indices.Forcemerge.WithIndex("mqm_a")))
	e.put("mqm_a", docs(1, "x"))
	e.ok(e.es.Indices.Forcemerge(e.es.Indices.Forcemerge.WithIndex("mqm_a"))) // all old segments replaced
	e.snapshot("r", "s2", "mqm_a")
	e.ok(e.es.Snapshot.Delete("r", []string{"s1"}))
	_, rd, files := checkLayout(t, loc)
	if len(rd.Snapshots) != 1 || rd.Snapshots[0].Name != "s2" {
		t.Fatalf("snapshots %+v", rd.Snapshots)
	}
	if _, ok := rd.Indices["mqm_gone"]; ok {
		t.Error("index only in s1 still in repository data")
	}
	for p := range files {
		if strings.HasPrefix(p, "indices/"+rd1.Indices["mqm_gone"].ID) {
			t.Errorf("%s left after its last snapshot was deleted", p)
		}
		if strings.Contains(p, rd1.Snapshots[0].UUID) {
			t.Errorf("%s of deleted snapshot left", p)
		}
	}
	blobs := 0
	for p := range files {
		if strings.Contains(p, "/__") {
			blobs++
		}
	}
	if blobs != 2 { // only the merged segment's .cfs and .cfe remain
		t.Errorf("%d data blobs after delete, want 2", blobs)
	}
	e.fails(e.try(e.es.Snapshot.Delete("r", []string{"s1"})), 404, "snapshot_missing_exception", "[r:s1] is missing")
}

func TestConcurrentModification(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	e.index("mqm_a", 1, docs(3, "a"))
	e.repo("r", "")
	e.snapshot("r", "s1", "mqm_a")
	if _, err := e.emu.ForeignWriter("r"); err != nil {
		t.Fatal(err)
	}
	create := func() result {
		return e.try(e.es.Snapshot.Create("r", "s2", e.es.Snapshot.Create.WithWaitForCompletion(true)))
	}
	e.fails(create(), 500, "repository_exception", "concurrent modification of the index-N file, expected current generation [0], actual current generation [1]")
	e.fails(create(), 500, "repository_exception", "Could not read repository data because the contents of the repository do not match its expected state")
	if info, _ := e.emu.Repository("r"); info.TrackedGen != -3 {
		t.Errorf("tracked generation %d, want -3 (corrupted)", info.TrackedGen)
	}
	e.repo("r", "") // re-registering recovers
	if r := create(); r.status != 200 {
		t.Fatalf("after re-register: %s", r.body)
	}
}

func TestRestoreFromDisk(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	e.index("mqm_a", 2, docs(25, "a"))
	e.ok(e.es.Delete("mqm_a", "a3"))
	e.ok(e.es.Indices.Flush(e.es.Indices.Flush.WithIndex("mqm_a")))
	e.put("mqm_a", map[string]string{"a4": `{"n":44}`})
	want, _ := e.emu.Docs("mqm_a")
	loc := e.repo("r", "")
	e.snapshot("r", "s1", "mqm_a")

	// Restoring over an open index: 500, the exact ES message.
	e.fails(e.try(e.es.Snapshot.Restore("r", "s1", e.es.Snapshot.Restore.WithWaitForCompletion(true))), 500,
		"snapshot_restore_exception", "cannot restore index [mqm_a] because an open index with same name already exists in the cluster")
	// Closing with a wildcard: refused on 8.x.
	e.fails(e.try(e.es.Indices.Close([]string{"mqm_*"})), 400, "illegal_argument_exception", "Wildcard expressions or all indices are not allowed")
	e.ok(e.es.Indices.Delete([]string{"mqm_a"}))
	body := e.ok(e.es.Snapshot.Restore("r", "s1", e.es.Snapshot.Restore.WithWaitForCompletion(true)))
	if !strings.Contains(body, `"shards":{"failed":0,"successful":2,"total":2}`) {
		t.Fatalf("restore: %s", body)
	}
	got, err := e.emu.Docs("mqm_a")
	if err != nil || len(got) != len(want) || string(got["a4"]) != string(want["a4"]) || got["a3"] != nil {
		t.Fatalf("restored %d docs (%v), want %d", len(got), err, len(want))
	}

	// Nothing is cached: damage one data blob on disk and the restore fails
	// that shard, the index is red and cannot be searched.
	files := tree(t, loc)
	var victim string
	for p := range files {
		if strings.HasSuffix(p, "/0/"+filepath.Base(p)) && strings.Contains(p, "/__") {
			victim = p
		}
	}
	data := files[victim].data
	data[30] ^= 1
	os.WriteFile(filepath.Join(loc, victim), data, 0o644)
	e.ok(e.es.Indices.Delete([]string{"mqm_a"}))
	body = e.ok(e.es.Snapshot.Restore("r", "s1", e.es.Snapshot.Restore.WithWaitForCompletion(true)))
	if !strings.Contains(body, `"failed":1`) {
		t.Fatalf("restore with a damaged blob: %s", body)
	}
	if st, _ := e.emu.Index("mqm_a"); st.Health != "red" || len(st.ShardErrs) != 1 || !strings.Contains(st.ShardErrs[0], "checksum") {
		t.Errorf("index state %+v", st)
	}
	if c := e.ok(e.es.Count(e.es.Count.WithIndex("mqm_a"))); !strings.Contains(c, `"failed":1`) {
		t.Errorf("count over a failed shard: %s", c)
	}
	e.fails(e.try(e.es.Get("mqm_a", victimDoc(e))), 503, "no_shard_available_action_exception", "primary shard is not active")
	// A missing root snap- blob: snapshot missing.
	for p := range files {
		if strings.HasPrefix(p, "snap-") {
			os.Remove(filepath.Join(loc, p))
		}
	}
	e.fails(e.try(e.es.Snapshot.Get("r", []string{"s1"})), 404, "snapshot_missing_exception", "[r:s1] is missing")
}

func TestRestoreRules(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	e.index("mqm_a", 1, docs(3, "a"))
	e.index("mqm_b", 1, docs(3, "b"))
	e.repo("r", "")
	e.snapshot("r", "s1", "mqm_*")
	restore := func(body string) result {
		return e.try(e.es.Snapshot.Restore("r", "s1", e.es.Snapshot.Restore.WithWaitForCompletion(true),
			e.es.Snapshot.Restore.WithBody(strings.NewReader(body))))
	}
	e.fails(restore(`{"indices":"mqm_*","rename_pattern":"mqm_.*","rename_replacement":"same"}`), 500, "snapshot_restore_exception",
		"indices [mqm_a] and [mqm_b] are renamed into the same index [same]")
	e.fails(restore(`{"indices":"mqm_x"}`), 404, "index_not_found_exception", "no such index [mqm_x]")
	e.fails(restore(`{"include_global_state":true}`), 500, "snapshot_restore_exception", "cannot restore global state")
	// Java replaceAll semantics: $1 is group 1 even before letters.
	r := restore(`{"indices":"mqm_a","rename_pattern":"mqm_(.+)","rename_replacement":"r_$1x"}`)
	if r.status != 200 || !strings.Contains(r.body, `"indices":["r_ax"]`) {
		t.Fatalf("rename: %s", r.body)
	}
	// Closed index with another shard count.
	e.ok(e.es.Indices.Delete([]string{"mqm_b"}))
	e.index("mqm_b", 2, nil)
	e.ok(e.es.Indices.Close([]string{"mqm_b"}))
	e.fails(restore(`{"indices":"mqm_b"}`), 500, "snapshot_restore_exception", "cannot restore index [mqm_b] with [2] shards from a snapshot of index [mqm_b] with [1] shards")
	// FAILED and PARTIAL snapshots.
	e.emu.FailNextSnapshot("aborted")
	if r := e.try(e.es.Snapshot.Create("r", "failed", e.es.Snapshot.Create.WithWaitForCompletion(true),
		e.es.Snapshot.Create.WithBody(strings.NewReader(`{"indices":"mqm_a"}`)))); !strings.Contains(r.body, `"state":"FAILED"`) {
		t.Fatalf("failed snapshot: %s", r.body)
	}
	e.fails(e.try(e.es.Snapshot.Restore("r", "failed")), 500, "snapshot_restore_exception", "unsupported snapshot state [FAILED]")
	e.emu.FailShard("mqm_a", 0)
	r = e.try(e.es.Snapshot.Create("r", "partial", e.es.Snapshot.Create.WithWaitForCompletion(true),
		e.es.Snapshot.Create.WithBody(strings.NewReader(`{"indices":"mqm_a","partial":true}`))))
	if !strings.Contains(r.body, `"state":"PARTIAL"`) || !strings.Contains(r.body, `"shard_id":0`) {
		t.Fatalf("partial: %s", r.body)
	}
	e.fails(e.try(e.es.Snapshot.Restore("r", "partial", e.es.Snapshot.Restore.WithBody(strings.NewReader(`{"rename_pattern":"(.+)","rename_replacement":"p_$1"}`)))),
		500, "snapshot_restore_exception", "index [mqm_a] wasn't fully snapshotted - cannot restore")
}

func TestSnapshotRules(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	e.index("mqm_a", 1, docs(3, "a"))
	e.repo("r", "")
	for name, why := range map[string]string{"Upper": "must be lowercase", "_x": "must not start with '_'", "a b": "must not contain whitespace", "a,b": "must not contain ','"} {
		e.fails(e.try(e.es.Snapshot.Create("r", name)), 400, "invalid_snapshot_name_exception", why)
	}
	e.snapshot("r", "s1", "mqm_a")
	e.fails(e.try(e.es.Snapshot.Create("r", "s1", e.es.Snapshot.Create.WithWaitForCompletion(true))), 400,
		"snapshot_name_already_in_use_exception", "[r:s1] Invalid snapshot name [s1], snapshot with the same name already exists")
	e.fails(e.try(e.es.Snapshot.Create("nope", "s1")), 404, "repository_missing_exception", "[nope] missing")
	e.fails(e.try(e.es.Snapshot.Create("r", "s2", e.es.Snapshot.Create.WithBody(strings.NewReader(`{"indices":"mqm_missing"}`)))),
		404, "index_not_found_exception", "no such index [mqm_missing]")
	e.emu.UnassignPrimary("mqm_a")
	e.fails(e.try(e.es.Snapshot.Create("r", "s3", e.es.Snapshot.Create.WithWaitForCompletion(true))), 500, "snapshot_exception", "Indices don't have primary shards [mqm_a]")
	// Read-only repository.
	e.ok(e.es.Snapshot.CreateRepository("ro", strings.NewReader(`{"type":"fs","settings":{"location":"`+e.emu.RepoDir("r")+`","readonly":true}}`)))
	e.fails(e.try(e.es.Snapshot.Create("ro", "s4")), 500, "repository_exception", "[ro] repository is readonly")
	e.fails(e.try(e.es.Snapshot.CleanupRepository("ro")), 500, "repository_exception", "[ro] repository is readonly")
	body := e.ok(e.es.Snapshot.Get("ro", []string{"_all"}))
	if !strings.Contains(body, `"snapshot":"s1"`) || !strings.Contains(body, `"total":1`) {
		t.Errorf("read-only repository lists %s", body)
	}
}

func TestInProgress(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	e.index("mqm_a", 1, docs(3, "a"))
	e.repo("r", "")
	e.emu.SnapshotDelay(400 * time.Millisecond)
	body := e.ok(e.es.Snapshot.Create("r", "slow", e.es.Snapshot.Create.WithBody(strings.NewReader(`{"indices":"mqm_a"}`))))
	if body != `{"accepted":true}` {
		t.Fatalf("async create: %s", body)
	}
	if g := e.ok(e.es.Snapshot.Get("r", []string{"slow"})); !strings.Contains(g, `"state":"IN_PROGRESS"`) {
		t.Errorf("get while running: %s", g)
	}
	if g := e.ok(e.es.Snapshot.Status()); !strings.Contains(g, `"snapshot":"slow"`) {
		t.Errorf("current status: %s", g)
	}
	e.fails(e.try(e.es.Snapshot.Create("r", "slow")), 400, "snapshot_name_already_in_use_exception", "already in-progress")
	e.fails(e.try(e.es.Indices.Close([]string{"mqm_a"})), 400, "snapshot_in_progress_exception", "Cannot close indices that are being snapshotted")
	e.fails(e.try(e.es.Snapshot.DeleteRepository([]string{"r"})), 409, "repository_conflict_exception", "currently used")
	poll.Until(t, "the snapshot to finish", func() bool {
		return strings.Contains(e.ok(e.es.Snapshot.Get("r", []string{"slow"})), `"state":"SUCCESS"`)
	})
	// Deleting a running snapshot aborts it.
	e.ok(e.es.Snapshot.Create("r", "aborted"))
	e.ok(e.es.Snapshot.Delete("r", []string{"aborted"}))
	poll.Until(t, "the aborted snapshot to stop", func() bool { return len(e.emu.Running()) == 0 })
	e.fails(e.try(e.es.Snapshot.Get("r", []string{"aborted"})), 404, "snapshot_missing_exception", "[r:aborted] is missing")
}

func TestPostFinalizeCleanup(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	e.index("mqm_a", 1, docs(3, "a"))
	loc := e.repo("r", "")
	e.snapshot("r", "s1", "mqm_a")
	e.emu.PostFinalizeCleanupDelay(200 * time.Millisecond)
	e.put("mqm_a", docs(1, "b"))
	e.snapshot("r", "s2", "mqm_a")
	if _, err := os.Stat(filepath.Join(loc, "index-0")); err != nil {
		t.Fatal("index-0 deleted before the answer")
	}
	poll.Until(t, "the delayed cleanup of index-0 and the old shard generation", func() bool {
		root, _ := filepath.Glob(filepath.Join(loc, "index-[0-9]*"))
		shard, _ := filepath.Glob(filepath.Join(loc, "indices", "*", "0", "index-*"))
		return len(root) == 1 && len(shard) == 1
	})
	checkLayout(t, loc) // exactly one generation, no superseded shard generation
}

func TestRepositoryRegistration(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	outside := t.TempDir()
	e.fails(e.try(e.es.Snapshot.CreateRepository("x", strings.NewReader(`{"type":"fs","settings":{"location":"`+outside+`"}}`))),
		500, "repository_exception", "[x] location ["+outside+"] doesn't match any of the locations specified by path.repo")
	e.fails(e.try(e.es.Snapshot.CreateRepository("x", strings.NewReader(`{"type":"fs","settings":{}}`))), 500, "repository_exception", "[x] missing location")
	e.fails(e.try(e.es.Snapshot.CreateRepository("x", strings.NewReader(`{"type":"s3","settings":{}}`))), 500, "repository_exception", "repository type [s3] does not exist")
	// Relative locations resolve against path.repo; verify writes tests-*
	// and removes it again.
	e.ok(e.es.Snapshot.CreateRepository("rel", strings.NewReader(`{"type":"fs","settings":{"location":"relative"}}`)))
	if info, _ := e.emu.Repository("rel"); info.Location != e.emu.RepoDir("relative") {
		t.Errorf("relative location resolved to %s", info.Location)
	}
	if v := e.ok(e.es.Snapshot.VerifyRepository("rel")); !strings.Contains(v, `"nodes"`) {
		t.Errorf("verify: %s", v)
	}
	if entries, _ := os.ReadDir(e.emu.RepoDir("relative")); len(entries) != 0 {
		t.Errorf("verification left %v", entries)
	}
	e.fails(e.try(e.es.Snapshot.GetRepository(e.es.Snapshot.GetRepository.WithRepository("nope"))), 404, "repository_missing_exception", "[nope] missing")
	// A read-only registration of a missing directory fails verification.
	e.fails(e.try(e.es.Snapshot.CreateRepository("ro", strings.NewReader(`{"type":"fs","settings":{"location":"missing","readonly":true}}`))),
		500, "repository_verification_exception", "is not accessible on master node")
}

func TestChunkedBlobs(t *testing.T) {
	e := newEnv(t, esemu.Options{SegmentPadding: 5000})
	e.index("mqm_a", 1, docs(10, "a"))
	loc := e.repo("r", `,"chunk_size":"2kb","compress":false`)
	e.snapshot("r", "s1", "mqm_a")
	parts := 0
	for p, f := range tree(t, loc) {
		if strings.Contains(p, ".part") {
			parts++
			if len(f.data) > 2048 {
				t.Errorf("%s has %d bytes", p, len(f.data))
			}
		}
		if strings.HasPrefix(p, "snap-") && bytes.Contains(f.data, []byte("DFL\x00")) {
			t.Error("compress=false still compressed")
		}
	}
	if parts < 3 {
		t.Fatalf("%d parts", parts)
	}
	e.ok(e.es.Indices.Delete([]string{"mqm_a"}))
	e.ok(e.es.Snapshot.Restore("r", "s1", e.es.Snapshot.Restore.WithWaitForCompletion(true)))
	if d, err := e.emu.Docs("mqm_a"); err != nil || len(d) != 10 {
		t.Fatalf("restored %d docs: %v", len(d), err)
	}
}

func TestSegmentsDeterministicAndMerged(t *testing.T) {
	files := func(threshold int) []string {
		e := newEnv(t, esemu.Options{MergeThreshold: threshold})
		e.index("mqm_a", 1, nil)
		for i := range 4 {
			e.put("mqm_a", docs(3, "batch"+strconv.Itoa(i)))
			e.ok(e.es.Indices.Refresh(e.es.Indices.Refresh.WithIndex("mqm_a")))
		}
		e.ok(e.es.Delete("mqm_a", "batch00"))
		e.ok(e.es.Indices.Flush(e.es.Indices.Flush.WithIndex("mqm_a")))
		st, _ := e.emu.Index("mqm_a")
		out := slices.Clone(st.Files)
		sort.Strings(out)
		// Round trip through a repository.
		e.repo("r", "")
		e.snapshot("r", "s", "mqm_a")
		want, _ := e.emu.Docs("mqm_a")
		e.ok(e.es.Indices.Delete([]string{"mqm_a"}))
		e.ok(e.es.Snapshot.Restore("r", "s", e.es.Snapshot.Restore.WithWaitForCompletion(true)))
		got, _ := e.emu.Docs("mqm_a")
		if len(got) != len(want) || len(got) != 11 {
			t.Fatalf("threshold %d: restored %d docs, want %d", threshold, len(got), len(want))
		}
		return out
	}
	unmerged := files(-1)
	merged := files(2)
	if len(unmerged) <= len(merged) {
		t.Errorf("merge did not reduce files: %v vs %v", unmerged, merged)
	}
	if !strings.Contains(strings.Join(unmerged, " "), ".liv") {
		t.Errorf("no live-docs file after a deletion: %v", unmerged)
	}
	// Same documents, same order: identical files in another cluster.
	a, b := newEnv(t, esemu.Options{}), newEnv(t, esemu.Options{})
	for _, e := range []*env{a, b} {
		e.index("mqm_a", 1, nil)
		for i := range 5 {
			e.ok(e.es.Index("mqm_a", strings.NewReader(`{"n":`+strconv.Itoa(i)+`}`), e.es.Index.WithDocumentID(strconv.Itoa(i))))
		}
		e.ok(e.es.Indices.Flush(e.es.Indices.Flush.WithIndex("mqm_a")))
		e.repo("r", "")
		e.snapshot("r", "s", "mqm_a")
	}
	blobs := func(e *env) map[int]string {
		out := map[int]string{}
		for p, f := range tree(t, e.emu.RepoDir("r")) {
			if strings.Contains(p, "/__") {
				out[len(f.data)] = string(f.data)
			}
		}
		return out
	}
	ba, bb := blobs(a), blobs(b)
	if len(ba) != 2 {
		t.Fatalf("%d blobs", len(ba))
	}
	for n, d := range ba {
		if bb[n] != d {
			t.Error("segment files differ for identical documents")
		}
	}
}

func TestTransport(t *testing.T) {
	e := newEnv(t, esemu.Options{})
	req, _ := http.NewRequest("PUT", e.emu.URL()+"/mqm_a", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "text/plain")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 406 || string(b) != `{"error":"Content-Type header [text/plain] is not supported","status":406}` {
		t.Errorf("406: %d %s", res.StatusCode, b)
	}
	res, _ = http.Get(e.emu.URL() + "/_nothing/here")
	b, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 400 || !strings.Contains(string(b), `"error":"no handler found for uri [/_nothing/here] and method [GET]"`) ||
		res.Header.Get("X-Elastic-Product") != "Elasticsearch" || res.Header.Get("Content-Type") != "application/json" {
		t.Errorf("unknown route: %d %s %v", res.StatusCode, b, res.Header)
	}
	// The compatibility media type is accepted.
	cc, _ := es8.NewClient(es8.Config{Addresses: []string{e.emu.URL()}, EnableCompatibilityMode: true})
	e.ok(cc.Indices.Create("mqm_c", cc.Indices.Create.WithBody(strings.NewReader(`{}`))))
	e.fails(e.try(e.es.Indices.Create("mqm_c")), 400, "resource_already_exists_exception", "index [mqm_c/")
	e.fails(e.try(e.es.Get("mqm_missing", "1")), 404, "index_not_found_exception", "no such index [mqm_missing]")
	// Without the product header the client refuses the first answer.
	e.emu.OmitProductHeader(true)
	fresh, _ := es8.NewClient(es8.Config{Addresses: []string{e.emu.URL()}})
	if _, err := fresh.Info(); err == nil || !strings.Contains(err.Error(), "not Elasticsearch") {
		t.Errorf("product check: %v", err)
	}
	e.emu.OmitProductHeader(false)
	// Cluster health: 408 when the wait times out (replicas cannot be
	// assigned on one node).
	e.ok(e.es.Indices.Create("mqm_r", e.es.Indices.Create.WithBody(strings.NewReader(`{"settings":{"number_of_replicas":1}}`))))
	r := e.try(e.es.Cluster.Health(e.es.Cluster.Health.WithIndex("mqm_r"), e.es.Cluster.Health.WithWaitForStatus("green"), e.es.Cluster.Health.WithTimeout(100*time.Millisecond)))
	if r.status != 408 || !strings.Contains(r.body, `"timed_out":true`) || !strings.Contains(r.body, `"status":"yellow"`) {
		t.Errorf("health: %d %s", r.status, r.body)
	}
	cat := e.ok(e.es.Cat.Indices(e.es.Cat.Indices.WithIndex("mqm_*"), e.es.Cat.Indices.WithFormat("json"), e.es.Cat.Indices.WithH("index", "status", "docs.count")))
	if cat != `[{"docs.count":"0","index":"mqm_c","status":"open"},{"docs.count":"0","index":"mqm_r","status":"open"}]` {
		t.Errorf("cat: %s", cat)
	}
	res2 := e.ok(e.es.Indices.ResolveIndex([]string{"mqm_*"}))
	if !strings.Contains(res2, `{"attributes":["open"],"name":"mqm_c"}`) {
		t.Errorf("resolve: %s", res2)
	}
}

func TestVersion7(t *testing.T) {
	e := newEnv(t, esemu.Options{Version: "7.17.20"})
	e.index("mqm_a", 1, docs(2, "a"))
	e.repo("r", "")
	e.snapshot("r", "s1", "mqm_a")
	e.fails(e.try(e.es.Snapshot.Create("r", "s1")), 400, "invalid_snapshot_name_exception", "already exists")
	e.ok(e.es.Indices.Close([]string{"mqm_*"})) // destructive_requires_name is false on 7.x
	e.emu.SnapshotDelay(200 * time.Millisecond)
	e.ok(e.es.Indices.Open([]string{"mqm_a"}))
	e.ok(e.es.Snapshot.Create("r", "s2"))
	e.fails(e.try(e.es.Snapshot.DeleteRepository([]string{"r"})), 500, "illegal_state_exception", "currently used")
}

// victimDoc finds a document id routed to shard 0 of mqm_a (whose blob the
// test damaged) by asking for each until one is unavailable.
func victimDoc(e *env) string {
	for i := range 25 {
		id := "a" + strconv.Itoa(i)
		if r := e.try(e.es.Get("mqm_a", id)); r.status == 503 {
			return id
		}
	}
	e.t.Fatal("no document on the failed shard")
	return ""
}
