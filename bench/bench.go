//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Step names, in protocol order.
const (
	stepBackup1 = "backup1"
	stepBackup2 = "backup2"
	stepRestore = "restore"
	stepCheck   = "check" // check --read-data (borg: --verify-data)
)

// stepResult is one timed command.
type stepResult struct {
	Step       string  `json:"step"`
	Command    string  `json:"command"`
	WallSec    float64 `json:"wall_s"`
	UserSec    float64 `json:"user_s"`
	SysSec     float64 `json:"sys_s"`
	MaxRSSKiB  int64   `json:"max_rss_kib"`
	InputBytes int64   `json:"input_bytes"`
	MBps       float64 `json:"mb_per_s"`
	RepoBefore int64   `json:"repo_bytes_before"`
	RepoAfter  int64   `json:"repo_bytes_after"`
}

// runResult is one tool on one data set.
type runResult struct {
	Rep           int          `json:"rep"` // repetition, from 1
	Tool          string       `json:"tool"`
	Dataset       string       `json:"dataset"`
	RepoAfterInit int64        `json:"repo_bytes_after_init"`
	Steps         []stepResult `json:"steps"`
	// RestoreVerified is true only if the restored data equals v2 byte for byte.
	RestoreVerified bool   `json:"restore_verified"`
	RestoreWrong    bool   `json:"restore_wrong"`
	Error           string `json:"error,omitempty"`
	// Chain is the stage-by-stage cost behind ceilingTool's figure.
	Chain *chainCost `json:"chain,omitempty"`
}

func (r *runResult) step(name string) *stepResult {
	for i := range r.Steps {
		if r.Steps[i].Step == name {
			return &r.Steps[i]
		}
	}
	return nil
}

// dataset is one kind of input, backed up from a fixed "live" path that is
// v1 for the first backup and is turned into v2, in place, for the second.
type dataset struct {
	name             string
	src              string
	v2Dir            string // trees: a directory holding v2, for the cp -a reference ("" for streams)
	v1Bytes, v2Bytes int64
	reset            func() error // make src the v1 data
	mutate           func() error // turn src into the v2 data
	verify           func(restored string) error
}

func dumpDataset(l layout, st *stamp) *dataset {
	return &dataset{
		name: dsDump, src: l.dumpLive(), v1Bytes: st.Dump.V1Bytes, v2Bytes: st.Dump.V2Bytes,
		reset: func() error {
			if err := os.RemoveAll(filepath.Dir(l.dumpLive())); err != nil {
				return err
			}
			return copyFile(l.dumpV1(), l.dumpLive(), false)
		},
		// Overwrite in place, as `pg_dump > app.sql` would.
		mutate: func() error { return copyFile(l.dumpV2(), l.dumpLive(), false) },
		verify: func(restored string) error {
			sum, n, err := hashFile(restored)
			if err != nil {
				return err
			}
			if sum != st.Dump.V2SHA || n != st.Dump.V2Bytes {
				return fmt.Errorf("%s: got %d bytes sha256 %.12s, want %d bytes sha256 %.12s", restored, n, sum, st.Dump.V2Bytes, st.Dump.V2SHA)
			}
			return nil
		},
	}
}

func treeDataset(l layout, st *stamp) *dataset {
	_, _, ops, _ := treePlan(st.Params)
	return &dataset{
		name: dsTree, src: l.treeLive(), v2Dir: l.treeV2(), v1Bytes: st.Tree.V1Bytes, v2Bytes: st.Tree.V2Bytes,
		reset: func() error {
			if err := discard(l, l.treeLive()); err != nil {
				return err
			}
			return copyTree(l.treeV1(), l.treeLive())
		},
		mutate: func() error {
			if err := applyTreeMutation(l.treeLive(), ops); err != nil {
				return err
			}
			// Guard the benchmark itself: a restore is judged against v2,
			// so the live tree must really be v2.
			got, err := manifest(l.treeLive())
			if err != nil {
				return err
			}
			if err := compareManifests(st.TreeV2, got); err != nil {
				return fmt.Errorf("benchmark bug: mutated live tree is not v2: %w", err)
			}
			return nil
		},
		verify: func(restored string) error {
			got, err := manifest(restored)
			if err != nil {
				return err
			}
			return compareManifests(st.TreeV2, got)
		},
	}
}

// errRestoreWrong marks a restore that completed but produced wrong data.
var errRestoreWrong = errors.New("RESTORE VERIFICATION FAILED: restored data differs from v2")

// bench runs the protocol.
type bench struct {
	ctx     context.Context
	l       layout
	timeout time.Duration
	logf    func(string, ...any)
	minio   *minioServer // nil: no S3 part
	// trashEmptied is when emptyTrash last freed anything (trash.go).
	trashEmptied time.Time
}

// run runs the whole protocol for one tool on one data set, then, with -s3
// and a tool that has an S3 backend, the S3 part (s3.go). It never stops the
// other runs: a failure is recorded in the result.
func (b *bench) run(t tool, ds *dataset, rep int) runResult {
	res := runResult{Rep: rep, Tool: t.name(), Dataset: ds.name}
	err := b.protocol(t, ds, &res)
	if st, ok := t.(s3Tool); ok && err == nil && b.minio != nil {
		err = b.s3Protocol(st, ds, &res)
	}
	if err != nil {
		res.Error = err.Error()
		res.RestoreWrong = errors.Is(err, errRestoreWrong)
		b.logf("[%s/%s] FAILED: %v", t.name(), ds.name, err)
		if res.RestoreWrong {
			b.logf("!!!!!!!! %s RESTORED WRONG DATA for %s !!!!!!!!", t.name(), ds.name)
		}
	}
	return res
}

