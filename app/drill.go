package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo"
	es "github.com/cairn-backup/cairn/sources/elasticsearch"
)

// Drill is a `drill:` block: how `cairn drill` proves a snapshot can be
// restored, without touching the live application.
type Drill struct {
	// Every is how often `cairn daemon` runs a drill of the newest
	// snapshot; zero: never (run cairn drill by hand or from a timer).
	Every Duration `yaml:"every"`
	// Scratch is the directory the scratch area is made in (default the
	// system's temporary directory). It must have room for the restored
	// trees and dumps.
	Scratch string `yaml:"scratch"`
	// Components restore stream components into a scratch database instead
	// of a file: setup makes it, restore reads the dump on stdin, cleanup
	// drops it, whatever happened before.
	Components map[string]DrillComponent `yaml:"components"`
	// Probes run after everything is restored; each must exit 0.
	Probes []Probe `yaml:"probes"`
	// Elasticsearch, when set, restores each Elasticsearch component's
	// indices into a cluster under renamed names instead of only
	// verifying its repository files.
	Elasticsearch *DrillElasticsearch `yaml:"elasticsearch"`
}

// DrillElasticsearch restores the snapshot's indices under IndexPrefix
// (the live indices are never closed or touched), counts their documents,
// and deletes them and unregisters the scratch repository afterwards.
type DrillElasticsearch struct {
	// IndexPrefix is put before every restored index's name (default
	// "cairn-drill-"). The drill refuses to start when an index with the
	// prefix already exists, since it deletes every such index after.
	IndexPrefix string `yaml:"index_prefix"`
	// URL is a scratch cluster to restore into instead of the component's
	// own (its path.repo must include the parent of the component's
	// location, where the repository files are put for the restore).
	URL string `yaml:"url"`
}

// DefaultDrillIndexPrefix is drill.elasticsearch.index_prefix's default.
const DefaultDrillIndexPrefix = "cairn-drill-"

func (de *DrillElasticsearch) prefix() string {
	if de.IndexPrefix == "" {
		return DefaultDrillIndexPrefix
	}
	return de.IndexPrefix
}

// DrillComponent puts one stream component into a scratch database. In
// every argv, {scratch} is replaced by the scratch directory.
type DrillComponent struct {
	Setup   []string `yaml:"setup"`
	Restore []string `yaml:"restore"`
	Cleanup []string `yaml:"cleanup"`
}

// Probe is a check of the restored data: a command that must exit 0 and,
// with require_output, print something (a SQL query that must return
// rows: psql -tAc "SELECT 1 FROM issues LIMIT 1").
type Probe struct {
	Name          string   `yaml:"name"`
	Command       []string `yaml:"command"`
	RequireOutput bool     `yaml:"require_output"`
}

func (d *Drill) check(cfg *Config, p *Problems) {
	for name, dc := range d.Components {
		c := cfg.Component(name)
		switch {
		case c == nil:
			p.add(0, "drill: components: %q is not a component of the config", name)
		case c.Kind() != "command":
			p.add(c.Line, "drill: components: %q is a %s; only a dump (command) can be restored through a command", name, c.Kind())
		case len(dc.Restore) == 0:
			p.add(0, "drill: components: %q needs restore, the command that reads the dump on stdin", name)
		}
	}
	for i, pr := range d.Probes {
		if len(pr.Command) == 0 {
			p.add(0, "drill: probes[%d] (%s): command is missing", i, pr.Name)
		}
	}
	if de := d.Elasticsearch; de != nil {
		if err := es.CheckIndexPrefix(de.prefix()); err != nil {
			p.add(0, "drill: elasticsearch: index_prefix: %v", err)
		}
		if de.URL != "" {
			if u, err := url.Parse(de.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				p.add(0, "drill: elasticsearch: url %q: want http(s)://host:port", de.URL)
			}
		}
	}
	if d.Every < 0 {
		p.add(0, "drill: every cannot be negative")
	}
}

// DrillReport is what a drill found.
type DrillReport struct {
	Snapshot   repo.SnapshotEntry
	Scratch    string
	Components []DrillComponentResult
	Probes     []ProbeResult
	// Took is the whole drill's time, restore and probes.
	Took time.Duration
	// Cleanup lists what could not be cleaned up (a cleanup command that
	// failed, a scratch directory that could not be removed).
	Cleanup []string
}

// DrillComponentResult is one component's restore: its time-to-restore
// and what went wrong, if anything.
type DrillComponentResult struct {
	Name  string
	Kind  string
	Into  string // "scratch directory" or the restore command
	Bytes uint64
	Took  time.Duration
	Err   error
}

// ProbeResult is one probe's outcome.
type ProbeResult struct {
	Name string
	Took time.Duration
	Err  error
}

