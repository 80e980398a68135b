// Command cairn backs up applications — a database dump, a search index, a
// file repository — into an encrypted, deduplicating repository, and
// restores them.
//
// This package only parses flags and prints; the work happens in repo,
// sources and store.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"syscall"
	"time"

	"github.com/cairn-backup/cairn/app"
	"github.com/cairn-backup/cairn/repo"
	"github.com/spf13/cobra"
)

// Exit codes scripts can rely on.
const (
	exitOK      = 0
	exitFailure = 1
	exitPartial = 3 // snapshot written, some files could not be read
	// exitWrittenThenFailed: the snapshot is written and complete, but a
	// step after it (an after hook, replication) failed; a retry would
	// take a duplicate.
	exitWrittenThenFailed = 4
	exitNoRepo            = 10 // no repository at that location
	exitLocked            = 11
	exitBadPassword       = 12
	// exitRunning: another backup or restore of the same application
	// holds its run lock (see --wait).
	exitRunning = 13
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// globals are the flags every command shares.
type globals struct {
	repo         string
	passwordFile string
	json         bool
	quiet        bool
	cpuProfile   string
	traceFile    string
	memProfile   string
	caFile       string
	configPath   string
	config       *app.Config // loaded from --config, if given
	sets         []string    // --set KEY=VALUE overrides of the config
	connections  int
	createBucket bool
	noCache      bool
	cacheDir     string
	// memoryFlag is --memory (env CAIRN_MEMORY); mem is the garbage
	// collector's limit it sets with the indexes loaded (memory.go).
	memoryFlag string
	mem        memoryLimit
	// progressInterval is how often progress is printed when stderr is
	// not a terminal, and with --json.
	progressInterval time.Duration
	// abort cancels the running command's context with a cause (a lost
	// lock); run reports the cause instead of "context canceled".
	abort    context.CancelCauseFunc
	abortCtx context.Context
	stdout   io.Writer
	stderr   io.Writer
	stdin    io.Reader
	// log carries warnings and notices to stderr (--log-format).
	log       *slog.Logger
	logOut    *logSink
	logFormat string
}

// exitError carries a specific exit code up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func newRootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "cairn",
		Short:         "Encrypted, deduplicating backups of whole applications",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	pf := root.PersistentFlags()
	pf.StringVarP(&g.repo, "repo", "r", os.Getenv("CAIRN_REPOSITORY"), "repository location (env CAIRN_REPOSITORY)")
	pf.StringVar(&g.passwordFile, "password-file", "", "read the password from this file (env CAIRN_PASSWORD_FILE, CAIRN_PASSWORD)")
	pf.BoolVar(&g.json, "json", false, "print machine-readable JSON on stdout")
	pf.BoolVarP(&g.quiet, "quiet", "q", false, "print no progress")
	pf.StringVar(&g.caFile, "cacert", os.Getenv("CAIRN_CACERT"), "PEM file of CA certificates to trust for an https S3 endpoint (env CAIRN_CACERT)")
	pf.IntVar(&g.connections, "connections", 0, "parallel requests to an S3 repository (default 8)")
	pf.BoolVar(&g.noCache, "no-cache", false, "do not keep a local cache of a remote repository's index and manifests")
	pf.StringVar(&g.cacheDir, "cache-dir", "", "directory for the cache of remote repositories (default $CAIRN_CACHE_DIR, else the user cache directory)")
	pf.StringVar(&g.memoryFlag, "memory", os.Getenv("CAIRN_MEMORY"), "memory a command may use besides the repository's index, e.g. 48MiB or 1GiB (env CAIRN_MEMORY): the garbage collector's limit, and what backup and copy hold in packs and check --read-data in workers (defaults: backup and copy 80MiB, 112MiB to S3; restore and dump 64MiB; check 48MiB, with --read-data 72MiB at 2 cores; prune 56MiB)")
	pf.DurationVar(&g.progressInterval, "progress-interval", defaultProgressInterval, "print progress this often when stderr is not a terminal (logs, cron, systemd) and, as JSON lines, with --json")
	pf.StringVar(&g.logFormat, "log-format", "", "warnings, notices and the daemon's log on stderr: text or json (default text)")
	pf.StringVar(&g.configPath, "config", os.Getenv("CAIRN_CONFIG"), "application config file, cairn.yaml (env CAIRN_CONFIG)")
	pf.StringArrayVar(&g.sets, "set", nil, "override a key of the config file for this run: KEY=VALUE, KEY a dotted path (components.NAME.KEY), VALUE YAML (repeatable)")
	pf.StringVar(&g.cpuProfile, "cpu-profile", "", "write a CPU profile to this file (for performance work)")
	_ = pf.MarkHidden("cpu-profile")
	pf.StringVar(&g.traceFile, "trace", "", "write an execution trace to this file (for performance work: go tool trace -pprof=sync shows where goroutines wait)")
	_ = pf.MarkHidden("trace")
	pf.StringVar(&g.memProfile, "mem-profile", "", "write a heap profile (every allocation sampled) to this file at exit (for performance work)")
	_ = pf.MarkHidden("mem-profile")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if g.quiet && !g.json && !printsData[cmd.Name()] {
			// -q: a command that reports what it did prints nothing when
			// it succeeds; errors and warnings still go to stderr.
			g.stdout = io.Discard
		}
		log, err := newLogger(g.logOut, g.logFormat, cmd.Name() != "daemon")
		if err != nil {
			return err
		}
		g.log = log
		g.abortCtx, g.abort = context.WithCancelCause(cmd.Context())
		cmd.SetContext(g.abortCtx)
		if err := g.loadConfig(); err != nil {
			return err
		}
		if _, err := g.useMemory(defaultMemory); err != nil {
			return err
		}
		if g.memProfile != "" {
			runtime.MemProfileRate = 1
		}
		if g.traceFile != "" {
			f, err := os.Create(g.traceFile)
			if err != nil {
				return err
			}
			if err := trace.Start(f); err != nil {
				return err
			}
		}
		if g.cpuProfile == "" {
			return nil
		}
		f, err := os.Create(g.cpuProfile)
		if err != nil {
			return err
		}
		return pprof.StartCPUProfile(f)
	}
	root.PersistentPostRun = func(*cobra.Command, []string) {
		if g.cpuProfile != "" {
			pprof.StopCPUProfile()
		}
		if g.traceFile != "" {
			trace.Stop()
		}
		if g.memProfile != "" {
			if f, err := os.Create(g.memProfile); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				_ = f.Close()
			}
		}
	}
	root.AddCommand(
		newInitCmd(g),
		newBackupCmd(g),
		newSnapshotsCmd(g),
		newLsCmd(g),
		newRestoreCmd(g),
		newDumpCmd(g),
		newCheckCmd(g),
		newStatsCmd(g),
		newConfigCmd(g),
		newCopyCmd(g),
		newRepairCmd(g),
		newKeyCmd(g),
		newForgetCmd(g),
		newPruneCmd(g),
		newDaemonCmd(g),
		newStatusCmd(g),
		newDrillCmd(g),
		newConfigHelpTopic(),
	)
	return root
}

