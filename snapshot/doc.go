// Package snapshot defines what a backup records: snapshot manifests with
// named components, and trees (directory listings) whose nodes point at
// content blobs and subtrees.
//
// Glossary:
//   - Snapshot: one point-in-time backup of an application; a manifest naming
//     its components, when each was taken, and on which host.
//   - Component: one part of the application (a directory, a database dump
//     stream, …). Every component is stored as a tree, so one archiver and
//     one restorer serve all kinds.
//   - Tree: the nodes of one directory, sorted by name and encoded
//     canonically, so an unchanged directory encodes to the same bytes and
//     deduplicates.
//   - Node: a file, directory or symlink with its metadata; a file lists its
//     content blobs in order, a directory names its subtree.
//   - Policy: the retention rules of `forget` (keep-last, hourly … yearly
//     buckets, within, tags) and the keep-min guard, applied per group of
//     snapshots (app and host by default); pure, no I/O.
package snapshot
