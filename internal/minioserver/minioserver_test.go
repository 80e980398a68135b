package minioserver

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The server starts on free loopback ports, answers S3 requests and is
// gone, with its data, after Stop. Needs the minio binary (make test
// builds one): without it the test fails, saying how to get it.
func TestStartStop(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "minio")
	if err := os.MkdirAll(filepath.Join(dir, "data", "left-over"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := Start(t.Context(), Options{Dir: dir, User: "cairntest", Password: "cairntest-secret"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + s.Endpoint + "/")
	if err != nil {
		s.Stop()
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("unsigned ListBuckets: %s, want 403", resp.Status)
	}
	if !strings.HasPrefix(s.Endpoint, "127.0.0.1:") {
		t.Errorf("endpoint %s is not loopback", s.Endpoint)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "left-over")); !os.IsNotExist(err) {
		t.Errorf("what an earlier run left in the directory was kept: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if !s.Exited() {
		t.Error("minio still running after Stop")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("data dir left behind: %v", err)
	}
}

// A temporary directory is made when none is given, and removed by Stop.
func TestStartTempDir(t *testing.T) {
	s, err := Start(t.Context(), Options{User: "cairntest", Password: "cairntest-secret"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "data")); err != nil {
		s.Stop()
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Errorf("temporary dir left behind: %v", err)
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 8}
	for _, s := range []string{"hello ", "world", "!"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := b.String(); got != "o world!" {
		t.Errorf("tail = %q", got)
	}
}
