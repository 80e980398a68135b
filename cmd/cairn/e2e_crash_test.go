package main

// The crash harness: backup, copy and prune run as real processes and are
// killed with SIGKILL at seeded random points, either at their Nth write or
// delete (before or after it) or after a random delay (mid-write, mid-read,
// anywhere). After each kill: the killed run left no snapshot unless it had
// finished, the same command run again succeeds without any repair, check
// --read-data is clean and every snapshot restores byte-exact. make test
// runs a bounded, seeded version; make soak sets CAIRN_CRASH_KILLS=1000+.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashParams: kills to survive (CAIRN_CRASH_KILLS, default 20: about a minute under -race) and the
// seed (CAIRN_CRASH_SEED, default 1).
func crashParams() (kills int, seed uint64) {
	kills, seed = 20, 1
	if n, err := strconv.Atoi(os.Getenv("CAIRN_CRASH_KILLS")); err == nil && n > 0 {
		kills = n
	}
	if s, err := strconv.ParseUint(os.Getenv("CAIRN_CRASH_SEED"), 10, 64); err == nil {
		seed = s
	}
	return kills, seed
}

func TestCrashHarness(t *testing.T) {
	kills, seed := crashParams()
	t.Logf("seed %d (CAIRN_CRASH_SEED), %d kills (CAIRN_CRASH_KILLS)", seed, kills)
	testEnv(t)
	t.Setenv("CAIRN_TO_PASSWORD", testPassword)
	rng := rand.New(rand.NewPCG(seed, 77))
	src := filepath.Join(t.TempDir(), "src")
	survived := map[string]int{}
	finished := map[string]int{} // runs that ended before their kill point
	var repoA, repoB string
	tag := 0
	newRepos := func() {
		base := t.TempDir()
		repoA, repoB = filepath.Join(base, "a"), filepath.Join(base, "b")
		mustCairn(t, nil, "-r", repoA, "init")
		mustCairn(t, nil, "-r", repoB, "init")
		tag++
		seedTree(t, src, uint64(tag))
		mustCairn(t, nil, "-r", repoA, "backup", "--tree", "files="+src, "--tag", fmt.Sprintf("seed-%d", tag))
	}
	// Each repository pair takes a dozen kills, so verifying every
	// snapshot after each kill stays cheap however long the soak runs.
	const perRepos = 12
	total := 0
	for i := 0; total < kills; i++ {
		if i%perRepos == 0 {
			newRepos()
		}
		var op string
		var args []string
		var killedRepo string
		switch x := rng.IntN(10); {
		case x < 5:
			op = "backup"
			tag++
			seedTree(t, src, uint64(tag))
			args = []string{"-r", repoA, "backup", "--tree", "files=" + src, "--tag", fmt.Sprintf("seed-%d", tag)}
			killedRepo = repoA
		case x < 8:
			op = "copy"
			args = []string{"-r", repoA, "copy", "--to", repoB}
			killedRepo = repoB
		default:
			op = "prune"
			// Something to delete: forget all but the newest two, in
			// process, then the prune runs as the process to kill.
			mustCairn(t, nil, "-r", repoA, "forget", "--keep-last", "2")
			args = []string{"-r", repoA, "prune", "--max-unused", "0%"}
			killedRepo = repoA
		}
		before := snapshotTags(t, killedRepo)
		ctx, env, point := context.Background(), []string(nil), ""
		var cancel context.CancelFunc = func() {}
		if rng.IntN(2) == 0 {
			// A backup or copy of these trees makes 2-4 writes (packs,
			// index, manifest), a prune a few more.
			maxN := 4
			if op == "prune" {
				maxN = 6
			}
			n, after := 1+rng.IntN(maxN), rng.IntN(2) == 1
			env = []string{"CAIRN_TEST_KILL_AT=" + strconv.Itoa(n)}
			if after {
				env = append(env, "CAIRN_TEST_KILL_AFTER=1")
			}
			point = fmt.Sprintf("write %d (after: %v)", n, after)
		} else {
			// Start-up (the KDF included) takes some 20 ms; the work
			// itself 30-150 ms.
			d := time.Duration(10+rng.IntN(140)) * time.Millisecond
			ctx, cancel = context.WithTimeout(ctx, d) // exec kills with SIGKILL
			point = fmt.Sprintf("%s after start", d)
		}
		r, err := cairnProc(ctx, env, args...)
		cancel()
		var ee *exec.ExitError
		killed := errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
		if !killed {
			// A run that ended as its deadline came may report the
			// context's error with exit status 0: it finished.
			if r.code != 0 {
				t.Fatalf("%s (kill point %s) failed without being killed: %v", op, point, r)
			}
			finished[op]++
			continue
		}
		survived[op]++
		total++
		// No snapshot of an unfinished run: whatever appeared must be whole
		// (checked by verifyRestores below), and a backup adds at most one.
		after := snapshotTags(t, killedRepo)
		if op == "backup" && after[fmt.Sprintf("seed-%d", tag)] > 1 {
			t.Fatalf("killed backup at %s left %d snapshots", point, after[fmt.Sprintf("seed-%d", tag)])
		}
		if op != "prune" && len(after) < len(before) {
			t.Fatalf("killed %s at %s: snapshots went from %v to %v", op, point, before, after)
		}
		verifyRestores(t, killedRepo)
		// The next run needs no repair.
		if rr := cairn(t, nil, args...); rr.code != 0 {
			t.Fatalf("%s after a kill at %s: %v", op, point, rr)
		}
		verifyRestores(t, killedRepo)
	}
	// What the timed kills left behind mid-write is garbage check lists
	// and repair removes.
	for _, dir := range []string{repoA, repoB} {
		mustCairn(t, nil, "-r", dir, "repair")
		if r := mustCairn(t, nil, "-r", dir, "check"); strings.Contains(r.stdout, "temporary") {
			t.Errorf("temporary files after repair: %v", r)
		}
	}
	t.Logf("kills survived: %v; runs that finished before their kill point: %v", survived, finished)
}

// snapshotTags counts the repository's snapshots by tag.
func snapshotTags(t *testing.T, dir string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, s := range decodeJSON[[]snapshotJSON](t, mustCairn(t, nil, "-r", dir, "snapshots", "--json")) {
		for _, tg := range s.Tags {
			out[tg]++
		}
	}
	return out
}
