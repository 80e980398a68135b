package main

// End-to-end tests of the CLI, run in-process through run(). They share the
// process environment (t.Setenv), so none of them is parallel.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

const testPassword = "correct horse battery staple"

// result is one CLI invocation's outcome.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// cairn runs the CLI in-process with stdin (nil: empty).
func cairn(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	// Not t.Context(): that is cancelled before Cleanup functions run, and
	// some tests check the repository from a Cleanup.
	code := run(context.Background(), args, bytes.NewReader(stdin), &out, &errb)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// mustCairn runs the CLI and fails the test unless it exits 0.
func mustCairn(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	r := cairn(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("cairn %s: %v", strings.Join(args, " "), r)
	}
	return r
}

// decodeJSON parses a command's --json output.
func decodeJSON[T any](t *testing.T, r result) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("parse JSON output: %v\n%s", err, r.stdout)
	}
	return v
}

// testEnv points the CLI at a fresh, initialized repository through the
// environment and returns its directory.
func testEnv(t *testing.T) string {
	t.Helper()
	repoDir := filepath.Join(t.TempDir(), "repo")
	t.Setenv("CAIRN_REPOSITORY", repoDir)
	t.Setenv("CAIRN_PASSWORD", testPassword)
	t.Setenv("CAIRN_PASSWORD_FILE", "")
	t.Setenv("CAIRN_KDF_N", "1024")
	t.Setenv("CAIRN_CACHE_DIR", t.TempDir())
	mustCairn(t, nil, "init")
	return repoDir
}

