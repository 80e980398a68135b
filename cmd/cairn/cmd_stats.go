package main

import (
	"fmt"
	"slices"

	"github.com/cairn-backup/cairn/app"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/stats"
	"github.com/spf13/cobra"
)

func newStatsCmd(g *globals) *cobra.Command {
	var sel app.Selection
	cmd := &cobra.Command{
		Use:   "stats [SNAPSHOT]",
		Short: "Show logical size, stored size and deduplication of snapshots",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, release, err := g.openRepo(ctx, false, "stats")
			if err != nil {
				return err
			}
			defer release()
			var snaps []repo.SnapshotEntry
			if len(args) == 1 {
				sn, err := app.FindSnapshot(ctx, r, args[0], sel)
				if err != nil {
					return err
				}
				snaps = []repo.SnapshotEntry{sn}
			} else if snaps, err = r.Snapshots(ctx); err != nil {
				return err
			} else {
				snaps = slices.DeleteFunc(snaps, func(e repo.SnapshotEntry) bool { return !sel.Match(e) })
			}
			st, err := stats.Compute(ctx, r, snaps)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, toStatsJSON(st))
			}
			fmt.Fprintf(g.stdout, "snapshots:          %d\n", st.Snapshots)
			fmt.Fprintf(g.stdout, "files:              %d\n", st.Files)
			fmt.Fprintf(g.stdout, "logical size:       %s\n", humanBytes(st.LogicalBytes))
			fmt.Fprintf(g.stdout, "unique data:        %s in %d blobs\n", humanBytes(st.UniqueRawBytes), st.UniqueBlobs)
			fmt.Fprintf(g.stdout, "stored size:        %s\n", humanBytes(st.StoredBytes))
			fmt.Fprintf(g.stdout, "dedup ratio:        %.2f\n", st.DedupRatio)
			fmt.Fprintf(g.stdout, "compression ratio:  %.2f\n", st.CompressionRatio)
			fmt.Fprintf(g.stdout, "repository packs:   %s\n", humanBytes(st.RepositoryBytes))
			fmt.Fprintf(g.stdout, "\n%-14s %12s %12s %12s %7s %7s\n", "component", "logical", "unique", "stored", "dedup", "compr")
			for _, c := range st.Components {
				fmt.Fprintf(g.stdout, "%-14s %12s %12s %12s %7.2f %7.2f\n", c.Name, humanBytes(c.LogicalBytes), humanBytes(c.UniqueRawBytes),
					humanBytes(c.StoredBytes), c.DedupRatio, c.CompressionRatio)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&sel.Hosts, "host", "H", nil, "only snapshots of this host; with latest, the newest of this host (repeatable)")
	cmd.Flags().StringVar(&sel.App, "app", "", "only snapshots of this application")
	return cmd
}
