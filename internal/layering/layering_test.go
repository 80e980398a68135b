// Package layering holds a test that keeps package dependencies pointing the
// way the README describes: sources never see packs or stores, store never
// knows what it stores, repo's jobs sit over repo and not over each other,
// and the product never links a test double from internal/.
package layering

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/cairn-backup/cairn"

// below are the packages under repo and app: the format and storage layers.
var below = []string{"snapshot", "index", "pack", "chunk", "store"}

// allowed lists, for each unit, the units it may import, directly or not. A
// unit is a top-level package with its sub-packages (store/local belongs to
// store), except that each package under repo/ is a unit of its own: one
// job (archive, restore, check, replicate, stats, prune, …) over repo's API.
// "repo/*" stands for every such job.
var allowed = map[string][]string{
	"chunk":    {},
	"store":    {},
	"pack":     {"chunk"},
	"index":    {"chunk", "pack"},
	"snapshot": {"chunk"},
	"sources":  {"snapshot", "chunk"},
	"repo":     below,
	// A job uses repo and the layers below it, never another job.
	"repo/*": append([]string{"repo"}, below...),
	// app ties a config file to sources and repo's jobs; only cmd sits
	// above it.
	"app": append([]string{"repo", "repo/*", "sources"}, below...),
	// The CLI may use everything except internal/: test doubles
	// (esemu, s3test, memstore, faulty, …) are not part of the product.
	"cmd/cairn": append([]string{"app", "repo", "repo/*", "sources"}, below...),
}

// unit names the rule a package falls under.
func unit(rel string) string {
	parts := strings.SplitN(rel, "/", 3)
	switch {
	case parts[0] == "repo" && len(parts) > 1:
		return "repo/" + parts[1]
	case parts[0] == "cmd" && len(parts) > 1:
		return "cmd/" + parts[1]
	}
	return parts[0]
}

// rule returns the units a unit may import, and whether it has a rule at
// all (internal/, bench and cmd/esemu may import anything).
func rule(u string) ([]string, bool) {
	if r, ok := allowed[u]; ok {
		return r, true
	}
	if strings.HasPrefix(u, "repo/") {
		return allowed["repo/*"], true
	}
	return nil, false
}

func permits(rule []string, u string) bool {
	return slices.Contains(rule, u) || strings.HasPrefix(u, "repo/") && slices.Contains(rule, "repo/*")
}

func TestDependencyDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := map[string]bool{}
	for dec.More() {
		var p struct {
			ImportPath string
			Deps       []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		u := unit(rel)
		r, ok := rule(u)
		if !ok {
			continue
		}
		if _, exact := allowed[u]; exact {
			seen[u] = true
		} else {
			seen["repo/*"] = true
		}
		for _, d := range p.Deps {
			if !strings.HasPrefix(d, module+"/") {
				continue
			}
			drel := strings.TrimPrefix(d, module+"/")
			du := unit(drel)
			if du == u {
				continue // within the same unit (store/local → store)
			}
			if !permits(r, du) {
				t.Errorf("%s imports %s: %s may import only %v", rel, drel, u, r)
			}
		}
	}
	for u := range allowed {
		if !seen[u] {
			t.Errorf("no package falls under the rule for %s; is the module layout what this test expects?", u)
		}
	}
}

// TestUnits pins how packages map to rules, so a layout change that would
// silently exempt a package shows here.
func TestUnits(t *testing.T) {
	for _, tc := range []struct{ pkg, unit string }{
		{"repo", "repo"},
		{"repo/archive", "repo/archive"},
		{"repo/prune/internal/x", "repo/prune"},
		{"store/s3", "store"},
		{"cmd/cairn", "cmd/cairn"},
		{"cmd/esemu", "cmd/esemu"},
		{"internal/esemu", "internal"},
	} {
		if got := unit(tc.pkg); got != tc.unit {
			t.Errorf("unit(%q) = %q, want %q", tc.pkg, got, tc.unit)
		}
	}
	if r, ok := rule("repo/prune"); !ok || !slices.Contains(r, "repo") || permits(r, "repo/archive") {
		t.Errorf("a new job under repo/ must get the job rule (repo and below, no other job); got %v", r)
	}
	if _, ok := rule("internal"); ok {
		t.Error("internal/ must be free to import anything it tests")
	}
}
