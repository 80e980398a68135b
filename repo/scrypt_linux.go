package repo

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePage is the x86-64 and arm64 transparent huge page size; a mapping
// gets huge pages only on ranges aligned to it.
const hugePage = 2 << 20

// scryptMemory maps words uint32s outside the Go heap, asking for
// transparent huge pages (madvise mode, the Debian default, gives them only
// to ranges that ask), and returns a function that unmaps them. Where the
// map fails it falls back to the heap: scrypt then only costs more faults.
func scryptMemory(words int) ([]uint32, func()) {
	size := words * 4
	m, err := unix.Mmap(-1, 0, size+hugePage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return heapScryptMemory(words)
	}
	off := 0
	if rem := uintptr(unsafe.Pointer(&m[0])) % hugePage; rem != 0 {
		off = int(hugePage - rem)
	}
	b := m[off : off+size]
	// Advice only: a kernel without THP says EINVAL and faults 4 KiB pages.
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
	return unsafe.Slice((*uint32)(unsafe.Pointer(&b[0])), words), func() { _ = unix.Munmap(m) }
}
