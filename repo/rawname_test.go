package repo_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/repo/archive"
	"github.com/cairn-backup/cairn/repo/restore"
)

// Issue 8, item 1: names and link targets that are not valid UTF-8 used to
// come back changed ("bad\xff\xfename" as "bad\ufffd\ufffdname"), or a
// whole directory failed to decode when the replacement changed the sort
// order ("a\xf5" against "a\U0001F600"). They must restore byte-exact,
// valid siblings included.
func TestNonUTF8NamesRestoreByteExact(t *testing.T) {
	src := t.TempDir()
	sub := filepath.Join(src, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"a\xf5":               "1\n",
		"a\xf0\x9f\x98\x80":   "2\n",
		"zz":                  "keep\n",
		"bad\xff\xfename":     "3\n",
		"dir\x80/inner\xc3(x": "4\n",
	} {
		p := filepath.Join(sub, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../t\xe9st\x80", filepath.Join(sub, "link\xfe")); err != nil {
		t.Fatal(err)
	}

	st := memstore.New()
	r := initRepo(t, st)
	res, err := backup(t, r, src, nil, archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir, _, err := restoreSnapshot(t, reopen(t, st), res.ID.String(), restore.Options{Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, src, filepath.Join(dir, "files"))
	// And nothing more than what was there: no repaired names beside them.
	ents, err := os.ReadDir(filepath.Join(dir, "files", "sub"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 6 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("restored %q, want 6 entries", names)
	}
}
