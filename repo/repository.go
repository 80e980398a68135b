package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/index"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/store"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

// Repository is an open repository. Its methods are safe for concurrent use.
type Repository struct {
	st      store.Store
	cfg     Config
	key     pack.Key
	hasher  *chunk.Hasher
	idKey   [32]byte
	chunker chunk.Params
	stream  *chunk.Params // nil: streams use chunker
	enc     *pack.Encoder
	idx     *index.Index

	mu          sync.Mutex
	indexLoaded bool
	indexFiles  []chunk.ID // loaded index files, for compaction later
	indexListed []chunk.ID // every index file LoadIndex listed, superseded ones too
	// onDamagedIndex, when set, lets LoadIndex skip damaged index files
	// (TolerateDamagedIndex); indexDamaged lists those it skipped.
	onDamagedIndex func(IndexDamage)
	// onIndexLoaded, when set, is called once the index is loaded
	// (OnIndexLoaded).
	onIndexLoaded func(memoryBytes int)
	indexReported int    // what onIndexLoaded last heard
	keyName       string // the key file the password opened (keys.go)
	indexDamaged  []IndexDamage
	lockTiming    LockTiming // guarded by mu
	locks         []*Lock    // guarded by mu: held locks, checked before a snapshot is saved
}

func newRepository(st store.Store, cfg Config, mk masterKey, sc secretConfig) *Repository {
	return &Repository{
		st:      st,
		cfg:     cfg,
		key:     mk.Data,
		hasher:  chunk.NewHasher(mk.ID),
		idKey:   mk.ID,
		chunker: sc.Chunker,
		stream:  sc.StreamChunker,
		enc:     pack.NewEncoder(mk.Data),
		idx:     index.New(),

		lockTiming: DefaultLockTiming,
	}
}

// Store returns the underlying store.
func (r *Repository) Store() store.Store { return r.st }

// Config returns the public config.
func (r *Repository) Config() Config { return r.cfg }

// ChunkerParams returns the repository's chunking parameters for files
// (tree and Elasticsearch components).
func (r *Repository) ChunkerParams() chunk.Params { return r.chunker }

// StreamChunkerParams returns the chunking parameters for streams
// (command components): the config's stream set, or ChunkerParams in a
// repository made before the stream set existed. Its MaxSize is at most
// ChunkerParams().MaxSize (parseSecretConfig).
func (r *Repository) StreamChunkerParams() chunk.Params {
	if r.stream != nil {
		return *r.stream
	}
	return r.chunker
}

// Index returns the in-memory index (loaded by LoadIndex).
func (r *Repository) Index() *index.Index { return r.idx }

// Hasher returns the keyed blob-ID hasher.
func (r *Repository) Hasher() *chunk.Hasher { return r.hasher }

// Close closes the store.
func (r *Repository) Close() error { return r.st.Close() }

// PackName is the store object name of a pack.
func PackName(id chunk.ID) string { s := id.String(); return "data/" + s[:2] + "/" + s }

// Object name helpers.
func indexName(id chunk.ID) string    { return "index/" + id.String() }
func snapshotName(id chunk.ID) string { return "snapshots/" + id.String() }

// ErrCorruptObject is returned when an object's bytes do not hash to its
// name, or a sealed object does not authenticate.
var ErrCorruptObject = errors.New("repo: corrupt object")

// readObject fetches an immutable object and checks it against its name.
func (r *Repository) readObject(ctx context.Context, name string, id chunk.ID) ([]byte, error) {
	return r.readObjectAtMost(ctx, name, id, -1)
}

// readObjectAtMost is readObject for objects of a bounded size (max >= 0):
// a larger object is corrupt and is not read into memory whole.
func (r *Repository) readObjectAtMost(ctx context.Context, name string, id chunk.ID, max int64) ([]byte, error) {
	var buf []byte
	var err error
	if max >= 0 {
		buf, err = store.ReadAtMost(ctx, r.st, name, max)
		if errors.Is(err, store.ErrTooLarge) {
			return nil, fmt.Errorf("%w: %w", ErrCorruptObject, err)
		}
	} else {
		buf, err = store.ReadAll(ctx, r.st, name)
	}
	return checkObject(name, id, buf, err)
}

