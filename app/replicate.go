package app

import (
	"context"
	"fmt"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/replicate"
)

// OpenFunc opens a repository named in the config (a replication target),
// returning a release function that unlocks and closes it. How passwords
// are found is the caller's business.
type OpenFunc func(ctx context.Context, rp Replica) (*repo.Repository, func(), error)

// ReplicaResult is one target's outcome of Replicate.
type ReplicaResult struct {
	Replica Replica
	Result  *replicate.Result
}

// Replicate copies a snapshot just written to every replication target of
// the config, in order, stopping at the first that fails. The error names
// the target and says the snapshot itself is written; it does not wrap
// the target's error (%v), so a target's "no repository" or "wrong
// password" does not turn into the backup's exit code.
func Replicate(ctx context.Context, r *repo.Repository, cfg *Config, sn repo.SnapshotEntry, open OpenFunc) ([]ReplicaResult, error) {
	var out []ReplicaResult
	for _, rp := range cfg.Replicate {
		res, err := replicateTo(ctx, r, sn, rp, open)
		if err != nil {
			return out, fmt.Errorf("snapshot %s written, but replication to %s failed: %v", sn.ID.Short(), rp.Repository, err)
		}
		out = append(out, ReplicaResult{Replica: rp, Result: res})
	}
	return out, nil
}

func replicateTo(ctx context.Context, r *repo.Repository, sn repo.SnapshotEntry, rp Replica, open OpenFunc) (*replicate.Result, error) {
	dst, release, err := open(ctx, rp)
	if err != nil {
		return nil, err
	}
	defer release()
	return replicate.Copy(ctx, r, dst, []repo.SnapshotEntry{sn}, replicate.Options{})
}
