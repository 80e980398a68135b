package esemu

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// index is one index of the emulated cluster.
type index struct {
	name, uuid, historyUUID string
	open                    bool
	numShards, numReplicas  int
	hidden                  bool
	settingsVersion         int64
	mappingVersion          int64
	aliasesVersion          int64
	mappings                json.RawMessage
	aliases                 map[string]json.RawMessage
	created                 int64
	shards                  []*shard
}

func (ix *index) state() string {
	if ix.open {
		return "open"
	}
	return "close"
}

func (ix *index) shardFor(id string) *shard {
	h := fnv.New32a()
	h.Write([]byte(id))
	return ix.shards[int(h.Sum32()%uint32(len(ix.shards)))]
}

func (ix *index) failedShards() int {
	n := 0
	for _, sh := range ix.shards {
		if sh.failed != "" {
			n++
		}
	}
	return n
}

func (ix *index) health() string {
	switch {
	case ix.failedShards() > 0:
		return "red"
	case ix.numReplicas > 0:
		return "yellow" // one node: replicas stay unassigned
	}
	return "green"
}

func (ix *index) docCount() int {
	n := 0
	for _, sh := range ix.shards {
		if sh.failed == "" {
			n += sh.count()
		}
	}
	return n
}

func (ix *index) storeSize() int64 {
	var n int64
	for _, sh := range ix.shards {
		for _, f := range sh.files {
			n += int64(len(f))
		}
	}
	return n
}

// identifier is the index-metadata identifier of docs/ELASTICSEARCH.md §4.
func (ix *index) identifier() string {
	h := ix.historyUUID
	if h == "" {
		h = "_na_"
	}
	return fmt.Sprintf("%s-%s-%d-%d-%d", ix.uuid, h, ix.settingsVersion, ix.mappingVersion, ix.aliasesVersion)
}

func (s *Server) segCfg(ix *index) segConfig {
	c := s.seg
	c.historyUUID = ix.historyUUID
	return c
}

// candidates lists the indices for name resolution.
func (s *Server) candidates() []candidate {
	out := make([]candidate, 0, len(s.indices))
	for _, ix := range s.indices {
		out = append(out, candidate{name: ix.name, open: ix.open, hidden: ix.hidden || strings.HasPrefix(ix.name, ".")})
	}
	return out
}

func (s *Server) resolve(expr string, o expandOpts) ([]*index, *esError) {
	names, err := resolveNames(splitList(expr), s.candidates(), o)
	if err != nil {
		return nil, err
	}
	out := make([]*index, len(names))
	for i, n := range names {
		out[i] = s.indices[n]
	}
	return out, nil
}

func validIndexName(name string) *esError {
	bad := func(why string) *esError {
		return newErr(400, "invalid_index_name_exception", "Invalid index name [%s], %s", name, why).
			with("index_uuid", "_na_").with("index", name)
	}
	switch {
	case name == "" || name == "." || name == "..":
		return bad("must not be '.' or '..'")
	case strings.ToLower(name) != name:
		return bad("must be lowercase")
	case strings.ContainsAny(name, "\\/*?\"<>| ,#:"):
		return bad(`must not contain the following characters [ , ", *, \, <, |, ,, >, /, ?]`)
	case strings.HasPrefix(name, "_") || strings.HasPrefix(name, "-") || strings.HasPrefix(name, "+"):
		return bad("must not start with '_', '-', or '+'")
	}
	return nil
}

// flattenSettings turns nested or dotted settings into "key" → value with
// the "index." prefix removed.
func flattenSettings(prefix string, in map[string]any, out map[string]any) {
	for k, v := range in {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if m, ok := v.(map[string]any); ok {
			flattenSettings(key, m, out)
			continue
		}
		out[strings.TrimPrefix(key, "index.")] = v
	}
}

func asInt(v any) (int, bool) {
	switch x := v.(type) {
	case float64:
		return int(x), true
	case string:
		n, err := strconv.Atoi(x)
		return n, err == nil
	case json.Number:
		n, err := strconv.Atoi(string(x))
		return n, err == nil
	}
	return 0, false
}

func asBool(v any) (bool, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case string:
		b, err := strconv.ParseBool(x)
		return b, err == nil
	}
	return false, false
}

type indexBody struct {
	Settings map[string]any             `json:"settings"`
	Mappings json.RawMessage            `json:"mappings"`
	Aliases  map[string]json.RawMessage `json:"aliases"`
}

