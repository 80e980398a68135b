package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/restore"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/sources/command"
	es "github.com/cairn-backup/cairn/sources/elasticsearch"
	"github.com/cairn-backup/cairn/sources/tree"
)

// RestoreOptions select what a configured restore puts back.
type RestoreOptions struct {
	// Components to restore; empty means every component of the config
	// that the snapshot has. NAME/PATH restores only that subtree of the
	// tree component NAME.
	Components []string
	// Include and Exclude select paths within tree components
	// (restore.Filter); every component restored must then be a tree.
	Include, Exclude []string
	// Indices, RenamePattern and RenameReplacement override the config's
	// for the elasticsearch components: restore only these indices of the
	// snapshot, under other names (a tenant's export next to the live
	// indices, which are then neither closed nor touched).
	Indices, RenamePattern, RenameReplacement string
	// Delete empties every tree component's live directory before
	// restoring into it, as if the config said delete: true.
	Delete bool
	// Verify reads every stream component through the repository (each
	// blob decrypted and its hash checked) before the first destructive
	// step, so a damaged dump is found before the schema is dropped.
	// Trees and Elasticsearch files are always re-hashed after they are
	// written, before they replace anything.
	Verify bool
	// Report receives one line per component restored.
	Report func(string)
}

// RestoreError is a configured restore that stopped part-way: the
// application is in a mixed state, and the operator needs to know which
// parts are back.
type RestoreError struct {
	// Failed is the component that failed; "" when a global hook did.
	Failed string
	// Restored are the components completely restored before it.
	Restored []string
	Err      error
}

func (e *RestoreError) Error() string {
	msg := "restore stopped before any component"
	if e.Failed != "" {
		msg = "restore stopped at component " + e.Failed
	}
	if len(e.Restored) > 0 {
		msg += fmt.Sprintf(" (already restored: %s)", strings.Join(e.Restored, ", "))
	} else {
		msg += " (nothing restored)"
	}
	return fmt.Sprintf("%s: %v", msg, e.Err)
}

func (e *RestoreError) Unwrap() error { return e.Err }

// Restore puts the snapshot's components back to their live targets, in
// the config's order (database, search, files), between the restore hooks,
// stopping at the first failure with a *RestoreError that names the
// component and what was already restored: a half-restored application
// must not look restored.
//
// The restore hooks (hooks.restore, globally and per component): before
// runs first; after runs only when everything before it was restored, so
// "activate the space" never follows a failed import; on_failure runs
// instead, with CAIRN_ERROR and CAIRN_RESTORED in its environment.
//
//   - command: the stream is piped into the restore command (or written to
//     a file passed as {path}); a dump taken as a directory is restored to
//     a temporary directory passed as {dir}.
//   - elasticsearch: the files go into a fresh directory next to the
//     repository, registered read-only under a new name; the matching
//     indices are closed and restored from it.
//   - tree: restored next to the live directory, then moved into it; with
//     delete: true the directory is emptied first.
func Restore(ctx context.Context, r *repo.Repository, cfg *Config, sn *repo.SnapshotEntry, opts RestoreOptions) error {
	p, err := PlanLive(ctx, r, cfg, *sn, opts)
	if err != nil {
		return err
	}
	return p.Run(ctx, r)
}

// Run carries out a checked plan (see Restore).
func (p *LivePlan) Run(ctx context.Context, r *repo.Repository) error {
	report := p.opts.Report
	if report == nil {
		report = func(string) {}
	}
	sn := p.Snapshot
	env := hookEnv{Phase: "restore", App: p.cfg.App, Snapshot: sn.ID.String()}
	global := p.cfg.Hooks.Phase("restore")
	var done []string
	fail := func(comp string, err error) error {
		rerr := &RestoreError{Failed: comp, Restored: done, Err: err}
		env.Restored = done
		if herr := env.runNamed(context.WithoutCancel(ctx), "on_failure", global.OnFailure, comp, rerr); herr != nil {
			return errors.Join(rerr, herr)
		}
		return rerr
	}
	if err := env.runNamed(ctx, "before", global.Before, "", nil); err != nil {
		return fail("", err)
	}
	for _, c := range p.todo {
		cc := *c
		cc.Delete = cc.Delete || p.opts.Delete
		cenv := env
		cenv.Component, cenv.Restored = c.Name, done
		h := c.Hooks.Phase("restore")
		err := cenv.runNamed(ctx, "before", h.Before, "", nil)
		if err == nil {
			err = restoreOne(ctx, r, sn.Snapshot, &cc, p.sel[c.Name], report)
		}
		if err == nil {
			err = cenv.runNamed(ctx, "after", h.After, "", nil)
		}
		if err != nil {
			err = errors.Join(err, cenv.runNamed(context.WithoutCancel(ctx), "on_failure", h.OnFailure, c.Name, err))
			return fail(c.Name, err)
		}
		done = append(done, c.Name)
	}
	env.Restored = done
	if err := env.runNamed(ctx, "after", global.After, "", nil); err != nil {
		return fmt.Errorf("every component was restored (%s), but %w", strings.Join(done, ", "), err)
	}
	return nil
}

