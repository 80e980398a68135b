package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-backup/cairn/app"
	"github.com/cairn-backup/cairn/app/daemon"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// appsFlags name the applications and the state directory, for daemon
// and status.
type appsFlags struct {
	configs   []string
	configDir string
	stateDir  string
}

func (f *appsFlags) register(fl *pflag.FlagSet) {
	// A local --config shadows the global one: these commands take many.
	fl.StringArrayVar(&f.configs, "config", nil, "application config file (repeatable)")
	fl.StringVar(&f.configDir, "config-dir", "", "every *.yaml and *.yml file in this directory (one per application or tenant)")
	fl.StringVar(&f.stateDir, "state-dir", "", "where each application's state file is kept (default $CAIRN_STATE_DIR, /var/lib/cairn as root, else ~/.local/state/cairn)")
}

// load resolves the state directory and reads the configs.
func (f *appsFlags) load() (string, []*app.Config, error) {
	dir, err := stateDir(f.stateDir)
	if err != nil {
		return "", nil, err
	}
	cfgs, err := loadConfigs(f.configs, f.configDir)
	return dir, cfgs, err
}

type daemonFlags struct {
	appsFlags
	listen string
}

const daemonLong = `Run each application's schedule until stopped: at each tick a backup of the
application (which replicates to each replicate: target), then its retention
policies (forget), prune when the schedule's prune interval has passed, and
a restore drill of the new snapshot when drill.every has passed.

Each config file needs app: and a schedule: block:

  schedule:
    every: 4h          # or cron: "0 */4 * * *"
    jitter: 10m        # a fixed offset per application, spreading tenants
    rpo: 6h            # newest snapshot older than this: status exits 1
    prune: 168h        # prune once a week (default: never)
  drill:
    every: 168h        # a restore drill of the new snapshot (see cairn help drill)

One run at a time per application. A run whose time passed while the daemon
was down starts at once. A failed run is retried after 1 minute, then 2, 4 …
up to the schedule's interval, never in a tight loop. Each step runs as a
child cairn process (backup --config F, forget --config F, prune), so hooks,
locks and replication behave as from the command line.

SIGHUP re-reads the configs: a changed schedule applies from the next run,
new applications start, removed ones stop after their current run; a config
with errors is reported and the running set is kept. SIGTERM or SIGINT
aborts the running steps (their children get SIGTERM, which writes no
snapshot) and exits.

The state of each application (last attempt, result, next run) is kept in
--state-dir as APP.json, which 'cairn status' reads. --listen serves
Prometheus metrics on /metrics and a liveness check on /healthz.`

