//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/cairn-backup/cairn/internal/minioserver"
)

// Steps of the S3 part of the protocol (-s3), run after the local protocol.
const (
	stepS3Backup      = "s3-backup"      // first backup of v1 into a fresh S3 repository
	stepCopyReplica   = "copy-replica"   // cairn: local → replica sharing the data key (whole packs)
	stepCopyUnrelated = "copy-unrelated" // cairn: local → unrelated repository (re-encrypt)
	stepCopy          = "copy"           // restic's only kind of copy (re-encrypt)
	stepS3Restore     = "s3-restore"     // restore of the latest snapshot (v2) from the copy marked restoreFrom
)

// Credentials of the MinIO server the benchmark runs.
const (
	minioUser   = "cairnbench"
	minioSecret = "cairnbench-secret-key"
)

// minioInstallHint is the advice given when -s3 is asked for and no minio
// binary is found.
const minioInstallHint = "run scripts/install-minio.sh (builds the pinned MinIO with go install), pass -minio PATH, or leave the S3 rows out with -s3=false"

// findMinio returns the minio binary the S3 tests use too (see
// minioserver.Find), or "" if there is none.
func findMinio() string {
	bin, _ := minioserver.Find()
	return bin
}

// minioServer is a MinIO server on 127.0.0.1 keeping its data under the
// work dir (internal/minioserver, the launcher the S3 tests use); stop
// kills it and deletes the data.
type minioServer struct {
	*minioserver.Server
}

// startMinio starts bin with its data in dir (emptied first: a killed run
// may have left one) and waits until it answers S3 requests.
func startMinio(ctx context.Context, bin, dir string) (*minioServer, error) {
	s, err := minioserver.Start(ctx, minioserver.Options{
		Binary: bin, Dir: dir, User: minioUser, Password: minioSecret, Env: cleanEnv(),
	})
	if err != nil {
		return nil, err
	}
	return &minioServer{s}, nil
}

// stop kills the server, waits for it and deletes its data.
func (m *minioServer) stop() error { return m.Stop() }

// url is the S3 location of a repository at prefix in bucket, as both cairn
// and restic spell it.
func (m *minioServer) url(bucket, prefix string) string {
	return "s3:http://" + m.Endpoint + "/" + bucket + "/" + prefix
}

// path is where MinIO keeps the objects under prefix in bucket (single-drive
// layout: one directory per object), to measure what a step stored.
func (m *minioServer) path(bucket, prefix string) string {
	return filepath.Join(m.Dir, "data", bucket, filepath.FromSlash(prefix))
}

// env is what a tool needs to reach the server.
func (m *minioServer) env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + minioUser, "AWS_SECRET_ACCESS_KEY=" + minioSecret}
}

// s3Cmd is one command of the S3 part. repo is the repository the tool's
// own environment names (tool.env): the S3 repository, except for cairn's
// copy, which runs on the local source with the target in its arguments.
type s3Cmd struct {
	repo string
	env  []string // added to the tool's environment
	args []string
}

// copyPlan is one way a tool copies the snapshots of its local repository
// into a new S3 repository.
type copyPlan struct {
	step   string // stepCopyReplica, stepCopyUnrelated or stepCopy
	target string // prefix of the target repository (in the tool's bucket)
	init   s3Cmd  // creates the target (not timed)
	copy   s3Cmd  // the timed copy
	// check judges what the copy printed, given how many snapshots the
	// local repository has, so a copy that did nothing fails the run.
	check func(stdout string, snapshots int) error
	// restoreFrom marks the target the restore from S3 reads: it holds
	// both snapshots, so the restored v2 is compared like a local restore.
	restoreFrom bool
}

// s3Tool is a tool with an S3 backend: it is measured against MinIO too.
// borg has none.
type s3Tool interface {
	tool
	// s3InitArgs creates a repository on S3 (with its bucket, if need be).
	s3InitArgs() []string
	// copyPlans returns the copies to measure from local to the targets
	// url(prefix) names; pwFile holds the password of every repository.
	copyPlans(local, prefix string, url func(prefix string) string, pwFile string) []copyPlan
}

func (t cairnTool) s3InitArgs() []string { return []string{"init", "--create-bucket"} }

