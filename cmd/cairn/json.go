package main

// The --json output of every command, as types of their own: the CLI's
// contract with scripts. They are filled from the internal structs field by
// field, so renaming a manifest or report field cannot change what scripts
// read. docs/JSON.md documents them; TestJSONShapes pins each shape
// against testdata/json/*.json, and those examples against docs/JSON.md.

import (
	"errors"
	"time"

	"github.com/cairn-backup/cairn/app"
	"github.com/cairn-backup/cairn/app/daemon"
	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/archive"
	"github.com/cairn-backup/cairn/repo/check"
	"github.com/cairn-backup/cairn/repo/prune"
	"github.com/cairn-backup/cairn/repo/replicate"
	"github.com/cairn-backup/cairn/repo/restore"
	"github.com/cairn-backup/cairn/repo/stats"
	"github.com/cairn-backup/cairn/snapshot"
)

// componentJSON is one component of a snapshot (backup, snapshots, ls).
type componentJSON struct {
	Name       string            `json:"name"`
	Kind       string            `json:"kind"`
	Tree       string            `json:"tree"`
	Source     string            `json:"source,omitempty"`
	Size       uint64            `json:"size"`
	Files      uint64            `json:"files"`
	Dirs       uint64            `json:"dirs,omitempty"`
	Started    time.Time         `json:"started"`
	Finished   time.Time         `json:"finished"`
	Point      time.Time         `json:"point,omitzero"`
	AddedBytes uint64            `json:"added_bytes"`
	Errors     uint64            `json:"errors,omitempty"`
	Meta       map[string]string `json:"meta,omitempty"`
}

func toComponentsJSON(cs []snapshot.Component) []componentJSON {
	out := make([]componentJSON, 0, len(cs))
	for _, c := range cs {
		out = append(out, componentJSON{
			Name: c.Name, Kind: c.Kind, Tree: c.Tree.String(), Source: c.Source, Size: c.Size, Files: c.Files, Dirs: c.Dirs,
			Started: c.Started, Finished: c.Finished, Point: c.Point, AddedBytes: c.AddedBytes, Errors: c.Errors, Meta: c.Meta,
		})
	}
	return out
}

// backupJSON is backup --json.
type backupJSON struct {
	ID               string          `json:"id"`
	ShortID          string          `json:"short_id"`
	Time             time.Time       `json:"time"`
	Components       []componentJSON `json:"components"`
	Size             uint64          `json:"size"`
	AddedBytes       uint64          `json:"added_bytes"`
	AddedBlobs       uint64          `json:"added_blobs"`
	AddedPacks       uint64          `json:"added_packs"`
	SkewSeconds      float64         `json:"skew_seconds"`
	PointSkewSeconds float64         `json:"point_skew_seconds"`
	DurationSeconds  float64         `json:"duration_seconds"`
	FileErrors       []string        `json:"file_errors"`
	Skipped          []string        `json:"skipped"`
}

func toBackupJSON(res *archive.Result, el time.Duration) backupJSON {
	skipped := make([]string, 0, len(res.Skipped))
	for _, sk := range res.Skipped {
		skipped = append(skipped, sk.Error())
	}
	errs := make([]string, 0, len(res.FileErrors))
	for _, fe := range res.FileErrors {
		errs = append(errs, fe.Error())
	}
	return backupJSON{
		ID: res.ID.String(), ShortID: res.ID.Short(), Time: res.Snapshot.Time,
		Components: toComponentsJSON(res.Snapshot.Components), Size: res.Snapshot.Size(),
		AddedBytes: res.Saver.StoredBytes, AddedBlobs: res.Saver.Blobs, AddedPacks: res.Saver.Packs,
		SkewSeconds: res.Snapshot.Skew().Seconds(), PointSkewSeconds: res.Snapshot.PointSkew().Seconds(), DurationSeconds: el.Seconds(),
		FileErrors: errs, Skipped: skipped,
	}
}

// checkJSON is check --json.
type checkJSON struct {
	Snapshots         int              `json:"snapshots"`
	Trees             int              `json:"trees"`
	Blobs             int              `json:"blobs"`
	Packs             int              `json:"packs"`
	ReadBytes         uint64           `json:"read_bytes,omitempty"`
	Errors            []string         `json:"errors,omitempty"`
	DamagedPacks      []packDamageJSON `json:"damaged_packs,omitempty"`
	Warnings          []string         `json:"warnings,omitempty"`
	AffectedSnapshots []string         `json:"affected_snapshots,omitempty"`
}

