package esemu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultVersion is the Elasticsearch version the emulator reports unless
// Options.Version says otherwise.
const DefaultVersion = "8.19.7"

// Options configure an emulator. The zero value is usable.
type Options struct {
	// Version is the reported ES version (default DefaultVersion). It drives
	// destructive_requires_name (true from 8.0), the read-only and
	// name-in-use error texts and the repository-conflict status.
	Version string
	// ClusterName defaults to "es-emulator".
	ClusterName string
	// PathRepo are the allowed roots of fs repository locations (ES's
	// path.repo). Default: one fresh temporary directory, removed on Close.
	PathRepo []string
	// DestructiveRequiresName overrides action.destructive_requires_name.
	DestructiveRequiresName *bool
	// SegmentPadding is the number of padding bytes in each segment's .cfs
	// file (default 64 KiB, negative for none), to get realistic sizes.
	SegmentPadding int
	// MergeThreshold is the segment count above which a commit merges all
	// segments of a shard into one (default 10, negative: never).
	MergeThreshold int
	// SMILE writes the payloads of metadata blobs in SMILE, as
	// Elasticsearch does, instead of JSON (the default, easier to read).
	SMILE bool
	// RepositoryFormat is the layout the emulator writes snapshot
	// repositories in: Format56, Format68, Format710 or FormatCurrent
	// (the default), whatever Version it reports. See format.go.
	RepositoryFormat string
}

// Server is an in-process Elasticsearch emulator serving HTTP on loopback.
// See the package documentation for what it covers.
type Server struct {
	hs          *httptest.Server
	opts        Options
	version     [3]int
	clusterUUID string
	nodeID      string
	nodeName    string
	tmp         string
	seg         segConfig
	format      repoFormat

	mu       sync.Mutex
	indices  map[string]*index
	repos    map[string]*repo
	inflight []*inflightSnap
	faults   faults
	requests []string
	destr    bool

	bg     sync.WaitGroup
	closed chan struct{}
	once   sync.Once
}

// New starts an emulator on 127.0.0.1.
func New(opts Options) (*Server, error) {
	if opts.Version == "" {
		opts.Version = DefaultVersion
	}
	if opts.ClusterName == "" {
		opts.ClusterName = "es-emulator"
	}
	v, err := parseVersion(opts.Version)
	if err != nil {
		return nil, err
	}
	format, err := parseFormat(opts.RepositoryFormat)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:        opts,
		version:     v,
		format:      format,
		clusterUUID: newUUID(),
		nodeID:      newUUID(),
		nodeName:    "emu-node-0",
		indices:     map[string]*index{},
		repos:       map[string]*repo{},
		closed:      make(chan struct{}),
	}
	switch {
	case opts.SegmentPadding == 0:
		s.seg.padding = 64 << 10
	case opts.SegmentPadding > 0:
		s.seg.padding = opts.SegmentPadding
	}
	switch {
	case opts.MergeThreshold == 0:
		s.seg.mergeThreshold = 10
	case opts.MergeThreshold > 0:
		s.seg.mergeThreshold = opts.MergeThreshold
	}
	s.destr = v[0] >= 8
	if opts.DestructiveRequiresName != nil {
		s.destr = *opts.DestructiveRequiresName
	}
	if len(opts.PathRepo) == 0 {
		dir, err := os.MkdirTemp("", "esemu-path-repo-")
		if err != nil {
			return nil, err
		}
		s.tmp = dir
		s.opts.PathRepo = []string{dir}
	}
	for i, p := range s.opts.PathRepo {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		s.opts.PathRepo[i] = filepath.Clean(abs)
	}
	s.hs = httptest.NewServer(s)
	return s, nil
}

// blobEncoding is how metadata blobs of repository rp are written.
func (s *Server) blobEncoding(rp *repo) blobEncoding {
	return blobEncoding{compress: rp.compress, smile: s.opts.SMILE}
}

