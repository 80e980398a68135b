package esemu

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// doc is one stored document.
type doc struct {
	ID      string          `json:"_id"`
	Source  json.RawMessage `json:"_source"`
	Version int64           `json:"_version"`
	SeqNo   int64           `json:"_seq_no"`
	dead    bool            // buffered and since deleted or replaced
}

// segment is an immutable Lucene-like segment: its documents never change;
// deletions are recorded in a live-docs generation (.liv file).
type segment struct {
	num     int64
	docs    []doc
	deleted []bool // by ordinal
	delGen  int64  // generation of the committed .liv; 0 = none
	dirty   bool   // deletions not yet committed
	// base holds the segment's immutable files (.cfs, .cfe, .si) once made;
	// liv the current live-docs file, reset when delGen changes.
	base map[string][]byte
	liv  []byte
}

func (g *segment) name() string { return "_" + strconv.FormatInt(g.num, 36) }

func (g *segment) delCount() int {
	n := 0
	for _, d := range g.deleted {
		if d {
			n++
		}
	}
	return n
}

type docLoc struct {
	seg *segment // nil: buffered
	ord int
	buf *doc
}

// shard is one primary shard: the committed files (the Lucene directory at
// the last commit, never mutated in place), the segments, and documents
// indexed since the last commit.
type shard struct {
	files     map[string][]byte
	segs      []*segment
	buffer    []*doc
	live      map[string]docLoc
	commitGen int64
	nextSeg   int64
	seqNo     int64
	failed    string // non-empty: the shard failed to restore (red)
}

// segConfig are the knobs that shape segment files.
type segConfig struct {
	padding        int
	mergeThreshold int
	historyUUID    string
}

func newShard(cfg segConfig) *shard {
	s := &shard{files: map[string][]byte{}, live: map[string]docLoc{}}
	s.commit(cfg) // a new shard starts with an empty commit, as ES does
	return s
}

func (s *shard) get(id string) (*doc, bool) {
	l, ok := s.live[id]
	if !ok {
		return nil, false
	}
	if l.seg == nil {
		return l.buf, true
	}
	return &l.seg.docs[l.ord], true
}

func (s *shard) remove(id string) bool {
	l, ok := s.live[id]
	if !ok {
		return false
	}
	if l.seg == nil {
		l.buf.dead = true
	} else {
		l.seg.deleted[l.ord] = true
		l.seg.dirty = true
	}
	delete(s.live, id)
	return true
}

// index stores a document and returns it (with version and seq_no set) and
// whether it replaced an existing one.
func (s *shard) index(id string, src json.RawMessage) (*doc, bool) {
	var version int64 = 1
	old, existed := s.get(id)
	if existed {
		version = old.Version + 1
		s.remove(id)
	}
	d := &doc{ID: id, Source: slices.Clone(src), Version: version, SeqNo: s.seqNo}
	s.seqNo++
	s.buffer = append(s.buffer, d)
	s.live[id] = docLoc{buf: d}
	return d, existed
}

func (s *shard) count() int { return len(s.live) }

// flush commits pending changes: a new segment for buffered documents, new
// live-docs generations for segments with new deletions, a merge when there
// are too many segments, and a new segments_N. It writes nothing when nothing
// changed, so an unchanged shard keeps byte-identical files.
func (s *shard) flush(cfg segConfig) bool {
	changed := false
	var fresh []doc
	for _, d := range s.buffer {
		if !d.dead {
			fresh = append(fresh, *d)
		}
	}
	s.buffer = nil
	if len(fresh) > 0 {
		g := &segment{num: s.nextSeg, docs: fresh, deleted: make([]bool, len(fresh))}
		s.nextSeg++
		for i := range g.docs {
			s.live[g.docs[i].ID] = docLoc{seg: g, ord: i}
		}
		s.segs = append(s.segs, g)
		changed = true
	}
	for _, g := range s.segs {
		if g.dirty {
			g.delGen++
			g.liv = nil
			g.dirty = false
			changed = true
		}
	}
	// Fully deleted segments are dropped, as Lucene does.
	kept := s.segs[:0]
	for _, g := range s.segs {
		if g.delCount() < len(g.docs) {
			kept = append(kept, g)
		} else {
			changed = true
		}
	}
	s.segs = kept
	if cfg.mergeThreshold > 0 && len(s.segs) > cfg.mergeThreshold {
		s.merge()
		changed = true
	}
	if changed {
		s.commit(cfg)
	}
	return changed
}

