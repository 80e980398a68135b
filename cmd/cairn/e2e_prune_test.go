package main

// Process tests of prune: cairn runs as real processes (this test binary
// re-executed as the cairn command), killed with SIGKILL at seeded points,
// and side by side with backups and copies into the same repository.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/store"
)

// asCairn runs the process as the cairn command when a process test
// re-executed the test binary (CAIRN_TEST_AS_CAIRN=1). With
// CAIRN_TEST_KILL_AT=N it SIGKILLs itself at its Nth write or delete
// (lock records not counted: their refreshes depend on timing), before
// the operation, or after it with CAIRN_TEST_KILL_AFTER=1.
func asCairn() {
	if os.Getenv("CAIRN_TEST_AS_CAIRN") != "1" {
		return
	}
	if n, err := strconv.Atoi(os.Getenv("CAIRN_TEST_KILL_AT")); err == nil {
		after := os.Getenv("CAIRN_TEST_KILL_AFTER") == "1"
		var count atomic.Int64
		wrapStore = func(st store.Store) store.Store {
			return &hookStore{Store: st, hook: func(name string, op func() error) error {
				if strings.HasPrefix(name, "locks/") || count.Add(1) != int64(n) {
					return op()
				}
				if after {
					_ = op()
				}
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}}
		}
	}
	// As main does: SIGTERM and SIGINT cancel the command.
	os.Exit(runMain())
}

// hookStore passes every Put and Delete through hook.
type hookStore struct {
	store.Store
	hook func(name string, op func() error) error
}

func (s *hookStore) Put(ctx context.Context, name string, data []byte) error {
	return s.hook(name, func() error { return s.Store.Put(ctx, name, data) })
}

func (s *hookStore) Delete(ctx context.Context, name string) error {
	return s.hook(name, func() error { return s.Store.Delete(ctx, name) })
}

// cairnProc runs cairn as a separate process.
func cairnProc(ctx context.Context, env []string, args ...string) (result, error) {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "CAIRN_TEST_AS_CAIRN=1"), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}
	return r, err
}

// seedTree fills dir with the files of one application state: a part all
// states share, a part shared by a fifth of them, and a part of its own.
func seedTree(t *testing.T, dir string, seed uint64) {
	t.Helper()
	_ = os.RemoveAll(dir)
	write(t, filepath.Join(dir, "shared.bin"), randomBytes(1, 200<<10), 0o644)
	write(t, filepath.Join(dir, "group", "g.bin"), randomBytes(1000+seed%5, 200<<10), 0o644)
	write(t, filepath.Join(dir, "own.txt"), textBytes(seed, 100<<10), 0o644)
}

