package elasticsearch

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Names in the root of an fs repository (docs/ELASTICSEARCH.md).
const (
	indexLatest           = "index.latest"
	indexPrefix           = "index-"
	indicesDir            = "indices"
	incompatibleSnapshots = "incompatible-snapshots"
	snapPrefix            = "snap-"
	metaPrefix            = "meta-"
	datSuffix             = ".dat"
	generationNo          = int64(-1)
)

// readGeneration returns the generation index.latest names (-1 when the
// file is missing) and the highest root index-N present (-1 when none).
// ES trusts the highest index-N; index.latest is best effort.
func readGeneration(loc string) (latest, highest int64, err error) {
	latest, highest = generationNo, generationNo
	entries, err := os.ReadDir(loc)
	if err != nil {
		return latest, highest, fmt.Errorf("elasticsearch: read repository directory: %w", err)
	}
	for _, e := range entries {
		if g, ok := strings.CutPrefix(e.Name(), indexPrefix); ok {
			if n, err := strconv.ParseInt(g, 10, 64); err == nil && n > highest {
				highest = n
			}
		}
	}
	data, err := os.ReadFile(filepath.Join(loc, indexLatest))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return latest, highest, nil
	case err != nil:
		return latest, highest, fmt.Errorf("elasticsearch: read %s: %w", indexLatest, err)
	case len(data) != 8:
		return latest, highest, fmt.Errorf("elasticsearch: %s has %d bytes, want 8", filepath.Join(loc, indexLatest), len(data))
	}
	return int64(binary.BigEndian.Uint64(data)), highest, nil
}

// repositoryData is the root index-N (plain JSON in every version; the
// fields of each version are in docs/ELASTICSEARCH.md). Unknown top-level
// fields are refused, as Elasticsearch refuses them: they would mean a
// layout cairn does not know. Unknown fields inside a snapshot or an index
// are ignored, as Elasticsearch ignores them.
type repositoryData struct {
	UUID      string       `json:"uuid"`
	ClusterID string       `json:"cluster_id"`
	Snapshots []rdSnapshot `json:"snapshots"`
	Indices   map[string]struct {
		ID string `json:"id"`
		// Snapshots holds snapshot uuids; before 5.4.1 objects with a
		// name and a uuid.
		Snapshots        []json.RawMessage `json:"snapshots"`
		ShardGenerations []json.RawMessage `json:"shard_generations"`
	} `json:"indices"`
	IndexMetadataIdentifiers map[string]string `json:"index_metadata_identifiers"`
}

// rootFields are the top-level fields of index-N, 5.0 to 9.x.
var rootFields = map[string]bool{"snapshots": true, "indices": true, "index_metadata_identifiers": true,
	"min_version": true, "uuid": true, "cluster_id": true}

// rdSnapshot is one entry of index-N's snapshots.
type rdSnapshot struct {
	Name                string            `json:"name"`
	UUID                string            `json:"uuid"`
	State               *int              `json:"state"` // absent before 6.x wrote it
	IndexMetadataLookup map[string]string `json:"index_metadata_lookup"`
}

// maxRootBlob bounds the root index-N read into memory: about 1 KiB per
// snapshot and index, so 256 MiB holds far more than Elasticsearch itself
// handles well.
const maxRootBlob = 256 << 20

func readRepositoryData(loc string, gen int64) (*repositoryData, error) {
	name := indexPrefix + strconv.FormatInt(gen, 10)
	p := filepath.Join(loc, name)
	data, err := readBounded(p, maxRootBlob)
	if err != nil {
		return nil, fmt.Errorf("elasticsearch: read repository data: %w", err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, fmt.Errorf("elasticsearch: %s is not repository data: %w", p, err)
	}
	for f := range fields {
		if !rootFields[f] {
			return nil, fmt.Errorf("%w: %s has a field %q that cairn does not know", ErrUnknownLayout, p, f)
		}
	}
	var rd repositoryData
	if err := json.Unmarshal(data, &rd); err != nil {
		return nil, fmt.Errorf("elasticsearch: %s is not repository data: %w", p, err)
	}
	return &rd, nil
}

// readBounded reads a whole file of at most limit bytes.
func readBounded(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, limit)
	}
	return data, nil
}

