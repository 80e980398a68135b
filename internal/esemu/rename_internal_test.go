package esemu

import (
	"regexp"
	"testing"
)

// TestReplaceAllJava: the rename of a restore follows Java 17's
// String.replaceAll; each row is what Java gave (run by hand with jshell)
// and, for its exceptions, the status Elasticsearch answers with.
func TestReplaceAllJava(t *testing.T) {
	tests := []struct {
		pattern, repl, in string
		want              string
		status            int
		reason            string
	}{
		{pattern: "(.+)", repl: "restored_$1", in: "mqm_a", want: "restored_mqm_a"},
		{pattern: "(m)(q)", repl: "$2$1", in: "mqm", want: "qmm"},
		{pattern: "(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)", repl: "$10", in: "abcdefghij", want: "j"},
		{pattern: "(a)", repl: "$10", in: "a", want: "a0"},
		{pattern: "(a)", repl: "$1x", in: "a", want: "ax"},
		{pattern: "(a)", repl: `\$1`, in: "a", want: "$1"},
		{pattern: "(a)", repl: `a\b`, in: "a", want: "ab"},
		{pattern: "(?<n>a)", repl: "${n}!", in: "a", want: "a!"},
		{pattern: "(a)|(b)", repl: "[$2]", in: "a", want: "[]"},
		{pattern: "x", repl: "y", in: "axbx", want: "ayby"},
		{pattern: "(a)", repl: "é$1", in: "a", want: "éa"},
		{pattern: "(a)", repl: "$2", in: "a", status: 500, reason: "No group 2"},
		{pattern: "(a)", repl: "$", in: "a", status: 400, reason: "Illegal group reference: group index is missing"},
		{pattern: "(a)", repl: "$x", in: "a", status: 400, reason: "Illegal group reference"},
		{pattern: "(a)", repl: `\`, in: "a", status: 400, reason: "character to be escaped is missing"},
		{pattern: "(a)", repl: "${}", in: "a", status: 400, reason: "named capturing group has 0 length name"},
		{pattern: "(a)", repl: "${n", in: "a", status: 400, reason: "named capturing group is missing trailing '}'"},
		{pattern: "(a)", repl: "${1n}", in: "a", status: 400, reason: "capturing group name {1n} starts with digit character"},
		{pattern: "(a)", repl: "${n}", in: "a", status: 400, reason: "No group with name {n}"},
	}
	for _, tc := range tests {
		got, err := replaceAllJava(regexp.MustCompile(tc.pattern), tc.in, tc.repl)
		switch {
		case tc.status == 0 && (err != nil || got != tc.want):
			t.Errorf("%q on %q with %q: %q, %v; want %q", tc.pattern, tc.in, tc.repl, got, err, tc.want)
		case tc.status != 0 && (err == nil || err.status != tc.status || err.reason != tc.reason):
			t.Errorf("%q on %q with %q: %q, %+v; want %d %q", tc.pattern, tc.in, tc.repl, got, err, tc.status, tc.reason)
		}
	}
}
