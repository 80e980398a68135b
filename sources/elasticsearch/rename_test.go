package elasticsearch

import (
	"regexp"
	"strings"
	"testing"
)

// TestJavaReplaceAll: each row's result (or exception) is what Java 17's
// String.replaceAll gave for the same pattern, replacement and input (run
// by hand with jshell), since Elasticsearch renames indices with it.
func TestJavaReplaceAll(t *testing.T) {
	tests := []struct {
		pattern, repl, in string
		want              string // "error: …" for an exception, matched by substring
	}{
		{"(.+)", "restored_$1", "mqm_a", "restored_mqm_a"},
		{"mqm_(.+)", "new_$1", "mqm_items", "new_items"},
		{"(m)(q)", "$2$1", "mqm", "qmm"},
		{"(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)", "$10", "abcdefghij", "j"},
		{"(a)", "$10", "a", "a0"}, // one group: $1 then "0"
		{"(a)", "$1x", "a", "ax"}, // Go's Expand would read a group named "1x"
		{"(a)", `\$1`, "a", "$1"},
		{"(a)", `\\`, "a", `\`},
		{"(a)", `a\b`, "a", "ab"},
		{"(?<n>a)", "${n}!", "a", "a!"},
		{"(a)|(b)", "[$2]", "a", "[]"}, // a group that did not take part: nothing
		{"x", "y", "axbx", "ayby"},
		{"(a)", "é$1", "a", "éa"},
		{"(a)", "$2", "a", "error: no group 2"},
		{"(a)", "$", "a", "error: group index is missing"},
		{"(a)", "$x", "a", "error: illegal group reference"},
		{"(a)", `\`, "a", "error: character to be escaped is missing"},
		{"(a)", "${}", "a", "error: 0 length name"},
		{"(a)", "${n", "a", "error: missing trailing '}'"},
		{"(a)", "${1n}", "a", "error: starts with digit character"},
		{"(a)", "${n}", "a", "error: no group with name {n}"},
		// Java gives XaXXcX, Go's matcher XaXcX: refused, not guessed.
		{"b*", "X", "abc", "error: matches the empty string"},
	}
	for _, tc := range tests {
		got, err := javaReplaceAll(regexp.MustCompile(tc.pattern), tc.in, tc.repl)
		if want, isErr := strings.CutPrefix(tc.want, "error: "); isErr {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%q on %q with %q: %q, %v; want an error with %q", tc.pattern, tc.in, tc.repl, got, err, want)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q on %q with %q: %q, %v; want %q", tc.pattern, tc.in, tc.repl, got, err, tc.want)
		}
	}
}
