package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"
)

// The sample indices -seed creates. Document IDs are PREFIX-1 … PREFIX-N;
// scripts/demo-app.sh relies on these names and counts.
var seedIndices = []struct {
	name   string
	shards int
	prefix string
	count  int
	doc    func(i int) map[string]any
}{
	{"mqm_sp1001_issues", 2, "ISSUE", 300, func(i int) map[string]any { return issue("sp1001", i) }},
	{"mqm_sp1001_comments", 1, "C", 450, func(i int) map[string]any { return comment("sp1001", i, 300) }},
	{"mqm_sp1002_issues", 1, "ISSUE", 40, func(i int) map[string]any { return issue("sp1002", i) }},
}

// seed creates the sample indices through the emulator's own REST handler
// (no network) and flushes them, so that each shard holds one committed
// segment.
func seed(h http.Handler) error {
	call := func(method, path string, body any) error {
		var r *http.Request
		if body == nil {
			r = httptest.NewRequest(method, path, nil)
		} else {
			data, err := json.Marshal(body)
			if err != nil {
				return err
			}
			r = httptest.NewRequest(method, path, strings.NewReader(string(data)))
			r.Header.Set("Content-Type", "application/json")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 300 {
			return fmt.Errorf("%s %s: %d %s", method, path, w.Code, strings.TrimSpace(w.Body.String()))
		}
		return nil
	}
	for _, ix := range seedIndices {
		settings := map[string]any{"settings": map[string]any{"number_of_shards": ix.shards, "number_of_replicas": 0}}
		if err := call(http.MethodPut, "/"+ix.name, settings); err != nil {
			return err
		}
		for i := 1; i <= ix.count; i++ {
			if err := call(http.MethodPut, fmt.Sprintf("/%s/_doc/%s-%d", ix.name, ix.prefix, i), ix.doc(i)); err != nil {
				return err
			}
		}
	}
	return call(http.MethodPost, "/_flush", nil)
}

// words feed the deterministic texts.
var words = strings.Fields(`login page slow monday report export fails timeout
	customer invoice total rounding error dashboard widget missing chart legend
	upload attachment size limit search results stale index rebuild nightly job
	password reset email link expired mobile layout broken button overlaps menu
	audit trail entry duplicated permission denied admin role sync ldap group`)

// lcg is a small deterministic generator (Numerical Recipes' constants).
type lcg uint32

func (g *lcg) next(n int) int {
	*g = *g*1664525 + 1013904223
	return int(uint32(*g)>>8) % n
}

func sentence(g *lcg, n int) string {
	out := make([]string, n)
	for i := range out {
		out[i] = words[g.next(len(words))]
	}
	s := strings.Join(out, " ")
	return strings.ToUpper(s[:1]) + s[1:] + "."
}

var seedEpoch = time.Date(2025, 3, 3, 8, 0, 0, 0, time.UTC)

func issue(project string, i int) map[string]any {
	g := lcg(i*7919 + len(project))
	statuses := []string{"open", "in_progress", "review", "resolved", "closed"}
	priorities := []string{"low", "medium", "high", "critical"}
	return map[string]any{
		"key":          fmt.Sprintf("ISSUE-%d", i),
		"project":      project,
		"title":        sentence(&g, 4+g.next(5)),
		"description":  sentence(&g, 20+g.next(30)),
		"status":       statuses[i%len(statuses)],
		"priority":     priorities[(i*7)%len(priorities)],
		"assignee":     fmt.Sprintf("user%02d", (i*13)%17),
		"story_points": (i * 11) % 13,
		"created":      seedEpoch.Add(time.Duration(i) * 37 * time.Minute).Format(time.RFC3339),
	}
}

func comment(project string, i, issues int) map[string]any {
	g := lcg(i*104729 + 1)
	return map[string]any{
		"issue":   fmt.Sprintf("ISSUE-%d", (i*7)%issues+1),
		"project": project,
		"author":  fmt.Sprintf("user%02d", (i*5)%17),
		"body":    sentence(&g, 8+g.next(25)),
		"created": seedEpoch.Add(time.Duration(i) * 53 * time.Minute).Format(time.RFC3339),
	}
}
