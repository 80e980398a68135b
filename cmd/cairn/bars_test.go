package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
)

// TestBarRenderer feeds the terminal renderer from a fake job's counters
// and reads what it drew into a buffer: a line per job, percent and ETA
// only where the total is known. Nothing depends on how often it drew.
func TestBarRenderer(t *testing.T) {
	var buf syncBuffer
	r := newBarRenderer(&buf, time.Hour, 120)
	var restore, copyJob repo.Progress
	restore.Files.Store(3)
	restore.Bytes.Store(50 << 20)
	copyJob.Files.Store(7)
	copyJob.Bytes.Store(1 << 20)
	copyJob.Errors.Store(2)
	r.update(progressStatus("restore", &restore, 100<<20, 10*time.Second))
	r.update(progressStatus("copy", &copyJob, 0, 10*time.Second))
	var backup repo.Progress
	backup.Component("db").Add(1, 4<<20, 4<<20, 0)
	backup.Component("files").Add(5, 2<<20, 1<<20, 0)
	r.show("backup", &backup, 0, 2*time.Second)
	// A warning while the lines are drawn is printed above them, whole.
	var stderr syncBuffer
	sink := &logSink{w: &stderr}
	sink.divert(r.p)
	log, err := newLogger(sink, "", true)
	if err != nil {
		t.Fatal(err)
	}
	log.Warn("hook said something")
	sink.divert(nil)
	r.stop()
	if stderr.String() != "" || strings.Count(buf.String(), "cairn: warning: hook said something\n") != 1 {
		t.Errorf("warning went to stderr %q, not once above the lines:\n%s", stderr.String(), buf.String())
	}

	out := stripANSI(buf.String())
	restoreRE := regexp.MustCompile(`restore: .*\]\s+3 files, 50\.0 MiB of 100\.0 MiB, 5\.2 MB/s, 50%, ETA 10s`)
	if !restoreRE.MatchString(out) {
		t.Errorf("no restore line with its bar, percent and ETA in:\n%s", out)
	}
	// The job's line and one per component, each with its own figures.
	for _, want := range []string{`backup:\s+6 files, 6\.0 MiB, 3\.1 MB/s`, `backup db:\s+1 files, 4\.0 MiB, 2\.1 MB/s`, `backup files:\s+5 files, 2\.0 MiB, 1\.0 MB/s`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("no %s in:\n%s", want, out)
		}
	}
	var copyLine string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "copy: ") {
			copyLine = l
		}
	}
	if !strings.Contains(copyLine, "7 files, 1.0 MiB, 0.1 MB/s, 2 errors") || strings.Contains(copyLine, "%") || strings.Contains(copyLine, "ETA") {
		t.Errorf("copy line (total unknown) %q", copyLine)
	}
}

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

func stripANSI(s string) string {
	return ansiRE.ReplaceAllString(strings.ReplaceAll(s, "\r", "\n"), "")
}
