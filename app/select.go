package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/repo"
)

// Selection picks snapshots for a command that works on several (copy,
// stats): those named, else every snapshot that passes the filters.
type Selection struct {
	// Refs name snapshots (ID, unique prefix or "latest"); when given, the
	// filters below do not apply.
	Refs []string
	// App and Hosts keep snapshots of this application and of one of
	// these hosts; empty means any.
	App   string
	Hosts []string
	// Tags keeps snapshots with at least one of these tags; empty means
	// any.
	Tags []string
	// Latest keeps only the newest snapshot that passes the filters.
	Latest bool
}

// ErrNoneSelected is returned by SelectSnapshots when nothing matches.
var ErrNoneSelected = errors.New("no snapshots match")

// Match reports whether sn passes the selection's filters.
func (s Selection) Match(sn repo.SnapshotEntry) bool {
	return (s.App == "" || sn.App == s.App) && (len(s.Hosts) == 0 || slices.Contains(s.Hosts, sn.Host)) &&
		(len(s.Tags) == 0 || slices.ContainsFunc(s.Tags, func(t string) bool { return slices.Contains(sn.Tags, t) }))
}

// SelectSnapshots returns the selected snapshots, oldest first. A damaged
// manifest fails the selection (as FindSnapshot does for "latest"): with
// filters, it might be one of those asked for.
func SelectSnapshots(ctx context.Context, r *repo.Repository, s Selection) ([]repo.SnapshotEntry, error) {
	if len(s.Refs) > 0 {
		if s.Latest {
			return nil, errors.New("give snapshots or --latest, not both")
		}
		var out []repo.SnapshotEntry
		for _, ref := range s.Refs {
			sn, err := r.FindSnapshot(ctx, ref)
			if err != nil {
				return nil, err
			}
			out = append(out, sn)
		}
		return out, nil
	}
	all, err := r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	var out []repo.SnapshotEntry
	for _, sn := range all {
		if s.Match(sn) {
			out = append(out, sn)
		}
	}
	if len(out) == 0 {
		return nil, ErrNoneSelected
	}
	if s.Latest {
		out = out[len(out)-1:]
	}
	return out, nil
}

// FindSnapshot resolves one snapshot reference: "latest" is the newest
// snapshot that passes sel's filters (App, Hosts); an ID or prefix is
// looked up as given.
func FindSnapshot(ctx context.Context, r *repo.Repository, ref string, sel Selection) (repo.SnapshotEntry, error) {
	if ref != "latest" || (sel.App == "" && len(sel.Hosts) == 0 && len(sel.Tags) == 0) {
		return r.FindSnapshot(ctx, ref)
	}
	sel.Refs, sel.Latest = nil, true
	found, err := SelectSnapshots(ctx, r, sel)
	if errors.Is(err, ErrNoneSelected) {
		return repo.SnapshotEntry{}, fmt.Errorf("%w: none of app %q and host %s", repo.ErrSnapshotNotFound, sel.App, strings.Join(sel.Hosts, " or "))
	}
	if err != nil {
		return repo.SnapshotEntry{}, fmt.Errorf("cannot tell which snapshot is the latest (name one by ID): %w", err)
	}
	return found[0], nil
}
