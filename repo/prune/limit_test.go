package prune

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/repo"
)

// Prune's memory limit is the index plus the headroom, is never above a
// limit already set, and is restored when prune ends.
func TestLimitMemory(t *testing.T) {
	ctx := t.Context()
	r, err := repo.Init(ctx, memstore.New(), "pw", repo.InitOptions{KDF: repo.KDFParams{N: 1024, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	p := &pruner{r: r}
	p.opts.applyDefaults()
	want := int64(r.Index().MemoryBytes()) + p.opts.limitHeadroom()
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	for _, tc := range []struct {
		name        string
		before, set int64
	}{
		{"no limit set", math.MaxInt64, want},
		{"a higher limit", want + 1, want},
		{"a lower limit stays", want - 1, want - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetMemoryLimit(tc.before)
			restore := p.limitMemory()
			if got := debug.SetMemoryLimit(-1); got != tc.set {
				t.Errorf("limit during prune %d, want %d", got, tc.set)
			}
			restore()
			if got := debug.SetMemoryLimit(-1); got != tc.before {
				t.Errorf("limit after prune %d, want %d restored", got, tc.before)
			}
		})
	}
}
