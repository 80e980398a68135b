package main

import (
	"fmt"
	"runtime"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/check"
	"github.com/cairn-backup/cairn/repo/prune"
	"github.com/spf13/cobra"
)

func newCheckCmd(g *globals) *cobra.Command {
	var readData bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Verify the repository's structure, or with --read-data every byte",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			workers, err := checkMemory(g, readData)
			if err != nil {
				return err
			}
			r, release, err := g.openRepo(ctx, false, "check")
			if err != nil {
				return err
			}
			defer release()
			prog := &repo.Progress{}
			pp := startProgress(g, "check", prog, 0)
			marked, err := prune.MarkedPacks(ctx, r)
			if err != nil {
				// Check goes on: unreadable marks are for prune to refuse.
				g.log.Warn(fmt.Sprintf("prune marks: %v", err), "err", err)
			}
			rep, err := check.Check(ctx, r, check.Options{ReadData: readData, Progress: prog, Marked: marked, Workers: workers})
			pp.Stop()
			if err != nil {
				return err
			}
			if g.json {
				if err := printJSON(g.stdout, toCheckJSON(rep)); err != nil {
					return err
				}
			} else {
				for _, w := range rep.Warnings {
					fmt.Fprintf(g.stdout, "warning: %s\n", w)
				}
				if n := len(rep.TempFiles); n > 0 {
					var size int64
					for _, f := range rep.TempFiles {
						fmt.Fprintf(g.stdout, "orphaned temporary file %s (%s, %s)\n", f.Name, humanBytes(uint64(f.Size)), f.ModTime.Format(time.DateTime))
						size += f.Size
					}
					fmt.Fprintf(g.stdout, "warning: %d temporary files (%s) left by interrupted writes; 'cairn repair' removes them\n", n, humanBytes(uint64(size)))
				}
				for _, d := range rep.Damaged {
					fmt.Fprintf(g.stdout, "damaged pack %s: %s\n", d.Pack, d.Reason)
					for _, b := range d.Blobs {
						fmt.Fprintf(g.stdout, "  blob %s lost\n", b)
					}
				}
				for _, e := range rep.Errors {
					fmt.Fprintf(g.stdout, "error: %s\n", e)
				}
				for _, s := range rep.MissingFor {
					fmt.Fprintf(g.stdout, "affected snapshot %s\n", s)
				}
				fmt.Fprintf(g.stdout, "checked %d snapshots, %d trees, %d blobs in %d packs", rep.Snapshots, rep.Trees, rep.Blobs, rep.Packs)
				if readData {
					fmt.Fprintf(g.stdout, ", read %s", humanBytes(rep.ReadBytes))
				}
				fmt.Fprintln(g.stdout)
			}
			if !rep.OK() {
				return fmt.Errorf("check found %d damaged packs and %d errors", len(rep.Damaged), len(rep.Errors))
			}
			if !g.json {
				fmt.Fprintln(g.stdout, "no errors found")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&readData, "read-data", false, "read and verify every pack and blob")
	return cmd
}

// checkMemory sets check's memory and returns how many workers read packs
// with --read-data: one per core by default, fewer when --memory does
// not hold them (at least one).
func checkMemory(g *globals, readData bool) (int, error) {
	if !readData {
		_, err := g.useMemory(checkStructureMemory)
		return 0, err
	}
	workers := runtime.GOMAXPROCS(0)
	const fixed = programMemory + 16<<20 // and room for garbage
	mem, given, err := g.memory(fixed + int64(workers)*checkReadMemoryPerWorker)
	if err != nil {
		return 0, err
	}
	if given {
		workers = int(min(max((mem-fixed)/checkReadMemoryPerWorker, 1), int64(workers)))
	}
	g.setMemory(mem)
	return workers, nil
}
