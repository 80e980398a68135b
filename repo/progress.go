package repo

import "sync/atomic"

// Progress counts a running job's work (backup, restore, check, copy). All
// fields are atomics: the job updates them, another goroutine reads them.
type Progress struct {
	Files     atomic.Uint64 // files finished
	Bytes     atomic.Uint64 // logical bytes finished (read or proven unchanged)
	ReadBytes atomic.Uint64 // bytes actually read
	Errors    atomic.Uint64
}
