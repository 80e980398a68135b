package elasticsearch_test

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/esemu"
	"github.com/cairn-backup/cairn/sources/elasticsearch"
)

// layouts are the repository layouts Elasticsearch has written since 5.x
// (docs/ELASTICSEARCH.md), each with the layout the capture reports. The
// tests run them with SMILE payloads, as Elasticsearch writes them; the
// other tests use the emulator's JSON.
var layouts = []struct {
	format, layout string
}{
	{esemu.Format56, "index-meta:snapshot,shard-gen:numeric"},
	{esemu.Format68, "index-meta:snapshot,shard-gen:numeric"},
	{esemu.Format76, "index-meta:snapshot,shard-gen:uuid"},
	{esemu.Format710, "index-meta:identifier,shard-gen:uuid"},
	{esemu.FormatCurrent, "index-meta:identifier,shard-gen:uuid"},
}

// TestEveryLayout backs up twice (the second snapshot reuses blobs and
// moves every shard to a new generation), copies the captured files of
// the second one into a fresh directory and restores from it, in each
// layout: the documents are those of the second backup. Before cairn read
// the shard index files, the numeric layouts captured only the root
// metadata and this restore found no data.
func TestEveryLayout(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.format, func(t *testing.T) {
			e := newEnv(t, esemu.Options{RepositoryFormat: l.format, SMILE: true})
			seed(e)
			c := ctx(t)
			if _, err := elasticsearch.Backup(c, e.cfg); err != nil {
				t.Fatal(err)
			}
			e.put("mqm_sp1001_items", map[string]string{"second": `{"title":"second"}`})
			e.del("mqm_sp1001_items", "i3")
			cp, err := elasticsearch.Backup(c, e.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := cp.Meta()["layout"]; got != l.layout {
				t.Errorf("layout %q, want %q", got, l.layout)
			}
			data := 0
			for _, f := range cp.Files() {
				if strings.Contains(f, "/__") {
					data++
				}
			}
			if data == 0 {
				t.Fatalf("no data blob captured: %v", cp.Files())
			}
			shardIndex, _ := filepath.Glob(filepath.Join(e.cfg.Location, "indices", "*", "0", "index-*"))
			if len(shardIndex) == 0 || !smilePayload(t, shardIndex[0]) {
				t.Fatalf("shard index files %v: want a SMILE payload, as Elasticsearch writes", shardIndex)
			}
			want := map[string]map[string]string{
				"mqm_sp1001_items": e.docs("mqm_sp1001_items"),
				"mqm_sp1001_users": e.docs("mqm_sp1001_users"),
			}
			dir := e.emu.RepoDir("restore")
			copyFS(t, cp, dir)
			if err := cp.Finish(c); err != nil {
				t.Fatal(err)
			}
			e.put("mqm_sp1001_items", map[string]string{"third": `{"title":"after"}`})
			e.del("mqm_sp1001_users", "u1")
			if _, err := elasticsearch.Restore(c, e.cfg, elasticsearch.RestoreOptions{
				Dir: dir, RepoName: "cairn-restore", Snapshot: cp.Snapshot(), Indices: e.cfg.Indices,
			}); err != nil {
				t.Fatal(err)
			}
			for ix, docs := range want {
				if got := e.docs(ix); !maps.Equal(got, docs) {
					t.Errorf("%s after restore:\n got %v\nwant %v", ix, got, docs)
				}
			}
		})
	}
}

// smilePayload reports whether the checksum blob at p holds a SMILE
// payload (DEFLATE-compressed, as the repository's compress setting is on).
func smilePayload(t *testing.T, p string) bool {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil || len(data) < 30 {
		t.Fatalf("%s: %v", p, err)
	}
	payload := data[4+1+int(data[4])+4 : len(data)-16]
	rest, ok := bytes.CutPrefix(payload, []byte("DFL\x00"))
	if !ok {
		return bytes.HasPrefix(payload, []byte(":)\n"))
	}
	raw, err := io.ReadAll(flate.NewReader(bytes.NewReader(rest)))
	return err == nil && bytes.HasPrefix(raw, []byte(":)\n"))
}

