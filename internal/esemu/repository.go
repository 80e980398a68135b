package esemu

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Repository generation markers.
const (
	genUnknown   int64 = -2
	genEmpty     int64 = -1
	genCorrupted int64 = -3
)

// repo is a registered fs repository.
type repo struct {
	name       string
	location   string // absolute
	settings   map[string]any
	readOnly   bool
	compress   bool
	chunkSize  int64
	uuid       string // "_na_" until read
	trackedGen int64
	inUse      int // running snapshots, deletions, restores, cleanups
}

// repoData is the JSON of the root index-N blob (docs/ELASTICSEARCH.md §3).
type repoData struct {
	MinVersion               any                 `json:"min_version,omitempty"`
	UUID                     string              `json:"uuid,omitempty"`
	ClusterID                string              `json:"cluster_id,omitempty"`
	Snapshots                []*rdSnapshot       `json:"snapshots"`
	Indices                  map[string]*rdIndex `json:"indices"`
	IndexMetadataIdentifiers map[string]string   `json:"index_metadata_identifiers,omitempty"`
}

type rdSnapshot struct {
	Name                string            `json:"name"`
	UUID                string            `json:"uuid"`
	State               int               `json:"state"`
	IndexMetadataLookup map[string]string `json:"index_metadata_lookup,omitempty"`
	Version             any               `json:"version,omitempty"`
	StartTimeMillis     int64             `json:"start_time_millis,omitempty"`
	EndTimeMillis       int64             `json:"end_time_millis,omitempty"`
	SLMPolicy           *string           `json:"slm_policy,omitempty"`
}

type rdIndex struct {
	ID               string    `json:"id"`
	Snapshots        []string  `json:"snapshots"`
	ShardGenerations []*string `json:"shard_generations,omitempty"`
}

// SnapshotState values as stored in index-N.
const (
	stateInProgress   = 0
	stateSuccess      = 1
	stateFailed       = 2
	statePartial      = 3
	stateIncompatible = 4
)

var stateNames = map[int]string{0: "IN_PROGRESS", 1: "SUCCESS", 2: "FAILED", 3: "PARTIAL", 4: "INCOMPATIBLE"}

func (d *repoData) snapshot(name string) *rdSnapshot {
	for _, sn := range d.Snapshots {
		if sn.Name == name {
			return sn
		}
	}
	return nil
}

func emptyRepoData() *repoData {
	return &repoData{Indices: map[string]*rdIndex{}, IndexMetadataIdentifiers: map[string]string{}}
}

// listGens lists the root index-N generations present on disk.
func listGens(loc string) ([]int64, error) {
	entries, err := os.ReadDir(loc)
	if err != nil {
		return nil, err
	}
	var gens []int64
	for _, e := range entries {
		if g, ok := strings.CutPrefix(e.Name(), "index-"); ok {
			if n, err := strconv.ParseInt(g, 10, 64); err == nil && n >= 0 {
				gens = append(gens, n)
			}
		}
	}
	sort.Slice(gens, func(i, j int) bool { return gens[i] < gens[j] })
	return gens, nil
}

func latestGen(loc string) (int64, error) {
	gens, err := listGens(loc)
	if err != nil {
		return 0, err
	}
	if len(gens) == 0 {
		return genEmpty, nil
	}
	return gens[len(gens)-1], nil
}

func readRepoDataGen(loc string, gen int64) (*repoData, error) {
	if gen == genEmpty {
		return emptyRepoData(), nil
	}
	data, err := os.ReadFile(filepath.Join(loc, "index-"+strconv.FormatInt(gen, 10)))
	if err != nil {
		return nil, err
	}
	d := emptyRepoData()
	if err := json.Unmarshal(data, d); err != nil {
		return nil, fmt.Errorf("%w: index-%d: %v", errCorrupt, gen, err)
	}
	if d.Indices == nil {
		d.Indices = map[string]*rdIndex{}
	}
	if d.IndexMetadataIdentifiers == nil {
		d.IndexMetadataIdentifiers = map[string]string{}
	}
	numericShardGens(loc, d)
	return d, nil
}

