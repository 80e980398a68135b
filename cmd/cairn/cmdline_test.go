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
		{"echo 'unterminated", nil, true},
		{"   ", nil, true},
	}
	for _, tc := range tests {
		got, err := splitCommandLine(tc.in)
		if tc.bad != (err != nil) || !slices.Equal(got, tc.want) {
			t.Errorf("splitCommandLine(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