// ErrDrillFailed is returned (wrapped) when a component could not be
// restored and verified or a probe failed.
var ErrDrillFailed = errors.New("drill failed")

// OK reports whether every component was restored and every probe passed.
func (d *DrillReport) OK() bool {
	for _, c := range d.Components {
		if c.Err != nil {
			return false
		}
	}
	for _, p := range d.Probes {
		if p.Err != nil {
			return false
		}
	}
	return true
}

// cleanupTimeout bounds a cleanup command; it runs even after the drill
// was cancelled, so it cannot use the drill's context.
const cleanupTimeout = 5 * time.Minute

// RunDrill restores sn into a scratch area: trees and dumps into a fresh
// directory, each re-read and checked against the snapshot's blob IDs;
// the streams cfg's drill names through their setup and restore commands
// into a scratch database. Then the probes run. The scratch directory is
// removed and every cleanup command run whatever happened, also when ctx
// is cancelled. The error wraps ErrDrillFailed when the drill found a
// problem; the report says which.
func RunDrill(ctx context.Context, r *repo.Repository, cfg *Config, sn repo.SnapshotEntry) (rep *DrillReport, err error) {
	d := cfg.Drill
	if d == nil {
		d = &Drill{}
	}
	start := time.Now()
	rep = &DrillReport{Snapshot: sn}
	scratch, err := os.MkdirTemp(d.Scratch, "cairn-drill-")
	if err != nil {
		return rep, fmt.Errorf("make the scratch directory: %w", err)
	}
	rep.Scratch = scratch
	var cleanups [][]string
	esd := &esDrill{seen: map[string]bool{}}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		for _, f := range esd.cleanups {
			if err := f(cctx); err != nil {
				rep.Cleanup = append(rep.Cleanup, err.Error())
			}
		}
		for i := len(cleanups) - 1; i >= 0; i-- {
			if _, err := runArgv(cctx, cleanups[i]); err != nil {
				rep.Cleanup = append(rep.Cleanup, fmt.Sprintf("%s: %v", strings.Join(cleanups[i], " "), err))
			}
		}
		if err := os.RemoveAll(scratch); err != nil {
			rep.Cleanup = append(rep.Cleanup, fmt.Sprintf("remove %s: %v", scratch, err))
		}
		rep.Took = time.Since(start)
	}()
	sub := func(argv []string) []string { return substitute(argv, "{scratch}", scratch) }
	for _, c := range sn.Components {
		res := DrillComponentResult{Name: c.Name, Kind: c.Kind, Into: "scratch directory", Bytes: c.Size}
		t0 := time.Now()
		req := RestoreRequest{Components: []string{c.Name}, Target: scratch}
		dc, viaCommand := d.Components[c.Name]
		if cc := cfg.Component(c.Name); d.Elasticsearch != nil && cc != nil && cc.Elasticsearch != nil {
			res.Into, res.Err = esd.restore(ctx, r, sn, cc, d.Elasticsearch)
			res.Took = time.Since(t0)
			rep.Components = append(rep.Components, res)
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			continue
		}
		if viaCommand {
			res.Into = strings.Join(dc.Restore, " ")
			if len(dc.Cleanup) > 0 {
				cleanups = append(cleanups, sub(dc.Cleanup))
			}
			req.Commands = map[string][]string{c.Name: sub(dc.Restore)}
		}
		res.Err = func() error {
			if viaCommand && len(dc.Setup) > 0 {
				if _, err := runArgv(ctx, sub(dc.Setup)); err != nil {
					return fmt.Errorf("setup: %w", err)
				}
			}
			plan, err := PlanRestore(sn, req)
			if err != nil {
				return err
			}
			res, err := plan.Run(ctx, r, RunOptions{Verify: true})
			if res != nil && len(res.Errors) > 0 {
				return fmt.Errorf("%d paths not restored or not as stored, first %v", len(res.Errors), res.Errors[0])
			}
			return err
		}()
		res.Took = time.Since(t0)
		rep.Components = append(rep.Components, res)
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
	}
	for _, pr := range d.Probes {
		t0 := time.Now()
		out, err := runArgv(ctx, sub(pr.Command))
		switch {
		case err != nil:
		case pr.RequireOutput && len(bytes.TrimSpace(out)) == 0:
			err = errors.New("printed nothing (a query that must return rows returned none)")
		}
		rep.Probes = append(rep.Probes, ProbeResult{Name: pr.Name, Took: time.Since(t0), Err: err})
	}
	if !rep.OK() {
		return rep, fmt.Errorf("%w: snapshot %s", ErrDrillFailed, sn.ID.Short())
	}
	return rep, nil
}

