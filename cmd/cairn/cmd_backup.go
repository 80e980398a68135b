package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/app"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/archive"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/sources/command"
	"github.com/cairn-backup/cairn/sources/tree"
	"github.com/spf13/cobra"
)

type backupFlags struct {
	commands []string
	trees    []string
	stdin    string
	maxSkew  time.Duration
	tags     []string
	host     string
	time     string
	// allowEmpty accepts a --command or --stdin stream of zero bytes.
	allowEmpty bool
	// wait is how long a configured backup waits for another run of the
	// application to end (0: fail at once, exit code 13).
	wait time.Duration
}

// defaultBackupMemory is --memory's default for a backup: the fixed part
// and two 11.75 MiB packs, one filled and one uploaded
// (repo.PackBuffersFor). First backups of the bench data peaked at 74-83
// MiB RSS with it, under borg's 78-87 MiB. With two 16 MiB packs in the
// same 80 MiB the collector ran back to back at the memory limit; at
// 88MiB the peak reached 86-100 MiB. Copy writes through the same saver.
const defaultBackupMemory = 80 << 20

// defaultRemoteBackupMemory is --memory's default for a backup into (or
// a copy to) an S3 repository: three 16 MiB packs, so that two upload at
// once while the third fills, as before --memory existed. One upload at
// a time leaves the encoders waiting on each PUT's latency.
const defaultRemoteBackupMemory = 112 << 20

func newBackupCmd(g *globals) *cobra.Command {
	var f backupFlags
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Take a snapshot of directories and streams",
		Long: `Take one snapshot of the components named by --command, --stdin and --tree,
in that order (database first, files last, as vendor procedures require), each
kind in the order given. A --command is started only when its turn comes. The
snapshot is written only when every component is complete: a dump command that
exits non-zero, is killed, is missing or writes nothing fails the backup.

--stdin cannot see whether the program feeding the pipe succeeded: an empty
stream is refused (unless --allow-empty), but a short one is not detected.
Prefer --command, which checks the dump's exit status.

Exit codes: 0 success; 1 failure, no snapshot written; 3 snapshot written but
some files could not be read or changed while being read (listed on stderr);
4 snapshot written and complete, but a step after it failed (an after hook,
replication): do not retry the backup; 13 another backup or restore of the
application is running (see --wait).`,
		Example: `  cairn backup --command db='pg_dump --format=custom -Z0 app' --tree files=/srv/app/files
  pg_dump app | cairn backup --stdin db --tree files=/srv/app/files`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBackup(cmd, g, f)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.commands, "command", nil, "run CMD and back up its stdout as component NAME (NAME='CMD ARGS'; no shell; repeatable)")
	fl.StringArrayVar(&f.trees, "tree", nil, "back up directory DIR as component NAME (NAME=DIR; repeatable)")
	fl.DurationVar(&f.maxSkew, "max-skew", 0, "fail, writing no snapshot, if the components' points in time are further apart than this (without points: first start to last end)")
	fl.StringVar(&f.stdin, "stdin", "", "back up standard input as the stream component NAME")
	fl.StringArrayVar(&f.tags, "tag", nil, "tag the snapshot (repeatable)")
	fl.StringVar(&f.host, "host", "", "host name to record (default: this host)")
	fl.StringVar(&f.time, "time", "", "snapshot time, RFC 3339 (default: now)")
	fl.DurationVar(&f.wait, "wait", 0, "with --config: if another backup or restore of the application runs, wait up to this long for it (default: fail at once, exit code 13)")
	fl.BoolVar(&f.allowEmpty, "allow-empty", false, "accept a --command or --stdin stream that is empty (refused by default: an empty dump usually means a failed one)")
	return cmd
}