func (s *Server) corrupted(r *repo) *esError {
	return newErr(500, "repository_exception", "[%s] Could not read repository data because the contents of the repository do not match its expected state. "+
		"This is likely the result of either concurrently modifying the contents of the repository by a process other than this cluster or an issue with the repository's underlying storage. "+
		"The repository has been disabled to prevent corrupting its contents. To re-enable it and continue using it please remove the repository from the cluster and add it again to make the cluster recover the known state of the repository from its physical contents.", r.name)
}

// loadRepoData re-reads the repository data from disk. Read-only
// repositories always take the highest index-N; writable ones check it
// against the tracked generation and become corrupted on a mismatch.
func (s *Server) loadRepoData(r *repo) (*repoData, int64, *esError) {
	if !r.readOnly && r.trackedGen == genCorrupted {
		return nil, 0, s.corrupted(r)
	}
	gen, err := latestGen(r.location)
	if err != nil {
		return nil, 0, newErr(500, "repository_exception", "[%s] could not determine repository generation from root blobs", r.name).
			cause(newErr(500, "no_such_file_exception", "%v", err))
	}
	if !r.readOnly {
		switch {
		case r.trackedGen == genUnknown:
			r.trackedGen = gen
		case gen != r.trackedGen:
			expected := r.trackedGen
			r.trackedGen = genCorrupted
			if _, err := os.Stat(filepath.Join(r.location, "index-"+strconv.FormatInt(expected, 10))); err != nil && expected >= 0 {
				last := "_na_"
				if d, err := readRepoDataGen(r.location, gen); err == nil && d.ClusterID != "" {
					last = d.ClusterID
				}
				return nil, 0, newErr(500, "repository_exception",
					"[%s] concurrent modification of the index-N file, expected current generation [%d] but it was not found in the repository. The last cluster to write to this repository was [%s] at generation [%d].",
					r.name, expected, last, gen)
			}
			return nil, 0, newErr(500, "repository_exception",
				"[%s] concurrent modification of the index-N file, expected current generation [%d], actual current generation [%d]", r.name, expected, gen)
		}
	}
	d, err := readRepoDataGen(r.location, gen)
	if err != nil {
		return nil, 0, newErr(500, "repository_exception", "[%s] Could not read repository data from index blob", r.name).
			cause(newErr(500, "exception", "%v", err))
	}
	if d.UUID != "" && d.UUID != "_na_" {
		r.uuid = d.UUID
	}
	return d, gen, nil
}

// writeAtomic writes name in dir through a pending- temp file. With
// failIfExists the final name must not exist (index-N never overwrites).
func writeAtomic(dir, name string, data []byte, failIfExists bool) error {
	tmp := filepath.Join(dir, "pending-"+name+"-"+newUUID())
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	defer os.Remove(tmp)
	final := filepath.Join(dir, name)
	if failIfExists {
		return os.Link(tmp, final)
	}
	return os.Rename(tmp, final)
}

// writeBlobExcl writes a blob that must not exist yet.
func writeBlobExcl(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeRepoData writes index-(gen+1) and index.latest.
// The fields follow s.format: see format.go.
func (s *Server) writeRepoData(r *repo, d *repoData, gen int64) (int64, error) {
	out := *d
	switch f := s.format; {
	case f.repoUUID:
		if out.UUID == "" || out.UUID == "_na_" {
			out.UUID = newUUID()
		}
		out.ClusterID = s.clusterUUID
		out.MinVersion = "7.12.0"
	case !f.numericShardGens && !f.metaBySnapshot:
		out.UUID, out.ClusterID, out.MinVersion = "", "", "7.9.0"
	case !f.numericShardGens:
		out.UUID, out.ClusterID, out.MinVersion = "", "", nil
	default:
		out.UUID, out.ClusterID, out.MinVersion = "", "", nil
		out.Indices = map[string]*rdIndex{}
		for n, rdi := range d.Indices {
			c := *rdi
			c.ShardGenerations = nil // found by listing, never written
			out.Indices[n] = &c
		}
	}
	if out.Snapshots == nil {
		out.Snapshots = []*rdSnapshot{}
	}
	if s.format.incompatibleFile {
		if _, err := os.Stat(filepath.Join(r.location, "incompatible-snapshots")); err != nil {
			if err := writeAtomic(r.location, "incompatible-snapshots", []byte(`{"incompatible-snapshots":[]}`), false); err != nil {
				return 0, err
			}
		}
	}
	d.UUID = out.UUID
	js, err := json.Marshal(&out)
	if err != nil {
		return 0, err
	}
	next := gen + 1
	if err := writeAtomic(r.location, "index-"+strconv.FormatInt(next, 10), js, true); err != nil {
		return 0, err
	}
	var latest [8]byte
	binary.BigEndian.PutUint64(latest[:], uint64(next))
	if err := writeAtomic(r.location, "index.latest", latest[:], false); err != nil {
		return 0, err
	}
	r.uuid = d.UUID
	if r.uuid == "" {
		r.uuid = "_na_"
	}
	if !r.readOnly {
		r.trackedGen = next
	}
	return next, nil
}

func settingString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		b, _ := json.Marshal(x)
		return strings.Trim(string(b), `"`)
	}
}