// Start is New for tests: it fails tb on error and closes the server when
// the test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if len(opts.PathRepo) == 0 {
		opts.PathRepo = []string{tb.TempDir()}
	}
	s, err := New(opts)
	if err != nil {
		tb.Fatalf("esemu: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// URL is the base URL of the emulator (http://127.0.0.1:port).
func (s *Server) URL() string { return s.hs.URL }

// PathRepo returns the first path.repo root: fs repository locations must
// lie below one of the roots.
func (s *Server) PathRepo() string { return s.opts.PathRepo[0] }

// RepoDir returns the absolute path of name below the first path.repo root
// (without creating it): the location to register a repository at, or a
// fresh directory to restore repository files into.
func (s *Server) RepoDir(name string) string { return filepath.Join(s.opts.PathRepo[0], name) }

// ClusterUUID is the emulated cluster's UUID (cluster_id in index-N).
func (s *Server) ClusterUUID() string { return s.clusterUUID }

// Version is the reported Elasticsearch version.
func (s *Server) Version() string { return s.opts.Version }

// Close stops the server, waits for background work (asynchronous snapshots
// and post-finalization cleanups) and removes a temporary path.repo.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.closed)
		s.hs.CloseClientConnections()
		s.hs.Close()
		s.bg.Wait()
		if s.tmp != "" {
			os.RemoveAll(s.tmp)
		}
	})
}

// Requests returns the requests served so far as "METHOD /path?query".
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

func parseVersion(v string) ([3]int, error) {
	var out [3]int
	parts := strings.SplitN(strings.SplitN(v, "-", 2)[0], ".", 3)
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return out, fmt.Errorf("esemu: bad version %q", v)
		}
		out[i] = n
	}
	return out, nil
}

func (s *Server) atLeast(major, minor int) bool {
	return s.version[0] > major || s.version[0] == major && s.version[1] >= minor
}

// versionID is ES's numeric version id (8.19.7 → 8190799).
func (s *Server) versionID() int {
	return s.version[0]*1000000 + s.version[1]*10000 + s.version[2]*100 + 99
}

// request is one parsed HTTP request.
type request struct {
	method string
	uri    string
	parts  []string
	q      url.Values
	body   []byte
}

func (r *request) param(name string) string { return r.q.Get(name) }

// boolParam reads a boolean query parameter; "" (present without value)
// counts as true, as in ES.
func (r *request) boolParam(name string, def bool) bool {
	if !r.q.Has(name) {
		return def
	}
	v := r.q.Get(name)
	return v == "" || v == "true"
}

func (r *request) decode(v any) *esError {
	if len(bytes.TrimSpace(r.body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		return newErr(400, "x_content_parse_exception", "failed to parse request body: %v", err)
	}
	return nil
}

// textBody is a non-JSON response (cat APIs without format=json).
type textBody string

func validContentType(ct string) bool {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch mt {
	case "application/json", "application/x-ndjson", "application/smile":
		return true
	case "application/vnd.elasticsearch+json", "application/vnd.elasticsearch+x-ndjson":
		c := params["compatible-with"]
		return c == "7" || c == "8" || c == "9"
	}
	return false
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+r.URL.RequestURI())
	f := s.faults.match(r.Method, r.URL.Path)
	omit := s.faults.omitProduct
	s.mu.Unlock()
	if f != nil && f.hangup && !f.after {
		hangup(w)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var status int
	var out any
	switch {
	case f != nil && f.status != 0:
		status, out = f.status, f.err()
	case len(body) > 0 && !validContentType(r.Header.Get("Content-Type")):
		e := &esError{status: 406, plain: fmt.Sprintf("Content-Type header [%s] is not supported", r.Header.Get("Content-Type"))}
		status, out = 406, e
	default:
		p := strings.Trim(r.URL.Path, "/")
		var parts []string
		if p != "" {
			parts = strings.Split(p, "/")
		}
		req := &request{method: r.Method, uri: r.URL.Path, parts: parts, q: r.URL.Query(), body: body}
		status, out = s.route(req)
	}
	if f != nil && f.hangup && f.after {
		hangup(w)
		return
	}
	if !omit {
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
	}
	var data []byte
	switch v := out.(type) {
	case textBody:
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		data = []byte(v)
	default:
		ct := "application/json"
		if strings.Contains(r.Header.Get("Accept"), "compatible-with=") {
			ct = r.Header.Get("Accept")
		}
		w.Header().Set("Content-Type", ct)
		if e, ok := out.(*esError); ok {
			out = e.body()
		}
		if out != nil {
			if _, pretty := r.URL.Query()["pretty"]; pretty {
				data, _ = json.MarshalIndent(out, "", "  ")
			} else {
				data, _ = json.Marshal(out)
			}
		}
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(status)
	w.Write(data)
}

// hangup drops the connection without a response.
func hangup(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		conn.Close()
	}
}

func noHandler(r *request) (int, any) {
	return 400, &esError{status: 400, plain: fmt.Sprintf("no handler found for uri [%s] and method [%s]", r.uri, r.method)}
}

// route dispatches a request with the state lock held.
func (s *Server) route(r *request) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	status, out := s.dispatch(r)
	if e, ok := out.(*esError); ok {
		status = e.status
	}
	return status, out
}