// selection is the part of a tree component a partial restore puts back.
type selection struct {
	subtrees, include, exclude []string
	// For an elasticsearch component: overrides of the config's.
	indices, renamePattern, renameReplacement string
}

func (s selection) partial() bool {
	return len(s.subtrees) > 0 || len(s.include) > 0 || len(s.exclude) > 0
}

func withArticle(kind string) string {
	if strings.IndexByte("aeiou", kind[0]) >= 0 {
		return "an " + kind
	}
	return "a " + kind
}

func restoreOne(ctx context.Context, r *repo.Repository, sn *snapshot.Snapshot, c *Component, sel selection, report func(string)) error {
	switch c.Kind() {
	case "command":
		return RestoreCommand(ctx, r, sn, c, report)
	case "elasticsearch":
		return restoreElasticsearch(ctx, r, sn, c, sel, report)
	default:
		return restoreTree(ctx, r, sn, c, sel, report)
	}
}

// RestoreCommand puts one command component back through its restore
// command (see Restore); cmd/cairn's restore --command uses it too.
func RestoreCommand(ctx context.Context, r *repo.Repository, sn *snapshot.Snapshot, c *Component, report func(string)) error {
	if len(c.Restore) == 0 {
		return fmt.Errorf("component %s has no restore command in the config; use cairn restore --target DIR --component %s to get the dump", c.Name, c.Name)
	}
	spec := c.spec()
	spec.Argv = c.Restore
	comp := sn.Component(c.Name)
	if comp.Kind == snapshot.KindTree { // a dump taken as a directory
		dir, err := os.MkdirTemp("", "cairn-restore-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if err := restoreInto(ctx, r, sn, c.Name, dir); err != nil {
			return err
		}
		spec.Argv = substitute(spec.Argv, "{dir}", filepath.Join(dir, c.Name))
		if err := command.Run(ctx, spec); err != nil {
			return err
		}
		report(fmt.Sprintf("%s: restored through %s", c.Name, c.Restore[0]))
		return nil
	}
	node, err := r.FindNode(ctx, sn, c.Name)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(r.DumpFile(ctx, node, pw)) }()
	defer pr.Close()
	if c.RestoreViaFile {
		err = command.RestoreViaFile(ctx, spec, pr, "")
	} else {
		err = command.RestoreFromReader(ctx, spec, pr)
	}
	if err != nil {
		return err
	}
	report(fmt.Sprintf("%s: %d bytes restored through %s", c.Name, node.Size, c.Restore[0]))
	return nil
}

func restoreElasticsearch(ctx context.Context, r *repo.Repository, sn *snapshot.Snapshot, c *Component, sel selection, report func(string)) error {
	ec, err := c.Elasticsearch.config()
	if err != nil {
		return err
	}
	name := sn.Component(c.Name).Meta["snapshot"]
	if name == "" {
		return fmt.Errorf("component %s records no Elasticsearch snapshot name", c.Name)
	}
	dir, err := es.NewRestoreDir(ec)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := restoreInto(ctx, r, sn, c.Name, dir); err != nil {
		return err
	}
	ro := es.RestoreOptions{
		Dir:      filepath.Join(dir, c.Name),
		RepoName: "cairn-restore-" + filepath.Base(dir),
		Snapshot: name,
		Indices:  c.Elasticsearch.Indices,
		Partial:  c.Elasticsearch.AllowPartial,

		RenamePattern:     c.Elasticsearch.RenamePattern,
		RenameReplacement: c.Elasticsearch.RenameReplacement,
	}
	if sel.indices != "" {
		ro.Indices = sel.indices
	}
	if sel.renamePattern != "" {
		ro.RenamePattern, ro.RenameReplacement = sel.renamePattern, sel.renameReplacement
	}
	res, err := es.Restore(ctx, ec, ro)
	if err != nil {
		return err
	}
	report(fmt.Sprintf("%s: Elasticsearch snapshot %s restored: %s", c.Name, name, strings.Join(res.Indices, ", ")))
	return nil
}

