package esemu

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// faults is the injected behaviour, guarded by Server.mu.
type faults struct {
	rules         []*rule
	omitProduct   bool
	snapshotDelay time.Duration
	cleanupDelay  time.Duration
	snapshotHold  chan struct{} // closed by the release of HoldSnapshots
	cleanupHold   *hold         // set by HoldCleanup
	failShards    map[shardKey]string
	failNext      []string // reasons: the next snapshots end FAILED
	unassigned    map[string]bool
	slm           map[string]string // policy id → repository
	afterFinalize func(repo, snap string)
}

type shardKey struct {
	index string
	shard int
}

// rule answers matching requests with an error status or by dropping the
// connection, n times (n < 0: until cleared).
type rule struct {
	method string
	prefix string
	status int
	typ    string
	reason string
	hangup bool
	after  bool
	n      int
}

func (r *rule) err() *esError {
	typ, reason := r.typ, r.reason
	if typ == "" {
		typ = "exception"
		if r.status == 503 {
			typ = "concurrent_snapshot_execution_exception"
		}
	}
	if reason == "" {
		reason = fmt.Sprintf("injected failure (HTTP %d)", r.status)
	}
	return newErr(r.status, typ, "%s", reason)
}

func (f *faults) match(method, path string) *rule {
	for i, r := range f.rules {
		if (r.method == "" || strings.EqualFold(r.method, method)) && strings.HasPrefix(path, r.prefix) {
			if r.n > 0 {
				r.n--
				if r.n == 0 {
					f.rules = append(f.rules[:i:i], f.rules[i+1:]...)
				}
			}
			return r
		}
	}
	return nil
}

// RespondStatus makes the next n requests whose method matches (""
// matches any) and whose path starts with pathPrefix fail with status and
// an ES error of type typ (default "exception", or
// concurrent_snapshot_execution_exception for 503) and reason. n < 0
// applies until ClearFaults. Injected responses carry the product header.
func (s *Server) RespondStatus(method, pathPrefix string, status int, typ, reason string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.rules = append(s.faults.rules, &rule{method: method, prefix: pathPrefix, status: status, typ: typ, reason: reason, n: n})
}

// Hangup drops the connection of the next n matching requests (n < 0:
// until ClearFaults). With afterHandling the request is carried out first
// and only the response is lost (a create that succeeded but whose answer
// never arrived).
func (s *Server) Hangup(method, pathPrefix string, n int, afterHandling bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.rules = append(s.faults.rules, &rule{method: method, prefix: pathPrefix, hangup: true, after: afterHandling, n: n})
}

// Unreachable drops every connection until ClearFaults, like a node that
// accepts TCP but never answers.
func (s *Server) Unreachable() { s.Hangup("", "/", -1, false) }

// OmitProductHeader stops (or resumes) sending X-Elastic-Product.
func (s *Server) OmitProductHeader(omit bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.omitProduct = omit
}

// SnapshotDelay keeps every new snapshot IN_PROGRESS for d before it is
// written and finalized.
func (s *Server) SnapshotDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.snapshotDelay = d
}

// PostFinalizeCleanupDelay makes the deletion of the superseded index-N
// and shard index-<gen> blobs happen d after the create-snapshot response
// instead of before it (ES answers first, then cleans up).
func (s *Server) PostFinalizeCleanupDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.cleanupDelay = d
}

// hold is a gate the post-finalize cleanups wait at; wg counts the
// cleanups waiting or running, so that release can wait for them.
type hold struct {
	gate chan struct{}
	wg   sync.WaitGroup
}

// HoldSnapshots keeps every new snapshot IN_PROGRESS until release is
// called: a test can then see it running for as long as it needs, instead
// of racing a delay. release may be called more than once.
func (s *Server) HoldSnapshots() (release func()) {
	gate := make(chan struct{})
	s.mu.Lock()
	s.faults.snapshotHold = gate
	s.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(gate) }) }
}

// HoldCleanup makes the deletion of the superseded index-N and shard
// index-<gen> blobs wait, after the create-snapshot response, until release
// is called (ES answers first, then cleans up). release returns once every
// held cleanup has run, so a test can look at the repository right after.
// release may be called more than once.
func (s *Server) HoldCleanup() (release func()) {
	h := &hold{gate: make(chan struct{})}
	s.mu.Lock()
	s.faults.cleanupHold = h
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() { close(h.gate) })
		h.wg.Wait()
	}
}

// FailShard makes every following snapshot fail that shard (the snapshot
// ends PARTIAL, or is refused when the request names the index with
// partial=false and it is the only index) until ClearFaults.
func (s *Server) FailShard(index string, shard int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults.failShards == nil {
		s.faults.failShards = map[shardKey]string{}
	}
	s.faults.failShards[shardKey{index, shard}] = "IndexShardSnapshotFailedException[injected failure]"
}

// FailNextSnapshot makes the next snapshot end in state FAILED with reason
// (written to the repository as FAILED, as an aborted snapshot is).
func (s *Server) FailNextSnapshot(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.failNext = append(s.faults.failNext, reason)
}

// UnassignPrimary makes index's primaries unavailable for snapshots:
// 500 "Indices don't have primary shards" with partial=false.
func (s *Server) UnassignPrimary(index string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults.unassigned == nil {
		s.faults.unassigned = map[string]bool{}
	}
	s.faults.unassigned[index] = true
}

// SetSLMPolicy adds (or, with repo "", removes) an SLM policy writing to
// repo, reported by GET _slm/policy.
func (s *Server) SetSLMPolicy(id, repo string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults.slm == nil {
		s.faults.slm = map[string]string{}
	}
	if repo == "" {
		delete(s.faults.slm, id)
	} else {
		s.faults.slm[id] = repo
	}
}

// SetDestructiveRequiresName sets action.destructive_requires_name.
func (s *Server) SetDestructiveRequiresName(v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.destr = v
}

// AfterSnapshot sets a hook run (without the state lock) right after a
// snapshot is finalized, before the create response is sent.
func (s *Server) AfterSnapshot(fn func(repo, snap string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.afterFinalize = fn
}

// ClearFaults removes every injected fault and delay and the hooks (SLM
// policies stay).
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	slm := s.faults.slm
	s.faults = faults{slm: slm}
}
