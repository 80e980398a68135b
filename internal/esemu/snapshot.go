package esemu

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

const luceneVersion = "9.12.0"

// snapInfo is the payload of a root snap-<uuid>.dat (internal SnapshotInfo).
type snapInfo struct {
	Name               string         `json:"name"`
	UUID               string         `json:"uuid"`
	VersionID          int            `json:"version_id"`
	Indices            []string       `json:"indices"`
	DataStreams        []string       `json:"data_streams"`
	State              string         `json:"state"`
	Reason             string         `json:"reason,omitempty"`
	IncludeGlobalState bool           `json:"include_global_state"`
	Metadata           map[string]any `json:"metadata,omitempty"`
	StartTime          int64          `json:"start_time"`
	EndTime            int64          `json:"end_time"`
	TotalShards        int            `json:"total_shards"`
	SuccessfulShards   int            `json:"successful_shards"`
	Failures           []shardFailure `json:"failures"`
	FeatureStates      []any          `json:"feature_states"`
}

// rootSnap is the payload of a root snap-<uuid>.dat.
type rootSnap struct {
	Snapshot *snapInfo `json:"snapshot"`
}

type shardFailure struct {
	Index     string `json:"index"`
	IndexUUID string `json:"index_uuid"`
	ShardID   int    `json:"shard_id"`
	Reason    string `json:"reason"`
	NodeID    string `json:"node_id,omitempty"`
	Status    string `json:"status"`
}

// fileInfo is BlobStoreIndexShardSnapshot.FileInfo.
type fileInfo struct {
	Name         string `json:"name"`
	PhysicalName string `json:"physical_name"`
	Length       int64  `json:"length"`
	Checksum     string `json:"checksum"`
	PartSize     int64  `json:"part_size,omitempty"`
	WrittenBy    string `json:"written_by"`
	MetaHash     string `json:"meta_hash,omitempty"`
}

func (f fileInfo) virtual() bool { return strings.HasPrefix(f.Name, "v__") }

// blobNames are the data blobs holding the file (none when virtual).
func (f fileInfo) blobNames() []string {
	if f.virtual() {
		return nil
	}
	if f.PartSize <= 0 || f.Length <= f.PartSize {
		return []string{f.Name}
	}
	n := (f.Length + f.PartSize - 1) / f.PartSize
	out := make([]string, n)
	for i := range out {
		out[i] = f.Name + ".part" + strconv.Itoa(i)
	}
	return out
}

// shardSnap is the payload of a shard snap-<uuid>.dat.
type shardSnap struct {
	Name                 string     `json:"name"`
	IndexVersion         int64      `json:"index_version"`
	StartTime            int64      `json:"start_time"`
	Time                 int64      `json:"time"`
	NumberOfFiles        int        `json:"number_of_files"`
	TotalSize            int64      `json:"total_size"`
	IncrementalFileCount int        `json:"incremental_file_count"`
	IncrementalSize      int64      `json:"incremental_size"`
	Files                []fileInfo `json:"files"`
}

// shardGens is the payload of a shard index-<gen> blob.
type shardGens struct {
	Files     []fileInfo              `json:"files"`
	Snapshots map[string]shardSnapRef `json:"snapshots"`
}

type shardSnapRef struct {
	Files        []string `json:"files"`
	ShardStateID string   `json:"shard_state_id,omitempty"`
}

// indexMeta is the payload of indices/<id>/meta-<blob>.dat.
type indexMeta struct {
	Name            string                     `json:"name"`
	UUID            string                     `json:"uuid"`
	HistoryUUID     string                     `json:"history_uuid"`
	State           string                     `json:"state"`
	Settings        map[string]string          `json:"settings"`
	Mappings        json.RawMessage            `json:"mappings"`
	Aliases         map[string]json.RawMessage `json:"aliases"`
	SettingsVersion int64                      `json:"settings_version"`
	MappingVersion  int64                      `json:"mapping_version"`
	AliasesVersion  int64                      `json:"aliases_version"`
	CreationDate    int64                      `json:"creation_date"`
}

func metaOf(ix *index) indexMeta {
	return indexMeta{Name: ix.name, UUID: ix.uuid, HistoryUUID: ix.historyUUID, State: ix.state(),
		Settings: map[string]string{
			"index.number_of_shards":   strconv.Itoa(ix.numShards),
			"index.number_of_replicas": strconv.Itoa(ix.numReplicas),
			"index.hidden":             strconv.FormatBool(ix.hidden),
		},
		Mappings: ix.mappings, Aliases: ix.aliases, SettingsVersion: ix.settingsVersion,
		MappingVersion: ix.mappingVersion, AliasesVersion: ix.aliasesVersion, CreationDate: ix.created}
}

// inflightSnap is a running snapshot.
type inflightSnap struct {
	repo, name, uuid string
	indices          []string
	start            int64
	abort            chan struct{}
	aborted          bool
	metadata         map[string]any
	includeGlobal    bool
}

