package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeSharedSpaces makes an ALM file repository: one folder per space,
// with what a tar must carry through: a name longer than ustar's 100
// bytes, a name that is not UTF-8, a hard link, a symlink, modes and times.
func writeSharedSpaces(t *testing.T, dir string) (long, raw string) {
	t.Helper()
	long = "sp1001/" + strings.Repeat("long-directory-name/", 8) + strings.Repeat("x", 150) + ".txt"
	raw = "sp1001/caf\xe9-latin1.txt"
	write(t, filepath.Join(dir, "sp1001/att/a.pdf"), randomBytes(1, 300<<10), 0o640)
	write(t, filepath.Join(dir, "sp1001/att/deep/b.txt"), []byte("tenant 1001\n"), 0o600)
	write(t, filepath.Join(dir, "sp1001/settings.xml"), []byte("<settings/>\n"), 0o644)
	write(t, filepath.Join(dir, long), []byte("a long name\n"), 0o644)
	write(t, filepath.Join(dir, raw), []byte("latin-1 name\n"), 0o644)
	write(t, filepath.Join(dir, "sp1002/att/a.pdf"), randomBytes(2, 100<<10), 0o640)
	write(t, filepath.Join(dir, "sp1002/notes.txt"), []byte("space 1002\n"), 0o644)
	if err := os.Link(filepath.Join(dir, "sp1001/att/a.pdf"), filepath.Join(dir, "sp1001/att/deep/a-again.pdf")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../settings.xml", filepath.Join(dir, "sp1001/att/settings")); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2025, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	for i, d := range []string{"sp1001/att/deep", "sp1001/att", "sp1001", "sp1002"} {
		if err := os.Chmod(filepath.Join(dir, d), fs.FileMode(0o755-i*0o10)); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(filepath.Join(dir, d), old, old.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	return long, raw
}

// sameInode reports whether two paths are one file (a hard link).
func sameInode(t *testing.T, a, b string) bool {
	t.Helper()
	ai, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	bi, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	return ai.Sys().(*syscall.Stat_t).Ino == bi.Sys().(*syscall.Stat_t).Ino
}

// TestSubtreeRestoreAndDump is issue 10's "no per-tenant or subtree
// restore": restore --component files/sp1001 and dump latest files/sp1001
// both failed.
func TestSubtreeRestoreAndDump(t *testing.T) {
	testEnv(t)
	src := filepath.Join(t.TempDir(), "storage")
	long, raw := writeSharedSpaces(t, src)
	mustCairn(t, []byte("a database dump\n"), "backup", "--tree", "files="+src, "--stdin", "db")
	want := captureTree(t, filepath.Join(src, "sp1001"))

	t.Run("restore a subtree", func(t *testing.T) {
		target := t.TempDir()
		mustCairn(t, nil, "restore", "latest", "--component", "files/sp1001", "--target", target)
		compareTrees(t, want, captureTree(t, filepath.Join(target, "files", "sp1001")))
		if entries, _ := os.ReadDir(filepath.Join(target, "files")); len(entries) != 1 {
			t.Errorf("restored %d entries into files/, want only sp1001", len(entries))
		}
		if _, err := os.Stat(filepath.Join(target, "db")); err == nil {
			t.Error("the db stream was restored too")
		}
		if !sameInode(t, filepath.Join(target, "files/sp1001/att/a.pdf"), filepath.Join(target, "files/sp1001/att/deep/a-again.pdf")) {
			t.Error("the hard link was not restored as one")
		}
	})

	t.Run("include and exclude", func(t *testing.T) {
		target := t.TempDir()
		mustCairn(t, nil, "restore", "latest", "--component", "files", "--include", "*.pdf", "--exclude", "/sp1002", "--target", target)
		var got []string
		filepath.WalkDir(target, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(target, p)
				got = append(got, rel)
			}
			return err
		})
		if strings.Join(got, " ") != "files/sp1001/att/a.pdf files/sp1001/att/deep/a-again.pdf" {
			t.Errorf("restored %v", got)
		}
		fi, err := os.Stat(filepath.Join(target, "files/sp1001/att"))
		if err != nil || fi.Mode().Perm() != 0o745 {
			t.Errorf("parent directory made without its mode: %v %v", fi, err)
		}
		r := cairn(t, nil, "restore", "latest", "--include", "*.pdf", "--target", t.TempDir())
		if r.code == 0 || !strings.Contains(r.stderr, "a stream has no paths") {
			t.Errorf("--include over a stream component: %v", r)
		}
		r = cairn(t, nil, "restore", "latest", "--component", "files", "--include", "/sp9999", "--target", t.TempDir())
		if r.code == 0 || !strings.Contains(r.stderr, "nothing in the snapshot matches") {
			t.Errorf("--include matching nothing: %v", r)
		}
	})

	t.Run("dump a directory as tar", func(t *testing.T) {
		out := mustCairn(t, nil, "dump", "latest", "files/sp1001")
		// GNU tar reads it back exactly (pax names, modes, times, links).
		dir := t.TempDir()
		cmd := exec.Command("tar", "-x", "-p", "-C", dir)
		cmd.Stdin = strings.NewReader(out.stdout)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("tar -x: %v\n%s", err, b)
		}
		compareTrees(t, want, captureTree(t, filepath.Join(dir, "sp1001")))
		if !sameInode(t, filepath.Join(dir, "sp1001/att/a.pdf"), filepath.Join(dir, "sp1001/att/deep/a-again.pdf")) {
			t.Error("the hard link is not one in the tar")
		}
		for _, p := range []string{long, raw} {
			if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
				t.Errorf("%q not in the tar: %v", p, err)
			}
		}
		// A subtree's hard link whose first path is outside it is a file.
		out = mustCairn(t, nil, "dump", "latest", "files/sp1001/att/deep")
		tr := tar.NewReader(strings.NewReader(out.stdout))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Name == "deep/a-again.pdf" && (h.Typeflag != tar.TypeReg || h.Size != 300<<10) {
				t.Errorf("%s: type %c size %d, want a regular file of %d bytes", h.Name, h.Typeflag, h.Size, 300<<10)
			}
		}
	})

	t.Run("dump a directory as zip", func(t *testing.T) {
		out := mustCairn(t, nil, "dump", "latest", "files/sp1002", "--archive", "zip")
		zr, err := zip.NewReader(strings.NewReader(out.stdout), int64(len(out.stdout)))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			got[f.Name] = f.Mode().String() + " " + f.Modified.UTC().Format(time.RFC3339) + " " + string(b[:min(len(b), 10)])
		}
		fi, _ := os.Stat(filepath.Join(src, "sp1002/notes.txt"))
		if g := got["sp1002/notes.txt"]; g != "-rw-r--r-- "+fi.ModTime().UTC().Format(time.RFC3339)+" space 1002" {
			t.Errorf("notes.txt in the zip: %q", g)
		}
		if g := got["sp1002/"]; !strings.HasPrefix(g, "drwx-w-r-x 2025-01-02T03:07:05Z") {
			t.Errorf("sp1002/ in the zip: %q (all: %v)", g, got)
		}
		pdf, _ := os.ReadFile(filepath.Join(src, "sp1002/att/a.pdf"))
		if g := got["sp1002/att/a.pdf"]; !strings.HasSuffix(g, string(pdf[:10])) {
			t.Errorf("a.pdf in the zip: %q", g)
		}
	})

	t.Run("dump a file or stream keeps raw bytes", func(t *testing.T) {
		if out := mustCairn(t, nil, "dump", "latest", "files/sp1001/settings.xml"); out.stdout != "<settings/>\n" {
			t.Errorf("dump of a file: %q", out.stdout)
		}
		if out := mustCairn(t, nil, "dump", "latest", "db"); out.stdout != "a database dump\n" {
			t.Errorf("dump of a stream: %q", out.stdout)
		}
		if r := cairn(t, nil, "dump", "latest", "db", "--archive", "zip"); r.code == 0 {
			t.Errorf("--archive with a stream: %v", r)
		}
		if out := mustCairn(t, nil, "dump", "latest", "files"); !bytes.Contains([]byte(out.stdout), []byte("files/sp1002/notes.txt")) {
			t.Error("dump of a whole tree component is not a tar of it")
		}
	})
}

