package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
)

// countingFS lists any directory as one file named after it, and counts
// listings against takes so the test can check the read-ahead's bound
// at the moment each listing starts.
type countingFS struct {
	mu      sync.Mutex
	listed  map[string]int
	taken   int
	maxAway int // most listings started and not yet taken, at any start
	// block, when set, holds every listing of a path in it until closed.
	block map[string]chan struct{}
	// listedCh receives the path of each listing as it starts.
	listedCh chan string
}

func (f *countingFS) ReadDir(ctx context.Context, dir string) ([]snapshot.Node, error) {
	f.mu.Lock()
	f.listed[dir]++
	n := 0
	for _, c := range f.listed {
		n += c
	}
	f.maxAway = max(f.maxAway, n-f.taken)
	b := f.block[dir]
	f.mu.Unlock()
	f.listedCh <- dir
	if b != nil {
		select {
		case <-b:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return []snapshot.Node{{Name: "f-" + dir, Type: snapshot.File}}, nil
}

func (f *countingFS) Open(context.Context, string) (io.ReadCloser, error) {
	return nil, errors.New("not used")
}

func newCountingFS(n int) *countingFS {
	return &countingFS{listed: map[string]int{}, block: map[string]chan struct{}{}, listedCh: make(chan string, n)}
}

// waitListed waits until want listings have started.
func waitListed(t *testing.T, f *countingFS, want int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for range want {
		select {
		case <-f.listedCh:
		case <-deadline:
			t.Fatalf("fewer than %d listings started", want)
		}
	}
}

// The listers run ahead of the walk on their own: with nothing taken,
// dirWaiting listings start and no more (each one started while at most
// dirWaiting were away); then every directory is taken, in the order
// queued, each listed exactly once.
func TestReadAheadListsAheadOfTheWalk(t *testing.T) {
	const n = 5 * dirWaiting
	fs := newCountingFS(n)
	ra := newReadAhead(context.Background(), &archiver{}, fs)
	defer ra.close()
	reqs := make([]dirReq, n)
	for i := range reqs {
		reqs[i] = dirReq{path: fmt.Sprintf("d%03d", i)}
	}
	ra.queue(reqs)
	waitListed(t, fs, dirWaiting)
	for i, r := range reqs {
		l, err := ra.take(dirReq{path: r.path})
		if err != nil {
			t.Fatalf("take %s: %v", r.path, err)
		}
		if len(l.nodes) != 1 || l.nodes[0].Name != "f-"+r.path {
			t.Fatalf("take %s (%d): got %+v", r.path, i, l.nodes)
		}
		fs.mu.Lock()
		fs.taken++
		fs.mu.Unlock()
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, r := range reqs {
		if fs.listed[r.path] != 1 {
			t.Errorf("%s listed %d times, want once", r.path, fs.listed[r.path])
		}
	}
	// One more than dirWaiting: a lister may start the next listing as
	// soon as take removes one, before the test counts that take.
	if fs.maxAway > dirWaiting+1 {
		t.Errorf("%d listings were away at once, the bound is %d", fs.maxAway, dirWaiting)
	}
}

// A directory the walk needs before any lister reached it (queued behind
// listers held on slow directories) is listed by the walk itself, and a
// later queue puts subdirectories before what was queued earlier.
func TestReadAheadTakeListsWhatNoListerStarted(t *testing.T) {
	fs := newCountingFS(16)
	slow := make(chan struct{})
	fs.block["slow0"], fs.block["slow1"] = slow, slow
	ra := newReadAhead(context.Background(), &archiver{}, fs)
	defer ra.close()
	defer close(slow)
	ra.queue([]dirReq{{path: "slow0"}, {path: "slow1"}, {path: "later"}})
	waitListed(t, fs, dirAhead) // both listers are held
	ra.queue([]dirReq{{path: "sub"}})
	l, err := ra.take(dirReq{path: "later"})
	if err != nil || len(l.nodes) != 1 || l.nodes[0].Name != "f-later" {
		t.Fatalf("take later: %+v, %v", l.nodes, err)
	}
	if got := <-fs.listedCh; got != "later" {
		t.Fatalf("listed %s, want the walk to list later itself", got)
	}
	ra.mu.Lock()
	front := ra.pending.Front().Value.(dirReq).path
	ra.mu.Unlock()
	if front != "sub" {
		t.Fatalf("next pending is %s, want sub", front)
	}
}

// Cancelling the walk ends a take that waits on a listing, and close
// returns once the listers have stopped.
func TestReadAheadCancel(t *testing.T) {
	fs := newCountingFS(4)
	fs.block["held"] = make(chan struct{}) // never released
	ctx, cancel := context.WithCancel(context.Background())
	ra := newReadAhead(ctx, &archiver{}, fs)
	ra.queue([]dirReq{{path: "held"}})
	waitListed(t, fs, 1)
	done := make(chan error, 1)
	go func() {
		_, err := ra.take(dirReq{path: "held"})
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("take after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("take did not return after cancel")
	}
	ra.close()
}
