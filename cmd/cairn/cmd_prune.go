package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/prune"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

type pruneFlags struct {
	maxUnused     string
	maxRepackSize string
	dryRun        bool
}

func addPruneFlags(fl *pflag.FlagSet, f *pruneFlags) {
	fl.StringVar(&f.maxUnused, "max-unused", "5%", "unused space tolerated in kept packs, as a share of the used space; mostly-garbage packs are repacked until below it")
	fl.StringVar(&f.maxRepackSize, "max-repack-size", "", "repack at most this much per run (e.g. 2GiB; default no limit)")
}

const pruneLong = `Give back the space that forgotten snapshots held: packs whose blobs no
snapshot uses are deleted, and packs that are mostly garbage are repacked
(their used blobs copied to new packs) until the unused share is below
--max-unused. The new index is written before anything is removed.

prune never blocks a backup, copy or restore, on this host or another: it
takes a lock that excludes only other prunes, and deletes in two phases.
A run marks packs for deletion and names the locks present at that moment;
a later run deletes them once every one of those locks is gone (released,
or not refreshed for its stale limit plus a margin for clock skew), after
reading every snapshot again and keeping any marked pack a snapshot turned
out to need. When no other process holds a lock, the marked packs are
deleted in the same run. docs/FORMAT.md ("Prune") has the argument.

prune reads every snapshot's trees. A snapshot that needs a blob the
repository does not have, or a pack to repack that cannot be read, stops
it before it deletes anything.`

func newPruneCmd(g *globals) *cobra.Command {
	var f pruneFlags
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Delete data no snapshot uses, without blocking backups",
		Long:  pruneLong,
		Args:  cobra.NoArgs,
		Example: `  cairn prune --dry-run
  cairn forget --keep-daily 14 --keep-weekly 8 --prune`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			r, release, err := g.openRepo(ctx, false, "prune")
			if err != nil {
				return err
			}
			defer release()
			rep, err := runPruneOn(ctx, g, r, &f)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, toPruneJSON(rep))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&f.dryRun, "dry-run", "n", false, "report what would be done, change nothing")
	addPruneFlags(cmd.Flags(), &f)
	return cmd
}

// runPruneOn prunes r (opened, holding a shared lock) under a prune lock
// and prints the report unless --json.
func runPruneOn(ctx context.Context, g *globals, r *repo.Repository, f *pruneFlags) (*prune.Report, error) {
	opts := prune.Options{DryRun: f.dryRun}
	var err error
	if opts.MaxUnused, err = parseShare(f.maxUnused); err != nil {
		return nil, fmt.Errorf("--max-unused: %w", err)
	}
	if f.maxRepackSize != "" {
		if opts.MaxRepackBytes, err = parseSize(f.maxRepackSize); err != nil {
			return nil, fmt.Errorf("--max-repack-size: %w", err)
		}
	}
	if _, err := g.useMemory(pruneMemory); err != nil {
		return nil, err
	}
	lock, err := r.LockAs(ctx, repo.LockPrune, "prune")
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-lock.Lost():
			cancel(lock.Err())
		case <-ctx.Done():
		}
	}()
	opts.Lock = lock
	if !g.quiet && !g.json {
		opts.Progress = func(s string) { fmt.Fprintf(g.stderr, "prune: %s\n", s) }
	}
	rep, err := prune.Run(ctx, r, opts)
	if err != nil {
		if c := context.Cause(ctx); c != nil && c != context.Canceled {
			err = fmt.Errorf("%w (%w)", c, err)
		}
		return rep, err
	}
	if !g.json {
		printPrune(g, rep)
	}
	return rep, nil
}

func printPrune(g *globals, rep *prune.Report) {
	w := g.stdout
	would := ""
	if rep.DryRun {
		would = "would be "
	}
	fmt.Fprintf(w, "%d snapshots use %d blobs, %s; %s in %d packs unused\n", rep.Snapshots, rep.UsedBlobs,
		humanBytes(rep.UsedBytes), humanBytes(rep.UnusedBytes), rep.Packs)
	fmt.Fprintf(w, "%d packs of garbage, %d repacked (%s copied), %d unindexed: %s %smarked for deletion\n",
		rep.GarbagePacks, rep.RepackedPacks, humanBytes(rep.RepackedBytes), rep.Unindexed, humanBytes(rep.MarkedBytes), would)
	if rep.Resurrected > 0 {
		fmt.Fprintf(w, "%d marked packs were needed by a snapshot after all and are kept\n", rep.Resurrected)
	}
	fmt.Fprintf(w, "%d packs %sdeleted, %s %sfreed\n", rep.DeletedPacks, would, humanBytes(rep.FreedBytes), would)
	if rep.MarksWaiting > 0 {
		fmt.Fprintf(w, "%d marks wait for backups that were running to end; the next prune deletes their packs\n", rep.MarksWaiting)
	}
}

// parseShare parses "5%", "0.05" or "unlimited".
func parseShare(s string) (float64, error) {
	if s == "unlimited" {
		return 1e18, nil
	}
	pct := strings.HasSuffix(s, "%")
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q: use a percentage such as 5%%", s)
	}
	if pct {
		v /= 100
	}
	if v == 0 {
		v = 1e-9 // "0%": repack every pack with any garbage
	}
	return v, nil
}

// parseSize parses "512MiB", "2G", "1048576".
func parseSize(s string) (int64, error) {
	num := strings.TrimRight(s, "KMGTiBkb")
	unit := strings.ToUpper(strings.TrimSuffix(strings.TrimSuffix(s[len(num):], "B"), "i"))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%q: use a size such as 2GiB", s)
	}
	mult := map[string]float64{"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("%q: unknown unit", s)
	}
	return int64(v * mult), nil
}
