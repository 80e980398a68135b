package esemu

import (
	"sort"
	"strings"
)

// simpleMatch is ES Regex.simpleMatch: '*' matches any run of characters.
func simpleMatch(pattern, s string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == s
	}
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, last)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func matchAny(patterns []string, s string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if p == "_all" || simpleMatch(p, s) {
			return true
		}
	}
	return false
}

func hasWildcard(exprs []string) bool {
	for _, e := range exprs {
		if e == "_all" || strings.Contains(e, "*") {
			return true
		}
	}
	return false
}

// expandOpts is the subset of IndicesOptions the emulator honours.
type expandOpts struct {
	open, closed, hidden bool
	ignoreUnavailable    bool
	allowNoIndices       bool
}

func parseExpand(r *request, def string, ignoreUnavailable, allowNoIndices bool) expandOpts {
	ew := def
	if r != nil && r.q.Has("expand_wildcards") {
		ew = r.param("expand_wildcards")
	}
	o := expandOpts{ignoreUnavailable: ignoreUnavailable, allowNoIndices: allowNoIndices}
	for _, w := range splitList(ew) {
		switch w {
		case "all":
			o.open, o.closed, o.hidden = true, true, true
		case "open":
			o.open = true
		case "closed":
			o.closed = true
		case "hidden":
			o.hidden = true
		}
	}
	if r != nil {
		o.ignoreUnavailable = r.boolParam("ignore_unavailable", o.ignoreUnavailable)
		o.allowNoIndices = r.boolParam("allow_no_indices", o.allowNoIndices)
	}
	return o
}

// candidate is something a name expression can resolve to.
type candidate struct {
	name   string
	open   bool
	hidden bool
}

// resolveNames expands expressions (comma list items; '*' wildcards;
// "-x" exclusions after a wildcard; "_all") against candidates, following
// IndexNameExpressionResolver for the cases the emulator needs.
func resolveNames(exprs []string, cands []candidate, o expandOpts) ([]string, *esError) {
	byName := map[string]candidate{}
	for _, c := range cands {
		byName[c.name] = c
	}
	if len(exprs) == 0 {
		exprs = []string{"_all"}
	}
	set := map[string]bool{}
	sawWildcard := false
	for _, e := range exprs {
		if strings.HasPrefix(e, "-") && sawWildcard {
			pat := e[1:]
			for n := range set {
				if simpleMatch(pat, n) {
					delete(set, n)
				}
			}
			continue
		}
		if e == "_all" || strings.Contains(e, "*") {
			sawWildcard = true
			pat := e
			if e == "_all" {
				pat = "*"
			}
			for _, c := range cands {
				if !simpleMatch(pat, c.name) {
					continue
				}
				if c.hidden && !o.hidden && !(strings.HasPrefix(pat, ".") && strings.HasPrefix(c.name, ".")) {
					continue
				}
				if c.open && !o.open || !c.open && !o.closed {
					continue
				}
				set[c.name] = true
			}
			continue
		}
		if _, ok := byName[e]; !ok {
			if o.ignoreUnavailable {
				continue
			}
			return nil, indexNotFound(e)
		}
		set[e] = true
	}
	if len(set) == 0 && !o.allowNoIndices {
		return nil, indexNotFound(strings.Join(exprs, ","))
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}