func (s *Server) newIndex(name string, b indexBody) (*index, *esError) {
	flat := map[string]any{}
	flattenSettings("", b.Settings, flat)
	ix := &index{name: name, uuid: newUUID(), historyUUID: newUUID(), open: true, numShards: 1, numReplicas: 1,
		settingsVersion: 1, mappingVersion: 1, aliasesVersion: 1, mappings: b.Mappings, aliases: b.Aliases, created: nowMillis()}
	if v, ok := flat["number_of_shards"]; ok {
		n, ok := asInt(v)
		if !ok || n < 1 || n > 1024 {
			return nil, illegalArgument("Failed to parse value [%v] for setting [index.number_of_shards] must be >= 1", v)
		}
		ix.numShards = n
	}
	if v, ok := flat["number_of_replicas"]; ok {
		n, ok := asInt(v)
		if !ok || n < 0 {
			return nil, illegalArgument("Failed to parse value [%v] for setting [index.number_of_replicas] must be >= 0", v)
		}
		ix.numReplicas = n
	}
	if v, ok := flat["hidden"]; ok {
		ix.hidden, _ = asBool(v)
	}
	if len(ix.mappings) == 0 {
		ix.mappings = json.RawMessage("{}")
	}
	if ix.aliases == nil {
		ix.aliases = map[string]json.RawMessage{}
	}
	cfg := s.segCfg(ix)
	for range ix.numShards {
		ix.shards = append(ix.shards, newShard(cfg))
	}
	return ix, nil
}

func (s *Server) createIndex(r *request, name string) (int, any) {
	if err := validIndexName(name); err != nil {
		return 0, err
	}
	if ix, ok := s.indices[name]; ok {
		return 0, newErr(400, "resource_already_exists_exception", "index [%s/%s] already exists", name, ix.uuid).
			with("index_uuid", ix.uuid).with("index", name)
	}
	var b indexBody
	if err := r.decode(&b); err != nil {
		return 0, err
	}
	ix, err := s.newIndex(name, b)
	if err != nil {
		return 0, err
	}
	s.indices[name] = ix
	return 200, map[string]any{"acknowledged": true, "shards_acknowledged": true, "index": name}
}

func (ix *index) settingsJSON() map[string]any {
	return map[string]any{"index": map[string]any{
		"number_of_shards":   strconv.Itoa(ix.numShards),
		"number_of_replicas": strconv.Itoa(ix.numReplicas),
		"uuid":               ix.uuid,
		"provided_name":      ix.name,
		"creation_date":      strconv.FormatInt(ix.created, 10),
		"hidden":             strconv.FormatBool(ix.hidden),
		"version":            map[string]any{"created": "8521000"},
		"routing":            map[string]any{"allocation": map[string]any{"include": map[string]any{"_tier_preference": "data_content"}}},
	}}
}

func (s *Server) getIndex(r *request, expr string) (int, any) {
	ixs, err := s.resolve(expr, parseExpand(r, "open", false, true))
	if err != nil {
		return 0, err
	}
	out := map[string]any{}
	for _, ix := range ixs {
		out[ix.name] = map[string]any{"aliases": ix.aliases, "mappings": ix.mappings, "settings": ix.settingsJSON()}
	}
	return 200, out
}

func (s *Server) headIndex(r *request, expr string) (int, any) {
	ixs, err := s.resolve(expr, parseExpand(r, "open", false, true))
	if err != nil || len(ixs) == 0 {
		return 404, nil
	}
	return 200, nil
}

// snapshotting returns the indices among ixs that a running snapshot uses.
func (s *Server) snapshotting(ixs []*index) []string {
	var busy []string
	for _, ix := range ixs {
		for _, in := range s.inflight {
			if in.hasIndex(ix.name) {
				busy = append(busy, "["+ix.name+"/"+ix.uuid+"]")
				break
			}
		}
	}
	return busy
}

func (s *Server) destructiveCheck(expr string) *esError {
	if s.destr && hasWildcard(splitList(expr)) {
		return illegalArgument("Wildcard expressions or all indices are not allowed")
	}
	return nil
}

