// Package layering holds a test that keeps package dependencies pointing the
// way docs/FORMAT.md and the README describe: sources never see packs or
// stores, store never knows what it stores.
package layering

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/cairn-backup/cairn"

// allowed lists, for each package (by its path below the module), the
// project packages it may import, directly or not. Sub-packages inherit
// their parent's rule.
var allowed = map[string][]string{
	"chunk":    {},
	"store":    {},
	"pack":     {"chunk"},
	"index":    {"chunk", "pack"},
	"snapshot": {"chunk"},
	"sources":  {"snapshot", "chunk"},
	"repo":     {"snapshot", "index", "pack", "chunk", "store"},
	// app ties a config file to sources and repo; only cmd sits above it.
	"app": {"repo", "sources", "snapshot", "index", "pack", "chunk", "store"},
}

func TestDependencyDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for dec.More() {
		var p struct {
			ImportPath string
			Deps       []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		top := strings.SplitN(rel, "/", 2)[0]
		rule, ok := allowed[top]
		if !ok {
			continue // cmd, bench, internal: may import anything
		}
		checked++
		for _, d := range p.Deps {
			if !strings.HasPrefix(d, module+"/") {
				continue
			}
			dtop := strings.SplitN(strings.TrimPrefix(d, module+"/"), "/", 2)[0]
			if dtop == top {
				continue // within the same package tree (store/local → store)
			}
			if !contains(rule, dtop) {
				t.Errorf("%s imports %s: %s may import only %v", rel, strings.TrimPrefix(d, module+"/"), top, rule)
			}
		}
	}
	if checked < len(allowed) {
		t.Fatalf("checked only %d packages; is the module layout what this test expects?", checked)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
