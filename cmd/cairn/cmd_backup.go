package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/sources/tree"
	"github.com/spf13/cobra"
)

type backupFlags struct {
	trees []string
	stdin string
	tags  []string
	host  string
	time  string
}

func newBackupCmd(g *globals) *cobra.Command {
	var f backupFlags
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Take a snapshot of directories and streams",
		Long: `Take one snapshot of the components named by --tree and --stdin, in the
order given. The snapshot is written only when every component is complete.

Exit codes: 0 success; 1 failure, no snapshot written; 3 snapshot written but
some files could not be read (listed on stderr).`,
		Example: `  pg_dump -Z0 app | cairn backup --stdin db --tree files=/srv/app/files`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBackup(cmd, g, f)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.trees, "tree", nil, "back up directory DIR as component NAME (NAME=DIR; repeatable)")
	fl.StringVar(&f.stdin, "stdin", "", "back up standard input as the stream component NAME")
	fl.StringArrayVar(&f.tags, "tag", nil, "tag the snapshot (repeatable)")
	fl.StringVar(&f.host, "host", "", "host name to record (default: this host)")
	fl.StringVar(&f.time, "time", "", "snapshot time, RFC 3339 (default: now)")
	return cmd
}

func runBackup(cmd *cobra.Command, g *globals, f backupFlags) error {
	ctx := cmd.Context()
	opts := repo.BackupOptions{Tags: f.tags, Host: f.host, Program: "cairn " + version, Progress: &repo.Progress{}}
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
	var comps []repo.ComponentSource
	for _, spec := range f.trees {
		name, dir, ok := strings.Cut(spec, "=")
		if !ok || name == "" || dir == "" {
			return fmt.Errorf("--tree %q: want NAME=DIR", spec)
		}
		src, err := tree.Open(dir)
		if err != nil {
			return fmt.Errorf("component %s: %w", name, err)
		}
		comps = append(comps, repo.ComponentSource{Name: name, Source: src.Root(), FS: src})
	}
	if f.stdin != "" {
		comps = append(comps, repo.ComponentSource{Name: f.stdin, Source: "stdin", Reader: g.stdin})
	}
	if len(comps) == 0 {
		return fmt.Errorf("nothing to back up: give --tree NAME=DIR or --stdin NAME")
	}
	for _, c := range comps {
		if err := snapshot.ValidComponentName(c.Name); err != nil {
			return err
		}
	}
	r, release, err := g.openRepo(ctx, false, "backup")
	if err != nil {
		return err
	}
	defer release()

	start := time.Now()
	pp := startProgress(g, "backup", opts.Progress, 0)
	res, err := r.Backup(ctx, comps, opts)
	pp.Stop()
	if res != nil {
		for _, fe := range res.FileErrors {
			fmt.Fprintf(g.stderr, "cairn: cannot read %v\n", fe)
		}
	}
	if err != nil {
		return fmt.Errorf("backup failed, no snapshot written: %w", err)
	}
	el := time.Since(start)
	if g.json {
		out := backupJSON(res, el)
		if err := printJSON(g.stdout, out); err != nil {
			return err
		}
	} else {
		sn := res.Snapshot
		fmt.Fprintf(g.stdout, "snapshot %s saved at %s\n", res.ID.Short(), sn.Time.Local().Format(time.DateTime))
		for _, c := range sn.Components {
			fmt.Fprintf(g.stdout, "  %-12s %-6s %6d files  %10s  added %10s  %s\n", c.Name, c.Kind, c.Files, humanBytes(c.Size), humanBytes(c.AddedBytes), c.Finished.Sub(c.Started).Round(time.Millisecond))
		}
		fmt.Fprintf(g.stdout, "processed %s in %s (%.1f MB/s), added %s in %d packs, skew %s\n",
			humanBytes(sn.Size()), el.Round(time.Millisecond), mbPerSec(sn.Size(), el),
			humanBytes(res.Saver.StoredBytes), res.Saver.Packs, sn.Skew().Round(time.Millisecond))
	}
	if len(res.FileErrors) > 0 {
		return &exitError{code: exitPartial, err: fmt.Errorf("snapshot %s written, but %d files could not be read", res.ID.Short(), len(res.FileErrors))}
	}
	return nil
}

func backupJSON(res *repo.BackupResult, el time.Duration) map[string]any {
	errs := make([]string, 0, len(res.FileErrors))
	for _, fe := range res.FileErrors {
		errs = append(errs, fe.Error())
	}
	return map[string]any{
		"id":               res.ID.String(),
		"short_id":         res.ID.Short(),
		"time":             res.Snapshot.Time,
		"components":       res.Snapshot.Components,
		"size":             res.Snapshot.Size(),
		"added_bytes":      res.Saver.StoredBytes,
		"added_blobs":      res.Saver.Blobs,
		"added_packs":      res.Saver.Packs,
		"skew_seconds":     res.Snapshot.Skew().Seconds(),
		"duration_seconds": el.Seconds(),
		"file_errors":      errs,
	}
}