// cairn copies to a replica sharing the data key (packs are sent whole,
// never decrypted) and to an unrelated repository (blobs re-encrypted).
// The restore from S3 reads the replica: its packs are laid out as the
// backups wrote them, as in a repository backed up to S3 directly.
func (t cairnTool) copyPlans(local, prefix string, url func(string) string, _ string) []copyPlan {
	plan := func(step, suffix, mode string, initArgs ...string) copyPlan {
		target := prefix + suffix
		return copyPlan{
			step: step, target: target,
			init: s3Cmd{repo: url(target), env: []string{"CAIRN_FROM_PASSWORD=" + benchPassword}, args: initArgs},
			copy: s3Cmd{repo: local, env: []string{"CAIRN_TO_PASSWORD=" + benchPassword}, args: []string{"copy", "--to", url(target), "--json"}},
			check: func(stdout string, snapshots int) error {
				return checkCairnCopy(stdout, mode, snapshots)
			},
		}
	}
	replica := plan(stepCopyReplica, "-replica", "packs", "init", "--create-bucket", "--replica-of", local, "--same-data-key")
	replica.restoreFrom = true
	return []copyPlan{replica, plan(stepCopyUnrelated, "-copy", "rewrite", "init", "--create-bucket")}
}

// checkCairnCopy checks cairn copy --json output (docs/JSON.md) for its one
// target: every snapshot copied, in the expected mode.
func checkCairnCopy(stdout, mode string, snapshots int) error {
	var all struct {
		Targets []struct {
			Mode   string            `json:"mode"`
			Copied []json.RawMessage `json:"copied"`
		} `json:"targets"`
	}
	if err := json.Unmarshal([]byte(stdout), &all); err != nil {
		return fmt.Errorf("cannot read copy --json output: %w\n%s", err, indentTail(stdout, 10))
	}
	if len(all.Targets) != 1 {
		return fmt.Errorf("copy --json reported %d targets, want 1\n%s", len(all.Targets), indentTail(stdout, 10))
	}
	out := all.Targets[0]
	if out.Mode != mode || len(out.Copied) != snapshots {
		return fmt.Errorf("copy reported mode %q and %d snapshots copied, want mode %q and %d", out.Mode, len(out.Copied), mode, snapshots)
	}
	return nil
}

func (t resticTool) s3InitArgs() []string { return []string{"init"} }

// restic has one kind of copy: blobs decrypted and re-encrypted, into a
// repository made with the source's chunker parameters so later backups
// deduplicate with the copied data. The source password comes from a file:
// restic 0.14 reads no RESTIC_FROM_PASSWORD.
func (t resticTool) copyPlans(local, prefix string, url func(string) string, pwFile string) []copyPlan {
	target := prefix + "-copy"
	from := []string{"--from-repo", local, "--from-password-file", pwFile}
	return []copyPlan{{
		step: stepCopy, target: target,
		init:        s3Cmd{repo: url(target), args: append([]string{"init", "--copy-chunker-params"}, from...)},
		copy:        s3Cmd{repo: url(target), args: append([]string{"copy"}, from...)},
		check:       checkResticCopy,
		restoreFrom: true,
	}}
}

// resticSaved matches the line restic copy prints per copied snapshot:
// "snapshot ID saved" up to 0.18, "snapshot ID saved, copied from source
// snapshot ID" from 0.19 on.
var resticSaved = regexp.MustCompile(`(?m)^snapshot [0-9a-f]+ saved(, copied from source snapshot [0-9a-f]+)?\s*$`)

// checkResticCopy counts the lines restic copy prints per saved snapshot.
func checkResticCopy(stdout string, snapshots int) error {
	if n := len(resticSaved.FindAllString(stdout, -1)); n != snapshots {
		return fmt.Errorf("copy saved %d snapshots, want %d\n%s", n, snapshots, indentTail(stdout, 10))
	}
	return nil
}

// localSnapshots is how many snapshots the local protocol leaves.
const localSnapshots = 2

