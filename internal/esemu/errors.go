package esemu

import "fmt"

// esError is an Elasticsearch exception as rendered in the error envelope
// {"error":{"root_cause":[…],"type":…,"reason":…,"caused_by":…},"status":N}.
type esError struct {
	status   int
	typ      string
	reason   string
	causedBy *esError
	extra    map[string]any
	// plain, when set, renders the transport-level string form
	// {"error":"…","status":N}.
	plain string
}

func (e *esError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.typ, e.reason) }

func (e *esError) object() map[string]any {
	m := map[string]any{"type": e.typ, "reason": e.reason}
	for k, v := range e.extra {
		m[k] = v
	}
	if e.causedBy != nil {
		m["caused_by"] = e.causedBy.object()
	}
	return m
}

func (e *esError) body() map[string]any {
	if e.plain != "" {
		return map[string]any{"error": e.plain, "status": e.status}
	}
	root := e
	for root.causedBy != nil {
		root = root.causedBy
	}
	obj := e.object()
	rc := root.object()
	delete(rc, "caused_by")
	obj["root_cause"] = []any{rc}
	return map[string]any{"error": obj, "status": e.status}
}

func newErr(status int, typ, format string, args ...any) *esError {
	return &esError{status: status, typ: typ, reason: fmt.Sprintf(format, args...)}
}

func (e *esError) with(k string, v any) *esError {
	if e.extra == nil {
		e.extra = map[string]any{}
	}
	e.extra[k] = v
	return e
}

func (e *esError) cause(c *esError) *esError { e.causedBy = c; return e }

func indexNotFound(name string) *esError {
	return newErr(404, "index_not_found_exception", "no such index [%s]", name).
		with("resource.type", "index_or_alias").with("resource.id", name).
		with("index_uuid", "_na_").with("index", name)
}

func indexClosed(name, uuid string) *esError {
	return newErr(400, "index_closed_exception", "closed").
		with("index_uuid", uuid).with("index", name)
}

func repoMissing(repo string) *esError {
	return newErr(404, "repository_missing_exception", "[%s] missing", repo)
}

func snapshotMissing(repo, snap string) *esError {
	return newErr(404, "snapshot_missing_exception", "[%s:%s] is missing", repo, snap)
}

func illegalArgument(format string, args ...any) *esError {
	return newErr(400, "illegal_argument_exception", format, args...)
}