func (s *Server) deleteIndex(r *request, expr string) (int, any) {
	if err := s.destructiveCheck(expr); err != nil {
		return 0, err
	}
	ixs, err := s.resolve(expr, parseExpand(r, "open,closed", false, true))
	if err != nil {
		return 0, err
	}
	if busy := s.snapshotting(ixs); len(busy) > 0 {
		return 0, newErr(400, "snapshot_in_progress_exception",
			"Cannot delete indices that are being snapshotted: [%s]. Try again after snapshot finishes or cancel the currently running snapshot.", strings.Join(busy, ", "))
	}
	for _, ix := range ixs {
		delete(s.indices, ix.name)
	}
	return 200, map[string]any{"acknowledged": true}
}

func (s *Server) closeIndex(r *request, expr string) (int, any) {
	if err := s.destructiveCheck(expr); err != nil {
		return 0, err
	}
	ixs, err := s.resolve(expr, parseExpand(r, "open", false, true))
	if err != nil {
		return 0, err
	}
	if busy := s.snapshotting(ixs); len(busy) > 0 {
		return 0, newErr(400, "snapshot_in_progress_exception",
			"Cannot close indices that are being snapshotted: [%s]. Try again after snapshot finishes or cancel the currently running snapshot.", strings.Join(busy, ", "))
	}
	res := map[string]any{}
	for _, ix := range ixs {
		if ix.open {
			for _, sh := range ix.shards {
				if sh.failed == "" {
					sh.flush(s.segCfg(ix))
				}
			}
		}
		ix.open = false
		res[ix.name] = map[string]any{"closed": true}
	}
	return 200, map[string]any{"acknowledged": true, "shards_acknowledged": true, "indices": res}
}

func (s *Server) openIndex(r *request, expr string) (int, any) {
	ixs, err := s.resolve(expr, parseExpand(r, "closed", false, true))
	if err != nil {
		return 0, err
	}
	for _, ix := range ixs {
		ix.open = true
	}
	return 200, map[string]any{"acknowledged": true, "shards_acknowledged": true}
}

// usableIndex returns the open index name or the ES error for using it.
func (s *Server) usableIndex(name string) (*index, *esError) {
	ix, ok := s.indices[name]
	if !ok {
		return nil, indexNotFound(name)
	}
	if !ix.open {
		return nil, indexClosed(name, ix.uuid)
	}
	return ix, nil
}

func shardUnavailable(ix *index, sh int) *esError {
	return newErr(503, "no_shard_available_action_exception", "[%s][%d] primary shard is not active", ix.name, sh).
		with("index_uuid", ix.uuid).with("shard", strconv.Itoa(sh)).with("index", ix.name)
}

func shardNum(ix *index, sh *shard) int {
	for i, x := range ix.shards {
		if x == sh {
			return i
		}
	}
	return -1
}

func (s *Server) indexDoc(r *request, name, id string) (int, any) {
	ix, ok := s.indices[name]
	if !ok {
		if err := validIndexName(name); err != nil {
			return 0, err
		}
		var err *esError
		ix, err = s.newIndex(name, indexBody{})
		if err != nil {
			return 0, err
		}
		s.indices[name] = ix
	}
	if !ix.open {
		return 0, indexClosed(name, ix.uuid)
	}
	var src map[string]any
	if len(r.body) == 0 {
		return 0, newErr(400, "action_request_validation_exception", "Validation Failed: 1: source is missing;")
	}
	if err := r.decode(&src); err != nil {
		return 0, newErr(400, "mapper_parsing_exception", "failed to parse")
	}
	if id == "" {
		id = newUUID()[:20]
	}
	sh := ix.shardFor(id)
	if sh.failed != "" {
		return 0, shardUnavailable(ix, shardNum(ix, sh))
	}
	d, existed := sh.index(id, r.body)
	if rf := r.param("refresh"); r.q.Has("refresh") && (rf == "" || rf == "true" || rf == "wait_for") {
		sh.flush(s.segCfg(ix))
	}
	status, result := 201, "created"
	if existed {
		status, result = 200, "updated"
	}
	return status, map[string]any{"_index": name, "_id": id, "_version": d.Version, "result": result,
		"_shards": map[string]any{"total": 1 + ix.numReplicas, "successful": 1, "failed": 0},
		"_seq_no": d.SeqNo, "_primary_term": 1}
}

