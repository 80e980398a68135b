package tree

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
)

// TestTargetDeepTree restores 2,000 nested directories the way the
// restorer does (create down, set metadata deepest first). Through the
// target root alone every call walked the whole path: 1,900 levels took
// 40 s (about 3.6 million openat calls). With cached parent handles it
// takes well under a second. The test counts the directories opened
// rather than timing the work: a time budget failed on a loaded machine
// under -race (16.4 s, CI of 30 Nov), a count does not depend on load.
func TestTargetDeepTree(t *testing.T) {
	dir := t.TempDir()
	tg, err := OpenTarget(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	const depth = 2000
	var dirs []string
	p := ""
	for range depth {
		p = path.Join(p, "d")
		if err := tg.Mkdir(p); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, p)
	}
	f, err := tg.Create(p + "/leaf")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("deep")
	f.Close()
	mt := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := tg.SetMetadata(dirs[i], &snapshot.Node{Type: snapshot.Dir, Mode: 0o750, ModTime: mt}); err != nil {
			t.Fatal(err)
		}
	}
	// Going up, a handle evicted from the 256-entry cache costs one walk
	// from the top every dirCacheSize levels: about depth*depth/256 opens
	// (15,600 here; measured 8,832). A walk per call would be depth²/2, two
	// million.
	opens := tg.dirs.opens.Load()
	if limit := int64(depth * depth / dirCacheSize); opens > limit {
		t.Errorf("restoring %d nested directories opened %d directories, want at most %d", depth, opens, limit)
	}
	t.Logf("%d nested directories: %d directories opened", depth, opens)
	// Check through a root of our own: the path is longer than PATH_MAX.
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rel := strings.TrimSuffix(strings.Repeat("d/", depth), "/")
	fi, err := r.Lstat(rel)
	if err != nil || fi.Mode().Perm() != 0o750 || !fi.ModTime().Equal(mt) {
		t.Errorf("deepest directory: %v, %v", fi, err)
	}
	if b, err := r.ReadFile(rel + "/leaf"); err != nil || string(b) != "deep" {
		t.Errorf("leaf: %q, %v", b, err)
	}
}

// TestTargetReplacedDirectory: a cached handle must not outlive the
// directory it was opened on; what is created after a replacement lands
// in the new directory.
func TestTargetReplacedDirectory(t *testing.T) {
	dir := t.TempDir()
	tg, err := OpenTarget(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	for _, p := range []string{"a", "a/b"} {
		if err := tg.Mkdir(p); err != nil {
			t.Fatal(err)
		}
	}
	f, err := tg.Create("a/b/old")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := tg.Symlink("a", "elsewhere"); err != nil { // replaces a/
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "a/b"} {
		if err := tg.Mkdir(p); err != nil {
			t.Fatal(err)
		}
	}
	f, err = tg.Create("a/b/new")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := os.Stat(filepath.Join(dir, "a", "b", "new")); err != nil {
		t.Errorf("file created after the replacement is not in the new directory: %v", err)
	}
}
