package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	es "github.com/cairn-backup/cairn/sources/elasticsearch"
)

// Step is one step of a configured restore, in the order it runs.
type Step struct {
	// Component is the component restored or whose hook runs; "" for a
	// global hook.
	Component string `json:"component,omitempty"`
	// Action says what runs: a hook's command, the restore command the
	// dump is piped into, the Elasticsearch restore, the tree's move.
	Action string `json:"action"`
	Target string `json:"target,omitempty"`
	// Destroys says what the step drops, closes, replaces or empties;
	// "" for a step that changes nothing of the application's data.
	Destroys string `json:"destroys,omitempty"`
}

func (s Step) String() string {
	var b strings.Builder
	if s.Component != "" {
		fmt.Fprintf(&b, "%s: ", s.Component)
	}
	b.WriteString(s.Action)
	if s.Target != "" {
		fmt.Fprintf(&b, " -> %s", s.Target)
	}
	if s.Destroys != "" {
		fmt.Fprintf(&b, "\n      DESTROYS: %s", s.Destroys)
	}
	return b.String()
}

// LivePlan is a configured restore to the application's live targets,
// checked before anything is changed: PlanLive returns it only when every
// check passed.
type LivePlan struct {
	Snapshot repo.SnapshotEntry
	Steps    []Step
	// OnFailure is what runs when a step fails (the global and the failed
	// component's on_failure hooks), for the printed plan.
	OnFailure []Step

	cfg  *Config
	todo []*Component
	sel  map[string]selection // what of each component in todo
	opts RestoreOptions
}

// PlanProblems is every reason a configured restore cannot start, found
// without changing anything.
type PlanProblems struct {
	Snapshot string
	List     []string
}

func (p *PlanProblems) Error() string {
	return fmt.Sprintf("restore of snapshot %s not started, nothing was changed: %d problems:\n  %s", p.Snapshot, len(p.List), strings.Join(p.List, "\n  "))
}

// ErrPlan is what a *PlanProblems unwraps to.
var ErrPlan = errors.New("restore plan failed its checks")

func (p *PlanProblems) Unwrap() error { return ErrPlan }

// wantKind is the kind of snapshot component the config's restore of c
// can use: a dump taken in mode dir is a tree, other dumps are streams.
func (c *Component) wantKind() string {
	if c.Kind() == "command" && c.Mode != "dir" {
		return snapshot.KindStream
	}
	return snapshot.KindTree
}

// PlanLive builds the plan of a configured restore and checks, without
// changing anything, everything that can be known before the first
// destructive step: the snapshot has each component with the kind the
// config expects; restore commands and hook programs are on PATH;
// Elasticsearch answers; the targets are writable and have room for the
// trees; and, with opts.Verify, every stream reads back whole through the
// repository. Every problem is reported at once in a *PlanProblems.
func PlanLive(ctx context.Context, r *repo.Repository, cfg *Config, sn repo.SnapshotEntry, opts RestoreOptions) (*LivePlan, error) {
	p := &LivePlan{Snapshot: sn, cfg: cfg, opts: opts, sel: map[string]selection{}}
	probs := &PlanProblems{Snapshot: sn.ID.Short()}
	bad := func(format string, args ...any) { probs.List = append(probs.List, fmt.Sprintf(format, args...)) }
	subtrees := map[string][]string{}
	named := map[string]bool{}
	for _, ref := range opts.Components {
		name, sub := splitRef(ref)
		if cfg.Component(name) == nil {
			bad("the config has no component %q", name)
		}
		named[name] = true
		if sub != "" {
			subtrees[name] = append(subtrees[name], sub)
		}
	}
	partial := len(opts.Include) > 0 || len(opts.Exclude) > 0
	if partial && opts.Delete {
		bad("--delete with --include/--exclude would empty the paths the patterns leave out; a partial restore replaces only what matches (use --component NAME/PATH --delete to replace a whole subtree)")
	}
	if cfg.App != "" && sn.App != "" && sn.App != cfg.App {
		bad("snapshot %s belongs to application %q, the config to %q", sn.ID.Short(), sn.App, cfg.App)
	}
	for i := range cfg.Components {
		c := &cfg.Components[i]
		if len(opts.Components) > 0 && !named[c.Name] {
			continue
		}
		if (partial || len(subtrees[c.Name]) > 0) && c.Kind() != "tree" {
			bad("component %s is %s component: only tree components have paths to select; name the trees with --component", c.Name, withArticle(c.Kind()))
			continue
		}
		sc := sn.Component(c.Name)
		switch {
		case sc == nil:
			bad("%s: snapshot %s has no component %q (restore the others with --component)", c.Name, sn.ID.Short(), c.Name)
			continue
		case sc.Kind != c.wantKind():
			bad("%s: the snapshot holds it as a %s, the config restores a %s (mode %q): was it taken with another config?", c.Name, sc.Kind, c.wantKind(), c.Mode)
			continue
		}
		sel := selection{subtrees: subtrees[c.Name], include: opts.Include, exclude: opts.Exclude,
			indices: opts.Indices, renamePattern: opts.RenamePattern, renameReplacement: opts.RenameReplacement}
		if slices.Contains(opts.Components, c.Name) {
			sel.subtrees = nil // named whole too
		}
		p.sel[c.Name] = sel
		p.todo = append(p.todo, c)
	}
	if len(p.todo) == 0 && len(probs.List) == 0 {
		bad("nothing to restore")
	}

	global := cfg.Hooks.Phase("restore")
	hookStep := func(comp, which string, argv []string) {
		if len(argv) == 0 {
			return
		}
		if err := lookProgram(argv, false); err != nil {
			bad("%shooks.restore.%s: %v", prefixName(comp), which, err)
		}
		s := Step{Component: comp, Action: fmt.Sprintf("hook %s: %s", which, strings.Join(argv, " "))}
		if which == "on_failure" {
			p.OnFailure = append(p.OnFailure, s)
		} else {
			p.Steps = append(p.Steps, s)
		}
	}
	hookStep("", "before", global.Before)
	for _, c := range p.todo {
		h := c.Hooks.Phase("restore")
		hookStep(c.Name, "before", h.Before)
		st, err := p.check(ctx, r, c)
		for _, e := range err {
			bad("%s: %v", c.Name, e)
		}
		p.Steps = append(p.Steps, st)
		hookStep(c.Name, "after", h.After)
		hookStep(c.Name, "on_failure", h.OnFailure)
	}
	hookStep("", "after", global.After)
	hookStep("", "on_failure", global.OnFailure)
	if len(probs.List) > 0 {
		return p, probs
	}
	return p, nil
}