func (s *Server) getDoc(r *request, name, id string) (int, any) {
	ix, err := s.usableIndex(name)
	if err != nil {
		return 0, err
	}
	sh := ix.shardFor(id)
	if sh.failed != "" {
		return 0, shardUnavailable(ix, shardNum(ix, sh))
	}
	d, ok := sh.get(id)
	if !ok {
		return 404, map[string]any{"_index": name, "_id": id, "found": false}
	}
	return 200, map[string]any{"_index": name, "_id": id, "_version": d.Version, "_seq_no": d.SeqNo,
		"_primary_term": 1, "found": true, "_source": d.Source}
}

func (s *Server) deleteDoc(r *request, name, id string) (int, any) {
	ix, err := s.usableIndex(name)
	if err != nil {
		return 0, err
	}
	sh := ix.shardFor(id)
	if sh.failed != "" {
		return 0, shardUnavailable(ix, shardNum(ix, sh))
	}
	d, ok := sh.get(id)
	out := map[string]any{"_index": name, "_id": id, "_shards": map[string]any{"total": 1 + ix.numReplicas, "successful": 1, "failed": 0},
		"_seq_no": sh.seqNo, "_primary_term": 1}
	if !ok {
		out["_version"], out["result"] = 1, "not_found"
		return 404, out
	}
	out["_version"], out["result"] = d.Version+1, "deleted"
	sh.remove(id)
	sh.seqNo++
	if rf := r.param("refresh"); r.q.Has("refresh") && (rf == "" || rf == "true" || rf == "wait_for") {
		sh.flush(s.segCfg(ix))
	}
	return 200, out
}

func (s *Server) count(r *request, expr string) (int, any) {
	ixs, err := s.resolve(expr, parseExpand(r, "open", false, true))
	if err != nil {
		return 0, err
	}
	total, failed, n := 0, 0, 0
	for _, ix := range ixs {
		if !ix.open {
			return 0, indexClosed(ix.name, ix.uuid)
		}
		for _, sh := range ix.shards {
			total++
			if sh.failed != "" {
				failed++
				continue
			}
			n += sh.count()
		}
	}
	if total > 0 && failed == total {
		return 0, newErr(503, "search_phase_execution_exception", "all shards failed").with("phase", "query").with("grouped", true)
	}
	return 200, map[string]any{"count": n, "_shards": map[string]any{"total": total, "successful": total - failed, "skipped": 0, "failed": failed}}
}

func (s *Server) flushIndices(r *request, expr string) (int, any) {
	ixs, err := s.resolve(expr, parseExpand(r, "open", false, true))
	if err != nil {
		return 0, err
	}
	total := 0
	for _, ix := range ixs {
		if !ix.open {
			continue
		}
		for _, sh := range ix.shards {
			total++
			if sh.failed == "" {
				sh.flush(s.segCfg(ix))
			}
		}
	}
	return 200, map[string]any{"_shards": map[string]any{"total": total, "successful": total, "failed": 0}}
}

func (s *Server) forceMerge(r *request, expr string) (int, any) {
	ixs, err := s.resolve(expr, parseExpand(r, "open", false, true))
	if err != nil {
		return 0, err
	}
	total := 0
	for _, ix := range ixs {
		for _, sh := range ix.shards {
			total++
			if sh.failed == "" && ix.open {
				sh.forceMerge(s.segCfg(ix))
			}
		}
	}
	return 200, map[string]any{"_shards": map[string]any{"total": total, "successful": total, "failed": 0}}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64) + "gb"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + "mb"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + "kb"
	}
	return strconv.FormatInt(n, 10) + "b"
}

func (s *Server) catIndices(r *request) (int, any) {
	expr := "_all"
	if len(r.parts) == 3 {
		expr = r.parts[2]
	}
	ixs, err := s.resolve(expr, parseExpand(r, "all", false, true))
	if err != nil {
		return 0, err
	}
	cols := []string{"health", "status", "index", "uuid", "pri", "rep", "docs.count", "docs.deleted", "store.size", "pri.store.size", "dataset.size"}
	if h := r.param("h"); h != "" {
		cols = splitList(h)
	}
	var rows []map[string]any
	for _, ix := range ixs {
		size := humanBytes(ix.storeSize())
		all := map[string]any{
			"health": ix.health(), "status": ix.state(), "index": ix.name, "uuid": ix.uuid,
			"pri": strconv.Itoa(ix.numShards), "rep": strconv.Itoa(ix.numReplicas),
			"docs.count": strconv.Itoa(ix.docCount()), "docs.deleted": "0",
			"store.size": size, "pri.store.size": size, "dataset.size": size,
		}
		if !ix.open {
			all["docs.count"], all["docs.deleted"] = nil, nil
		}
		row := map[string]any{}
		for _, c := range cols {
			row[c] = all[c]
		}
		rows = append(rows, row)
	}
	if r.param("format") == "json" {
		if rows == nil {
			rows = []map[string]any{}
		}
		return 200, rows
	}
	var b strings.Builder
	if r.boolParam("v", false) {
		b.WriteString(strings.Join(cols, " ") + "\n")
	}
	for _, row := range rows {
		vals := make([]string, len(cols))
		for i, c := range cols {
			if row[c] != nil {
				vals[i] = fmt.Sprint(row[c])
			}
		}
		b.WriteString(strings.Join(vals, " ") + "\n")
	}
	return 200, textBody(b.String())
}

