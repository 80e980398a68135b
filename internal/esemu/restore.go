package esemu

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

type restoreBody struct {
	Indices             json.RawMessage `json:"indices"`
	IgnoreUnavailable   bool            `json:"ignore_unavailable"`
	IncludeGlobalState  bool            `json:"include_global_state"`
	IncludeAliases      *bool           `json:"include_aliases"`
	Partial             bool            `json:"partial"`
	RenamePattern       string          `json:"rename_pattern"`
	RenameReplacement   string          `json:"rename_replacement"`
	IndexSettings       map[string]any  `json:"index_settings"`
	IgnoreIndexSettings []string        `json:"ignore_index_settings"`
	FeatureStates       []string        `json:"feature_states"`
}

// replaceAllJava renames an index as Elasticsearch does, with Java's
// String.replaceAll: Matcher.appendReplacement expands the replacement
// ("\\c" is c; "$" then "{name}" or the longest digit run that names a
// group, at least one digit). Java's exceptions become ES's answers: an
// IllegalArgumentException is 400 illegal_argument_exception, a group
// number beyond the pattern's 500 index_out_of_bounds_exception. Unlike
// Java, Go skips an empty match right after a non-empty one (b* on "abc").
func replaceAllJava(re *regexp.Regexp, name, repl string) (string, *esError) {
	matches := re.FindAllStringSubmatchIndex(name, -1)
	var b strings.Builder
	prev := 0
	for _, m := range matches {
		b.WriteString(name[prev:m[0]])
		prev = m[1]
		group := func(g int) {
			if m[2*g] >= 0 {
				b.WriteString(name[m[2*g]:m[2*g+1]])
			}
		}
		for pos := 0; pos < len(repl); {
			c, w := utf8.DecodeRuneInString(repl[pos:])
			pos += w
			if c == '\\' {
				if pos == len(repl) {
					return "", illegalArgument("character to be escaped is missing")
				}
				c, w = utf8.DecodeRuneInString(repl[pos:])
				pos += w
				b.WriteRune(c)
				continue
			}
			if c != '$' {
				b.WriteRune(c)
				continue
			}
			if pos == len(repl) {
				return "", illegalArgument("Illegal group reference: group index is missing")
			}
			if repl[pos] == '{' {
				end := pos + 1
				for end < len(repl) && isASCIIAlnum(repl[end]) {
					end++
				}
				gname := repl[pos+1 : end]
				switch {
				case gname == "":
					return "", illegalArgument("named capturing group has 0 length name")
				case end == len(repl) || repl[end] != '}':
					return "", illegalArgument("named capturing group is missing trailing '}'")
				case gname[0] >= '0' && gname[0] <= '9':
					return "", illegalArgument("capturing group name {%s} starts with digit character", gname)
				}
				g := re.SubexpIndex(gname)
				if g < 0 {
					return "", illegalArgument("No group with name {%s}", gname)
				}
				group(g)
				pos = end + 1
				continue
			}
			if repl[pos] < '0' || repl[pos] > '9' {
				return "", illegalArgument("Illegal group reference")
			}
			g := int(repl[pos] - '0')
			pos++
			for pos < len(repl) && repl[pos] >= '0' && repl[pos] <= '9' {
				next := g*10 + int(repl[pos]-'0')
				if next > re.NumSubexp() {
					break
				}
				g = next
				pos++
			}
			if g > re.NumSubexp() {
				return "", newErr(500, "index_out_of_bounds_exception", "No group %d", g)
			}
			group(g)
		}
	}
	b.WriteString(name[prev:])
	return b.String(), nil
}

func isASCIIAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func (s *Server) restoreSnapshot(r *request, repoName, snapName string) (int, any) {
	rp, ok := s.repos[repoName]
	if !ok {
		return 0, repoMissing(repoName)
	}
	var b restoreBody
	if err := r.decode(&b); err != nil {
		return 0, err
	}
	d, _, err := s.loadRepoData(rp)
	if err != nil {
		return 0, err
	}
	sn := d.snapshot(snapName)
	if sn == nil {
		return 0, snapshotMissing(repoName, snapName)
	}
	si, err := s.readRootSnap(rp, sn)
	if err != nil {
		return 0, err
	}
	prefix := fmt.Sprintf("[%s:%s/%s] ", repoName, snapName, sn.UUID)
	fail := func(format string, args ...any) (int, any) {
		return 0, newErr(500, "snapshot_restore_exception", prefix+format, args...)
	}
	if si.State != "SUCCESS" && si.State != "PARTIAL" {
		return fail("unsupported snapshot state [%s]", si.State)
	}
	if si.VersionID > s.versionID() {
		return fail("the snapshot was created with version [%s] which is higher than the version of this node [%s]", s.versionString(si.VersionID), s.opts.Version)
	}
	if b.IncludeGlobalState && !si.IncludeGlobalState {
		return fail("cannot restore global state since the snapshot was created without global state")
	}
	exprs, perr := stringList(b.Indices)
	if perr != nil {
		return 0, newErr(400, "x_content_parse_exception", "[indices] failed to parse: %v", perr)
	}
	var cands []candidate
	for _, n := range si.Indices {
		cands = append(cands, candidate{name: n, open: true, hidden: strings.HasPrefix(n, ".")})
	}
	names, rerr := resolveNames(exprs, cands, expandOpts{open: true, closed: true, ignoreUnavailable: b.IgnoreUnavailable, allowNoIndices: true})
	if rerr != nil {
		return 0, rerr
	}
	failedShards := map[string]map[int]bool{}
	for _, f := range si.Failures {
		if failedShards[f.Index] == nil {
			failedShards[f.Index] = map[int]bool{}
		}
		failedShards[f.Index][f.ShardID] = true
	}
	for _, n := range names {
		if failedShards[n] != nil && !b.Partial {
			return fail("index [%s] wasn't fully snapshotted - cannot restore", n)
		}
	}
	target := map[string]string{} // source → target
	bySource := map[string]string{}
	var re *regexp.Regexp
	if b.RenamePattern != "" {
		var cerr error
		re, cerr = regexp.Compile(b.RenamePattern)
		if cerr != nil {
			return 0, illegalArgument("failed to compile rename_pattern [%s]: %v", b.RenamePattern, cerr)
		}
	}
	for _, n := range names {
		t := n
		if re != nil {
			var rerr *esError
			if t, rerr = replaceAllJava(re, n, b.RenameReplacement); rerr != nil {
				return 0, rerr
			}
		}
		if other, ok := bySource[t]; ok {
			return fail("indices [%s] and [%s] are renamed into the same index [%s]", other, n, t)
		}
		if err := validIndexName(t); err != nil {
			return 0, err
		}
		bySource[t] = n
		target[n] = t
	}
	metas := map[string]indexMeta{}
	for _, n := range names {
		rdi := d.Indices[n]
		var meta indexMeta
		var merr error
		if rdi == nil {
			merr = fmt.Errorf("index [%s] is not in the repository data", n)
		} else {
			path := filepath.Join(rp.location, "indices", rdi.ID, "meta-"+sn.UUID+".dat")
			if ident, ok := sn.IndexMetadataLookup[rdi.ID]; ok {
				if blob, ok := d.IndexMetadataIdentifiers[ident]; ok {
					path = filepath.Join(rp.location, "indices", rdi.ID, "meta-"+blob+".dat")
				}
			}
			data, err := os.ReadFile(path)
			if err == nil {
				err = decodeChecksumBlob(data, codecIndexMetadata, &meta)
			}
			merr = err
		}
		if merr != nil {
			return 0, newErr(500, "snapshot_exception", "%sfailed to read index metadata for index [%s]", prefix, n).
				cause(newErr(500, "exception", "%v", merr))
		}
		metas[n] = meta
	}
	for _, n := range names {
		t := target[n]
		ix, exists := s.indices[t]
		if !exists {
			continue
		}
		if ix.open {
			return fail("cannot restore index [%s] because an open index with same name already exists in the cluster. "+
				"Either close or delete the existing index or restore the index under a different name by providing a rename pattern and replacement name", t)
		}
		if b.Partial && failedShards[n] != nil {
			return fail("cannot restore partial index [%s] because such index already exists", t)
		}
		if want := metaShards(metas[n]); ix.numShards != want {
			return fail("cannot restore index [%s] with [%d] shards from a snapshot of index [%s] with [%d] shards", t, ix.numShards, n, want)
		}
	}
	rp.inUse++
	defer func() { rp.inUse-- }()
	total, failed := 0, 0
	var targets []string
	for _, n := range names {
		meta := metas[n]
		t := target[n]
		numShards := metaShards(meta)
		ix := &index{name: t, uuid: newUUID(), historyUUID: meta.HistoryUUID, open: true, numShards: numShards,
			settingsVersion: meta.SettingsVersion, mappingVersion: meta.MappingVersion, aliasesVersion: meta.AliasesVersion,
			mappings: meta.Mappings, aliases: map[string]json.RawMessage{}, created: meta.CreationDate}
		if old, ok := s.indices[t]; ok {
			ix.uuid = old.uuid
		}
		ix.numReplicas, _ = strconv.Atoi(meta.Settings["index.number_of_replicas"])
		ix.hidden, _ = strconv.ParseBool(meta.Settings["index.hidden"])
		flat := map[string]any{}
		flattenSettings("", b.IndexSettings, flat)
		if v, ok := flat["number_of_replicas"]; ok {
			if n, ok := asInt(v); ok && n >= 0 {
				ix.numReplicas = n
			}
		}
		if b.IncludeAliases == nil || *b.IncludeAliases {
			for k, v := range meta.Aliases {
				ix.aliases[k] = v
			}
		}
		for i := range numShards {
			total++
			if failedShards[n][i] {
				ix.shards = append(ix.shards, newShard(s.segCfg(ix))) // partial: recreated empty
				continue
			}
			sh, err := s.restoreShard(rp, d.Indices[n].ID, i, sn.UUID)
			if err != nil {
				failed++
				sh = &shard{files: map[string][]byte{}, live: map[string]docLoc{},
					failed: fmt.Sprintf("[%s][%d] failed to restore shard: %v", t, i, err)}
			}
			ix.shards = append(ix.shards, sh)
		}
		s.indices[t] = ix
		targets = append(targets, t)
	}
	sort.Strings(targets)
	if !r.boolParam("wait_for_completion", false) {
		return 200, map[string]any{"accepted": true}
	}
	return 200, map[string]any{"snapshot": map[string]any{"snapshot": snapName, "indices": nonNil(targets),
		"shards": map[string]any{"total": total, "failed": failed, "successful": total - failed}}}
}

