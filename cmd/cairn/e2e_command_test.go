package main

import (
	"bytes"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestBackupCommand covers --command: a dump command's stdout becomes a
// stream component, taken before the trees; a failing, killed, missing or
// silent command writes no snapshot and says why.
func TestBackupCommand(t *testing.T) {
	testEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	write(t, filepath.Join(src, "a.txt"), []byte("attachment"), 0o644)

	out := decodeJSON[backupOut](t, mustCairn(t, nil, "backup", "--json", "--tree", "files="+src, "--command", "db=sh -c 'seq 1 50000'", "--max-skew", "1m"))
	if len(out.Components) != 2 || out.Components[0].Name != "db" || out.Components[1].Name != "files" {
		t.Fatalf("components not in database-first order: %+v", out.Components)
	}
	var want bytes.Buffer
	for i := 1; i <= 50000; i++ {
		want.WriteString(strconv.Itoa(i) + "\n")
	}
	if got := mustCairn(t, nil, "dump", out.ShortID, "db").stdout; got != want.String() {
		t.Fatalf("dump of the command's output differs (%d bytes, want %d)", len(got), want.Len())
	}

	for _, tc := range []struct {
		name, cmd, msg string
	}{
		{"exit status", `sh -c 'echo partial; echo "pg_dump: error: connection refused" >&2; exit 1'`, "connection refused"},
		{"killed", `sh -c 'echo partial; kill -9 $$'`, "signal"},
		{"missing binary", "pg_dump_not_installed -Fc app", "command not found"},
		{"no output", "true", "no output"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := countSnapshots(t)
			r := cairn(t, nil, "backup", "--tree", "files="+src, "--command", "db="+tc.cmd)
			if r.code != 1 || !strings.Contains(r.stderr, "no snapshot written") || !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("want exit 1 with %q and no snapshot:\n%v", tc.msg, r)
			}
			if after := countSnapshots(t); after != before {
				t.Errorf("a failed dump wrote a snapshot (%d → %d)", before, after)
			}
		})
	}
}
