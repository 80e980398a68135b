package elasticsearch

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Names in the root of an fs repository (§1.1).
const (
	indexLatest  = "index.latest"
	indexPrefix  = "index-"
	indicesDir   = "indices"
	dataPrefix   = "__"
	snapPrefix   = "snap-"
	metaPrefix   = "meta-"
	datSuffix    = ".dat"
	generationNo = int64(-1)
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

// repositoryData is the part of the root index-N JSON (§1.2) that names
// files. Shard-level and .dat blobs are opaque (SMILE in real ES).
type repositoryData struct {
	UUID      string       `json:"uuid"`
	ClusterID string       `json:"cluster_id"`
	Snapshots []rdSnapshot `json:"snapshots"`
	Indices   map[string]struct {
		ID               string            `json:"id"`
		Snapshots        []string          `json:"snapshots"`
		ShardGenerations []json.RawMessage `json:"shard_generations"`
	} `json:"indices"`
	IndexMetadataIdentifiers map[string]string `json:"index_metadata_identifiers"`
}

// rdSnapshot is one entry of index-N's snapshots.
type rdSnapshot struct {
	Name                string            `json:"name"`
	UUID                string            `json:"uuid"`
	State               int               `json:"state"`
	IndexMetadataLookup map[string]string `json:"index_metadata_lookup"`
}

func readRepositoryData(loc string, gen int64) (*repositoryData, error) {
	name := indexPrefix + strconv.FormatInt(gen, 10)
	data, err := os.ReadFile(filepath.Join(loc, name))
	if err != nil {
		return nil, fmt.Errorf("elasticsearch: read repository data: %w", err)
	}
	var rd repositoryData
	if err := json.Unmarshal(data, &rd); err != nil {
		return nil, fmt.Errorf("elasticsearch: %s is not repository data: %w", filepath.Join(loc, name), err)
	}
	return &rd, nil
}

// shardGen decodes a shard_generations entry: a string uuid, a number
// (pre-7.6 repositories) or null; "" means no shard generation file.
func shardGen(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "_new" || s == "_deleted" {
			return ""
		}
		return s
	}
	var n int64
	if json.Unmarshal(raw, &n) == nil && n >= 0 {
		return strconv.FormatInt(n, 10)
	}
	return ""
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
}

// fileSet is the set of paths (slash-separated, relative to the repository
// root) that make up one generation.
type fileSet struct {
	dirs map[string]map[string]entry
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

// buildFileSet lists what generation gen of the repository at loc consists
// of (§4.1 step 5): index-N, index.latest, the root snap-/meta- blobs of its
// snapshots, the index metadata blobs it names, each shard's current
// index-<gen>, and, in those shard directories, the __ data blobs and the
// shard snap- blobs of its snapshots. The latter cannot be tied to the
// generation without parsing the (SMILE) shard blobs, so they are taken as
// found. Old index-N, superseded shard generations, pending-* and tests-*
// are left out.
func buildFileSet(loc string, gen int64, rd *repositoryData) (*fileSet, error) {
	fs := &fileSet{dirs: map[string]map[string]entry{"": {}}}
	must := entry{must: true}
	fs.add("", indexPrefix+strconv.FormatInt(gen, 10), must)
	fs.add("", indexLatest, must)
	snaps := map[string]bool{}
	for _, sn := range rd.Snapshots {
		if !safeID(sn.UUID) {
			return nil, fmt.Errorf("elasticsearch: index-%d: bad snapshot uuid %q", gen, sn.UUID)
		}
		snaps[sn.UUID] = true
		fs.add("", snapPrefix+sn.UUID+datSuffix, must)
		fs.add("", metaPrefix+sn.UUID+datSuffix, must)
	}
	if len(rd.Indices) > 0 {
		fs.add("", indicesDir, entry{dir: true, must: true})
	}
	metaBlobs := map[string]map[string]bool{} // index id → blob uuids
	for _, sn := range rd.Snapshots {
		for id, ident := range sn.IndexMetadataLookup {
			if blob, ok := rd.IndexMetadataIdentifiers[ident]; ok {
				if metaBlobs[id] == nil {
					metaBlobs[id] = map[string]bool{}
				}
				metaBlobs[id][blob] = true
			}
		}
	}
	for name, ix := range rd.Indices {
		if !safeID(ix.ID) {
			return nil, fmt.Errorf("elasticsearch: index-%d: index %s has a bad id %q", gen, name, ix.ID)
		}
		idir := indicesDir + "/" + ix.ID
		fs.add(indicesDir, ix.ID, entry{dir: true, must: true})
		if len(rd.IndexMetadataIdentifiers) == 0 {
			// Repositories from before ~7.9 name index metadata by snapshot.
			for _, u := range ix.Snapshots {
				if safeID(u) {
					fs.add(idir, metaPrefix+u+datSuffix, must)
				}
			}
		}
		for blob := range metaBlobs[ix.ID] {
			if !safeID(blob) {
				return nil, fmt.Errorf("elasticsearch: index-%d: bad index metadata blob %q", gen, blob)
			}
			fs.add(idir, metaPrefix+blob+datSuffix, must)
		}
		for s, raw := range ix.ShardGenerations {
			g := shardGen(raw)
			if g == "" {
				continue
			}
			if !safeID(g) {
				return nil, fmt.Errorf("elasticsearch: index-%d: bad shard generation %q", gen, g)
			}
			sn := strconv.Itoa(s)
			sdir := idir + "/" + sn
			fs.add(idir, sn, entry{dir: true, must: true})
			fs.add(sdir, indexPrefix+g, must)
			entries, err := os.ReadDir(filepath.Join(loc, filepath.FromSlash(sdir)))
			if err != nil {
				return nil, fmt.Errorf("elasticsearch: generation %d: shard %d of index %s: %w", gen, s, name, err)
			}
			for _, e := range entries {
				n := e.Name()
				if !e.Type().IsRegular() {
					continue
				}
				if strings.HasPrefix(n, dataPrefix) {
					fs.add(sdir, n, entry{})
				} else if u, ok := strings.CutPrefix(n, snapPrefix); ok && snaps[strings.TrimSuffix(u, datSuffix)] {
					fs.add(sdir, n, entry{})
				}
			}
		}
	}
	return fs, nil
}

// checkPresent reports the must-exist files that are missing on disk.
func (f *fileSet) checkPresent(loc string) error {
	var errs []error
	for dir, m := range f.dirs {
		for name, e := range m {
			if !e.must {
				continue
			}
			p := filepath.Join(loc, filepath.FromSlash(path.Join(dir, name)))
			fi, err := os.Lstat(p)
			switch {
			case err != nil:
				errs = append(errs, err)
			case e.dir != fi.IsDir() || !e.dir && !fi.Mode().IsRegular():
				errs = append(errs, fmt.Errorf("%s: unexpected file type %s", p, fi.Mode().Type()))
			}
		}
	}
	return errors.Join(errs...)
}
