package repo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/snapshot"
)

// fakeTrees is a tree store for walker tests: trees by ID, built from a
// map of name → children.
type fakeTrees struct {
	mu     sync.Mutex
	trees  map[chunk.ID]*snapshot.Tree
	names  map[chunk.ID]string
	loads  map[string]int
	broken map[string]bool
}

func treeID(name string) chunk.ID { return chunk.ObjectID([]byte(name)) }

// newFakeTrees builds trees from spec: each key is a tree name, its value
// the names of its subdirectories (a name may appear under several
// parents: a shared subtree), plus one file node.
func newFakeTrees(spec map[string][]string) *fakeTrees {
	f := &fakeTrees{trees: map[chunk.ID]*snapshot.Tree{}, names: map[chunk.ID]string{}, loads: map[string]int{}, broken: map[string]bool{}}
	for name, subs := range spec {
		t := &snapshot.Tree{Nodes: []snapshot.Node{{Name: "file-" + name, Type: snapshot.File}}}
		for i, s := range subs {
			id := treeID(s)
			t.Nodes = append(t.Nodes, snapshot.Node{Name: fmt.Sprintf("d%d-%s", i, s), Type: snapshot.Dir, Subtree: &id})
		}
		f.trees[treeID(name)] = t
		f.names[treeID(name)] = name
	}
	return f
}

func (f *fakeTrees) load(ctx context.Context, id chunk.ID) (*snapshot.Tree, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := f.names[id]
	f.loads[name]++
	if f.broken[name] {
		return nil, fmt.Errorf("tree %s is broken", name)
	}
	t := f.trees[id]
	// A fresh copy, as decoding gives: visitors may modify it.
	return &snapshot.Tree{Nodes: slices.Clone(t.Nodes)}, nil
}

// events records a walk as "tree NAME@PATH" and "leave NAME@PATH" lines.
func recordWalk(f *fakeTrees, events *[]string) Visitor {
	return Visitor{
		Tree: func(p string, id chunk.ID, t *snapshot.Tree, err error) error {
			if err != nil {
				*events = append(*events, "fail "+f.names[id]+"@"+p)
				return nil
			}
			*events = append(*events, "tree "+f.names[id]+"@"+p)
			return nil
		},
		Leave: func(p string, n *snapshot.Node, id chunk.ID, t *snapshot.Tree) error {
			*events = append(*events, "leave "+f.names[id]+"@"+p)
			return nil
		},
	}
}

func TestWalkVisitsEachTreeOnceInDepthFirstOrder(t *testing.T) {
	f := newFakeTrees(map[string][]string{
		"root":  {"a", "b", "a"}, // a twice in one tree
		"a":     {"leaf"},
		"b":     {"leaf", "c"}, // leaf shared with a
		"c":     nil,
		"leaf":  nil,
		"root2": {"b", "d"},
		"d":     nil,
	})
	w := (&Repository{}).NewWalker(WalkOptions{Load: f.load, Ahead: 2})
	var events []string
	if err := w.Walk(t.Context(), "x", treeID("root"), recordWalk(f, &events)); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"tree root@x",
		"tree a@x/d0-a", "tree leaf@x/d0-a/d0-leaf", "leave leaf@x/d0-a/d0-leaf", "leave a@x/d0-a",
		"tree b@x/d1-b", "tree c@x/d1-b/d1-c", "leave c@x/d1-b/d1-c", "leave b@x/d1-b",
		"leave root@x",
	}
	if !slices.Equal(events, want) {
		t.Errorf("walk order:\n got %q\nwant %q", events, want)
	}
	// A second walk of the same Walker skips what the first visited, the
	// root included.
	events = nil
	if err := w.Walk(t.Context(), "y", treeID("root2"), recordWalk(f, &events)); err != nil {
		t.Fatal(err)
	}
	if err := w.Walk(t.Context(), "z", treeID("root"), recordWalk(f, &events)); err != nil {
		t.Fatal(err)
	}
	want = []string{"tree root2@y", "tree d@y/d1-d", "leave d@y/d1-d", "leave root2@y"}
	if !slices.Equal(events, want) {
		t.Errorf("second walk:\n got %q\nwant %q", events, want)
	}
	for name, n := range f.loads {
		if n != 1 {
			t.Errorf("tree %s loaded %d times, want once", name, n)
		}
	}
	if !w.Visited(treeID("leaf")) || w.Visited(treeID("nowhere")) {
		t.Error("Visited does not report what was walked")
	}
}

func TestWalkEveryPath(t *testing.T) {
	f := newFakeTrees(map[string][]string{
		"root": {"a", "b"},
		"a":    {"leaf"},
		"b":    {"leaf", "skip"},
		"leaf": nil,
		"skip": {"leaf"},
	})
	w := (&Repository{}).NewWalker(WalkOptions{Load: f.load, EveryPath: true})
	var events []string
	v := recordWalk(f, &events)
	v.Enter = func(p string, n *snapshot.Node) (bool, error) {
		return n.Name != "d1-skip", nil
	}
	if err := w.Walk(t.Context(), "", treeID("root"), v); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"tree root@",
		"tree a@d0-a", "tree leaf@d0-a/d0-leaf", "leave leaf@d0-a/d0-leaf", "leave a@d0-a",
		"tree b@d1-b", "tree leaf@d1-b/d0-leaf", "leave leaf@d1-b/d0-leaf", "leave b@d1-b",
		"leave root@",
	}
	if !slices.Equal(events, want) {
		t.Errorf("walk:\n got %q\nwant %q", events, want)
	}
}

