package app

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/cairn-backup/cairn/sources/command"
)

// hookEnv is what a hook is told about the run, as CAIRN_* variables: a
// script can log, notify or decide (e.g. skip "activate" for a space that
// was never restored) without parsing cairn's output.
type hookEnv struct {
	Phase     string // "backup" or "restore"
	App       string
	Snapshot  string // restore: the snapshot being restored
	Component string // component hooks: the component's name
	Restored  []string
}

// vars returns the variables for hook (before, after, on_failure); failed
// and cause are set for on_failure.
func (e hookEnv) vars(hook, failed string, cause error) []string {
	v := []string{
		"CAIRN_PHASE=" + e.Phase,
		"CAIRN_HOOK=" + hook,
		"CAIRN_APP=" + e.App,
		"CAIRN_SNAPSHOT=" + e.Snapshot,
		"CAIRN_COMPONENT=" + e.Component,
	}
	if e.Phase == "restore" {
		v = append(v, "CAIRN_RESTORED="+strings.Join(e.Restored, ","))
	}
	if cause != nil {
		v = append(v, "CAIRN_ERROR="+cause.Error(), "CAIRN_FAILED_COMPONENT="+failed)
	}
	return v
}

// run runs one hook (nothing if argv is empty) with the run's variables.
// A failing hook's error carries the end of its output; the caller names
// the hook.
func (e hookEnv) run(ctx context.Context, hook string, argv []string, failed string, cause error) error {
	if len(argv) == 0 {
		return nil
	}
	env := append(os.Environ(), e.vars(hook, failed, cause)...)
	return command.Run(ctx, command.Spec{Argv: argv, Env: env, AllowEmpty: true})
}

// runNamed is run with the error prefixed by the hook's name.
func (e hookEnv) runNamed(ctx context.Context, hook string, argv []string, failed string, cause error) error {
	if err := e.run(ctx, hook, argv, failed, cause); err != nil {
		return fmt.Errorf("%s hook: %w", hook, err)
	}
	return nil
}

// backupHooks returns the archiver's before, after and on_failure
// functions for hooks h (nil where none is configured).
func (e hookEnv) backupHooks(h PhaseHooks) (before, after func(context.Context) error, onFailure func(context.Context, error) error) {
	if len(h.Before) > 0 {
		before = func(ctx context.Context) error { return e.run(ctx, "before", h.Before, "", nil) }
	}
	if len(h.After) > 0 {
		after = func(ctx context.Context) error { return e.run(ctx, "after", h.After, "", nil) }
	}
	if len(h.OnFailure) > 0 {
		onFailure = func(ctx context.Context, cause error) error {
			return e.run(ctx, "on_failure", h.OnFailure, e.Component, cause)
		}
	}
	return before, after, onFailure
}

// AfterSnapshotFailed runs the application's backup on_failure hook for a
// step after the snapshot was written (replication) that failed: the
// snapshot is good, but the operator's alerting must hear of it all the
// same. It runs after the backup's after hook, which ran when the snapshot
// was done.
func AfterSnapshotFailed(ctx context.Context, cfg *Config, snapshot string, cause error) error {
	env := hookEnv{Phase: "backup", App: cfg.App, Snapshot: snapshot}
	return env.runNamed(context.WithoutCancel(ctx), "on_failure", cfg.Hooks.Phase("backup").OnFailure, "", cause)
}