// snapshotUUID decodes an entry of indices.<name>.snapshots: a uuid, or
// before 5.4.1 an object holding one.
func snapshotUUID(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var o struct {
		UUID string `json:"uuid"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		return "", err
	}
	return o.UUID, nil
}

// shardGen decodes a shard_generations entry the way Elasticsearch does
// (ShardGenerations.fixShardGeneration): a uuid names the shard's index
// file; null, a number or a numeric string (written by versions before 7.6,
// unreliable) mean "take the highest index-N in the shard directory", and
// so does a missing entry. "_new" and "_deleted" are never written to disk.
func shardGen(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		var n *int64
		if json.Unmarshal(raw, &n) == nil {
			return "", nil
		}
		return "", fmt.Errorf("shard generation %s is neither a string nor a number", raw)
	}
	if _, err := strconv.ParseUint(s, 10, 63); err == nil {
		return "", nil
	}
	if s == "_new" || s == "_deleted" {
		return "", fmt.Errorf("shard generation %q is never written to disk", s)
	}
	return s, nil
}

// safeID accepts the identifiers ES uses in blob names (base64url UUIDs,
// numbers) and nothing that could leave the repository directory.
func safeID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// entry is one captured directory entry.
type entry struct {
	dir  bool
	must bool // referenced by the generation: missing means the copy is broken
	// what the file is, for the error that names it missing
	what string
}

// fileSet is the set of paths (slash-separated, relative to the repository
// root) that make up one generation.
type fileSet struct {
	dirs map[string]map[string]entry
	// layout names the layouts met (see docs/ELASTICSEARCH.md), e.g.
	// "shard-gen:numeric", "index-meta:identifier".
	layout map[string]bool
}

// describe names the file at rel and, when known, what it is.
func (e entry) describe(rel string) string {
	if e.what == "" {
		return rel
	}
	return rel + " (" + e.what + ")"
}

func (f *fileSet) add(dir, name string, e entry) {
	if f.dirs[dir] == nil {
		f.dirs[dir] = map[string]entry{}
	}
	if old, ok := f.dirs[dir][name]; ok && old.must {
		e.must = true
	}
	f.dirs[dir][name] = e
	if e.dir && f.dirs[path.Join(dir, name)] == nil {
		f.dirs[path.Join(dir, name)] = map[string]entry{}
	}
}

// files returns every captured file path, sorted.
func (f *fileSet) files() []string {
	var out []string
	for dir, m := range f.dirs {
		for name, e := range m {
			if !e.dir {
				out = append(out, path.Join(dir, name))
			}
		}
	}
	sort.Strings(out)
	return out
}

// layoutName lists the layouts met, sorted and comma-separated.
func (f *fileSet) layoutName() string {
	var out []string
	for l := range f.layout {
		out = append(out, l)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// snapInfo is what cairn reads from a root snap-<uuid>.dat (SnapshotInfo).
type snapInfo struct {
	name, uuid, state string
	indices           []string
	successfulShards  int64
	covered           int64 // shards whose shard index file lists the snapshot
}

// shardRef is one shard directory of one index.
type shardRef struct {
	index string
	shard int
}

// buildFileSet lists what generation gen of the repository at loc consists
// of and proves it complete (docs/ELASTICSEARCH.md, "What cairn captures"):
// index-N, index.latest, the root snap-/meta- blobs of its snapshots, the
// index metadata blobs they use, each shard's current index file (named by
// shard_generations, or the highest index-N in the shard directory), and
// every data blob and shard snap- blob that index file lists. Every
// snapshot's root snap- blob must account for as many shards as the shard
// index files list it in. Older index-N, superseded shard generations,
// blobs no index file lists, pending-* and tests-* are left out.
//
// Reading every root snap- blob and shard index file costs little: for a
// repository of 100 snapshots of 20 indices of 2 shards (4,462 files) it
// took 0.37 s (0.14 s in the 5.6 layout, 6,681 files) on the 2-core
// development machine, against seconds for the snapshot itself.
func buildFileSet(loc string, gen int64, rd *repositoryData) (*fileSet, error) {
	set := &fileSet{dirs: map[string]map[string]entry{"": {}}, layout: map[string]bool{}}
	where := fmt.Sprintf("repository %s generation %d", loc, gen)
	must := func(what string, args ...any) entry { return entry{must: true, what: fmt.Sprintf(what, args...)} }
	set.add("", indexPrefix+strconv.FormatInt(gen, 10), must("the repository data"))
	set.add("", indexLatest, must("the generation pointer"))
	if _, err := os.Lstat(filepath.Join(loc, incompatibleSnapshots)); err == nil {
		set.add("", incompatibleSnapshots, entry{}) // 5.x/6.x
	}
	snaps := map[string]*snapInfo{} // by uuid
	byName := map[string]*snapInfo{}
	for _, sn := range rd.Snapshots {
		if !safeID(sn.UUID) {
			return nil, fmt.Errorf("elasticsearch: %s: bad snapshot uuid %q", where, sn.UUID)
		}
		set.add("", snapPrefix+sn.UUID+datSuffix, must("the description of snapshot %s", sn.Name))
		set.add("", metaPrefix+sn.UUID+datSuffix, must("the cluster metadata of snapshot %s", sn.Name))
		si, err := readSnapInfo(loc, sn.UUID)
		if err != nil {
			return nil, fmt.Errorf("elasticsearch: %s: snapshot %s: %w", where, sn.Name, err)
		}
		if si.name != sn.Name || si.uuid != sn.UUID {
			return nil, fmt.Errorf("elasticsearch: %s: snap-%s.dat describes snapshot %s (%s), index-%d names %s", where, sn.UUID, si.name, si.uuid, gen, sn.Name)
		}
		snaps[sn.UUID], byName[sn.Name] = si, si
	}
	if len(rd.Indices) > 0 {
		set.add("", indicesDir, entry{dir: true, must: true})
	}
	listed := map[shardRef]map[string]bool{} // snapshot names each shard's index file lists
	indexShards := map[string]int{}
	for name, ix := range rd.Indices {
		if !safeID(ix.ID) {
			return nil, fmt.Errorf("elasticsearch: %s: index %s has a bad id %q", where, name, ix.ID)
		}
		idir := indicesDir + "/" + ix.ID
		set.add(indicesDir, ix.ID, entry{dir: true, must: true})
		for _, raw := range ix.Snapshots {
			u, err := snapshotUUID(raw)
			if err != nil || snaps[u] == nil {
				return nil, fmt.Errorf("elasticsearch: %s: index %s names snapshot %s, which index-%d does not hold", where, name, raw, gen)
			}
			blob, err := indexMetaBlob(rd, u, ix.ID)
			if err != nil {
				return nil, fmt.Errorf("elasticsearch: %s: index %s: %w", where, name, err)
			}
			set.layout[map[bool]string{true: "index-meta:snapshot", false: "index-meta:identifier"}[blob == u]] = true
			set.add(idir, metaPrefix+blob+datSuffix, must("the metadata of index %s", name))
		}
		gens := make([]string, len(ix.ShardGenerations))
		for s, raw := range ix.ShardGenerations {
			g, err := shardGen(raw)
			if err != nil {
				return nil, fmt.Errorf("elasticsearch: %s: index %s shard %d: %w", where, name, s, err)
			}
			if g != "" && !safeID(g) {
				return nil, fmt.Errorf("elasticsearch: %s: index %s shard %d: bad shard generation %q", where, name, s, g)
			}
			gens[s] = g
		}
		shards, err := shardDirs(filepath.Join(loc, filepath.FromSlash(idir)))
		if err != nil {
			return nil, fmt.Errorf("elasticsearch: %s: index %s: %w", where, name, err)
		}
		n := max(len(gens), shards)
		indexShards[name] = n
		for s := range n {
			g := ""
			if s < len(gens) {
				g = gens[s]
			}
			ref := shardRef{name, s}
			names, err := addShard(set, loc, name, idir, s, g, byName)
			if err != nil {
				return nil, fmt.Errorf("elasticsearch: %s: index %s shard %d: %w", where, name, s, err)
			}
			listed[ref] = names
			for sn := range names {
				if si := byName[sn]; si != nil {
					si.covered++
				}
			}
		}
	}
	return set, proveShards(snaps, listed, indexShards, where)
}

// proveShards checks that every snapshot's shards are all in the capture:
// as many shard index files list it as its SnapshotInfo counts successful
// shards, and for a SUCCESS snapshot each shard of each of its indices.
func proveShards(snaps map[string]*snapInfo, listed map[shardRef]map[string]bool, indexShards map[string]int, where string) error {
	var errs []error
	uuids := make([]string, 0, len(snaps))
	for u := range snaps {
		uuids = append(uuids, u)
	}
	sort.Strings(uuids)
	for _, u := range uuids {
		si := snaps[u]
		if si.state != "SUCCESS" && si.state != "PARTIAL" {
			continue // FAILED and INCOMPATIBLE snapshots cannot be restored
		}
		var missing []string
		if si.state == "SUCCESS" {
			for _, ix := range si.indices {
				n, ok := indexShards[ix]
				if !ok {
					missing = append(missing, fmt.Sprintf("index %s (not in index-N)", ix))
				}
				for s := range n {
					if !listed[shardRef{ix, s}][si.name] {
						missing = append(missing, fmt.Sprintf("index %s shard %d", ix, s))
					}
				}
			}
		}
		if si.covered < si.successfulShards || len(missing) > 0 {
			msg := fmt.Sprintf("snapshot %s (%s) has %d successful shards, shard index files list it for %d", si.name, si.uuid, si.successfulShards, si.covered)
			if len(missing) > 0 {
				msg += "; no shard index file lists it for " + strings.Join(missing, ", ")
			}
			errs = append(errs, errors.New(msg))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s: %w", ErrIncomplete, where, errors.Join(errs...))
	}
	return nil
}

// indexMetaBlob names the indices/<id>/meta-<blob>.dat that snapshot u
// uses for index id, as IndexMetaDataGenerations.indexMetaBlobId does:
// through index_metadata_lookup and index_metadata_identifiers (7.9+), or
// the snapshot uuid when the snapshot has no lookup entry for the index.
func indexMetaBlob(rd *repositoryData, u, id string) (string, error) {
	for _, sn := range rd.Snapshots {
		if sn.UUID != u {
			continue
		}
		ident, ok := sn.IndexMetadataLookup[id]
		if !ok {
			return u, nil
		}
		blob, ok := rd.IndexMetadataIdentifiers[ident]
		if !ok || !safeID(blob) {
			return "", fmt.Errorf("snapshot %s: index metadata identifier %q has no valid blob in index_metadata_identifiers", sn.Name, ident)
		}
		return blob, nil
	}
	return "", fmt.Errorf("unknown snapshot %s", u)
}

// shardDirs returns one more than the highest numeric shard directory in
// an index directory (0 when it has none or does not exist).
func shardDirs(idir string) (int, error) {
	entries, err := os.ReadDir(idir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if s, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() && s >= 0 && s < maxShards && strconv.Itoa(s) == e.Name() {
			n = max(n, s+1)
		}
	}
	return n, nil
}

// maxShards is Elasticsearch's limit on number_of_shards (1024).
const maxShards = 1024

// addShard adds shard s of the index in idir: its index file (index-<g>,
// or with g empty the highest index-N in the directory, as Elasticsearch
// finds it), every blob of every file that index file lists, and the shard
// snap- blob of each snapshot it lists. It returns the names of those
// snapshots.
func addShard(set *fileSet, loc, index, idir string, s int, g string, byName map[string]*snapInfo) (map[string]bool, error) {
	sn := strconv.Itoa(s)
	sdir := idir + "/" + sn
	dir := filepath.Join(loc, filepath.FromSlash(sdir))
	if g == "" {
		n, err := highestIndexN(dir)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil // no snapshot holds this shard; proveShards decides
		}
		g = strconv.FormatInt(n, 10)
		set.layout["shard-gen:numeric"] = true
	} else {
		set.layout["shard-gen:uuid"] = true
	}
	set.add(idir, sn, entry{dir: true, must: true})
	set.add(sdir, indexPrefix+g, entry{must: true, what: fmt.Sprintf("the shard index file of index %s shard %d", index, s)})
	si, err := readShardIndex(filepath.Join(dir, indexPrefix+g))
	if err != nil {
		return nil, err
	}
	for _, f := range si.files {
		blobs, err := f.blobs()
		if err != nil {
			return nil, fmt.Errorf("index-%s: %w", g, err)
		}
		what := fmt.Sprintf("data of index %s shard %d: Lucene file %s, listed by index-%s", index, s, f.physical, g)
		for _, b := range blobs {
			set.add(sdir, b, entry{must: true, what: what})
		}
	}
	for name := range si.snapshots {
		if info := byName[name]; info != nil {
			set.add(sdir, snapPrefix+info.uuid+datSuffix, entry{must: true, what: fmt.Sprintf("the files of snapshot %s in index %s shard %d", name, index, s)})
		}
	}
	return si.snapshots, nil
}

// highestIndexN returns the highest N of the index-N files in dir, -1 when
// there is none (or no directory).
func highestIndexN(dir string) (int64, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return -1, nil
	}
	if err != nil {
		return -1, err
	}
	n := int64(-1)
	for _, e := range entries {
		if g, ok := strings.CutPrefix(e.Name(), indexPrefix); ok {
			if v, err := strconv.ParseInt(g, 10, 64); err == nil && v > n {
				n = v
			}
		}
	}
	return n, nil
}

// checkPresent reports the must-exist files that are missing on disk,
// each with what it is, sorted by path.
func (f *fileSet) checkPresent(loc string) error {
	var msgs []string
	for dir, m := range f.dirs {
		for name, e := range m {
			if !e.must {
				continue
			}
			rel := path.Join(dir, name)
			fi, err := os.Lstat(filepath.Join(loc, filepath.FromSlash(rel)))
			switch {
			case errors.Is(err, fs.ErrNotExist):
				msgs = append(msgs, e.describe(rel)+" is missing")
			case err != nil:
				msgs = append(msgs, err.Error())
			case e.dir != fi.IsDir() || !e.dir && !fi.Mode().IsRegular():
				msgs = append(msgs, fmt.Sprintf("%s: unexpected file type %s", rel, fi.Mode().Type()))
			}
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	sort.Strings(msgs)
	if len(msgs) > 20 {
		msgs = append(msgs[:20], fmt.Sprintf("and %d more", len(msgs)-20))
	}
	return errors.New(strings.Join(msgs, "; "))
}
