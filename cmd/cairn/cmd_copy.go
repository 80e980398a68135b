package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/cairn-backup/cairn/app"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/replicate"
	"github.com/spf13/cobra"
)

type copyFlags struct {
	to         []string
	toPassword string
	latest     bool
	app        string
	hosts      []string
	verify     bool
}

func newCopyCmd(g *globals) *cobra.Command {
	var f copyFlags
	cmd := &cobra.Command{
		Use:   "copy --to REPO [SNAPSHOT...]",
		Short: "Copy snapshots to another repository, sending only what it lacks",
		Long: `Copy snapshots (all, those named, --latest, or those of --app) to the
repository --to, for offsite replication. Only blobs the target lacks are
sent; a snapshot appears in the target only after everything it needs is
there, so an interrupted copy can simply be run again. A replica made with
'cairn init --replica-of' deduplicates with its source; one made with
--same-data-key receives whole packs as stored, never decrypted.

The target's password comes from --to-password-file, CAIRN_TO_PASSWORD_FILE
or CAIRN_TO_PASSWORD.`,
		Example: `  cairn copy --to s3:https://backup.example.net/offsite/alm --latest --verify`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if len(f.to) == 0 {
				return errors.New("copy needs --to REPO")
			}
			if f.latest && len(args) > 0 {
				return errors.New("give snapshots or --latest, not both")
			}
			mem, err := g.saverMemory(copyTarget(f.to))
			if err != nil {
				return err
			}
			src, releaseSrc, err := g.openRepo(ctx, false, "copy")
			if err != nil {
				return err
			}
			defer releaseSrc()
			// The source's index sizes what the targets' indexes grow by.
			if err := src.LoadIndex(ctx); err != nil {
				return err
			}
			g.setMemory(copyMemory(mem, len(f.to), src.Index().MemoryBytes()))
			// Several targets share one password source; each is fed from
			// the same reads of the source.
			var dsts []*repo.Repository
			for _, to := range f.to {
				dst, releaseDst, err := g.openRepoAt(ctx, to, func() (string, error) {
					return readPassword(f.toPassword, "CAIRN_TO_PASSWORD_FILE", "CAIRN_TO_PASSWORD", "--to-password-file")
				}, false, "copy")
				if err != nil {
					return fmt.Errorf("target %s: %w", to, err)
				}
				defer releaseDst()
				dsts = append(dsts, dst)
			}

			if g.config != nil && !cmd.Flags().Changed("app") {
				f.app = g.config.App // --latest is the config's application's latest
			}
			snaps, err := app.SelectSnapshots(ctx, src, app.Selection{Refs: args, App: f.app, Hosts: f.hosts, Latest: f.latest})
			if errors.Is(err, app.ErrNoneSelected) {
				return errors.New("no snapshots to copy")
			}
			if err != nil {
				return err
			}
			prog := &repo.Progress{}
			pp := startProgress(g, "copy", prog, 0)
			start := time.Now()
			results, err := replicate.CopyToAll(ctx, src, dsts, snaps, replicate.Options{Verify: f.verify, Progress: prog, Saver: repo.SaverOptions{Memory: mem}})
			pp.Stop()
			if g.json {
				if jerr := printJSON(g.stdout, toCopyJSON(f.to, results)); jerr != nil {
					return jerr
				}
				return err
			}
			for i, res := range results {
				if res == nil {
					continue
				}
				if len(results) > 1 {
					fmt.Fprintf(g.stdout, "to %s:\n", f.to[i])
				}
				for _, c := range res.Copied {
					fmt.Fprintf(g.stdout, "copied snapshot %s as %s\n", c.Source.Short(), c.Target.Short())
				}
				if n := len(res.Skipped); n > 0 {
					fmt.Fprintf(g.stdout, "%d snapshots already in the target\n", n)
				}
				el := time.Since(start)
				fmt.Fprintf(g.stdout, "sent %s (%d blobs, %d whole packs; mode %s) in %s (%.1f MB/s)\n",
					humanBytes(res.Bytes), res.Blobs, res.Packs, res.Mode, el.Round(time.Millisecond), mbPerSec(res.Bytes, el))
				if f.verify && err == nil {
					fmt.Fprintln(g.stdout, "verified: every blob of the copied snapshots reads back from the target")
				}
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.to, "to", nil, "target repository (a directory or s3:…; repeatable: several targets from one read of the source)")
	fl.StringVar(&f.toPassword, "to-password-file", "", "read the target's password from this file")
	fl.BoolVar(&f.latest, "latest", false, "copy only the newest snapshot (of --app, if given)")
	fl.StringVar(&f.app, "app", "", "copy only snapshots of this application")
	fl.StringArrayVarP(&f.hosts, "host", "H", nil, "copy only snapshots of this host (repeatable)")
	fl.BoolVar(&f.verify, "verify", false, "read back from the target every blob the copied snapshots need")
	return cmd
}

// copyTarget is the target whose kind sets --memory's default: an S3
// one if any (more packs upload at once), else the first.
func copyTarget(to []string) string {
	for _, t := range to {
		if remoteRepo(t) {
			return t
		}
	}
	return to[0]
}

// copyMemory is what a copy holds besides the indexes loaded: each
// target's saver (mem, as for a backup, default 80MiB); the growth of
// each target's index by what is copied, at most the source's (srcIndex
// bytes), twice over while a merge of the index copies its arrays; the
// source's trees being read or rewritten (24 MiB: 14 MiB rewriting the
// trees of 200,000 small files); and with several targets the cache of
// the source's reads they share (64 MiB, replicate's readCacheBytes).
// Without the index growth and the trees the copy of those small files
// held 96 MiB under a limit of 74 and collected 9,485 times, doubling
// its CPU time.
func copyMemory(mem int64, targets, srcIndex int) int64 {
	n := int64(targets)
	m := n*(mem+2*int64(srcIndex)) + 24<<20
	if n > 1 {
		m += 64 << 20
	}
	return m
}
