package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/chunk"
)

// NodeType is the kind of a tree node.
type NodeType string

const (
	File    NodeType = "file"
	Dir     NodeType = "dir"
	Symlink NodeType = "symlink"
)

// Node is one entry of a tree.
//
// ChangeTime, Inode and DeviceID exist so the next backup can prove a file
// unchanged without reading it: mtime alone misses same-second rewrites and
// tools that restore mtimes. They are not restored.
type Node struct {
	Name       string      `json:"name"`
	Type       NodeType    `json:"type"`
	Mode       fs.FileMode `json:"mode"` // permission, setuid, setgid and sticky bits only
	ModTime    time.Time   `json:"mtime"`
	ChangeTime time.Time   `json:"ctime,omitzero"`
	Inode      uint64      `json:"inode,omitempty"`
	DeviceID   uint64      `json:"dev,omitempty"`
	UID        uint32      `json:"uid,omitempty"`
	GID        uint32      `json:"gid,omitempty"`
	Size       uint64      `json:"size,omitempty"`       // file length in bytes
	LinkTarget string      `json:"linktarget,omitempty"` // symlinks only
	Content    []chunk.ID  `json:"content,omitempty"`    // files: data blobs in order
	Subtree    *chunk.ID   `json:"subtree,omitempty"`    // dirs: tree blob
}

// ErrBadName is returned for a node name that could escape the directory it
// is restored into, or that no file system can hold.
var ErrBadName = errors.New("snapshot: bad node name")

// ValidName reports whether name is safe as one path element: not empty,
// not "." or "..", no slash, no NUL.
func ValidName(name string) error {
	switch {
	case name == "", name == ".", name == "..":
		return fmt.Errorf("%w: %q", ErrBadName, name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("%w: %q contains a slash or NUL", ErrBadName, name)
	}
	return nil
}

// Tree is the listing of one directory.
type Tree struct {
	Nodes []Node `json:"nodes"`
}

// Find returns the node called name, or nil. Nodes are sorted, so this is a
// binary search.
func (t *Tree) Find(name string) *Node {
	if t == nil {
		return nil
	}
	i, ok := slices.BinarySearchFunc(t.Nodes, name, func(n Node, name string) int {
		return strings.Compare(n.Name, name)
	})
	if !ok {
		return nil
	}
	return &t.Nodes[i]
}

// Encode returns the canonical encoding of t: nodes sorted by name, times in
// UTC, JSON with fields in declaration order. Equal trees encode to equal
// bytes, which is what lets unchanged directories deduplicate.
func (t *Tree) Encode() ([]byte, error) {
	nodes := slices.Clone(t.Nodes)
	if nodes == nil {
		nodes = []Node{} // nil and empty must encode alike
	}
	slices.SortFunc(nodes, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	for i := range nodes {
		if err := ValidName(nodes[i].Name); err != nil {
			return nil, err
		}
		if i > 0 && nodes[i].Name == nodes[i-1].Name {
			return nil, fmt.Errorf("snapshot: duplicate node name %q", nodes[i].Name)
		}
		nodes[i].ModTime = nodes[i].ModTime.UTC()
		nodes[i].ChangeTime = nodes[i].ChangeTime.UTC()
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(Tree{Nodes: nodes}); err != nil {
		return nil, fmt.Errorf("snapshot: encode tree: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodeTree parses a tree blob and checks what a restorer relies on: valid,
// unique, sorted names and the fields each node type needs.
func DecodeTree(data []byte) (*Tree, error) {
	var t Tree
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("snapshot: decode tree: %w", err)
	}
	for i, n := range t.Nodes {
		if err := ValidName(n.Name); err != nil {
			return nil, err
		}
		if i > 0 && strings.Compare(t.Nodes[i-1].Name, n.Name) >= 0 {
			return nil, fmt.Errorf("snapshot: tree nodes not sorted or duplicated at %q", n.Name)
		}
		switch n.Type {
		case File:
		case Dir:
			if n.Subtree == nil {
				return nil, fmt.Errorf("snapshot: directory %q has no subtree", n.Name)
			}
		case Symlink:
		default:
			return nil, fmt.Errorf("snapshot: node %q has unknown type %q", n.Name, n.Type)
		}
	}
	return &t, nil
}