// readObjectSize is readObject for an object whose listed size is size:
// one buffer, no growing, dst's if it has the room (store.ReadAllSize).
func (r *Repository) readObjectSize(ctx context.Context, name string, id chunk.ID, size int64, dst []byte) ([]byte, error) {
	buf, err := store.ReadAllSize(ctx, r.st, name, size, dst)
	return checkObject(name, id, buf, err)
}

// checkObject checks that the bytes read of object name hash to id.
func checkObject(name string, id chunk.ID, buf []byte, err error) ([]byte, error) {
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if chunk.ObjectID(buf) != id {
		return nil, fmt.Errorf("%w: %s does not match its hash", ErrCorruptObject, name)
	}
	return buf, nil
}

// writeSealed seals plain and stores it under prefix+hash.
func (r *Repository) writeSealed(ctx context.Context, prefix string, plain, ad []byte) (chunk.ID, error) {
	sealed := pack.Seal(&r.key, nil, plain, ad)
	id := chunk.ObjectID(sealed)
	if err := r.st.Put(ctx, prefix+id.String(), sealed); err != nil {
		return id, fmt.Errorf("write %s%s: %w", prefix, id.Short(), err)
	}
	return id, nil
}

// ListIDs lists the object IDs under prefix ("snapshots/", "index/", "data/").
func (r *Repository) ListIDs(ctx context.Context, prefix string) ([]chunk.ID, error) {
	ids, _, err := r.listIDsSizes(ctx, prefix)
	return ids, err
}