// merge replaces all segments by one holding their live documents.
func (s *shard) merge() {
	if len(s.segs) <= 1 {
		return
	}
	var all []doc
	for _, g := range s.segs {
		for i, d := range g.docs {
			if !g.deleted[i] {
				all = append(all, d)
			}
		}
	}
	g := &segment{num: s.nextSeg, docs: all, deleted: make([]bool, len(all))}
	s.nextSeg++
	s.segs = []*segment{g}
	for i := range g.docs {
		s.live[g.docs[i].ID] = docLoc{seg: g, ord: i}
	}
}

// forceMerge merges down to one segment and commits if that changed anything.
func (s *shard) forceMerge(cfg segConfig) {
	s.flush(cfg)
	if len(s.segs) > 1 || (len(s.segs) == 1 && s.segs[0].delCount() > 0) {
		s.merge()
		s.commit(cfg)
	}
}

// segmentsFile is the payload of segments_N.
type segmentsFile struct {
	Generation int64           `json:"generation"`
	Segments   []segmentsEntry `json:"segments"`
	UserData   map[string]any  `json:"user_data"`
}

type segmentsEntry struct {
	Name     string `json:"name"`
	DocCount int    `json:"doc_count"`
	DelGen   int64  `json:"del_gen"`
	DelCount int    `json:"del_count"`
}

// commit writes a new file set: every segment's files (deterministic
// functions of its documents, so an unchanged segment has identical bytes)
// and a new segments_N.
func (s *shard) commit(cfg segConfig) {
	s.commitGen++
	files := make(map[string][]byte, len(s.segs)*4+1)
	sf := segmentsFile{Generation: s.commitGen, Segments: []segmentsEntry{}, UserData: map[string]any{
		"history_uuid": cfg.historyUUID, "max_seq_no": strconv.FormatInt(s.seqNo-1, 10),
	}}
	for _, g := range s.segs {
		for name, data := range s.segmentFiles(g, cfg) {
			files[name] = data
		}
		sf.Segments = append(sf.Segments, segmentsEntry{Name: g.name(), DocCount: len(g.docs), DelGen: g.delGen, DelCount: g.delCount()})
	}
	js, _ := json.Marshal(sf)
	gen := strconv.FormatInt(s.commitGen, 36)
	files["segments_"+gen] = luceneFile("segments", fileID("segments", js), gen, js)
	s.files = files
}

func fileID(kind string, content []byte) [16]byte {
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write(content)
	var id [16]byte
	copy(id[:], h.Sum(nil))
	return id
}

// segmentFiles returns the files of a segment: _n.cfs (documents as JSON
// lines plus deterministic padding), _n.cfe, _n.si and, with deletions,
// _n_<delGen>.liv.
func (s *shard) segmentFiles(g *segment, cfg segConfig) map[string][]byte {
	name := g.name()
	if g.base == nil {
		var lines bytes.Buffer
		for _, d := range g.docs {
			js, _ := json.Marshal(d)
			lines.Write(js)
			lines.WriteByte('\n')
		}
		id := fileID("segment"+name, lines.Bytes())
		var cfs bytes.Buffer
		var lenBuf [binary.MaxVarintLen64]byte
		cfs.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(lines.Len()))])
		cfs.Write(lines.Bytes())
		cfs.Write(padding(id, cfg.padding))
		g.base = map[string][]byte{}
		g.base[name+".cfs"] = luceneFile("Lucene90CompoundData", id, "", cfs.Bytes())
		cfe, _ := json.Marshal(map[string]any{"entries": []map[string]any{{"name": ".fdt", "offset": 0, "length": lines.Len()}}})
		g.base[name+".cfe"] = luceneFile("Lucene90CompoundEntries", id, "", cfe)
		si, _ := json.Marshal(map[string]any{"name": name, "doc_count": len(g.docs), "codec": "Lucene99",
			"files": []string{name + ".cfe", name + ".cfs", name + ".si"}})
		g.base[name+".si"] = luceneFile("Lucene90SegmentInfo", id, "", si)
	}
	out := make(map[string][]byte, 4)
	for k, v := range g.base {
		out[k] = v
	}
	if g.delGen > 0 {
		gen := strconv.FormatInt(g.delGen, 36)
		if g.liv == nil {
			words := make([]byte, (len(g.docs)+63)/64*8)
			for i, del := range g.deleted {
				if !del {
					words[i/8] |= 1 << (i % 8)
				}
			}
			g.liv = luceneFile("Lucene90LiveDocs", fileID("liv"+name+gen, words), gen, words)
		}
		out[name+"_"+gen+".liv"] = g.liv
	}
	return out
}

