// Package esemu is an in-process Elasticsearch emulator for tests: an
// httptest server on 127.0.0.1 that the go-elasticsearch v8 client cannot
// tell from Elasticsearch for the calls the elasticsearch source makes
// (product header, content types, the error JSON shapes and statuses),
// and that writes the real layout of an fs snapshot repository
// (docs/ELASTICSEARCH.md), in the format of 5.6, 6.8, 7.10 or current
// versions (Options.RepositoryFormat), with its lifecycle: index-N written
// once through pending- files, index.latest overwritten, shard index
// generations (numeric before 7.6, uuids after),
// snap-/meta- checksum blobs with Lucene header, footer and CRC32, and
// immutable __<uuid> data blobs written with O_EXCL and reused by (name,
// length, checksum) across snapshots.
//
// Documents live in memory, per shard, in Lucene-like immutable segments:
// a flush (also done by every snapshot) turns new documents into a segment
// whose files are deterministic functions of its documents, deletions
// produce .liv files, and segments are merged past a threshold. An
// unchanged index therefore produces byte-identical, unchanged blobs.
// Restore reads everything from disk and checks lengths and checksums, so a
// tool that stores or writes back repository files wrongly fails its tests.
//
// Faults and timing are set through Go methods: FailNextSnapshot,
// FailShard, UnassignPrimary, SnapshotDelay, PostFinalizeCleanupDelay,
// HoldSnapshots, HoldCleanup (a test releases them when it is ready),
// RespondStatus, Hangup, Unreachable, OmitProductHeader, ForeignWriter,
// SetSLMPolicy, AfterSnapshot. Deviations from real ES are listed in
// sources/elasticsearch/README.md.
package esemu