// listIDsSizes is ListIDs that also returns the objects' sizes, by ID.
func (r *Repository) listIDsSizes(ctx context.Context, prefix string) ([]chunk.ID, map[chunk.ID]int64, error) {
	var ids []chunk.ID
	sizes := map[chunk.ID]int64{}
	err := r.st.List(ctx, prefix, func(fi store.Info) error {
		base := fi.Name[strings.LastIndexByte(fi.Name, '/')+1:]
		id, err := chunk.ParseID(base)
		if err != nil {
			return nil // not ours; check reports strays
		}
		ids = append(ids, id)
		sizes[id] = fi.Size
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	slices.SortFunc(ids, chunk.ID.Compare)
	return ids, sizes, nil
}

// LoadIndex reads every index file into memory. Index files that a newer
// file supersedes are skipped. It is idempotent.
//
// Files are decoded straight into the index's entry array (index.Loader),
// sized once from the listed object sizes, and at most
// max(minIndexBytesInFlight, total/8) bytes of files are held at a time
// (a file's sealed bytes, decrypted in place): the heap peaks at about the
// final index plus an eighth (see TestLoadIndexMemory).
func (r *Repository) LoadIndex(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.indexLoaded {
		return nil
	}
	ids, sizes, err := r.listIDsSizes(ctx, "index/")
	if err != nil {
		return err
	}
	var total int64
	for _, size := range sizes {
		total += max(size, 0)
	}
	budget := max(minIndexBytesInFlight, total/8)
	inFlight := semaphore.NewWeighted(budget)
	loader := index.NewLoader(total)
	// Read buffers are reused: a file read leaves no garbage, which would
	// otherwise count against the peak until a collection.
	var bufs bufferPool
	supersedes := make([][]chunk.ID, len(ids))
	damage := make([]error, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, id := range ids {
		// A file larger than the budget (or of unknown size) goes alone.
		weight := min(max(sizes[id], 1), budget)
		if err := inFlight.Acquire(gctx, weight); err != nil {
			break // a load failed (g.Wait reports it) or ctx is done
		}
		g.Go(func() error {
			defer inFlight.Release(weight)
			buf := bufs.get()
			sup, buf, err := r.loadIndexFileInto(gctx, id, sizes[id], i, loader, buf)
			bufs.put(buf)
			if err != nil && isDamage(err) && gctx.Err() == nil {
				damage[i] = err // judged below, once Supersedes are known
				return nil
			}
			supersedes[i] = sup
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	superseded := map[chunk.ID]bool{}
	for _, sup := range supersedes {
		for _, s := range sup {
			superseded[s] = true
		}
	}
	var damaged []IndexDamage
	for i, err := range damage {
		// A damaged file another file supersedes (repair index wrote its
		// replacement and crashed before deleting it) costs nothing.
		if err != nil && !superseded[ids[i]] {
			damaged = append(damaged, IndexDamage{ID: ids[i], Err: err})
		}
	}
	if len(damaged) > 0 && r.onDamagedIndex == nil {
		errs := make([]error, len(damaged))
		for i, d := range damaged {
			errs[i] = d.Err
		}
		return fmt.Errorf("%w (run 'cairn repair index'): %w", ErrDamagedIndex, errors.Join(errs...))
	}
	for _, d := range damaged {
		r.onDamagedIndex(d)
	}
	r.indexDamaged = damaged
	r.indexListed = ids
	for i, id := range ids {
		if damage[i] == nil && !superseded[id] {
			r.indexFiles = append(r.indexFiles, id)
		}
	}
	// One in-place sort for all files: several times faster than adding
	// them one by one at millions of blobs, and no second copy.
	if err := loader.AddTo(r.idx, func(i int) bool { return superseded[ids[i]] }); err != nil {
		return err
	}
	r.indexLoaded = true
	if r.onIndexLoaded != nil {
		r.indexReported = r.idx.MemoryBytes()
		r.onIndexLoaded(r.indexReported)
	}
	return nil
}

// OnIndexLoaded registers fn, called with the index's memory
// (Index().MemoryBytes()) once LoadIndex has loaded it, or at once if it
// is loaded already, and again, with the new total, as a backup's saver
// adds to it (IndexGrew): a command sizes the garbage collector's memory
// limit from it. fn runs with the repository's lock held and must not
// call back into it.
func (r *Repository) OnIndexLoaded(fn func(memoryBytes int)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onIndexLoaded = fn
	if r.indexLoaded {
		r.indexReported = r.idx.MemoryBytes()
		fn(r.indexReported)
	}
}

// indexGrowthStep is how much the index memory reported to OnIndexLoaded
// must grow before it is reported again.
const indexGrowthStep = 1 << 20

// IndexGrew reports that the index grew, holding besides its own memory
// pending bytes of entries not yet written to an index file (the
// saver's): OnIndexLoaded's function hears the new total once it is a
// step past what it last heard. A backup of 200,000 small files added
// 28 MiB of such memory (index entries and the index file to write);
// under a limit that did not count them the collector ran without a
// pause for the second half of the backup, which took 10.9-16.2 s
// against 6.6-7.0 s without the limit.
func (r *Repository) IndexGrew(pending int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.onIndexLoaded == nil || !r.indexLoaded {
		return
	}
	n := r.idx.MemoryBytes() + pending
	if n >= r.indexReported+indexGrowthStep || n < r.indexReported {
		r.indexReported = n
		r.onIndexLoaded(n)
	}
}

// bufferPool is a free list of read buffers (sync.Pool may drop them at
// any collection, and a collection is what reuse avoids).
type bufferPool struct {
	mu   sync.Mutex
	free [][]byte
}

func (p *bufferPool) get() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) == 0 {
		return nil
	}
	b := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	return b
}

func (p *bufferPool) put(b []byte) {
	if b == nil {
		return
	}
	p.mu.Lock()
	p.free = append(p.free, b)
	p.mu.Unlock()
}

// minIndexBytesInFlight is the least LoadIndex lets itself hold of index
// files being read: 4 MiB. Files larger than the budget are read one at a
// time (prune writes files of about 5 MiB); small ones 8 at a time.
const minIndexBytesInFlight = 4 << 20

// ErrDamagedIndex is returned by LoadIndex when an index file cannot be
// read back (corrupt, not authenticated, not decodable) and the caller has
// not said, with TolerateDamagedIndex, that it can go on without it.
var ErrDamagedIndex = errors.New("repo: damaged index file")

// IndexDamage is an index file LoadIndex could not use.
type IndexDamage struct {
	ID  chunk.ID
	Err error
}

// TolerateDamagedIndex lets LoadIndex go on without index files that are
// damaged, calling warn for each (before LoadIndex returns). Their entries
// are missing, so blobs only they listed look absent: a backup stores such
// blobs again, a restore reports the files it cannot find. Safe for those
// jobs and for check (which reports the damage); never for prune, which
// would take the packs those files named for garbage. Call before
// LoadIndex.
func (r *Repository) TolerateDamagedIndex(warn func(IndexDamage)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onDamagedIndex = warn
}

// DamagedIndex returns the index files LoadIndex went on without.
func (r *Repository) DamagedIndex() []IndexDamage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.indexDamaged)
}

// isDamage tells a damaged object (bytes that do not match the name, do
// not authenticate or do not decode) from a failure to read it.
func isDamage(err error) bool {
	return errors.Is(err, ErrCorruptObject) || errors.Is(err, errIndexUndecodable)
}

var errIndexUndecodable = errors.New("index file does not decrypt or decode")

func (r *Repository) loadIndexFile(ctx context.Context, id chunk.ID) (*index.File, error) {
	plain, _, err := r.openIndexFile(ctx, id, -1, nil)
	if err != nil {
		return nil, err
	}
	f, err := index.Decode(plain)
	if err != nil {
		return nil, fmt.Errorf("load index %s: %w: %w", id.Short(), errIndexUndecodable, err)
	}
	return f, nil
}

// loadIndexFileInto decodes index file id (listed with size bytes) into l
// as file seq, and returns the files it supersedes. It reads into buf's
// storage if it has the room, and returns the buffer it read into, for
// the next file.
func (r *Repository) loadIndexFileInto(ctx context.Context, id chunk.ID, size int64, seq int, l *index.Loader, buf []byte) ([]chunk.ID, []byte, error) {
	plain, raw, err := r.openIndexFile(ctx, id, size, buf)
	if err != nil {
		return nil, buf, err
	}
	sup, err := l.Add(seq, plain) // does not retain plain
	if err != nil {
		return nil, raw, fmt.Errorf("load index %s: %w: %w", id.Short(), errIndexUndecodable, err)
	}
	return sup, raw, nil
}

// openIndexFile reads and decrypts index file id, in place: it returns the
// plaintext and the bytes read, which share storage. size is its listed
// size, or -1 if unknown; then dst, if it has room, holds the bytes read.
func (r *Repository) openIndexFile(ctx context.Context, id chunk.ID, size int64, dst []byte) (plain, raw []byte, err error) {
	if size >= 0 {
		raw, err = r.readObjectSize(ctx, indexName(id), id, size, dst)
	} else {
		raw, err = r.readObject(ctx, indexName(id), id)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load index: %w", err)
	}
	var out []byte
	if len(raw) >= pack.NonceSize {
		out = raw[pack.NonceSize:pack.NonceSize]
	}
	plain, err = pack.Open(&r.key, out, raw, adIndex)
	if err != nil {
		return nil, raw, fmt.Errorf("load index %s: %w: %w", id.Short(), errIndexUndecodable, err)
	}
	return plain, raw, nil
}

// WriteIndex seals and stores f, and counts it among IndexFiles. Callers
// write it only after every pack it names is durable.
func (r *Repository) WriteIndex(ctx context.Context, f *index.File) (chunk.ID, error) {
	plain, err := f.MarshalBinary()
	if err != nil {
		return chunk.ID{}, fmt.Errorf("encode index: %w", err)
	}
	id, err := r.writeSealed(ctx, "index/", plain, adIndex)
	if err != nil {
		return id, err
	}
	r.mu.Lock()
	r.indexFiles = append(r.indexFiles, id)
	r.mu.Unlock()
	return id, nil
}

// ErrBlobNotFound is returned when the index has no entry for a blob.
var ErrBlobNotFound = errors.New("repo: blob not in index")

// BlobError says which blob in which pack failed to load.
type BlobError struct {
	Type pack.BlobType
	ID   chunk.ID
	Pack chunk.ID // zero if the blob is not in the index
	Err  error
}

func (e *BlobError) Error() string {
	if e.Pack.IsNull() {
		return fmt.Sprintf("%s blob %s: %v", e.Type, e.ID.Short(), e.Err)
	}
	return fmt.Sprintf("%s blob %s in pack %s: %v", e.Type, e.ID.Short(), e.Pack, e.Err)
}

func (e *BlobError) Unwrap() error { return e.Err }

// LoadBlob returns the plaintext of a blob, verified against its ID. dst is
// reused when large enough.
func (r *Repository) LoadBlob(ctx context.Context, t pack.BlobType, id chunk.ID, dst []byte) ([]byte, error) {
	locs := r.idx.LookupAll(t, id)
	if len(locs) == 0 {
		return nil, &BlobError{Type: t, ID: id, Err: ErrBlobNotFound}
	}
	var firstErr error
	// A blob stored twice (after a crash, or two concurrent backups) can be
	// read from its second copy when the first pack is damaged.
	for _, loc := range locs {
		plain, err := r.loadBlobAt(ctx, loc, dst)
		if err == nil {
			return plain, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if firstErr == nil {
			firstErr = &BlobError{Type: t, ID: id, Pack: loc.Pack, Err: err}
		}
	}
	return nil, firstErr
}

func (r *Repository) loadBlobAt(ctx context.Context, loc index.Location, dst []byte) ([]byte, error) {
	b := loc.Blob
	// The index is sealed, but a key holder can forge it: its lengths are
	// checked before they size a read.
	if err := r.checkBlobLengths(b); err != nil {
		return nil, err
	}
	stored, err := store.ReadRange(ctx, r.st, PackName(loc.Pack), int64(b.Offset), int(b.Length))
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return r.DecodeBlob(dst, b, stored)
}

// DecodeBlob decrypts and decompresses a blob's stored bytes (as read from
// its pack at b.Offset) and checks the plaintext against b.ID. dst is
// reused when large enough.
func (r *Repository) DecodeBlob(dst []byte, b pack.Blob, stored []byte) ([]byte, error) {
	plain, err := r.decodeBlob(dst[:0], b, stored)
	if err != nil {
		return nil, err
	}
	if r.hasher.Sum(plain) != b.ID {
		return nil, fmt.Errorf("%w: content does not match its ID", pack.ErrCorrupt)
	}
	return plain, nil
}

// decodeBlob decodes a stored blob, refusing before it allocates a raw
// length no writer of this repository produces: data blobs are at most the
// chunker's maximum (the stream set's maximum is not above it), trees at
// most snapshot.MaxTreeSize.
func (r *Repository) decodeBlob(dst []byte, b pack.Blob, stored []byte) ([]byte, error) {
	return pack.DecodeLimit(&r.key, dst, b, stored, r.rawLimit(b.Type))
}

// rawLimit is the largest plaintext a blob of type t can have here.
func (r *Repository) rawLimit(t pack.BlobType) uint32 {
	if t == pack.DataBlob {
		return uint32(r.chunker.MaxSize)
	}
	return snapshot.MaxTreeSize
}

// maxStoredLength bounds the stored form of a blob of at most limit bytes:
// zstd's worst case grows incompressible input by limit/256 + 64 bytes
// (ZSTD_COMPRESSBOUND); limit/64 + 1 KiB is well above it.
func maxStoredLength(limit uint32) uint64 {
	return uint64(limit) + uint64(limit)/64 + 1024 + pack.Overhead
}

// ReadPack reads a whole pack and checks it against its name.
func (r *Repository) ReadPack(ctx context.Context, id chunk.ID) ([]byte, error) {
	return r.readObject(ctx, PackName(id), id)
}

// ReadPackRange reads length bytes of pack id from offset into dst's
// storage if it has the room. The bytes are not checked against the
// pack's name (that needs all of them): the caller decodes each blob it
// takes from them, which authenticates it (DecodeBlob).
func (r *Repository) ReadPackRange(ctx context.Context, id chunk.ID, offset int64, length int, dst []byte) ([]byte, error) {
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("read %s: range %d+%d", PackName(id), offset, length)
	}
	rc, err := r.st.Get(ctx, PackName(id), offset, int64(length))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", PackName(id), err)
	}
	defer rc.Close()
	if cap(dst) < length {
		dst = make([]byte, length)
	}
	dst = dst[:length]
	if _, err := io.ReadFull(rc, dst); err != nil {
		return nil, fmt.Errorf("read %s: %d bytes at %d: %w", PackName(id), length, offset, err)
	}
	return dst, nil
}

// ReadPackHeader decrypts and parses the blob table of a pack of size bytes.
func (r *Repository) ReadPackHeader(rd io.ReaderAt, size int64) ([]pack.Blob, error) {
	return pack.ReadHeader(&r.key, rd, size)
}

// SharesKeys tells what r and o have in common: the blob-ID key (a
// replica: the same content has the same blob IDs) and the data key (a
// replica made with ShareDataKey: packs are readable by both as stored).
func (r *Repository) SharesKeys(o *Repository) (idKey, dataKey bool) {
	return r.idKey == o.idKey, r.key == o.key
}

// LoadTree loads and decodes a tree blob.
func (r *Repository) LoadTree(ctx context.Context, id chunk.ID) (*snapshot.Tree, error) {
	buf, err := r.LoadBlob(ctx, pack.TreeBlob, id, nil)
	return DecodeTree(id, buf, err)
}

// DecodeTree decodes a loaded tree blob, wrapping a load error; for jobs
// that fetch tree blobs their own way (copy shares them between targets).
func DecodeTree(id chunk.ID, buf []byte, err error) (*snapshot.Tree, error) {
	if err != nil {
		return nil, fmt.Errorf("load tree: %w", err)
	}
	t, err := snapshot.DecodeTree(buf)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", id.Short(), err)
	}
	return t, nil
}

