package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cairn-backup/cairn/app"
	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/spf13/cobra"
)

type forgetFlags struct {
	last, hourly, daily, weekly, monthly, yearly int
	within, withinHourly, withinDaily            string
	withinWeekly, withinMonthly, withinYearly    string
	tags                                         []string
	keepMin                                      int
	groupBy                                      string
	dryRun, utc, prune                           bool
	prunef                                       pruneFlags
}

const forgetLong = `Remove snapshots: those named, or those a retention policy does not keep.
The space they held comes back with 'cairn prune' (or forget --prune).

Snapshots are grouped (--group-by, default app,host) and each group is
thinned on its own. Within a group, a snapshot is kept if any rule keeps it:

  --keep-last N      the N newest snapshots.
                     --keep-last 3: the three newest, whenever they were taken.
  --keep-hourly N    the newest snapshot of each of the N newest hours that
                     have one, counted back from the newest snapshot.
                     --keep-hourly 6 with snapshots every 4 h: the last 6 (24 h).
  --keep-daily N     the same per calendar day.
                     --keep-daily 14: one per day for the last 14 days that
                     have a snapshot; a day without backups does not count.
  --keep-weekly N    the same per ISO week (Monday to Sunday; 31 Dec 2026 is
                     in week 53 of 2026, 4 Jan 2027 in week 1 of 2027).
  --keep-monthly N   the same per calendar month.
  --keep-yearly N    the same per calendar year.
  --keep-within D    every snapshot within D before the newest one (not
                     before now: a group whose backups stopped keeps its
                     last history). D is y, m, d, h: --keep-within 2d12h.
  --keep-within-hourly/-daily/-weekly/-monthly/-yearly D
                     the newest snapshot of each bucket among those within D.
                     --keep-within-daily 30d: one a day for 30 days.
  --keep-tag T       every snapshot carrying all tags in T (comma-separated;
                     repeat the flag for alternatives). --keep-tag release.

While a bucket rule still has count left when it reaches the oldest
snapshot, it keeps the oldest too (a young repository keeps its full span).
Counts of -1 mean unlimited. Hours and days are local time unless --utc; a
day with a DST change is still one day.

The guard --keep-min N (default 1) never leaves fewer than N snapshots in a
group among those that recorded no unreadable files: a week of failing or
partial backups cannot push out the last good ones. A policy without any
keep rule is refused, unless --keep-min 0 is given to remove every
snapshot of each group.

With --config, the file's retention: block is the policy (flags given
override it), only the application's snapshots are considered, and each
replicate: target that has its own retention: is thinned by it too.`

func newForgetCmd(g *globals) *cobra.Command {
	var f forgetFlags
	cmd := &cobra.Command{
		Use:   "forget [SNAPSHOT...]",
		Short: "Remove snapshots by ID or by a retention policy",
		Long:  forgetLong,
		Example: `  cairn forget --keep-hourly 6 --keep-daily 14 --keep-weekly 8 --keep-monthly 12 --dry-run
  cairn forget --config /etc/cairn/alm.yaml
  cairn forget --config /etc/cairn/alm.yaml --prune
  cairn forget 3f2a9c1d`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runForget(cmd, g, &f, args)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.last, "keep-last", 0, "keep the N newest snapshots")
	fl.IntVar(&f.hourly, "keep-hourly", 0, "keep the newest snapshot of each of the last N hours")
	fl.IntVar(&f.daily, "keep-daily", 0, "keep the newest snapshot of each of the last N days")
	fl.IntVar(&f.weekly, "keep-weekly", 0, "keep the newest snapshot of each of the last N ISO weeks")
	fl.IntVar(&f.monthly, "keep-monthly", 0, "keep the newest snapshot of each of the last N months")
	fl.IntVar(&f.yearly, "keep-yearly", 0, "keep the newest snapshot of each of the last N years")
	fl.StringVar(&f.within, "keep-within", "", "keep snapshots within this duration (1y2m3d4h) of the newest")
	fl.StringVar(&f.withinHourly, "keep-within-hourly", "", "keep hourly snapshots within this duration of the newest")
	fl.StringVar(&f.withinDaily, "keep-within-daily", "", "keep daily snapshots within this duration of the newest")
	fl.StringVar(&f.withinWeekly, "keep-within-weekly", "", "keep weekly snapshots within this duration of the newest")
	fl.StringVar(&f.withinMonthly, "keep-within-monthly", "", "keep monthly snapshots within this duration of the newest")
	fl.StringVar(&f.withinYearly, "keep-within-yearly", "", "keep yearly snapshots within this duration of the newest")
	fl.StringArrayVar(&f.tags, "keep-tag", nil, "keep snapshots with all of these tags (comma-separated; repeatable)")
	fl.IntVar(&f.keepMin, "keep-min", 1, "never leave fewer than N snapshots without unreadable files per group")
	fl.StringVar(&f.groupBy, "group-by", "app,host", "group snapshots by these fields (app, host, tags)")
	fl.BoolVarP(&f.dryRun, "dry-run", "n", false, "show what would be removed, remove nothing")
	fl.BoolVar(&f.utc, "utc", false, "take hours, days, weeks … in UTC instead of local time")
	fl.BoolVar(&f.prune, "prune", false, "prune after forgetting (see cairn help prune)")
	addPruneFlags(fl, &f.prunef)
	return cmd
}

