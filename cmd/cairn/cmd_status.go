package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/cairn-backup/cairn/app"
	"github.com/cairn-backup/cairn/app/daemon"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/stats"
	"github.com/spf13/cobra"
)

// exitAttention is status's exit code when an application is past its
// RPO, its last run failed, or its repository cannot be read.
const exitAttention = 5

const statusLong = `Show, per application, whether its backups are current: the newest snapshot
and its age against the schedule's RPO, its skew, each replica's lag behind
the repository, and the daemon's last and next run (from the state files in
--state-dir; the daemon need not be running). The repositories are read to
find the newest snapshots.

Exit codes: 0 every application is current; 5 some application is past its
RPO, its last run or its last restore drill failed, or its repository or a
replica cannot be read
(for monitoring: run it from a check and alert on non-zero); 1 the command
itself failed (bad config).`

func newStatusCmd(g *globals) *cobra.Command {
	var f appsFlags
	cmd := &cobra.Command{
		Use:     "status",
		Short:   "Show whether each application's backups are current (RPO, replicas, runs)",
		Long:    statusLong,
		Example: `  cairn status --config-dir /etc/cairn/apps`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(f.configs) == 0 && f.configDir == "" && g.configPath != "" {
				f.configs = []string{g.configPath}
			}
			return runStatus(cmd.Context(), g, f)
		},
	}
	f.register(cmd.Flags())
	return cmd
}

func runStatus(ctx context.Context, g *globals, f appsFlags) error {
	dir, cfgs, err := f.load()
	if err != nil {
		return err
	}
	now := time.Now()
	var out []statusJSON
	bad := 0
	for _, c := range cfgs {
		s := appStatus(ctx, g, c, dir, now)
		if len(s.Problems) > 0 {
			bad++
		}
		out = append(out, s)
	}
	if g.json {
		if err := printJSON(g.stdout, out); err != nil {
			return err
		}
	} else {
		for i, s := range out {
			if i > 0 {
				fmt.Fprintln(g.stdout)
			}
			printStatus(g.stdout, s, now)
		}
	}
	if bad > 0 {
		return &exitError{code: exitAttention, err: fmt.Errorf("%d of %d applications need attention", bad, len(out))}
	}
	return nil
}

// appStatus gathers one application's status; problems are collected,
// not returned, so one unreadable repository does not hide the others.
func appStatus(ctx context.Context, g *globals, c *app.Config, dir string, now time.Time) statusJSON {
	s := statusJSON{App: c.App, Config: c.Path, Repository: c.Repository, State: "ok", Problems: []string{}, Replicas: []replicaStatusJSON{}}
	s.RPOSeconds = c.Schedule.RPOLimit().Seconds()
	st, err := daemon.ReadState(dir, c.App)
	if err != nil {
		s.Problems = append(s.Problems, err.Error())
	}
	if !st.LastAttempt.IsZero() {
		s.LastRun = &runStatusJSON{Started: st.LastAttempt, DurationSeconds: st.LastDuration.Seconds(),
			Result: st.LastResult, Error: st.LastError, Failures: st.Failures}
		if st.LastResult == "failed" {
			s.Problems = append(s.Problems, fmt.Sprintf("last run failed (%d in a row): %s", st.Failures, st.LastError))
		}
	}
	if !st.NextRun.IsZero() {
		t := st.NextRun
		s.NextRun = &t
	}
	dr, err := daemon.ReadDrill(dir, c.App)
	if err != nil {
		s.Problems = append(s.Problems, err.Error())
	}
	if s.LastDrill = dr; dr != nil && !dr.OK {
		s.Problems = append(s.Problems, fmt.Sprintf("last restore drill (%s, snapshot %s) failed: %s", dr.Time.Local().Format(time.DateTime), dr.Snapshot, dr.Error))
	}
	latest, count, size, err := newestOf(ctx, g, c.Repository, func() (string, error) {
		return readPassword(c.PasswordFile, "CAIRN_PASSWORD_FILE", "CAIRN_PASSWORD", "password_file in the config")
	}, c.App, true)
	if err == nil {
		s.RepositoryBytes = &size
	}
	switch {
	case err != nil:
		s.Problems = append(s.Problems, fmt.Sprintf("repository %s: %v", c.Repository, err))
	case latest == nil:
		s.Problems = append(s.Problems, "no snapshot yet")
	default:
		s.Snapshots = count
		s.Latest = &snapshotStatusJSON{ID: latest.ID.Short(), Time: latest.Time,
			AgeSeconds: now.Sub(latest.Time).Seconds(), SkewSeconds: latest.Skew().Seconds()}
		if age := now.Sub(latest.Time); age > c.Schedule.RPOLimit() {
			s.Problems = append(s.Problems, fmt.Sprintf("newest snapshot is %s old, past the RPO of %s", age.Round(time.Second), c.Schedule.RPOLimit()))
		}
	}
	for _, rp := range c.Replicate {
		rs := replicaStatusJSON{Repository: rp.Repository}
		rl, _, _, err := newestOf(ctx, g, rp.Repository, func() (string, error) {
			return readPassword(rp.PasswordFile, "CAIRN_TO_PASSWORD_FILE", "CAIRN_TO_PASSWORD", "password_file in replicate")
		}, c.App, false)
		switch {
		case err != nil:
			rs.Error = err.Error()
			s.Problems = append(s.Problems, fmt.Sprintf("replica %s: %v", rp.Repository, err))
		case rl != nil:
			rs.Latest = rl.ID.Short()
			rs.LatestTime = &rl.Time
			if s.Latest != nil {
				lag := s.Latest.Time.Sub(rl.Time).Seconds()
				rs.LagSeconds = &lag
			}
		}
		if rl == nil && err == nil {
			s.Problems = append(s.Problems, fmt.Sprintf("replica %s has no snapshot of %s", rp.Repository, c.App))
		}
		s.Replicas = append(s.Replicas, rs)
	}
	if len(s.Problems) > 0 {
		s.State = "attention"
	}
	return s
}

