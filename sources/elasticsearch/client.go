package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	es8 "github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// APIError is an error response from Elasticsearch: go-elasticsearch returns
// HTTP errors as responses, and this is what the source makes of them.
type APIError struct {
	Op        string // what the source was doing ("create snapshot cairn-…")
	Status    int    // HTTP status
	Type      string // error.type, e.g. "snapshot_restore_exception"; "" for string errors
	Reason    string
	CausedBy  *Cause
	RootCause []Cause
}

// Cause is an entry of error.root_cause or the error.caused_by chain.
type Cause struct {
	Type     string `json:"type"`
	Reason   string `json:"reason"`
	CausedBy *Cause `json:"caused_by,omitempty"`
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "elasticsearch: %s: HTTP %d", e.Op, e.Status)
	if e.Type != "" {
		b.WriteString(" " + e.Type)
	}
	if e.Reason != "" {
		b.WriteString(": " + e.Reason)
	}
	for c := e.CausedBy; c != nil; c = c.CausedBy {
		fmt.Fprintf(&b, " (caused by %s: %s)", c.Type, c.Reason)
	}
	return b.String()
}

// IsType reports whether the error, a root cause or a cause has type t.
func (e *APIError) IsType(t string) bool {
	if e.Type == t {
		return true
	}
	for _, c := range e.RootCause {
		if c.Type == t {
			return true
		}
	}
	for c := e.CausedBy; c != nil; c = c.CausedBy {
		if c.Type == t {
			return true
		}
	}
	return false
}

// ReasonContains reports whether the reason or a cause's reason contains s.
func (e *APIError) ReasonContains(s string) bool {
	if strings.Contains(e.Reason, s) {
		return true
	}
	for c := e.CausedBy; c != nil; c = c.CausedBy {
		if strings.Contains(c.Reason, s) {
			return true
		}
	}
	return false
}

// decodeError turns an error response into an *APIError. The error field is
// an object ({"type","reason",…}) or, for transport-level errors, a string.
func decodeError(op string, res *esapi.Response) error {
	data, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	e := &APIError{Op: op, Status: res.StatusCode}
	var env struct {
		Error  json.RawMessage `json:"error"`
		Status int             `json:"status"`
	}
	if err := json.Unmarshal(data, &env); err != nil || len(env.Error) == 0 {
		e.Reason = strings.TrimSpace(string(data))
		if len(e.Reason) > 500 {
			e.Reason = e.Reason[:500] + "…"
		}
		if e.Reason == "" {
			e.Reason = http.StatusText(res.StatusCode)
		}
		return e
	}
	var s string
	if json.Unmarshal(env.Error, &s) == nil {
		e.Reason = s
		return e
	}
	var obj struct {
		Type      string  `json:"type"`
		Reason    string  `json:"reason"`
		CausedBy  *Cause  `json:"caused_by"`
		RootCause []Cause `json:"root_cause"`
	}
	if err := json.Unmarshal(env.Error, &obj); err != nil {
		e.Reason = string(env.Error)
		return e
	}
	e.Type, e.Reason, e.CausedBy, e.RootCause = obj.Type, obj.Reason, obj.CausedBy, obj.RootCause
	return e
}

// client talks to one cluster. Idempotent calls go through es, which retries
// 502/503/504 and network errors with backoff; creating a snapshot and
// restoring go through once, which never retries: a resent create would
// fail with "already in-progress" or "already exists" (docs/ELASTICSEARCH.md §7).
type client struct {
	url  string
	es   *es8.Client
	once *es8.Client
}

func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << (attempt - 1)
	return min(d, 2*time.Second)
}

func newClient(cfg Config) (*client, error) {
	if cfg.URL == "" {
		return nil, errors.New("elasticsearch: no URL configured")
	}
	base := es8.Config{
		Addresses:     []string{cfg.URL},
		Username:      cfg.Username,
		Password:      cfg.Password,
		APIKey:        cfg.APIKey,
		CACert:        cfg.CACert,
		Transport:     cfg.Transport,
		RetryOnStatus: []int{502, 503, 504},
		MaxRetries:    3,
		RetryBackoff:  backoff,
	}
	es, err := es8.NewClient(base)
	if err != nil {
		return nil, fmt.Errorf("elasticsearch: client: %w", err)
	}
	base.DisableRetry = true
	base.RetryBackoff = nil
	once, err := es8.NewClient(base)
	if err != nil {
		return nil, fmt.Errorf("elasticsearch: client: %w", err)
	}
	return &client{url: cfg.URL, es: es, once: once}, nil
}

// request is what every esapi request struct implements.
type request interface {
	Do(ctx context.Context, t esapi.Transport) (*esapi.Response, error)
}

// TransportError is a call that got no HTTP response at all (connection
// refused or reset, timeout, TLS) or failed the client's product check.
type TransportError struct {
	Op  string
	URL string
	Err error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("elasticsearch: %s: cannot get an answer from %s: %v", e.Op, e.URL, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// do runs req; a non-2xx status becomes an *APIError, a 2xx body is decoded
// into out when out is non-nil.
func (c *client) do(ctx context.Context, t esapi.Transport, op string, req request, out any) error {
	res, err := req.Do(ctx, t)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("elasticsearch: %s: %w", op, ctx.Err())
		}
		return &TransportError{Op: op, URL: c.url, Err: err}
	}
	defer res.Body.Close()
	if res.IsError() {
		return decodeError(op, res)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, res.Body)
		return nil
	}
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return &TransportError{Op: op, URL: c.url, Err: err}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("elasticsearch: %s: unexpected response %.200q: %w", op, data, err)
	}
	return nil
}

