//go:build linux

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Restored trees are not deleted as soon as they are verified: they are
// moved into a trash directory, emptied once per data set, after its last
// timed step, and every timed restore starts only when ext4 is done
// treating the inodes freed by the last emptying as recently deleted.
//
// Why: ext4's inode allocator passes over an inode whose deletion time is
// less than the dirty-expire interval old (recently_deleted() in
// fs/ext4/ialloc.c: vm.dirty_expire_centisecs/100 seconds, 30 by default,
// 5 more while its inode table block is dirty), so a restore that creates
// 200,000 files just after 200,000 were deleted searches the inode tables
// for every file. In the bench of 2026-12-02 each small-files restore came
// a few seconds after the previous one's target was deleted: cairn's first
// restore of the data set, on a fresh filesystem, took 8.1 s (14.1 CPU-s);
// its restore from MinIO, 15 s after that target was deleted, 26.2 s
// (47.0 CPU-s); `cp -a` took 16.4 s, after kopia's restore was deleted.
// Which tool paid, and how much, depended on how fast the steps before its
// restore were, not on the tool.

// trashSeq names the entries of the trash uniquely within a run.
var trashSeq atomic.Int64

// discard moves path, if it exists, into the trash of layout l: one rename,
// which frees no inode. The trash is on the same filesystem (under the
// work dir), so the rename never copies.
func discard(l layout, path string) error {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := os.MkdirAll(l.trash(), 0o755); err != nil {
		return err
	}
	dst := filepath.Join(l.trash(), strconv.FormatInt(trashSeq.Add(1), 10)+"-"+filepath.Base(path))
	if err := os.Rename(path, dst); err != nil {
		return fmt.Errorf("discard %s: %w", path, err)
	}
	return nil
}

// emptyTrash deletes what discard moved aside and records when, for
// settle. It is not timed.
func (b *bench) emptyTrash() error {
	entries, err := os.ReadDir(b.l.trash())
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(entries) == 0) {
		return nil
	}
	if err != nil {
		return err
	}
	// After the small files, the trash holds about a dozen 200,000-file
	// restores and repositories: deleting them took 6.7-8.2 min here,
	// which must not look like a hung run.
	b.logf("emptying the trash (%d entries)...", len(entries))
	start := time.Now()
	if err := os.RemoveAll(b.l.trash()); err != nil {
		return err
	}
	b.trashEmptied = time.Now()
	b.logf("trash emptied in %.0f s", b.trashEmptied.Sub(start).Seconds())
	return nil
}

// settle waits, before a timed restore, until the inodes freed by the last
// emptying of the trash are no longer recently deleted to ext4. The wait
// is on the clock ext4 itself uses; it is logged and not timed.
func (b *bench) settle() {
	if b.trashEmptied.IsZero() {
		return
	}
	wait := settleWait(b.trashEmptied, time.Now(), recentlyDeleted())
	if wait <= 0 {
		return
	}
	b.logf("waiting %.0f s before a timed restore: ext4 still skips the inodes deleted at %s", wait.Seconds(), b.trashEmptied.Format("15:04:05"))
	select {
	case <-time.After(wait):
	case <-b.ctx.Done():
	}
}

// settleWait is how long after now a restore must wait so that inodes
// deleted at emptied are more than recent old, with a second's margin for
// the whole-second deletion times ext4 stores.
func settleWait(emptied, now time.Time, recent time.Duration) time.Duration {
	return emptied.Add(recent + time.Second).Sub(now)
}

// recentlyDeleted is how long ext4 treats a deleted inode as recently
// deleted: vm.dirty_expire_centisecs (30 s by default) plus the 5 s it
// adds while the inode's table block is dirty.
func recentlyDeleted() time.Duration {
	cs := 3000
	if b, err := os.ReadFile("/proc/sys/vm/dirty_expire_centisecs"); err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && v >= 0 {
			cs = v
		}
	}
	return time.Duration(cs)*10*time.Millisecond + 5*time.Second
}
