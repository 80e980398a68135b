package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/esemu"
)

// TestMain lets the test binary act as the esemu command, for the
// subprocess test.
func TestMain(m *testing.M) {
	if os.Getenv("ESEMU_TEST_AS_COMMAND") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// checkInfo checks GET / the way the go-elasticsearch client's product
// check does.
func checkInfo(t *testing.T, url, wantVersion string) {
	t.Helper()
	resp, body := get(t, url+"/")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /: %s %s", resp.Status, body)
	}
	if got := resp.Header.Get("X-Elastic-Product"); got != "Elasticsearch" {
		t.Errorf("X-Elastic-Product = %q", got)
	}
	var info struct {
		Version struct{ Number string } `json:"version"`
		Tagline string                  `json:"tagline"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatalf("GET /: %v: %s", err, body)
	}
	if info.Version.Number != wantVersion || info.Tagline != "You Know, for Search" {
		t.Errorf("GET / = %s", body)
	}
}

func count(t *testing.T, url, index string) int {
	t.Helper()
	resp, body := get(t, url+"/"+index+"/_count")
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s/_count: %s %s", index, resp.Status, body)
	}
	var c struct{ Count int }
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatal(err)
	}
	return c.Count
}

// TestRun serves through run on a free port, seeded, and stops it by
// cancelling the context.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	pathRepo := filepath.Join(dir, "es", "path-repo") // created by esemu
	urlFile := filepath.Join(dir, "url")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-path-repo", pathRepo, "-seed", "-url-file", urlFile, "-version", "8.17.2", "-v"}, &stdout, &stderr)
	}()
	var url string
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(urlFile); err == nil {
			url = strings.TrimSpace(string(b))
			break
		}
		select {
		case code := <-done:
			t.Fatalf("run returned %d before serving: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no URL file after 30s: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") || strings.HasSuffix(url, ":0") {
		t.Fatalf("URL %q", url)
	}
	if first, _, _ := strings.Cut(stdout.String(), "\n"); first != url {
		t.Errorf("first line of stdout %q, URL file %q", first, url)
	}
	if fi, err := os.Stat(pathRepo); err != nil || !fi.IsDir() {
		t.Errorf("path.repo not created: %v", err)
	}
	checkInfo(t, url, "8.17.2")
	for _, ix := range seedIndices {
		if n := count(t, url, ix.name); n != ix.count {
			t.Errorf("%s: %d documents, want %d", ix.name, n, ix.count)
		}
	}
	resp, body := get(t, url+"/mqm_sp1001_issues/_doc/ISSUE-7")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"key":"ISSUE-7"`) {
		t.Errorf("GET ISSUE-7: %s %s", resp.Status, body)
	}
	resp, body = get(t, url+"/_cat/indices/mqm_*?format=json&h=index,health")
	if resp.StatusCode != 200 || strings.Contains(string(body), "yellow") || strings.Count(string(body), "green") != 3 {
		t.Errorf("_cat/indices: %s %s", resp.Status, body)
	}

	// A registered repository below path.repo and a snapshot into it.
	var out, errOut bytes.Buffer
	if code := run(ctx, []string{"-do", "PUT", url + "/_snapshot/demo", `{"type":"fs","settings":{"location":"` + filepath.Join(pathRepo, "demo") + `"}}`}, &out, &errOut); code != 0 {
		t.Fatalf("-do PUT repository: %d %s %s", code, out.String(), errOut.String())
	}
	out.Reset()
	if code := run(ctx, []string{"-do", "PUT", url + "/_snapshot/demo/s1?wait_for_completion=true", `{"indices":"mqm_sp1001*"}`}, &out, &errOut); code != 0 || !strings.Contains(out.String(), `"state":"SUCCESS"`) {
		t.Fatalf("-do snapshot: %d %s %s", code, out.String(), errOut.String())
	}
	if _, err := os.Stat(filepath.Join(pathRepo, "demo", "index.latest")); err != nil {
		t.Errorf("repository files not on disk: %v", err)
	}
	out.Reset()
	if code := run(ctx, []string{"-do", "GET", url + "/mqm_sp1001_issues/_doc/NOPE"}, &out, &errOut); code != 22 || !strings.Contains(out.String(), `"found":false`) {
		t.Errorf("-do GET missing doc: exit %d, %s", code, out.String())
	}
	if !strings.Contains(stderr.String(), "esemu: GET / 200") {
		t.Errorf("-v did not log requests: %s", stderr.String())
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("run returned %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if _, err := http.Get(url + "/"); err == nil {
		t.Error("still serving after stop")
	}
}

// TestCommand runs the program as a process and stops it with SIGTERM.
func TestCommand(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-listen", "127.0.0.1:0", "-path-repo", t.TempDir())
	cmd.Env = append(os.Environ(), "ESEMU_TEST_AS_COMMAND=1")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- strings.TrimSpace(line)
		io.Copy(io.Discard, stdout)
	}()
	var url string
	select {
	case url = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatalf("no URL on stdout after 30s: %s", stderr.String())
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("first line %q; stderr %s", url, stderr.String())
	}
	checkInfo(t, url, esemu.DefaultVersion)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- cmd.Wait() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v; stderr %s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10s after SIGTERM")
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:9200", "example.com:9200"} {
		var stderr bytes.Buffer
		if code := run(context.Background(), []string{"-listen", addr}, io.Discard, &stderr); code == 0 || !strings.Contains(stderr.String(), "loopback") {
			t.Errorf("-listen %s: exit %d, %s", addr, code, stderr.String())
		}
	}
}

func TestSeedDeterministic(t *testing.T) {
	a, _ := json.Marshal(issue("sp1001", 42))
	b, _ := json.Marshal(issue("sp1001", 42))
	c, _ := json.Marshal(comment("sp1001", 42, 300))
	d, _ := json.Marshal(comment("sp1001", 42, 300))
	if !bytes.Equal(a, b) || !bytes.Equal(c, d) {
		t.Error("seed documents differ between calls")
	}
}
