package elasticsearch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/sources/tree"
	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// DefaultSnapshotPrefix names cairn's ES snapshots unless Config says
// otherwise.
const DefaultSnapshotPrefix = "cairn-"

// Config describes one Elasticsearch component.
type Config struct {
	URL string // e.g. http://127.0.0.1:9200
	// Repository is the name of the fs snapshot repository cairn uses. It
	// should be dedicated to cairn: other writers (SLM, people) break the
	// copy.
	Repository string
	// Location is the repository directory as ES sees it; cairn reads the
	// same path, so ES and cairn must see the directory under one name.
	Location string
	// Indices is the index pattern to snapshot, e.g. "mqm_sp1001*" (a comma
	// list of names and wildcards).
	Indices string
	// AllowPartial accepts a PARTIAL snapshot (some shards failed) instead
	// of failing the backup.
	AllowPartial bool
	// DeleteOlder makes Capture.DeleteOlder delete the older ES snapshots
	// of SnapshotPrefix once cairn's snapshot is written.
	DeleteOlder bool
	// SnapshotPrefix starts the names of the ES snapshots cairn takes
	// (default DefaultSnapshotPrefix).
	SnapshotPrefix string
	// AllowForeignRepository accepts a repository whose last writer was
	// another cluster (after a cluster rebuild); by default that is refused,
	// since two writers corrupt a repository.
	AllowForeignRepository bool

	Username, Password string
	APIKey             string
	CACert             []byte            // PEM
	Transport          http.RoundTripper // optional
}

// Errors that callers may want to tell apart (use errors.Is).
var (
	ErrSnapshotFailed   = errors.New("elasticsearch snapshot failed")
	ErrSnapshotPartial  = errors.New("elasticsearch snapshot is partial")
	ErrGenerationMoved  = errors.New("elasticsearch repository changed while it was being copied")
	ErrLocationMismatch = errors.New("elasticsearch repository is registered at another location")
	ErrForeignWriter    = errors.New("elasticsearch repository was last written by another cluster")
	ErrDirInUse         = errors.New("directory belongs to a registered elasticsearch repository")
)

func validName(kind, s string, allowWildcard bool) error {
	bad := "\\/?\"<>|# ,:"
	if !allowWildcard {
		bad += "*"
	}
	switch {
	case s == "":
		return fmt.Errorf("elasticsearch: %s is empty", kind)
	case strings.ToLower(s) != s:
		return fmt.Errorf("elasticsearch: %s %q must be lowercase", kind, s)
	case strings.ContainsAny(s, bad):
		return fmt.Errorf("elasticsearch: %s %q must not contain any of %q", kind, s, bad)
	case strings.HasPrefix(s, "_") || strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-"):
		return fmt.Errorf("elasticsearch: %s %q must not start with '_', '-' or '+'", kind, s)
	}
	return nil
}

func (cfg *Config) check() error {
	if cfg.URL == "" {
		return errors.New("elasticsearch: no URL configured")
	}
	if err := validName("repository name", cfg.Repository, false); err != nil {
		return err
	}
	if !filepath.IsAbs(cfg.Location) {
		return fmt.Errorf("elasticsearch: repository location %q must be an absolute path", cfg.Location)
	}
	cfg.Location = filepath.Clean(cfg.Location)
	if cfg.Indices == "" {
		return errors.New("elasticsearch: no index pattern configured")
	}
	for i, p := range strings.Split(cfg.Indices, ",") {
		if i > 0 && strings.HasPrefix(p, "-") {
			p = p[1:] // an exclusion
		}
		if err := validName("index pattern", p, true); err != nil {
			return err
		}
	}
	if cfg.SnapshotPrefix == "" {
		cfg.SnapshotPrefix = DefaultSnapshotPrefix
	}
	return validName("snapshot prefix", cfg.SnapshotPrefix, false)
}

// Capture is the copyable state of the repository right after cairn's ES
// snapshot: the files of one repository generation. It implements the
// archiver's FS (ReadDir and Open over those files only, with the metadata
// of the files on disk) and is safe for concurrent use.
type Capture struct {
	cfg       Config
	c         *client
	src       *tree.Source
	set       *fileSet
	gen       int64
	snap      snapshotInfo
	repoUUID  string
	clusterID string
	esVersion string
	layout    string

	mu       sync.Mutex
	broken   []error // referenced files that went missing during the copy
	finished bool
}