func (in *inflightSnap) hasIndex(name string) bool { return slices.Contains(in.indices, name) }

// capturedIndex is an index as it was when its snapshot started.
type capturedIndex struct {
	meta      indexMeta
	ident     string
	numShards int
	files     []map[string][]byte // per shard; nil when the shard fails
	fail      []string            // per shard failure reason, "" when fine
}

func (s *Server) versionString(id int) string {
	return fmt.Sprintf("%d.%d.%d", id/1000000, id/10000%100, id/100%100)
}

// external renders SnapshotInfo.toXContentExternal.
func (s *Server) external(repoName string, si *snapInfo) map[string]any {
	failed := si.TotalShards - si.SuccessfulShards
	failures := si.Failures
	if failures == nil {
		failures = []shardFailure{}
	}
	out := map[string]any{
		"snapshot": si.Name, "uuid": si.UUID, "repository": repoName,
		"version_id": si.VersionID, "version": s.versionString(si.VersionID),
		"indices": nonNil(si.Indices), "data_streams": nonNil(si.DataStreams),
		"include_global_state": si.IncludeGlobalState, "state": si.State,
		"start_time": isoMillis(si.StartTime), "start_time_in_millis": si.StartTime,
		"failures":       failures,
		"shards":         map[string]any{"total": si.TotalShards, "failed": failed, "successful": si.SuccessfulShards},
		"feature_states": []any{},
	}
	if si.Metadata != nil {
		out["metadata"] = si.Metadata
	}
	if si.Reason != "" {
		out["reason"] = si.Reason
	}
	if si.State != "IN_PROGRESS" {
		out["end_time"] = isoMillis(si.EndTime)
		out["end_time_in_millis"] = si.EndTime
		out["duration_in_millis"] = si.EndTime - si.StartTime
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func validateSnapshotName(repo, name string) *esError {
	bad := func(why string) *esError {
		return newErr(400, "invalid_snapshot_name_exception", "[%s:%s] Invalid snapshot name [%s], %s", repo, name, name, why)
	}
	switch {
	case name == "":
		return bad("cannot be empty")
	case strings.IndexFunc(name, unicode.IsSpace) >= 0:
		return bad("must not contain whitespace")
	case strings.Contains(name, ","):
		return bad("must not contain ','")
	case strings.Contains(name, "#"):
		return bad("must not contain '#'")
	case strings.HasPrefix(name, "_"):
		return bad("must not start with '_'")
	case strings.ToLower(name) != name:
		return bad("must be lowercase")
	case strings.ContainsAny(name, "\\/*?\"<>|"):
		return bad(`must not contain the following characters [\, /, *, ?, ", <, >, |]`)
	}
	return nil
}

func (s *Server) nameInUse(repo, name, why string) *esError {
	typ := "invalid_snapshot_name_exception"
	if s.atLeast(8, 16) {
		typ = "snapshot_name_already_in_use_exception"
	}
	return newErr(400, typ, "[%s:%s] Invalid snapshot name [%s], %s", repo, name, name, why)
}

type createBody struct {
	Indices            json.RawMessage `json:"indices"`
	IgnoreUnavailable  bool            `json:"ignore_unavailable"`
	IncludeGlobalState *bool           `json:"include_global_state"`
	Partial            bool            `json:"partial"`
	Metadata           map[string]any  `json:"metadata"`
	FeatureStates      []string        `json:"feature_states"`
	ExpandWildcards    string          `json:"expand_wildcards"`
}

// stringList decodes "a,b" or ["a","b"].
func stringList(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return splitList(one), nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, err
	}
	var out []string
	for _, m := range many {
		out = append(out, splitList(m)...)
	}
	return out, nil
}

func (s *Server) createSnapshot(r *request, repoName, name string) (int, any) {
	if err := validateSnapshotName(repoName, name); err != nil {
		return 0, err
	}
	rp, ok := s.repos[repoName]
	if !ok {
		return 0, repoMissing(repoName)
	}
	var b createBody
	if err := r.decode(&b); err != nil {
		return 0, err
	}
	if rp.readOnly {
		return 0, s.readOnlyErr(repoName, "cannot create snapshot in a readonly repository")
	}
	d, _, err := s.loadRepoData(rp)
	if err != nil {
		return 0, err
	}
	if d.snapshot(name) != nil {
		return 0, s.nameInUse(repoName, name, "snapshot with the same name already exists")
	}
	for _, in := range s.inflight {
		if in.repo == repoName && in.name == name {
			return 0, s.nameInUse(repoName, name, "snapshot with the same name is already in-progress")
		}
	}
	exprs, perr := stringList(b.Indices)
	if perr != nil {
		return 0, newErr(400, "x_content_parse_exception", "[indices] failed to parse: %v", perr)
	}
	ew := "all"
	if b.ExpandWildcards != "" {
		ew = b.ExpandWildcards
	}
	o := parseExpand(nil, ew, b.IgnoreUnavailable, true)
	names, rerr := resolveNames(exprs, s.candidates(), o)
	if rerr != nil {
		return 0, rerr
	}
	uuid := newUUID()
	var closed, unassigned []string
	for _, n := range names {
		if !s.indices[n].open {
			closed = append(closed, n)
		}
		if s.faults.unassigned[n] {
			unassigned = append(unassigned, n)
		}
	}
	if !b.Partial && len(unassigned) > 0 {
		return 0, newErr(500, "snapshot_exception", "[%s:%s/%s] Indices don't have primary shards [%s]", repoName, name, uuid, strings.Join(unassigned, ", "))
	}
	if !b.Partial && len(closed) > 0 {
		return 0, newErr(500, "snapshot_exception", "[%s:%s/%s] Indices are closed [%s]", repoName, name, uuid, strings.Join(closed, ", "))
	}
	// The snapshot point in time: flush, then take each shard's commit.
	captured := map[string]*capturedIndex{}
	for _, n := range names {
		ix := s.indices[n]
		ci := &capturedIndex{meta: metaOf(ix), ident: ix.identifier(), numShards: ix.numShards,
			files: make([]map[string][]byte, ix.numShards), fail: make([]string, ix.numShards)}
		for i, sh := range ix.shards {
			switch {
			case !ix.open:
				ci.fail[i] = "index is closed"
			case s.faults.unassigned[n]:
				ci.fail[i] = "primary shard is not allocated"
			case sh.failed != "":
				ci.fail[i] = "primary shard is not active"
			case s.faults.failShards[shardKey{n, i}] != "":
				sh.flush(s.segCfg(ix))
				ci.fail[i] = s.faults.failShards[shardKey{n, i}]
			default:
				sh.flush(s.segCfg(ix))
				ci.files[i] = sh.files
			}
		}
		captured[n] = ci
	}
	includeGlobal := true
	if b.IncludeGlobalState != nil {
		includeGlobal = *b.IncludeGlobalState
	}
	in := &inflightSnap{repo: repoName, name: name, uuid: uuid, indices: names, start: nowMillis(),
		abort: make(chan struct{}), metadata: b.Metadata, includeGlobal: includeGlobal}
	failReason := ""
	if len(s.faults.failNext) > 0 {
		failReason = s.faults.failNext[0]
		s.faults.failNext = s.faults.failNext[1:]
	}
	s.inflight = append(s.inflight, in)
	rp.inUse++
	if !r.boolParam("wait_for_completion", false) {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.mu.Lock()
			defer s.mu.Unlock()
			s.runSnapshot(rp, in, captured, failReason)
		}()
		return 200, map[string]any{"accepted": true}
	}
	si, serr := s.runSnapshot(rp, in, captured, failReason)
	if serr != nil {
		return 0, serr
	}
	if hook := s.faults.afterFinalize; hook != nil {
		s.mu.Unlock()
		hook(repoName, name)
		s.mu.Lock()
	}
	return 200, map[string]any{"snapshot": s.external(repoName, si)}
}

