package repo_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/repo/archive"
	"github.com/cairn-backup/cairn/repo/restore"
)

// writeTenants makes a shared-space repository: one folder per tenant,
// nested attachments, a hard link and a symlink, directories with their
// own modes and times (a restored parent must get them back).
func writeTenants(t *testing.T, dir string) {
	t.Helper()
	files := map[string]string{
		"sp1001/att/a.pdf":         "tenant 1001 pdf",
		"sp1001/att/deep/b.txt":    "tenant 1001 text",
		"sp1001/cache/c.tmp":       "scratch",
		"sp1001/settings.xml":      "<s/>",
		"sp1002/att/a.pdf":         "tenant 1002 pdf",
		"sp1002/notes.txt":         "1002",
		"shared/templates/t1.docx": "template",
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(dir, "sp1001/att/a.pdf"), filepath.Join(dir, "sp1001/att/deep/a-link.pdf")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../settings.xml", filepath.Join(dir, "sp1001/att/settings")); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for i, d := range []string{"sp1001/att/deep", "sp1001/att", "sp1001", "sp1002"} {
		p := filepath.Join(dir, d)
		if err := os.Chmod(p, os.FileMode(0o750-i*0o10)); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old.Add(time.Duration(i)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
}

// listTree returns every path under dir, relative, sorted.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if rel, _ := filepath.Rel(dir, p); rel != "." {
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func TestPartialRestore(t *testing.T) {
	src := t.TempDir()
	writeTenants(t, src)
	r := initRepo(t, memstore.New())
	res, err := backup(t, r, src, []byte("a dump"), archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := res.ID.String()
	for _, tc := range []struct {
		name string
		opts restore.Options
		want []string
	}{
		{
			name: "a subtree by component path",
			opts: restore.Options{Components: []string{"files/sp1001"}},
			want: []string{"files", "files/sp1001", "files/sp1001/att", "files/sp1001/att/a.pdf", "files/sp1001/att/deep",
				"files/sp1001/att/deep/a-link.pdf", "files/sp1001/att/deep/b.txt", "files/sp1001/att/settings",
				"files/sp1001/cache", "files/sp1001/cache/c.tmp", "files/sp1001/settings.xml"},
		},
		{
			name: "anchored include with an exclude",
			opts: restore.Options{Components: []string{"files"}, Include: []string{"/sp1001"}, Exclude: []string{"*.tmp", "settings*"}},
			want: []string{"files", "files/sp1001", "files/sp1001/att", "files/sp1001/att/a.pdf", "files/sp1001/att/deep",
				"files/sp1001/att/deep/a-link.pdf", "files/sp1001/att/deep/b.txt", "files/sp1001/cache"},
		},
		{
			name: "unanchored pattern: only the parents of matches are made",
			opts: restore.Options{Components: []string{"files"}, Include: []string{"*.pdf"}},
			want: []string{"files", "files/sp1001", "files/sp1001/att", "files/sp1001/att/a.pdf", "files/sp1001/att/deep",
				"files/sp1001/att/deep/a-link.pdf", "files/sp1002", "files/sp1002/att", "files/sp1002/att/a.pdf"},
		},
		{
			name: "a hard link whose first path is not selected gets its own copy",
			opts: restore.Options{Components: []string{"files/sp1001/att/deep"}},
			want: []string{"files", "files/sp1001", "files/sp1001/att", "files/sp1001/att/deep",
				"files/sp1001/att/deep/a-link.pdf", "files/sp1001/att/deep/b.txt"},
		},
		{
			name: "two subtrees and a whole stream",
			opts: restore.Options{Components: []string{"files/sp1002/notes.txt", "db", "files/shared/templates"}},
			want: []string{"db", "files", "files/shared", "files/shared/templates", "files/shared/templates/t1.docx",
				"files/sp1002", "files/sp1002/notes.txt"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _, err := restoreSnapshot(t, r, id, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := listTree(t, dir); !slices.Equal(got, tc.want) {
				t.Errorf("restored\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			// Everything restored is as it was, parents included (mode, mtime, content).
			for _, p := range listTree(t, dir) {
				rel, ok := strings.CutPrefix(p, "files/")
				if !ok {
					continue
				}
				wi, err := os.Lstat(filepath.Join(src, rel))
				if err != nil {
					t.Fatal(err)
				}
				gi, err := os.Lstat(filepath.Join(dir, p))
				if err != nil {
					t.Fatal(err)
				}
				if wi.Mode() != gi.Mode() || wi.Mode()&os.ModeSymlink == 0 && !wi.ModTime().Equal(gi.ModTime()) {
					t.Errorf("%s: mode %v mtime %v, want %v %v", p, gi.Mode(), gi.ModTime(), wi.Mode(), wi.ModTime())
				}
				if wi.Mode().IsRegular() {
					a, _ := os.ReadFile(filepath.Join(src, rel))
					b, _ := os.ReadFile(filepath.Join(dir, p))
					if string(a) != string(b) {
						t.Errorf("%s: content %q, want %q", p, b, a)
					}
				}
			}
		})
	}

	for _, tc := range []struct {
		name string
		opts restore.Options
		want string
		is   error
	}{
		{name: "no such subtree", opts: restore.Options{Components: []string{"files/sp9999"}}, want: "no such file or directory in the snapshot"},
		{name: "nothing matches", opts: restore.Options{Components: []string{"files"}, Include: []string{"/sp9999"}}, is: restore.ErrNothingSelected},
		{name: "a stream has no paths", opts: restore.Options{Include: []string{"/sp1001"}}, want: "a stream has no paths"},
		{name: "a path in a stream", opts: restore.Options{Components: []string{"db/x"}}, want: "a stream has no paths"},
		{name: "bad pattern", opts: restore.Options{Components: []string{"files"}, Exclude: []string{"[x"}}, want: "syntax error in pattern"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _, err := restoreSnapshot(t, r, id, tc.opts)
			if err == nil || tc.is != nil && !errors.Is(err, tc.is) || tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q %v", err, tc.want, tc.is)
			}
			if got := listTree(t, dir); len(got) > 1 {
				t.Errorf("a refused restore wrote %v", got)
			}
		})
	}
}
