package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cairn-backup/cairn/app"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/store"
	"github.com/cairn-backup/cairn/store/cache"
	"github.com/cairn-backup/cairn/store/local"
	"github.com/cairn-backup/cairn/store/retry"
	"github.com/cairn-backup/cairn/store/s3"
	"github.com/spf13/cobra"
)

// password finds the password: --password-file, then CAIRN_PASSWORD_FILE,
// then CAIRN_PASSWORD. There is no prompt: cairn runs from schedulers.
func (g *globals) password() (string, error) {
	return readPassword(g.passwordFile, "CAIRN_PASSWORD_FILE", "CAIRN_PASSWORD", "--password-file")
}

// readPassword reads a password from a file named by a flag or a variable,
// or from a variable.
func readPassword(file, fileEnv, env, flag string) (string, error) {
	if file == "" {
		file = os.Getenv(fileEnv)
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read password file: %w", err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return "", fmt.Errorf("password file %s is empty", file)
		}
		return pw, nil
	}
	if pw := os.Getenv(env); pw != "" {
		return pw, nil
	}
	return "", fmt.Errorf("no password: set %s or %s, or pass %s", env, fileEnv, flag)
}

// openStore opens the store at --repo: a local directory, or
// s3:http(s)://host[:port]/bucket[/prefix] with credentials from the AWS_*
// variables. A local location that does not exist is "no repository"
// (exit 10), not a generic failure. create makes what is missing (init).
func (g *globals) openStore(ctx context.Context, create bool) (store.Store, error) {
	if g.repo == "" {
		return nil, errors.New("no repository: pass -r/--repo or set CAIRN_REPOSITORY")
	}
	return g.openStoreAt(ctx, g.repo, create)
}

// wrapStore, when set, wraps every store a command opens. It is a test
// seam: the crash tests use it to kill a real cairn process at its Nth
// write. Production leaves it nil.
var wrapStore func(store.Store) store.Store

// openStoreAt opens the store at loc (see openStore).
func (g *globals) openStoreAt(ctx context.Context, loc string, create bool) (store.Store, error) {
	st, err := g.openStoreAtRaw(ctx, loc, create)
	if err == nil && wrapStore != nil {
		st = wrapStore(st)
	}
	return st, err
}

func (g *globals) openStoreAtRaw(ctx context.Context, loc string, create bool) (store.Store, error) {
	if strings.HasPrefix(loc, "s3:") {
		cfg, err := s3.ParseURL(loc)
		if err != nil {
			return nil, err
		}
		s3.ConfigFromEnv(&cfg)
		cfg.CAFile = g.caFile
		cfg.Connections = g.connections
		cfg.CreateBucket = create && g.createBucket
		st, err := openS3(ctx, cfg)
		if err != nil {
			return nil, err
		}
		// Object stores fail transiently (503 SlowDown, resets); every
		// request is retried with backoff before an error reaches us.
		return retry.New(st, retry.Options{}), nil
	}
	if create {
		st, err := local.Open(loc)
		if errors.Is(err, fs.ErrNotExist) {
			st, err = local.Create(loc)
		}
		return st, err
	}
	st, err := local.Open(loc)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist", repo.ErrNoRepository, loc)
	}
	return st, err
}

// openS3 retries a transient failure to open (503 SlowDown, a server
// still starting, a reset) like every later request is retried.
func openS3(ctx context.Context, cfg s3.Config) (*s3.Store, error) {
	delay := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		st, err := s3.Open(ctx, cfg)
		if err == nil || !store.Transient(err) || attempt == 5 {
			return st, err
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		delay *= 2
	}
}

// openRepo opens the repository and takes a lock of the given kind; the
// returned release function unlocks and closes.
func (g *globals) openRepo(ctx context.Context, exclusive bool, purpose string) (*repo.Repository, func(), error) {
	if g.repo == "" {
		return nil, nil, errors.New("no repository: pass -r/--repo or set CAIRN_REPOSITORY")
	}
	return g.openRepoAt(ctx, g.repo, g.password, exclusive, purpose)
}