// Backup takes an ES snapshot of cfg.Indices into cfg.Repository (docs/ELASTICSEARCH.md):
// it registers the repository if needed, refuses one registered elsewhere,
// read-only, used by SLM or last written by another cluster, snapshots the
// concrete indices the pattern resolves to with wait_for_completion, fails
// on FAILED and (unless AllowPartial) PARTIAL snapshots after deleting them,
// and then captures the repository generation that holds the snapshot.
func Backup(ctx context.Context, cfg Config) (*Capture, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	info, err := c.info(ctx)
	if err != nil {
		return nil, err
	}
	if err := ensureRepository(ctx, c, cfg); err != nil {
		return nil, err
	}
	if err := checkSLM(ctx, c, cfg.Repository); err != nil {
		return nil, err
	}
	if _, highest, err := readGeneration(cfg.Location); err == nil && highest >= 0 {
		rd, err := readRepositoryData(cfg.Location, highest)
		if err != nil {
			return nil, err
		}
		if rd.ClusterID != "" && rd.ClusterID != "_na_" && rd.ClusterID != info.ClusterUUID && !cfg.AllowForeignRepository {
			return nil, fmt.Errorf("%w: %s (generation %d) was written by cluster %s, this is cluster %s; set allow_foreign_repository: true in cairn.yaml to take it over",
				ErrForeignWriter, cfg.Location, highest, rd.ClusterID, info.ClusterUUID)
		}
	} else if err != nil {
		return nil, fmt.Errorf("%w (is %s the repository directory as Elasticsearch sees it, and readable here?)", err, cfg.Location)
	}
	indices, err := resolveForSnapshot(ctx, c, cfg.Indices)
	if err != nil {
		return nil, err
	}
	sn, err := takeSnapshot(ctx, c, cfg, indices)
	if err != nil {
		return nil, err
	}
	cp := &Capture{cfg: cfg, c: c, snap: *sn, clusterID: info.ClusterUUID, esVersion: info.Version.Number}
	if err := cp.capture(); err != nil {
		return nil, err
	}
	return cp, nil
}

func ensureRepository(ctx context.Context, c *client, cfg Config) error {
	repos, err := c.repositories(ctx, cfg.Repository)
	if err != nil {
		return err
	}
	r, ok := repos[cfg.Repository]
	if !ok {
		err := c.registerRepository(ctx, cfg.Repository, cfg.Location, false)
		var ae *APIError
		if errors.As(err, &ae) && ae.ReasonContains("path.repo") {
			return fmt.Errorf("%w; the location must lie below a directory listed in the cluster's path.repo setting", err)
		}
		return err
	}
	switch {
	case r.Type != "fs":
		return fmt.Errorf("elasticsearch: repository %s has type %q, cairn needs an fs repository", cfg.Repository, r.Type)
	case filepath.Clean(r.location()) != cfg.Location:
		return fmt.Errorf("%w: %s is registered at %q, configured location is %q", ErrLocationMismatch, cfg.Repository, r.location(), cfg.Location)
	case r.readOnly():
		return fmt.Errorf("elasticsearch: repository %s is registered read-only; cairn needs to snapshot into it", cfg.Repository)
	}
	return nil
}

// checkSLM refuses a repository that an SLM policy writes to: SLM would
// snapshot and delete at any time and break the copy. A cluster without
// SLM (or without permission to read it) is fine.
func checkSLM(ctx context.Context, c *client, repo string) error {
	var out map[string]struct {
		Policy struct {
			Repository string `json:"repository"`
		} `json:"policy"`
	}
	if err := c.do(ctx, c.es, "get SLM policies", esapi.SlmGetLifecycleRequest{}, &out); err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 {
			return nil
		}
		return err
	}
	var ids []string
	for id, p := range out {
		if p.Policy.Repository == repo {
			ids = append(ids, id)
		}
	}
	if len(ids) > 0 {
		sort.Strings(ids)
		return fmt.Errorf("elasticsearch: SLM policies %s write to repository %s; cairn needs a repository no one else writes to", strings.Join(ids, ", "), repo)
	}
	return nil
}