// padding returns n deterministic pseudo-random (incompressible) bytes.
func padding(seed [16]byte, n int) []byte {
	out := make([]byte, 0, n+32)
	block := sha256.Sum256(seed[:])
	for len(out) < n {
		out = append(out, block[:]...)
		block = sha256.Sum256(block[:])
	}
	return out[:n]
}

// shardFromFiles rebuilds a shard from the files of a commit, as a restore
// does. It checks every file's footer and that all files the commit names
// are present.
func shardFromFiles(files map[string][]byte) (*shard, error) {
	var segName string
	var best int64 = -1
	for name := range files {
		if g, ok := strings.CutPrefix(name, "segments_"); ok {
			n, err := strconv.ParseInt(g, 36, 64)
			if err == nil && n > best {
				best, segName = n, name
			}
		}
	}
	if segName == "" {
		return nil, fmt.Errorf("no segments file found in %v", sortedKeys(files))
	}
	_, _, payload, _, err := parseLuceneFile(files[segName])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", segName, err)
	}
	var sf segmentsFile
	if err := json.Unmarshal(payload, &sf); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", segName, errCorrupt, err)
	}
	s := &shard{files: files, live: map[string]docLoc{}, commitGen: sf.Generation}
	for _, e := range sf.Segments {
		num, err := strconv.ParseInt(strings.TrimPrefix(e.Name, "_"), 36, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: bad segment name %q", segName, e.Name)
		}
		for _, ext := range []string{".cfe", ".si"} {
			data, ok := files[e.Name+ext]
			if !ok {
				return nil, fmt.Errorf("missing file %s%s", e.Name, ext)
			}
			if _, _, _, _, err := parseLuceneFile(data); err != nil {
				return nil, fmt.Errorf("%s%s: %w", e.Name, ext, err)
			}
		}
		data, ok := files[e.Name+".cfs"]
		if !ok {
			return nil, fmt.Errorf("missing file %s.cfs", e.Name)
		}
		_, _, payload, _, err := parseLuceneFile(data)
		if err != nil {
			return nil, fmt.Errorf("%s.cfs: %w", e.Name, err)
		}
		n, w := binary.Uvarint(payload)
		if w <= 0 || uint64(len(payload)-w) < n {
			return nil, fmt.Errorf("%s.cfs: %w: bad length", e.Name, errCorrupt)
		}
		g := &segment{num: num, delGen: e.DelGen, base: map[string][]byte{}}
		for _, ext := range []string{".cfs", ".cfe", ".si"} {
			g.base[e.Name+ext] = files[e.Name+ext]
		}
		for _, line := range bytes.Split(bytes.TrimSuffix(payload[w:w+int(n)], []byte("\n")), []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			var d doc
			if err := json.Unmarshal(line, &d); err != nil {
				return nil, fmt.Errorf("%s.cfs: %w: %v", e.Name, errCorrupt, err)
			}
			g.docs = append(g.docs, d)
		}
		if len(g.docs) != e.DocCount {
			return nil, fmt.Errorf("%s: %w: %d documents, segments file says %d", e.Name, errCorrupt, len(g.docs), e.DocCount)
		}
		g.deleted = make([]bool, len(g.docs))
		if e.DelGen > 0 {
			liv := e.Name + "_" + strconv.FormatInt(e.DelGen, 36) + ".liv"
			data, ok := files[liv]
			if !ok {
				return nil, fmt.Errorf("missing file %s", liv)
			}
			_, _, words, _, err := parseLuceneFile(data)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", liv, err)
			}
			g.liv = data
			if len(words)*8 < len(g.docs) {
				return nil, fmt.Errorf("%s: %w: short bitset", liv, errCorrupt)
			}
			for i := range g.docs {
				g.deleted[i] = words[i/8]&(1<<(i%8)) == 0
			}
		}
		for i := range g.docs {
			if g.deleted[i] {
				continue
			}
			s.live[g.docs[i].ID] = docLoc{seg: g, ord: i}
			if g.docs[i].SeqNo >= s.seqNo {
				s.seqNo = g.docs[i].SeqNo + 1
			}
		}
		if num >= s.nextSeg {
			s.nextSeg = num + 1
		}
		s.segs = append(s.segs, g)
	}
	return s, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