// newestOf is app's newest snapshot in the repository at loc (nil if
// none), how many snapshots of app it holds and, with size, the bytes of
// its packs (from the store listing).
func newestOf(ctx context.Context, g *globals, loc string, password func() (string, error), appName string, size bool) (*repo.SnapshotEntry, int, uint64, error) {
	r, release, err := g.openRepoAt(ctx, loc, password, false, "status")
	if err != nil {
		return nil, 0, 0, err
	}
	defer release()
	all, err := r.Snapshots(ctx)
	if err != nil {
		return nil, 0, 0, err
	}
	var bytes uint64
	if size {
		if bytes, err = stats.PackBytes(ctx, r.Store()); err != nil {
			return nil, 0, 0, err
		}
	}
	var newest *repo.SnapshotEntry
	n := 0
	for i := range all {
		e := &all[i]
		if e.App != appName {
			continue
		}
		n++
		if newest == nil || e.Time.After(newest.Time) {
			newest = e
		}
	}
	return newest, n, bytes, nil
}

func printStatus(w io.Writer, s statusJSON, now time.Time) {
	head := "OK"
	if s.State != "ok" {
		head = "ATTENTION"
	}
	fmt.Fprintf(w, "%s  %s  (%s)\n", s.App, head, s.Config)
	rpo := time.Duration(s.RPOSeconds * float64(time.Second))
	if l := s.Latest; l != nil {
		fmt.Fprintf(w, "  newest snapshot  %s  %s  age %s (rpo %s), skew %s\n", l.ID, l.Time.Local().Format(time.DateTime),
			secs(l.AgeSeconds).Round(time.Second), rpo, secs(l.SkewSeconds).Round(time.Millisecond))
	} else {
		fmt.Fprintf(w, "  newest snapshot  none (rpo %s)\n", rpo)
	}
	if s.RepositoryBytes != nil {
		fmt.Fprintf(w, "  repository       %s of packs\n", humanBytes(*s.RepositoryBytes))
	}
	for _, r := range s.Replicas {
		switch {
		case r.Error != "":
			fmt.Fprintf(w, "  replica          %s  unreadable\n", r.Repository)
		case r.LatestTime == nil:
			fmt.Fprintf(w, "  replica          %s  no snapshot\n", r.Repository)
		case r.LagSeconds != nil:
			fmt.Fprintf(w, "  replica          %s  %s, lag %s\n", r.Repository, r.Latest, secs(*r.LagSeconds).Round(time.Second))
		default:
			fmt.Fprintf(w, "  replica          %s  %s\n", r.Repository, r.Latest)
		}
	}
	if r := s.LastRun; r != nil {
		fmt.Fprintf(w, "  last run         %s  %s in %s\n", r.Started.Local().Format(time.DateTime), r.Result, secs(r.DurationSeconds).Round(time.Millisecond))
	} else {
		fmt.Fprintf(w, "  last run         none recorded by the daemon\n")
	}
	if s.NextRun != nil {
		in := s.NextRun.Sub(now).Round(time.Second)
		fmt.Fprintf(w, "  next run         %s  (in %s)\n", s.NextRun.Local().Format(time.DateTime), max(in, 0))
	}
	if d := s.LastDrill; d != nil {
		res := "ok"
		if !d.OK {
			res = "FAILED"
		}
		fmt.Fprintf(w, "  last drill       %s  snapshot %s %s, restored and probed in %s\n", d.Time.Local().Format(time.DateTime), d.Snapshot, res, secs(d.Seconds).Round(time.Millisecond))
	} else {
		fmt.Fprintf(w, "  last drill       none recorded (cairn drill)\n")
	}
	for _, p := range s.Problems {
		fmt.Fprintf(w, "  ! %s\n", p)
	}
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