// forgetTarget is one repository to thin and its policy.
type forgetTarget struct {
	loc      string
	password func() (string, error)
	retain   *app.Retention // nil: flags only
}

func runForget(cmd *cobra.Command, g *globals, f *forgetFlags, args []string) error {
	ctx := cmd.Context()
	if len(args) > 0 && policyFlagsSet(cmd) {
		return errors.New("give snapshot IDs or keep rules, not both")
	}
	targets := []forgetTarget{{loc: g.repo, password: g.password}}
	appName := ""
	if g.config != nil && len(args) == 0 {
		appName = g.config.App
		targets[0].retain = g.config.Retention
		if !cmd.Flags().Changed("repo") {
			for _, rp := range g.config.Replicate {
				if rp.Retention == nil {
					continue
				}
				targets = append(targets, forgetTarget{loc: rp.Repository, retain: rp.Retention, password: func() (string, error) {
					return readPassword(rp.PasswordFile, "CAIRN_TO_PASSWORD_FILE", "CAIRN_TO_PASSWORD", "password_file in replicate")
				}})
			}
		}
	}
	if targets[0].loc == "" {
		return errors.New("no repository: pass -r/--repo or set CAIRN_REPOSITORY")
	}
	var results []forgetJSON
	for _, tg := range targets {
		res, err := forgetOne(ctx, cmd, g, f, tg, appName, args)
		if err != nil {
			return fmt.Errorf("%s: %w", tg.loc, err)
		}
		results = append(results, res)
	}
	if g.json {
		return printJSON(g.stdout, results)
	}
	return nil
}

func policyFlagsSet(cmd *cobra.Command) bool {
	for _, n := range []string{"keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly",
		"keep-within", "keep-within-hourly", "keep-within-daily", "keep-within-weekly", "keep-within-monthly",
		"keep-within-yearly", "keep-tag"} {
		if cmd.Flags().Changed(n) {
			return true
		}
	}
	return false
}

// policy is the config's retention (if any) with the flags given on top.
func (f *forgetFlags) policy(cmd *cobra.Command, retain *app.Retention) (snapshot.Policy, snapshot.GroupBy, error) {
	var p snapshot.Policy
	by, err := snapshot.ParseGroupBy("app,host")
	if err != nil {
		return p, by, err
	}
	p.KeepMin = 1
	if retain != nil {
		if p, by, err = retain.Policy(); err != nil {
			return p, by, fmt.Errorf("retention: %w", err)
		}
	}
	ch := cmd.Flags().Changed
	for _, c := range []struct {
		name string
		v    int
		dst  *int
	}{{"keep-last", f.last, &p.Last}, {"keep-hourly", f.hourly, &p.Hourly}, {"keep-daily", f.daily, &p.Daily},
		{"keep-weekly", f.weekly, &p.Weekly}, {"keep-monthly", f.monthly, &p.Monthly}, {"keep-yearly", f.yearly, &p.Yearly},
		{"keep-min", f.keepMin, &p.KeepMin}} {
		if ch(c.name) {
			*c.dst = c.v
		}
	}
	for _, d := range []struct {
		name, v string
		dst     *snapshot.Duration
	}{{"keep-within", f.within, &p.Within}, {"keep-within-hourly", f.withinHourly, &p.WithinHourly},
		{"keep-within-daily", f.withinDaily, &p.WithinDaily}, {"keep-within-weekly", f.withinWeekly, &p.WithinWeekly},
		{"keep-within-monthly", f.withinMonthly, &p.WithinMonthly}, {"keep-within-yearly", f.withinYearly, &p.WithinYearly}} {
		if !ch(d.name) {
			continue
		}
		v, err := snapshot.ParseDuration(d.v)
		if err != nil {
			return p, by, fmt.Errorf("--%s: %w", d.name, err)
		}
		*d.dst = v
	}
	if ch("keep-tag") {
		p.Tags = nil
		for _, t := range f.tags {
			p.Tags = append(p.Tags, strings.Split(t, ","))
		}
	}
	if ch("group-by") {
		if by, err = snapshot.ParseGroupBy(f.groupBy); err != nil {
			return p, by, err
		}
	}
	if err := p.Check(); err != nil {
		if errors.Is(err, snapshot.ErrEmptyPolicy) {
			return p, by, errors.New("no keep rule given: forget would remove every snapshot; give --keep-* rules (see cairn help forget), or --keep-min 0 to really remove them all")
		}
		return p, by, err
	}
	return p, by, nil
}