// runSnapshot waits out the configured delay, then writes the snapshot.
// It runs with s.mu held (released while waiting).
func (s *Server) runSnapshot(rp *repo, in *inflightSnap, captured map[string]*capturedIndex, failReason string) (*snapInfo, *esError) {
	defer func() {
		s.inflight = slices.DeleteFunc(s.inflight, func(x *inflightSnap) bool { return x == in })
		rp.inUse--
	}()
	if d := s.faults.snapshotDelay; d > 0 {
		if !s.sleep(d, in.abort) {
			return nil, newErr(500, "node_closed_exception", "node closed")
		}
	}
	if gate := s.faults.snapshotHold; gate != nil {
		if !s.await(gate, in.abort) {
			return nil, newErr(500, "node_closed_exception", "node closed")
		}
	}
	if in.aborted {
		si := &snapInfo{Name: in.name, UUID: in.uuid, VersionID: s.versionID(), Indices: in.indices, State: "FAILED",
			Reason: "Snapshot was aborted by deletion", IncludeGlobalState: in.includeGlobal, Metadata: in.metadata,
			StartTime: in.start, EndTime: nowMillis()}
		for _, n := range in.indices {
			ci := captured[n]
			for i := range ci.numShards {
				si.TotalShards++
				si.Failures = append(si.Failures, shardFailure{Index: n, IndexUUID: ci.meta.UUID, ShardID: i, Reason: "aborted", NodeID: s.nodeID, Status: "INTERNAL_SERVER_ERROR"})
			}
		}
		return si, nil
	}
	return s.finalize(rp, in, captured, failReason)
}