func jsonBody(v any) io.Reader {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own maps and structs
	}
	return bytes.NewReader(data)
}

func ptr[T any](v T) *T { return &v }

// clusterInfo is GET /.
type clusterInfo struct {
	ClusterName string `json:"cluster_name"`
	ClusterUUID string `json:"cluster_uuid"`
	Version     struct {
		Number string `json:"number"`
	} `json:"version"`
}

func (c *client) info(ctx context.Context) (*clusterInfo, error) {
	var ci clusterInfo
	if err := c.do(ctx, c.es, "get cluster info", esapi.InfoRequest{}, &ci); err != nil {
		return nil, err
	}
	if !versionAtLeast(ci.Version.Number, 7, 14) {
		return nil, fmt.Errorf("elasticsearch: %s runs Elasticsearch %s; cairn needs 7.14 or newer (the go-elasticsearch v8 client cannot talk to older clusters); upgrade the cluster: repositories written by 5.x and later are supported", c.url, ci.Version.Number)
	}
	return &ci, nil
}

func versionAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// repoSettings is one entry of GET _snapshot/<repo>. ES renders setting
// values as strings; booleans are accepted either way.
type repoSettings struct {
	Type     string         `json:"type"`
	UUID     string         `json:"uuid"`
	Settings map[string]any `json:"settings"`
}

func (r repoSettings) location() string {
	s, _ := r.Settings["location"].(string)
	return s
}

func (r repoSettings) readOnly() bool {
	switch v := r.Settings["readonly"].(type) {
	case bool:
		return v
	case string:
		b, _ := strconv.ParseBool(v)
		return b
	}
	return false
}

// repositories returns the registered repositories (all when name is "").
func (c *client) repositories(ctx context.Context, name string) (map[string]repoSettings, error) {
	req := esapi.SnapshotGetRepositoryRequest{}
	op := "list snapshot repositories"
	if name != "" {
		req.Repository = []string{name}
		op = "get snapshot repository " + name
	}
	out := map[string]repoSettings{}
	err := c.do(ctx, c.es, op, req, &out)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == 404 && name != "" {
		return map[string]repoSettings{}, nil
	}
	return out, err
}

func (c *client) registerRepository(ctx context.Context, name, location string, readOnly bool) error {
	settings := map[string]any{"location": location}
	if readOnly {
		settings["readonly"] = true
	}
	return c.do(ctx, c.es, "register snapshot repository "+name+" at "+location,
		esapi.SnapshotCreateRepositoryRequest{Repository: name, Verify: ptr(true),
			Body: jsonBody(map[string]any{"type": "fs", "settings": settings})}, nil)
}

func (c *client) unregisterRepository(ctx context.Context, name string) error {
	return c.do(ctx, c.es, "unregister snapshot repository "+name,
		esapi.SnapshotDeleteRepositoryRequest{Repository: []string{name}}, nil)
}

// snapshotInfo is the external SnapshotInfo (create, get).
type snapshotInfo struct {
	Snapshot          string         `json:"snapshot"`
	UUID              string         `json:"uuid"`
	Repository        string         `json:"repository"`
	Version           string         `json:"version"`
	Indices           []string       `json:"indices"`
	State             string         `json:"state"`
	Reason            string         `json:"reason"`
	Metadata          map[string]any `json:"metadata"`
	StartTimeInMillis int64          `json:"start_time_in_millis"`
	Failures          []struct {
		Index   string `json:"index"`
		ShardID int    `json:"shard_id"`
		Reason  string `json:"reason"`
		Status  string `json:"status"`
	} `json:"failures"`
	Shards struct {
		Total      int `json:"total"`
		Failed     int `json:"failed"`
		Successful int `json:"successful"`
	} `json:"shards"`
}

func (c *client) getSnapshots(ctx context.Context, repo string, names []string, ignoreUnavailable bool) ([]snapshotInfo, error) {
	var out struct {
		Snapshots []snapshotInfo `json:"snapshots"`
	}
	err := c.do(ctx, c.es, "get snapshots "+strings.Join(names, ",")+" of repository "+repo,
		esapi.SnapshotGetRequest{Repository: repo, Snapshot: names, IgnoreUnavailable: ptr(ignoreUnavailable)}, &out)
	return out.Snapshots, err
}

func (c *client) deleteSnapshots(ctx context.Context, repo string, names []string) error {
	err := c.do(ctx, c.es, "delete snapshots "+strings.Join(names, ",")+" of repository "+repo,
		esapi.SnapshotDeleteRequest{Repository: repo, Snapshot: names}, nil)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == 404 && ae.IsType("snapshot_missing_exception") {
		return nil // already gone (a retried delete)
	}
	return err
}

// resolved is GET _resolve/index/<expr>.
type resolved struct {
	Indices []struct {
		Name       string   `json:"name"`
		Attributes []string `json:"attributes"`
		DataStream string   `json:"data_stream"`
	} `json:"indices"`
	DataStreams []struct {
		Name string `json:"name"`
	} `json:"data_streams"`
}

func (c *client) resolve(ctx context.Context, names []string, ignoreUnavailable bool) (*resolved, error) {
	var out resolved
	req := esapi.IndicesResolveIndexRequest{Name: names, ExpandWildcards: "all"}
	if ignoreUnavailable {
		req.IgnoreUnavailable = ptr(true)
	}
	if err := c.do(ctx, c.es, "resolve indices "+strings.Join(names, ","), req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
