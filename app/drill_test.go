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
			cfg, err := Parse("c.yaml", []byte("repository: /r\napp: alm\ndrill:\n  elasticsearch: "+tc.yaml+"\ncomponents:\n  - {name: f, tree: /srv}\n"))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Drill.Elasticsearch.prefix(); got != tc.prefix {
				t.Errorf("prefix %q, want %q", got, tc.prefix)
			}
		})
	}
}
