package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
)

// TestProgressLines: without a terminal, progress comes as a line every
// --progress-interval (so a cron or systemd log shows a stuck run), and
// with --json as one progress object per line on stderr, stdout keeping
// the result.
func TestProgressLines(t *testing.T) {
	testEnv(t)
	// A dump that pauses, so the run outlasts several intervals.
	dump := "db=sh -c 'head -c 300000 /dev/urandom; sleep 1'"

	r := mustCairn(t, nil, "backup", "--progress-interval", "100ms", "--command", dump)
	if !strings.Contains(r.stderr, "backup: ") || !strings.Contains(r.stderr, "files, ") {
		t.Errorf("no progress lines on stderr:\n%s", r.stderr)
	}

	r = mustCairn(t, nil, "backup", "--json", "--progress-interval", "100ms", "--command", dump)
	decodeJSON[backupOut](t, r)
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if len(lines) < 3 {
		t.Fatalf("%d progress lines in about a second at 100 ms:\n%s", len(lines), r.stderr)
	}
	for _, l := range lines {
		var p progressJSON
		if err := json.Unmarshal([]byte(l), &p); err != nil || p.Type != "progress" || p.Command != "backup" {
			t.Errorf("stderr line %q: %+v, %v", l, p, err)
		}
	}
}

func TestProgressStatus(t *testing.T) {
	var p repo.Progress
	p.Files.Store(3)
	p.Bytes.Store(250)
	st := progressStatus("restore", &p, 1000, 10*time.Second)
	if st.Percent == nil || *st.Percent != 25 || st.ETASeconds == nil || *st.ETASeconds != 30 {
		t.Errorf("250 of 1000 bytes in 10 s: %+v", st)
	}
	if got := st.line(); got != "restore: 3 files, 250 B, 0.0 MB/s, 10s, 25%, ETA 30s" {
		t.Errorf("line %q", got)
	}
	b, _ := json.Marshal(st)
	if docs := string(readFile(t, filepath.Join("..", "..", "docs", "JSON.md"))); !strings.Contains(docs, "```json\n"+string(b)+"\n```") {
		t.Errorf("docs/JSON.md does not show the progress line %s", b)
	}
	if st := progressStatus("backup", &p, 0, time.Second); st.Percent != nil || st.ETASeconds != nil {
		t.Errorf("no total, yet a percent or ETA: %+v", st)
	}
}