type packDamageJSON struct {
	Pack   string   `json:"pack"`
	Reason string   `json:"reason"`
	Blobs  []string `json:"blobs,omitempty"` // blobs that cannot be read from it
}

func toCheckJSON(rep *check.Report) checkJSON {
	out := checkJSON{
		Snapshots: rep.Snapshots, Trees: rep.Trees, Blobs: rep.Blobs, Packs: rep.Packs, ReadBytes: rep.ReadBytes,
		Errors: rep.Errors, Warnings: rep.Warnings, AffectedSnapshots: rep.MissingFor,
	}
	for _, d := range rep.Damaged {
		out.DamagedPacks = append(out.DamagedPacks, packDamageJSON{Pack: d.Pack.String(), Reason: d.Reason, Blobs: idStrings(d.Blobs)})
	}
	return out
}

func idStrings(ids []chunk.ID) []string {
	if ids == nil {
		return nil
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

// configCheckJSON is config check --json.
type configCheckJSON struct {
	File     string   `json:"file"`
	OK       bool     `json:"ok"`
	Problems []string `json:"problems"`
}

// copyJSON is copy --json: one entry per --to target, in the order given,
// whether one target or several.
type copyJSON struct {
	Targets []copyTargetJSON `json:"targets"`
}

type copyTargetJSON struct {
	Repository string `json:"repository"`
	// Mode is how data moved: "packs" (whole packs, a replica sharing the
	// data key), "blobs" (a replica) or "rewrite" (unrelated repositories).
	Mode           string       `json:"mode"`
	Copied         []copiedJSON `json:"copied"`
	AlreadyPresent []string     `json:"already_present"`
	Blobs          uint64       `json:"blobs"`
	Packs          uint64       `json:"packs"`
	Bytes          uint64       `json:"bytes"`
}

type copiedJSON struct {
	Source string `json:"source"`
	Target string `json:"target"`
}

func toCopyJSON(to []string, results []*replicate.Result) copyJSON {
	out := copyJSON{Targets: []copyTargetJSON{}}
	for i, res := range results {
		if res == nil {
			continue // failed before it started; the error says why
		}
		t := copyTargetJSON{
			Repository: to[i], Mode: string(res.Mode), Copied: []copiedJSON{}, AlreadyPresent: []string{},
			Blobs: res.Blobs, Packs: res.Packs, Bytes: res.Bytes,
		}
		for _, c := range res.Copied {
			t.Copied = append(t.Copied, copiedJSON{Source: c.Source.String(), Target: c.Target.String()})
		}
		for _, id := range res.Skipped {
			t.AlreadyPresent = append(t.AlreadyPresent, id.String())
		}
		out.Targets = append(out.Targets, t)
	}
	return out
}

// initJSON is init --json.
type initJSON struct {
	ID         string `json:"id"`
	Repository string `json:"repository"`
}

// restoreJSON is restore --json into a target.
type restoreJSON struct {
	Snapshot        string   `json:"snapshot"`
	Target          string   `json:"target"`
	Files           uint64   `json:"files"`
	Dirs            uint64   `json:"dirs"`
	Bytes           uint64   `json:"bytes"`
	Verified        bool     `json:"verified"`
	DurationSeconds float64  `json:"duration_seconds"`
	Errors          []string `json:"errors"`
}

func toRestoreJSON(sn chunk.ID, target string, res *restore.Result, verify bool, el time.Duration) restoreJSON {
	errs := make([]string, 0, len(res.Errors))
	for _, e := range res.Errors {
		errs = append(errs, e.Error())
	}
	return restoreJSON{
		Snapshot: sn.String(), Target: target, Files: res.Files, Dirs: res.Dirs, Bytes: res.Bytes,
		Verified: verify && len(res.Errors) == 0, DurationSeconds: el.Seconds(), Errors: errs,
	}
}

// restoreLiveJSON is restore --json with --config to the live targets.
// On a failure part-way, FailedComponent ("" for a global hook) and
// RestoredComponents say where the application stands.
type restoreLiveJSON struct {
	Snapshot           string   `json:"snapshot"`
	Restored           bool     `json:"restored"`
	FailedComponent    *string  `json:"failed_component,omitempty"`
	RestoredComponents []string `json:"restored_components,omitempty"`
	Error              string   `json:"error,omitempty"`
}

// restorePlanJSON is restore --json --dry-run with --config (and the plan
// printed when its checks fail).
type restorePlanJSON struct {
	Snapshot  string     `json:"snapshot"`
	OK        bool       `json:"ok"`
	Steps     []stepJSON `json:"steps"`
	OnFailure []stepJSON `json:"on_failure"`
	Problems  []string   `json:"problems"`
}

type stepJSON struct {
	Component string `json:"component,omitempty"`
	Action    string `json:"action"`
	Target    string `json:"target,omitempty"`
	Destroys  string `json:"destroys,omitempty"`
}

func toStepsJSON(steps []app.Step) []stepJSON {
	out := make([]stepJSON, 0, len(steps))
	for _, s := range steps {
		out = append(out, stepJSON{Component: s.Component, Action: s.Action, Target: s.Target, Destroys: s.Destroys})
	}
	return out
}

func toRestorePlanJSON(p *app.LivePlan, err error) restorePlanJSON {
	out := restorePlanJSON{OK: err == nil, Problems: []string{}}
	if p != nil {
		out.Snapshot = p.Snapshot.ID.String()
		out.Steps, out.OnFailure = toStepsJSON(p.Steps), toStepsJSON(p.OnFailure)
	}
	var pp *app.PlanProblems
	if errors.As(err, &pp) {
		out.Problems = pp.List
	} else if err != nil {
		out.Problems = []string{err.Error()}
	}
	return out
}

// snapshotJSON is one element of snapshots --json.
type snapshotJSON struct {
	ID               string    `json:"id"`
	ShortID          string    `json:"short_id"`
	Time             time.Time `json:"time"`
	Host             string    `json:"host"`
	App              string    `json:"app,omitempty"`
	Tags             []string  `json:"tags"`
	Size             uint64    `json:"size"`
	SkewSeconds      float64   `json:"skew_seconds"`
	PointSkewSeconds float64   `json:"point_skew_seconds"`
	Program          string    `json:"program,omitempty"`
	// Original is the snapshot this one was copied from, in the source
	// repository.
	Original   string          `json:"original,omitempty"`
	Components []componentJSON `json:"components"`
}

func toSnapshotJSON(e repo.SnapshotEntry) snapshotJSON {
	tags := e.Tags
	if tags == nil {
		tags = []string{}
	}
	return snapshotJSON{
		ID: e.ID.String(), ShortID: e.ID.Short(), Time: e.Time, Host: e.Host, App: e.App, Tags: tags,
		Size: e.Size(), SkewSeconds: e.Skew().Seconds(), PointSkewSeconds: e.PointSkew().Seconds(), Program: e.Program, Original: originalOf(e), Components: toComponentsJSON(e.Components),
	}
}

// lsEntry is one element of ls --json SNAPSHOT PATH.
type lsEntry struct {
	Path    string    `json:"path"`
	Type    string    `json:"type"`
	Mode    string    `json:"mode"`
	Size    uint64    `json:"size"`
	ModTime time.Time `json:"mtime"`
	Target  string    `json:"linktarget,omitempty"`
}

// statsJSON is stats --json.
type statsJSON struct {
	Snapshots        int                  `json:"snapshots"`
	LogicalBytes     uint64               `json:"logical_bytes"`
	Files            uint64               `json:"files"`
	UniqueBlobs      uint64               `json:"unique_blobs"`
	UniqueRawBytes   uint64               `json:"unique_raw_bytes"`
	StoredBytes      uint64               `json:"stored_bytes"`
	DedupRatio       float64              `json:"dedup_ratio"`
	CompressionRatio float64              `json:"compression_ratio"`
	RepositoryBytes  uint64               `json:"repository_bytes"`
	Components       []componentStatsJSON `json:"components"`
}

type componentStatsJSON struct {
	Name             string  `json:"name"`
	LogicalBytes     uint64  `json:"logical_bytes"`
	UniqueRawBytes   uint64  `json:"unique_raw_bytes"`
	StoredBytes      uint64  `json:"stored_bytes"`
	DedupRatio       float64 `json:"dedup_ratio"`
	CompressionRatio float64 `json:"compression_ratio"`
}

func toStatsJSON(st *stats.Stats) statsJSON {
	out := statsJSON{
		Snapshots: st.Snapshots, LogicalBytes: st.LogicalBytes, Files: st.Files, UniqueBlobs: st.UniqueBlobs,
		UniqueRawBytes: st.UniqueRawBytes, StoredBytes: st.StoredBytes, DedupRatio: st.DedupRatio,
		CompressionRatio: st.CompressionRatio, RepositoryBytes: st.RepositoryBytes, Components: []componentStatsJSON{},
	}
	for _, c := range st.Components {
		out.Components = append(out.Components, componentStatsJSON{
			Name: c.Name, LogicalBytes: c.LogicalBytes, UniqueRawBytes: c.UniqueRawBytes, StoredBytes: c.StoredBytes,
			DedupRatio: c.DedupRatio, CompressionRatio: c.CompressionRatio,
		})
	}
	return out
}

// forgetJSON is the stable shape of `forget --json`: one entry per
// repository, one group per retention group, one line per snapshot.
type forgetJSON struct {
	Repository string            `json:"repository"`
	DryRun     bool              `json:"dry_run"`
	Groups     []forgetGroupJSON `json:"groups"`
	Removed    int               `json:"removed"`
	Kept       int               `json:"kept"`
	Prune      *pruneJSON        `json:"prune,omitempty"`
}

type forgetGroupJSON struct {
	Group     groupKeyJSON         `json:"group"`
	Snapshots []forgetSnapshotJSON `json:"snapshots"`
}

type forgetSnapshotJSON struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Host    string    `json:"host"`
	App     string    `json:"app,omitempty"`
	Tags    []string  `json:"tags"`
	Keep    bool      `json:"keep"`
	Reasons []string  `json:"reasons"`
}

// groupKeyJSON is what the snapshots of one retention group share (the
// fields of --group-by; the others are left out).
type groupKeyJSON struct {
	App  string   `json:"app,omitempty"`
	Host string   `json:"host,omitempty"`
	Tags []string `json:"tags,omitempty"`
}

// pruneJSON is prune --json, and the prune part of forget --prune --json.
type pruneJSON struct {
	DryRun        bool   `json:"dry_run"`
	Snapshots     int    `json:"snapshots"`
	Packs         int    `json:"packs"`
	StoredBytes   uint64 `json:"stored_bytes"`
	UsedBlobs     int    `json:"used_blobs"`
	UsedBytes     uint64 `json:"used_bytes"`
	UnusedBytes   uint64 `json:"unused_bytes"`
	GarbagePacks  int    `json:"garbage_packs"`
	RepackedPacks int    `json:"repacked_packs"`
	RepackedBytes uint64 `json:"repacked_bytes"`
	WrittenPacks  int    `json:"written_packs"`
	Unindexed     int    `json:"unindexed_packs"`
	MarkedBytes   uint64 `json:"marked_bytes"`
	MarksSwept    int    `json:"marks_swept"`
	MarksWaiting  int    `json:"marks_waiting"`
	DeletedPacks  int    `json:"deleted_packs"`
	FreedBytes    uint64 `json:"freed_bytes"`
	Resurrected   int    `json:"resurrected_packs"`
}

func toPruneJSON(r *prune.Report) pruneJSON {
	return pruneJSON{
		DryRun: r.DryRun, Snapshots: r.Snapshots, Packs: r.Packs, StoredBytes: r.StoredBytes,
		UsedBlobs: r.UsedBlobs, UsedBytes: r.UsedBytes, UnusedBytes: r.UnusedBytes,
		GarbagePacks: r.GarbagePacks, RepackedPacks: r.RepackedPacks, RepackedBytes: r.RepackedBytes,
		WrittenPacks: r.WrittenPacks, Unindexed: r.Unindexed, MarkedBytes: r.MarkedBytes,
		MarksSwept: r.MarksSwept, MarksWaiting: r.MarksWaiting, DeletedPacks: r.DeletedPacks,
		FreedBytes: r.FreedBytes, Resurrected: r.Resurrected,
	}
}

// originalOf is the ID of the snapshot e was copied from, or "".
func originalOf(e repo.SnapshotEntry) string {
	if e.Original == nil {
		return ""
	}
	return e.Original.String()
}

// statusJSON is one application in `cairn status --json`.
type statusJSON struct {
	App        string  `json:"app"`
	Config     string  `json:"config"`
	Repository string  `json:"repository"`
	State      string  `json:"state"` // "ok" or "attention"
	RPOSeconds float64 `json:"rpo_seconds"`
	Snapshots  int     `json:"snapshots"` // the app's, in its repository
	// RepositoryBytes is the size of the packs in the app's repository
	// (shared with any other app in it); null when it cannot be read.
	RepositoryBytes *uint64             `json:"repository_bytes"`
	Latest          *snapshotStatusJSON `json:"latest"`
	Replicas        []replicaStatusJSON `json:"replicas"`
	LastRun         *runStatusJSON      `json:"last_run"`
	NextRun         *time.Time          `json:"next_run"`
	LastDrill       *daemon.Drill       `json:"last_drill"`
	Problems        []string            `json:"problems"`
}

type snapshotStatusJSON struct {
	ID          string    `json:"short_id"`
	Time        time.Time `json:"time"`
	AgeSeconds  float64   `json:"age_seconds"`
	SkewSeconds float64   `json:"skew_seconds"`
}

type replicaStatusJSON struct {
	Repository string     `json:"repository"`
	Latest     string     `json:"latest,omitempty"`
	LatestTime *time.Time `json:"latest_time,omitempty"`
	LagSeconds *float64   `json:"lag_seconds,omitempty"`
	Error      string     `json:"error,omitempty"`
}

type runStatusJSON struct {
	Started         time.Time `json:"started"`
	DurationSeconds float64   `json:"duration_seconds"`
	Result          string    `json:"result"`
	Error           string    `json:"error,omitempty"`
	Failures        int       `json:"failures"`
}

// errorJSON is what --json prints on stdout when a command fails before
// printing its result; the same error is on stderr.
type errorJSON struct {
	Error    string `json:"error"`
	ExitCode int    `json:"exit_code"`
}

// drillJSON is `cairn drill --json`.
type drillJSON struct {
	Snapshot   string               `json:"snapshot"`
	Time       time.Time            `json:"time"`
	OK         bool                 `json:"ok"`
	Seconds    float64              `json:"seconds"`
	Components []drillComponentJSON `json:"components"`
	Probes     []drillProbeJSON     `json:"probes"`
	Cleanup    []string             `json:"cleanup_problems"`
	Error      string               `json:"error,omitempty"`
}

type drillComponentJSON struct {
	Name    string  `json:"name"`
	Kind    string  `json:"kind"`
	Into    string  `json:"into"`
	Bytes   uint64  `json:"bytes"`
	Seconds float64 `json:"seconds"`
	Error   string  `json:"error,omitempty"`
}

type drillProbeJSON struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	Error   string  `json:"error,omitempty"`
}