func forgetOne(ctx context.Context, cmd *cobra.Command, g *globals, f *forgetFlags, tg forgetTarget, appName string, args []string) (forgetJSON, error) {
	out := forgetJSON{Repository: tg.loc, DryRun: f.dryRun, Groups: []forgetGroupJSON{}}
	var p snapshot.Policy
	var by snapshot.GroupBy
	if len(args) == 0 {
		var err error
		if p, by, err = f.policy(cmd, tg.retain); err != nil {
			return out, err
		}
	}
	r, release, err := g.openRepoAt(ctx, tg.loc, tg.password, false, "forget")
	if err != nil {
		return out, err
	}
	defer release()
	var remove []chunk.ID
	if len(args) > 0 {
		// Resolve every ID before removing any: a typo removes nothing.
		var named []repo.SnapshotEntry
		for _, a := range args {
			e, err := r.FindSnapshot(ctx, a)
			if err != nil {
				return out, err
			}
			named = append(named, e)
		}
		grp := forgetGroupJSON{}
		for _, e := range named {
			remove = append(remove, e.ID)
			grp.Snapshots = append(grp.Snapshots, forgetSnapshot(e, false, []string{}))
		}
		out.Groups = append(out.Groups, grp)
	} else {
		all, err := r.Snapshots(ctx)
		if err != nil {
			// With a damaged manifest we cannot tell which snapshot is the
			// newest of its group, so the policy could remove good ones.
			return out, fmt.Errorf("not applying a policy: %w", err)
		}
		var entries []repo.SnapshotEntry
		var snaps []*snapshot.Snapshot
		for _, e := range all {
			if appName != "" && e.App != appName {
				continue
			}
			entries = append(entries, e)
			snaps = append(snaps, e.Snapshot)
		}
		loc := time.Local
		if f.utc {
			loc = time.UTC
		}
		groups, err := snapshot.ApplyPolicy(snaps, p, by, loc)
		if err != nil {
			return out, err
		}
		for _, gr := range groups {
			grp := forgetGroupJSON{Group: groupKeyJSON{App: gr.Key.App, Host: gr.Key.Host, Tags: gr.Key.Tags}}
			for _, d := range gr.Decisions {
				e := entries[d.Index]
				reasons := d.Reasons
				if reasons == nil {
					reasons = []string{}
				}
				grp.Snapshots = append(grp.Snapshots, forgetSnapshot(e, d.Keep, reasons))
				if !d.Keep {
					remove = append(remove, e.ID)
				}
			}
			out.Groups = append(out.Groups, grp)
		}
	}
	for _, gr := range out.Groups {
		for _, s := range gr.Snapshots {
			if s.Keep {
				out.Kept++
			} else {
				out.Removed++
			}
		}
	}
	if !g.json {
		printForget(g, out, len(args) == 0, f.utc)
	}
	if f.dryRun {
		return out, nil
	}
	for _, id := range remove {
		if err := r.RemoveSnapshot(ctx, id); err != nil {
			return out, err
		}
	}
	if f.prune {
		rep, err := runPruneOn(ctx, g, r, &f.prunef)
		if err != nil {
			return out, err
		}
		pj := toPruneJSON(rep)
		out.Prune = &pj
	}
	return out, nil
}

func forgetSnapshot(e repo.SnapshotEntry, keep bool, reasons []string) forgetSnapshotJSON {
	tags := e.Tags
	if tags == nil {
		tags = []string{}
	}
	return forgetSnapshotJSON{ID: e.ID.String(), Time: e.Time, Host: e.Host, App: e.App, Tags: tags, Keep: keep, Reasons: reasons}
}

func printForget(g *globals, out forgetJSON, policy, utc bool) {
	loc := time.Local
	if utc {
		loc = time.UTC
	}
	verb := "removed"
	if out.DryRun {
		verb = "would be removed"
	}
	for _, gr := range out.Groups {
		if policy {
			fmt.Fprintf(g.stdout, "%s: %d snapshots\n", gr.Group, len(gr.Snapshots))
		}
		tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTime\tHost\tTags\tAction\tReasons")
		for _, s := range gr.Snapshots {
			action := "keep"
			if !s.Keep {
				action = "remove"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID[:8], s.Time.In(loc).Format(time.DateTime), s.Host,
				strings.Join(s.Tags, ","), action, strings.Join(s.Reasons, ", "))
		}
		_ = tw.Flush()
	}
	fmt.Fprintf(g.stdout, "%s: %d kept, %d %s\n", out.Repository, out.Kept, out.Removed, verb)
}
