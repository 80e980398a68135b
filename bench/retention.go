//go:build linux

package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

// The retention row: a history of 4-hourly snapshots of a changing
// application (backup --time), then the same forget policy with prune, by
// cairn and by restic: repository size before and after, wall time and
// peak RSS of the forget+prune.

const (
	dsRetention = "retention"

	stepHistory = "history"      // all backups of the history, summed (wall, CPU) and peaked (RSS)
	stepPrune   = "forget+prune" // one forget --prune
)

// retentionPolicy is the policy both tools apply: a 4-hourly SaaS schedule
// thinned to a day of 4-hourlies, two weeks of dailies, two months of
// weeklies and a year of monthlies.
var retentionPolicy = []string{"--keep-hourly", "6", "--keep-daily", "14", "--keep-weekly", "8", "--keep-monthly", "12"}

// retentionTool is a tool that can take part in the retention row.
type retentionTool interface {
	tool
	// backupAt backs up src as a snapshot taken at t.
	backupAt(src string, t time.Time) []string
	// forgetPrune applies retentionPolicy and prunes.
	forgetPrune() []string
}

func (t cairnTool) backupAt(src string, at time.Time) []string {
	return []string{"backup", "--quiet", "--tree", "files=" + src, "--time", at.UTC().Format(time.RFC3339)}
}

func (t cairnTool) forgetPrune() []string {
	return append(append([]string{"forget", "--quiet"}, retentionPolicy...), "--prune")
}

func (t resticTool) backupAt(src string, at time.Time) []string {
	return []string{"backup", "--quiet", "--time", at.Local().Format("2006-01-02 15:04:05"), src}
}

func (t resticTool) forgetPrune() []string {
	return append(append([]string{"forget", "--quiet"}, retentionPolicy...), "--prune")
}

// retentionHistory is the shape of the retention row's history.
type retentionHistory struct {
	Snapshots int // 4-hourly snapshots
	// Files, when not 0, replaces the application by manyFilesState with
	// that many files: a history whose index is large beside the tools'
	// fixed memory (scrypt, runtime, binary), which the application's
	// (about 2,000 blobs) is not.
	Files int
}

// state writes the source as it is at step i into dir.
func (h retentionHistory) state(dir string, seed uint64, i int) error {
	if h.Files > 0 {
		return manyFilesState(dir, seed, h.Files, i)
	}
	return appState(dir, seed, i)
}

// retentionStart is the first snapshot's time; snapshot i is 4i hours later.
var retentionStart = time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)

