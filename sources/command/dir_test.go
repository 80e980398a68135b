package command

import (
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	names, err := dirNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// writeTwo is a dump tool that writes a directory.
var writeTwo = []string{"sh", "-c", `echo "writing to $1"; echo a > "$1/a.dat"; mkdir "$1/sub"; echo b > "$1/sub/b.dat"`, "sh", "{dir}"}

func TestRunToDir(t *testing.T) {
	t.Run("writes the directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "new", "dump")
		d, err := RunToDir(bounded(t, 10*time.Second), Spec{Argv: writeTwo}, dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := entries(t, dir); strings.Join(got, ",") != "a.dat,sub" {
			t.Errorf("directory holds %v", got)
		}
		if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
			t.Errorf("created with mode %v", fi.Mode().Perm())
		}
		if !strings.Contains(string(d.Log()), "writing to "+dir) {
			t.Errorf("log %q", d.Log())
		}
		m := d.Meta()
		if m[MetaMode] != ModeDir || m[MetaExitStatus] != "0" || !strings.Contains(m[MetaCommand], "{dir}") {
			t.Errorf("Meta() = %v", m)
		}
		if err := d.Done(); err != nil || len(entries(t, dir)) != 2 {
			t.Errorf("Done without Clean: %v, left %v", err, entries(t, dir))
		}
	})
	t.Run("refuses a directory with leftovers", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "old.dat"), "stale")
		_, err := RunToDir(t.Context(), Spec{Argv: writeTwo}, dir)
		if err == nil || !strings.Contains(err.Error(), "not empty") {
			t.Fatalf("error %v", err)
		}
		if got := entries(t, dir); len(got) != 1 {
			t.Errorf("directory changed: %v", got)
		}
	})
	t.Run("Clean empties before and after", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "old.dat"), "stale")
		d, err := RunToDir(t.Context(), Spec{Argv: writeTwo, Clean: true}, dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := entries(t, dir); strings.Join(got, ",") != "a.dat,sub" {
			t.Errorf("directory holds %v", got)
		}
		if err := d.Done(); err != nil {
			t.Fatal(err)
		}
		if got := entries(t, dir); len(got) != 0 {
			t.Errorf("after Done: %v", got)
		}
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("Done removed the directory itself: %v", err)
		}
	})
	t.Run("failure", func(t *testing.T) {
		for _, clean := range []bool{false, true} {
			dir := t.TempDir()
			_, err := RunToDir(t.Context(), Spec{Argv: []string{"sh", "-c", `echo half > "$1/part"; echo 'ORA-31693: failed' >&2; exit 5`, "sh", "{dir}"}, Clean: clean}, dir)
			ee := isExitError(t, err, 5, 0)
			if !strings.Contains(ee.Stderr, "ORA-31693") {
				t.Errorf("stderr %q", ee.Stderr)
			}
			if got, want := len(entries(t, dir)), map[bool]int{false: 1, true: 0}[clean]; got != want {
				t.Errorf("Clean %v: %d entries left, want %d", clean, got, want)
			}
		}
	})
	t.Run("empty", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := RunToDir(t.Context(), Spec{Argv: []string{"true", "{dir}"}}, dir); !errors.Is(err, ErrEmpty) {
			t.Errorf("error %v, want ErrEmpty", err)
		}
		if _, err := RunToDir(t.Context(), Spec{Argv: []string{"true", "{dir}"}, AllowEmpty: true}, dir); err != nil {
			t.Errorf("AllowEmpty: %v", err)
		}
	})
	t.Run("not a directory", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		writeFile(t, f, "x")
		if _, err := RunToDir(t.Context(), Spec{Argv: writeTwo}, f); err == nil {
			t.Error("RunToDir into a file succeeded")
		}
	})
	t.Run("missing binary", func(t *testing.T) {
		if _, err := RunToDir(t.Context(), Spec{Argv: []string{"expdpx", "{dir}"}}, t.TempDir()); !errors.Is(err, ErrNotFound) {
			t.Errorf("error %v, want ErrNotFound", err)
		}
	})
	t.Run("Sniff finds a compressed file", func(t *testing.T) {
		dir := t.TempDir()
		d, err := RunToDir(t.Context(), Spec{Argv: []string{"sh", "-c", `echo plain > "$1/a.sql"; echo data | gzip > "$1/b.dat.gz"`, "sh", "{dir}"}}, dir)
		if err != nil {
			t.Fatal(err)
		}
		if kind, compressed := d.Sniff(); kind != KindGzip || !compressed {
			t.Errorf("Sniff() = %q, %v", kind, compressed)
		}
		// gzip from Go too, in case the gzip program differs.
		os.Remove(filepath.Join(dir, "b.dat.gz"))
		f, _ := os.Create(filepath.Join(dir, "c.gz"))
		zw := gzip.NewWriter(f)
		zw.Write([]byte("data"))
		zw.Close()
		f.Close()
		if kind, compressed := d.Sniff(); kind != KindGzip || !compressed {
			t.Errorf("Sniff() = %q, %v", kind, compressed)
		}
	})
}

func TestCleanDir(t *testing.T) {
	t.Run("removes everything inside, follows no link", func(t *testing.T) {
		dir := t.TempDir()
		outside := t.TempDir()
		writeFile(t, filepath.Join(outside, "keep"), "precious")
		writeFile(t, filepath.Join(dir, "a"), "x")
		writeFile(t, filepath.Join(dir, "d", "e", "f"), "y")
		if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
			t.Fatal(err)
		}
		if err := CleanDir(dir); err != nil {
			t.Fatal(err)
		}
		if got := entries(t, dir); len(got) != 0 {
			t.Errorf("left %v", got)
		}
		if b, err := os.ReadFile(filepath.Join(outside, "keep")); err != nil || string(b) != "precious" {
			t.Errorf("followed the symlink: %q, %v", b, err)
		}
	})
	t.Run("through a symlink to a directory", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "a"), "x")
		link := filepath.Join(t.TempDir(), "link")
		os.Symlink(dir, link)
		if err := CleanDir(link); err != nil {
			t.Fatal(err)
		}
		if got := entries(t, dir); len(got) != 0 {
			t.Errorf("left %v", got)
		}
	})
	rootLink := filepath.Join(t.TempDir(), "root")
	if err := os.Symlink("/", rootLink); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "file")
	writeFile(t, file, "x")
	for _, tc := range []struct{ name, dir, want string }{
		{"root", "/", "root directory"},
		{"root, unclean", "/tmp/..", "root directory"},
		{"symlink to root", rootLink, "root directory"},
		{"a file", file, "not a directory"},
		{"missing", filepath.Join(t.TempDir(), "missing"), "no such file"},
		{"empty string", "", "no directory"},
	} {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			err := CleanDir(tc.dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CleanDir(%q) = %v, want an error about %q", tc.dir, err, tc.want)
			}
		})
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("the file was removed: %v", err)
	}
}
