//go:build unix

package index

import "syscall"

// cpuSeconds returns the user+system CPU time the process has used. The
// benchmarks report throughput per CPU-second besides per wall-second, which
// stays meaningful when other processes compete for the CPUs (copied from
// package pack).
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}