// verifyRestores restores every snapshot of the repository at dir and
// compares it byte for byte with the state its "seed-N" tag names, and
// checks every byte of the repository.
func verifyRestores(t *testing.T, dir string) int {
	t.Helper()
	snaps := decodeJSON[[]snapshotJSON](t, mustCairn(t, nil, "-r", dir, "snapshots", "--json"))
	want := t.TempDir()
	for _, s := range snaps {
		var seed uint64
		for _, tag := range s.Tags {
			if v, ok := strings.CutPrefix(tag, "seed-"); ok {
				seed, _ = strconv.ParseUint(v, 10, 64)
			}
		}
		if seed == 0 {
			t.Fatalf("snapshot %s has no seed tag: %v", s.ShortID, s.Tags)
		}
		out := filepath.Join(t.TempDir(), "out")
		mustCairn(t, nil, "-r", dir, "restore", "--snapshot", s.ID, "--target", out)
		seedTree(t, want, seed)
		for _, f := range []string{"shared.bin", "group/g.bin", "own.txt"} {
			a, _ := os.ReadFile(filepath.Join(want, f))
			b, err := os.ReadFile(filepath.Join(out, "files", f))
			if err != nil || !bytes.Equal(a, b) {
				t.Fatalf("snapshot %s (seed %d): %s differs after restore (%v)", s.ShortID, seed, f, err)
			}
		}
	}
	r := mustCairn(t, nil, "-r", dir, "check", "--read-data")
	if !strings.Contains(r.stdout, "no errors found") {
		t.Fatalf("check --read-data: %v", r)
	}
	return len(snaps)
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "repo")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// A prune killed at any of its writes and deletes leaves a repository in
// which every kept snapshot restores byte-exact and check --read-data is
// clean; the next prune finishes the job.
func TestPruneKilledAtEveryWrite(t *testing.T) {
	repoDir := testEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	for i := range 6 {
		seedTree(t, src, uint64(i+1))
		mustCairn(t, nil, "backup", "--tree", "files="+src, "--tag", fmt.Sprintf("seed-%d", i+1),
			"--time", time.Date(2026, 4, 1, 4*i, 0, 0, 0, time.UTC).Format(time.RFC3339))
	}
	mustCairn(t, nil, "forget", "--keep-last", "3")

	// Count the prune's writes and deletes on a copy.
	var ops atomic.Int64
	wrapStore = func(st store.Store) store.Store {
		return &hookStore{Store: st, hook: func(name string, op func() error) error {
			if !strings.HasPrefix(name, "locks/") {
				ops.Add(1)
			}
			return op()
		}}
	}
	probe := copyDir(t, repoDir)
	res := mustCairn(t, nil, "-r", probe, "prune", "--max-unused", "0%", "--json")
	wrapStore = nil
	n := int(ops.Load())
	if n < 5 || !strings.Contains(res.stdout, `"deleted_packs"`) {
		t.Fatalf("the probe prune made %d writes: %v", n, res)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	kills := 0
	for k := 1; k <= n; k++ {
		after := rng.IntN(2) == 1
		dir := copyDir(t, repoDir)
		r, err := cairnProc(t.Context(), []string{"CAIRN_TEST_KILL_AT=" + strconv.Itoa(k), "CAIRN_TEST_KILL_AFTER=" + map[bool]string{true: "1"}[after]},
			"-r", dir, "prune", "--max-unused", "0%")
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("kill at write %d: the prune was not killed: %v %v", k, err, r)
		}
		kills++
		if got := verifyRestores(t, dir); got != 3 {
			t.Fatalf("kill at write %d: %d snapshots, want 3", k, got)
		}
		mustCairn(t, nil, "-r", dir, "prune", "--max-unused", "0%")
		verifyRestores(t, dir)
		last := decodeJSON[pruneJSON](t, mustCairn(t, nil, "-r", dir, "prune", "--max-unused", "0%", "--json"))
		if last.MarkedBytes != 0 || last.MarksWaiting != 0 {
			t.Fatalf("kill at write %d: two prunes later, still %d bytes marked, %d marks waiting", k, last.MarkedBytes, last.MarksWaiting)
		}
	}
	t.Logf("%d kills survived (of %d writes and deletes)", kills, n)
}

// soakDuration is how long the adversarial test runs: about 30 s in make
// test, CAIRN_SOAK (e.g. 10m) under make soak.
func soakDuration() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("CAIRN_SOAK")); err == nil {
		return d
	}
	return 30 * time.Second
}