// finalize writes the shard-level blobs, then the root blobs and the new
// index-N, in the order of docs/ELASTICSEARCH.md §6, and schedules the cleanup.
func (s *Server) finalize(rp *repo, in *inflightSnap, captured map[string]*capturedIndex, failReason string) (*snapInfo, *esError) {
	d, gen, lerr := s.loadRepoData(rp)
	if lerr != nil {
		return nil, newErr(500, "snapshot_exception", "[%s:%s/%s] failed to update snapshot in repository", rp.name, in.name, in.uuid).cause(lerr)
	}
	ioErr := func(err error) *esError {
		return newErr(500, "snapshot_exception", "[%s:%s/%s] failed to update snapshot in repository", rp.name, in.name, in.uuid).
			cause(newErr(500, "i_o_exception", "%v", err))
	}
	si := &snapInfo{Name: in.name, UUID: in.uuid, VersionID: s.versionID(), Indices: in.indices, DataStreams: []string{},
		IncludeGlobalState: in.includeGlobal, Metadata: in.metadata, StartTime: in.start, Failures: []shardFailure{}, FeatureStates: []any{}}
	lookup := map[string]string{}
	var superseded []string
	for _, n := range in.indices {
		ci := captured[n]
		rdi := d.Indices[n]
		if rdi == nil {
			rdi = &rdIndex{ID: newUUID()}
		}
		for len(rdi.ShardGenerations) < ci.numShards {
			rdi.ShardGenerations = append(rdi.ShardGenerations, nil)
		}
		rdi.ShardGenerations = rdi.ShardGenerations[:ci.numShards]
		for i := range ci.numShards {
			si.TotalShards++
			reason := ci.fail[i]
			if failReason != "" {
				reason = failReason
			}
			if reason == "" {
				newGen, old, err := s.writeShard(rp, rdi.ID, i, in, ci.files[i], rdi.ShardGenerations[i])
				if err == nil {
					rdi.ShardGenerations[i] = &newGen
					if old != "" {
						superseded = append(superseded, old)
					}
					si.SuccessfulShards++
					continue
				}
				reason = err.Error()
			}
			si.Failures = append(si.Failures, shardFailure{Index: n, IndexUUID: ci.meta.UUID, ShardID: i, Reason: reason, NodeID: s.nodeID, Status: "INTERNAL_SERVER_ERROR"})
		}
		if failReason != "" {
			continue // a FAILED snapshot references no index data
		}
		blob, ok := d.IndexMetadataIdentifiers[ci.ident]
		if s.format.metaBySnapshot {
			blob, ok = in.uuid, false
		}
		if !ok {
			if !s.format.metaBySnapshot {
				blob = newUUID()
			}
			dir := filepath.Join(rp.location, "indices", rdi.ID)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, ioErr(err)
			}
			data, err := encodeChecksumBlob(codecIndexMetadata, ci.meta, s.blobEncoding(rp))
			if err != nil {
				return nil, ioErr(err)
			}
			if err := writeBlobExcl(filepath.Join(dir, "meta-"+blob+".dat"), data); err != nil {
				return nil, ioErr(err)
			}
			if !s.format.metaBySnapshot {
				d.IndexMetadataIdentifiers[ci.ident] = blob
			}
		}
		if !s.format.metaBySnapshot {
			lookup[rdi.ID] = ci.ident
		}
		rdi.Snapshots = append(rdi.Snapshots, in.uuid)
		d.Indices[n] = rdi
	}
	switch {
	case failReason != "":
		si.State, si.Reason = "FAILED", failReason
	case len(si.Failures) > 0:
		si.State = "PARTIAL"
	default:
		si.State = "SUCCESS"
	}
	si.EndTime = nowMillis()
	// Real blobs wrap these payloads in one object: {"meta-data": …}
	// and {"snapshot": …} (checked against repositories written by
	// 5.6, 6.8 and 7.10; see docs/ELASTICSEARCH.md).
	global, err := encodeChecksumBlob(codecMetadata, map[string]any{"meta-data": map[string]any{"cluster_uuid": s.clusterUUID, "templates": map[string]any{},
		"persistent_settings": map[string]any{}, "version": si.VersionID}}, s.blobEncoding(rp))
	if err != nil {
		return nil, ioErr(err)
	}
	if err := writeBlobExcl(filepath.Join(rp.location, "meta-"+in.uuid+".dat"), global); err != nil {
		return nil, ioErr(err)
	}
	root, err := encodeChecksumBlob(codecSnapshot, rootSnap{si}, s.blobEncoding(rp))
	if err != nil {
		return nil, ioErr(err)
	}
	if err := writeBlobExcl(filepath.Join(rp.location, "snap-"+in.uuid+".dat"), root); err != nil {
		return nil, ioErr(err)
	}
	state := map[string]int{"SUCCESS": stateSuccess, "PARTIAL": statePartial, "FAILED": stateFailed}[si.State]
	var version any = s.versionString(si.VersionID)
	if s.atLeast(8, 9) {
		version = 8_500_000 + s.version[1]*1000 // an IndexVersion-like id
	}
	rs := &rdSnapshot{Name: in.name, UUID: in.uuid, State: state, IndexMetadataLookup: lookup}
	if s.format.snapshotVersion {
		rs.Version = version
	}
	if s.format.repoUUID {
		rs.StartTimeMillis, rs.EndTimeMillis, rs.SLMPolicy = si.StartTime, si.EndTime, new(string)
	}
	d.Snapshots = append(d.Snapshots, rs)
	newGen, err := s.writeRepoData(rp, d, gen)
	if err != nil {
		return nil, ioErr(err)
	}
	s.cleanupOld(rp, newGen, superseded)
	return si, nil
}