func metaShards(m indexMeta) int {
	n, err := strconv.Atoi(m.Settings["index.number_of_shards"])
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// restoreShard reads one shard of a snapshot from disk: the shard
// snap-<uuid>.dat, then every data blob (all parts), checking each file's
// length and checksum before rebuilding the segments.
func (s *Server) restoreShard(rp *repo, indexID string, shardNum int, snapUUID string) (*shard, error) {
	dir := filepath.Join(rp.location, "indices", indexID, strconv.Itoa(shardNum))
	data, err := os.ReadFile(filepath.Join(dir, "snap-"+snapUUID+".dat"))
	if err != nil {
		return nil, fmt.Errorf("failed to read shard snapshot file: %w", err)
	}
	var ss shardSnap
	if err := decodeChecksumBlob(data, codecSnapshot, &ss); err != nil {
		return nil, fmt.Errorf("failed to read shard snapshot file: %w", err)
	}
	files := map[string][]byte{}
	for _, fi := range ss.Files {
		var content []byte
		if fi.virtual() {
			content, err = base64.StdEncoding.DecodeString(fi.MetaHash)
			if err != nil {
				return nil, fmt.Errorf("file [%s]: bad meta hash: %w", fi.PhysicalName, err)
			}
		} else {
			for _, b := range fi.blobNames() {
				part, err := os.ReadFile(filepath.Join(dir, b))
				if err != nil {
					return nil, fmt.Errorf("file [%s]: missing blob: %w", fi.PhysicalName, err)
				}
				content = append(content, part...)
			}
		}
		if int64(len(content)) != fi.Length {
			return nil, fmt.Errorf("file [%s] (blob [%s]): length [%d] does not match the snapshot's [%d]", fi.PhysicalName, fi.Name, len(content), fi.Length)
		}
		sum, err := luceneChecksum(content)
		if err != nil {
			return nil, fmt.Errorf("file [%s] (blob [%s]): %w", fi.PhysicalName, fi.Name, err)
		}
		if sum != fi.Checksum {
			return nil, fmt.Errorf("file [%s] (blob [%s]): checksum [%s] does not match the snapshot's [%s]", fi.PhysicalName, fi.Name, sum, fi.Checksum)
		}
		files[fi.PhysicalName] = content
	}
	return shardFromFiles(files)
}