func prefixName(comp string) string {
	if comp == "" {
		return ""
	}
	return "component " + comp + ": "
}

// check describes and checks one component's restore step.
func (p *LivePlan) check(ctx context.Context, r *repo.Repository, c *Component) (Step, []error) {
	sc := p.Snapshot.Component(c.Name)
	var errs []error
	st := Step{Component: c.Name}
	switch c.Kind() {
	case "command":
		if len(c.Restore) == 0 {
			errs = append(errs, fmt.Errorf("no restore command in the config (get the dump with restore --target DIR --component %s)", c.Name))
			break
		}
		if err := lookProgram(c.Restore, c.Shell); err != nil {
			errs = append(errs, fmt.Errorf("restore command: %w", err))
		}
		how := "pipe the dump (%s) into"
		if sc.Kind == snapshot.KindTree {
			how = "restore the dump directory (%s) to a temporary {dir} for"
		} else if c.RestoreViaFile {
			how = "write the dump (%s) to a temporary {path} for"
		}
		st.Action = fmt.Sprintf(how, HumanSize(sc.Size)) + ": " + strings.Join(c.Restore, " ")
		st.Destroys = "whatever the restore command replaces (e.g. pg_restore --clean drops the dumped objects first)"
		if sc.Kind == snapshot.KindTree || c.RestoreViaFile {
			if err := roomFor(os.TempDir(), sc.Size); err != nil {
				errs = append(errs, err)
			}
		}
		if p.opts.Verify && sc.Kind == snapshot.KindStream {
			if err := readStream(ctx, r, p.Snapshot.Snapshot, c.Name); err != nil {
				errs = append(errs, fmt.Errorf("verify: %w", err))
			}
		}
	case "elasticsearch":
		e := *c.Elasticsearch
		if sel := p.sel[c.Name]; sel.indices != "" || sel.renamePattern != "" {
			if sel.indices != "" {
				e.Indices = sel.indices
			}
			if sel.renamePattern != "" {
				e.RenamePattern, e.RenameReplacement = sel.renamePattern, sel.renameReplacement
			}
		}
		name := sc.Meta["snapshot"]
		if name == "" {
			errs = append(errs, errors.New("the snapshot records no Elasticsearch snapshot name"))
		}
		st.Action = fmt.Sprintf("write the repository files (%s) beside %s, register them read-only, close the indices and _restore Elasticsearch snapshot %s", HumanSize(sc.Size), e.Location, name)
		st.Target = e.URL
		what := "indices " + e.Indices
		if idx := sc.Meta["indices"]; idx != "" && p.sel[c.Name].indices == "" {
			what = "indices " + strings.ReplaceAll(idx, ",", ", ")
		}
		if e.RenamePattern != "" {
			st.Destroys = fmt.Sprintf("%s renamed by %q -> %q: existing indices of those names are closed and replaced", what, e.RenamePattern, e.RenameReplacement)
		} else {
			st.Destroys = what + " are closed and replaced"
		}
		ec, err := e.config()
		if err == nil {
			err = es.Ping(ctx, ec)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("elasticsearch at %s: %w", e.URL, err))
		}
		if err := writableDir(filepath.Dir(filepath.Clean(c.Elasticsearch.Location))); err != nil {
			errs = append(errs, err)
		} else if err := roomFor(filepath.Dir(filepath.Clean(e.Location)), sc.Size); err != nil {
			errs = append(errs, err)
		}
	case "tree":
		live := filepath.Clean(c.Tree)
		st.Action = fmt.Sprintf("restore %d files (%s) into a staging directory, re-hash them, move them into place", sc.Files, HumanSize(sc.Size))
		st.Target = live
		sel := p.sel[c.Name]
		switch {
		case len(sel.include) > 0 || len(sel.exclude) > 0:
			st.Action = fmt.Sprintf("restore the paths matching --include %s --exclude %s into a staging directory, re-hash them, merge them in", strings.Join(sel.include, ","), strings.Join(sel.exclude, ","))
			st.Destroys = fmt.Sprintf("replaces the matching files of %s; nothing else is removed", live)
		case len(sel.subtrees) > 0:
			st.Action = fmt.Sprintf("restore %s into a staging directory, re-hash, merge in", strings.Join(sel.subtrees, ", "))
			if c.Delete || p.opts.Delete {
				st.Destroys = fmt.Sprintf("replaces %s below %s whole", strings.Join(sel.subtrees, ", "), live)
			} else {
				st.Destroys = fmt.Sprintf("replaces the files of %s below %s that the snapshot has; others stay", strings.Join(sel.subtrees, ", "), live)
			}
		case c.Delete || p.opts.Delete:
			n := "it does not exist yet"
			if entries, err := os.ReadDir(live); err == nil {
				n = fmt.Sprintf("%d entries now", len(entries))
			}
			st.Destroys = fmt.Sprintf("empties %s first (%s)", live, n)
		default:
			st.Destroys = fmt.Sprintf("replaces the entries of %s that the snapshot has; others stay", live)
		}
		if err := writableDir(live); err != nil {
			errs = append(errs, err)
		} else if err := roomFor(live, sc.Size); err != nil {
			errs = append(errs, err)
		}
	}
	return st, errs
}