// TestPartialLiveRestore restores one space's folder to the live file
// repository through the config: only what is selected is replaced, the
// other spaces and the database are not touched, and delete: true empties
// only a named subtree, never the rest of the live folder.
func TestPartialLiveRestore(t *testing.T) {
	a := newAppEnv(t, "")
	write(t, filepath.Join(a.files, "sp1001/x.txt"), []byte("space 1001 at backup\n"), 0o644)
	write(t, filepath.Join(a.files, "sp1002/y.txt"), []byte("space 1002 at backup\n"), 0o644)
	mustCairn(t, nil, "--config", a.config, "backup")
	want1001 := captureTree(t, filepath.Join(a.files, "sp1001"))

	a.pg.Exec(t, "DELETE FROM issues WHERE id > 10")
	db := a.query()
	write(t, filepath.Join(a.files, "sp1001/x.txt"), []byte("space 1001 changed\n"), 0o644)
	write(t, filepath.Join(a.files, "sp1001/late.txt"), []byte("added after the backup\n"), 0o644)
	write(t, filepath.Join(a.files, "sp1002/y.txt"), []byte("space 1002 changed\n"), 0o644)
	read := func(p string) string {
		b, _ := os.ReadFile(filepath.Join(a.files, p))
		return string(b)
	}

	// Refused before anything is touched.
	for _, args := range [][]string{
		{"--include", "/sp1001"}, // would select the db and search components too
		{"--component", "search/x"},
		{"--component", "files", "--include", "/sp1001", "--delete"},
	} {
		r := cairn(t, nil, append([]string{"--config", a.config, "restore", "latest"}, args...)...)
		if r.code == 0 {
			t.Errorf("restore %v: %v", args, r)
		}
		t.Logf("restore %v: %s", args, strings.TrimSpace(r.stderr))
	}
	if a.hooks() != "before db-after after" {
		t.Errorf("a refused restore ran hooks: %q", a.hooks())
	}

	// Patterns: merged, nothing deleted (the config's delete: true is not applied, and said so).
	r := mustCairn(t, nil, "--config", a.config, "restore", "latest", "--component", "files", "--include", "/sp1001")
	if !strings.Contains(r.stdout, "delete not applied") {
		t.Errorf("restore output does not say delete was not applied:\n%s", r.stdout)
	}
	if read("sp1001/x.txt") != "space 1001 at backup\n" || read("sp1001/late.txt") == "" || read("sp1002/y.txt") != "space 1002 changed\n" {
		t.Errorf("after --include /sp1001: x=%q late=%q y=%q", read("sp1001/x.txt"), read("sp1001/late.txt"), read("sp1002/y.txt"))
	}
	if _, err := os.Stat(filepath.Join(a.files, "attachments/a.bin")); err != nil {
		t.Errorf("a partial restore removed another path: %v", err)
	}

	// A named subtree with delete: true is replaced whole, and only it.
	mustCairn(t, nil, "--config", a.config, "restore", "latest", "--component", "files/sp1001")
	compareTrees(t, want1001, captureTree(t, filepath.Join(a.files, "sp1001")))
	if read("sp1002/y.txt") != "space 1002 changed\n" {
		t.Error("restoring sp1001 touched sp1002")
	}
	if got := a.query(); got != db {
		t.Error("a files-only restore restored the database")
	}
	leftovers, _ := filepath.Glob(filepath.Join(a.files, ".cairn-restore-*"))
	if len(leftovers) > 0 {
		t.Errorf("staging left behind: %v", leftovers)
	}
}

