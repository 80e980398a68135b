package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/archive"
	"github.com/cairn-backup/cairn/sources/command"
	es "github.com/cairn-backup/cairn/sources/elasticsearch"
	"github.com/cairn-backup/cairn/sources/tree"
)

// Options are what the caller adds to a configured backup.
type Options struct {
	archive.Options
	// Warn receives warnings (a compressed dump, older ES snapshots that
	// could not be deleted); default: dropped.
	Warn func(string)
}

func (c *Component) spec() command.Spec {
	env := append(os.Environ(), c.Env...)
	return command.Spec{Argv: c.Command, Shell: c.Shell, Env: env, AllowEmpty: c.AllowEmpty}
}

func (e *Elasticsearch) config() (es.Config, error) {
	cfg := es.Config{URL: e.URL, Repository: e.Repository, Location: e.Location, Indices: e.Indices,
		AllowPartial: e.AllowPartial, DeleteOlder: e.DeleteOlder, AllowForeignRepository: e.AllowForeignRepository, Username: e.Username, Password: e.Password}
	if e.CACert != "" {
		pem, err := os.ReadFile(e.CACert)
		if err != nil {
			return cfg, fmt.Errorf("elasticsearch cacert: %w", err)
		}
		cfg.CACert = pem
	}
	return cfg, nil
}

// Backup takes the configured application as one snapshot: the global
// backup before hook, then each component in order between its own hooks,
// then the global after hook, which runs whatever happened (on_failure
// first when something failed). A dump command or
// an Elasticsearch snapshot starts only when its turn comes. Older ES
// snapshots are deleted, if configured, only once cairn's snapshot is
// written.
func Backup(ctx context.Context, r *repo.Repository, cfg *Config, opts Options) (*archive.Result, error) {
	warn := opts.Warn
	if warn == nil {
		warn = func(string) {}
	}
	bo := opts.Options
	env := hookEnv{Phase: "backup", App: cfg.App}
	bo.Before, bo.After, bo.OnFailure = env.backupHooks(cfg.Hooks.Phase("backup"))
	if bo.MaxSkew == 0 {
		bo.MaxSkew = time.Duration(cfg.MaxSkew)
	}
	if cfg.App != "" && bo.App == "" {
		bo.App = cfg.App
	}
	var (
		streams  []io.Closer
		captures []*es.Capture
	)
	defer func() {
		for _, s := range streams {
			s.Close()
		}
	}()
	comps := make([]archive.ComponentSource, 0, len(cfg.Components))
	for i := range cfg.Components {
		c := &cfg.Components[i]
		cs := archive.ComponentSource{Name: c.Name}
		cenv := env
		cenv.Component = c.Name
		cs.Before, cs.After, cs.OnFailure = cenv.backupHooks(c.Hooks.Phase("backup"))
		cs.Fixed = c.fixedAt()
		switch c.Kind() {
		case "command":
			cs.Start = CommandSource(c, &streams, warn).Start
		case "elasticsearch":
			cs.Start = func(ctx context.Context) (archive.ComponentSource, error) {
				ec, err := c.Elasticsearch.config()
				if err != nil {
					return archive.ComponentSource{}, err
				}
				cp, err := es.Backup(ctx, ec)
				if err != nil {
					return archive.ComponentSource{}, err
				}
				captures = append(captures, cp)
				meta := cp.Meta()
				meta["url"] = c.Elasticsearch.URL
				return archive.ComponentSource{FS: cp, Source: cp.Source(), Finish: cp.Finish, Meta: meta}, nil
			}
		case "tree":
			cs.Start = func(ctx context.Context) (archive.ComponentSource, error) {
				src, err := tree.Open(c.Tree)
				if err != nil {
					return archive.ComponentSource{}, err
				}
				return archive.ComponentSource{FS: src, Source: src.Root()}, nil
			}
		}
		comps = append(comps, cs)
	}
	res, err := archive.Backup(ctx, r, comps, bo)
	if err != nil {
		return res, err
	}
	for _, cp := range captures {
		if deleted, err := cp.DeleteOlder(ctx); err != nil {
			warn(fmt.Sprintf("could not delete older Elasticsearch snapshots: %v", err))
		} else if len(deleted) > 0 {
			warn(fmt.Sprintf("deleted %d older Elasticsearch snapshots now in cairn", len(deleted)))
		}
	}
	return res, nil
}