func (s *Server) dispatch(r *request) (int, any) {
	p, m := r.parts, r.method
	get := m == http.MethodGet
	if len(p) == 0 {
		if get || m == http.MethodHead {
			return s.info()
		}
		return noHandler(r)
	}
	switch p[0] {
	case "_snapshot":
		return s.routeSnapshot(r)
	case "_cat":
		if len(p) >= 2 && len(p) <= 3 && p[1] == "indices" && get {
			return s.catIndices(r)
		}
	case "_resolve":
		if len(p) == 3 && p[1] == "index" && get {
			return s.resolveIndex(r)
		}
	case "_cluster":
		if len(p) >= 2 && len(p) <= 3 && p[1] == "health" && get {
			return s.clusterHealth(r)
		}
	case "_slm":
		if len(p) >= 2 && len(p) <= 3 && p[1] == "policy" && get {
			return s.slmPolicies(r)
		}
	case "_refresh", "_flush":
		if len(p) == 1 && (get || m == http.MethodPost) {
			return s.flushIndices(r, "_all")
		}
	case "_forcemerge":
		if len(p) == 1 && m == http.MethodPost {
			return s.forceMerge(r, "_all")
		}
	case "_count":
		if len(p) == 1 && (get || m == http.MethodPost) {
			return s.count(r, "_all")
		}
	}
	if strings.HasPrefix(p[0], "_") {
		return noHandler(r)
	}
	name := p[0]
	switch len(p) {
	case 1:
		switch m {
		case http.MethodPut:
			return s.createIndex(r, name)
		case http.MethodGet:
			return s.getIndex(r, name)
		case http.MethodHead:
			return s.headIndex(r, name)
		case http.MethodDelete:
			return s.deleteIndex(r, name)
		}
	case 2:
		switch {
		case p[1] == "_close" && m == http.MethodPost:
			return s.closeIndex(r, name)
		case p[1] == "_open" && m == http.MethodPost:
			return s.openIndex(r, name)
		case (p[1] == "_refresh" || p[1] == "_flush") && (get || m == http.MethodPost):
			return s.flushIndices(r, name)
		case p[1] == "_forcemerge" && m == http.MethodPost:
			return s.forceMerge(r, name)
		case p[1] == "_count" && (get || m == http.MethodPost):
			return s.count(r, name)
		case p[1] == "_doc" && m == http.MethodPost:
			return s.indexDoc(r, name, "")
		}
	case 3:
		if p[1] == "_doc" {
			switch m {
			case http.MethodPut, http.MethodPost:
				return s.indexDoc(r, name, p[2])
			case http.MethodGet, http.MethodHead:
				return s.getDoc(r, name, p[2])
			case http.MethodDelete:
				return s.deleteDoc(r, name, p[2])
			}
		}
	}
	return noHandler(r)
}