func toDrillJSON(rep *app.DrillReport, err error) drillJSON {
	out := drillJSON{Snapshot: rep.Snapshot.ID.Short(), OK: err == nil, Seconds: rep.Took.Seconds(),
		Components: []drillComponentJSON{}, Probes: []drillProbeJSON{}, Cleanup: []string{}}
	if rep.Snapshot.Snapshot != nil {
		out.Time = rep.Snapshot.Time
	}
	if err != nil {
		out.Error = err.Error()
	}
	errText := func(e error) string {
		if e == nil {
			return ""
		}
		return e.Error()
	}
	for _, c := range rep.Components {
		out.Components = append(out.Components, drillComponentJSON{Name: c.Name, Kind: c.Kind, Into: c.Into, Bytes: c.Bytes,
			Seconds: c.Took.Seconds(), Error: errText(c.Err)})
	}
	for _, p := range rep.Probes {
		out.Probes = append(out.Probes, drillProbeJSON{Name: p.Name, Seconds: p.Took.Seconds(), Error: errText(p.Err)})
	}
	out.Cleanup = append(out.Cleanup, rep.Cleanup...)
	return out
}

// progressJSON is one line of progress on stderr with --json, every
// --progress-interval while a long command runs.
type progressJSON struct {
	Type           string   `json:"type"` // "progress"
	Command        string   `json:"command"`
	Files          uint64   `json:"files"`
	Bytes          uint64   `json:"bytes"`
	TotalBytes     uint64   `json:"total_bytes,omitempty"`
	Percent        *float64 `json:"percent,omitempty"`
	ETASeconds     *float64 `json:"eta_seconds,omitempty"`
	Errors         uint64   `json:"errors"`
	ElapsedSeconds float64  `json:"elapsed_seconds"`
}