// EncodeTree encodes a tree for saving and decodes the result before it is
// saved: a tree that would not read back (a name the encoding cannot carry,
// a node the decoder refuses) fails the backup instead of the restore.
// Decoding costs about as much as encoding, a small part of a backup.
func EncodeTree(t *snapshot.Tree) ([]byte, error) {
	buf, err := t.Encode()
	if err != nil {
		return nil, err
	}
	back, err := snapshot.DecodeTree(buf)
	if err != nil {
		return nil, fmt.Errorf("tree does not decode after encoding: %w", err)
	}
	if len(back.Nodes) != len(t.Nodes) {
		return nil, fmt.Errorf("tree of %d nodes decodes to %d", len(t.Nodes), len(back.Nodes))
	}
	for _, n := range t.Nodes {
		if m := back.Find(n.Name); m == nil || m.LinkTarget != n.LinkTarget {
			return nil, fmt.Errorf("tree node %q does not decode to itself", n.Name)
		}
	}
	return buf, nil
}

// SaveSnapshot stores a manifest. Call it only after the blob session that
// wrote its blobs has flushed its index.
//
// Every lock this Repository holds must be demonstrably fresh: a prune on
// another host keeps the blobs a backup may use only while the backup's
// lock is live, so a snapshot written under a lock that may look stale
// could name deleted blobs. The write is cancelled before the lock could
// look stale. (A Repository holding no lock, as in library tests, writes
// unchecked; every cairn command holds one.)
func (r *Repository) SaveSnapshot(ctx context.Context, sn *snapshot.Snapshot) (chunk.ID, error) {
	plain, err := sn.Encode()
	if err != nil {
		return chunk.ID{}, err
	}
	until, err := r.checkHeldLocks()
	if err != nil {
		return chunk.ID{}, fmt.Errorf("not saving the snapshot: %w", err)
	}
	if !until.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, until)
		defer cancel()
	}
	return r.writeSealed(ctx, "snapshots/", plain, adSnapshot)
}

