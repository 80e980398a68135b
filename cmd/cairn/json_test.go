package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

var updateJSON = flag.Bool("update", false, "rewrite testdata/json from the current output types")

// TestJSONShapes pins every --json result: each output type, filled from
// the internal structs it is made of, must marshal to testdata/json/NAME.json
// byte for byte, and docs/JSON.md must show that same example. A renamed
// field in a manifest or report therefore shows here, not in a user's
// script. Run with -update after a deliberate change, and update the
// docs.
func TestJSONShapes(t *testing.T) {
	id := func(s string) chunk.ID { return chunk.ObjectID([]byte(s)) }
	at := time.Date(2026, 11, 30, 4, 0, 0, 0, time.UTC)
	comps := []snapshot.Component{
		{Name: "db", Kind: snapshot.KindStream, Tree: id("t1"), Source: "pg_dump -Fc app", Size: 1048576, Files: 1, Started: at, Finished: at.Add(3 * time.Second),
			Point: at.Add(500 * time.Millisecond), AddedBytes: 524288, Meta: map[string]string{"command": "pg_dump -Fc app", "exit": "0"}},
		{Name: "files", Kind: snapshot.KindTree, Tree: id("t2"), Source: "/srv/files", Size: 2097152, Files: 12, Dirs: 3, Started: at.Add(500 * time.Millisecond),
			Finished: at.Add(2500 * time.Millisecond), AddedBytes: 4096, Errors: 1},
	}
	sn := &snapshot.Snapshot{Time: at, Host: "app1", App: "alm", Tags: []string{"nightly"}, Program: "cairn v1", Components: comps}
	outputs := map[string]any{
		"backup": toBackupJSON(&archive.Result{
			ID: id("sn"), Snapshot: sn,
			FileErrors: []archive.FileError{{Component: "files", Path: "locked.db", Err: errors.New("permission denied")}},
			Skipped:    []archive.FileError{{Component: "files", Path: "run/app.sock", Err: errors.New("socket: not stored")}},
			Saver:      repo.SaverStats{Blobs: 7, StoredBytes: 528384, Packs: 1},
		}, 5*time.Second),
		"check": toCheckJSON(&check.Report{
			Snapshots: 2, Trees: 5, Blobs: 40, Packs: 3, ReadBytes: 3145728,
			Errors:     []string{"files/a.bin: data blob 1a2b3c4d is missing or damaged"},
			Damaged:    []check.PackDamage{{Pack: id("p1"), Reason: "content does not match its name", Blobs: []chunk.ID{id("b1")}}},
			Warnings:   []string{"stray object data/zz"},
			MissingFor: []string{"0a1b2c3d: 1 blobs unreadable"},
		}),
		"config-check": configCheckJSON{File: "cairn.yaml", OK: false, Problems: []string{"cairn.yaml:4: component files: tree: no such directory"}},
		"copy": toCopyJSON([]string{"s3:https://offsite.example/bucket/alm", "/mnt/usb/alm"}, []*replicate.Result{
			{Mode: replicate.CopyPacks, Copied: []replicate.CopiedSnapshot{{Source: id("s1"), Target: id("c1")}}, Skipped: []chunk.ID{id("s0")}, Packs: 2, Bytes: 33554432},
			{Mode: replicate.CopyRewrite, Copied: []replicate.CopiedSnapshot{{Source: id("s1"), Target: id("c2")}}, Blobs: 9, Bytes: 1048576},
		}),
		"forget": []forgetJSON{{Repository: "/srv/backup/alm", Groups: []forgetGroupJSON{{Group: groupKeyJSON{App: "alm", Host: "app1"},
			Snapshots: []forgetSnapshotJSON{
				{ID: id("s2").String(), Time: at, Host: "app1", App: "alm", Tags: []string{"nightly"}, Keep: true, Reasons: []string{"last", "daily"}},
				{ID: id("s1").String(), Time: at.Add(-4 * time.Hour), Host: "app1", App: "alm", Tags: []string{}, Keep: false, Reasons: []string{}},
			}}}, Removed: 1, Kept: 1,
			Prune: &pruneJSON{Snapshots: 1, Packs: 3, StoredBytes: 50331648, UsedBlobs: 40, UsedBytes: 16777216, UnusedBytes: 33554432,
				GarbagePacks: 1, RepackedPacks: 1, RepackedBytes: 8388608, WrittenPacks: 1, MarkedBytes: 33554432,
				MarksSwept: 1, DeletedPacks: 2, FreedBytes: 33554432}}},
		"prune": toPruneJSON(&prune.Report{DryRun: true, Snapshots: 12, Packs: 40, StoredBytes: 671088640, UsedBlobs: 5000, UsedBytes: 402653184,
			UnusedBytes: 268435456, GarbagePacks: 10, RepackedPacks: 6, RepackedBytes: 33554432, WrittenPacks: 2, Unindexed: 1,
			MarkedBytes: 285212672, MarksSwept: 1, MarksWaiting: 1, DeletedPacks: 4, FreedBytes: 67108864, Resurrected: 0}),
		"init":          initJSON{ID: id("repo").String(), Repository: "/srv/backup/alm"},
		"ls":            []lsEntry{{Path: "files/docs/a.txt", Type: "file", Mode: "-rw-r--r--", Size: 12, ModTime: at}, {Path: "files/docs/link", Type: "symlink", Mode: "Lrwxrwxrwx", ModTime: at, Target: "a.txt"}},
		"ls-components": toComponentsJSON(comps),
		"restore": toRestoreJSON(id("sn"), "/srv/restore", &restore.Result{Files: 12, Dirs: 3, Bytes: 3145728,
			Errors: []restore.Error{{Path: "files/a.bin", Err: errors.New("data blob 1a2b3c4d in pack 5e6f7a8b: corrupt")}}}, true, 2*time.Second),
		"error":        errorJSON{Error: "backup failed, no snapshot written: component db: command: pg_dump exited with status 1", ExitCode: 1},
		"restore-live": restoreLiveJSON{Snapshot: id("sn").String(), Restored: true},
		"restore-live-failed": restoreLiveJSON{Snapshot: id("sn").String(), FailedComponent: ptr("search"), RestoredComponents: []string{"db"},
			Error: "restore stopped at component search (already restored: db): elasticsearch: restore: node left the cluster"},
		"restore-plan": toRestorePlanJSON(&app.LivePlan{Snapshot: repo.SnapshotEntry{ID: id("sn"), Snapshot: sn},
			Steps: []app.Step{{Action: "hook before: alm-admin deactivate sp1001"},
				{Component: "db", Action: "pipe the dump (1.0 MiB) into the restore command: pg_restore --single-transaction --dbname=alm",
					Destroys: "whatever the restore command replaces (e.g. pg_restore --clean drops the dumped objects first)"},
				{Component: "files", Action: "restore 12 files (2.0 MiB) into a staging directory, re-hash them, move them into place", Target: "/srv/files",
					Destroys: "empties /srv/files first (3 entries now)"}},
			OnFailure: []app.Step{{Action: "hook on_failure: notify-admin"}}}, nil),
		"snapshots": []snapshotJSON{toSnapshotJSON(repo.SnapshotEntry{ID: id("sn"), Snapshot: sn})},
		"status": func() []statusJSON {
			latest := time.Date(2026, 11, 30, 20, 7, 43, 91e6, time.UTC)
			next := time.Date(2026, 12, 1, 0, 7, 43, 16e6, time.UTC)
			lag := 0.0
			return []statusJSON{{App: "alm", Config: "/etc/cairn/apps/alm.yaml", Repository: "/var/backups/cairn", State: "attention", RPOSeconds: 21600, Snapshots: 42, RepositoryBytes: ptr(uint64(9540000)),
				Latest:   &snapshotStatusJSON{ID: "c543d7ae", Time: latest, AgeSeconds: 25211.4, SkewSeconds: 0.0095},
				Replicas: []replicaStatusJSON{{Repository: "s3:https://backup.example.com/alm", Latest: "11f8ac44", LatestTime: &latest, LagSeconds: &lag}},
				LastRun:  &runStatusJSON{Started: time.Date(2026, 11, 30, 20, 7, 43, 16e6, time.UTC), DurationSeconds: 0.16, Result: "ok"},
				NextRun:  &next, Problems: []string{"newest snapshot is 7h0m11s old, past the RPO of 6h0m0s"},
				LastDrill: &daemon.Drill{Time: time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC), Snapshot: "9d8e7f6a", OK: true, Seconds: 41.5,
					RestoreSeconds: map[string]float64{"db": 30.25, "files": 9.5}}}}
		}(),
		"drill": toDrillJSON(&app.DrillReport{Snapshot: repo.SnapshotEntry{ID: id("sn"), Snapshot: sn}, Took: 3500 * time.Millisecond,
			Components: []app.DrillComponentResult{
				{Name: "db", Kind: "stream", Into: "pg_restore --no-owner --dbname=alm_drill", Bytes: 1048576, Took: 2 * time.Second},
				{Name: "files", Kind: "tree", Into: "scratch directory", Bytes: 2097152, Took: time.Second,
					Err: errors.New("1 paths not restored or not as stored, first files/a.bin: data blob 1a2b3c4d: authentication failed")}},
			Probes: []app.ProbeResult{{Name: "issues", Took: 20 * time.Millisecond, Err: errors.New("printed nothing (a query that must return rows returned none)")}},
		}, errors.New("drill failed: snapshot b1a02c36")),
		"stats": toStatsJSON(&stats.Stats{Snapshots: 2, LogicalBytes: 6291456, Files: 26, UniqueBlobs: 30, UniqueRawBytes: 3145728, StoredBytes: 1048576,
			DedupRatio: 2, CompressionRatio: 3, RepositoryBytes: 1100000,
			Components: []stats.ComponentStats{{Name: "db", LogicalBytes: 2097152, UniqueRawBytes: 1048576, StoredBytes: 524288, DedupRatio: 2, CompressionRatio: 2}}}),
	}
	docs, err := os.ReadFile(filepath.Join("..", "..", "docs", "JSON.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range outputs {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := printJSON(&buf, v); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "json", name+".json")
			if *updateJSON {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestJSONShapes -update to create it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("%s --json changed shape; if on purpose, run with -update and update docs/JSON.md.\ngot:\n%s\nwant:\n%s", name, buf.Bytes(), want)
			}
			if !strings.Contains(string(docs), "```json\n"+string(want)+"```") {
				t.Errorf("docs/JSON.md does not show %s as its example:\n%s", golden, want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
