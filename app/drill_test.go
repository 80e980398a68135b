package app

import (
	"strings"
	"testing"
)

// TestDrillElasticsearchConfig checks drill.elasticsearch's keys: a
// prefix that cannot begin an index name, or a URL that is not http(s),
// is refused when the config is read.
func TestDrillElasticsearchConfig(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, prefix, err string
	}{
		{name: "default prefix", yaml: "{}", prefix: DefaultDrillIndexPrefix},
		{name: "own prefix and cluster", yaml: "{index_prefix: drill-, url: 'http://127.0.0.1:9201'}", prefix: "drill-"},
		{name: "uppercase prefix", yaml: "{index_prefix: Drill-}", err: "lowercase"},
		{name: "prefix starting with _", yaml: "{index_prefix: _drill}", err: "must not start"},
		{name: "wildcard prefix", yaml: "{index_prefix: 'd*'}", err: "must not contain"},
		{name: "bad url", yaml: "{url: '127.0.0.1:9200'}", err: "http(s)"},
		{name: "unknown key", yaml: "{prefix: x}", err: "prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := parseBlock(t, "drill:\n  elasticsearch: "+tc.yaml, tc.err)
			if cfg == nil {
				return
			}
			if got := cfg.Drill.Elasticsearch.prefix(); got != tc.prefix {
				t.Errorf("prefix %q, want %q", got, tc.prefix)
			}
		})
	}
}

// parseBlock parses a config of one tree component and block. With wantErr
// it checks that parsing fails with an error containing it and returns nil.
func parseBlock(t *testing.T, block, wantErr string) *Config {
	t.Helper()
	cfg, err := Parse("c.yaml", []byte("repository: /r\napp: alm\n"+block+"\ncomponents:\n  - {name: f, tree: /srv}\n"))
	switch {
	case wantErr != "":
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error %v, want %q", err, wantErr)
		}
		return nil
	case err != nil:
		t.Fatal(err)
	}
	return cfg
}
