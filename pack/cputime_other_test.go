//go:build !unix

package pack

// cpuSeconds is not measured on this platform; the benchmarks then skip the
// MB/cpu-s metric.
func cpuSeconds() float64 { return 0 }