// openRepoAt opens the repository at loc with the password password gives.
func (g *globals) openRepoAt(ctx context.Context, loc string, password func() (string, error), exclusive bool, purpose string) (*repo.Repository, func(), error) {
	st, err := g.openStoreAt(ctx, loc, false)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := repo.ReadConfig(ctx, st)
	if err != nil {
		st.Close()
		if errors.Is(err, repo.ErrNoRepository) {
			return nil, nil, fmt.Errorf("%w: %s", err, loc)
		}
		return nil, nil, err
	}
	if strings.HasPrefix(loc, "s3:") && !g.noCache {
		st = g.withCache(st, cfg.ID.String())
	}
	pw, err := password()
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	r, err := repo.Open(ctx, st, pw)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	if purpose != "prune" && purpose != "repair" && purpose != "check" {
		// These jobs can go on without a damaged index file: what only it
		// listed looks absent, which costs a backup a re-upload and a
		// restore the files it names (reported). Prune cannot: it would
		// take the packs that file named for garbage. Check reports it.
		r.TolerateDamagedIndex(func(d repo.IndexDamage) {
			g.log.Warn(fmt.Sprintf("damaged index file %s ignored (%v); blobs only it lists look absent until 'cairn repair index' rebuilds the index from the packs", d.ID.Short(), d.Err),
				"index", d.ID.String(), "err", d.Err)
		})
	}
	// The index, once loaded, counts towards the garbage collector's
	// limit until the repository is released (memory.go), and so does
	// what a backup adds to it.
	var held atomic.Int64
	r.OnIndexLoaded(func(n int) {
		g.indexLoaded(int64(n) - held.Swap(int64(n)))
	})
	kind := repo.LockShared
	if exclusive {
		kind = repo.LockExclusive
	}
	r, release, err := g.lockRepo(ctx, r, kind, purpose)
	if err != nil {
		return nil, nil, err
	}
	return r, func() {
		release()
		if n := held.Swap(0); n > 0 {
			g.indexLoaded(-n)
		}
	}, nil
}

// lockRepo takes a lock on r. If the lock is lost (it could not be
// refreshed before another host might see it stale), the command's context
// is cancelled with the reason: the command stops instead of working on
// under a lock a prune may already ignore.
func (g *globals) lockRepo(ctx context.Context, r *repo.Repository, kind repo.LockKind, purpose string) (*repo.Repository, func(), error) {
	if s := os.Getenv("CAIRN_LOCK_TIMING"); s != "" {
		t, err := repo.ParseLockTiming(s)
		if err == nil {
			err = r.SetLockTiming(t)
		}
		if err != nil {
			r.Close()
			return nil, nil, fmt.Errorf("CAIRN_LOCK_TIMING: %w", err)
		}
	}
	lock, err := r.LockAs(ctx, kind, purpose)
	if err != nil {
		r.Close()
		return nil, nil, err
	}
	unlock := g.watchLock(lock)
	return r, func() { unlock(); r.Close() }, nil
}

// watchLock cancels the command's context with the reason if lock is
// lost, and returns the function that releases it.
func (g *globals) watchLock(lock *repo.Lock) func() {
	released := make(chan struct{})
	go func() {
		select {
		case <-lock.Lost():
			if g.abort != nil {
				g.abort(lock.Err())
			}
		case <-released:
		}
	}()
	return func() {
		close(released)
		if err := lock.Unlock(); err != nil {
			g.log.Warn(err.Error(), "err", err)
		}
	}
}

// lockRun takes the config's application run lock (app.LockRun), waiting
// up to wait for a run in progress, and returns its release.
func (g *globals) lockRun(ctx context.Context, r *repo.Repository, purpose string, wait time.Duration) (func(), error) {
	lock, err := app.LockRun(ctx, r, g.config, purpose, wait, func(holder error) {
		if !g.quiet {
			g.log.Info(fmt.Sprintf("waiting up to %s: %v", wait, holder), "wait", wait, "holder", holder)
		}
	})
	if err != nil {
		return nil, err
	}
	return g.watchLock(lock), nil
}

// withCache keeps index files and manifests of a remote repository in the
// user's cache directory (--cache-dir, else CAIRN_CACHE_DIR, else e.g.
// ~/.cache/cairn), one
// directory per repository ID, so commands do not download them each time.
// Entries are verified by their hash on every use. If no cache directory
// can be had, cairn goes on without one.
func (g *globals) withCache(st store.Store, repoID string) store.Store {
	base := g.cacheDir
	if base == "" {
		base = os.Getenv("CAIRN_CACHE_DIR")
	}
	if base == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return st
		}
		base = filepath.Join(d, "cairn")
	}
	c, err := cache.New(st, filepath.Join(base, repoID))
	if err != nil {
		g.log.Warn(fmt.Sprintf("no metadata cache: %v", err), "err", err)
		return st
	}
	return c
}

// withRepo runs fn on the repository, opened and locked (exclusively or
// shared) for the command's purpose, and releases it afterwards.
func (g *globals) withRepo(cmd *cobra.Command, exclusive bool, purpose string, fn func(ctx context.Context, r *repo.Repository) error) error {
	ctx := cmd.Context()
	r, release, err := g.openRepo(ctx, exclusive, purpose)
	if err != nil {
		return err
	}
	defer release()
	return fn(ctx, r)
}