// printsData are the commands whose output is what was asked for (a
// dump, a listing, figures), printed with -q too.
var printsData = map[string]bool{"dump": true, "ls": true, "snapshots": true, "stats": true, "status": true, "daemon": true}

// run executes the CLI and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	out := &countingWriter{w: stdout}
	g := &globals{stdout: out, stderr: stderr, stdin: stdin, logOut: &logSink{w: stderr}}
	g.log, _ = newLogger(g.logOut, "", true)
	root := newRootCmd(g)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	if g.abortCtx != nil {
		if cause := context.Cause(g.abortCtx); cause != nil && !errors.Is(err, cause) && errors.Is(cause, repo.ErrLockLost) {
			err = fmt.Errorf("%w (%w)", cause, err)
		}
	}
	code := exitCode(err)
	fmt.Fprintf(stderr, "cairn: %v\n", err)
	if g.json && out.n == 0 {
		// A script that asked for JSON gets JSON on stdout, also when
		// the command failed before it had anything to report.
		_ = printJSON(stdout, errorJSON{Error: err.Error(), ExitCode: code})
	}
	return code
}

// countingWriter counts what went through, so run knows whether a command
// already printed its --json result.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// exitCode maps errors to exit codes in one place.
func exitCode(err error) int {
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, repo.ErrNoRepository):
		return exitNoRepo
	case errors.Is(err, repo.ErrRunInProgress):
		return exitRunning
	case errors.Is(err, repo.ErrLocked):
		return exitLocked
	case errors.Is(err, repo.ErrWrongPassword):
		return exitBadPassword
	}
	return exitFailure
}

// ownProcess is true when this process runs one command line (main, or a
// test's re-executed binary), so a command may set process-wide runtime
// knobs such as the garbage collector's; in-process tests leave it false.
var ownProcess bool

func main() {
	os.Exit(runMain())
}

// runMain runs the command line with SIGINT and SIGTERM cancelling the
// context: a job stops at its next check, writes nothing that looks
// complete, and the exit code is non-zero. The process tests' re-executed
// binary goes through here too.
func runMain() int {
	ownProcess = true
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
}
