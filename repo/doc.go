// Package repo is a cairn repository: its config and keys, locks, the
// archiver that turns sources into packs and snapshots, the restorer, and
// check.
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
