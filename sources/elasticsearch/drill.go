package elasticsearch

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// IndicesWithPrefix returns the indices (open or closed) whose names start
// with prefix, sorted. A drill refuses to start when any exists, so the
// indices it deletes afterwards are only the ones its restore made.
func IndicesWithPrefix(ctx context.Context, cfg Config, prefix string) ([]string, error) {
	if err := validName("index prefix", prefix, false); err != nil {
		return nil, err
	}
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	res, err := c.resolve(ctx, []string{prefix + "*"}, false)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, ix := range res.Indices {
		if strings.HasPrefix(ix.Name, prefix) {
			names = append(names, ix.Name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// CountDocs returns each index's document count (_count, which also
// proves the index is open and searchable).
func CountDocs(ctx context.Context, cfg Config, indices []string) (map[string]int64, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	counts := make(map[string]int64, len(indices))
	for _, ix := range indices {
		var out struct {
			Count *int64 `json:"count"`
		}
		if err := c.do(ctx, c.es, "count documents of "+ix, esapi.CountRequest{Index: []string{ix}}, &out); err != nil {
			return counts, err
		}
		if out.Count == nil {
			return counts, fmt.Errorf("elasticsearch: count documents of %s: the answer holds no count", ix)
		}
		counts[ix] = *out.Count
	}
	return counts, nil
}

// DeleteIndicesWithPrefix deletes, one concrete name at a time (8.x
// refuses wildcards in a delete by default), every index whose name starts
// with prefix, and returns the names deleted. It runs even when ctx is
// cancelled (bounded to a minute), because it is a drill's cleanup.
func DeleteIndicesWithPrefix(ctx context.Context, cfg Config, prefix string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	names, err := IndicesWithPrefix(ctx, cfg, prefix)
	if err != nil {
		return nil, err
	}
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	var deleted []string
	var errs []error
	for _, ix := range names {
		if err := c.do(ctx, c.es, "delete index "+ix, esapi.IndicesDeleteRequest{Index: []string{ix}}, nil); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, ix)
	}
	return deleted, errors.Join(errs...)
}

// CheckIndexPrefix reports whether prefix can begin an index name.
func CheckIndexPrefix(prefix string) error { return validName("index prefix", prefix, false) }