// TestTenantExport is the SaaS operator's export of one tenant, one
// command per component (README "A tenant's export"): its rows through the
// dump restored with pg_restore -n into a scratch database, its indices
// restored under new names next to the live ones, its folder as a tar.
func TestTenantExport(t *testing.T) {
	a := newAppEnv(t, "")
	a.pg.Exec(t, `CREATE SCHEMA sp1001; CREATE SCHEMA sp1002;
		CREATE TABLE sp1001.defects AS SELECT i AS id, 'defect ' || i AS title FROM generate_series(1, 300) i;
		CREATE TABLE sp1002.defects AS SELECT i AS id, 'other ' || i AS title FROM generate_series(1, 50) i;`)
	write(t, filepath.Join(a.files, "sp1001/att/a.bin"), randomBytes(7, 64<<10), 0o640)
	write(t, filepath.Join(a.files, "sp1002/att/b.bin"), randomBytes(8, 64<<10), 0o640)
	mustCairn(t, nil, "--config", a.config, "backup")
	rows := a.pg.Query(t, "SELECT count(*), md5(string_agg(id || title, ',' ORDER BY id)) FROM sp1001.defects")
	issues := a.docs("mqm_sp1001_issues")
	folder := captureTree(t, filepath.Join(a.files, "sp1001"))
	a.putDoc("mqm_sp1001_issues", "1", `{"title":"live change after the backup"}`)
	live := a.docs("mqm_sp1001_issues")
	// Another application's snapshot is the repository's latest; with
	// --config, latest is this application's.
	other := filepath.Join(t.TempDir(), "other")
	write(t, filepath.Join(other, "sp1001", "foreign.txt"), []byte("not this app's"), 0o644)
	mustCairn(t, []byte("another application's dump"), "backup", "--stdin", "db", "--tree", "files="+other)

	// Rows: the dump, restored into a scratch database, only the schema
	// (pg_restore -n restores what is in the schema, not the schema).
	scratch := a.pg.NewDatabase(t)
	scratch.Exec(t, "CREATE SCHEMA sp1001")
	dump := filepath.Join(t.TempDir(), "db.dump")
	if err := os.WriteFile(dump, []byte(mustCairn(t, nil, "--config", a.config, "dump", "latest", "db").stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(a.pg.Bin("pg_restore"), append(a.pg.ConnArgs(), "-n", "sp1001", "--no-owner", "-d", scratch.Database, dump)...)
	cmd.Env = scratch.Env()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_restore -n sp1001: %v\n%s", err, out)
	}
	if got := scratch.Query(t, "SELECT count(*), md5(string_agg(id || title, ',' ORDER BY id)) FROM sp1001.defects"); got != rows {
		t.Errorf("exported rows %s, want %s", got, rows)
	}
	if got := scratch.Query(t, "SELECT count(*) FROM information_schema.tables WHERE table_schema IN ('sp1002', 'public')"); got != "0" {
		t.Errorf("the export holds %s tables of other schemas", got)
	}

	// Indices: restored under new names; the live index is neither closed nor changed.
	mustCairn(t, nil, "--config", a.config, "restore", "latest", "--component", "search",
		"--indices", "mqm_sp1001*", "--rename-pattern", "(.+)", "--rename-replacement", "export_$1")
	if got := a.docs("export_mqm_sp1001_issues"); got != issues {
		t.Errorf("exported index:\n got %s\nwant %s", got, issues)
	}
	if got := a.docs("mqm_sp1001_issues"); got != live {
		t.Error("the export changed the live index")
	}

	// Folder: a tar of it.
	tarball := mustCairn(t, nil, "--config", a.config, "dump", "latest", "files/sp1001").stdout
	dir := t.TempDir()
	x := exec.Command("tar", "-x", "-p", "-C", dir)
	x.Stdin = strings.NewReader(tarball)
	if out, err := x.CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
	compareTrees(t, folder, captureTree(t, filepath.Join(dir, "sp1001")))
}
