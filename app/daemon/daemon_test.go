package daemon

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/app"
	"github.com/cairn-backup/cairn/internal/poll"
)

// fakeClock moves only when the test advances it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	changed chan struct{} // signalled when a waiter is added
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC), changed: make(chan struct{}, 100)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) At(t time.Time) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if !t.After(c.now) {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{t, ch})
	select {
	case c.changed <- struct{}{}:
	default:
	}
	return ch
}

// Advance moves the clock and fires the waiters that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// fakeJob records the steps it is asked to run and fails on demand.
type fakeJob struct {
	mu    sync.Mutex
	calls chan string // "app/step"
	fail  map[string]error
}

func newFakeJob() *fakeJob {
	return &fakeJob{calls: make(chan string, 100), fail: map[string]error{}}
}

func (j *fakeJob) run(ctx context.Context, cfg *app.Config, step string) (Outcome, error) {
	if step == StepStatus { // after every run, for the metrics only
		return Outcome{Snapshots: 3}, nil
	}
	j.mu.Lock()
	err := j.fail[cfg.App]
	j.mu.Unlock()
	j.calls <- cfg.App + "/" + step
	return Outcome{Snapshot: "abc", BytesRead: 10, BytesAdded: 5}, err
}

func (j *fakeJob) setFail(app string, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.fail[app] = err
}

func expectCall(t *testing.T, j *fakeJob, want string) {
	t.Helper()
	select {
	case got := <-j.calls:
		if got != want {
			t.Fatalf("step %s, want %s", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no step %s within 10 s", want)
	}
}

func expectNoCall(t *testing.T, j *fakeJob) {
	t.Helper()
	select {
	case got := <-j.calls:
		t.Fatalf("unexpected step %s", got)
	default:
	}
}

// waitPlanned waits until app's state names next as its next run: the
// loop is then waiting on the clock.
func waitPlanned(t *testing.T, c *fakeClock, dir, name string, next time.Time) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		st, err := ReadState(dir, name)
		if err == nil && st.NextRun.Equal(next) {
			c.mu.Lock()
			n := len(c.waiters)
			c.mu.Unlock()
			if n > 0 {
				return
			}
		}
		select {
		case <-c.changed:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%s: next run never planned at %s (state %+v, err %v)", name, next, st, err)
		}
	}
}

func config(t *testing.T, name, schedule string) *app.Config {
	t.Helper()
	cfg, err := app.Parse(name+".yaml", []byte("repository: /r\napp: "+name+"\nschedule: "+schedule+
		"\nretention: {keep_last: 3}\ncomponents:\n  - {name: files, tree: /srv}\n"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func start(t *testing.T, d *Daemon, cfgs ...*app.Config) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx, cfgs) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return within 10 s of its context ending")
		}
	}
}

func TestScheduleRunsAndRecords(t *testing.T) {
	clk, job, dir := newFakeClock(), newFakeJob(), t.TempDir()
	m := NewMetrics()
	d := New(Options{Job: job.run, StateDir: dir, Clock: clk, Metrics: m})
	stop := start(t, d, config(t, "alm", "{every: 4h}"))
	defer stop()

	// Never ran: due at once; backup then forget (retention is set).
	t0 := clk.Now()
	expectCall(t, job, "alm/backup")
	expectCall(t, job, "alm/forget")
	waitPlanned(t, clk, dir, "alm", t0.Add(4*time.Hour))
	st, _ := ReadState(dir, "alm")
	if st.LastResult != "ok" || !st.LastSuccess.Equal(t0) || st.Outcome.BytesAdded != 5 {
		t.Errorf("state after the first run: %+v", st)
	}

	clk.Advance(4*time.Hour - time.Second)
	expectNoCall(t, job)
	clk.Advance(time.Second)
	expectCall(t, job, "alm/backup")
	expectCall(t, job, "alm/forget")
	waitPlanned(t, clk, dir, "alm", t0.Add(8*time.Hour))
	if d.Overlapped() {
		t.Error("two runs overlapped")
	}
}

func TestFailureBacksOff(t *testing.T) {
	clk, job, dir := newFakeClock(), newFakeJob(), t.TempDir()
	job.setFail("alm", errors.New("pg_dump: connection refused"))
	d := New(Options{Job: job.run, StateDir: dir, Clock: clk, MinBackoff: time.Minute, Metrics: NewMetrics()})
	stop := start(t, d, config(t, "alm", "{every: 10m}"))
	defer stop()

	t0 := clk.Now()
	// Retries after 1, 2, 4 minutes, then at the interval (10 min), never
	// sooner: a failing application does not run in a tight loop.
	at := t0
	for i, wait := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute} {
		expectCall(t, job, "alm/backup")
		expectNoCall(t, job) // forget does not run after a failed backup
		want := at.Add(wait)
		waitPlanned(t, clk, dir, "alm", want)
		st, _ := ReadState(dir, "alm")
		if st.Failures != i+1 || st.LastResult != "failed" || !strings.Contains(st.LastError, "connection refused") {
			t.Fatalf("after failure %d: %+v", i+1, st)
		}
		clk.Advance(wait - time.Second)
		expectNoCall(t, job)
		clk.Advance(time.Second)
		at = want
	}
	job.setFail("alm", nil)
	expectCall(t, job, "alm/backup")
	expectCall(t, job, "alm/forget")
	waitPlanned(t, clk, dir, "alm", at.Add(10*time.Minute))
	if st, _ := ReadState(dir, "alm"); st.Failures != 0 || st.LastResult != "ok" || st.LastError != "" {
		t.Errorf("after the good run: %+v", st)
	}
}

