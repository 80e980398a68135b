package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRestoreSIGTERM: SIGTERM cancels a running restore (it used to run on
// for 90 s through 3,000 nested directories); the process exits non-zero
// promptly.
func TestRestoreSIGTERM(t *testing.T) {
	testEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	deep := src
	for range 1200 {
		deep = filepath.Join(deep, "d")
	}
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(deep, "leaf"), []byte("deep"), 0o644)
	mustCairn(t, nil, "backup", "--tree", "files="+src)

	target := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command(os.Args[0], "restore", "--snapshot", "latest", "--target", target)
	cmd.Env = append(os.Environ(), "CAIRN_TEST_AS_CAIRN=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the restore has begun writing, then stop it.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		if _, err := os.Stat(filepath.Join(target, "files", "d")); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			cmd.Process.Kill()
			t.Fatal("the restore never started writing")
		case <-time.After(time.Millisecond):
		}
	}
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	el := time.Since(sent)
	if err == nil || cmd.ProcessState.ExitCode() == 0 {
		t.Fatalf("restore exited 0 after SIGTERM (%s later): %s", el, stderr.String())
	}
	if el > 5*time.Second {
		t.Errorf("restore took %s to stop after SIGTERM", el)
	}
	if !strings.Contains(stderr.String(), "context canceled") {
		t.Errorf("stderr does not say the restore was cancelled: %s", stderr.String())
	}
	t.Logf("stopped %s after SIGTERM, exit %d", el.Round(time.Millisecond), cmd.ProcessState.ExitCode())
}
