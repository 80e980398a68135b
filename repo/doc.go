// Package repo is a cairn repository: its config and keys, locks, index
// loading, the saver that packs and uploads blobs, and reading blobs, trees
// and manifests. The jobs that use it live in packages of their own, each
// over this package's exported API: repo/archive (backup), repo/restore,
// repo/check, repo/replicate (copy) and repo/stats.
//
// Write order is the crash-safety invariant: a pack is durable before any
// index file names it, index files before the snapshot that needs them. A
// crash at any point leaves only unreferenced packs, never a snapshot that
// points at missing data.
//
// Store layout (see docs/FORMAT.md):
//
//	config              plaintext version and ID; chunker parameters sealed
//	keys/<hex>          master key wrapped by a password (scrypt)
//	locks/<hex>         lock records
//	snapshots/<hex>     sealed manifests, named by BLAKE3 of their bytes
//	index/<hex>         sealed index files, named by BLAKE3 of their bytes
//	data/<hh>/<hex>     packs, named by BLAKE3 of their bytes
package repo
