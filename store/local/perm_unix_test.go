//go:build unix

package local_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Objects and directories are private whatever the umask says. The test
// clears the umask, which is process-wide, so it must not run in parallel.
func TestPermissions(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	s, dir := newStore(t)
	if err := s.Put(t.Context(), "data/ab/obj", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "config", []byte("x")); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{
		".":           os.ModeDir | 0o700,
		"data":        os.ModeDir | 0o700,
		"data/ab":     os.ModeDir | 0o700,
		"data/ab/obj": 0o600,
		"config":      0o600,
	} {
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (os.ModeDir | os.ModePerm); got != want {
			t.Errorf("%s: mode %v, want %v", p, got, want)
		}
	}
}