// lookProgram checks that argv's program can be started.
func lookProgram(argv []string, shell bool) error {
	prog := argv[0]
	if shell {
		prog = "/bin/sh"
	}
	if _, err := exec.LookPath(prog); err != nil {
		return fmt.Errorf("%s: not found or not executable", prog)
	}
	return nil
}

// writableDir checks that dir, or the nearest ancestor that exists (the
// restore creates the rest), is a directory this process can write in.
func writableDir(dir string) error {
	d := dir
	for {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s is not a directory", d)
			}
			if err := syscall.Access(d, 2 /* W_OK */); err != nil {
				return fmt.Errorf("%s is not writable: %w", d, err)
			}
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		parent := filepath.Dir(d)
		if parent == d {
			return fmt.Errorf("%s: no existing ancestor", dir)
		}
		d = parent
	}
}

// roomFor checks the file system of dir (or its nearest existing
// ancestor) has size bytes free: a restore that runs out of space half-way
// through the files, after the database was replaced, is the mixed state
// the plan exists to prevent.
func roomFor(dir string, size uint64) error {
	d := dir
	for {
		var fs syscall.Statfs_t
		err := syscall.Statfs(d, &fs)
		if err == nil {
			// Bavail is unsigned on Linux and macOS, signed on FreeBSD
			// (negative when root's reserve is in use).
			free := uint64(max(int64(fs.Bavail), 0)) * uint64(fs.Bsize)
			if free < size {
				return fmt.Errorf("%s has %s free, the restore needs %s", d, HumanSize(free), HumanSize(size))
			}
			return nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return fmt.Errorf("free space of %s: %w", dir, err)
		}
		d = parent
	}
}

// readStream reads a stream component through the repository, checking
// every blob, and throws the bytes away.
func readStream(ctx context.Context, r *repo.Repository, sn *snapshot.Snapshot, name string) error {
	node, err := r.FindNode(ctx, sn, name)
	if err != nil {
		return err
	}
	return r.DumpFile(ctx, node, io.Discard)
}

// HumanSize formats n bytes as "1.5 MiB", as in the restore plan; the CLI
// prints every size this way.
func HumanSize(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
