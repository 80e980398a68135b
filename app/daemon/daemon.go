// Package daemon runs each configured application on its schedule:
// backup (with replication), then retention, and prune on its own
// interval; one run at a time per application, an overdue run at once,
// a failed one retried with backoff. What a run does is the caller's Job
// (cmd/cairn runs itself as a child process, so a run's memory and
// failures stay out of the long-lived daemon); this package owns only
// the timing, the state files `cairn status` reads, and the metrics.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/app"
)

// Clock is the daemon's view of time, injected so tests need no waits.
type Clock interface {
	Now() time.Time
	// At delivers once the clock reaches t (at once if it has). A deadline
	// rather than a duration: the wait does not depend on when the call is
	// made after the decision to wait.
	At(t time.Time) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                  { return time.Now() }
func (realClock) At(t time.Time) <-chan time.Time { return time.After(time.Until(t)) }

// Steps of a run, as passed to Job.
const (
	StepBackup = "backup" // backup and replication to every target
	StepForget = "forget" // the retention policies; only with retention:
	StepPrune  = "prune"  // on the schedule's prune interval
	StepDrill  = "drill"  // on drill.every; records its own result
	// StepStatus reads the repositories after a run for the metrics
	// (snapshot count, replica lag); its failure fails nothing.
	StepStatus = "status"
)

// Job performs one step of a run for cfg. Backup's Outcome is recorded;
// the other steps' is ignored. It must return when ctx is done.
type Job func(ctx context.Context, cfg *app.Config, step string) (Outcome, error)

// Options configure a Daemon.
type Options struct {
	Job      Job
	StateDir string
	Clock    Clock        // default: the real clock
	Log      *slog.Logger // default: discarded
	Metrics  *Metrics     // optional
	// MinBackoff is the first retry delay after a failure, doubled per
	// further failure and capped at the schedule's interval, so a failing
	// application never runs in a tight loop and is retried at latest on
	// its next regular tick. Default one minute.
	MinBackoff time.Duration
}

// Daemon schedules applications. Run it once; Reload from any goroutine.
type Daemon struct {
	opts    Options
	reloads chan []*app.Config

	mu      sync.Mutex
	running map[string]int // app → runs in progress (the tests' overlap check)
	overlap bool
	loops   int // application loops running
}

// New makes a Daemon.
func New(opts Options) *Daemon {
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Minute
	}
	return &Daemon{opts: opts, reloads: make(chan []*app.Config, 1), running: map[string]int{}}
}

// Check says why cfgs cannot be scheduled together: an application
// without app: or schedule:, or two configs with the same app name.
func Check(cfgs []*app.Config) error {
	seen := map[string]string{}
	var errs []error
	for _, c := range cfgs {
		switch {
		case c.App == "":
			errs = append(errs, fmt.Errorf("%s: the daemon needs app: (it names the state file and the application's snapshots)", c.Path))
		case c.Schedule == nil:
			errs = append(errs, fmt.Errorf("%s: no schedule: (e.g. schedule: {every: 4h, jitter: 10m})", c.Path))
		case seen[c.App] != "":
			errs = append(errs, fmt.Errorf("%s: app %q is also configured in %s", c.Path, c.App, seen[c.App]))
		}
		seen[c.App] = c.Path
	}
	return errors.Join(errs...)
}

// Reload replaces the configurations: new applications start, removed
// ones stop after their current run, changed ones use the new config
// from their next run on. Call it only with configs Check accepted.
func (d *Daemon) Reload(cfgs []*app.Config) {
	select {
	case <-d.reloads: // an unapplied reload is superseded
	default:
	}
	d.reloads <- cfgs
}

// worker is one application's loop.
type worker struct {
	update chan *app.Config
	quit   chan struct{}
	done   chan struct{} // closed when the loop has returned
}

// Run schedules cfgs until ctx is done, then waits for the running steps
// to end (they see ctx too) and returns.
func (d *Daemon) Run(ctx context.Context, cfgs []*app.Config) error {
	if err := Check(cfgs); err != nil {
		return err
	}
	var wg sync.WaitGroup
	workers := map[string]*worker{}
	stopping := map[string]*worker{} // removed, perhaps still running
	apply := func(cfgs []*app.Config) {
		want := map[string]*app.Config{}
		for _, c := range cfgs {
			want[c.App] = c
		}
		for name, w := range workers {
			if _, ok := want[name]; !ok {
				d.opts.Log.Info("application removed; stopping after its current run", "app", name)
				close(w.quit)
				delete(workers, name)
				stopping[name] = w
			}
		}
		for name, c := range want {
			if w, ok := workers[name]; ok {
				select {
				case <-w.update:
				default:
				}
				w.update <- c
				continue
			}
			w := &worker{update: make(chan *app.Config, 1), quit: make(chan struct{}), done: make(chan struct{})}
			workers[name] = w
			old := stopping[name]
			delete(stopping, name)
			wg.Go(func() {
				defer close(w.done)
				if old != nil {
					<-old.done // removed and added back: never two runs at once
				}
				d.loop(ctx, c, w)
			})
		}
	}
	apply(cfgs)
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case cfgs := <-d.reloads:
			apply(cfgs)
		}
	}
}