func runBackup(cmd *cobra.Command, g *globals, f backupFlags) error {
	opts := archive.Options{Tags: f.tags, Host: f.host, Program: "cairn " + version, Progress: &repo.Progress{}}
	if opts.Host == "" {
		opts.Host, _ = os.Hostname()
	}
	if f.time != "" {
		t, err := time.Parse(time.RFC3339, f.time)
		if err != nil {
			return fmt.Errorf("--time: %w", err)
		}
		opts.Time = t
	}
	opts.MaxSkew = f.maxSkew
	mem, err := g.saverMemory(g.repo)
	if err != nil {
		return err
	}
	opts.Saver.Memory = mem
	if g.config != nil && len(f.commands)+len(f.trees) == 0 && f.stdin == "" {
		return runConfiguredBackup(cmd, g, opts, f.wait)
	}
	// Dump commands still running when a backup fails elsewhere are
	// killed and reaped here; Finish is never reached for them.
	warn := func(s string) { g.log.Warn(s) }
	var streams []io.Closer
	defer func() {
		for _, st := range streams {
			st.Close()
		}
	}()
	var comps []archive.ComponentSource
	cmds, err := parseCommands(f.commands)
	if err != nil {
		return err
	}
	for _, c := range cmds {
		comps = append(comps, app.CommandSource(&app.Component{Name: c.name, Command: c.spec.Argv, AllowEmpty: f.allowEmpty}, &streams, warn))
	}
	if f.stdin != "" {
		comps = append(comps, stdinSource(f.stdin, g.stdin, f.allowEmpty))
	}
	for _, spec := range f.trees {
		name, dir, ok := strings.Cut(spec, "=")
		if !ok || name == "" || dir == "" {
			return fmt.Errorf("--tree %q: want NAME=DIR", spec)
		}
		src, err := tree.Open(dir)
		if err != nil {
			return fmt.Errorf("component %s: %w", name, err)
		}
		comps = append(comps, archive.ComponentSource{Name: name, Source: src.Root(), FS: src})
	}
	if len(comps) == 0 {
		return fmt.Errorf("nothing to back up: give --command NAME='CMD', --stdin NAME or --tree NAME=DIR")
	}
	for _, c := range comps {
		if err := snapshot.ValidComponentName(c.Name); err != nil {
			return err
		}
	}
	return doBackup(cmd, g, opts, func(ctx context.Context, r *repo.Repository) (*archive.Result, error) {
		return archive.Backup(ctx, r, comps, opts)
	})
}

// saverMemory is --memory for a command that writes through a saver
// (backup, copy) into the repository at loc: at least repo.MinMemory,
// default defaultBackupMemory, or defaultRemoteBackupMemory for S3. Set
// besides the index, it sizes the packs held in memory and the garbage
// collector's limit; more lets more packs upload at once (S3 with
// latency).
func (g *globals) saverMemory(loc string) (int64, error) {
	def := int64(defaultBackupMemory)
	if remoteRepo(loc) {
		def = defaultRemoteBackupMemory
	}
	mem, err := g.useMemory(def)
	if err != nil {
		return 0, err
	}
	if mem < repo.MinMemory {
		return 0, fmt.Errorf("--memory %s: a backup or copy needs at least %s", g.memoryFlag, humanBytes(repo.MinMemory))
	}
	return mem, nil
}

