package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The plan's host checks, each on a case that must fail and one that must
// pass (an unwritable directory cannot be made for root, which these
// tests may run as).
func TestPlanHostChecks(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		err     error
		wantErr string
	}{
		{"missing dir: its existing ancestor counts", writableDir(filepath.Join(dir, "a", "b")), ""},
		{"a file where the tree goes", writableDir(filepath.Join(file, "sub")), "not a directory"},
		{"room for a small tree", roomFor(dir, 1<<10), ""},
		{"no room for an exabyte", roomFor(filepath.Join(dir, "not-yet"), 1<<60), "the restore needs 1.0 EiB"},
		{"program on PATH", lookProgram([]string{"sh", "-c", "true"}, false), ""},
		{"program missing", lookProgram([]string{"pg_restore_not_installed"}, false), "pg_restore_not_installed: not found"},
		{"shell runs /bin/sh", lookProgram([]string{"anything at all"}, true), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			switch {
			case tc.wantErr == "" && tc.err != nil:
				t.Errorf("unexpected %v", tc.err)
			case tc.wantErr != "" && (tc.err == nil || !strings.Contains(tc.err.Error(), tc.wantErr)):
				t.Errorf("got %v, want %q", tc.err, tc.wantErr)
			}
		})
	}
}