// resolveForSnapshot expands the pattern to concrete indices and data
// streams. A pattern that matches nothing, or matches closed indices (ES
// cannot snapshot them), is an error.
func resolveForSnapshot(ctx context.Context, c *client, pattern string) ([]string, error) {
	r, err := c.resolve(ctx, strings.Split(pattern, ","), false)
	if err != nil {
		return nil, err
	}
	var out, closed []string
	for _, ix := range r.Indices {
		if ix.DataStream != "" {
			continue // snapshotted through its data stream
		}
		if slices.Contains(ix.Attributes, "closed") {
			closed = append(closed, ix.Name)
		}
		out = append(out, ix.Name)
	}
	for _, ds := range r.DataStreams {
		out = append(out, ds.Name)
	}
	if len(closed) > 0 {
		return nil, fmt.Errorf("elasticsearch: indices %s matching %q are closed; Elasticsearch cannot snapshot closed indices, open them first", strings.Join(closed, ", "), pattern)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("elasticsearch: no index matches %q", pattern)
	}
	sort.Strings(out)
	return out, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// takeSnapshot creates the snapshot with wait_for_completion and checks
// its outcome. The create is never retried; when its answer is lost the
// snapshot is looked up by name and recognised by the id in its metadata.
func takeSnapshot(ctx context.Context, c *client, cfg Config, indices []string) (*snapshotInfo, error) {
	name := cfg.SnapshotPrefix + time.Now().UTC().Format("20060102-150405") + "-" + randomHex(3)
	id := randomHex(16)
	body := map[string]any{
		"indices":              strings.Join(indices, ","),
		"ignore_unavailable":   false,
		"include_global_state": false,
		"partial":              cfg.AllowPartial,
		"metadata":             map[string]any{"taken_by": "cairn", "cairn_id": id},
	}
	op := "create snapshot " + name + " in repository " + cfg.Repository
	var out struct {
		Snapshot *snapshotInfo `json:"snapshot"`
	}
	err := c.do(ctx, c.once, op, esapi.SnapshotCreateRequest{Repository: cfg.Repository, Snapshot: name,
		Body: jsonBody(body), WaitForCompletion: ptr(true)}, &out)
	var te *TransportError
	if errors.As(err, &te) {
		sn, found, werr := waitSnapshot(ctx, c, cfg.Repository, name, id)
		if werr != nil || !found {
			return nil, errors.Join(err, werr)
		}
		out.Snapshot = sn
	} else if err != nil {
		return nil, err
	}
	sn := out.Snapshot
	if sn == nil {
		return nil, fmt.Errorf("elasticsearch: %s: the answer holds no snapshot", op)
	}
	if sn.State == "IN_PROGRESS" {
		if sn, _, err = waitSnapshot(ctx, c, cfg.Repository, name, id); err != nil {
			return nil, err
		}
	}
	if sn.State == "SUCCESS" && sn.Shards.Failed == 0 {
		return sn, nil
	}
	if sn.State == "PARTIAL" && cfg.AllowPartial {
		return sn, nil
	}
	var failures []string
	for _, f := range sn.Failures {
		failures = append(failures, fmt.Sprintf("index %s shard %d: %s", f.Index, f.ShardID, f.Reason))
	}
	sentinel, what := ErrSnapshotFailed, "FAILED"
	if sn.State == "PARTIAL" || sn.State == "SUCCESS" {
		sentinel, what = ErrSnapshotPartial, "PARTIAL"
	}
	msg := fmt.Sprintf("%v: snapshot %s of %s in repository %s ended %s", sentinel, name, strings.Join(indices, ","), cfg.Repository, what)
	if sn.Reason != "" {
		msg += " (" + sn.Reason + ")"
	}
	msg += fmt.Sprintf("; %d of %d shards failed", sn.Shards.Failed, sn.Shards.Total)
	if len(failures) > 0 {
		msg += ": " + strings.Join(failures, "; ")
	}
	// A failed or partial snapshot still adds files: remove it.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if derr := c.deleteSnapshots(dctx, cfg.Repository, []string{name}); derr != nil {
		msg += fmt.Sprintf("; deleting it failed too: %v", derr)
	} else {
		msg += "; the snapshot was deleted"
	}
	if what == "PARTIAL" {
		msg += " (allow_partial: true in cairn.yaml keeps partial snapshots)"
	}
	return nil, fmt.Errorf("elasticsearch: %s: %w", msg, sentinel)
}