// LoadSnapshot reads and verifies one manifest.
func (r *Repository) LoadSnapshot(ctx context.Context, id chunk.ID) (*snapshot.Snapshot, error) {
	buf, err := r.readObjectAtMost(ctx, snapshotName(id), id, snapshot.MaxManifestSize+pack.Overhead)
	if err != nil {
		return nil, fmt.Errorf("load snapshot: %w", err)
	}
	plain, err := pack.Open(&r.key, nil, buf, adSnapshot)
	if err != nil {
		return nil, fmt.Errorf("load snapshot %s: %w", id.Short(), err)
	}
	return snapshot.Decode(plain)
}

// SnapshotEntry is a manifest with its ID.
type SnapshotEntry struct {
	ID chunk.ID
	*snapshot.Snapshot
}

// ErrDamagedSnapshots is returned (wrapped) by Snapshots when some
// manifests cannot be read; the others are still returned.
var ErrDamagedSnapshots = errors.New("repo: damaged snapshot manifests")

// Snapshots loads every manifest, oldest first. When some manifests are
// damaged it returns the readable ones together with an error wrapping
// ErrDamagedSnapshots that names the others.
func (r *Repository) Snapshots(ctx context.Context) ([]SnapshotEntry, error) {
	ids, err := r.ListIDs(ctx, "snapshots/")
	if err != nil {
		return nil, err
	}
	loaded := make([]SnapshotEntry, len(ids))
	errs := make([]error, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0) * 2)
	for i, id := range ids {
		g.Go(func() error {
			sn, err := r.LoadSnapshot(gctx, id)
			loaded[i] = SnapshotEntry{ID: id, Snapshot: sn}
			errs[i] = err
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]SnapshotEntry, 0, len(ids))
	var damaged []error
	for i := range loaded {
		if errs[i] != nil {
			damaged = append(damaged, errs[i])
			continue
		}
		out = append(out, loaded[i])
	}
	slices.SortStableFunc(out, func(a, b SnapshotEntry) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	if len(damaged) > 0 {
		return out, fmt.Errorf("%w: %d unreadable: %w", ErrDamagedSnapshots, len(damaged), errors.Join(damaged...))
	}
	return out, nil
}

// ErrSnapshotNotFound is returned by FindSnapshot when nothing matches.
var ErrSnapshotNotFound = errors.New("repo: snapshot not found")

// FindSnapshot resolves "latest", a full ID or a unique hex prefix.
func (r *Repository) FindSnapshot(ctx context.Context, ref string) (SnapshotEntry, error) {
	if ref == "latest" {
		// A damaged manifest might be the newest one: refuse to guess.
		all, err := r.Snapshots(ctx)
		if err != nil {
			return SnapshotEntry{}, fmt.Errorf("cannot tell which snapshot is the latest (name one by ID): %w", err)
		}
		if len(all) == 0 {
			return SnapshotEntry{}, fmt.Errorf("%w: the repository has no snapshots", ErrSnapshotNotFound)
		}
		return all[len(all)-1], nil
	}
	ref = strings.ToLower(ref)
	ids, err := r.ListIDs(ctx, "snapshots/")
	if err != nil {
		return SnapshotEntry{}, err
	}
	var match []chunk.ID
	for _, id := range ids {
		if strings.HasPrefix(id.String(), ref) {
			match = append(match, id)
		}
	}
	switch {
	case ref == "" || len(match) == 0:
		return SnapshotEntry{}, fmt.Errorf("%w: %q", ErrSnapshotNotFound, ref)
	case len(match) > 1:
		return SnapshotEntry{}, fmt.Errorf("snapshot prefix %q is ambiguous: %d snapshots match", ref, len(match))
	}
	sn, err := r.LoadSnapshot(ctx, match[0])
	if err != nil {
		return SnapshotEntry{}, err
	}
	return SnapshotEntry{ID: match[0], Snapshot: sn}, nil
}

// RemoveSnapshot deletes one manifest (forget). The blobs it alone used
// stay until prune.
func (r *Repository) RemoveSnapshot(ctx context.Context, id chunk.ID) error {
	if err := r.st.Delete(ctx, snapshotName(id)); err != nil {
		return fmt.Errorf("remove snapshot %s: %w", id.Short(), err)
	}
	return nil
}