func TestWalkLoadErrors(t *testing.T) {
	f := newFakeTrees(map[string][]string{"root": {"bad", "good"}, "bad": {"under"}, "good": nil, "under": nil})
	f.broken["bad"] = true
	var events []string
	v := recordWalk(f, &events)
	leftNil := false
	leave := v.Leave
	v.Leave = func(p string, n *snapshot.Node, id chunk.ID, tr *snapshot.Tree) error {
		if f.names[id] == "bad" {
			leftNil = tr == nil && n != nil && n.Name == "d0-bad"
		}
		return leave(p, n, id, tr)
	}
	w := (&Repository{}).NewWalker(WalkOptions{Load: f.load})
	if err := w.Walk(t.Context(), "", treeID("root"), v); err != nil {
		t.Fatal(err)
	}
	want := []string{"tree root@", "fail bad@d0-bad", "leave bad@d0-bad", "tree good@d1-good", "leave good@d1-good", "leave root@"}
	if !slices.Equal(events, want) || !leftNil {
		t.Errorf("a tree that fails to load is reported, left with a nil tree, and the walk goes on:\n got %q (leave with nil tree: %v)\nwant %q", events, leftNil, want)
	}
	// A visitor that returns the error stops the walk with it; so does a
	// nil Tree callback.
	for _, tree := range []func(string, chunk.ID, *snapshot.Tree, error) error{
		func(_ string, _ chunk.ID, _ *snapshot.Tree, err error) error { return err },
		nil,
	} {
		w := (&Repository{}).NewWalker(WalkOptions{Load: f.load})
		if err := w.Walk(t.Context(), "", treeID("root"), Visitor{Tree: tree}); err == nil || err.Error() != "tree bad is broken" {
			t.Errorf("walk: got %v, want the load error", err)
		}
	}
}

// TestWalkLoadsAhead: the walk loads subtrees concurrently, up to Ahead at
// once (plus the one it waits for), never more.
func TestWalkLoadsAhead(t *testing.T) {
	const ahead, width = 4, 12
	spec := map[string][]string{"root": nil}
	for i := range width {
		name := fmt.Sprintf("s%d", i)
		spec["root"] = append(spec["root"], name)
		spec[name] = nil
	}
	f := newFakeTrees(spec)
	var (
		mu       sync.Mutex
		cond     = sync.NewCond(&mu)
		inFlight int
		maxSeen  int
	)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { mu.Lock(); cond.Broadcast(); mu.Unlock() })
	defer stop()
	load := func(ctx context.Context, id chunk.ID) (*snapshot.Tree, error) {
		if id == treeID("root") {
			return f.load(ctx, id)
		}
		mu.Lock()
		inFlight++
		maxSeen = max(maxSeen, inFlight)
		cond.Broadcast()
		// The subtree loads wait until ahead of them have run at once: a
		// walk that loaded one tree at a time would never get past the
		// first.
		for maxSeen < ahead && ctx.Err() == nil {
			cond.Wait()
		}
		inFlight--
		mu.Unlock()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return f.load(ctx, id)
	}
	w := (&Repository{}).NewWalker(WalkOptions{Load: load, Ahead: ahead})
	visited := 0
	err := w.Walk(ctx, "", treeID("root"), Visitor{Tree: func(string, chunk.ID, *snapshot.Tree, error) error { visited++; return nil }})
	if err != nil {
		t.Fatalf("walk: %v (loads did not overlap: at most %d at once)", err, maxSeen)
	}
	if visited != width+1 {
		t.Errorf("visited %d trees, want %d", visited, width+1)
	}
	if maxSeen < ahead || maxSeen > ahead+1 {
		t.Errorf("at most %d loads ran at once, want %d (or one more)", maxSeen, ahead)
	}
}

// TestWalkCancel: a cancelled walk returns the context's error and leaves
// no load running.
func TestWalkCancel(t *testing.T) {
	f := newFakeTrees(map[string][]string{"root": {"a", "b", "c"}, "a": nil, "b": nil, "c": nil})
	ctx, cancel := context.WithCancel(t.Context())
	var running atomic.Int32
	load := func(ctx context.Context, id chunk.ID) (*snapshot.Tree, error) {
		running.Add(1)
		defer running.Add(-1)
		if id != treeID("root") {
			<-ctx.Done() // only cancellation ends these loads
			return nil, ctx.Err()
		}
		return f.load(ctx, id)
	}
	w := (&Repository{}).NewWalker(WalkOptions{Load: load})
	err := w.Walk(ctx, "", treeID("root"), Visitor{Tree: func(_ string, id chunk.ID, _ *snapshot.Tree, err error) error {
		if id == treeID("root") {
			cancel()
		}
		if err != nil {
			t.Errorf("Tree called with %v for a cancelled load", err)
		}
		return nil
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("walk: got %v, want context.Canceled", err)
	}
	if n := running.Load(); n != 0 {
		t.Errorf("%d loads still running after Walk returned", n)
	}
}
