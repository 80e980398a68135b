package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestSpecialFilesAndHardLinks: named pipes and device nodes used to be
// skipped silently and hard links came back as separate copies. Now pipes
// and devices are nodes (devices restored as root), hard links are links
// again, and a socket is reported as skipped without making the backup
// partial.
func TestSpecialFilesAndHardLinks(t *testing.T) {
	testEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	write(t, filepath.Join(src, "a", "first"), []byte("shared content"), 0o640)
	write(t, filepath.Join(src, "alone"), []byte("one link"), 0o644)
	for _, l := range []string{"a/second", "b/third"} {
		os.MkdirAll(filepath.Join(src, filepath.Dir(l)), 0o755)
		if err := os.Link(filepath.Join(src, "a", "first"), filepath.Join(src, l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(src, "pipe"), 0o620); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(src, "pipe"), 0o620)
	nullDev := int((1 << 8) | 3) // makedev(1, 3): what /dev/null is
	root := os.Geteuid() == 0
	if root {
		if err := syscall.Mknod(filepath.Join(src, "null"), syscall.S_IFCHR|0o666, nullDev); err != nil {
			t.Fatal(err)
		}
	}
	sock, err := net.Listen("unix", filepath.Join(src, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()

	r := mustCairn(t, nil, "backup", "--tree", "files="+src)
	if !strings.Contains(r.stderr, "skipped files/sock: socket") {
		t.Errorf("the socket was not reported as skipped:\n%v", r)
	}
	target := t.TempDir()
	mustCairn(t, nil, "restore", "--snapshot", "latest", "--target", target)
	out := filepath.Join(target, "files")

	fi, err := os.Lstat(filepath.Join(out, "pipe"))
	if err != nil || fi.Mode().Type() != os.ModeNamedPipe || fi.Mode().Perm() != 0o620 {
		t.Errorf("pipe restored as %v, %v", fi, err)
	}
	if root {
		fi, err := os.Lstat(filepath.Join(out, "null"))
		if err != nil || fi.Mode().Type() != os.ModeDevice|os.ModeCharDevice || uint64(fi.Sys().(*syscall.Stat_t).Rdev) != uint64(nullDev) {
			t.Errorf("device restored as %v, %v", fi, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(out, "sock")); !os.IsNotExist(err) {
		t.Errorf("socket restored: %v", err)
	}
	ino := func(rel string) uint64 {
		fi, err := os.Stat(filepath.Join(out, rel))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	if ino("a/first") != ino("a/second") || ino("a/first") != ino("b/third") {
		t.Errorf("hard links restored as copies")
	}
	if ino("alone") == ino("a/first") {
		t.Errorf("an unrelated file was linked")
	}
	if b, _ := os.ReadFile(filepath.Join(out, "b", "third")); string(b) != "shared content" {
		t.Errorf("b/third holds %q", b)
	}
	fi, _ = os.Stat(filepath.Join(out, "a", "first"))
	if fi.Mode().Perm() != 0o640 || fi.Sys().(*syscall.Stat_t).Nlink != 3 {
		t.Errorf("a/first: mode %v, %d links", fi.Mode(), fi.Sys().(*syscall.Stat_t).Nlink)
	}
	// A second backup of the unchanged tree stays one snapshot's worth of
	// trees: the hard-link fields are deterministic.
	b1 := decodeJSON[backupOut](t, mustCairn(t, nil, "backup", "--json", "--tree", "files="+src))
	if b1.AddedBlobs != 0 {
		t.Errorf("second backup of an unchanged tree added %d blobs", b1.AddedBlobs)
	}
}