// cleanupOld deletes the superseded root index-N blobs (up to 1000 back)
// and shard generations, after PostFinalizeCleanupDelay.
func (s *Server) cleanupOld(rp *repo, newGen int64, paths []string) {
	loc := rp.location
	do := func() {
		gens, _ := listGens(loc)
		for _, g := range gens {
			if g < newGen && g >= newGen-1000 {
				os.Remove(filepath.Join(loc, "index-"+strconv.FormatInt(g, 10)))
			}
		}
		for _, p := range paths {
			os.Remove(p)
		}
	}
	if h := s.faults.cleanupHold; h != nil {
		h.wg.Add(1)
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			defer h.wg.Done()
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.await(h.gate, nil) {
				do()
			}
		}()
		return
	}
	delay := s.faults.cleanupDelay
	if delay <= 0 {
		do()
		return
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.sleep(delay, nil) {
			do()
		}
	}()
}

func isVirtual(physical string) bool {
	return strings.HasPrefix(physical, "segments_") || strings.HasSuffix(physical, ".si")
}

// writeShard snapshots one shard's commit: reuse files already in the
// repository (same name, length, checksum), make small files virtual,
// write the rest as new __ blobs (O_EXCL), then snap-<uuid>.dat and a new
// index-<gen>. It returns the new generation and the path of the
// superseded one.
func (s *Server) writeShard(rp *repo, indexID string, shardNum int, in *inflightSnap, files map[string][]byte, oldGen *string) (string, string, error) {
	dir := filepath.Join(rp.location, "indices", indexID, strconv.Itoa(shardNum))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	cur := shardGens{Snapshots: map[string]shardSnapRef{}}
	oldPath := ""
	if oldGen != nil && *oldGen != "" {
		oldPath = filepath.Join(dir, "index-"+*oldGen)
		data, err := os.ReadFile(oldPath)
		if err != nil {
			return "", "", fmt.Errorf("failed to read shard generation: %w", err)
		}
		if err := decodeChecksumBlob(data, codecSnapshots, &cur); err != nil {
			return "", "", fmt.Errorf("failed to read shard generation [%s]: %w", *oldGen, err)
		}
		if cur.Snapshots == nil {
			cur.Snapshots = map[string]shardSnapRef{}
		}
	}
	known := map[string][]fileInfo{}
	for _, f := range cur.Files {
		known[f.PhysicalName] = append(known[f.PhysicalName], f)
	}
	ss := shardSnap{Name: in.name, StartTime: in.start, Time: 0, Files: []fileInfo{}}
	for _, name := range sortedKeys(files) {
		data := files[name]
		sum, err := luceneChecksum(data)
		if err != nil {
			return "", "", fmt.Errorf("file %s: %w", name, err)
		}
		var fi *fileInfo
		for _, k := range known[name] {
			if k.Length == int64(len(data)) && k.Checksum == sum {
				fi = &k
				break
			}
		}
		if fi == nil {
			f := fileInfo{PhysicalName: name, Length: int64(len(data)), Checksum: sum, WrittenBy: luceneVersion}
			// Elasticsearch always records the part size, Long.MAX_VALUE
			// without chunk_size (seen in 5.6, 6.8 and 7.10 repositories).
			f.PartSize = math.MaxInt64
			if isVirtual(name) {
				f.MetaHash = base64.StdEncoding.EncodeToString(data)
			}
			if isVirtual(name) && s.format.virtualFiles {
				f.Name = "v__" + newUUID()
			} else {
				f.Name = s.format.nextBlobName(cur.Files, ss.IncrementalFileCount)
				if rp.chunkSize > 0 {
					f.PartSize = rp.chunkSize
				}
				parts := f.blobNames()
				for i, p := range parts {
					lo, hi := int64(0), int64(len(data))
					if len(parts) > 1 {
						lo = int64(i) * f.PartSize
						hi = min(lo+f.PartSize, hi)
					}
					if err := writeBlobExcl(filepath.Join(dir, p), data[lo:hi]); err != nil {
						return "", "", err
					}
				}
			}
			ss.IncrementalFileCount++
			ss.IncrementalSize += int64(len(data))
			fi = &f
		}
		ss.Files = append(ss.Files, *fi)
		ss.NumberOfFiles++
		ss.TotalSize += int64(len(data))
	}
	ss.Time = nowMillis() - in.start
	data, err := encodeChecksumBlob(codecSnapshot, ss, s.blobEncoding(rp))
	if err != nil {
		return "", "", err
	}
	if err := writeBlobExcl(filepath.Join(dir, "snap-"+in.uuid+".dat"), data); err != nil {
		return "", "", err
	}
	ref := shardSnapRef{}
	if s.format.snapshotVersion { // 7.x on; not in 5.6 and 6.8 repositories
		ref.ShardStateID = newUUID()
	}
	for _, f := range ss.Files {
		ref.Files = append(ref.Files, f.Name)
	}
	cur.Snapshots[in.name] = ref
	cur.Files = referencedFiles(cur.Files, ss.Files, cur.Snapshots)
	newGen := s.format.nextShardGen(oldGen)
	data, err = encodeChecksumBlob(codecSnapshots, cur, s.blobEncoding(rp))
	if err != nil {
		return "", "", err
	}
	if err := writeBlobExcl(filepath.Join(dir, "index-"+newGen), data); err != nil {
		return "", "", err
	}
	return newGen, oldPath, nil
}

