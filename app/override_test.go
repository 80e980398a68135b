package app

import (
	"strings"
	"testing"
)

func TestSetOverrides(t *testing.T) {
	const base = `app: design
components:
  - name: db
    command: [pg_dump, design]
    restore: [pg_restore, --dbname=design]
  - name: vault
    tree: /srv/vault
`
	tests := []struct {
		name    string
		sets    []string
		check   func(*Config) bool
		wantErr string
	}{
		{"scalar of a component", []string{"components.vault.tree=/tmp/other"}, func(c *Config) bool { return c.Component("vault").Tree == "/tmp/other" }, ""},
		{"list", []string{"components.db.restore=[pg_restore, --dbname=copy]"}, func(c *Config) bool {
			return strings.Join(c.Component("db").Restore, " ") == "pg_restore --dbname=copy"
		}, ""},
		{"new key", []string{"components.vault.delete=true", "max_skew=10m"}, func(c *Config) bool { return c.Component("vault").Delete && c.MaxSkew > 0 }, ""},
		{"new mapping", []string{"hooks.restore.after=[activate]"}, func(c *Config) bool { return c.Hooks.Phase("restore").After[0] == "activate" }, ""},
		{"top level", []string{"app=other"}, func(c *Config) bool { return c.App == "other" }, ""},
		{"no such component", []string{"components.search.tree=/x"}, nil, `no component "search"`},
		{"unknown key, checked like the file", []string{"components.vault.delet=true"}, nil, `unknown key "delet"`},
		{"bad value, checked like the file", []string{"components.vault.tree=relative"}, nil, "must be an absolute path"},
		{"no value", []string{"components.vault.tree"}, nil, "want KEY=VALUE"},
		{"component itself", []string{"components.vault=x"}, nil, "give a key of component vault"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("c.yaml", []byte(base), tc.sets...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(cfg) {
				t.Errorf("override not applied: %+v", cfg)
			}
		})
	}
}