// esDrill is the Elasticsearch part of one drill: the clusters it checked
// for indices under the prefix, and the cleanups (deleting the drill's
// indices) RunDrill runs at the end, after the probes.
type esDrill struct {
	seen     map[string]bool
	cleanups []func(context.Context) error
}

// restore restores c's repository files (verified) into a fresh directory
// next to its location, restores the ES snapshot from there under de's
// prefix, and counts the restored indices' documents; it fails when all of
// them are empty, since such a drill proves nothing. The scratch
// repository is unregistered at once (es.Restore does that); the renamed
// indices are deleted by a cleanup, whatever happened. It returns what the
// report shows as Into.
func (d *esDrill) restore(ctx context.Context, r *repo.Repository, sn repo.SnapshotEntry, c *Component, de *DrillElasticsearch) (into string, err error) {
	ec, err := c.Elasticsearch.config()
	if err != nil {
		return "elasticsearch", err
	}
	if de.URL != "" {
		ec.URL = de.URL
	}
	prefix := de.prefix()
	into = fmt.Sprintf("elasticsearch %s under %s*", ec.URL, prefix)
	var name string
	for _, sc := range sn.Components {
		if sc.Name == c.Name {
			name = sc.Meta["snapshot"]
		}
	}
	if name == "" {
		return into, fmt.Errorf("component %s records no Elasticsearch snapshot name", c.Name)
	}
	if !d.seen[ec.URL] {
		if pre, err := es.IndicesWithPrefix(ctx, ec, prefix); err != nil {
			return into, err
		} else if len(pre) > 0 {
			return into, fmt.Errorf("indices %s already exist under the drill prefix %q; the drill deletes every such index afterwards, so delete them or choose another index_prefix", strings.Join(pre, ", "), prefix)
		}
		d.seen[ec.URL] = true
		d.cleanups = append(d.cleanups, func(ctx context.Context) error {
			if _, err := es.DeleteIndicesWithPrefix(ctx, ec, prefix); err != nil {
				return fmt.Errorf("delete the drill's indices %s* at %s: %w", prefix, ec.URL, err)
			}
			return nil
		})
	}
	dir, err := es.NewRestoreDir(ec)
	if err != nil {
		return into, err
	}
	defer os.RemoveAll(dir)
	plan, err := PlanRestore(sn, RestoreRequest{Components: []string{c.Name}, Target: dir})
	if err != nil {
		return into, err
	}
	if res, err := plan.Run(ctx, r, RunOptions{Verify: true}); err != nil {
		return into, err
	} else if len(res.Errors) > 0 {
		return into, fmt.Errorf("%d paths not restored or not as stored, first %v", len(res.Errors), res.Errors[0])
	}
	res, err := es.Restore(ctx, ec, es.RestoreOptions{
		Dir:               filepath.Join(dir, c.Name),
		RepoName:          "cairn-drill-" + filepath.Base(dir),
		Snapshot:          name,
		Indices:           c.Elasticsearch.Indices,
		Partial:           c.Elasticsearch.AllowPartial,
		RenamePattern:     "^(.+)$",
		RenameReplacement: prefix + "$1",
	})
	if err != nil {
		return into, err
	}
	counts, err := es.CountDocs(ctx, ec, res.Indices)
	if err != nil {
		return into, err
	}
	var total int64
	parts := make([]string, 0, len(res.Indices))
	for _, ix := range res.Indices {
		total += counts[ix]
		parts = append(parts, fmt.Sprintf("%s %d docs", ix, counts[ix]))
	}
	into = fmt.Sprintf("elasticsearch %s: %s", ec.URL, strings.Join(parts, ", "))
	if total == 0 {
		return into, fmt.Errorf("the restored indices %s hold no documents", strings.Join(res.Indices, ", "))
	}
	return into, nil
}

// maxProbeOutput bounds what a probe's or setup's output is kept of.
const maxProbeOutput = 64 << 10

// runArgv runs argv (no shell). It returns the standard output, bounded;
// on failure the error carries the end of the standard error.
func runArgv(ctx context.Context, argv []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out, errb boundedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return out.b.Bytes(), fmt.Errorf("%s: %w%s", argv[0], err, tail(errb.b.Bytes()))
	}
	return out.b.Bytes(), nil
}

type boundedBuffer struct{ b bytes.Buffer }

func (w *boundedBuffer) Write(p []byte) (int, error) {
	if room := maxProbeOutput - w.b.Len(); room > 0 {
		w.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func tail(out []byte) string {
	s := strings.TrimSpace(string(out))
	if s == "" {
		return ""
	}
	if len(s) > 500 {
		s = "…" + s[len(s)-500:]
	}
	return ": " + s
}
