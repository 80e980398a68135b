// Package tree is the directory source: it reads a directory tree for the
// archiver (names, metadata, file contents) and writes one back on restore,
// confined to the restore target.
package tree