func TestOverdueAfterDowntimeRunsAtOnce(t *testing.T) {
	clk, job, dir := newFakeClock(), newFakeJob(), t.TempDir()
	// The daemon was down: the last run was 5 hours ago on a 4-hour schedule.
	if err := WriteState(dir, State{App: "alm", LastAttempt: clk.Now().Add(-5 * time.Hour), LastResult: "ok"}); err != nil {
		t.Fatal(err)
	}
	// The other one ran an hour ago: it waits 3 more hours.
	if err := WriteState(dir, State{App: "es", LastAttempt: clk.Now().Add(-time.Hour), LastResult: "ok"}); err != nil {
		t.Fatal(err)
	}
	d := New(Options{Job: job.run, StateDir: dir, Clock: clk})
	stop := start(t, d, config(t, "alm", "{every: 4h}"), config(t, "es", "{every: 4h}"))
	defer stop()
	expectCall(t, job, "alm/backup")
	expectCall(t, job, "alm/forget")
	waitPlanned(t, clk, dir, "es", clk.Now().Add(3*time.Hour))
	expectNoCall(t, job)
}

func TestReload(t *testing.T) {
	clk, job, dir := newFakeClock(), newFakeJob(), t.TempDir()
	d := New(Options{Job: job.run, StateDir: dir, Clock: clk})
	stop := start(t, d, config(t, "alm", "{every: 4h}"))
	defer stop()
	t0 := clk.Now()
	expectCall(t, job, "alm/backup")
	expectCall(t, job, "alm/forget")
	waitPlanned(t, clk, dir, "alm", t0.Add(4*time.Hour))

	// A shorter interval takes effect for the next run; a new application
	// starts at once.
	d.Reload([]*app.Config{config(t, "alm", "{every: 1h}"), config(t, "pcb", "{every: 1h}")})
	expectCall(t, job, "pcb/backup")
	expectCall(t, job, "pcb/forget")
	waitPlanned(t, clk, dir, "alm", t0.Add(time.Hour))

	// Removing alm stops it: an hour later only pcb runs.
	d.Reload([]*app.Config{config(t, "pcb", "{every: 1h}")})
	waitPlanned(t, clk, dir, "pcb", t0.Add(time.Hour))
	poll.Until(t, "one loop left after removing one of two", func() bool { return d.loopCount() == 1 })
	clk.Advance(time.Hour)
	expectCall(t, job, "pcb/backup")
	expectCall(t, job, "pcb/forget")
	waitPlanned(t, clk, dir, "pcb", t0.Add(2*time.Hour))
	expectNoCall(t, job)
}

func TestStopAbortsTheRunningStep(t *testing.T) {
	clk, dir := newFakeClock(), t.TempDir()
	started := make(chan struct{})
	job := func(ctx context.Context, cfg *app.Config, step string) (Outcome, error) {
		close(started)
		<-ctx.Done() // a long dump, aborted
		return Outcome{}, ctx.Err()
	}
	d := New(Options{Job: job, StateDir: dir, Clock: clk})
	stop := start(t, d, config(t, "alm", "{every: 4h}"))
	<-started
	stop() // fails the test unless Run returns within the bound
	st, _ := ReadState(dir, "alm")
	if st.LastResult != "failed" || !strings.Contains(st.LastError, "context canceled") {
		t.Errorf("an aborted run is recorded as failed: %+v", st)
	}
}

func TestCheck(t *testing.T) {
	noSched, err := app.Parse("x.yaml", []byte("repository: /r\napp: x\ncomponents:\n  - {name: files, tree: /srv}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfgs []*app.Config
		want string
	}{
		{"no schedule", []*app.Config{noSched}, "no schedule"},
		{"same app twice", []*app.Config{config(t, "a", "{every: 1h}"), config(t, "a", "{every: 2h}")}, "also configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.cfgs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestDrillOnItsSchedule(t *testing.T) {
	clk, job, dir := newFakeClock(), newFakeJob(), t.TempDir()
	cfg, err := app.Parse("alm.yaml", []byte("repository: /r\napp: alm\nschedule: {every: 1h}\ndrill: {every: 3h}\ncomponents:\n  - {name: files, tree: /srv}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := New(Options{Job: job.run, StateDir: dir, Clock: clk})
	stop := start(t, d, cfg)
	defer stop()
	t0 := clk.Now()
	for i, drill := range []bool{true, false, false, true} {
		expectCall(t, job, "alm/backup") // no retention: no forget
		if drill {
			expectCall(t, job, "alm/drill")
		}
		next := t0.Add(time.Duration(i+1) * time.Hour)
		waitPlanned(t, clk, dir, "alm", next)
		expectNoCall(t, job)
		clk.Advance(time.Hour)
	}
}
