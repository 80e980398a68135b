package main

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestLogger: the text form of a one-shot command prints the lines cairn
// always printed; the daemon's is slog's key=value; json is one object a
// record with its attributes.
func TestLogger(t *testing.T) {
	tests := []struct {
		format string
		human  bool
		want   string
	}{
		{"", true, "cairn: warning: pack 1 damaged\ncairn: waiting up to 1m\n"},
		{"text", true, "cairn: warning: pack 1 damaged\ncairn: waiting up to 1m\n"},
	}
	for _, tc := range tests {
		var buf bytes.Buffer
		log, err := newLogger(&buf, tc.format, tc.human)
		if err != nil {
			t.Fatal(err)
		}
		log.Warn("pack 1 damaged", "pack", "1")
		log.Info("waiting up to 1m")
		log.Debug("not shown")
		if buf.String() != tc.want {
			t.Errorf("format %q: got %q, want %q", tc.format, buf.String(), tc.want)
		}
	}

	var buf bytes.Buffer
	log, err := newLogger(&buf, "text", false)
	if err != nil {
		t.Fatal(err)
	}
	log.Warn("pack 1 damaged", "pack", "1")
	if !bytes.Contains(buf.Bytes(), []byte(`level=WARN msg="pack 1 damaged" pack=1`)) {
		t.Errorf("daemon text: %q", buf.String())
	}

	buf.Reset()
	if log, err = newLogger(&buf, "json", true); err != nil {
		t.Fatal(err)
	}
	log.Warn("pack 1 damaged", "pack", "1")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || rec["level"] != "WARN" || rec["msg"] != "pack 1 damaged" || rec["pack"] != "1" {
		t.Errorf("json: %v %q", err, buf.String())
	}

	if _, err := newLogger(&buf, "xml", true); err == nil {
		t.Error("--log-format xml accepted")
	}
}