// s3Protocol is the S3 part, run after the local protocol left the local
// repository with its two snapshots: make the live path v1 again, back it up
// into a fresh repository on MinIO, then copy the local repository's
// snapshots into fresh S3 repositories in each of the tool's ways, then
// restore the latest snapshot (v2) from one of those copies with a fresh
// cache and compare it with v2.
func (b *bench) s3Protocol(t s3Tool, ds *dataset, res *runResult) error {
	m := b.minio
	bucket := t.name() + "-bench"
	prefix := ds.name
	if res.Rep > 1 { // MinIO lives for the whole run: each repetition gets new repositories
		prefix += fmt.Sprintf("-run%d", res.Rep)
	}
	url := func(p string) string { return m.url(bucket, p) }
	local, cache := b.l.repo(t.name(), ds.name), b.l.cache(t.name(), ds.name+"-s3")
	if err := discard(b.l, cache); err != nil {
		return err
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return err
	}
	pwFile := filepath.Join(b.l.root, "password")
	if err := os.WriteFile(pwFile, []byte(benchPassword), 0o600); err != nil {
		return err
	}
	spec := func(c s3Cmd, stdin string) cmdSpec {
		env := append(append(append(cleanEnv(), m.env()...), t.env(c.repo, cache)...), c.env...)
		return cmdSpec{Path: t.path(), Args: c.args, Env: env, Stdin: stdin}
	}

	if err := ds.reset(); err != nil {
		return fmt.Errorf("prepare live v1 data: %w", err)
	}
	if _, err := runCmd(b.ctx, spec(s3Cmd{repo: url(prefix), args: t.s3InitArgs()}, "")); err != nil {
		return fmt.Errorf("init on MinIO: %w", err)
	}
	args, stdin := t.backup(url(prefix), ds.name, ds.src, 1)
	if _, err := b.timed(res, stepS3Backup, spec(s3Cmd{repo: url(prefix), args: args}, stdin), m.path(bucket, prefix), ds.v1Bytes); err != nil {
		return err
	}

	// Copy throughput is measured on the bytes of the local repository's
	// packs (data/), what a copy has to move at most.
	packs, err := dirSize(filepath.Join(local, "data"))
	if err != nil {
		return err
	}
	if packs == 0 {
		return fmt.Errorf("local repository %s has no packs in data/", local)
	}
	var from string // the copy target the restore reads
	for _, p := range t.copyPlans(local, prefix, url, pwFile) {
		if _, err := runCmd(b.ctx, spec(p.init, "")); err != nil {
			return fmt.Errorf("init copy target %s: %w", url(p.target), err)
		}
		u, err := b.timed(res, p.step, spec(p.copy, ""), m.path(bucket, p.target), packs)
		if err != nil {
			return err
		}
		if err := p.check(u.Stdout, localSnapshots); err != nil {
			return fmt.Errorf("%s: %w", p.step, err)
		}
		if p.restoreFrom {
			from = p.target
		}
	}
	if from == "" {
		return fmt.Errorf("%s has no copy to restore from", t.name())
	}
	return b.s3Restore(t, ds, res, url(from), cache, spec, m.path(bucket, from))
}

// s3Restore restores the latest snapshot of the S3 repository at url into
// an empty directory, with an empty cache (every index file and pack comes
// from MinIO), and checks the result against v2.
func (b *bench) s3Restore(t s3Tool, ds *dataset, res *runResult, url, cache string, spec func(s3Cmd, string) cmdSpec, objects string) error {
	target := b.l.restore(t.name(), ds.name+"-s3")
	for _, d := range []string{cache, target} {
		if err := discard(b.l, d); err != nil {
			return err
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	args, _ := t.restore(url, ds.name, target)
	if _, err := b.timed(res, stepS3Restore, spec(s3Cmd{repo: url, args: args}, ""), objects, ds.v2Bytes); err != nil {
		return err
	}
	if err := ds.verify(t.restored(ds.name, target, ds.src)); err != nil {
		return fmt.Errorf("%w (restore from MinIO): %v", errRestoreWrong, err)
	}
	b.logf("[%s/%s] restore from MinIO verified: identical to v2", t.name(), ds.name)
	return discard(b.l, target)
}

// s3Version is the first line of minio --version, for the report.
func s3Version(ctx context.Context, bin string) string {
	v, err := firstLine(ctx, bin, "--version")
	if err != nil || v == "" {
		return "minio (version unknown)"
	}
	return v
}
