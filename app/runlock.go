package app

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/cairn-backup/cairn/repo"
)

// RunName names the application's run lock: its app, else the config
// file's absolute path.
func (cfg *Config) RunName() string {
	if cfg.App != "" {
		return cfg.App
	}
	if abs, err := filepath.Abs(cfg.Path); err == nil {
		return "config:" + abs
	}
	return "config:" + cfg.Path
}

// runLockPoll is how often a waiting run asks again: the holder is a
// backup or restore of minutes, so a second is prompt enough and costs one
// list of locks/ per second.
const runLockPoll = time.Second

// LockRun takes the application's run lock (repo.LockRun): one backup or
// restore of an application at a time, across hosts. While another run
// holds it, LockRun waits up to wait, asking again every second, and calls
// waiting (if set) once, with the holder, when it starts to wait; with
// wait 0 it fails at once with an error wrapping repo.ErrRunInProgress.
func LockRun(ctx context.Context, r *repo.Repository, cfg *Config, purpose string, wait time.Duration, waiting func(error)) (*repo.Lock, error) {
	deadline := time.Now().Add(wait)
	for told := false; ; told = true {
		l, err := r.LockRun(ctx, cfg.RunName(), purpose)
		if err == nil || !errors.Is(err, repo.ErrRunInProgress) {
			return l, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, err
		}
		if !told && waiting != nil {
			waiting(err)
		}
		t := time.NewTimer(min(runLockPoll, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, context.Cause(ctx)
		case <-t.C:
		}
	}
}
