package snapshot

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/cairn-backup/cairn/chunk"
)

// Version is the manifest format this code writes and the newest it reads.
const Version = 1

// Component kinds of format version 1. A reader refuses any other kind: it
// would not know where to restore it (a tree restored as if it were a
// stream lands in the target's root, over other components). A new kind
// comes with a new manifest version.
const (
	KindTree   = "tree"   // a directory; restored to TARGET/NAME/…
	KindStream = "stream" // one stream (stdin, a dump); restored to the file TARGET/NAME
)

// ErrUnknownKind is returned for a component whose kind is not KindTree or
// KindStream.
var ErrUnknownKind = errors.New("snapshot: unknown component kind")

// ValidKind checks a component's kind.
func ValidKind(kind string) error {
	switch kind {
	case KindTree, KindStream:
		return nil
	}
	return fmt.Errorf("%w %q (this cairn knows %q and %q)", ErrUnknownKind, kind, KindTree, KindStream)
}

// Component is one named part of a snapshot.
type Component struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Tree is the root tree. A stream's root tree holds one file node named
	// after the component.
	Tree     chunk.ID  `json:"tree"`
	Source   string    `json:"source,omitempty"` // directory path, "stdin", …
	Size     uint64    `json:"size"`             // logical bytes of all files
	Files    uint64    `json:"files"`
	Dirs     uint64    `json:"dirs,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Point, when set, is the moment the source fixed the state this
	// component holds, although its bytes were read until Finished: the
	// first byte of a dump whose tool takes its snapshot before writing
	// (pg_dump), or the return of an Elasticsearch snapshot call. Without
	// it the state may have moved anywhere between Started and Finished.
	Point time.Time `json:"point,omitzero"`
	// AddedBytes is what this component added to the repository (stored,
	// compressed and encrypted bytes of new blobs), for the dedup report.
	AddedBytes uint64 `json:"added_bytes"`
	// Errors counts files that could not be read and are missing from the tree.
	Errors uint64 `json:"errors,omitempty"`
	// Meta is what the source records about how it took the component: the
	// dump command, the Elasticsearch snapshot name and indices, …
	Meta map[string]string `json:"meta,omitempty"`
}

// Snapshot is the manifest that ties components into one point in time.
type Snapshot struct {
	Version int       `json:"version"`
	Time    time.Time `json:"time"`
	Host    string    `json:"host"`
	App     string    `json:"app,omitempty"` // the application, from the config file
	Tags    []string  `json:"tags,omitempty"`
	Program string    `json:"program,omitempty"` // "cairn VERSION" that wrote it
	// Original is the ID of the snapshot this one was copied from (by
	// cairn copy; through chains of copies, the first one), so a copy is
	// recognised in the target and not made twice.
	Original *chunk.ID `json:"original,omitempty"`
	// Repaired is set on a snapshot cairn repair snapshots wrote in place
	// of a damaged one: what it was made from and how much was left out.
	Repaired   *Repaired   `json:"repaired,omitempty"`
	Components []Component `json:"components"`
}

// Repaired records that a snapshot is a repaired copy of another, without
// the files and directories whose data was lost.
type Repaired struct {
	From chunk.ID  `json:"from"` // the damaged snapshot
	Time time.Time `json:"time"`
	Lost uint64    `json:"lost"` // files and directories left out
}

// Skew is the time from the first component's start to the last one's end:
// how far apart in time the parts of the application were taken.
func (s *Snapshot) Skew() time.Duration {
	if len(s.Components) == 0 {
		return 0
	}
	first, last := s.Components[0].Started, s.Components[0].Finished
	for _, c := range s.Components[1:] {
		if c.Started.Before(first) {
			first = c.Started
		}
		if c.Finished.After(last) {
			last = c.Finished
		}
	}
	return last.Sub(first)
}

// Span is the interval the component's state may come from: its Point
// when it has one, otherwise from its start to its end.
func (c *Component) Span() (from, to time.Time) {
	if !c.Point.IsZero() {
		return c.Point, c.Point
	}
	return c.Started, c.Finished
}

// PointSkew is how far apart in time the states the components hold can
// be: from the earliest to the latest of their spans (Span). With every
// component read one after the other and none with a Point, it equals
// Skew; a component that fixes its point early lets the next start
// sooner and brings it down, towards the longest component's own span.
func (s *Snapshot) PointSkew() time.Duration {
	if len(s.Components) == 0 {
		return 0
	}
	first, last := s.Components[0].Span()
	for i := range s.Components[1:] {
		from, to := s.Components[i+1].Span()
		if from.Before(first) {
			first = from
		}
		if to.After(last) {
			last = to
		}
	}
	return last.Sub(first)
}

// Component returns the component called name, or nil.
func (s *Snapshot) Component(name string) *Component {
	for i := range s.Components {
		if s.Components[i].Name == name {
			return &s.Components[i]
		}
	}
	return nil
}

// Size is the logical size of all components.
func (s *Snapshot) Size() uint64 {
	var n uint64
	for _, c := range s.Components {
		n += c.Size
	}
	return n
}

var componentName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ErrBadComponentName is returned for a component name that is not a short
// word of letters, digits, '.', '_' and '-'.
var ErrBadComponentName = errors.New("snapshot: bad component name")

// ValidComponentName checks a component name. Names become file names on
// restore, so they are kept to a safe alphabet.
func ValidComponentName(name string) error {
	if !componentName.MatchString(name) {
		return fmt.Errorf("%w %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", ErrBadComponentName, name)
	}
	return nil
}

// ErrUnknownVersion is returned for a manifest newer than this program.
var ErrUnknownVersion = errors.New("snapshot: unknown manifest version")

// Encode returns the manifest's JSON. It refuses components Decode would.
func (s *Snapshot) Encode() ([]byte, error) {
	if s.Version == 0 {
		s.Version = Version
	}
	if err := s.validateComponents(); err != nil {
		return nil, err
	}
	buf, err := json.Marshal(s)
	if err == nil && len(buf) > MaxManifestSize {
		return nil, fmt.Errorf("snapshot: manifest of %d bytes exceeds the limit of %d", len(buf), MaxManifestSize)
	}
	return buf, err
}

// MaxManifestSize bounds a manifest's plaintext (a manifest is a few KiB;
// most of a large one would be Meta). Decode refuses a larger one, and a
// reader need not read more of the store object than this plus sealing.
const MaxManifestSize = 4 << 20

// Decode parses a manifest and checks its version, component names and
// kinds.
func Decode(data []byte) (*Snapshot, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("snapshot: manifest of %d bytes exceeds the limit of %d", len(data), MaxManifestSize)
	}
	var s Snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("snapshot: decode manifest: %w", err)
	}
	if s.Version < 1 || s.Version > Version {
		return nil, fmt.Errorf("%w %d (this cairn reads up to %d)", ErrUnknownVersion, s.Version, Version)
	}
	if err := s.validateComponents(); err != nil {
		return nil, err
	}
	return &s, nil
}

func (s *Snapshot) validateComponents() error {
	seen := map[string]bool{}
	for _, c := range s.Components {
		if err := ValidComponentName(c.Name); err != nil {
			return err
		}
		if err := ValidKind(c.Kind); err != nil {
			return fmt.Errorf("component %s: %w", c.Name, err)
		}
		if seen[c.Name] {
			return fmt.Errorf("snapshot: duplicate component %q", c.Name)
		}
		seen[c.Name] = true
	}
	return nil
}
