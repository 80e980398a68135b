package main

import (
	"context"
	"fmt"
	"path"
	"slices"
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
				err = lsTree(ctx, r, *node.Subtree, base, emit)
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

// lsTree calls fn for every node below the tree id, in the order of a
// depth-first listing: each directory's entries by name, a subdirectory's
// contents right after the subdirectory itself.
func lsTree(ctx context.Context, r *repo.Repository, id chunk.ID, dir string, fn func(string, *snapshot.Node)) error {
	type entry struct {
		path []string
		node *snapshot.Node
	}
	var all []entry
	err := r.NewWalker(repo.WalkOptions{EveryPath: true}).Walk(ctx, dir, id, repo.Visitor{
		Tree: func(p string, _ chunk.ID, t *snapshot.Tree, err error) error {
			if err != nil {
				return err
			}
			for i := range t.Nodes {
				n := &t.Nodes[i]
				all = append(all, entry{strings.Split(path.Join(p, n.Name), "/"), n})
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	// The walk gives a tree's entries before its subdirectories' contents;
	// comparing paths element by element puts each after its directory.
	slices.SortStableFunc(all, func(a, b entry) int { return slices.Compare(a.path, b.path) })
	for _, e := range all {
		fn(strings.Join(e.path, "/"), e.node)
	}
	return nil
}