func parseByteSize(v string) (int64, error) {
	v = strings.ToLower(strings.TrimSpace(v))
	mult := int64(1)
	for _, u := range []struct {
		s string
		m int64
	}{{"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30}, {"tb", 1 << 40}, {"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1}} {
		if n, ok := strings.CutSuffix(v, u.s); ok {
			v, mult = n, u.m
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, err
	}
	return n * mult, nil
}

func (s *Server) conflictErr(name string) *esError {
	if s.atLeast(8, 16) {
		return newErr(409, "repository_conflict_exception", "[%s] trying to modify or unregister repository that is currently used", name)
	}
	return newErr(500, "illegal_state_exception", "trying to modify or unregister repository [%s] that is currently used", name)
}

func (s *Server) readOnlyErr(name, what string) *esError {
	if s.atLeast(8, 19) {
		return newErr(500, "repository_exception", "[%s] repository is readonly", name)
	}
	return newErr(500, "repository_exception", "[%s] %s", name, what)
}

// checkLocation resolves an fs location against path.repo.
func (s *Server) checkLocation(name, loc string) (string, *esError) {
	fail := func(cause *esError) *esError {
		return newErr(500, "repository_exception", "[%s] failed to create repository", name).cause(cause)
	}
	if loc == "" {
		return "", fail(newErr(500, "repository_exception", "[%s] missing location", name))
	}
	abs := loc
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(s.opts.PathRepo[0], loc)
	}
	abs = filepath.Clean(abs)
	for _, root := range s.opts.PathRepo {
		if abs == root || strings.HasPrefix(abs, root+string(filepath.Separator)) {
			return abs, nil
		}
	}
	return "", fail(newErr(500, "repository_exception", "[%s] location [%s] doesn't match any of the locations specified by path.repo", name, loc))
}

type repoBody struct {
	Type     string         `json:"type"`
	Settings map[string]any `json:"settings"`
}

func (s *Server) putRepo(r *request, name string) (int, any) {
	var b repoBody
	if err := r.decode(&b); err != nil {
		return 0, err
	}
	if b.Type == "" {
		return 0, newErr(400, "action_request_validation_exception", "Validation Failed: 1: type is missing;")
	}
	if strings.ContainsAny(name, "\\/*?\"<>| ,#") || strings.HasPrefix(name, "_") || name == "" {
		return 0, newErr(400, "invalid_repository_name_exception", "[%s] Invalid repository name, must not contain the following characters [\\, /, *, ?, \", <, >, |,  , ,]", name)
	}
	if b.Type != "fs" {
		return 0, newErr(500, "repository_exception", "[%s] repository type [%s] does not exist", name, b.Type)
	}
	if old, ok := s.repos[name]; ok && old.inUse > 0 {
		return 0, s.conflictErr(name)
	}
	loc, err := s.checkLocation(name, settingString(b.Settings["location"]))
	if err != nil {
		return 0, err
	}
	rp := &repo{name: name, location: loc, settings: b.Settings, compress: true, uuid: "_na_", trackedGen: genUnknown}
	if v, ok := b.Settings["readonly"]; ok {
		rp.readOnly, _ = asBool(v)
	}
	if v, ok := b.Settings["compress"]; ok {
		rp.compress, _ = asBool(v)
	}
	if v, ok := b.Settings["chunk_size"]; ok {
		n, perr := parseByteSize(settingString(v))
		if perr != nil || n <= 0 {
			return 0, newErr(500, "repository_exception", "[%s] failed to create repository", name).
				cause(illegalArgument("failed to parse value [%v] for setting [chunk_size]", v))
		}
		rp.chunkSize = n
	}
	if !rp.readOnly {
		if err := os.MkdirAll(loc, 0o755); err != nil {
			return 0, newErr(500, "repository_exception", "[%s] failed to create repository", name).
				cause(newErr(500, "access_denied_exception", "%v", err))
		}
	}
	if r.boolParam("verify", true) {
		if err := s.verify(rp); err != nil {
			return 0, err
		}
		if _, _, err := s.loadRepoData(rp); err != nil {
			return 0, err
		}
	}
	s.repos[name] = rp
	return 200, map[string]any{"acknowledged": true}
}

