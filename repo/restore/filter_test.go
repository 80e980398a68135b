package restore

import (
	"strings"
	"testing"
)

func TestFilter(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		f                     Filter
		selected, notSelected []string
		descend, notDescend   []string
	}{
		{
			name:        "anchored directory includes its subtree",
			f:           Filter{Include: []string{"/sp1001"}},
			selected:    []string{"sp1001", "sp1001/a.txt", "sp1001/x/y/z"},
			notSelected: []string{"sp1002", "sp10011", "other/sp1001", ""},
			descend:     []string{"", "sp1001", "sp1001/x"},
			notDescend:  []string{"sp1002", "other"},
		},
		{
			name:        "unanchored pattern matches at any depth",
			f:           Filter{Include: []string{"*.pdf"}},
			selected:    []string{"a.pdf", "x/y/b.pdf", "dir.pdf/inside"},
			notSelected: []string{"a.txt", "x/y/b.pdf.txt"},
			descend:     []string{"", "x", "x/y"},
		},
		{
			name:        "double star spans elements, also none",
			f:           Filter{Include: []string{"/sp*/**/att_*"}},
			selected:    []string{"sp1/att_1", "sp1/x/y/att_2", "sp2/att_3/deep"},
			notSelected: []string{"sp1/doc", "other/att_1", "att_1"},
			descend:     []string{"", "sp1", "sp1/x"},
			notDescend:  []string{"other"},
		},
		{
			name:        "anchored pattern only matches from the root",
			f:           Filter{Include: []string{"/a/b"}},
			selected:    []string{"a/b", "a/b/c"},
			notSelected: []string{"x/a/b", "a", "a/c"},
			descend:     []string{"", "a"},
			notDescend:  []string{"x", "a/c"},
		},
		{
			name:        "exclude wins and covers the subtree",
			f:           Filter{Include: []string{"/sp1001"}, Exclude: []string{"*.tmp", "/sp1001/cache"}},
			selected:    []string{"sp1001/a.txt", "sp1001/cachex"},
			notSelected: []string{"sp1001/b.tmp", "sp1001/cache", "sp1001/cache/c.txt", "sp1001/x.tmp/y"},
			notDescend:  []string{"sp1001/cache", "sp1001/x.tmp"},
		},
		{
			name:        "exclude only",
			f:           Filter{Exclude: []string{"logs"}},
			selected:    []string{"a", "a/b", ""},
			notSelected: []string{"logs", "a/logs/x"},
			descend:     []string{"", "a"},
			notDescend:  []string{"logs", "a/logs"},
		},
		{
			name:        "subtree with a pattern inside it",
			f:           Filter{Subtrees: []string{"/sp1001/"}, Include: []string{"*.pdf"}},
			selected:    []string{"sp1001/a.pdf", "sp1001/x/b.pdf"},
			notSelected: []string{"sp1001/a.txt", "sp1002/a.pdf", "a.pdf", "sp1001"},
			descend:     []string{"", "sp1001", "sp1001/x"},
			notDescend:  []string{"sp1002"},
		},
		{
			name:        "deep subtree: its parents are walked, not selected",
			f:           Filter{Subtrees: []string{"a/b"}},
			selected:    []string{"a/b", "a/b/c"},
			notSelected: []string{"a", "a/c", "ab"},
			descend:     []string{"", "a", "a/b"},
			notDescend:  []string{"a/c", "ab", "b"},
		},
		{
			name:     "no filter selects everything",
			f:        Filter{},
			selected: []string{"", "a", "a/b"},
			descend:  []string{"", "a"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			f.Subtrees = append([]string(nil), f.Subtrees...)
			if err := f.compile(); err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.selected {
				if !f.Selected(p) {
					t.Errorf("Selected(%q) = false, want true", p)
				}
			}
			for _, p := range tc.notSelected {
				if f.Selected(p) {
					t.Errorf("Selected(%q) = true, want false", p)
				}
			}
			for _, p := range tc.descend {
				if !f.Descend(p) {
					t.Errorf("Descend(%q) = false, want true", p)
				}
			}
			for _, p := range tc.notDescend {
				if f.Descend(p) {
					t.Errorf("Descend(%q) = true, want false", p)
				}
			}
		})
	}
}

func TestFilterBadPatterns(t *testing.T) {
	for _, tc := range []struct {
		f    Filter
		want string
	}{
		{Filter{Include: []string{"["}}, "syntax error in pattern"},
		{Filter{Exclude: []string{"/"}}, "matches no path"},
		{Filter{Include: []string{"../etc"}}, `".."`},
		{Filter{Subtrees: []string{"/"}}, "empty subtree"},
	} {
		err := tc.f.compile()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.f, err, tc.want)
		}
	}
}
