package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/esemu"
	es8 "github.com/elastic/go-elasticsearch/v8"
)

// esLayouts are the snapshot repository layouts Elasticsearch has written
// since 5.x (docs/ELASTICSEARCH.md), as the emulator writes them (with
// SMILE payloads, like Elasticsearch).
var esLayouts = []string{esemu.Format56, esemu.Format68, esemu.Format76, esemu.Format710, esemu.FormatCurrent}

// esOnly is an application with one component: an index pattern of an
// emulated cluster whose repository is in the given layout.
type esOnly struct {
	t      *testing.T
	emu    *esemu.Server
	es     *es8.Client
	config string
}

func newESOnly(t *testing.T, format string) *esOnly {
	testEnv(t)
	emu := esemu.Start(t, esemu.Options{RepositoryFormat: format, SMILE: true, SegmentPadding: 8 << 10})
	client, err := es8.NewClient(es8.Config{Addresses: []string{emu.URL()}})
	if err != nil {
		t.Fatal(err)
	}
	a := &esOnly{t: t, emu: emu, es: client, config: filepath.Join(t.TempDir(), "cairn.yaml")}
	res, err := client.Indices.Create("mqm_sp1001_items", client.Indices.Create.WithBody(
		strings.NewReader(`{"settings":{"index":{"number_of_shards":2,"number_of_replicas":0}}}`)))
	if err != nil || res.IsError() {
		t.Fatalf("create index: %v %v", err, res)
	}
	res.Body.Close()
	for i := range 30 {
		a.put("mqm_sp1001_items", fmt.Sprint(i), fmt.Sprintf(`{"title":"item %d"}`, i))
	}
	a.put("mqm_sp1001_users", "u1", `{"name":"ada"}`)
	cfg := fmt.Sprintf(`app: alm-sp1001
components:
  - name: search
    elasticsearch:
      url: %s
      repository: cairn
      location: %s
      indices: "mqm_sp1001*"
`, emu.URL(), emu.RepoDir("cairn"))
	if err := os.WriteFile(a.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *esOnly) put(index, id, body string) {
	a.t.Helper()
	putDoc(a.t, a.es, index, id, body)
}

func (a *esOnly) docs() string {
	a.t.Helper()
	all := map[string]any{}
	for _, ix := range []string{"mqm_sp1001_items", "mqm_sp1001_users"} {
		d, err := a.emu.Docs(ix)
		if err != nil {
			a.t.Fatal(err)
		}
		all[ix] = d
	}
	b, _ := json.Marshal(all) // map keys sorted: a stable fingerprint
	return string(b)
}

// TestElasticsearchLayoutsRoundTrip backs up an index pattern through the
// CLI in each repository layout, twice with changes between (the second
// snapshot moves every shard to a new generation), changes the indices
// again and restores the first snapshot: the documents are those of the
// first backup. Before cairn read the shard index files, the numeric
// layouts (5.6, 6.8) were stored as their root metadata alone and the
// restore brought back no data.
func TestElasticsearchLayoutsRoundTrip(t *testing.T) {
	for _, format := range esLayouts {
		t.Run(format, func(t *testing.T) {
			a := newESOnly(t, format)
			first := a.docs()
			b1 := decodeJSON[backupOut](t, mustCairn(t, nil, "--config", a.config, "backup", "--json"))
			a.put("mqm_sp1001_items", "3", `{"title":"edited"}`)
			a.put("mqm_sp1001_items", "new", `{"title":"new"}`)
			mustCairn(t, nil, "--config", a.config, "backup")
			a.put("mqm_sp1001_users", "u2", `{"name":"bob"}`)
			if a.docs() == first {
				t.Fatal("the changes did not take")
			}
			mustCairn(t, nil, "--config", a.config, "restore", "--snapshot", b1.ShortID)
			if got := a.docs(); got != first {
				t.Errorf("after restoring the first snapshot:\n got %s\nwant %s", got, first)
			}
		})
	}
}

// TestElasticsearchMissingDataBlob: a data blob that a shard index file
// lists is missing from the Elasticsearch repository when cairn copies it.
// The backup fails, names the blob, and writes no snapshot, in every
// layout. Before, data blobs were taken as found and the backup exited 0.
func TestElasticsearchMissingDataBlob(t *testing.T) {
	for _, format := range esLayouts {
		t.Run(format, func(t *testing.T) {
			a := newESOnly(t, format)
			var removed string
			a.emu.AfterSnapshot(func(repo, snap string) {
				blobs, _ := filepath.Glob(filepath.Join(a.emu.RepoDir("cairn"), "indices", "*", "1", "__*"))
				if len(blobs) == 0 {
					t.Error("no data blob in shard 1")
					return
				}
				removed = filepath.Base(blobs[0])
				if err := os.Remove(blobs[0]); err != nil {
					t.Error(err)
				}
			})
			r := cairn(t, nil, "--config", a.config, "backup")
			if r.code != 1 || removed == "" || !strings.Contains(r.stderr, removed) || !strings.Contains(r.stderr, "no snapshot written") {
				t.Errorf("backup with data blob %s missing: want exit 1 naming it and no snapshot:\n%v", removed, r)
			}
			if n := countSnapshots(t); n != 0 {
				t.Errorf("%d snapshots written", n)
			}
		})
	}
}
