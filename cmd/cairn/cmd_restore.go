package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/sources/tree"
	"github.com/spf13/cobra"
)

type restoreFlags struct {
	snapshot   string
	target     string
	components []string
	verify     bool
}

func newRestoreCmd(g *globals) *cobra.Command {
	var f restoreFlags
	cmd := &cobra.Command{
		Use:   "restore --snapshot ID|latest --target DIR",
		Short: "Restore a snapshot into a directory",
		Long: `Restore a snapshot's components into DIR: a tree component to DIR/NAME/…,
a stream component to the file DIR/NAME. Nothing is written outside DIR.
Files whose data cannot be read are listed and the others are restored;
the command then exits 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if f.snapshot == "" || f.target == "" {
				return errors.New("restore needs --snapshot and --target")
			}
			r, release, err := g.openRepo(ctx, false, "restore")
			if err != nil {
				return err
			}
			defer release()
			sn, err := r.FindSnapshot(ctx, f.snapshot)
			if err != nil {
				return err
			}
			t, err := tree.OpenTarget(f.target)
			if err != nil {
				return err
			}
			defer t.Close()
			prog := &repo.Progress{}
			var total uint64
			for _, c := range sn.Components {
				if len(f.components) == 0 || contains(f.components, c.Name) {
					total += c.Size
				}
			}
			start := time.Now()
			pp := startProgress(g, "restore", prog, total)
			res, err := r.Restore(ctx, sn.Snapshot, t, repo.RestoreOptions{Components: f.components, Verify: f.verify, Progress: prog})
			pp.Stop()
			if res != nil {
				for _, e := range res.Errors {
					fmt.Fprintf(g.stderr, "cairn: not restored: %v\n", e)
				}
			}
			el := time.Since(start)
			if res != nil {
				if g.json {
					errs := make([]string, 0, len(res.Errors))
					for _, e := range res.Errors {
						errs = append(errs, e.Error())
					}
					if jerr := printJSON(g.stdout, map[string]any{
						"snapshot": sn.ID.String(), "target": f.target, "files": res.Files, "dirs": res.Dirs,
						"bytes": res.Bytes, "verified": f.verify && len(res.Errors) == 0, "duration_seconds": el.Seconds(), "errors": errs,
					}); jerr != nil {
						return jerr
					}
				} else {
					fmt.Fprintf(g.stdout, "restored snapshot %s to %s: %d files, %d dirs, %s in %s (%.1f MB/s)\n",
						sn.ID.Short(), f.target, res.Files, res.Dirs, humanBytes(res.Bytes), el.Round(time.Millisecond), mbPerSec(res.Bytes, el))
					if f.verify && err == nil {
						fmt.Fprintln(g.stdout, "verified: every restored file matches the snapshot")
					}
				}
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.snapshot, "snapshot", "", "snapshot ID, unique prefix, or latest")
	fl.StringVar(&f.target, "target", "", "directory to restore into (created if missing)")
	fl.StringArrayVar(&f.components, "component", nil, "restore only this component (repeatable)")
	fl.BoolVar(&f.verify, "verify", false, "re-read restored files and compare them with the snapshot")
	return cmd
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