// fixedAt maps start_next to when the archiver lets the next component
// start.
func (c *Component) fixedAt() archive.FixedAt {
	switch c.StartNext {
	case "on_first_byte":
		return archive.FixedAtFirstByte
	case "on_snapshot":
		return archive.FixedAtStart
	}
	return archive.FixedAtEnd
}

// StderrTail is the end of a dump command's stderr as kept in the
// manifest: enough for the warnings a dump tool prints, bounded so a
// chatty tool cannot bloat every snapshot.
func StderrTail(b []byte) string {
	const keep = 4 << 10
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return strings.TrimSpace(string(b))
}

// CommandSource is a dump-command component for the archiver: the command
// starts when the component's turn comes, and its stream is added to
// streams, which the caller closes once the backup returns (a backup that
// fails elsewhere never reaches Finish, and the command must not outlive
// it). cmd/cairn's --command flags use it too.
func CommandSource(c *Component, streams *[]io.Closer, warn func(string)) archive.ComponentSource {
	return archive.ComponentSource{Name: c.Name, Start: func(ctx context.Context) (archive.ComponentSource, error) {
		return startCommand(ctx, c, streams, warn)
	}}
}

// startCommand runs a dump command in its configured mode.
func startCommand(ctx context.Context, c *Component, streams *[]io.Closer, warn func(string)) (archive.ComponentSource, error) {
	spec := c.spec()
	switch c.Mode {
	case "dir":
		run, err := privateDumpDir(c.Dir)
		if err != nil {
			return archive.ComponentSource{}, fmt.Errorf("component %s: %w", c.Name, err)
		}
		// Removed when the backup returns, whatever happened: a backup that
		// fails elsewhere never reaches Finish.
		*streams = append(*streams, removeDir(run))
		spec.Clean = true // the run's own directory: cairn's scratch space
		d, err := command.RunToDir(ctx, spec, run)
		if err != nil {
			return archive.ComponentSource{}, err
		}
		if kind, compressed := d.Sniff(); compressed {
			warn(fmt.Sprintf("component %s: %s", c.Name, command.CompressionAdvice(kind)))
		}
		src, err := tree.Open(run)
		if err != nil {
			return archive.ComponentSource{}, err
		}
		// The source is the configured dir, not the run's directory, so the
		// manifest says where dumps of this component are made.
		return archive.ComponentSource{FS: src, Source: filepath.Clean(c.Dir), Meta: d.Meta(),
			Finish: func(context.Context) error { return d.Done() }}, nil
	default:
		var st *command.Stream
		var err error
		if c.Mode == "pipe" {
			st, err = command.StartWithPipe(ctx, spec)
		} else {
			st, err = command.Start(ctx, spec)
		}
		if err != nil {
			return archive.ComponentSource{}, err
		}
		*streams = append(*streams, st)
		meta := st.Meta()
		return archive.ComponentSource{Reader: st, Source: meta[command.MetaCommand], Meta: meta,
			Finish: func(ctx context.Context) error {
				err := st.Wait(ctx)
				maps.Copy(meta, st.Meta())
				if tail := StderrTail(st.Stderr()); tail != "" {
					meta["stderr"] = tail
				}
				if kind, compressed := st.Sniff(); compressed && err == nil {
					warn(fmt.Sprintf("component %s: %s", c.Name, command.CompressionAdvice(kind)))
				}
				return err
			}}, nil
	}
}

// privateDumpDir makes a fresh directory for one run's dump inside parent
// (the config's dir:, created if missing), so no two runs, and no leftover
// of a killed one, can see each other's dump. It takes the parent's
// permission bits (and, through a setgid parent, its group), so a dump
// tool running as another user can write wherever it could write before.
func privateDumpDir(parent string) (string, error) {
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", fmt.Errorf("dump directory: %w", err)
	}
	fi, err := os.Stat(parent)
	if err != nil {
		return "", fmt.Errorf("dump directory: %w", err)
	}
	run, err := os.MkdirTemp(parent, "cairn-run-")
	if err != nil {
		return "", fmt.Errorf("dump directory: %w", err)
	}
	if err := os.Chmod(run, fi.Mode().Perm()|0o700); err != nil {
		return "", errors.Join(fmt.Errorf("dump directory: %w", err), os.Remove(run))
	}
	return run, nil
}

// removeDir removes a run's dump directory when closed.
type removeDir string

func (d removeDir) Close() error { return os.RemoveAll(string(d)) }