// runRetention runs the retention protocol (retention.go) for one tool,
// recording a failure in the result like run does.
func (b *bench) runRetention(t retentionTool, h retentionHistory, seed uint64, rep int) runResult {
	res := runResult{Rep: rep, Tool: t.name(), Dataset: dsRetention}
	if err := b.retention(t, h, seed, &res); err != nil {
		res.Error = err.Error()
		res.RestoreWrong = errors.Is(err, errRestoreWrong)
		b.logf("[%s/%s] FAILED: %v", t.name(), dsRetention, err)
	}
	return res
}

// freshDirs empties the repository, cache and restore directories of a
// tool and data set, and returns the repository, the restore target and
// the tool's environment.
func (b *bench) freshDirs(t tool, ds string) (repo, target string, env []string, err error) {
	repo, cache, target := b.l.repo(t.name(), ds), b.l.cache(t.name(), ds), b.l.restore(t.name(), ds)
	for _, p := range []string{repo, cache, target} {
		if err := discard(b.l, p); err != nil {
			return "", "", nil, err
		}
	}
	for _, p := range []string{filepath.Dir(repo), cache, target} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return "", "", nil, err
		}
	}
	return repo, target, append(cleanEnv(), t.env(repo, cache)...), nil
}

// protocol: fresh repo; back up v1; mutate in place to v2; back up again;
// restore the second snapshot into an empty dir and compare it with v2;
// check the repository reading all its data.
func (b *bench) protocol(t tool, ds *dataset, res *runResult) error {
	repo, target, env, err := b.freshDirs(t, ds.name)
	if err != nil {
		return err
	}
	spec := func(args []string, stdin, dir string) cmdSpec {
		return cmdSpec{Path: t.path(), Args: args, Env: env, Stdin: stdin, Dir: dir}
	}

	if err := ds.reset(); err != nil {
		return fmt.Errorf("prepare live v1 data: %w", err)
	}
	if _, err := runCmd(b.ctx, spec(t.initArgs(repo), "", "")); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if pi, ok := t.(postIniter); ok {
		for _, args := range pi.postInit(repo) {
			if _, err := runCmd(b.ctx, spec(args, "", "")); err != nil {
				return fmt.Errorf("after init: %w", err)
			}
		}
	}
	if res.RepoAfterInit, err = dirSize(repo); err != nil {
		return err
	}
	args, stdin := t.backup(repo, ds.name, ds.src, 1)
	if _, err := b.timed(res, stepBackup1, spec(args, stdin, ""), repo, ds.v1Bytes); err != nil {
		return err
	}
	if err := ds.mutate(); err != nil {
		return fmt.Errorf("mutate live data to v2: %w", err)
	}
	args, stdin = t.backup(repo, ds.name, ds.src, 2)
	if _, err := b.timed(res, stepBackup2, spec(args, stdin, ""), repo, ds.v2Bytes); err != nil {
		return err
	}
	args, dir := t.restore(repo, ds.name, target)
	if _, err := b.timed(res, stepRestore, spec(args, "", dir), repo, ds.v2Bytes); err != nil {
		return err
	}
	if err := ds.verify(t.restored(ds.name, target, ds.src)); err != nil {
		return fmt.Errorf("%w: %v", errRestoreWrong, err)
	}
	res.RestoreVerified = true
	b.logf("[%s/%s] restore verified: identical to v2", t.name(), ds.name)
	// The restore is checked; move it out of the way (trash.go says why
	// it is not deleted yet). Repos stay for inspection.
	if err := discard(b.l, target); err != nil {
		return err
	}
	// Read back and verify every byte of the repository; MB/s is over the
	// repository's own size, so the time is the figure to compare.
	size, err := dirSize(repo)
	if err != nil {
		return err
	}
	if _, err := b.timed(res, stepCheck, spec(t.checkArgs(repo), "", ""), repo, size); err != nil {
		return err
	}
	return nil
}

// timed runs one measured step and appends its result. repo is the
// directory whose growth the step is charged with (for an S3 repository,
// where MinIO keeps its objects).
func (b *bench) timed(res *runResult, name string, c cmdSpec, repo string, input int64) (usage, error) {
	if name == stepRestore || name == stepS3Restore {
		b.settle()
	}
	// Flush dirty pages left by preparing the data (or by the previous
	// tool), so their writeback is not charged to this step.
	syscall.Sync()
	before, err := dirSize(repo)
	if err != nil {
		return usage{}, err
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	u, runErr := runCmd(ctx, c)
	if runErr != nil {
		return u, fmt.Errorf("%s: %w", name, runErr)
	}
	after, err := dirSize(repo)
	if err != nil {
		return u, err
	}
	s := stepResult{
		Step: name, Command: c.String(),
		WallSec: u.Wall.Seconds(), UserSec: u.User.Seconds(), SysSec: u.Sys.Seconds(),
		MaxRSSKiB: u.MaxRSSKiB, InputBytes: input, MBps: float64(input) / 1e6 / u.Wall.Seconds(),
		RepoBefore: before, RepoAfter: after,
	}
	res.Steps = append(res.Steps, s)
	b.logf("[%s/%s] %-8s %7.2f s %8.1f MB/s  cpu %6.1f s  rss %6.1f MiB  repo %+9.1f MiB",
		res.Tool, res.Dataset, name, s.WallSec, s.MBps, s.UserSec+s.SysSec, float64(s.MaxRSSKiB)/1024, float64(after-before)/(1<<20))
	return u, nil
}