func (s *Server) resolveIndex(r *request) (int, any) {
	ixs, err := s.resolve(r.parts[2], parseExpand(r, "open", false, true))
	if err != nil {
		return 0, err
	}
	list := []map[string]any{}
	for _, ix := range ixs {
		attrs := []string{"closed"}
		if ix.open {
			attrs = []string{"open"}
		}
		if ix.hidden || strings.HasPrefix(ix.name, ".") {
			attrs = append(attrs, "hidden")
		}
		sort.Strings(attrs)
		entry := map[string]any{"name": ix.name, "attributes": attrs}
		if len(ix.aliases) > 0 {
			entry["aliases"] = sortedKeys(ix.aliases)
		}
		list = append(list, entry)
	}
	return 200, map[string]any{"indices": list, "aliases": []any{}, "data_streams": []any{}}
}

func parseDuration(v string, def time.Duration) time.Duration {
	if v == "" {
		return def
	}
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"nanos", time.Nanosecond}, {"micros", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}, {"d", 24 * time.Hour}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			if f, err := strconv.ParseFloat(n, 64); err == nil {
				return time.Duration(f * float64(u.unit))
			}
		}
	}
	return def
}

var healthRank = map[string]int{"green": 0, "yellow": 1, "red": 2}

func (s *Server) clusterHealth(r *request) (int, any) {
	want := r.param("wait_for_status")
	timeout := parseDuration(r.param("timeout"), 30*time.Second)
	deadline := time.Now().Add(timeout)
	for {
		status := "green"
		var selected []*index
		if len(r.parts) == 3 {
			ixs, err := s.resolve(r.parts[2], expandOpts{open: true, closed: true, hidden: true, ignoreUnavailable: true, allowNoIndices: true})
			if err != nil {
				return 0, err
			}
			selected = ixs
			for _, n := range splitList(r.parts[2]) {
				if _, ok := s.indices[n]; !ok && !strings.Contains(n, "*") {
					status = "red" // a missing concrete index is never active
				}
			}
		} else {
			for _, ix := range s.indices {
				selected = append(selected, ix)
			}
		}
		active, activePrimary, unassigned := 0, 0, 0
		for _, ix := range selected {
			if healthRank[ix.health()] > healthRank[status] {
				status = ix.health()
			}
			for _, sh := range ix.shards {
				if sh.failed != "" {
					unassigned += 1 + ix.numReplicas
					continue
				}
				active++
				activePrimary++
				unassigned += ix.numReplicas
			}
		}
		timedOut := want != "" && healthRank[status] > healthRank[want]
		if timedOut && time.Now().Before(deadline) {
			if !s.sleep(50*time.Millisecond, nil) {
				return 0, newErr(500, "node_closed_exception", "node closed")
			}
			continue
		}
		pct := 100.0
		if active+unassigned > 0 {
			pct = 100 * float64(active) / float64(active+unassigned)
		}
		body := map[string]any{"cluster_name": s.opts.ClusterName, "status": status, "timed_out": timedOut,
			"number_of_nodes": 1, "number_of_data_nodes": 1, "active_primary_shards": activePrimary, "active_shards": active,
			"relocating_shards": 0, "initializing_shards": 0, "unassigned_shards": unassigned, "unassigned_primary_shards": 0,
			"delayed_unassigned_shards": 0, "number_of_pending_tasks": 0, "number_of_in_flight_fetch": 0,
			"task_max_waiting_in_queue_millis": 0, "active_shards_percent_as_number": pct}
		if timedOut {
			return http.StatusRequestTimeout, body
		}
		return 200, body
	}
}
