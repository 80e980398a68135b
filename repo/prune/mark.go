package prune

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/repo"
)

// Why a pack is marked.
const (
	ReasonGarbage   = "garbage"   // no blob in it is used by any snapshot
	ReasonRepacked  = "repacked"  // its used blobs were copied to new packs
	ReasonUnindexed = "unindexed" // no index file names it (left by a crash, or a backup still running)
)

// markVersion is the mark format this code writes and reads.
const markVersion = 1

// Mark is the content of marks/<id>: packs a prune found deletable and the
// locks present after it changed the index. A later prune deletes the
// packs once every named lock is gone, after checking again that no
// snapshot needs them (docs/FORMAT.md, "Prune").
type Mark struct {
	Version int          `json:"version"`
	Time    time.Time    `json:"time"`
	Packs   []MarkedPack `json:"packs"`
	Locks   []string     `json:"locks"`
}

// MarkedPack is one pack pending deletion.
type MarkedPack struct {
	ID     chunk.ID `json:"id"`
	Reason string   `json:"reason"`
	Size   int64    `json:"size"`
}

// storedMark is a mark with the ID of its object.
type storedMark struct {
	ID chunk.ID
	Mark
}

// decodeMark parses a mark's plaintext and checks it.
func decodeMark(plain []byte) (Mark, error) {
	var m Mark
	if err := json.Unmarshal(plain, &m); err != nil {
		return m, fmt.Errorf("decode mark: %w", err)
	}
	if m.Version != markVersion {
		return m, fmt.Errorf("mark version %d: this cairn reads version %d", m.Version, markVersion)
	}
	for _, p := range m.Packs {
		switch p.Reason {
		case ReasonGarbage, ReasonRepacked, ReasonUnindexed:
		default:
			return m, fmt.Errorf("mark: pack %s has unknown reason %q", p.ID.Short(), p.Reason)
		}
	}
	return m, nil
}

// LoadMarks reads every mark. A mark that cannot be read stops the caller:
// guessing what it held could delete a pack or keep one forever.
func LoadMarks(ctx context.Context, r *repo.Repository) ([]storedMark, error) {
	ids, err := r.ListIDs(ctx, "marks/")
	if err != nil {
		return nil, err
	}
	out := make([]storedMark, 0, len(ids))
	for _, id := range ids {
		plain, err := r.LoadMark(ctx, id)
		if err != nil {
			return nil, err
		}
		m, err := decodeMark(plain)
		if err != nil {
			return nil, fmt.Errorf("mark %s: %w", id.Short(), err)
		}
		out = append(out, storedMark{ID: id, Mark: m})
	}
	return out, nil
}

// MarkedPacks returns every pack some mark lists, with its reason, for
// check.
func MarkedPacks(ctx context.Context, r *repo.Repository) (map[chunk.ID]string, error) {
	marks, err := LoadMarks(ctx, r)
	if err != nil {
		return nil, err
	}
	out := map[chunk.ID]string{}
	for _, m := range marks {
		for _, p := range m.Packs {
			out[p.ID] = p.Reason
		}
	}
	return out, nil
}

func saveMark(ctx context.Context, r *repo.Repository, m Mark) (chunk.ID, error) {
	m.Version = markVersion
	plain, err := json.Marshal(m)
	if err != nil {
		return chunk.ID{}, err
	}
	return r.SaveMark(ctx, plain)
}