// restoreTree restores into a hidden staging directory inside the live one
// (the same file system even when the live directory is a mount point, so
// the final moves are renames), then moves the entries into place. Until
// the moves start the live contents are untouched, so a restore that fails
// reading the repository leaves them as they were.
//
// A whole restore replaces each top-level entry (with delete: true the
// directory is emptied first). A partial restore (sel) touches only what
// it selected: it merges the staged paths into the live directory, so
// nothing outside the selection is removed; with delete, each selected
// subtree (NAME/PATH) is replaced whole. Patterns (--include/--exclude)
// never delete: delete: true is reported as not applied.
func restoreTree(ctx context.Context, r *repo.Repository, sn *snapshot.Snapshot, c *Component, sel selection, report func(string)) error {
	live := filepath.Clean(c.Tree)
	if err := os.MkdirAll(live, 0o755); err != nil {
		return err
	}
	stage, err := os.MkdirTemp(live, ".cairn-restore-")
	if err != nil {
		return fmt.Errorf("staging directory in %s: %w", live, err)
	}
	defer os.RemoveAll(stage)
	refs := []string{c.Name}
	if len(sel.subtrees) > 0 {
		refs = refs[:0]
		for _, s := range sel.subtrees {
			refs = append(refs, c.Name+"/"+s)
		}
	}
	if err := restoreSelection(ctx, r, sn, refs, sel, stage); err != nil {
		return err
	}
	staged := filepath.Join(stage, c.Name)
	replace := func(rel string) bool { return !strings.Contains(rel, "/") } // top-level entries
	switch {
	case !sel.partial():
		if c.Delete {
			if err := emptyDir(live, filepath.Base(stage)); err != nil {
				return err
			}
		}
	case len(sel.include) > 0 || len(sel.exclude) > 0:
		replace = func(string) bool { return false }
		if c.Delete {
			report(fmt.Sprintf("%s: delete not applied: a restore with --include/--exclude replaces only the paths that match", c.Name))
		}
	default:
		replace = func(rel string) bool { return c.Delete && slices.Contains(sel.subtrees, rel) }
	}
	n, err := mergeInto(staged, live, "", replace)
	if err != nil {
		return err
	}
	if sel.partial() {
		report(fmt.Sprintf("%s: %d paths restored into %s; nothing outside the selection was touched", c.Name, n, live))
	} else {
		report(fmt.Sprintf("%s: %d entries restored into %s", c.Name, n, live))
	}
	return nil
}

// mergeInto moves the staged tree into live. An entry for which replace
// says so, or that is not a directory on both sides, replaces what is at
// its place; a directory that exists on both sides is merged into, and
// then takes the staged (snapshot's) mode and times. It returns how many
// entries it moved.
func mergeInto(staged, live, rel string, replace func(rel string) bool) (int, error) {
	entries, err := os.ReadDir(staged)
	if err != nil {
		return 0, err
	}
	moved := 0
	for _, e := range entries {
		src, dst, r := filepath.Join(staged, e.Name()), filepath.Join(live, e.Name()), path.Join(rel, e.Name())
		if e.IsDir() && !replace(r) {
			if fi, err := os.Lstat(dst); err == nil && fi.IsDir() {
				n, err := mergeInto(src, dst, r, replace)
				moved += n
				if err != nil {
					return moved, err
				}
				if err := copyDirMeta(src, dst); err != nil {
					return moved, err
				}
				continue
			}
		}
		if err := os.RemoveAll(dst); err != nil {
			return moved, err
		}
		if err := os.Rename(src, dst); err != nil {
			return moved, err
		}
		moved++
	}
	return moved, nil
}

// copyDirMeta gives dst src's mode and modification time.
func copyDirMeta(src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if err := os.Chmod(dst, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return err
	}
	return os.Chtimes(dst, time.Time{}, fi.ModTime())
}

// restoreInto restores one component into dir (as dir/NAME).
func restoreInto(ctx context.Context, r *repo.Repository, sn *snapshot.Snapshot, name, dir string) error {
	return restoreSelection(ctx, r, sn, []string{name}, selection{}, dir)
}

// restoreSelection restores the component references refs (NAME or
// NAME/PATH), filtered by sel's patterns, into dir (as dir/NAME/…).
func restoreSelection(ctx context.Context, r *repo.Repository, sn *snapshot.Snapshot, refs []string, sel selection, dir string) error {
	t, err := tree.OpenTarget(dir)
	if err != nil {
		return err
	}
	defer t.Close()
	_, err = restore.Restore(ctx, r, sn, t, restore.Options{Components: refs, Include: sel.include, Exclude: sel.exclude, Verify: true})
	return err
}

// emptyDir removes everything inside dir but keep, keeping dir itself (its
// owner, mode and any mount on it).
func emptyDir(dir, keep string) error {
	if filepath.Clean(dir) == "/" {
		return errors.New("refusing to empty /")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == keep {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func substitute(argv []string, key, val string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = strings.ReplaceAll(a, key, val)
	}
	return out
}
