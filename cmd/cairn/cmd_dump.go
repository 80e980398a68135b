package main

import (
	"bufio"

	"github.com/spf13/cobra"
)

func newDumpCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "dump SNAPSHOT COMPONENT[/PATH]",
		Short:   "Write a stream or a file from a snapshot to stdout",
		Example: "  cairn dump latest db | pg_restore -d app",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, release, err := g.openRepo(ctx, false, "dump")
			if err != nil {
				return err
			}
			defer release()
			sn, err := r.FindSnapshot(ctx, args[0])
			if err != nil {
				return err
			}
			node, err := r.FindNode(ctx, sn.Snapshot, args[1])
			if err != nil {
				return err
			}
			w := bufio.NewWriterSize(g.stdout, 1<<20)
			if err := r.DumpFile(ctx, node, w); err != nil {
				return err
			}
			return w.Flush()
		},
	}
}
