package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"sync"
)

// The garbage collector runs at Go's default GOGC=100 with a soft memory
// limit (debug.SetMemoryLimit) of what the command holds: the indexes it
// loaded, and what a backup adds to them, plus its --memory. The limit is
// set once an index is loaded, the first large thing a command holds;
// until then GOGC=100 alone applies.
//
// Why not a lower GOGC: it collects in proportion to what is allocated,
// also when the heap is far below any concern, while the limit collects
// only near it. The commands reuse their large buffers (packs, blobs,
// zstd states), so they make little garbage, and what is live is mostly
// the index and those buffers, which hold no pointers: a collection costs
// little and, under the limit, seldom runs. GOGC=25 for every command, as
// before, still let restore's heap reach 2.25 times what was live.
//
// GOGC or GOMEMLIMIT set in the environment win. In-process tests
// (ownProcess false) keep the test binary's settings.

// programMemory is what cairn holds outside the heap the limit governs:
// its resident text and data and the runtime's own (`cairn --help` alone
// peaks at 15 MiB).
const programMemory = 16 << 20

// Default --memory of each command (what it may hold besides the indexes
// it loads), measured on the bench's data at 2 cores: the largest heap
// besides the index, plus 16 MiB of room for garbage.
const (
	// defaultMemory is for the commands not listed below (ls, stats,
	// key, repair, init --replica-of): little beside the index.
	defaultMemory = 48 << 20
	// restoreMemory: the tree prefetch (at most 32 MiB of tree blobs,
	// shrinking as the walk takes them), a batch of the plan (16 MiB,
	// restore.DefaultPlanBytes) and each of 4 workers' blob and its
	// plaintext (1-6 MiB each). Largest heap besides the index: 32 MiB
	// restoring the 300 MiB dump, 24 the 300 MiB tree, 36 the 200,000
	// small files. A stream piped into a command (DumpFile) holds two
	// windows of 16 MiB.
	restoreMemory = 64 << 20
	// dumpMemory: DumpFile's two windows of 16 MiB and the pack readers'
	// buffers, or the archive writer's file at a time. Largest heap
	// besides the index: 29 MiB for the dump, 38 for the small files' tar.
	dumpMemory = 64 << 20
	// checkStructureMemory is check's without --read-data: the walk's
	// trees and the index grouped by pack.
	checkStructureMemory = 48 << 20
	// checkReadMemoryPerWorker is what each of check --read-data's
	// workers (one per core) holds: a pack (16 MiB) and a plaintext
	// (1-8 MiB). Largest heap besides the index: 38-41 MiB at 2 workers.
	// With 16 MiB of room and programMemory, 72 MiB at 2 cores.
	checkReadMemoryPerWorker = 20 << 20
	// pruneMemory is what prune holds besides the index: the pack repack
	// writes (16 MiB), its read window and batch of locations, the walk's
	// trees, and room (repo/prune's limitHeadroom, 40 MiB, which prune
	// applies itself as well).
	pruneMemory = programMemory + 40<<20
)

// memoryLimit is the command's soft memory limit: indexes plus working.
type memoryLimit struct {
	mu sync.Mutex
	// working is --memory less programMemory; set through useMemory.
	working int64
	indexes int64 // memory of the indexes loaded and not released
	loaded  bool  // an index was loaded: the limit applies
}

// memory returns --memory (or CAIRN_MEMORY) if given, else def, and
// whether it was given.
func (g *globals) memory(def int64) (int64, bool, error) {
	if g.memoryFlag == "" {
		return def, false, nil
	}
	m, err := parseSize(g.memoryFlag)
	if err != nil {
		return 0, false, fmt.Errorf("--memory: %w", err)
	}
	return m, true, nil
}

// useMemory sets the command's memory besides its indexes: --memory if
// given, else def, less programMemory (at least 16 MiB of heap: a limit
// at what is live only makes the collector run back to back). It
// returns the memory used.
func (g *globals) useMemory(def int64) (int64, error) {
	m, _, err := g.memory(def)
	if err != nil {
		return 0, err
	}
	g.setMemory(m)
	return m, nil
}

// setMemory sets the command's memory besides its indexes to m.
func (g *globals) setMemory(m int64) {
	g.mem.mu.Lock()
	defer g.mem.mu.Unlock()
	g.mem.working = max(m-programMemory, 16<<20)
	g.mem.apply()
}

// indexLoaded counts an index of n bytes as held (n < 0: released).
func (g *globals) indexLoaded(n int64) {
	g.mem.mu.Lock()
	defer g.mem.mu.Unlock()
	g.mem.indexes += n
	g.mem.loaded = true
	g.mem.apply()
}

// apply sets the limit; m.mu is held.
func (m *memoryLimit) apply() {
	if !ownProcess || !m.loaded || m.working == 0 || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	setMemoryLimit(m.indexes + m.working)
}

// setMemoryLimit is debug.SetMemoryLimit; tests see the limits set.
var setMemoryLimit = debug.SetMemoryLimit

// remoteRepo reports whether loc is an S3 repository.
func remoteRepo(loc string) bool { return strings.HasPrefix(loc, "s3:") }
