package app

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/restore"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/sources/tree"
)

// RestoreRequest is a restore without a config file (cairn restore
// --target/--command): some stream components piped into commands, the
// rest written into a directory.
type RestoreRequest struct {
	// Components to restore; empty means all of the snapshot's. NAME/PATH
	// restores only that subtree of the tree component NAME.
	Components []string
	// Include and Exclude select paths within the tree components
	// (restore.Filter).
	Include, Exclude []string
	// Commands pipes the stream component named by each key into the
	// command (argv) instead of writing it.
	Commands map[string][]string
	// Target is the directory the other components are restored into.
	Target string
	// NoOwner restores files as the restoring user, without setuid and
	// setgid bits (see tree.Target.NoOwner).
	NoOwner bool
}

// RestorePlan is a checked RestoreRequest: every name exists, every piped
// component is a stream, and a target is given if anything needs one.
// Nothing has been written when PlanRestore returns.
type RestorePlan struct {
	Snapshot repo.SnapshotEntry
	// Piped are the components piped into commands, in backup order (the
	// database before the files that reference it); they run first.
	Piped []snapshot.Component
	// Rest are the components restored into Target, afterwards.
	Rest   []string
	Target string
	// Bytes is the logical size of Rest, for progress.
	Bytes uint64

	noOwner          bool
	commands         map[string][]string
	selection        []string // Rest, with any NAME/PATH subtrees
	include, exclude []string
}

// PlanRestore checks req against sn before the first destructive step: a
// typo in the last --command must not surface after the database was
// already replaced.
func PlanRestore(sn repo.SnapshotEntry, req RestoreRequest) (*RestorePlan, error) {
	wanted := map[string][]string{} // component name → the refs naming it
	for _, ref := range req.Components {
		name, _ := splitRef(ref)
		if sn.Component(name) == nil {
			return nil, fmt.Errorf("snapshot %s has no component %q", sn.ID.Short(), name)
		}
		wanted[name] = append(wanted[name], ref)
	}
	names := make([]string, 0, len(req.Commands))
	for name := range req.Commands {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		c := sn.Component(name)
		if c == nil {
			return nil, fmt.Errorf("--command %s: the snapshot has no component %q", name, name)
		}
		if c.Kind != snapshot.KindStream {
			return nil, fmt.Errorf("--command %s: component %q is a %s, only a stream can be piped into a command", name, name, c.Kind)
		}
		for _, ref := range wanted[name] {
			if _, sub := splitRef(ref); sub != "" {
				return nil, fmt.Errorf("--command %s: component %q is a stream and has no path %q", name, name, sub)
			}
		}
	}
	p := &RestorePlan{Snapshot: sn, Target: req.Target, noOwner: req.NoOwner, commands: req.Commands, include: req.Include, exclude: req.Exclude}
	for _, c := range sn.Components {
		refs, ok := wanted[c.Name]
		if len(req.Components) > 0 && !ok {
			continue
		}
		if _, ok := req.Commands[c.Name]; ok {
			p.Piped = append(p.Piped, c)
			continue
		}
		p.Rest = append(p.Rest, c.Name)
		p.Bytes += c.Size
		if len(refs) == 0 {
			refs = []string{c.Name}
		}
		p.selection = append(p.selection, refs...)
	}
	if len(p.Rest) > 0 && p.Target == "" {
		return nil, fmt.Errorf("restore needs --target for components %s", strings.Join(p.Rest, ", "))
	}
	return p, nil
}

// splitRef splits a component reference "NAME[/PATH]".
func splitRef(ref string) (name, sub string) {
	name, sub, _ = strings.Cut(strings.Trim(ref, "/"), "/")
	return name, sub
}

// RunOptions tune RestorePlan.Run.
type RunOptions struct {
	// Verify re-reads every file restored into the target.
	Verify   bool
	Progress *repo.Progress
	// Piped, when set, is told of each component piped into its command,
	// with what the command reported and how long it took.
	Piped func(what string, took time.Duration)
	// Target, when set, is called when the restore into the target begins,
	// after the piped components (to start a progress display).
	Target func()
}

// Run carries out the plan: the target is opened (created if missing),
// the piped components go into their commands in backup order, then the
// rest is restored into the target. The result is nil when nothing was
// restored into a target. A read error kills a piped command, so the tool
// never commits a truncated dump.
func (p *RestorePlan) Run(ctx context.Context, r *repo.Repository, opts RunOptions) (*restore.Result, error) {
	var t *tree.Target
	if len(p.Rest) > 0 {
		var err error
		if t, err = tree.OpenTarget(p.Target); err != nil {
			return nil, err
		}
		t.NoOwner = p.noOwner
		defer t.Close()
	}
	for _, c := range p.Piped {
		start := time.Now()
		report := func(s string) {
			if opts.Piped != nil {
				opts.Piped(s, time.Since(start))
			}
		}
		if err := RestoreCommand(ctx, r, p.Snapshot.Snapshot, &Component{Name: c.Name, Restore: p.commands[c.Name]}, report); err != nil {
			return nil, fmt.Errorf("restore component %s: %w", c.Name, err)
		}
	}
	if len(p.Rest) == 0 {
		return nil, nil
	}
	if opts.Target != nil {
		opts.Target()
	}
	return restore.Restore(ctx, r, p.Snapshot.Snapshot, t, restore.Options{Components: p.selection, Include: p.include, Exclude: p.exclude, Verify: opts.Verify, Progress: opts.Progress})
}