func (s *Server) routeSnapshot(r *request) (int, any) {
	p, m := r.parts, r.method
	switch len(p) {
	case 1:
		if m == http.MethodGet {
			return s.getRepos(r, "_all")
		}
	case 2:
		if p[1] == "_status" {
			if m == http.MethodGet {
				return s.snapshotStatus(r, "", "")
			}
			break
		}
		switch m {
		case http.MethodGet:
			return s.getRepos(r, p[1])
		case http.MethodPut, http.MethodPost:
			return s.putRepo(r, p[1])
		case http.MethodDelete:
			return s.deleteRepo(r, p[1])
		}
	case 3:
		switch p[2] {
		case "_verify":
			if m == http.MethodPost {
				return s.verifyRepo(r, p[1])
			}
			return noHandler(r)
		case "_cleanup":
			if m == http.MethodPost {
				return s.cleanupRepo(r, p[1])
			}
			return noHandler(r)
		case "_status":
			if m == http.MethodGet {
				return s.snapshotStatus(r, p[1], "")
			}
			return noHandler(r)
		}
		switch m {
		case http.MethodGet:
			return s.getSnapshots(r, p[1], p[2])
		case http.MethodPut, http.MethodPost:
			return s.createSnapshot(r, p[1], p[2])
		case http.MethodDelete:
			return s.deleteSnapshots(r, p[1], p[2])
		}
	case 4:
		switch {
		case p[3] == "_status" && m == http.MethodGet:
			return s.snapshotStatus(r, p[1], p[2])
		case p[3] == "_restore" && m == http.MethodPost:
			return s.restoreSnapshot(r, p[1], p[2])
		}
	}
	return noHandler(r)
}

func (s *Server) info() (int, any) {
	return 200, map[string]any{
		"name":         s.nodeName,
		"cluster_name": s.opts.ClusterName,
		"cluster_uuid": s.clusterUUID,
		"version": map[string]any{
			"number":                              s.opts.Version,
			"build_flavor":                        "default",
			"build_type":                          "docker",
			"build_hash":                          "emulator",
			"build_date":                          "2025-01-01T00:00:00.000Z",
			"build_snapshot":                      false,
			"lucene_version":                      "9.12.0",
			"minimum_wire_compatibility_version":  "7.17.0",
			"minimum_index_compatibility_version": "7.0.0",
		},
		"tagline": "You Know, for Search",
	}
}

func (s *Server) slmPolicies(r *request) (int, any) {
	out := map[string]any{}
	for id, repo := range s.faults.slm {
		if len(r.parts) == 3 && !matchAny(splitList(r.parts[2]), id) {
			continue
		}
		out[id] = map[string]any{
			"version": 1, "modified_date_millis": 0,
			"policy": map[string]any{"name": "<" + id + "-{now/d}>", "schedule": "0 30 1 * * ?", "repository": repo,
				"config": map[string]any{}, "retention": map[string]any{}},
		}
	}
	if len(r.parts) == 3 && len(out) == 0 {
		return 404, newErr(404, "resource_not_found_exception", "snapshot lifecycle policy or policies [%s] not found, no policies are configured", r.parts[2])
	}
	return 200, out
}

// sleep waits d with the state lock released; it returns false when the
// server is closing.
func (s *Server) sleep(d time.Duration, abort <-chan struct{}) bool {
	s.mu.Unlock()
	defer s.mu.Lock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-abort:
		return true
	case <-s.closed:
		return false
	}
}

// await is sleep until gate is closed instead of for a duration.
func (s *Server) await(gate, abort <-chan struct{}) bool {
	s.mu.Unlock()
	defer s.mu.Lock()
	select {
	case <-gate:
		return true
	case <-abort:
		return true
	case <-s.closed:
		return false
	}
}

func nowMillis() int64 { return time.Now().UnixMilli() }

func isoMillis(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}
