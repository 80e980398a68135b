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
	// Report receives one line per component restored.
	Report func(string)
}

// Restore puts the snapshot's components back to their live targets, in the
// config's order (database, search, files), between the global hooks (stop
// the workers, deactivate the space), stopping at the first failure with a
// message that names the component: a half-restored application must not
// look restored.
//
//   - command: the stream is piped into the restore command (or written to
//     a file passed as {path}); a dump taken as a directory is restored to
//     a temporary directory passed as {dir}.
//   - elasticsearch: the files go into a fresh directory next to the
//     repository, registered read-only under a new name; the matching
//     indices are closed and restored from it.
//   - tree: restored next to the live directory, then moved into it; with
//     delete: true the directory is emptied first.
func Restore(ctx context.Context, r *repo.Repository, cfg *Config, sn *repo.SnapshotEntry, opts RestoreOptions) (err error) {
	report := opts.Report
	if report == nil {
		report = func(string) {}
	}
	var todo []*Component
	subtrees := map[string][]string{}
	named := map[string]bool{}
	for _, ref := range opts.Components {
		name, sub := splitRef(ref)
		c := cfg.Component(name)
		if c == nil {
			return fmt.Errorf("the config has no component %q", name)
		}
		if sn.Component(name) == nil {
			return fmt.Errorf("snapshot %s has no component %q", sn.ID.Short(), name)
		}
		named[name] = true
		if sub != "" {
			subtrees[name] = append(subtrees[name], sub)
		}
	}
	partial := len(opts.Include) > 0 || len(opts.Exclude) > 0
	if partial && opts.Delete {
		return errors.New("--delete with --include/--exclude would empty the paths the patterns leave out; a partial restore replaces only what matches (use --component NAME/PATH --delete to replace a whole subtree)")
	}
	for i := range cfg.Components {
		c := &cfg.Components[i]
		if len(opts.Components) > 0 && !named[c.Name] {
			continue
		}
		if (partial || len(subtrees[c.Name]) > 0) && c.Kind() != "tree" {
			return fmt.Errorf("component %s is %s component: only tree components have paths to select; name the trees with --component", c.Name, withArticle(c.Kind()))
		}
		if sn.Component(c.Name) == nil {
			report(fmt.Sprintf("%s: not in snapshot %s, skipped", c.Name, sn.ID.Short()))
			continue
		}
		todo = append(todo, c)
	}
	if len(todo) == 0 {
		return errors.New("nothing to restore: no configured component is in the snapshot")
	}
	if h := hook(cfg.Hooks.Before); h != nil {
		if err := h(ctx); err != nil {
			return errors.Join(fmt.Errorf("before hook: %w", err), runAfter(ctx, cfg.Hooks.After))
		}
	}
	defer func() { err = errors.Join(err, runAfter(ctx, cfg.Hooks.After)) }()
	for i, c := range todo {
		cc := *c
		cc.Delete = cc.Delete || opts.Delete
		sel := selection{subtrees: subtrees[c.Name], include: opts.Include, exclude: opts.Exclude,
			indices: opts.Indices, renamePattern: opts.RenamePattern, renameReplacement: opts.RenameReplacement}
		if slices.Contains(opts.Components, c.Name) {
			sel.subtrees = nil // named whole too
		}
		if err := restoreOne(ctx, r, sn.Snapshot, &cc, sel, report); err != nil {
			done := make([]string, i)
			for j := range done {
				done[j] = todo[j].Name
			}
			msg := fmt.Sprintf("restore stopped at component %s", c.Name)
			if len(done) > 0 {
				msg += fmt.Sprintf(" (already restored: %s)", strings.Join(done, ", "))
			}
			return fmt.Errorf("%s: %w", msg, err)
		}
	}
	return nil
}

func runAfter(ctx context.Context, argv []string) error {
	h := hook(argv)
	if h == nil {
		return nil
	}
	if err := h(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("after hook: %w", err)
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
	if h := hook(c.Hooks.Before); h != nil {
		if err := h(ctx); err != nil {
			return errors.Join(fmt.Errorf("before hook: %w", err), runAfter(ctx, c.Hooks.After))
		}
	}
	var err error
	switch c.Kind() {
	case "command":
		err = RestoreCommand(ctx, r, sn, c, report)
	case "elasticsearch":
		err = restoreElasticsearch(ctx, r, sn, c, sel, report)
	case "tree":
		err = restoreTree(ctx, r, sn, c, sel, report)
	}
	return errors.Join(err, runAfter(ctx, c.Hooks.After))
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
