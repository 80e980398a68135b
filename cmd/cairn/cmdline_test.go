package main

import (
	"slices"
	"testing"
)

func TestSplitCommandLine(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		bad  bool
	}{
		{"pg_dump -Fc app", []string{"pg_dump", "-Fc", "app"}, false},
		{"  pg_dump   --dbname='host=/tmp port=5 dbname=a b'  ", []string{"pg_dump", "--dbname=host=/tmp port=5 dbname=a b"}, false},
		{`mysqldump "--where=id > 3" a\ b`, []string{"mysqldump", "--where=id > 3", "a b"}, false},
		{`echo "say \"hi\"" ''`, []string{"echo", `say "hi"`, ""}, false},
		// Inside double quotes a backslash stays unless it escapes $ ` " \ or
		// a newline (POSIX sh; these were dropped before).
		{`printf "%s\n" x`, []string{"printf", `%s\n`, "x"}, false},
		{`copy "C:\dir\file"`, []string{"copy", `C:\dir\file`}, false},
		{`echo "\$HOME \` + "`" + `x\` + "`" + ` \\ \a"`, []string{"echo", `$HOME ` + "`x`" + ` \ \a`}, false},
		{"echo \"a\\\nb\"", []string{"echo", "ab"}, false},
		{"echo a\\\nb", []string{"echo", "ab"}, false},
		{`echo a\b 'c\d'`, []string{"echo", "ab", `c\d`}, false},
		{"echo 'unterminated", nil, true},
		{`echo "trailing\`, nil, true},
		{"   ", nil, true},
	}
	for _, tc := range tests {
		got, err := splitCommandLine(tc.in)
		if tc.bad != (err != nil) || !slices.Equal(got, tc.want) {
			t.Errorf("splitCommandLine(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
