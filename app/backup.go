package app

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
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
	return command.Spec{Argv: c.Command, Shell: c.Shell, Env: env, AllowEmpty: c.AllowEmpty, Clean: c.Clean}
}

func (e *Elasticsearch) config() (es.Config, error) {
	cfg := es.Config{URL: e.URL, Repository: e.Repository, Location: e.Location, Indices: e.Indices,
		AllowPartial: e.AllowPartial, DeleteOlder: e.DeleteOlder, Username: e.Username, Password: e.Password}
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
		d, err := command.RunToDir(ctx, spec, c.Dir)
		if err != nil {
			return archive.ComponentSource{}, err
		}
		if kind, compressed := d.Sniff(); compressed {
			warn(fmt.Sprintf("component %s: %s", c.Name, command.CompressionAdvice(kind)))
		}
		src, err := tree.Open(c.Dir)
		if err != nil {
			return archive.ComponentSource{}, err
		}
		return archive.ComponentSource{FS: src, Source: src.Root(), Meta: d.Meta(),
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
