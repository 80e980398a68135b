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
		{"backup hooks twice", "hooks: {before: [a], backup: {before: [b]}}\ncomponents: [{name: f, tree: /x}]\n", "either as hooks.backup or as the shorthand"},
		{"unknown hook", "components: [{name: f, tree: /x, hooks: {restore: {befor: [a]}}}]\n", `unknown key "hooks.restore.befor"`},
		{"start_next on a tree", "components: [{name: f, tree: /x, start_next: on_first_byte}]\n", "on_first_byte applies only to a command"},
		{"start_next on_first_byte in dir mode", "components: [{name: d, command: [expdp], mode: dir, dir: /d, start_next: on_first_byte}]\n", "mode stream or pipe"},
		{"start_next on_snapshot on a command", "components: [{name: d, command: [pg_dump], start_next: on_snapshot}]\n", "on_snapshot applies only to elasticsearch"},
		{"start_next unknown", "components: [{name: d, command: [pg_dump], start_next: soon}]\n", `start_next "soon"`},
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

// Hooks by phase: the flat keys are the backup hooks; restore hooks are
// only what hooks.restore says.
func TestHookPhases(t *testing.T) {
	cfg, err := Parse("c.yaml", []byte(`hooks:
  before: [stop]
  on_failure: [page]
  restore: {before: [deactivate], after: [activate], on_failure: [alert]}
components:
  - name: f
    tree: /x
    hooks: {backup: {after: [b]}, restore: {before: [drop]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	b, r := cfg.Hooks.Phase("backup"), cfg.Hooks.Phase("restore")
	if b.Before[0] != "stop" || b.OnFailure[0] != "page" || len(b.After) != 0 {
		t.Errorf("backup hooks %+v", b)
	}
	if r.Before[0] != "deactivate" || r.After[0] != "activate" || r.OnFailure[0] != "alert" {
		t.Errorf("restore hooks %+v", r)
	}
	c := cfg.Components[0].Hooks
	if c.Phase("backup").After[0] != "b" || c.Phase("restore").Before[0] != "drop" || len(c.Phase("restore").After) != 0 {
		t.Errorf("component hooks %+v", c)
	}
	if (Hooks{PhaseHooks: PhaseHooks{Before: []string{"x"}}}).Phase("restore").Before != nil {
		t.Error("the flat hooks ran for restore")
	}
}
