// Package index records where every blob lives: for a blob's type and ID,
// the pack that holds it, where in the pack, and how long it is.
//
// It has two parts. File is the index file format (plaintext; the caller
// encrypts it and names it by hash), specified byte by byte in
// docs/FORMAT.md, "Index files". Index is the in-memory index built from index files
// and from packs uploaded during a backup.
//
// # In-memory design
//
// An Index keeps fixed-size entries with no pointers, so the garbage
// collector never scans them. Pack IDs are stored once, in a table indexed
// by the entry's pack number, and found by binary search over their
// numbers sorted by ID (36 bytes a pack, where a map took about 96:
// repositories of 16 MiB packs hold 16-64 blobs a pack, so a pack's cost
// shows per blob). An entry of the sorted main array takes 46
// bytes (type packed): 31 ID bytes, the first being implied by where the
// entry sits (a 257-entry table, lead, records where each first byte's
// entries start), a 32-bit offset, 29-bit stored and raw lengths, a 28-bit
// pack number and two flag bits. The narrow fields lose nothing a reader
// accepts: no blob is larger than 256 MiB (pack.MaxRawLength), stored
// 2^28 + 2^22 + 1064 bytes at worst, under MaxLength = 2^29 - 1; 2^28
// packs of 16 MiB are 4 PiB. Anything beyond (an index file may hold
// 32-bit lengths) is refused with ErrLimit, never truncated. At 10 million
// entries the whole index takes 47.0 bytes per entry at 500 blobs a pack
// (BenchmarkLookup), where 52-byte entries took 53.1, and 51.2 at 16 blobs
// a pack (BenchmarkMemoryPerPack); docs/SCALING.md has the arithmetic.
//
// Entries live in two places:
//
//   - main: a slice of packed entries sorted by (ID, type), with a bucket table of offsets
//     into it keyed by the first k bits of the ID, k chosen so that a bucket
//     holds 2 to 4 entries (k = 21 at 5 million entries: an 8 MiB table,
//     1.7 bytes per entry). IDs are keyed hashes and so uniformly spread: a
//     lookup reads one table slot and binary-searches a few adjacent
//     entries, touching two or three cache lines instead of the ~23 spread
//     over the whole array that a plain binary search touches. Measured at
//     5M entries on a loaded 2-core VM (random IDs, so every lookup misses
//     the CPU cache): a plain binary search ~1400 ns, 2^16 buckets ~650 ns,
//     2^21 buckets ~250-450 ns, a Go map ~550 ns (with about twice the
//     memory). Lookup, with its read lock, takes ~350 ns at 1M entries and
//     ~500-700 ns at 5M.
//   - tail: entries added since the last merge, in insertion order, found
//     through a map from the first eight ID bytes to a chain of tail
//     positions. AddPack appends here in O(1) per blob.
//
// When the tail outgrows max(4096, len(main)/16) entries it is sorted and
// merged into a new main slice. Because the threshold grows with the index,
// each entry is copied about 17 times on average over the index's growth:
// AddPack is amortised O(log n) per blob, and Lookup is a bucketed binary
// search plus, if the tail is not empty, one map probe. A merge holds the
// write lock (lookups wait) and briefly needs memory for two main slices;
// at 5M entries it takes about 0.16 s and happens after every ~300,000 added
// blobs. Including merges, AddPack costs about 1.3 µs per blob at 1-2M
// entries.
//
// AddFiles loads many index files at once with a single sort and merge, so
// opening a repository is O(n log n) (about 1.7 s for 5M entries, with a
// radix pass on the leading ID bits before sorting). It holds the decoded
// Files, the run, sort keys and the merged array at once: 3.5 × the index.
// A Loader (what a repository's LoadIndex uses) decodes index files
// straight into one packed entry array sized from the files' lengths, with
// the first ID bytes on the side (1 byte an entry, dropped once sorted),
// sorts it in place (an in-place radix pass, then each part) and hands it
// to the index as main: loading allocates about 1.1 × the index in all
// (TestLoaderMemory), and LoadIndex's heap peaks at about 1.2 × (repo's
// TestLoadIndexMemory).
//
// main is never modified in place: a merge or RemovePacks builds a new
// slice. This lets Each and Files work on a snapshot without holding the
// lock.
//
// Entries with the same type and ID (the same blob stored in several packs
// after a crash or concurrent backups) are kept in the order they were
// added; Lookup returns the first added, LookupAll all of them. An entry
// identical to one already present (the same pack added twice, or listed by
// two index files) is not added again.
//
// # Concurrency
//
// All methods of Index are safe for concurrent use. Lookup, Has, LookupAll,
// Len, Packs, PackBlobs, Pending and MemoryBytes take the read lock and run
// in parallel with each other. AddPack, AddFile(s), RemovePacks and
// ClearPending take the write lock. Each and Files take the write lock only
// to merge the tail and then work on a snapshot without the lock, so their
// callback or caller may use the index meanwhile.
//
// # Pending entries
//
// The index remembers which blobs were added by AddPack (packs this process
// uploaded) and are therefore not yet recorded in any index file. The backup
// writes them out like this:
//
//	f := ix.Pending()       // snapshot of what is not in any index file yet
//	... encode, encrypt and store f ...
//	ix.ClearPending(f)      // only after the store succeeded
//
// ClearPending forgets exactly the blobs listed in f, so packs added by
// concurrent uploads between Pending and ClearPending stay pending for the
// next index file; if storing fails, nothing is lost. AddFile(s) does not
// mark anything pending: its blobs are already in an index file.
// RemovePacks drops removed packs from the pending set too.
package index