// Prune runs in a loop while other processes back up and copy into the
// same repository, with seeded random timing; then every snapshot restores
// byte-exact and check --read-data is clean.
func TestPruneBesideBackupsAndCopies(t *testing.T) {
	repoDir := testEnv(t)
	// Lock timing in seconds, so that marks are swept while the test runs.
	t.Setenv("CAIRN_LOCK_TIMING", "refresh=200ms,stale=4s,margin=1s")
	// The copy source: a repository with its own history.
	srcRepo := filepath.Join(t.TempDir(), "srcrepo")
	mustCairn(t, nil, "init", "-r", srcRepo)
	srcDir := filepath.Join(t.TempDir(), "s")
	var srcIDs []string
	for i := range 6 {
		seedTree(t, srcDir, uint64(1000+i))
		b := decodeJSON[backupOut](t, mustCairn(t, nil, "-r", srcRepo, "backup", "--json", "--tree", "files="+srcDir,
			"--tag", fmt.Sprintf("seed-%d", 1000+i), "--host", "other"))
		srcIDs = append(srcIDs, b.ID)
	}
	t.Setenv("CAIRN_TO_PASSWORD", testPassword)

	ctx, cancel := context.WithTimeout(t.Context(), soakDuration())
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	counts := map[string]int{}
	note := func(kind string, r result, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			counts[kind]++
			return
		}
		if ctx.Err() != nil {
			return // killed by the end of the test
		}
		counts[kind+" failed"]++
		if counts[kind+" failed"] <= 2 {
			t.Logf("%s failed: %s", kind, strings.TrimSpace(r.stderr))
		}
		// A backup or copy may fail (a lost lock is an honest failure);
		// what it must never do is leave a bad snapshot, checked below. A
		// prune must not fail, except for a lock.
		if kind == "prune" && !strings.Contains(r.stderr, "lock") {
			failures = append(failures, fmt.Sprintf("prune: %v", r))
		}
	}
	worker := func(seed uint64, fn func(rng *rand.Rand, i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 1))
			for i := 0; ctx.Err() == nil; i++ {
				fn(rng, i)
				select {
				case <-time.After(time.Duration(rng.IntN(300)) * time.Millisecond):
				case <-ctx.Done():
				}
			}
		}()
	}
	for w := range 2 {
		dir := filepath.Join(t.TempDir(), "src")
		worker(uint64(w+1), func(rng *rand.Rand, i int) {
			seed := uint64(10_000*(w+1) + i + 1)
			seedTree(t, dir, seed)
			r, err := cairnProc(ctx, nil, "backup", "--tree", "files="+dir, "--tag", fmt.Sprintf("seed-%d", seed))
			note("backup", r, err)
		})
	}
	worker(3, func(rng *rand.Rand, i int) {
		id := srcIDs[rng.IntN(len(srcIDs))]
		r, err := cairnProc(ctx, nil, "-r", srcRepo, "copy", "--to", repoDir, id)
		note("copy", r, err)
	})
	worker(4, func(rng *rand.Rand, i int) {
		r, err := cairnProc(ctx, nil, "forget", "--keep-last", strconv.Itoa(2+rng.IntN(4)), "--group-by", "host", "--prune", "--max-unused", "0%")
		note("prune", r, err)
	})
	wg.Wait()
	t.Logf("%v", counts)
	if len(failures) > 0 {
		t.Fatalf("%d prunes failed, first: %s", len(failures), failures[0])
	}
	if counts["backup"] < 3 || counts["prune"] < 3 {
		t.Fatalf("too little happened to prove anything: %v", counts)
	}
	// Two more prunes, with no one else running, finish every mark.
	mustCairn(t, nil, "prune")
	verifyRestores(t, repoDir)
	mustCairn(t, nil, "prune")
	n := verifyRestores(t, repoDir)
	t.Logf("%d snapshots restored byte-exact", n)
}

// A backup whose lock cannot be refreshed stops with the reason and writes
// no snapshot (before, the failed refresh was ignored and the snapshot
// written under a lock a prune could already treat as stale).
func TestBackupStopsWhenItsLockIsLost(t *testing.T) {
	testEnv(t)
	t.Setenv("CAIRN_LOCK_TIMING", "refresh=50ms,stale=1s,margin=300ms")
	var lockWrites atomic.Int64
	wrapStore = func(st store.Store) store.Store {
		return &hookStore{Store: st, hook: func(name string, op func() error) error {
			if strings.HasPrefix(name, "locks/") && lockWrites.Add(1) > 1 {
				return errors.New("injected: lock write refused")
			}
			return op()
		}}
	}
	defer func() { wrapStore = nil }()
	// The dump takes 3 s; the lock is lost 0.7 s after its last refresh.
	r := cairn(t, nil, "backup", "--command", "db=sh -c 'sleep 3; echo dump'")
	if r.code == 0 || !strings.Contains(r.stderr, "lock lost") {
		t.Fatalf("backup under a lock that cannot be refreshed: %v", r)
	}
	t.Logf("%s", r.stderr)
	wrapStore = nil
	if n := len(decodeJSON[[]snapshotJSON](t, mustCairn(t, nil, "snapshots", "--json"))); n != 0 {
		t.Fatalf("%d snapshots written under a lost lock", n)
	}
}
