//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A verified restore is moved aside, not deleted, and freed only by
// emptyTrash, which starts the wait every later timed restore honours.
func TestTrash(t *testing.T) {
	l := layout{root: t.TempDir()}
	var logged []string
	b := &bench{ctx: t.Context(), l: l, logf: func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }}

	if err := discard(l, filepath.Join(l.root, "missing")); err != nil {
		t.Fatalf("discarding nothing: %v", err)
	}
	if err := b.emptyTrash(); err != nil || !b.trashEmptied.IsZero() {
		t.Fatalf("emptying no trash: %v, emptied at %v", err, b.trashEmptied)
	}

	target := l.restore("cairn", dsSmallFiles)
	for i := range 3 {
		p := filepath.Join(target, fmt.Sprint(i), "f")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := discard(l, target); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(target); !os.IsNotExist(err) {
		t.Fatalf("the target is still there: %v", err)
	}
	entries, err := os.ReadDir(l.trash())
	if err != nil || len(entries) != 1 || !strings.HasSuffix(entries[0].Name(), filepath.Base(target)) {
		t.Fatalf("trash: %v, %v", entries, err)
	}
	if _, err := os.Stat(filepath.Join(l.trash(), entries[0].Name(), "2", "f")); err != nil {
		t.Fatalf("the discarded tree lost a file: %v", err)
	}
	// A second discard of the same path (the next repetition) does not
	// collide with the first.
	if err := os.MkdirAll(filepath.Join(target, "again"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := discard(l, target); err != nil {
		t.Fatal(err)
	}

	before := time.Now()
	if err := b.emptyTrash(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(l.trash()); !os.IsNotExist(err) {
		t.Fatalf("the trash is still there: %v", err)
	}
	if b.trashEmptied.Before(before) {
		t.Fatalf("emptied at %v, before %v", b.trashEmptied, before)
	}
	// Emptying after the small files takes minutes: it says so.
	if len(logged) != 2 || !strings.Contains(logged[0], "emptying the trash (2 entries)") || !strings.Contains(logged[1], "trash emptied in") {
		t.Fatalf("emptying logged %q", logged)
	}
	logged = nil

	// Freed just now: a restore would wait, unless the run is stopped.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	b.ctx = ctx
	b.settle()
	if len(logged) != 1 || !strings.Contains(logged[0], "waiting") {
		t.Fatalf("settle right after emptying logged %q", logged)
	}
	// Freed long ago: no wait.
	b.trashEmptied = time.Now().Add(-time.Hour)
	b.settle()
	if len(logged) != 1 {
		t.Fatalf("settle an hour after emptying logged %q", logged[1:])
	}
}

func TestSettleWait(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	recent := 35 * time.Second
	for _, tc := range []struct {
		after time.Duration
		want  time.Duration
	}{
		{0, 36 * time.Second},
		{10 * time.Second, 26 * time.Second},
		{36 * time.Second, 0},
		{time.Minute, -24 * time.Second},
	} {
		if got := settleWait(t0, t0.Add(tc.after), recent); got != tc.want {
			t.Errorf("%v after emptying: wait %v, want %v", tc.after, got, tc.want)
		}
	}
	if d := recentlyDeleted(); d < 5*time.Second || d > time.Hour {
		t.Errorf("recentlyDeleted() = %v", d)
	}
}
