package esemu

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
)

// IndexState is what the emulator holds for one index.
type IndexState struct {
	Name      string
	UUID      string
	Open      bool
	Shards    int
	Replicas  int
	Health    string
	Docs      int
	Segments  int      // over all shards
	Files     []string // current commit files, "shard/name", sorted
	ShardErrs []string // restore failures
}

// Index returns the state of an index, or false when it does not exist.
func (s *Server) Index(name string) (IndexState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ix, ok := s.indices[name]
	if !ok {
		return IndexState{}, false
	}
	st := IndexState{Name: ix.name, UUID: ix.uuid, Open: ix.open, Shards: ix.numShards, Replicas: ix.numReplicas,
		Health: ix.health(), Docs: ix.docCount()}
	for i, sh := range ix.shards {
		st.Segments += len(sh.segs)
		for _, f := range sortedKeys(sh.files) {
			st.Files = append(st.Files, fmt.Sprintf("%d/%s", i, f))
		}
		if sh.failed != "" {
			st.ShardErrs = append(st.ShardErrs, sh.failed)
		}
	}
	return st, true
}

// Indices lists the index names, sorted.
func (s *Server) Indices() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedKeys(s.indices)
}

// Docs returns every live document of an index (including documents not
// yet flushed) as id → _source.
func (s *Server) Docs(name string) (map[string]json.RawMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ix, ok := s.indices[name]
	if !ok {
		return nil, fmt.Errorf("esemu: no index %q", name)
	}
	out := map[string]json.RawMessage{}
	for i, sh := range ix.shards {
		if sh.failed != "" {
			return nil, fmt.Errorf("esemu: index %q shard %d: %s", name, i, sh.failed)
		}
		for id := range sh.live {
			d, _ := sh.get(id)
			out[id] = slices.Clone(d.Source)
		}
	}
	return out, nil
}

// Running lists the in-progress snapshots as "repo:name".
func (s *Server) Running() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, in := range s.inflight {
		out = append(out, in.repo+":"+in.name)
	}
	sort.Strings(out)
	return out
}
