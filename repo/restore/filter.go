package restore

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Filter selects the paths of a partial restore, with restic's semantics.
// Paths are relative to a tree component's root, slash-separated, without
// a leading slash ("sp1001/a.txt").
//
// A pattern is matched element by element: "*", "?" and "[…]" as in
// path.Match within one element, "**" for any number of elements (also
// none). A pattern with a leading "/" is anchored at the component's root;
// without it, it may match starting at any depth ("*.pdf" matches
// "a/b/c.pdf"). A pattern that matches a directory matches everything
// below it.
//
// A path is selected when it lies in one of Subtrees (or Subtrees is
// empty), matches an include (or Include is empty) and matches no exclude.
// The restorer descends into a directory that is selected or that may hold
// a selected path, and creates such parent directories, with their
// metadata, only when something below them is restored.
type Filter struct {
	// Subtrees restricts the restore to these paths and everything below
	// them (--component files/sp1001 gives "sp1001").
	Subtrees []string
	Include  []string
	Exclude  []string

	include, exclude []pattern
}

// ErrNothingSelected is returned (wrapped) when a partial restore's
// filters select nothing in the snapshot.
var ErrNothingSelected = errors.New("restore: nothing in the snapshot matches the selection")

type pattern struct {
	anchored bool
	elems    []string
}

// empty reports whether the filter selects everything.
func (f *Filter) empty() bool {
	return f == nil || len(f.Subtrees) == 0 && len(f.Include) == 0 && len(f.Exclude) == 0
}

// compile checks and prepares the patterns.
func (f *Filter) compile() error {
	var err error
	if f.include, err = compilePatterns("--include", f.Include); err != nil {
		return err
	}
	if f.exclude, err = compilePatterns("--exclude", f.Exclude); err != nil {
		return err
	}
	for i, s := range f.Subtrees {
		c := path.Clean("/" + s)[1:]
		if c == "" {
			return fmt.Errorf("restore: empty subtree %q", s)
		}
		f.Subtrees[i] = c
	}
	return nil
}

func compilePatterns(flag string, pats []string) ([]pattern, error) {
	out := make([]pattern, 0, len(pats))
	for _, s := range pats {
		p := pattern{anchored: strings.HasPrefix(s, "/")}
		for _, e := range strings.Split(strings.Trim(s, "/"), "/") {
			if e == "" || e == "." {
				continue
			}
			if e == ".." {
				return nil, fmt.Errorf("restore: %s %q: \"..\" cannot match a path in a snapshot", flag, s)
			}
			if _, err := path.Match(e, ""); err != nil {
				return nil, fmt.Errorf("restore: %s %q: %w", flag, s, err)
			}
			p.elems = append(p.elems, e)
		}
		if len(p.elems) == 0 {
			return nil, fmt.Errorf("restore: %s %q matches no path", flag, s)
		}
		out = append(out, p)
	}
	return out, nil
}

// matchPrefix reports whether pattern elements pe match a prefix of the
// path elements se (a directory match covers its subtree).
func matchPrefix(pe, se []string) bool {
	if len(pe) == 0 {
		return true
	}
	if pe[0] == "**" {
		for i := 0; i <= len(se); i++ {
			if matchPrefix(pe[1:], se[i:]) {
				return true
			}
		}
		return false
	}
	if len(se) == 0 {
		return false
	}
	ok, _ := path.Match(pe[0], se[0]) // checked by compile
	return ok && matchPrefix(pe[1:], se[1:])
}

// couldContain reports whether pattern elements pe, matched from the
// root, could match something strictly below the directory se.
func couldContain(pe, se []string) bool {
	if len(se) == 0 {
		return len(pe) > 0
	}
	if len(pe) == 0 {
		return false
	}
	if pe[0] == "**" {
		return true
	}
	ok, _ := path.Match(pe[0], se[0])
	return ok && couldContain(pe[1:], se[1:])
}

func (p pattern) match(se []string) bool {
	if p.anchored {
		return matchPrefix(p.elems, se)
	}
	for i := range se {
		if matchPrefix(p.elems, se[i:]) {
			return true
		}
	}
	return false
}

func (p pattern) mayContain(se []string) bool {
	return !p.anchored || couldContain(p.elems, se)
}

func anyMatch(ps []pattern, se []string) bool {
	for _, p := range ps {
		if p.match(se) {
			return true
		}
	}
	return false
}

func split(p string) []string {
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// inSubtree reports whether p is one of the subtrees or below one, and
// (parent) whether p is a directory above one.
func (f *Filter) inSubtree(p string) (in, parent bool) {
	if len(f.Subtrees) == 0 {
		return true, false
	}
	for _, s := range f.Subtrees {
		switch {
		case p == s || strings.HasPrefix(p, s+"/"):
			return true, false
		case p == "" || strings.HasPrefix(s, p+"/"):
			parent = true
		}
	}
	return false, parent
}

// Selected reports whether the path p is restored.
func (f *Filter) Selected(p string) bool {
	if f.empty() {
		return true
	}
	se := split(p)
	if in, _ := f.inSubtree(p); !in || anyMatch(f.exclude, se) {
		return false
	}
	return len(f.include) == 0 || anyMatch(f.include, se)
}

// Descend reports whether the restore must look into the directory p:
// it is selected, or something below it may be.
func (f *Filter) Descend(p string) bool {
	if f.empty() {
		return true
	}
	se := split(p)
	if anyMatch(f.exclude, se) {
		return false
	}
	in, parent := f.inSubtree(p)
	if parent {
		return true
	}
	if !in {
		return false
	}
	if len(f.include) == 0 || anyMatch(f.include, se) {
		return true
	}
	for _, inc := range f.include {
		if inc.mayContain(se) {
			return true
		}
	}
	return false
}

// String describes the selection for error messages.
func (f *Filter) String() string {
	var parts []string
	for _, s := range f.Subtrees {
		parts = append(parts, "subtree "+s)
	}
	for _, s := range f.Include {
		parts = append(parts, "--include "+s)
	}
	for _, s := range f.Exclude {
		parts = append(parts, "--exclude "+s)
	}
	return strings.Join(parts, ", ")
}