// verify is what _verify does: a test write on a writable repository, a
// read of the latest generation on a read-only one.
func (s *Server) verify(rp *repo) *esError {
	notAccessible := func(err error) *esError {
		return newErr(500, "repository_verification_exception", "[%s] path  is not accessible on master node", rp.name).
			cause(newErr(500, "i_o_exception", "%v", err))
	}
	if fi, err := os.Stat(rp.location); err != nil || !fi.IsDir() {
		if err == nil {
			err = fmt.Errorf("%s is not a directory", rp.location)
		}
		return notAccessible(err)
	}
	if rp.readOnly {
		if _, err := latestGen(rp.location); err != nil {
			return notAccessible(err)
		}
		return nil
	}
	dir := filepath.Join(rp.location, "tests-"+newUUID())
	if err := os.Mkdir(dir, 0o755); err != nil {
		return notAccessible(err)
	}
	defer os.RemoveAll(dir)
	if err := writeBlobExcl(filepath.Join(dir, "master.dat"), []byte(newUUID())); err != nil {
		return notAccessible(err)
	}
	if err := writeBlobExcl(filepath.Join(dir, "data-"+s.nodeID+".dat"), []byte(newUUID())); err != nil {
		return notAccessible(err)
	}
	return nil
}

func (s *Server) repoNames(expr string) ([]string, *esError) {
	pats := splitList(expr)
	if len(pats) == 0 {
		pats = []string{"_all"}
	}
	var out []string
	for _, p := range pats {
		if p == "_all" || p == "*" || strings.Contains(p, "*") {
			for n := range s.repos {
				if p == "_all" || simpleMatch(p, n) {
					out = append(out, n)
				}
			}
			continue
		}
		if _, ok := s.repos[p]; !ok {
			return nil, repoMissing(p)
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

func (s *Server) getRepos(r *request, expr string) (int, any) {
	names, err := s.repoNames(expr)
	if err != nil {
		return 0, err
	}
	out := map[string]any{}
	for _, n := range names {
		rp := s.repos[n]
		set := map[string]any{}
		for k, v := range rp.settings {
			set[k] = settingString(v) // ES renders settings as strings
		}
		out[n] = map[string]any{"type": "fs", "uuid": rp.uuid, "settings": set}
	}
	return 200, out
}

func (s *Server) deleteRepo(r *request, expr string) (int, any) {
	names, err := s.repoNames(expr)
	if err != nil {
		return 0, err
	}
	if len(names) == 0 {
		return 0, repoMissing(expr)
	}
	for _, n := range names {
		if s.repos[n].inUse > 0 {
			return 0, s.conflictErr(n)
		}
	}
	for _, n := range names {
		delete(s.repos, n)
	}
	return 200, map[string]any{"acknowledged": true}
}

func (s *Server) verifyRepo(r *request, name string) (int, any) {
	rp, ok := s.repos[name]
	if !ok {
		return 0, repoMissing(name)
	}
	if err := s.verify(rp); err != nil {
		return 0, err
	}
	return 200, map[string]any{"nodes": map[string]any{s.nodeID: map[string]any{"name": s.nodeName}}}
}

// cleanupRepo deletes root blobs and index directories that the current
// index-N does not reference, and leftover pending- files.
func (s *Server) cleanupRepo(r *request, name string) (int, any) {
	rp, ok := s.repos[name]
	if !ok {
		return 0, repoMissing(name)
	}
	if rp.readOnly {
		return 0, s.readOnlyErr(name, "cannot run cleanup on readonly repository")
	}
	if rp.inUse > 0 {
		return 0, newErr(500, "illegal_state_exception", "Cannot cleanup [%s] - a snapshot is currently running in [%s]", name, name)
	}
	d, gen, err := s.loadRepoData(rp)
	if err != nil {
		return 0, err
	}
	keep := map[string]bool{"index.latest": true, "indices": true, "index-" + strconv.FormatInt(gen, 10): true}
	for _, sn := range d.Snapshots {
		keep["snap-"+sn.UUID+".dat"] = true
		keep["meta-"+sn.UUID+".dat"] = true
	}
	var blobs, bytes int64
	remove := func(p string) {
		_ = filepath.WalkDir(p, func(_ string, e fs.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				if fi, err := e.Info(); err == nil {
					blobs++
					bytes += fi.Size()
				}
			}
			return nil
		})
		os.RemoveAll(p)
	}
	entries, _ := os.ReadDir(rp.location)
	for _, e := range entries {
		n := e.Name()
		if keep[n] || strings.HasPrefix(n, "tests-") {
			continue
		}
		if strings.HasPrefix(n, "index-") || strings.HasPrefix(n, "snap-") || strings.HasPrefix(n, "meta-") || strings.HasPrefix(n, "pending-") {
			remove(filepath.Join(rp.location, n))
		}
	}
	ids := map[string]bool{}
	for _, ix := range d.Indices {
		ids[ix.ID] = true
	}
	dirs, _ := os.ReadDir(filepath.Join(rp.location, "indices"))
	for _, e := range dirs {
		if !ids[e.Name()] {
			remove(filepath.Join(rp.location, "indices", e.Name()))
		}
	}
	return 200, map[string]any{"results": map[string]any{"deleted_bytes": bytes, "deleted_blobs": blobs}}
}

// ForeignWriter writes index-(N+1) (and index.latest) into repository
// repoName's directory as another cluster would: same contents, a
// different cluster_id. It does not tell the emulator's own tracking, so
// the next write through a writable registration reports a concurrent
// modification, as ES does. It returns the new generation.
func (s *Server) ForeignWriter(repoName string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rp, ok := s.repos[repoName]
	if !ok {
		return 0, fmt.Errorf("esemu: repository %q not registered", repoName)
	}
	gen, err := latestGen(rp.location)
	if err != nil {
		return 0, err
	}
	d, err := readRepoDataGen(rp.location, gen)
	if err != nil {
		return 0, err
	}
	if d.UUID == "" {
		d.UUID = newUUID()
	}
	d.ClusterID = newUUID()
	if d.MinVersion == nil {
		d.MinVersion = "7.12.0"
	}
	if d.Snapshots == nil {
		d.Snapshots = []*rdSnapshot{}
	}
	js, err := json.Marshal(d)
	if err != nil {
		return 0, err
	}
	next := gen + 1
	if err := writeAtomic(rp.location, "index-"+strconv.FormatInt(next, 10), js, true); err != nil {
		return 0, err
	}
	var latest [8]byte
	binary.BigEndian.PutUint64(latest[:], uint64(next))
	return next, writeAtomic(rp.location, "index.latest", latest[:], false)
}

// RepoInfo describes a registered repository as the emulator tracks it.
type RepoInfo struct {
	Location   string
	ReadOnly   bool
	UUID       string
	TrackedGen int64 // -2 unknown, -1 empty, -3 corrupted
}

// Repository returns what the emulator knows about a registered repository.
func (s *Server) Repository(name string) (RepoInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rp, ok := s.repos[name]
	if !ok {
		return RepoInfo{}, false
	}
	return RepoInfo{Location: rp.location, ReadOnly: rp.readOnly, UUID: rp.uuid, TrackedGen: rp.trackedGen}, true
}
