//go:build !unix

package index

// cpuSeconds is not measured on this platform; BenchmarkLookup then skips
// its cpu-ns/op metric.
func cpuSeconds() float64 { return 0 }
