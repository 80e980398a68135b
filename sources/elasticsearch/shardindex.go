package elasticsearch

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Errors of the repository layout (use errors.Is).
var (
	// ErrUnknownLayout: the repository holds something cairn does not know
	// how to capture whole; cairn refuses it rather than store part of it.
	ErrUnknownLayout = errors.New("elasticsearch repository layout not understood")
	// ErrIncomplete: a file the repository generation needs is missing or
	// unreadable, so the copy would not restore.
	ErrIncomplete = errors.New("elasticsearch repository generation is incomplete")
)

// Blob names inside a shard directory.
const (
	uploadedPrefix = "__"  // a data blob: the bytes of one Lucene file
	virtualPrefix  = "v__" // content held in the shard metadata, no blob
	partInfix      = ".part"
	codecSnapshot  = "snapshot" // root and shard snap-*.dat
	// maxShardBlob bounds a shard index file read into memory; see
	// maxPayload for the inflated size.
	maxShardBlob = maxPayload
	// maxParts bounds the blobs one file is split into (chunk_size): a
	// 1 TiB Lucene file in 1 MiB chunks. A larger count means a damaged
	// index file, not a real one.
	maxParts = 1 << 20
)

// shardFile is one entry of a shard index file's files: a Lucene file
// (BlobStoreIndexShardSnapshot.FileInfo) stored as one or more blobs.
type shardFile struct {
	name     string // blob name: __<id>, or v__<id> when virtual
	physical string // the Lucene file name, for messages
	length   int64
	partSize int64 // 0: not split
}

// blobs returns the names of the blobs that hold the file, as FileInfo
// does: none for a virtual file, name alone for one part, and
// name.part0…name.part<n-1> when part_size splits it into n > 1 parts.
func (f shardFile) blobs() ([]string, error) {
	if strings.HasPrefix(f.name, virtualPrefix) {
		return nil, nil
	}
	id, ok := strings.CutPrefix(f.name, uploadedPrefix)
	if !ok || !safeID(id) {
		return nil, fmt.Errorf("%w: data blob name %q", ErrUnknownLayout, f.name)
	}
	if f.length < 0 || f.partSize < 0 {
		return nil, fmt.Errorf("%w: file %s has length %d, part size %d", ErrUnknownLayout, f.name, f.length, f.partSize)
	}
	parts := int64(1)
	if f.partSize > 0 && f.length > 0 {
		parts = 1 + (f.length-1)/f.partSize
	}
	if parts > maxParts {
		return nil, fmt.Errorf("%w: file %s would be %d parts", ErrUnknownLayout, f.name, parts)
	}
	if parts == 1 {
		return []string{f.name}, nil
	}
	out := make([]string, parts)
	for i := range out {
		out[i] = f.name + partInfix + strconv.Itoa(i)
	}
	return out, nil
}

// shardIndex is a shard index file (BlobStoreIndexShardSnapshots): the
// files of every snapshot of the shard, and which snapshot uses which.
type shardIndex struct {
	files     []shardFile
	snapshots map[string]bool // snapshot names
}

func readShardIndex(p string) (*shardIndex, error) {
	data, err := readBounded(p, maxShardBlob)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIncomplete, err)
	}
	v, err := decodeChecksumBlob(data, codecShardSnapshots)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnknownLayout, p, err)
	}
	si, err := parseShardIndex(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnknownLayout, p, err)
	}
	return si, nil
}

// parseShardIndex reads {"files":[{"name","length","part_size",…}…],
// "snapshots":{"<name>":{"files":["__…",…]},…}}. A snapshot naming a file
// the files list lacks is refused: its data would not be captured.
func parseShardIndex(v any) (*shardIndex, error) {
	top, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("shard index is not an object")
	}
	si := &shardIndex{snapshots: map[string]bool{}}
	files, ok := top["files"].([]any)
	if !ok && top["files"] != nil {
		return nil, errors.New("files is not a list")
	}
	known := map[string]bool{}
	for i, f := range files {
		m, ok := f.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("files[%d] is not an object", i)
		}
		name, ok1 := m["name"].(string)
		length, ok2 := m["length"].(int64)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("files[%d] lacks a name or a length", i)
		}
		physical, _ := m["physical_name"].(string)
		sf := shardFile{name: name, physical: physical, length: length}
		switch ps := m["part_size"].(type) {
		case int64:
			sf.partSize = ps
		case nil:
		default:
			return nil, fmt.Errorf("files[%d] (%s): part_size is %T", i, name, ps)
		}
		si.files = append(si.files, sf)
		known[name] = true
	}
	snaps, ok := top["snapshots"].(map[string]any)
	if !ok && top["snapshots"] != nil {
		return nil, errors.New("snapshots is not an object")
	}
	for name, s := range snaps {
		m, ok := s.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("snapshot %s is not an object", name)
		}
		list, _ := m["files"].([]any)
		for _, f := range list {
			fn, ok := f.(string)
			if !ok || !known[fn] {
				return nil, fmt.Errorf("snapshot %s uses file %v, which the files list lacks", name, f)
			}
		}
		si.snapshots[name] = true
	}
	return si, nil
}

// readSnapInfo reads a root snap-<uuid>.dat (SnapshotInfo):
// {"snapshot":{"name","uuid","state","indices":[…],"successful_shards",…}}.
func readSnapInfo(loc, uuid string) (*snapInfo, error) {
	p := filepath.Join(loc, snapPrefix+uuid+datSuffix)
	data, err := readBounded(p, maxPayload)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIncomplete, err)
	}
	v, err := decodeChecksumBlob(data, codecSnapshot)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnknownLayout, p, err)
	}
	top, _ := v.(map[string]any)
	m, ok := top["snapshot"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: %s holds no snapshot object", ErrUnknownLayout, p)
	}
	si := &snapInfo{}
	si.name, _ = m["name"].(string)
	si.uuid, _ = m["uuid"].(string)
	si.state, _ = m["state"].(string)
	n, ok := m["successful_shards"].(int64)
	if !ok || n < 0 {
		return nil, fmt.Errorf("%w: %s: successful_shards is %v", ErrUnknownLayout, p, m["successful_shards"])
	}
	si.successfulShards = n
	list, ok := m["indices"].([]any)
	if !ok {
		return nil, fmt.Errorf("%w: %s: indices is %T", ErrUnknownLayout, p, m["indices"])
	}
	for _, ix := range list {
		s, ok := ix.(string)
		if !ok {
			return nil, fmt.Errorf("%w: %s: index name %v", ErrUnknownLayout, p, ix)
		}
		si.indices = append(si.indices, s)
	}
	return si, nil
}
