package repo

import (
	"sync"
	"sync/atomic"
)

// Progress counts a running job's work (backup, restore, check, copy). All
// fields are atomics: the job updates them, another goroutine reads them.
// A job made of components (backup) also counts each on its own
// (Component), for a progress line per component.
type Progress struct {
	Files     atomic.Uint64 // files finished
	Bytes     atomic.Uint64 // logical bytes finished (read or proven unchanged)
	ReadBytes atomic.Uint64 // bytes actually read
	Errors    atomic.Uint64

	name   string
	parent *Progress
	mu     sync.Mutex
	parts  []*Progress // guarded by mu
}

// Component returns the counters of the job's component name, made on
// first use. Count on them with Add, which counts on the job too.
func (p *Progress) Component(name string) *Progress {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.parts {
		if c.name == name {
			return c
		}
	}
	c := &Progress{name: name, parent: p}
	p.parts = append(p.parts, c)
	return c
}

// Components are the components counted so far, in the order they
// started.
func (p *Progress) Components() []*Progress {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*Progress(nil), p.parts...)
}

// Name is the component's name ("" for a job).
func (p *Progress) Name() string { return p.name }

// Add counts files, logical bytes, bytes read and errors on p and on the
// job p is a component of.
func (p *Progress) Add(files, bytes, read, errs uint64) {
	for q := p; q != nil; q = q.parent {
		if files != 0 {
			q.Files.Add(files)
		}
		if bytes != 0 {
			q.Bytes.Add(bytes)
		}
		if read != 0 {
			q.ReadBytes.Add(read)
		}
		if errs != 0 {
			q.Errors.Add(errs)
		}
	}
}