// appState writes the application as it is at step i into dir: 10 MiB of
// static files, an 8 MiB database dump of which a twentieth is rewritten
// at each step, and an uploads directory that gains a 64 KiB file per step
// and loses its three oldest every sixth step. The same (seed, i) always
// gives the same bytes.
func appState(dir string, seed uint64, i int) error {
	if i == 0 {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		for f := range 40 {
			if err := writeRandom(filepath.Join(dir, "static", fmt.Sprintf("lib%02d.bin", f)), seed, uint64(f), 256<<10); err != nil {
				return err
			}
		}
	}
	// The dump: 160 blocks of 50 KiB; block b holds version v(b, i), the
	// last step at which it was rewritten (8 blocks per step, round robin).
	const blocks, blockSize, perStep = 160, 50 << 10, 8
	dump := make([]byte, 0, blocks*blockSize)
	for b := range blocks {
		v := 0
		if i > 0 {
			// Block b was last rewritten at the latest step s <= i with
			// (s*perStep .. s*perStep+perStep-1) mod blocks containing b.
			for s := i; s > 0; s-- {
				if lo := (s * perStep) % blocks; b >= lo && b < lo+perStep {
					v = s
					break
				}
			}
		}
		dump = append(dump, textBlock(seed, uint64(b)<<32|uint64(v), blockSize)...)
	}
	if err := writeFile(filepath.Join(dir, "db", "dump.sql"), dump); err != nil {
		return err
	}
	if err := writeRandom(filepath.Join(dir, "uploads", fmt.Sprintf("u%05d.bin", i)), seed^0x75706c, uint64(i), 64<<10); err != nil {
		return err
	}
	if i > 0 && i%6 == 0 {
		for k := i - 6; k < i-3; k++ {
			if err := os.Remove(filepath.Join(dir, "uploads", fmt.Sprintf("u%05d.bin", k))); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
	}
	return nil
}

// manyFilesRewrite is the share of manyFilesState's files rewritten per
// step: each file gets a new version every fourth step, so a version lives
// in four consecutive snapshots.
const manyFilesRewrite = 4

// manyFilesState writes a file repository of n small files as it is at
// step i into dir: files of 256 to 1,535 bytes (random, so incompressible;
// every tool stores each as one blob) in directories of 200, a quarter of
// them rewritten at each step (file f at steps i with i%4 == f%4). Each
// step adds n/4 blobs to a repository, and a version no kept snapshot
// holds is garbage after forget: n=80,000 over 36 snapshots is 794,436
// blobs in cairn's index (14,436 of them trees). The same (seed, n, i) gives
// the same bytes, as long as steps 0..i were written in order into dir.
func manyFilesState(dir string, seed uint64, n, i int) error {
	if i == 0 {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	buf := make([]byte, 1536)
	for f := range n {
		if i > 0 && f%manyFilesRewrite != i%manyFilesRewrite {
			continue
		}
		r := rand.New(rand.NewPCG(seed^0x6d616e79, uint64(f)<<32|uint64(i)))
		b := buf[:256+(f*7919)%1280]
		for k := 0; k < len(b); k += 8 {
			v := r.Uint64()
			for j := 0; j < 8 && k+j < len(b); j++ {
				b[k+j] = byte(v >> (8 * j))
			}
		}
		path := filepath.Join(dir, fmt.Sprintf("d%04d", f/200), fmt.Sprintf("f%06d.bin", f))
		if i == 0 && f%200 == 0 {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func writeRandom(path string, seed, n uint64, size int) error {
	r := rand.New(rand.NewPCG(seed, n))
	b := make([]byte, size)
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return writeFile(path, b)
}

// textBlock is size bytes of SQL-like text, compressible like a dump.
func textBlock(seed, n uint64, size int) []byte {
	r := rand.New(rand.NewPCG(seed^0x64756d70, n))
	b := make([]byte, 0, size+64)
	for len(b) < size {
		b = fmt.Appendf(b, "INSERT INTO issues VALUES (%d, 'issue %d', '%s', %d);\n", r.IntN(1e6), r.IntN(1e6), commonWords[r.IntN(len(commonWords))], r.IntN(1000))
	}
	return b[:size]
}

// retention runs the retention protocol for one tool: fresh repository,
// the history, forget+prune (timed), restore of the newest snapshot
// compared with the application's last state.
func (b *bench) retention(t retentionTool, h retentionHistory, seed uint64, res *runResult) error {
	snapshots := h.Snapshots
	repo, target, env, err := b.freshDirs(t, dsRetention)
	if err != nil {
		return err
	}
	src := filepath.Join(b.l.root, "retention", "live")
	spec := func(args []string, dir string) cmdSpec {
		return cmdSpec{Path: t.path(), Args: args, Env: env, Dir: dir}
	}
	if _, err := runCmd(b.ctx, spec(t.initArgs(repo), "")); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	hist := stepResult{Step: stepHistory, Command: fmt.Sprintf("%d × %s", snapshots, spec(t.backupAt(src, retentionStart), ""))}
	var input int64
	for i := range snapshots {
		if err := h.state(src, seed, i); err != nil {
			return fmt.Errorf("application state %d: %w", i, err)
		}
		u, err := runCmd(b.ctx, spec(t.backupAt(src, retentionStart.Add(time.Duration(4*i)*time.Hour)), ""))
		if err != nil {
			return fmt.Errorf("history backup %d: %w", i, err)
		}
		hist.WallSec += u.Wall.Seconds()
		hist.UserSec += u.User.Seconds()
		hist.SysSec += u.Sys.Seconds()
		hist.MaxRSSKiB = max(hist.MaxRSSKiB, u.MaxRSSKiB)
		if i%60 == 0 || h.Files > 0 && i%6 == 0 {
			b.logf("[%s/%s] history: %d of %d snapshots", t.name(), dsRetention, i, snapshots)
		}
	}
	if m, err := manifest(src); err == nil {
		input = manifestBytes(m)
	}
	size, err := dirSize(repo)
	if err != nil {
		return err
	}
	hist.RepoAfter, hist.InputBytes = size, input
	res.Steps = append(res.Steps, hist)
	b.logf("[%s/%s] history of %d snapshots: %.0f s of backups, repo %.1f MiB", t.name(), dsRetention, snapshots, hist.WallSec, float64(size)/mib)
	if _, err := b.timed(res, stepPrune, spec(t.forgetPrune(), ""), repo, 0); err != nil {
		return err
	}
	want, err := manifest(src)
	if err != nil {
		return err
	}
	args, dir := t.restore(repo, dsTree, target)
	if _, err := runCmd(b.ctx, spec(args, dir)); err != nil {
		return fmt.Errorf("restore after prune: %w", err)
	}
	got, err := manifest(t.restored(dsTree, target, src))
	if err != nil {
		return err
	}
	if err := compareManifests(want, got); err != nil {
		return fmt.Errorf("%w: newest snapshot after prune: %v", errRestoreWrong, err)
	}
	res.RestoreVerified = true
	b.logf("[%s/%s] newest snapshot restored identical after prune", t.name(), dsRetention)
	return os.RemoveAll(target)
}

// retentionMetrics are the rows of the retention data set.
var retentionMetrics = []metric{
	stepMetric("repo size before forget+prune", "MiB", false, func(s *stepResult) float64 { return float64(s.RepoBefore) / mib }, stepPrune),
	stepMetric("repo size after forget+prune", "MiB", false, func(s *stepResult) float64 { return float64(s.RepoAfter) / mib }, stepPrune),
	stepMetric("forget+prune wall time", "s", false, func(s *stepResult) float64 { return s.WallSec }, stepPrune),
	stepMetric("peak RSS forget+prune", "MiB", false, rssMiB, stepPrune),
	stepMetric("history: all backups, wall time", "s", false, func(s *stepResult) float64 { return s.WallSec }, stepHistory),
	stepMetric("history: peak RSS of a backup", "MiB", false, rssMiB, stepHistory),
}