// waitSnapshot polls the snapshot until it is no longer IN_PROGRESS. found
// is false when no snapshot of that name exists; one with another cairn id
// is an error.
func waitSnapshot(ctx context.Context, c *client, repo, name, id string) (*snapshotInfo, bool, error) {
	delay := 100 * time.Millisecond
	for {
		list, err := c.getSnapshots(ctx, repo, []string{name}, true)
		if err != nil {
			return nil, false, err
		}
		if len(list) == 0 {
			return nil, false, nil
		}
		sn := list[0]
		if got, _ := sn.Metadata["cairn_id"].(string); got != id {
			return nil, true, fmt.Errorf("elasticsearch: snapshot %s in repository %s was not taken by this backup (cairn_id %q)", name, repo, got)
		}
		if sn.State != "IN_PROGRESS" {
			return &sn, true, nil
		}
		select {
		case <-ctx.Done():
			return nil, true, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// capture reads the generation that holds the snapshot and the set of files
// it consists of.
func (cp *Capture) capture() error {
	loc := cp.cfg.Location
	latest, highest, err := readGeneration(loc)
	if err != nil {
		return err
	}
	if highest < 0 {
		return fmt.Errorf("elasticsearch: no index-N file in %s after snapshot %s; is that directory the repository location as Elasticsearch sees it?", loc, cp.snap.Snapshot)
	}
	if latest != highest {
		return fmt.Errorf("%w: index.latest says %d but the highest index-N is %d: something is writing to %s", ErrGenerationMoved, latest, highest, loc)
	}
	rd, err := readRepositoryData(loc, highest)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(rd.Snapshots, func(s rdSnapshot) bool {
		return s.Name == cp.snap.Snapshot && s.UUID == cp.snap.UUID
	}) {
		return fmt.Errorf("elasticsearch: snapshot %s (%s) is not in generation %d of %s: is that the directory of repository %s?",
			cp.snap.Snapshot, cp.snap.UUID, highest, loc, cp.cfg.Repository)
	}
	set, err := buildFileSet(loc, highest, rd)
	if err != nil {
		return err
	}
	if err := set.checkPresent(loc); err != nil {
		return fmt.Errorf("%w: generation %d of %s: %w", ErrIncomplete, highest, loc, err)
	}
	src, err := tree.Open(loc)
	if err != nil {
		return err
	}
	cp.src, cp.set, cp.gen, cp.repoUUID, cp.layout = src, set, highest, rd.UUID, set.layoutName()
	return nil
}

// Snapshot is the name of the ES snapshot taken.
func (cp *Capture) Snapshot() string { return cp.snap.Snapshot }

// Generation is the repository generation (N of index-N) captured.
func (cp *Capture) Generation() int64 { return cp.gen }

// Indices are the indices (and data streams) in the snapshot.
func (cp *Capture) Indices() []string { return slices.Clone(cp.snap.Indices) }

// Files lists the captured files, slash-separated and relative to the
// repository directory, sorted.
func (cp *Capture) Files() []string { return cp.set.files() }

// Source is what to record as the component's source: the repository
// directory.
func (cp *Capture) Source() string { return cp.cfg.Location }

// Meta is recorded in the manifest: what a restore needs to know.
func (cp *Capture) Meta() map[string]string {
	return map[string]string{
		"snapshot":        cp.snap.Snapshot,
		"snapshot_uuid":   cp.snap.UUID,
		"snapshot_state":  cp.snap.State,
		"indices":         strings.Join(cp.snap.Indices, ","),
		"repository":      cp.cfg.Repository,
		"repository_uuid": cp.repoUUID,
		"generation":      strconv.FormatInt(cp.gen, 10),
		"cluster_uuid":    cp.clusterID,
		"es_version":      cp.esVersion,
		"location":        cp.cfg.Location,
		"layout":          cp.layout,
	}
}

func (cp *Capture) markBroken(err error) {
	cp.mu.Lock()
	cp.broken = append(cp.broken, err)
	cp.mu.Unlock()
}

// ReadDir lists the captured entries of dir, with metadata from lstat.
// A referenced file that has vanished is reported and fails Finish.
func (cp *Capture) ReadDir(ctx context.Context, dir string) ([]snapshot.Node, error) {
	want, ok := cp.set.dirs[dir]
	if !ok {
		return nil, fmt.Errorf("elasticsearch: %q is not part of repository generation %d: %w", dir, cp.gen, fs.ErrNotExist)
	}
	nodes, err := cp.src.ReadDir(ctx, dir)
	if nodes == nil && err != nil {
		if _, must := cp.mustDir(dir); must {
			cp.markBroken(err)
		}
		return nil, err
	}
	out := make([]snapshot.Node, 0, len(want))
	seen := map[string]bool{}
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, n := range nodes {
		e, ok := want[n.Name]
		if !ok {
			continue
		}
		if e.dir != (n.Type == snapshot.Dir) || !e.dir && n.Type != snapshot.File {
			errs = append(errs, fmt.Errorf("elasticsearch: %s: unexpected type %s", path.Join(dir, n.Name), n.Type))
			continue
		}
		seen[n.Name] = true
		out = append(out, n)
	}
	for name, e := range want {
		if e.must && !seen[name] {
			err := fmt.Errorf("elasticsearch: %s, referenced by repository generation %d, is missing", e.describe(path.Join(dir, name)), cp.gen)
			cp.markBroken(err)
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

func (cp *Capture) mustDir(dir string) (entry, bool) {
	if dir == "" {
		return entry{dir: true, must: true}, true
	}
	e, ok := cp.set.dirs[path.Dir(dir)][path.Base(dir)]
	if path.Dir(dir) == "." {
		e, ok = cp.set.dirs[""][dir]
	}
	return e, ok && e.must
}

// Open opens a captured file.
func (cp *Capture) Open(ctx context.Context, file string) (io.ReadCloser, error) {
	dir, name := path.Split(file)
	dir = strings.TrimSuffix(dir, "/")
	e, ok := cp.set.dirs[dir][name]
	if !ok || e.dir {
		return nil, fmt.Errorf("elasticsearch: %q is not a file of repository generation %d: %w", file, cp.gen, fs.ErrNotExist)
	}
	f, err := cp.src.Open(ctx, file)
	if err != nil && e.must && errors.Is(err, fs.ErrNotExist) {
		cp.markBroken(fmt.Errorf("elasticsearch: %s, referenced by repository generation %d, vanished: %w", e.describe(file), cp.gen, err))
	}
	return f, err
}

// Finish runs after the files were read: it fails when the repository
// generation moved while they were copied (another snapshot, a deletion,
// another cluster), or when a file the generation references went missing;
// the copy is then not consistent.
func (cp *Capture) Finish(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	latest, highest, err := readGeneration(cp.cfg.Location)
	if err != nil {
		return err
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if latest != cp.gen || highest != cp.gen {
		return fmt.Errorf("%w: %s was at generation %d when the copy started and is now at index.latest=%d, highest index-N=%d "+
			"(another snapshot, a deletion or another cluster wrote to repository %s during the copy); run the backup again",
			ErrGenerationMoved, cp.cfg.Location, cp.gen, latest, highest, cp.cfg.Repository)
	}
	if len(cp.broken) > 0 {
		return fmt.Errorf("elasticsearch: the copy of %s generation %d is incomplete: %w", cp.cfg.Location, cp.gen, errors.Join(cp.broken...))
	}
	cp.finished = true
	return nil
}

// DeleteOlder deletes the ES snapshots of SnapshotPrefix that are older
// than this one, when Config.DeleteOlder is set (otherwise it does
// nothing). Call it only after cairn's snapshot holding this capture is
// written: the deleted snapshots' files then live on in cairn, and the ES
// repository keeps only what the next incremental snapshot needs. Running
// snapshots are left alone. It returns the names deleted.
func (cp *Capture) DeleteOlder(ctx context.Context) ([]string, error) {
	if !cp.cfg.DeleteOlder {
		return nil, nil
	}
	cp.mu.Lock()
	ok := cp.finished
	cp.mu.Unlock()
	if !ok {
		return nil, errors.New("elasticsearch: DeleteOlder before a successful Finish: the older snapshots are not safely archived")
	}
	list, err := cp.c.getSnapshots(ctx, cp.cfg.Repository, []string{cp.cfg.SnapshotPrefix + "*"}, true)
	if err != nil {
		return nil, err
	}
	var old []string
	for _, sn := range list {
		if sn.Snapshot == cp.snap.Snapshot || sn.State == "IN_PROGRESS" || !strings.HasPrefix(sn.Snapshot, cp.cfg.SnapshotPrefix) {
			continue
		}
		if sn.StartTimeInMillis <= cp.snap.StartTimeInMillis {
			old = append(old, sn.Snapshot)
		}
	}
	if len(old) == 0 {
		return nil, nil
	}
	sort.Strings(old)
	if err := cp.c.deleteSnapshots(ctx, cp.cfg.Repository, old); err != nil {
		return nil, err
	}
	return old, nil
}
