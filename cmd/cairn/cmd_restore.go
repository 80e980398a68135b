package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/app"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/sources/command"
	"github.com/spf13/cobra"
)

type restoreFlags struct {
	commands   []string
	snapshot   string
	target     string
	components []string
	include    []string
	exclude    []string
	indices    string
	renamePat  string
	renameRepl string
	verify     bool
	delete     bool
	noOwner    bool
	hosts      []string
	dryRun     bool
	wait       time.Duration
}

func newRestoreCmd(g *globals) *cobra.Command {
	var f restoreFlags
	cmd := &cobra.Command{
		Use:   "restore SNAPSHOT --target DIR",
		Short: "Restore a snapshot into a directory",
		Long: `Restore a snapshot's components into DIR: a tree component to DIR/NAME/…,
a stream component to the file DIR/NAME. Nothing is written outside DIR.
Files whose data cannot be read are listed and the others are restored;
the command then exits 1.

--command NAME='CMD' pipes the stream component NAME into CMD instead
(pg_restore, psql, mariadb), in the order the components were backed up;
if the data cannot be read the command is killed, never given a truncated
dump. Run the tool so a kill leaves nothing half-done, e.g. pg_restore
--single-transaction, psql --single-transaction -v ON_ERROR_STOP=1.

A partial restore: --component NAME/PATH restores one subtree of a tree
component (a tenant's folder), --include and --exclude select paths
within tree components with restic's patterns ('*', '**', a leading '/'
anchors at the component's root, a matching directory brings its whole
subtree). The directories above what is restored are made with their
metadata. With --config, a partial restore replaces only what it
selected in the live directory and removes nothing else.`,
		Example: `  cairn restore latest --target /srv/restore
  cairn restore latest --component files/sp1001 --target /srv/restore
  cairn --config alm.yaml restore latest --component files --include '/sp1001/**/*.pdf'
  cairn --config saas.yaml restore latest --component search --indices 'mqm_sp1001*' --rename-pattern '(.+)' --rename-replacement 'export_$1'
  cairn restore latest -H db1 --command db='pg_restore --clean --if-exists --single-transaction -d app' --target /srv/restore`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cmds, err := parseCommands(f.commands)
			if err != nil {
				return err
			}
			switch {
			case len(args) == 1 && f.snapshot != "" && args[0] != f.snapshot:
				return fmt.Errorf("snapshot %q given twice, as an argument and as --snapshot %q", args[0], f.snapshot)
			case len(args) == 1:
				f.snapshot = args[0]
			case f.snapshot == "":
				return errors.New("restore needs a snapshot: cairn restore SNAPSHOT (or --snapshot)")
			}
			if _, err := g.useMemory(restoreMemory); err != nil {
				return err
			}
			r, release, err := g.openRepo(ctx, false, "restore")
			if err != nil {
				return err
			}
			defer release()
			sel := app.Selection{Hosts: f.hosts}
			if g.config != nil {
				sel.App = g.config.App // latest is this application's latest
			}
			sn, err := app.FindSnapshot(ctx, r, f.snapshot, sel)
			if err != nil {
				return err
			}
			if f.delete && (g.config == nil || f.target != "") {
				return errors.New("--delete empties live directories and applies only to restore --config without --target")
			}
			if (f.indices != "" || f.renamePat != "" || f.renameRepl != "") && (g.config == nil || f.target != "") {
				return errors.New("--indices and --rename-pattern/--rename-replacement restore Elasticsearch indices and apply only to restore --config without --target")
			}
			if (f.renamePat == "") != (f.renameRepl == "") {
				return errors.New("--rename-pattern and --rename-replacement go together")
			}
			if f.noOwner && f.target == "" {
				return errors.New("--no-owner applies to restores into --target (live targets keep the application's owners)")
			}
			if g.config != nil && f.target == "" && len(f.commands) == 0 {
				// The application's live targets, from the config.
				report := func(s string) {
					if !g.quiet && !g.json {
						fmt.Fprintln(g.stdout, "restored "+s)
					}
				}
				return runLiveRestore(ctx, g, r, sn, f, app.RestoreOptions{Components: f.components, Include: f.include, Exclude: f.exclude,
					Indices: f.indices, RenamePattern: f.renamePat, RenameReplacement: f.renameRepl, Delete: f.delete, Verify: f.verify, Report: report})
			}
			if f.dryRun {
				return errors.New("--dry-run applies to restore --config to the live targets (without --target or --command)")
			}
			commands := map[string][]string{}
			for _, c := range cmds {
				commands[c.name] = c.spec.Argv
			}
			plan, err := app.PlanRestore(sn, app.RestoreRequest{Components: f.components, Include: f.include, Exclude: f.exclude, Commands: commands, Target: f.target, NoOwner: f.noOwner})
			if err != nil {
				return err
			}
			prog := &repo.Progress{}
			var pp *progressPrinter
			start := time.Now()
			res, err := plan.Run(ctx, r, app.RunOptions{
				Verify:   f.verify,
				Progress: prog,
				Piped: func(what string, took time.Duration) {
					if !g.json && !g.quiet {
						fmt.Fprintf(g.stdout, "restored %s in %s\n", what, took.Round(time.Millisecond))
					}
				},
				Target: func() {
					start = time.Now()
					pp = startProgress(g, "restore", prog, plan.Bytes)
				},
			})
			if pp != nil {
				pp.Stop()
			}
			if res == nil && err == nil {
				return nil // everything was piped
			}
			if res != nil {
				for _, e := range res.Errors {
					g.log.Warn(fmt.Sprintf("not restored: %v", e), "err", e)
				}
			}
			el := time.Since(start)
			if res != nil {
				if g.json {
					if jerr := printJSON(g.stdout, toRestoreJSON(sn.ID, f.target, res, f.verify, el)); jerr != nil {
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
	fl.StringVar(&f.snapshot, "snapshot", "", "snapshot ID, unique prefix, or latest (or give it as the argument)")
	fl.StringArrayVarP(&f.hosts, "host", "H", nil, "with latest: the newest snapshot of this host (repeatable)")
	fl.StringVar(&f.target, "target", "", "directory to restore into (created if missing)")
	fl.StringArrayVar(&f.components, "component", nil, "restore only this component, or NAME/PATH: only that subtree of it (repeatable)")
	fl.StringArrayVar(&f.include, "include", nil, "restore only paths of tree components matching PATTERN (repeatable)")
	fl.StringArrayVar(&f.exclude, "exclude", nil, "leave out paths of tree components matching PATTERN (repeatable)")
	fl.StringArrayVar(&f.commands, "command", nil, "pipe stream component NAME into CMD instead of writing it (NAME='CMD ARGS'; repeatable)")
	fl.StringVar(&f.indices, "indices", "", "with --config: restore only these indices of elasticsearch components (a pattern, instead of the config's indices:)")
	fl.StringVar(&f.renamePat, "rename-pattern", "", "with --config: restore elasticsearch indices under new names: a Java regular expression on the index name…")
	fl.StringVar(&f.renameRepl, "rename-replacement", "", "…and its replacement ($1 for a group); the live indices are not closed")
	fl.BoolVar(&f.verify, "verify", false, "re-read restored files and compare them with the snapshot; with --config, also read every dump back through the repository before the first destructive step")
	fl.BoolVar(&f.delete, "delete", false, "with --config: empty each tree component's live directory before restoring into it")
	fl.DurationVar(&f.wait, "wait", 0, "with --config: if another backup or restore of the application runs, wait up to this long for it (default: fail at once, exit code 13)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "with --config: print the restore plan and run its checks, change nothing")
	fl.BoolVar(&f.noOwner, "no-owner", false, "files belong to the user running restore (root does not restore owners) and lose setuid/setgid bits")
	return cmd
}

// namedCommand is one --command NAME='CMD ARGS' flag.
type namedCommand struct {
	name string
	spec command.Spec
}

// parseCommands parses --command flags, in the order given.
func parseCommands(flags []string) ([]namedCommand, error) {
	var out []namedCommand
	seen := map[string]bool{}
	for _, flag := range flags {
		name, line, ok := strings.Cut(flag, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--command %q: want NAME='CMD ARGS'", flag)
		}
		argv, err := splitCommandLine(line)
		if err != nil {
			return nil, fmt.Errorf("--command %s: %w", name, err)
		}
		if seen[name] {
			return nil, fmt.Errorf("--command %s given twice", name)
		}
		seen[name] = true
		out = append(out, namedCommand{name, command.Spec{Argv: argv}})
	}
	return out, nil
}

// runLiveRestore restores the application's live targets from the config:
// the plan is printed (and only printed with --dry-run), checked, then run.
func runLiveRestore(ctx context.Context, g *globals, r *repo.Repository, sn repo.SnapshotEntry, f restoreFlags, opts app.RestoreOptions) error {
	plan, err := app.PlanLive(ctx, r, g.config, sn, opts)
	if f.dryRun || err != nil {
		if g.json {
			if jerr := printJSON(g.stdout, toRestorePlanJSON(plan, err)); jerr != nil {
				return jerr
			}
		} else if f.dryRun || !g.quiet {
			printPlan(g.stdout, plan)
		}
		if err != nil {
			return err
		}
		if !g.json && !g.quiet {
			fmt.Fprintln(g.stdout, "checks passed; nothing was changed (--dry-run)")
		}
		return nil
	}
	unlock, err := g.lockRun(ctx, r, "restore", f.wait)
	if err != nil {
		return err
	}
	defer unlock()
	err = plan.Run(ctx, r)
	if g.json {
		out := restoreLiveJSON{Snapshot: sn.ID.String(), Restored: err == nil}
		var rerr *app.RestoreError
		if errors.As(err, &rerr) {
			out.FailedComponent, out.RestoredComponents = &rerr.Failed, rerr.Restored
		}
		if err != nil {
			out.Error = err.Error()
		}
		if jerr := printJSON(g.stdout, out); jerr != nil {
			return jerr
		}
		return err
	}
	if err != nil {
		return err
	}
	if !g.quiet {
		fmt.Fprintf(g.stdout, "snapshot %s restored to the application's live targets\n", sn.ID.Short())
	}
	return nil
}

func printPlan(w io.Writer, p *app.LivePlan) {
	if p == nil {
		return
	}
	sn := p.Snapshot
	fmt.Fprintf(w, "restore plan for snapshot %s (%s, app %s, host %s):\n", sn.ID.Short(), sn.Time.Local().Format(time.DateTime), sn.App, sn.Host)
	for i, s := range p.Steps {
		fmt.Fprintf(w, "  %d. %s\n", i+1, s)
	}
	if len(p.OnFailure) > 0 {
		fmt.Fprintln(w, "  if a step fails, the after hooks of the steps not reached do not run; instead:")
		for _, s := range p.OnFailure {
			fmt.Fprintf(w, "     - %s\n", s)
		}
	}
}