func newDaemonCmd(g *globals) *cobra.Command {
	var f daemonFlags
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run applications' backups, retention, prune and restore drills on their schedules",
		Long:  daemonLong,
		Example: `  cairn daemon --config /etc/cairn/alm.yaml --config /etc/cairn/pcb.yaml
  cairn daemon --config-dir /etc/cairn/apps --listen 127.0.0.1:9750 --log-format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDaemon(cmd.Context(), g, f)
		},
	}
	fl := cmd.Flags()
	f.register(fl)
	fl.StringVar(&f.listen, "listen", "", "serve /metrics and /healthz on this address (e.g. 127.0.0.1:9750; default: off)")
	return cmd
}

// stateDir resolves --state-dir.
func stateDir(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if d := os.Getenv("CAIRN_STATE_DIR"); d != "" {
		return d, nil
	}
	if os.Geteuid() == 0 {
		return "/var/lib/cairn", nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "cairn"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no state directory: pass --state-dir or set CAIRN_STATE_DIR (%w)", err)
	}
	return filepath.Join(home, ".local", "state", "cairn"), nil
}

// loadConfigs reads the configs named by --config and --config-dir.
func loadConfigs(files []string, dir string) ([]*app.Config, error) {
	paths := slices.Clone(files)
	if dir != "" {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("config dir: %w", err)
		}
		for _, e := range ents {
			if n := e.Name(); !e.IsDir() && !strings.HasPrefix(n, ".") && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
				paths = append(paths, filepath.Join(dir, n))
			}
		}
	}
	if len(paths) == 0 {
		return nil, errors.New("no applications: pass --config FILE (repeatable) or --config-dir DIR")
	}
	var cfgs []*app.Config
	var errs []error
	for _, p := range paths {
		c, err := app.Load(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cfgs = append(cfgs, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cfgs, daemon.Check(cfgs)
}

func runDaemon(ctx context.Context, g *globals, f daemonFlags) error {
	log := g.log
	dir, cfgs, err := f.load()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the cairn executable: %w", err)
	}
	job := &childJob{exe: self, globals: g.childArgs(), log: log, stateDir: dir}
	metrics := daemon.NewMetrics()
	d := daemon.New(daemon.Options{Job: job.run, StateDir: dir, Log: log, Metrics: metrics})
	for _, c := range cfgs {
		if st, err := daemon.ReadState(dir, c.App); err == nil {
			metrics.Restore(st)
		}
		if dr, err := daemon.ReadDrill(dir, c.App); err == nil {
			metrics.RestoreDrill(c.App, dr)
		}
	}
	if f.listen != "" {
		ln, err := net.Listen("tcp", f.listen)
		if err != nil {
			return fmt.Errorf("--listen: %w", err)
		}
		srv := &http.Server{Handler: metrics.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		log.Info("serving metrics", "addr", ln.Addr().String())
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				cfgs, err := loadConfigs(f.configs, f.configDir)
				if err != nil {
					log.Error("reload failed; keeping the running configuration", "err", err)
					continue
				}
				log.Info("reloading", "applications", len(cfgs))
				d.Reload(cfgs)
			}
		}
	}()
	log.Info("daemon started", "applications", len(cfgs), "state_dir", dir)
	err = d.Run(ctx, cfgs)
	log.Info("daemon stopped")
	return err
}

// childArgs are the global flags a child cairn process needs to open
// repositories the way this one would.
func (g *globals) childArgs() []string {
	var a []string
	if g.caFile != "" {
		a = append(a, "--cacert", g.caFile)
	}
	if g.cacheDir != "" {
		a = append(a, "--cache-dir", g.cacheDir)
	}
	if g.noCache {
		a = append(a, "--no-cache")
	}
	if g.connections != 0 {
		a = append(a, "--connections", fmt.Sprint(g.connections))
	}
	if g.memoryFlag != "" {
		a = append(a, "--memory", g.memoryFlag)
	}
	return a
}

// childJob runs a step as a child cairn process: a run's memory is
// returned when it ends, a crash in a dump or a bug stays out of the
// daemon, and hooks, locks and replication behave exactly as they do
// from the command line.
type childJob struct {
	exe      string
	globals  []string
	log      *slog.Logger
	stateDir string // where drill records its result
}

// stopGrace is how long a child has to abort cleanly after SIGTERM
// before it is killed (its lock then expires on its own).
const stopGrace = 30 * time.Second

func (j *childJob) run(ctx context.Context, cfg *app.Config, step string) (daemon.Outcome, error) {
	args := append(slices.Clone(j.globals), "--config", cfg.Path, "--json", "--quiet", step)
	if step == daemon.StepDrill || step == daemon.StepStatus {
		args = append(args, "--state-dir", j.stateDir)
	}
	cmd := exec.CommandContext(ctx, j.exe, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &tailWriter{buf: &stderr, max: 16 << 10}
	err := cmd.Run()
	if s := strings.TrimSpace(stderr.String()); s != "" {
		j.log.Info("step output", "app", cfg.App, "step", step, "stderr", s)
	}
	var out daemon.Outcome
	if step == daemon.StepBackup {
		var b backupJSON
		if json.Unmarshal(stdout.Bytes(), &b) == nil && b.ID != "" {
			out = daemon.Outcome{Snapshot: b.ShortID, SnapshotTime: b.Time, BytesRead: int64(b.Size),
				BytesAdded: int64(b.AddedBytes), Skew: time.Duration(b.SkewSeconds * float64(time.Second))}
		}
	}
	if step == daemon.StepStatus {
		// status exits 5 when the app needs attention; its report still
		// holds the counts.
		var st []statusJSON
		if json.Unmarshal(stdout.Bytes(), &st) == nil && len(st) == 1 {
			out.Snapshots, out.ReplicaLag = st[0].Snapshots, map[string]time.Duration{}
			if b := st[0].RepositoryBytes; b != nil {
				out.RepositoryBytes = int64(*b)
			}
			for _, rp := range st[0].Replicas {
				if rp.LagSeconds != nil {
					out.ReplicaLag[rp.Repository] = secs(*rp.LagSeconds)
				}
			}
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return out, fmt.Errorf("aborted: %w", ctx.Err())
		}
		return out, fmt.Errorf("%w: %s", err, lastLine(stderr.String()))
	}
	return out, nil
}

// lastLine is the last non-empty line of s: cairn's error message.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimPrefix(lines[len(lines)-1], "cairn: ")
}

// tailWriter keeps at most about max bytes, the newest: a chatty child
// cannot grow the daemon without bound.
type tailWriter struct {
	buf *bytes.Buffer
	max int
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if over := w.buf.Len() - w.max; over > 0 {
		w.buf.Next(over)
	}
	return len(p), nil
}
