//go:build !linux

package repo

// scryptMemory is V on the Go heap where cairn does not ask for huge pages.
func scryptMemory(words int) ([]uint32, func()) {
	return heapScryptMemory(words)
}
