package repo

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/snapshot"
)

// FindNode resolves "COMPONENT[/PATH]" in sn to a node. For a stream
// component without a path, the node is the stream itself. The component
// root of a tree is returned as a directory node.
func (r *Repository) FindNode(ctx context.Context, sn *snapshot.Snapshot, ref string) (*snapshot.Node, error) {
	name, rest, _ := strings.Cut(strings.Trim(ref, "/"), "/")
	c := sn.Component(name)
	if c == nil {
		return nil, fmt.Errorf("snapshot has no component %q", name)
	}
	if err := r.LoadIndex(ctx); err != nil {
		return nil, err
	}
	if c.Kind == snapshot.KindStream {
		if rest != "" {
			return nil, fmt.Errorf("component %q is a stream and has no paths", name)
		}
		rest = name
	}
	node := &snapshot.Node{Name: name, Type: snapshot.Dir, Subtree: &c.Tree}
	for _, part := range strings.Split(rest, "/") {
		if part == "" {
			continue
		}
		if node.Type != snapshot.Dir {
			return nil, fmt.Errorf("%s: not a directory", node.Name)
		}
		t, err := r.LoadTree(ctx, *node.Subtree)
		if err != nil {
			return nil, err
		}
		n := t.Find(part)
		if n == nil {
			return nil, fmt.Errorf("%s: no such file or directory in the snapshot", ref)
		}
		node = n
	}
	return node, nil
}

// DumpFile writes a file node's content to w in order. Blobs are fetched a
// few ahead in parallel so a large dump streams at the store's speed.
func (r *Repository) DumpFile(ctx context.Context, n *snapshot.Node, w io.Writer) error {
	if n.Type != snapshot.File {
		return fmt.Errorf("%s is a %s, not a file", n.Name, n.Type)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		data []byte
		err  error
	}
	ahead := runtime.GOMAXPROCS(0) * 2
	slots := make(chan chan result, ahead)
	go func() {
		defer close(slots)
		for _, id := range n.Content {
			ch := make(chan result, 1)
			select {
			case slots <- ch:
			case <-ctx.Done():
				return
			}
			go func() {
				data, err := r.LoadBlob(ctx, pack.DataBlob, id, nil)
				ch <- result{data, err}
			}()
		}
	}()
	for ch := range slots {
		res := <-ch
		if res.err != nil {
			return res.err
		}
		if _, err := w.Write(res.data); err != nil {
			return err
		}
	}
	return ctx.Err()
}