// stdinSource backs up standard input as the stream component name. A pipe
// hides its producer's exit status, so all that can be checked is that
// something came: `pg_dump app | cairn backup --stdin db` must not record an
// empty dump as a good one when pg_dump failed before writing.
func stdinSource(name string, r io.Reader, allowEmpty bool) archive.ComponentSource {
	cr := &countingReader{r: r}
	return archive.ComponentSource{Name: name, Source: "stdin", Reader: cr, Finish: func(context.Context) error {
		if cr.n == 0 && !allowEmpty {
			return fmt.Errorf("standard input %w (did the program feeding the pipe fail? pass --allow-empty if an empty stream is expected, or use --command, which checks the exit status)", command.ErrEmpty)
		}
		return nil
	}}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// runConfiguredBackup takes the application the config file describes,
// then copies the new snapshot to each configured replication target.
func runConfiguredBackup(cmd *cobra.Command, g *globals, opts archive.Options, wait time.Duration) error {
	warn := func(s string) { g.log.Warn(s) }
	return doBackup(cmd, g, opts, func(ctx context.Context, r *repo.Repository) (*archive.Result, error) {
		unlock, err := g.lockRun(ctx, r, "backup", wait)
		if err != nil {
			return nil, err
		}
		defer unlock()
		res, err := app.Backup(ctx, r, g.config, app.Options{Options: opts, Warn: warn})
		if err != nil || len(g.config.Replicate) == 0 {
			return res, err
		}
		sn := repo.SnapshotEntry{ID: res.ID, Snapshot: res.Snapshot}
		open := func(ctx context.Context, rp app.Replica) (*repo.Repository, func(), error) {
			return g.openRepoAt(ctx, rp.Repository, func() (string, error) {
				return readPassword(rp.PasswordFile, "CAIRN_TO_PASSWORD_FILE", "CAIRN_TO_PASSWORD", "password_file in replicate")
			}, false, "replicate")
		}
		done, err := app.Replicate(ctx, r, g.config, sn, open)
		if err != nil {
			err = errors.Join(err, app.AfterSnapshotFailed(ctx, g.config, sn.ID.String(), err))
		}
		if !g.quiet && !g.json {
			for _, d := range done {
				g.log.Info(fmt.Sprintf("replicated snapshot %s to %s: sent %s (%s)", sn.ID.Short(), d.Replica.Repository, humanBytes(d.Result.Bytes), d.Result.Mode),
					"snapshot", sn.ID.Short(), "replica", d.Replica.Repository, "bytes", d.Result.Bytes, "mode", d.Result.Mode)
			}
		}
		return res, err
	})
}

// doBackup opens the repository, runs backup with progress, and prints.
func doBackup(cmd *cobra.Command, g *globals, opts archive.Options, backup func(context.Context, *repo.Repository) (*archive.Result, error)) error {
	ctx := cmd.Context()
	r, release, err := g.openRepo(ctx, false, "backup")
	if err != nil {
		return err
	}
	defer release()

	start := time.Now()
	pp := startProgress(g, "backup", opts.Progress, 0)
	res, err := backup(ctx, r)
	pp.Stop()
	if res != nil {
		for _, sk := range res.Skipped {
			g.log.Info(fmt.Sprintf("skipped %v", sk))
		}
		for _, fe := range res.FileErrors {
			if fe.Stored {
				g.log.Warn(fmt.Sprintf("changed while read: %v", fe), "err", fe)
			} else {
				g.log.Warn(fmt.Sprintf("cannot read %v", fe), "err", fe)
			}
		}
	}
	if err != nil && (res == nil || res.ID.IsNull()) {
		return fmt.Errorf("backup failed, no snapshot written: %w", err)
	}
	// From here on the snapshot is written; err, if any, is about what came
	// after it (an after hook, replication) and has its own exit code, so a
	// cron job that retries on failure does not take a duplicate.
	after := err
	el := time.Since(start)
	if g.json {
		out := toBackupJSON(res, el)
		if err := printJSON(g.stdout, out); err != nil {
			return err
		}
	} else {
		sn := res.Snapshot
		fmt.Fprintf(g.stdout, "snapshot %s saved at %s\n", res.ID.Short(), sn.Time.Local().Format(time.DateTime))
		for _, c := range sn.Components {
			fmt.Fprintf(g.stdout, "  %-12s %-6s %6d files  %10s  added %10s  %s\n", c.Name, c.Kind, c.Files, humanBytes(c.Size), humanBytes(c.AddedBytes), c.Finished.Sub(c.Started).Round(time.Millisecond))
		}
		fmt.Fprintf(g.stdout, "processed %s in %s (%.1f MB/s), added %s in %d packs, skew %s of points, %s of durations\n",
			humanBytes(sn.Size()), el.Round(time.Millisecond), mbPerSec(sn.Size(), el),
			humanBytes(res.Saver.StoredBytes), res.Saver.Packs, sn.PointSkew().Round(time.Millisecond), sn.Skew().Round(time.Millisecond))
	}
	if after != nil {
		return &exitError{code: exitWrittenThenFailed, err: after}
	}
	if len(res.FileErrors) > 0 {
		return &exitError{code: exitPartial, err: fmt.Errorf("snapshot %s written, but %d files could not be read or changed while being read", res.ID.Short(), len(res.FileErrors))}
	}
	return nil
}
