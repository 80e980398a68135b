package elasticsearch_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/esemu"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/sources/elasticsearch"
	es8 "github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// env is an emulator, a plain client for test setup and a source config.
type env struct {
	t   *testing.T
	emu *esemu.Server
	es  *es8.Client
	cfg elasticsearch.Config
}

func newEnv(t *testing.T, opts esemu.Options) *env {
	t.Helper()
	if opts.SegmentPadding == 0 {
		opts.SegmentPadding = 4 << 10
	}
	emu := esemu.Start(t, opts)
	es, err := es8.NewClient(es8.Config{Addresses: []string{emu.URL()}})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, emu: emu, es: es, cfg: elasticsearch.Config{
		URL:        emu.URL(),
		Repository: "cairn",
		Location:   emu.RepoDir("cairn"),
		Indices:    "mqm_sp1001*",
	}}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// call runs a setup request and fails the test on any error status.
func (e *env) call(res *esapi.Response, err error) string {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.IsError() {
		e.t.Fatalf("%s: %s", res.Status(), body)
	}
	return string(body)
}

func (e *env) createIndex(name string, shards int) {
	e.t.Helper()
	e.call(e.es.Indices.Create(name, e.es.Indices.Create.WithBody(strings.NewReader(
		`{"settings":{"index":{"number_of_shards":`+itoa(shards)+`,"number_of_replicas":0}}}`))))
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func (e *env) put(index string, docs map[string]string) {
	e.t.Helper()
	for id, src := range docs {
		e.call(e.es.Index(index, strings.NewReader(src), e.es.Index.WithDocumentID(id)))
	}
}

func (e *env) del(index string, ids ...string) {
	e.t.Helper()
	for _, id := range ids {
		e.call(e.es.Delete(index, id))
	}
}

func (e *env) flush(index string) {
	e.t.Helper()
	e.call(e.es.Indices.Flush(e.es.Indices.Flush.WithIndex(index)))
}

// docs returns an index's documents as id → compact JSON source.
func (e *env) docs(index string) map[string]string {
	e.t.Helper()
	raw, err := e.emu.Docs(index)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]string{}
	for id, src := range raw {
		out[id] = string(src)
	}
	return out
}

// copyFS copies every file of an archiver FS into dst (what cairn's
// backup and restore do, minus the repository in between).
func copyFS(t *testing.T, fsys interface {
	ReadDir(context.Context, string) ([]snapshot.Node, error)
	Open(context.Context, string) (io.ReadCloser, error)
}, dst string) int {
	t.Helper()
	n := 0
	var walk func(dir string)
	walk = func(dir string) {
		nodes, err := fsys.ReadDir(context.Background(), dir)
		if err != nil {
			t.Fatalf("ReadDir %q: %v", dir, err)
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.FromSlash(dir)), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, nd := range nodes {
			p := path.Join(dir, nd.Name)
			switch nd.Type {
			case snapshot.Dir:
				walk(p)
			case snapshot.File:
				r, err := fsys.Open(context.Background(), p)
				if err != nil {
					t.Fatalf("Open %s: %v", p, err)
				}
				data, err := io.ReadAll(r)
				r.Close()
				if err != nil {
					t.Fatal(err)
				}
				if uint64(len(data)) != nd.Size {
					t.Fatalf("%s: read %d bytes, node says %d", p, len(data), nd.Size)
				}
				if err := os.WriteFile(filepath.Join(dst, filepath.FromSlash(p)), data, 0o644); err != nil {
					t.Fatal(err)
				}
				n++
			default:
				t.Fatalf("%s: unexpected node type %s", p, nd.Type)
			}
		}
	}
	walk("")
	return n
}
