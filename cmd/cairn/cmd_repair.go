package main

import (
	"context"
	"fmt"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/repair"
	"github.com/spf13/cobra"
)

func newRepairCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repair",
		Short: "Remove temporary files left by killed processes (see also repair index, repair snapshots)",
		Long: `repair removes the temporary files a killed cairn left in a local
repository (check lists them). 'repair index' rebuilds the index from the
packs' own headers; 'repair snapshots' writes new snapshots without the files
whose data is lost. Each takes the exclusive lock.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withRepo(cmd, true, "repair", func(ctx context.Context, r *repo.Repository) error {
				// Under the exclusive lock nothing else writes: every
				// temporary file is a leftover, whatever its age.
				rep, err := repair.Temp(ctx, r, 0)
				if err != nil {
					return err
				}
				if g.json {
					return printJSON(g.stdout, rep)
				}
				for _, f := range rep.Files {
					fmt.Fprintf(g.stdout, "removed temporary file %s (%s)\n", f.Name, humanBytes(uint64(f.Size)))
				}
				fmt.Fprintf(g.stdout, "removed %d temporary files, %s\n", len(rep.Files), humanBytes(uint64(rep.Bytes)))
				return nil
			})
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "index",
		Short: "Rebuild the index from the packs' headers",
		Long: `Rebuild the index from every pack's own header. The new index is written
before the old index files are removed, so an interrupted repair leaves a
repository that still opens. Packs whose header is damaged are listed; their
blobs are lost (run 'repair snapshots' next).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep *repair.IndexReport
			err := g.withRepo(cmd, true, "repair", func(ctx context.Context, r *repo.Repository) (err error) {
				rep, err = repair.Index(ctx, r)
				return err
			})
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, rep)
			}
			for p, why := range rep.BadPacks {
				fmt.Fprintf(g.stdout, "pack %s left out: %s\n", p, why)
			}
			for _, n := range rep.StrayNames {
				fmt.Fprintf(g.stdout, "stray object %s ignored\n", n)
			}
			fmt.Fprintf(g.stdout, "indexed %d blobs in %d packs: wrote %d index files, removed %d old ones\n", rep.Blobs, rep.Packs, len(rep.Written), len(rep.Removed))
			return nil
		},
	})
	var forget bool
	snaps := &cobra.Command{
		Use:   "snapshots",
		Short: "Write new snapshots without the files whose data is lost",
		Long: `For every snapshot that needs data the repository no longer has, write a new
snapshot without those files and directories, tagged "repaired" and recording
the original's ID. The originals are kept unless --forget.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep *repair.SnapshotsReport
			err := g.withRepo(cmd, true, "repair", func(ctx context.Context, r *repo.Repository) (err error) {
				rep, err = repair.Snapshots(ctx, r, forget)
				return err
			})
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, rep)
			}
			for _, s := range rep.Repaired {
				fmt.Fprintf(g.stdout, "snapshot %s repaired as %s, %d paths left out:\n", s.Original.Short(), s.New.Short(), len(s.Lost))
				for _, p := range s.Lost {
					fmt.Fprintf(g.stdout, "  %s\n", p)
				}
			}
			fmt.Fprintf(g.stdout, "checked %d snapshots, repaired %d, forgot %d\n", rep.Checked, len(rep.Repaired), len(rep.Forgotten))
			return nil
		},
	}
	snaps.Flags().BoolVar(&forget, "forget", false, "remove each damaged original once its repaired snapshot is written")
	cmd.AddCommand(snaps)
	return cmd
}
