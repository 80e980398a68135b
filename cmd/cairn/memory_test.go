package main

import (
	"runtime"
	"slices"
	"testing"
)

// TestMemoryLimit: the collector's limit is set once an index is loaded,
// to the indexes held plus --memory (or the command's default) less the
// program's own memory, follows indexes loaded and released, and leaves
// alone a GOMEMLIMIT from the environment.
func TestMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name      string
		flag      string
		env       string // GOMEMLIMIT
		def       int64
		indexes   []int64 // loaded (released when negative) in turn
		want      []int64 // limits set, in order
		wantError bool
	}{
		{name: "no index: no limit", def: restoreMemory},
		{name: "default", def: restoreMemory, indexes: []int64{10 * mib}, want: []int64{58 * mib}},
		{name: "--memory", flag: "100MiB", def: restoreMemory, indexes: []int64{10 * mib}, want: []int64{94 * mib}},
		{name: "at least 16 MiB of heap", flag: "20MiB", def: restoreMemory, indexes: []int64{10 * mib}, want: []int64{26 * mib}},
		{name: "two indexes, one released", def: dumpMemory, indexes: []int64{10 * mib, 4 * mib, -10 * mib}, want: []int64{58 * mib, 62 * mib, 52 * mib}},
		{name: "GOMEMLIMIT wins", env: "200MiB", def: restoreMemory, indexes: []int64{10 * mib}},
		{name: "bad size", flag: "lots", def: restoreMemory, wantError: true},
	}
	saved, savedOwn := setMemoryLimit, ownProcess
	t.Cleanup(func() { setMemoryLimit, ownProcess = saved, savedOwn })
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOMEMLIMIT", tc.env)
			var got []int64
			setMemoryLimit = func(n int64) int64 { got = append(got, n); return 0 }
			ownProcess = true
			g := &globals{memoryFlag: tc.flag}
			if _, err := g.useMemory(tc.def); (err != nil) != tc.wantError {
				t.Fatalf("useMemory: %v", err)
			}
			for _, n := range tc.indexes {
				g.indexLoaded(n)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("limits set %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("limit %d: %d MiB, want %d MiB", i, got[i]/mib, tc.want[i]/mib)
				}
			}
		})
	}
}

// TestCheckWorkers: check --read-data runs a worker per core unless
// --memory holds fewer, and never none.
func TestCheckWorkers(t *testing.T) {
	cores := runtime.GOMAXPROCS(0)
	tests := []struct {
		flag     string
		readData bool
		want     int
	}{
		{"", false, 0},
		{"", true, cores},
		{"1GiB", true, cores},
		{"52MiB", true, 1}, // 32 MiB fixed and room, one worker of 20
		{"8MiB", true, 1},
	}
	for _, tc := range tests {
		g := &globals{memoryFlag: tc.flag}
		got, err := checkMemory(g, tc.readData)
		if err != nil || got != tc.want {
			t.Errorf("--memory %q, read-data %v: %d workers, %v; want %d", tc.flag, tc.readData, got, err, tc.want)
		}
	}
}

// TestCopyMemory: a copy's limit counts each target's saver and index
// growth, the source's trees and, with several targets, their shared
// cache.
func TestCopyMemory(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		mem      int64
		targets  int
		srcIndex int
		want     int64
	}{
		{80 * mib, 1, 0, 104 * mib},
		{80 * mib, 1, 10 * mib, 124 * mib},
		{80 * mib, 2, 10 * mib, 288 * mib},
	}
	for _, tc := range tests {
		if got := copyMemory(tc.mem, tc.targets, tc.srcIndex); got != tc.want {
			t.Errorf("copyMemory(%d MiB, %d, %d MiB) = %d MiB, want %d", tc.mem/mib, tc.targets, tc.srcIndex/mib, got/mib, tc.want/mib)
		}
	}
}

// TestDaemonPassesMemory: the daemon's steps run as child processes with
// the daemon's --memory (CAIRN_MEMORY they inherit anyway).
func TestDaemonPassesMemory(t *testing.T) {
	for _, tc := range []struct {
		flag string
		want []string
	}{
		{"", nil},
		{"64MiB", []string{"--memory", "64MiB"}},
	} {
		g := &globals{memoryFlag: tc.flag}
		if got := g.childArgs(); !slices.Equal(got, tc.want) {
			t.Errorf("--memory %q: child args %q, want %q", tc.flag, got, tc.want)
		}
	}
}