// loop runs one application until ctx is done or it is removed.
func (d *Daemon) loop(ctx context.Context, cfg *app.Config, w *worker) {
	d.mu.Lock()
	d.loops++
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.loops--
		d.mu.Unlock()
	}()
	log := d.opts.Log.With("app", cfg.App)
	st, err := ReadState(d.opts.StateDir, cfg.App)
	if err != nil {
		log.Warn("starting from an empty state", "err", err)
	}
	st.App = cfg.App
	d.opts.Metrics.Restore(st)
	started := d.opts.Clock.Now()
	for {
		now := d.opts.Clock.Now()
		next := d.next(cfg, st, started)
		st.Config, st.NextRun = cfg.Path, next
		d.save(log, st)
		d.opts.Metrics.planned(st)
		log.Info("next run", "at", next.Format(time.RFC3339), "in", next.Sub(now).Round(time.Second))
		select {
		case <-ctx.Done():
			return
		case <-w.quit:
			return
		case cfg = <-w.update:
			log = d.opts.Log.With("app", cfg.App)
			log.Info("configuration reloaded", "config", cfg.Path)
			continue
		case <-d.opts.Clock.At(next):
		}
		st = d.run(ctx, log, cfg, st)
		if ctx.Err() != nil {
			return
		}
	}
}

// next is when cfg's next run is due. A run whose time passed while the
// daemon was down is due now; after a failure, the retry comes after the
// backoff or at the next regular time, whichever is first.
func (d *Daemon) next(cfg *app.Config, st State, started time.Time) time.Time {
	sc := cfg.Schedule
	if st.LastAttempt.IsZero() {
		// Never ran: spread applications over the jitter.
		return started.Add(sc.Offset(cfg.App))
	}
	due := sc.Next(cfg.App, st.LastAttempt)
	if st.LastResult == "failed" && st.Failures > 0 {
		backoff := d.opts.MinBackoff << min(st.Failures-1, 20)
		if iv := sc.Interval(); backoff > iv {
			backoff = iv
		}
		if retry := st.LastAttempt.Add(st.LastDuration).Add(backoff); retry.Before(due) {
			due = retry
		}
	}
	return due
}

// run performs one run: backup, then forget when the config has a
// retention policy (which also thins the replicas with their own), then prune when it is due. A failing step ends the
// run; its error is the run's.
func (d *Daemon) run(ctx context.Context, log *slog.Logger, cfg *app.Config, st State) State {
	d.enter(cfg.App)
	defer d.leave(cfg.App)
	start := d.opts.Clock.Now()
	st.LastAttempt = start
	d.save(log, st) // a crash mid-run still counts as an attempt
	log.Info("run started")
	out, err := d.step(ctx, log, cfg, StepBackup)
	if err == nil && cfg.Retention != nil {
		_, err = d.step(ctx, log, cfg, StepForget)
	}
	if err == nil && cfg.Schedule.Prune > 0 && start.Sub(st.LastPrune) >= time.Duration(cfg.Schedule.Prune) {
		if _, err = d.step(ctx, log, cfg, StepPrune); err == nil {
			st.LastPrune = start
		}
	}
	if err == nil && cfg.Drill != nil && cfg.Drill.Every > 0 && start.Sub(st.LastDrill) >= time.Duration(cfg.Drill.Every) {
		// A failed drill does not fail the run (the snapshot is written and
		// replicated); it has its own result and metric, and waits for the
		// next interval rather than repeating at every tick.
		st.LastDrill = start
		if _, derr := d.step(ctx, log, cfg, StepDrill); derr != nil {
			log.Error("drill failed", "err", derr)
		}
		if dr, derr := ReadDrill(d.opts.StateDir, cfg.App); derr == nil && dr != nil {
			d.opts.Metrics.drilled(cfg.App, *dr)
		}
	}
	st.LastDuration = d.opts.Clock.Now().Sub(start)
	if ctx.Err() == nil {
		if sout, serr := d.opts.Job(ctx, cfg, StepStatus); serr == nil || sout.Snapshots > 0 {
			d.opts.Metrics.repositories(cfg.App, sout)
		} else {
			log.Warn("cannot read the repositories for the metrics", "err", serr)
		}
	}
	if err != nil {
		st.LastResult, st.LastError = "failed", err.Error()
		st.Failures++
		log.Error("run failed", "err", err, "failures", st.Failures, "duration", st.LastDuration.Round(time.Millisecond))
	} else {
		st.LastResult, st.LastError, st.Failures = "ok", "", 0
		st.LastSuccess, st.Outcome = start, out
		log.Info("run finished", "snapshot", out.Snapshot, "duration", st.LastDuration.Round(time.Millisecond),
			"bytes_read", out.BytesRead, "bytes_added", out.BytesAdded)
	}
	d.opts.Metrics.finished(st)
	d.save(log, st)
	return st
}

func (d *Daemon) step(ctx context.Context, log *slog.Logger, cfg *app.Config, step string) (Outcome, error) {
	out, err := d.opts.Job(ctx, cfg, step)
	if err != nil {
		return out, fmt.Errorf("%s: %w", step, err)
	}
	log.Debug("step done", "step", step)
	return out, nil
}

func (d *Daemon) save(log *slog.Logger, st State) {
	if err := WriteState(d.opts.StateDir, st); err != nil {
		log.Error("cannot record state; cairn status will show old data", "err", err)
	}
}

func (d *Daemon) enter(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.running[name]++
	if d.running[name] > 1 {
		d.overlap = true
	}
}

func (d *Daemon) leave(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.running[name]--
}

func (d *Daemon) loopCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.loops
}

// Overlapped reports whether two runs of one application ever ran at
// once (they must not; tests check it).
func (d *Daemon) Overlapped() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.overlap
}