// JSON shapes of the commands' output, as far as the tests read them.
type componentOut struct {
	Name       string    `json:"name"`
	Kind       string    `json:"kind"`
	Tree       string    `json:"tree"`
	Source     string    `json:"source"`
	Size       uint64    `json:"size"`
	Files      uint64    `json:"files"`
	Dirs       uint64    `json:"dirs"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	AddedBytes uint64    `json:"added_bytes"`
	Errors     uint64    `json:"errors"`
}

type backupOut struct {
	ID         string         `json:"id"`
	ShortID    string         `json:"short_id"`
	Time       time.Time      `json:"time"`
	Components []componentOut `json:"components"`
	Size       uint64         `json:"size"`
	AddedBytes uint64         `json:"added_bytes"`
	AddedBlobs uint64         `json:"added_blobs"`
	AddedPacks uint64         `json:"added_packs"`
	FileErrors []string       `json:"file_errors"`
}

type snapshotOut struct {
	ID         string         `json:"id"`
	ShortID    string         `json:"short_id"`
	Time       time.Time      `json:"time"`
	Host       string         `json:"host"`
	Tags       []string       `json:"tags"`
	Size       uint64         `json:"size"`
	Components []componentOut `json:"components"`
}

type lsOut struct {
	Path    string    `json:"path"`
	Type    string    `json:"type"`
	Mode    string    `json:"mode"`
	Size    uint64    `json:"size"`
	ModTime time.Time `json:"mtime"`
	Target  string    `json:"linktarget"`
}

type statsOut struct {
	Snapshots        int     `json:"snapshots"`
	LogicalBytes     uint64  `json:"logical_bytes"`
	Files            uint64  `json:"files"`
	UniqueBlobs      uint64  `json:"unique_blobs"`
	UniqueRawBytes   uint64  `json:"unique_raw_bytes"`
	StoredBytes      uint64  `json:"stored_bytes"`
	DedupRatio       float64 `json:"dedup_ratio"`
	CompressionRatio float64 `json:"compression_ratio"`
	RepositoryBytes  uint64  `json:"repository_bytes"`
}

// fileState is what a backup must preserve of one path.
type fileState struct {
	kind   string // "file", "dir", "symlink"
	mode   fs.FileMode
	mtime  time.Time
	size   int64
	sum    [32]byte
	target string
}

// captureTree records every regular file, directory and symlink under dir
// (not dir itself): what a restore of it must reproduce. Other types
// (FIFOs, sockets) are left out here; TestSpecialFilesAndHardLinks covers them.
func captureTree(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fileState{mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky), mtime: fi.ModTime()}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			st.kind, st.size, st.sum = "file", int64(len(b)), sha256.Sum256(b)
		case fi.IsDir():
			st.kind = "dir"
		case fi.Mode()&fs.ModeSymlink != 0:
			st.kind = "symlink"
			if st.target, err = os.Readlink(p); err != nil {
				return err
			}
			st.mode, st.mtime = 0, time.Time{} // not restored
		default:
			return nil
		}
		out[filepath.ToSlash(rel)] = st
		return nil
	})
	if err != nil {
		t.Fatalf("capture %s: %v", dir, err)
	}
	return out
}

// compareTrees reports every difference between a captured source and a
// restored copy: contents byte for byte (by SHA-256 and size), mode and
// mtime of files and directories, and symlink targets.
func compareTrees(t *testing.T, want, got map[string]fileState) {
	t.Helper()
	var paths []string
	for p := range want {
		paths = append(paths, p)
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	for _, p := range paths {
		w, inWant := want[p]
		g, inGot := got[p]
		switch {
		case !inGot:
			t.Errorf("%s: missing from the restore", p)
		case !inWant:
			t.Errorf("%s: restored but was not in the source", p)
		case w.kind != g.kind:
			t.Errorf("%s: restored as %s, was %s", p, g.kind, w.kind)
		case w.kind == "symlink" && w.target != g.target:
			t.Errorf("%s: symlink to %q, want %q", p, g.target, w.target)
		default:
			if w.size != g.size || w.sum != g.sum {
				t.Errorf("%s: content differs (%d bytes sha256 %x, want %d bytes %x)", p, g.size, g.sum[:6], w.size, w.sum[:6])
			}
			if w.mode != g.mode {
				t.Errorf("%s: mode %v, want %v", p, g.mode, w.mode)
			}
			if !w.mtime.Equal(g.mtime) {
				t.Errorf("%s: mtime %v, want %v", p, g.mtime, w.mtime)
			}
		}
	}
}

// randomBytes returns n bytes of seeded pseudo-random (incompressible) data.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

var words = strings.Fields(`alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima
mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu
backup restore snapshot repository pack index blob tree chunk cairn stone mountain path`)

// textBytes returns about n bytes of seeded, compressible text: numbered
// lines of words, so content-defined chunking finds boundaries.
func textBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	for line := 0; b.Len() < n; line++ {
		fmt.Fprintf(&b, "%08d", line)
		for range 4 + r.IntN(10) {
			b.WriteByte(' ')
			b.WriteString(words[r.IntN(len(words))])
		}
		b.WriteByte('\n')
	}
	return b.Bytes()[:n]
}

func write(t *testing.T, path string, data []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var hexRE = regexp.MustCompile(`^[0-9a-f]+$`)

// TestBackupRestoreRoundTrip is the main scenario: two backups of a tree
// and a stream, with changes in between, each restored and compared with
// the source as it was at its backup.
func TestBackupRestoreRoundTrip(t *testing.T) {
	repoDir := testEnv(t)
	base := t.TempDir()
	src := filepath.Join(base, "src")

	// The first state of the application.
	oldTime := time.Date(2019, 7, 8, 9, 10, 11, 121314151, time.UTC)
	write(t, filepath.Join(src, "README.txt"), []byte("first version of the readme\n"), 0o644)
	write(t, filepath.Join(src, "secret.key"), []byte("s3cr3t-key-0001\n"), 0o600)
	write(t, filepath.Join(src, "empty"), nil, 0o644)
	write(t, filepath.Join(src, "docs", "big.txt"), textBytes(1, 3<<20), 0o644)
	write(t, filepath.Join(src, "docs", "nested", "deeper", "note.md"), []byte("# note\n"), 0o640)
	write(t, filepath.Join(src, "docs", "nested", "old.txt"), []byte("old\n"), 0o444)
	write(t, filepath.Join(src, "bin", "random.bin"), randomBytes(2, 2<<20), 0o755)
	write(t, filepath.Join(src, "bin", "tool"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	if err := os.Chtimes(filepath.Join(src, "docs", "nested", "old.txt"), oldTime, oldTime); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("docs/nested", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent/absolute/target", filepath.Join(src, "abs-link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(src, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "docs", "nested", "deeper"), 0o750); err != nil {
		t.Fatal(err)
	}
	dirTime := time.Date(2020, 1, 1, 12, 0, 0, 5, time.UTC)
	if err := os.Chtimes(filepath.Join(src, "docs", "nested"), dirTime, dirTime); err != nil {
		t.Fatal(err)
	}
	stream1 := textBytes(3, 2<<20)

	want1 := captureTree(t, src)
	if _, ok := want1["fifo"]; ok {
		t.Fatal("captureTree kept the FIFO")
	}
	time1 := "2024-03-04T05:06:07+01:00"
	r := mustCairn(t, stream1, "backup", "--json", "--host", "test-host", "--tag", "daily", "--tag", "first",
		"--time", time1, "--tree", "files="+src, "--stdin", "db")
	b1 := decodeJSON[backupOut](t, r)

	// Changes: rewrite one file, rewrite another keeping its size and mtime
	// (only ctime and the content tell), append to one, delete one, add one,
	// change the stream in the middle.
	write(t, filepath.Join(src, "README.txt"), []byte("second, longer version of the readme\n"), 0o644)
	keyPath := filepath.Join(src, "secret.key")
	keyInfo, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	write(t, keyPath, []byte("s3cr3t-key-0002\n"), 0o600)
	if err := os.Chtimes(keyPath, keyInfo.ModTime(), keyInfo.ModTime()); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(src, "docs", "big.txt"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("appended line\n")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Remove(filepath.Join(src, "docs", "nested", "deeper", "note.md")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(src, "docs", "new.txt"), []byte("a new file\n"), 0o644)
	stream2 := slices.Clone(stream1)
	copy(stream2[1<<20:], "CHANGED IN THE MIDDLE OF THE STREAM")

	want2 := captureTree(t, src)
	time2 := "2024-03-05T05:06:07Z"
	r = mustCairn(t, stream2, "backup", "--json", "--host", "test-host", "--time", time2, "--tree", "files="+src, "--stdin", "db")
	b2 := decodeJSON[backupOut](t, r)

	t.Logf("added bytes: first backup %d, second %d", b1.AddedBytes, b2.AddedBytes)
	t.Run("backup --json", func(t *testing.T) {
		for i, b := range []backupOut{b1, b2} {
			if len(b.ID) != 64 || !hexRE.MatchString(b.ID) || b.ShortID != b.ID[:8] {
				t.Errorf("backup %d: id %q short_id %q", i+1, b.ID, b.ShortID)
			}
			if len(b.FileErrors) != 0 {
				t.Errorf("backup %d: file errors %q", i+1, b.FileErrors)
			}
			if len(b.Components) != 2 || b.Components[0].Name != "db" || b.Components[1].Name != "files" {
				t.Errorf("backup %d: components %+v", i+1, b.Components)
			}
		}
		if b1.ID == b2.ID {
			t.Error("both backups have the same ID")
		}
		// The second backup stores only the changed chunks: the random file
		// is skipped unread, the text file's unchanged chunks and the
		// stream's deduplicate. Typically it adds a sixth of the first; the
		// bound allows for the random chunk boundaries of each repository
		// (even re-storing all of big.txt and the stream stays under it).
		if b2.AddedBytes*2 > b1.AddedBytes || b2.AddedBytes >= 2<<20 {
			t.Errorf("second backup added %d bytes, first %d: want less than half, and less than the unchanged 2 MiB random file", b2.AddedBytes, b1.AddedBytes)
		}
		if b1.AddedBytes < 2<<20 {
			t.Errorf("first backup added only %d bytes; the random file alone is 2 MiB", b1.AddedBytes)
		}
		var sum uint64
		for _, c := range b2.Components {
			sum += c.AddedBytes
		}
		if sum != b2.AddedBytes {
			t.Errorf("components added %d bytes, the backup %d", sum, b2.AddedBytes)
		}
	})

	r = mustCairn(t, nil, "snapshots", "--json")
	snaps := decodeJSON[[]snapshotOut](t, r)
	if len(snaps) != 2 {
		t.Fatalf("snapshots --json lists %d snapshots: %s", len(snaps), r.stdout)
	}
	s1, s2 := snaps[0], snaps[1]

	t.Run("snapshots --json", func(t *testing.T) {
		// Every documented field is present.
		raw := decodeJSON[[]map[string]any](t, r)
		for _, key := range []string{"id", "short_id", "time", "host", "tags", "components"} {
			if _, ok := raw[0][key]; !ok {
				t.Errorf("snapshot lacks %q: %v", key, raw[0])
			}
		}
		comps, _ := raw[0]["components"].([]any)
		for _, c := range comps {
			for _, key := range []string{"name", "kind", "size", "started", "finished"} {
				if _, ok := c.(map[string]any)[key]; !ok {
					t.Errorf("component lacks %q: %v", key, c)
				}
			}
		}
		if tags, ok := raw[1]["tags"].([]any); !ok || len(tags) != 0 {
			t.Errorf("untagged snapshot has tags %#v, want []", raw[1]["tags"])
		}

		for i, tc := range []struct {
			s      snapshotOut
			b      backupOut
			time   string
			tags   []string
			stream []byte
			files  map[string]fileState
		}{
			{s1, b1, time1, []string{"daily", "first"}, stream1, want1},
			{s2, b2, time2, []string{}, stream2, want2},
		} {
			t.Run(fmt.Sprint("snapshot ", i+1), func(t *testing.T) {
				s := tc.s
				if s.ID != tc.b.ID || s.ShortID != tc.b.ShortID || s.ShortID != s.ID[:8] {
					t.Errorf("id %q short %q, backup said %q", s.ID, s.ShortID, tc.b.ID)
				}
				wantTime, _ := time.Parse(time.RFC3339, tc.time)
				if !s.Time.Equal(wantTime) || s.Time.Location() != time.UTC {
					t.Errorf("time %v, want %v in UTC", s.Time, wantTime)
				}
				if s.Host != "test-host" {
					t.Errorf("host %q", s.Host)
				}
				if !slices.Equal(s.Tags, tc.tags) {
					t.Errorf("tags %q, want %q", s.Tags, tc.tags)
				}
				if len(s.Components) != 2 {
					t.Fatalf("components %+v", s.Components)
				}
				var fileBytes, files, dirs uint64
				for _, st := range tc.files {
					switch st.kind {
					case "file":
						fileBytes += uint64(st.size)
						files++
					case "dir":
						dirs++
					}
				}
				for _, c := range []struct {
					got              componentOut
					name, kind, src  string
					size, files, dir uint64
				}{
					// Streams (the database) come before trees (the files).
					{s.Components[0], "db", "stream", "stdin", uint64(len(tc.stream)), 1, 0},
					{s.Components[1], "files", "tree", src, fileBytes, files, dirs + 1},
				} {
					g := c.got
					if g.Name != c.name || g.Kind != c.kind || g.Source != c.src {
						t.Errorf("component %+v, want %s %s %s", g, c.name, c.kind, c.src)
					}
					if g.Size != c.size || g.Files != c.files || g.Dirs != c.dir {
						t.Errorf("%s: size %d files %d dirs %d, want %d %d %d", c.name, g.Size, g.Files, g.Dirs, c.size, c.files, c.dir)
					}
					if g.Started.IsZero() || g.Finished.Before(g.Started) {
						t.Errorf("%s: started %v finished %v", c.name, g.Started, g.Finished)
					}
					if len(g.Tree) != 64 {
						t.Errorf("%s: tree %q", c.name, g.Tree)
					}
				}
				if s.Size != fileBytes+uint64(len(tc.stream)) {
					t.Errorf("size %d, want %d", s.Size, fileBytes+uint64(len(tc.stream)))
				}
			})
		}
	})

	t.Run("snapshots table", func(t *testing.T) {
		r := mustCairn(t, nil, "snapshots")
		for _, want := range []string{s1.ShortID, s2.ShortID, "test-host", "daily,first", "db,files", "2 snapshots"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("snapshots output lacks %q:\n%s", want, r.stdout)
			}
		}
	})

	for i, tc := range []struct {
		ref    string
		files  map[string]fileState
		stream []byte
	}{
		{s1.ShortID, want1, stream1},
		{s2.ShortID, want2, stream2},
	} {
		t.Run(fmt.Sprintf("restore snapshot %d", i+1), func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "restore")
			r := mustCairn(t, nil, "restore", "--snapshot", tc.ref, "--target", target, "--verify")
			if !strings.Contains(r.stdout, "verified: every restored file matches the snapshot") {
				t.Errorf("restore --verify did not report verification:\n%s", r.stdout)
			}
			entries, err := os.ReadDir(target)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if !slices.Equal(names, []string{"db", "files"}) {
				t.Errorf("target holds %q, want [db files]", names)
			}
			compareTrees(t, tc.files, captureTree(t, filepath.Join(target, "files")))
			if got := readFile(t, filepath.Join(target, "db")); !bytes.Equal(got, tc.stream) {
				t.Errorf("restored stream differs from what was fed (%d bytes, want %d)", len(got), len(tc.stream))
			}
		})
		t.Run(fmt.Sprintf("dump snapshot %d", i+1), func(t *testing.T) {
			r := mustCairn(t, nil, "dump", tc.ref, "db")
			if !bytes.Equal([]byte(r.stdout), tc.stream) {
				t.Errorf("dump of the stream differs from what was fed (%d bytes, want %d)", len(r.stdout), len(tc.stream))
			}
			r = mustCairn(t, nil, "dump", tc.ref, "files/README.txt")
			if sha256.Sum256([]byte(r.stdout)) != tc.files["README.txt"].sum {
				t.Errorf("dump of files/README.txt gave %q", r.stdout)
			}
		})
	}

	t.Run("restore one component with JSON output", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "only-db")
		r := mustCairn(t, nil, "restore", "--json", "--snapshot", "latest", "--target", target, "--component", "db", "--verify")
		out := decodeJSON[map[string]any](t, r)
		if out["snapshot"] != s2.ID || out["verified"] != true || out["files"] != float64(1) || out["bytes"] != float64(len(stream2)) {
			t.Errorf("restore --json = %v", out)
		}
		if got := readFile(t, filepath.Join(target, "db")); !bytes.Equal(got, stream2) {
			t.Error("restored stream differs")
		}
		if _, err := os.Lstat(filepath.Join(target, "files")); err == nil {
			t.Error("restore --component db also restored files")
		}
	})

	t.Run("snapshot references", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			ref  string
			want string // snapshot ID, "" for failure
		}{
			{"full ID", s1.ID, s1.ID},
			{"short ID", s1.ShortID, s1.ID},
			{"upper-case short ID", strings.ToUpper(s1.ShortID), s1.ID},
			{"latest", "latest", s2.ID},
			{"unknown", "ffffffffffff", ""},
			{"not hex", "zz", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := cairn(t, nil, "ls", "--json", tc.ref)
				if tc.want == "" {
					if r.code != 1 || !strings.Contains(r.stderr, "snapshot not found") {
						t.Errorf("ls %s: %v", tc.ref, r)
					}
					return
				}
				if r.code != 0 {
					t.Fatalf("ls %s: %v", tc.ref, r)
				}
				comps := decodeJSON[[]componentOut](t, r)
				wantSnap := s1
				if tc.want == s2.ID {
					wantSnap = s2
				}
				if len(comps) != 2 || comps[0].Tree != wantSnap.Components[0].Tree {
					t.Errorf("ls %s listed %+v, want the components of %s", tc.ref, comps, tc.want[:8])
				}
			})
		}
	})

	t.Run("ls paths", func(t *testing.T) {
		for _, tc := range []struct {
			ref     string
			path    string
			want    []string // paths that must be listed
			notWant []string
		}{
			{s1.ShortID, "files", []string{"files/docs/nested/deeper/note.md", "files/link", "files/bin/random.bin", "files/empty", "files/fifo"}, []string{"files/docs/new.txt"}},
			{s2.ShortID, "files", []string{"files/docs/new.txt", "files/docs/nested/deeper"}, []string{"files/docs/nested/deeper/note.md"}},
			{s1.ShortID, "files/docs/nested", []string{"files/docs/nested/old.txt", "files/docs/nested/deeper/note.md"}, []string{"files/README.txt"}},
			{s1.ShortID, "files/secret.key", []string{"files/secret.key"}, nil},
			{s1.ShortID, "db", []string{"db"}, nil},
		} {
			t.Run(tc.ref+" "+tc.path, func(t *testing.T) {
				r := mustCairn(t, nil, "ls", "--json", tc.ref, tc.path)
				entries := decodeJSON[[]lsOut](t, r)
				got := map[string]lsOut{}
				for _, e := range entries {
					got[e.Path] = e
				}
				for _, p := range tc.want {
					if _, ok := got[p]; !ok {
						t.Errorf("ls %s %s lacks %s", tc.ref, tc.path, p)
					}
				}
				for _, p := range tc.notWant {
					if _, ok := got[p]; ok {
						t.Errorf("ls %s %s lists %s", tc.ref, tc.path, p)
					}
				}
				if e, ok := got["files/link"]; ok && (e.Type != "symlink" || e.Target != "docs/nested") {
					t.Errorf("files/link listed as %+v", e)
				}
				if e, ok := got["files/secret.key"]; ok && (e.Type != "file" || e.Size != 16 || e.Mode != "-rw-------") {
					t.Errorf("files/secret.key listed as %+v", e)
				}
				if e, ok := got["files/docs/nested/old.txt"]; ok && !e.ModTime.Equal(oldTime) {
					t.Errorf("old.txt mtime %v, want %v", e.ModTime, oldTime)
				}
			})
		}
		t.Run("missing path", func(t *testing.T) {
			r := cairn(t, nil, "ls", s2.ShortID, "files/docs/nested/deeper/note.md")
			if r.code != 1 || !strings.Contains(r.stderr, "no such file") {
				t.Errorf("ls of a deleted file: %v", r)
			}
		})
	})

	t.Run("stats --json", func(t *testing.T) {
		st := decodeJSON[statsOut](t, mustCairn(t, nil, "stats", "--json"))
		if st.Snapshots != 2 {
			t.Errorf("snapshots %d", st.Snapshots)
		}
		if want := s1.Size + s2.Size; st.LogicalBytes != want {
			t.Errorf("logical_bytes %d, want the snapshots' sizes %d", st.LogicalBytes, want)
		}
		if want := s1.Components[0].Files + s1.Components[1].Files + s2.Components[0].Files + s2.Components[1].Files; st.Files != want {
			t.Errorf("files %d, want %d", st.Files, want)
		}
		if st.UniqueRawBytes == 0 || st.LogicalBytes < st.UniqueRawBytes {
			t.Errorf("logical %d < unique raw %d", st.LogicalBytes, st.UniqueRawBytes)
		}
		if st.StoredBytes == 0 || st.StoredBytes > st.RepositoryBytes {
			t.Errorf("stored %d, repository %d", st.StoredBytes, st.RepositoryBytes)
		}
		if st.DedupRatio <= 1 || st.CompressionRatio <= 1 {
			t.Errorf("dedup ratio %.2f, compression ratio %.2f; want both > 1 for two similar, partly compressible snapshots", st.DedupRatio, st.CompressionRatio)
		}
		if got := float64(st.LogicalBytes) / float64(st.UniqueRawBytes); got != st.DedupRatio {
			t.Errorf("dedup_ratio %v, logical/unique %v", st.DedupRatio, got)
		}
		if got := float64(st.UniqueRawBytes) / float64(st.StoredBytes); got != st.CompressionRatio {
			t.Errorf("compression_ratio %v, unique/stored %v", st.CompressionRatio, got)
		}
		one := decodeJSON[statsOut](t, mustCairn(t, nil, "stats", "--json", s1.ShortID))
		if one.Snapshots != 1 || one.LogicalBytes != s1.Size || one.UniqueRawBytes > st.UniqueRawBytes || one.RepositoryBytes != st.RepositoryBytes {
			t.Errorf("stats of snapshot 1: %+v (all: %+v)", one, st)
		}
	})

	t.Run("check", func(t *testing.T) {
		for _, args := range [][]string{{"check"}, {"check", "--read-data"}} {
			r := mustCairn(t, nil, args...)
			if !strings.Contains(r.stdout, "checked 2 snapshots") || !strings.Contains(r.stdout, "no errors found") {
				t.Errorf("%s:\n%s", args, r.stdout)
			}
		}
	})

	t.Run("no locks left behind", func(t *testing.T) {
		entries, _ := os.ReadDir(filepath.Join(repoDir, "locks"))
		if len(entries) != 0 {
			t.Errorf("%d lock files remain", len(entries))
		}
	})
}