// TestMissingDataBlobFailsBackup: a data blob a shard index file lists is
// gone from the repository (damage, a hand-made cleanup): the backup fails
// and names it, in every layout. Before, data blobs were taken as found.
func TestMissingDataBlobFailsBackup(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.format, func(t *testing.T) {
			e := newEnv(t, esemu.Options{RepositoryFormat: l.format, SMILE: true})
			seed(e)
			var removed string
			e.emu.AfterSnapshot(func(repo, snap string) {
				blobs, _ := filepath.Glob(filepath.Join(e.cfg.Location, "indices", "*", "0", "__*"))
				if len(blobs) == 0 {
					t.Errorf("no data blob in %s", e.cfg.Location)
					return
				}
				removed = blobs[0]
				if err := os.Remove(removed); err != nil {
					t.Error(err)
				}
			})
			_, err := elasticsearch.Backup(ctx(t), e.cfg)
			if !errors.Is(err, elasticsearch.ErrIncomplete) || !strings.Contains(err.Error(), filepath.Base(removed)) || !strings.Contains(err.Error(), "shard 0: Lucene file") {
				t.Fatalf("backup with %s missing: %v, want ErrIncomplete naming it, its shard and its Lucene file", removed, err)
			}
		})
	}
}

// TestMissingShardIndexFailsBackup: a shard's index file is gone, so
// nothing lists the shard's data: the backup fails and says which shard.
func TestMissingShardIndexFailsBackup(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.format, func(t *testing.T) {
			e := newEnv(t, esemu.Options{RepositoryFormat: l.format, SMILE: true})
			seed(e)
			e.emu.AfterSnapshot(func(repo, snap string) {
				files, _ := filepath.Glob(filepath.Join(e.cfg.Location, "indices", "*", "1", "index-*"))
				for _, f := range files {
					os.Remove(f)
				}
			})
			_, err := elasticsearch.Backup(ctx(t), e.cfg)
			if !errors.Is(err, elasticsearch.ErrIncomplete) || !strings.Contains(err.Error(), "mqm_sp1001_items") {
				t.Fatalf("backup without a shard index file: %v, want ErrIncomplete naming the index", err)
			}
		})
	}
}

// TestUnknownLayoutRefused: what cairn does not understand is refused with
// ErrUnknownLayout, never stored in part: a root field no Elasticsearch
// version has written, and a shard index file in an unknown encoding.
func TestUnknownLayoutRefused(t *testing.T) {
	tests := []struct {
		name   string
		damage func(loc string) error
		msg    string
	}{
		{"unknown index-N field", func(loc string) error {
			p := filepath.Join(loc, "index-0")
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(p, []byte(`{"shard_layout_v2":true,`+string(data[1:])), 0o644)
		}, "shard_layout_v2"},
		{"shard index in an unknown encoding", func(loc string) error {
			files, _ := filepath.Glob(filepath.Join(loc, "indices", "*", "0", "index-*"))
			if len(files) == 0 {
				return errors.New("no shard index file")
			}
			return os.WriteFile(files[0], []byte("not a checksum blob"), 0o644)
		}, "index-"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, esemu.Options{})
			seed(e)
			e.emu.AfterSnapshot(func(repo, snap string) {
				if err := tc.damage(e.cfg.Location); err != nil {
					t.Error(err)
				}
			})
			_, err := elasticsearch.Backup(ctx(t), e.cfg)
			if !errors.Is(err, elasticsearch.ErrUnknownLayout) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("backup: %v, want ErrUnknownLayout mentioning %q", err, tc.msg)
			}
		})
	}
}

// TestPartialSnapshotEveryLayout: a PARTIAL snapshot (shard 0 of an index
// failed) is captured with the shards that succeeded, in every layout; the
// proof counts its successful shards, not all of them. A later complete
// snapshot still captures.
func TestPartialSnapshotEveryLayout(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.format, func(t *testing.T) {
			e := newEnv(t, esemu.Options{RepositoryFormat: l.format, SMILE: true})
			seed(e)
			e.cfg.AllowPartial = true
			e.emu.FailShard("mqm_sp1001_items", 0)
			cp, err := elasticsearch.Backup(ctx(t), e.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := cp.Meta()["snapshot_state"]; got != "PARTIAL" {
				t.Fatalf("state %s, want PARTIAL", got)
			}
			if err := cp.Finish(ctx(t)); err != nil {
				t.Fatal(err)
			}
			e.emu.ClearFaults()
			if _, err := elasticsearch.Backup(ctx(t), e.cfg); err != nil {
				t.Fatalf("complete snapshot after a partial one: %v", err)
			}
		})
	}
}
