// Package elasticsearch is the Elasticsearch source: it takes an ES snapshot
// into a shared-filesystem (fs) snapshot repository through
// go-elasticsearch and hands the repository's files to the archiver, and on
// restore registers the files written back by cairn as a read-only
// repository and restores the indices from it.
//
// Backup returns a Capture: the files of the one repository generation
// (index-N) that holds the new snapshot, as an archiver FS. ES never
// rewrites those files (only index.latest changes), so unchanged segment
// blobs keep their size, mtime, ctime and inode and cost nothing on the
// next run. Capture.Finish fails if the generation moved while the files
// were copied. See docs/ELASTICSEARCH.md for the repository layouts and
// the algorithm this follows, and README.md in this directory for what is
// verified and how (against the esemu emulator, since no Elasticsearch
// server can be installed on the development machines).
package elasticsearch
