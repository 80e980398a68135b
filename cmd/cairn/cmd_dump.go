package main

import (
	"bufio"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/cairn-backup/cairn/app"
	"github.com/cairn-backup/cairn/repo/export"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/spf13/cobra"
)

func newDumpCmd(g *globals) *cobra.Command {
	var archive string
	cmd := &cobra.Command{
		Use:   "dump SNAPSHOT COMPONENT[/PATH]",
		Short: "Write a stream, a file or a directory from a snapshot to stdout",
		Long: `Write a stream component or a file as its raw bytes, or a directory (a
tree component or a path in one) as an archive: a POSIX pax tar by
default (any name, modes, owners, times, symlinks, hard links), or a zip
with --archive zip. Entries are named after the directory (sp1001/…), so
tar -x -C PARENT puts it back where it was.`,
		Example: `  cairn dump latest db | pg_restore -d app
  cairn dump latest files/sp1001 > sp1001.tar
  cairn dump latest files/sp1001 --archive zip > sp1001.zip`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			format, err := export.ParseFormat(archive)
			if err != nil {
				return err
			}
			if _, err := g.useMemory(dumpMemory); err != nil {
				return err
			}
			r, release, err := g.openRepo(ctx, false, "dump")
			if err != nil {
				return err
			}
			defer release()
			var sel app.Selection
			if g.config != nil {
				sel.App = g.config.App // latest is this application's latest
			}
			sn, err := app.FindSnapshot(ctx, r, args[0], sel)
			if err != nil {
				return err
			}
			node, err := r.FindNode(ctx, sn.Snapshot, args[1])
			if err != nil {
				return err
			}
			w := bufio.NewWriterSize(g.stdout, 1<<20)
			if node.Type != snapshot.Dir {
				if cmd.Flags().Changed("archive") {
					return errors.New("--archive applies to directories; a file or stream is written as its bytes")
				}
				if err := r.DumpFile(ctx, node, w); err != nil {
					return err
				}
				return w.Flush()
			}
			comp, sub, _ := strings.Cut(strings.Trim(args[1], "/"), "/")
			sub = path.Clean("/" + sub)[1:]
			name := comp
			if sub != "" {
				name = path.Base(sub)
			}
			res, err := export.Write(ctx, r, export.Dir{Node: node, Path: sub, Name: name}, format, w)
			if err != nil {
				return err
			}
			for _, s := range res.Skipped {
				g.log.Warn(fmt.Sprintf("%s: left out, a %s archive cannot hold it", s, format), "path", s, "format", format)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&archive, "archive", "tar", "archive format for a directory: tar or zip")
	return cmd
}
