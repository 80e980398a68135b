package tree

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSparseFileHolesNotRead: a 256 MiB file with two 64 KiB data regions
// reads back byte-exact while only the data regions come from the disk
// (it used to read every byte of the holes).
func TestSparseFileHolesNotRead(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sparse")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	const size = 256 << 20
	data1 := bytes.Repeat([]byte("a"), 64<<10)
	data2 := bytes.Repeat([]byte("b"), 64<<10)
	if _, err := f.WriteAt(data1, 50<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data2, 200<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	rc := openReader(t, dir, "sparse")
	var n int64
	buf := make([]byte, 1<<20)
	for {
		k, err := rc.Read(buf)
		want := make([]byte, k)
		for _, d := range []struct {
			off  int64
			data []byte
		}{{50 << 20, data1}, {200 << 20, data2}} {
			lo, hi := max(n, d.off), min(n+int64(k), d.off+int64(len(d.data)))
			if lo < hi {
				copy(want[lo-n:hi-n], d.data[lo-d.off:hi-d.off])
			}
		}
		if !bytes.Equal(buf[:k], want) {
			t.Fatalf("bytes %d-%d differ from the file's", n, n+int64(k))
		}
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if n != size {
		t.Fatalf("read %d bytes, want %d", n, size)
	}
	fr := rc.(*fileReader)
	if err := fr.Changed(); err != nil {
		t.Errorf("Changed = %v on an unchanged file", err)
	}
	// Block-granular file systems may return a little zero padding as
	// data; a full read would be 256 MiB.
	if fr.diskRd > 4<<20 {
		t.Errorf("read %d bytes from disk for 128 KiB of data", fr.diskRd)
	}
	t.Logf("read %d bytes from disk for a %d-byte sparse file", fr.diskRd, n)
}

// TestReaderReportsChange: a file that grows, shrinks or is rewritten
// while it is read says so at the end; an untouched file does not.
func TestReaderReportsChange(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(p string) error
	}{
		{"untouched", nil},
		{"appended", func(p string) error { return appendFile(p, "more") }},
		{"truncated", func(p string) error { return os.Truncate(p, 10) }},
		{"rewritten in place", func(p string) error {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt([]byte("zz"), 3<<20)
			return err
		}},
		{"chmod", func(p string) error { return os.Chmod(p, 0o600) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "f")
			writeFile(t, p, string(bytes.Repeat([]byte("x"), 4<<20)), 0o644)
			rc := openReader(t, dir, "f")
			if _, err := rc.Read(make([]byte, 1<<20)); err != nil {
				t.Fatal(err)
			}
			if tc.change != nil {
				if err := tc.change(p); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := io.Copy(io.Discard, rc); err != nil {
				t.Fatal(err)
			}
			err := rc.(*fileReader).Changed()
			if (err != nil) != (tc.change != nil) {
				t.Errorf("Changed = %v", err)
			}
		})
	}
}

// TestReaderChangeAfterTheLastByte: a small file is read to its end by
// one Read, which then needs no further system call to report io.EOF; a
// write between that Read and the end must still be reported.
func TestReaderChangeAfterTheLastByte(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	writeFile(t, p, "a small file", 0o644)
	rc := openReader(t, dir, "f")
	buf := make([]byte, 4096)
	if n, err := rc.Read(buf); err != nil || string(buf[:n]) != "a small file" {
		t.Fatalf("first read: %q, %v", buf[:n], err)
	}
	if err := appendFile(p, ", grown"); err != nil {
		t.Fatal(err)
	}
	if n, err := rc.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("second read: %d, %v; want the end", n, err)
	}
	if err := rc.(*fileReader).Changed(); err == nil {
		t.Error("the file grew after its last byte was read, and Changed says nothing")
	}
}

// TestReaderSmallFileOnePread: a file smaller than the buffer is read
// with one pread(2), not a second one that only meets the end (as
// os.File.ReadAt asks); one that grew between its open and that read
// comes back whole and is reported as changed.
func TestReaderSmallFileOnePread(t *testing.T) {
	for _, grow := range []bool{false, true} {
		dir := t.TempDir()
		p := filepath.Join(dir, "f")
		content := string(bytes.Repeat([]byte("s"), 3000))
		writeFile(t, p, content, 0o644)
		rc := openReader(t, dir, "f")
		if grow {
			if err := appendFile(p, ", grown"); err != nil {
				t.Fatal(err)
			}
			content += ", grown"
		}
		// As the chunker reads: into a buffer larger than the file.
		buf := make([]byte, 64<<10)
		n, err := io.ReadFull(rc, buf)
		if err != io.ErrUnexpectedEOF {
			t.Fatalf("grow %v: ReadFull: %d bytes, %v", grow, n, err)
		}
		got := buf[:n]
		fr := rc.(*fileReader)
		if string(got) != content {
			t.Errorf("grow %v: read %d bytes, want %d", grow, len(got), len(content))
		}
		if fr.preads != 1 {
			t.Errorf("grow %v: %d preads for a file smaller than the buffer", grow, fr.preads)
		}
		if (fr.Changed() != nil) != grow {
			t.Errorf("grow %v: Changed = %v", grow, fr.Changed())
		}
	}
}

// appendFile appends s to the file at p.
func appendFile(p, s string) error {
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// openReader opens name in the tree at dir as the archiver does; the
// test's cleanup closes it.
func openReader(t *testing.T, dir, name string) io.ReadCloser {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := s.Open(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	return rc
}

// TestOpenListed: a file opened with the node it was listed with reads as
// through Open, and is reported changed when it changed after the listing
// (not only while it was read): appended to, rewritten with the same
// size, or replaced by another file. A file above listedMax goes through
// Open, whose state is the file's when opened.
func TestOpenListed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		size    int
		change  func(p string) error
		changed bool
	}{
		{"untouched", 3000, nil, false},
		{"appended", 3000, func(p string) error { return appendFile(p, "more") }, true},
		{"rewritten, same size", 3000, func(p string) error {
			return os.WriteFile(p, bytes.Repeat([]byte("y"), 3000), 0o644)
		}, true},
		{"replaced", 3000, func(p string) error {
			q := p + ".new"
			if err := os.WriteFile(q, bytes.Repeat([]byte("x"), 3000), 0o644); err != nil {
				return err
			}
			return os.Rename(q, p)
		}, true},
		{"large, untouched", listedMax + 1, nil, false},
		{"large, appended", listedMax + 1, func(p string) error { return appendFile(p, "more") }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "f")
			content := bytes.Repeat([]byte("x"), tc.size)
			writeFile(t, p, string(content), 0o644)
			// An old mtime, so that a rewrite within the clock's tick
			// still shows in it.
			old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			nodes, err := s.ReadDir(t.Context(), "")
			if err != nil || len(nodes) != 1 {
				t.Fatalf("ReadDir: %v, %v", nodes, err)
			}
			if tc.change != nil {
				if err := tc.change(p); err != nil {
					t.Fatal(err)
				}
			}
			rc, err := s.OpenListed(t.Context(), "f", nodes[0])
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			now, _ := os.ReadFile(p)
			if !bytes.Equal(got, now) {
				t.Errorf("read %d bytes, the file has %d", len(got), len(now))
			}
			fr := rc.(*fileReader)
			if (fr.Changed() != nil) != tc.changed {
				t.Errorf("Changed = %v, want a change: %v", fr.Changed(), tc.changed)
			}
		})
	}
}
