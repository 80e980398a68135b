package app

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The example of the issue that asked for the config file parses as written.
func TestParseIssueExample(t *testing.T) {
	cfg, err := Parse("cairn.yaml", []byte(`repository: /var/backups/cairn        # or s3:https://host/bucket/prefix
password_file: /etc/cairn/password
app: alm-sp1001
components:                          # taken in this order
  - name: db
    command: [pg_dump, --format=custom, --dbname=alm]
    restore: [pg_restore, --clean, --if-exists, --dbname=alm]
  - name: search
    elasticsearch:
      url: http://127.0.0.1:9200
      repository: cairn
      location: /var/lib/es-snapshots
      indices: "mqm_sp1001*"
  - name: files
    tree: /opt/alm/repo/storage/sharedspaces/sp1001
hooks:
  before: [systemctl, stop, alm-worker]   # around the whole snapshot
  after:  [systemctl, start, alm-worker]
max_skew: 15m
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Repository != "/var/backups/cairn" || cfg.App != "alm-sp1001" || time.Duration(cfg.MaxSkew) != 15*time.Minute {
		t.Errorf("top level: %+v", cfg)
	}
	kinds := []string{}
	for _, c := range cfg.Components {
		kinds = append(kinds, c.Name+":"+c.Kind())
	}
	if got := strings.Join(kinds, " "); got != "db:command search:elasticsearch files:tree" {
		t.Errorf("components %s", got)
	}
	if cfg.Components[1].Line != 8 || cfg.Hooks.After[2] != "alm-worker" {
		t.Errorf("line %d, hooks %v", cfg.Components[1].Line, cfg.Hooks)
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"no components", "app: x\n", "no components"},
		{"unknown top-level key", "app: x\nrepo: /x\ncomponents: [{name: f, tree: /x}]\n", "field repo not found"},
		{"nested unknown key", "components:\n  - name: s\n    elasticsearch: {url: u, repository: r, location: /l, indices: i, indexes: j}\n", `unknown key "elasticsearch.indexes"`},
		{"bad duration", "max_skew: soon\ncomponents: [{name: f, tree: /x}]\n", "not a duration"},
		{"pipe without path", "components: [{name: d, command: [pg_dump], mode: pipe}]\n", "needs {path}"},
		{"delete on a command", "components: [{name: d, command: [pg_dump], delete: true}]\n", "delete applies only to a tree"},
		{"tree at root", "components: [{name: f, tree: /}]\n", "cannot be a component"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tc.yaml))
			var p *Problems
			if !errors.As(err, &p) && err == nil {
				t.Fatalf("accepted")
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}
