package tree

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
)

// restore --no-owner: a snapshot's setuid and setgid bits are cleared and,
// when running as root, its owners are not applied: the files belong to
// the user who restores. Without it both are restored (as root).
func TestTargetNoOwner(t *testing.T) {
	node := snapshot.Node{Type: snapshot.File, Mode: 0o755 | fs.ModeSetuid | fs.ModeSetgid, ModTime: time.Unix(1e9, 0), UID: 4321, GID: 4321}
	for _, tc := range []struct {
		noOwner, handle bool // handle: SetFileMetadata on the open file
	}{{false, false}, {true, false}, {false, true}, {true, true}} {
		noOwner := tc.noOwner
		dir := t.TempDir()
		tg, err := OpenTarget(dir)
		if err != nil {
			t.Fatal(err)
		}
		tg.NoOwner = noOwner
		f, err := tg.Create("suid")
		if err != nil {
			t.Fatal(err)
		}
		if tc.handle {
			err = tg.SetFileMetadata("suid", f, &node)
			f.Close()
		} else {
			f.Close()
			err = tg.SetMetadata("suid", &node)
		}
		if err != nil {
			t.Fatal(err)
		}
		tg.Close()
		fi, err := os.Stat(filepath.Join(dir, "suid"))
		if err != nil {
			t.Fatal(err)
		}
		special := fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0
		if special == noOwner {
			t.Errorf("NoOwner %v: mode %v", noOwner, fi.Mode())
		}
		if fi.Mode().Perm() != 0o755 {
			t.Errorf("NoOwner %v: permissions %v", noOwner, fi.Mode().Perm())
		}
		if os.Geteuid() == 0 {
			uid := fi.Sys().(*syscall.Stat_t).Uid
			if owned := uid == node.UID; owned == noOwner {
				t.Errorf("NoOwner %v: owner %d", noOwner, uid)
			}
		}
	}
}