// referencedFiles is the union of old and added file infos that some
// snapshot in snaps still references, sorted by blob name.
func referencedFiles(old, added []fileInfo, snaps map[string]shardSnapRef) []fileInfo {
	used := map[string]bool{}
	for _, ref := range snaps {
		for _, f := range ref.Files {
			used[f] = true
		}
	}
	seen := map[string]bool{}
	out := []fileInfo{}
	for _, f := range slices.Concat(old, added) {
		if used[f.Name] && !seen[f.Name] {
			seen[f.Name] = true
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// readRootSnap reads and verifies root snap-<uuid>.dat.
func (s *Server) readRootSnap(rp *repo, sn *rdSnapshot) (*snapInfo, *esError) {
	data, err := os.ReadFile(filepath.Join(rp.location, "snap-"+sn.UUID+".dat"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, snapshotMissing(rp.name, sn.Name)
	}
	var rs rootSnap
	if err == nil {
		err = decodeChecksumBlob(data, codecSnapshot, &rs)
	}
	if err == nil && rs.Snapshot == nil {
		err = fmt.Errorf("%w: no snapshot object", errCorrupt)
	}
	if err != nil {
		return nil, newErr(500, "snapshot_exception", "[%s:%s/%s] failed to get snapshot info", rp.name, sn.Name, sn.UUID).
			cause(newErr(500, "corrupt_state_exception", "%v", err))
	}
	return rs.Snapshot, nil
}

func (s *Server) getSnapshots(r *request, repoExpr, snapExpr string) (int, any) {
	repoNames, err := s.repoNames(repoExpr)
	if err != nil {
		return 0, err
	}
	ignore := r.boolParam("ignore_unavailable", false)
	verbose := r.boolParam("verbose", true)
	pats := splitList(snapExpr)
	type entry struct {
		start int64
		name  string
		body  map[string]any
	}
	var list []entry
	for _, rn := range repoNames {
		rp := s.repos[rn]
		d, _, err := s.loadRepoData(rp)
		if err != nil {
			return 0, err
		}
		found := map[string]bool{}
		current := len(pats) == 1 && pats[0] == "_current"
		if !current {
			for _, sn := range d.Snapshots {
				if !matchAny(pats, sn.Name) {
					continue
				}
				found[sn.Name] = true
				if !verbose {
					var idx []string
					for name, ix := range d.Indices {
						if slices.Contains(ix.Snapshots, sn.UUID) {
							idx = append(idx, name)
						}
					}
					sort.Strings(idx)
					list = append(list, entry{sn.StartTimeMillis, sn.Name, map[string]any{"snapshot": sn.Name, "uuid": sn.UUID,
						"repository": rn, "indices": nonNil(idx), "data_streams": []string{}, "state": stateNames[sn.State]}})
					continue
				}
				si, err := s.readRootSnap(rp, sn)
				if err != nil {
					return 0, err
				}
				list = append(list, entry{si.StartTime, si.Name, s.external(rn, si)})
			}
		}
		for _, in := range s.inflight {
			if in.repo != rn || !(current || matchAny(pats, in.name)) {
				continue
			}
			found[in.name] = true
			si := &snapInfo{Name: in.name, UUID: in.uuid, VersionID: s.versionID(), Indices: in.indices, State: "IN_PROGRESS",
				IncludeGlobalState: in.includeGlobal, Metadata: in.metadata, StartTime: in.start}
			list = append(list, entry{in.start, in.name, s.external(rn, si)})
		}
		for _, p := range pats {
			if !strings.Contains(p, "*") && p != "_all" && p != "_current" && !found[p] && !ignore {
				return 0, snapshotMissing(rn, p)
			}
		}
	}
	sort.SliceStable(list, func(i, j int) bool {
		if list[i].start != list[j].start {
			return list[i].start < list[j].start
		}
		return list[i].name < list[j].name
	})
	snaps := make([]any, len(list))
	for i, e := range list {
		snaps[i] = e.body
	}
	return 200, map[string]any{"snapshots": snaps, "total": len(snaps), "remaining": 0}
}

func statsJSON(files, incFiles int, size, incSize, start, took int64) map[string]any {
	return map[string]any{
		"incremental":          map[string]any{"file_count": incFiles, "size_in_bytes": incSize},
		"total":                map[string]any{"file_count": files, "size_in_bytes": size},
		"start_time_in_millis": start, "time_in_millis": took,
	}
}

func (s *Server) snapshotStatus(r *request, repoName, snapExpr string) (int, any) {
	var out []any
	running := func(in *inflightSnap) map[string]any {
		return map[string]any{"snapshot": in.name, "repository": in.repo, "uuid": in.uuid, "state": "STARTED",
			"include_global_state": in.includeGlobal,
			"shards_stats":         map[string]any{"initializing": 0, "started": 0, "finalizing": 0, "done": 0, "failed": 0, "total": 0},
			"stats":                statsJSON(0, 0, 0, 0, in.start, nowMillis()-in.start), "indices": map[string]any{}}
	}
	if snapExpr == "" {
		for _, in := range s.inflight {
			if repoName == "" || in.repo == repoName {
				out = append(out, running(in))
			}
		}
		return 200, map[string]any{"snapshots": nonNilAny(out)}
	}
	rp, ok := s.repos[repoName]
	if !ok {
		return 0, repoMissing(repoName)
	}
	d, _, err := s.loadRepoData(rp)
	if err != nil {
		return 0, err
	}
	for _, name := range splitList(snapExpr) {
		if i := slices.IndexFunc(s.inflight, func(x *inflightSnap) bool { return x.repo == repoName && x.name == name }); i >= 0 {
			out = append(out, running(s.inflight[i]))
			continue
		}
		sn := d.snapshot(name)
		if sn == nil {
			if r.boolParam("ignore_unavailable", false) {
				continue
			}
			return 0, snapshotMissing(repoName, name)
		}
		si, err := s.readRootSnap(rp, sn)
		if err != nil {
			return 0, err
		}
		var tf, tif int
		var ts, tis, took int64
		indices := map[string]any{}
		done, failed := 0, 0
		for _, n := range si.Indices {
			rdi := d.Indices[n]
			shards := map[string]any{}
			var f, inf int
			var sz, isz int64
			idxDone, idxFailed := 0, 0
			if rdi != nil {
				for i := range rdi.ShardGenerations {
					data, err := os.ReadFile(filepath.Join(rp.location, "indices", rdi.ID, strconv.Itoa(i), "snap-"+sn.UUID+".dat"))
					var ss shardSnap
					if err == nil {
						err = decodeChecksumBlob(data, codecSnapshot, &ss)
					}
					if err != nil {
						idxFailed++
						shards[strconv.Itoa(i)] = map[string]any{"stage": "FAILURE"}
						continue
					}
					idxDone++
					f += ss.NumberOfFiles
					inf += ss.IncrementalFileCount
					sz += ss.TotalSize
					isz += ss.IncrementalSize
					took = max(took, ss.Time)
					shards[strconv.Itoa(i)] = map[string]any{"stage": "DONE",
						"stats": statsJSON(ss.NumberOfFiles, ss.IncrementalFileCount, ss.TotalSize, ss.IncrementalSize, ss.StartTime, ss.Time)}
				}
			}
			done += idxDone
			failed += idxFailed
			tf += f
			tif += inf
			ts += sz
			tis += isz
			indices[n] = map[string]any{
				"shards_stats": map[string]any{"initializing": 0, "started": 0, "finalizing": 0, "done": idxDone, "failed": idxFailed, "total": idxDone + idxFailed},
				"stats":        statsJSON(f, inf, sz, isz, si.StartTime, si.EndTime-si.StartTime), "shards": shards}
		}
		out = append(out, map[string]any{"snapshot": si.Name, "repository": repoName, "uuid": si.UUID, "state": si.State,
			"include_global_state": si.IncludeGlobalState,
			"shards_stats":         map[string]any{"initializing": 0, "started": 0, "finalizing": 0, "done": done, "failed": failed, "total": done + failed},
			"stats":                statsJSON(tf, tif, ts, tis, si.StartTime, si.EndTime-si.StartTime), "indices": indices})
	}
	return 200, map[string]any{"snapshots": nonNilAny(out)}
}

func nonNilAny(s []any) []any {
	if s == nil {
		return []any{}
	}
	return s
}

func (s *Server) deleteSnapshots(r *request, repoName, expr string) (int, any) {
	rp, ok := s.repos[repoName]
	if !ok {
		return 0, repoMissing(repoName)
	}
	if rp.readOnly {
		return 0, s.readOnlyErr(repoName, "cannot delete snapshot from a readonly repository")
	}
	pats := splitList(expr)
	aborted := map[string]bool{}
	for _, in := range s.inflight {
		if in.repo == repoName && matchAny(pats, in.name) && !in.aborted {
			in.aborted = true
			close(in.abort)
			aborted[in.name] = true
		}
	}
	d, gen, err := s.loadRepoData(rp)
	if err != nil {
		return 0, err
	}
	targets := map[string]*rdSnapshot{}
	for _, p := range pats {
		matched := false
		for _, sn := range d.Snapshots {
			if p == "_all" || simpleMatch(p, sn.Name) {
				targets[sn.UUID] = sn
				matched = true
			}
		}
		if !matched && !aborted[p] && !strings.Contains(p, "*") && p != "_all" {
			return 0, snapshotMissing(repoName, p)
		}
	}
	if len(targets) > 0 {
		rp.inUse++
		err := s.deleteFromRepo(rp, d, gen, targets)
		rp.inUse--
		if err != nil {
			return 0, newErr(500, "repository_exception", "[%s] failed to delete snapshots", repoName).cause(newErr(500, "i_o_exception", "%v", err))
		}
	}
	return 200, map[string]any{"acknowledged": true}
}

// deleteFromRepo writes new shard generations and a new index-N without the
// deleted snapshots, then deletes the files nothing references any more.
func (s *Server) deleteFromRepo(rp *repo, d *repoData, gen int64, targets map[string]*rdSnapshot) error {
	var files, dirs []string
	names := map[string]bool{}
	for _, sn := range targets {
		names[sn.Name] = true
		files = append(files, filepath.Join(rp.location, "snap-"+sn.UUID+".dat"), filepath.Join(rp.location, "meta-"+sn.UUID+".dat"))
	}
	for _, n := range sortedKeys(d.Indices) {
		rdi := d.Indices[n]
		remaining := slices.DeleteFunc(slices.Clone(rdi.Snapshots), func(u string) bool { return targets[u] != nil })
		if len(remaining) == len(rdi.Snapshots) {
			continue
		}
		if len(remaining) == 0 {
			dirs = append(dirs, filepath.Join(rp.location, "indices", rdi.ID))
			delete(d.Indices, n)
			continue
		}
		rdi.Snapshots = remaining
		for _, sn := range targets { // index metadata named by snapshot (before 7.9)
			files = append(files, filepath.Join(rp.location, "indices", rdi.ID, "meta-"+sn.UUID+".dat"))
		}
		for i, g := range rdi.ShardGenerations {
			if g == nil || *g == "" {
				continue
			}
			dir := filepath.Join(rp.location, "indices", rdi.ID, strconv.Itoa(i))
			data, err := os.ReadFile(filepath.Join(dir, "index-"+*g))
			if err != nil {
				return err
			}
			var cur shardGens
			if err := decodeChecksumBlob(data, codecSnapshots, &cur); err != nil {
				return err
			}
			changed := false
			for _, sn := range targets {
				if _, ok := cur.Snapshots[sn.Name]; ok {
					delete(cur.Snapshots, sn.Name)
					changed = true
				}
				files = append(files, filepath.Join(dir, "snap-"+sn.UUID+".dat"))
			}
			if !changed {
				continue
			}
			kept := referencedFiles(cur.Files, nil, cur.Snapshots)
			keptNames := map[string]bool{}
			for _, f := range kept {
				keptNames[f.Name] = true
			}
			for _, f := range cur.Files {
				if !keptNames[f.Name] {
					for _, b := range f.blobNames() {
						files = append(files, filepath.Join(dir, b))
					}
				}
			}
			cur.Files = kept
			newGen := s.format.nextShardGen(g)
			enc, err := encodeChecksumBlob(codecSnapshots, cur, s.blobEncoding(rp))
			if err != nil {
				return err
			}
			if err := writeBlobExcl(filepath.Join(dir, "index-"+newGen), enc); err != nil {
				return err
			}
			files = append(files, filepath.Join(dir, "index-"+*g))
			rdi.ShardGenerations[i] = &newGen
		}
	}
	d.Snapshots = slices.DeleteFunc(d.Snapshots, func(sn *rdSnapshot) bool { return targets[sn.UUID] != nil })
	used := map[string]bool{}
	for _, sn := range d.Snapshots {
		for _, ident := range sn.IndexMetadataLookup {
			used[ident] = true
		}
	}
	for _, sn := range targets {
		for id, ident := range sn.IndexMetadataLookup {
			if blob, ok := d.IndexMetadataIdentifiers[ident]; ok && !used[ident] {
				files = append(files, filepath.Join(rp.location, "indices", id, "meta-"+blob+".dat"))
				delete(d.IndexMetadataIdentifiers, ident)
			}
		}
	}
	newGen, err := s.writeRepoData(rp, d, gen)
	if err != nil {
		return err
	}
	gens, _ := listGens(rp.location)
	for _, g := range gens {
		if g < newGen {
			files = append(files, filepath.Join(rp.location, "index-"+strconv.FormatInt(g, 10)))
		}
	}
	for _, f := range files {
		os.Remove(f)
	}
	for _, dir := range dirs {
		os.RemoveAll(dir)
	}
	return nil
}
