package main

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/spf13/cobra"
)

func newLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ls SNAPSHOT [COMPONENT[/PATH]]",
		Short: "List a snapshot's components, or the files under a path",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, release, err := g.openRepo(ctx, false, "ls")
			if err != nil {
				return err
			}
			defer release()
			sn, err := r.FindSnapshot(ctx, args[0])
			if err != nil {
				return err
			}
			if len(args) == 1 {
				if g.json {
					return printJSON(g.stdout, toComponentsJSON(sn.Components))
				}
				for _, c := range sn.Components {
					fmt.Fprintf(g.stdout, "%-12s %-6s %8d files  %10s  %s\n", c.Name, c.Kind, c.Files, humanBytes(c.Size), c.Source)
				}
				return nil
			}
			node, err := r.FindNode(ctx, sn.Snapshot, args[1])
			if err != nil {
				return err
			}
			var out []lsEntry
			emit := func(p string, n *snapshot.Node) {
				e := lsEntry{Path: p, Type: string(n.Type), Mode: n.Mode.String(), Size: n.Size, ModTime: n.ModTime, Target: n.LinkTarget}
				if g.json {
					out = append(out, e)
					return
				}
				line := fmt.Sprintf("%s %-7s %12d %s %s", modeString(n), n.Type, n.Size, n.ModTime.Local().Format(time.DateTime), p)
				if n.Type == snapshot.Symlink {
					line += " -> " + n.LinkTarget
				}
				fmt.Fprintln(g.stdout, line)
			}
			base := strings.Trim(args[1], "/")
			if node.Type == snapshot.Dir {
				err = walkNodes(ctx, r, *node.Subtree, base, emit)
			} else {
				emit(base, node)
			}
			if err != nil {
				return err
			}
			if g.json {
				if out == nil {
					out = []lsEntry{}
				}
				return printJSON(g.stdout, out)
			}
			return nil
		},
	}
}

func modeString(n *snapshot.Node) string {
	m := n.Mode
	switch n.Type {
	case snapshot.Dir:
		m |= 1 << 31
	case snapshot.Symlink:
		m |= 1 << 27
	}
	return m.String()
}

func walkNodes(ctx context.Context, r *repo.Repository, id chunk.ID, dir string, fn func(string, *snapshot.Node)) error {
	t, err := r.LoadTree(ctx, id)
	if err != nil {
		return err
	}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		p := path.Join(dir, n.Name)
		fn(p, n)
		if n.Type == snapshot.Dir {
			if err := walkNodes(ctx, r, *n.Subtree, p, fn); err != nil {
				return err
			}
		}
	}
	return nil
}
