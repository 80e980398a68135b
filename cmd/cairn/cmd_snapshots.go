package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cairn-backup/cairn/app"
	"github.com/cairn-backup/cairn/repo"
	"github.com/spf13/cobra"
)

// snapshotJSON is the stable shape of `snapshots --json`.
func newSnapshotsCmd(g *globals) *cobra.Command {
	var sel app.Selection
	cmd := &cobra.Command{
		Use:   "snapshots",
		Short: "List snapshots, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.config != nil && !cmd.Flags().Changed("app") {
				sel.App = g.config.App // the config's application only
			}
			r, release, err := g.openRepo(cmd.Context(), false, "snapshots")
			if err != nil {
				return err
			}
			defer release()
			// Damaged manifests are reported after the readable ones are
			// listed, and make the exit code 1.
			all, damaged := r.Snapshots(cmd.Context())
			if damaged != nil && !errors.Is(damaged, repo.ErrDamagedSnapshots) {
				return damaged
			}
			all = slices.DeleteFunc(all, func(e repo.SnapshotEntry) bool { return !sel.Match(e) })
			if g.json {
				out := make([]snapshotJSON, 0, len(all))
				for _, e := range all {
					out = append(out, toSnapshotJSON(e))
				}
				if err := printJSON(g.stdout, out); err != nil {
					return err
				}
				return damaged
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTime\tApp\tHost\tTags\tComponents\tSize\tSkew (points/durations)\tCopy of")
			for _, e := range all {
				names := make([]string, len(e.Components))
				for i, c := range e.Components {
					names[i] = c.Name
				}
				orig := ""
				if e.Original != nil {
					orig = e.Original.Short()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s / %s\t%s\n", e.ID.Short(), e.Time.Local().Format(time.DateTime), e.App, e.Host,
					strings.Join(e.Tags, ","), strings.Join(names, ","), humanBytes(e.Size()),
					e.PointSkew().Round(time.Millisecond), e.Skew().Round(time.Millisecond), orig)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%d snapshots\n", len(all))
			return damaged
		},
	}
	cmd.Flags().StringArrayVarP(&sel.Hosts, "host", "H", nil, "list only snapshots of this host (repeatable)")
	cmd.Flags().StringVar(&sel.App, "app", "", "list only snapshots of this application (with --config: its app; --app '' lists all)")
	cmd.Flags().StringArrayVar(&sel.Tags, "tag", nil, "list only snapshots with this tag (repeatable: any of them)")
	return cmd
}
