package index

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"unsafe"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/pack"
)

// Location tells where a blob is stored.
type Location struct {
	Pack chunk.ID
	Blob pack.Blob
}

const (
	// The bucket table has 2^bits+1 entries, about one per
	// entriesPerBucket entries of main. At least 8 bits, so that every
	// bucket holds entries of one first ID byte (packed relies on it).
	minBucketBits    = 8
	maxBucketBits    = 24
	entriesPerBucket = 4

	// minTail is the tail size below which the tail is never merged; the
	// threshold otherwise is len(main)/tailDivisor.
	minTail     = 4096
	tailDivisor = 16

	// Rough heap cost of one map entry (Go swiss tables: key, value, control
	// byte, load factor, growth slack), used by MemoryBytes.
	tailMapEntryBytes = 32
	packMapEntryBytes = 64
)

// Index maps blob type and ID to locations. The zero value is not usable;
// call New. See the package documentation for its design and concurrency.
type Index struct {
	mu sync.RWMutex

	// main is sorted by (id, typ), ties in insertion order. Never modified
	// in place. Its entries do not store the first ID byte: lead[b] is the
	// index of the first entry whose ID starts with a byte >= b (257
	// elements when main is not empty, else none), so the entries of
	// main[lead[b]:lead[b+1]] start with b.
	main []packed
	lead []uint32
	// buckets[p] is the index of the first entry in main whose first
	// 32-shift ID bits, read big-endian, are >= p. It has 2^(32-shift)+1
	// elements when main is not empty, else none.
	buckets []uint32
	shift   uint8

	// tail holds entries added since the last merge, in insertion order.
	// Every tail entry was added after every main entry.
	tail []entry
	// tailFirst maps the first eight bytes of an ID (hi8) to the index of
	// the first tail entry whose ID starts so; tailNext[i] is the index of
	// the next tail entry with the same hi8, or -1. A chain holds the
	// entries of one ID (both types, all packs) in insertion order, and in
	// the astronomically rare case of IDs sharing eight bytes, of several
	// IDs. An 8-byte map key hashes faster and takes less memory than the
	// full key.
	tailFirst map[uint64]int32
	tailNext  []int32

	// packs maps pack numbers to IDs. It is only appended to, except by
	// RemovePacks, which builds a new slice; so a copied slice header stays
	// valid. Every pack in it has at least one entry.
	packs []chunk.ID
	// byID holds pack numbers ordered by their pack's ID, for finding a
	// pack's number by binary search; packs numbered since it was last
	// rebuilt (at the next merge) are in newPacks. 4 bytes a pack where a
	// map took about 64: a repository of 16 MiB packs holds 16 to 64 blobs
	// a pack, so the map cost 1 to 4 bytes a blob (BenchmarkMemoryPerPack).
	byID     []uint32
	newPacks map[chunk.ID]uint32
	// packLimit is the most packs the index numbers: MaxPacks, lowered by
	// tests.
	packLimit int

	// pending lists blobs added by AddPack and not yet cleared.
	pending []PackBlobs
}

// New returns an empty index.
func New() *Index {
	return &Index{packLimit: MaxPacks}
}

// lookupPackLocked returns the number of pack id, if the index has it.
func (ix *Index) lookupPackLocked(id chunk.ID) (uint32, bool) {
	if i, ok := slices.BinarySearchFunc(ix.byID, id, func(n uint32, id chunk.ID) int {
		return ix.packs[n].Compare(id)
	}); ok {
		return ix.byID[i], true
	}
	num, ok := ix.newPacks[id]
	return num, ok
}

// indexPacksLocked merges newPacks into byID.
func (ix *Index) indexPacksLocked() {
	if len(ix.newPacks) == 0 {
		return
	}
	fresh := make([]uint32, 0, len(ix.newPacks))
	for _, num := range ix.newPacks {
		fresh = append(fresh, num)
	}
	byPackID := func(a, b uint32) int { return ix.packs[a].Compare(ix.packs[b]) }
	slices.SortFunc(fresh, byPackID)
	merged := make([]uint32, 0, len(ix.byID)+len(fresh))
	i, j := 0, 0
	for i < len(ix.byID) && j < len(fresh) {
		if byPackID(ix.byID[i], fresh[j]) < 0 {
			merged = append(merged, ix.byID[i])
			i++
		} else {
			merged = append(merged, fresh[j])
			j++
		}
	}
	merged = append(merged, ix.byID[i:]...)
	ix.byID = append(merged, fresh[j:]...)
	ix.newPacks = nil
}

// sortedPackNums returns the numbers of packs ordered by their pack's ID.
func sortedPackNums(packs []chunk.ID) []uint32 {
	nums := make([]uint32, len(packs))
	for i := range nums {
		nums[i] = uint32(i)
	}
	slices.SortFunc(nums, func(a, b uint32) int { return packs[a].Compare(packs[b]) })
	return nums
}

// firstByte returns the first ID byte of main[i], with lead main's lead
// table: a binary search over 256 values that stay in the CPU cache.
func firstByte(lead []uint32, i int) byte {
	lo, hi := 0, 256 // lead[lo] <= i < lead[hi]
	for hi-lo > 1 {
		m := (lo + hi) / 2
		if int(lead[m]) <= i {
			lo = m
		} else {
			hi = m
		}
	}
	return byte(lo)
}

// bucketOf returns the bucket of id in a table of 2^(32-shift) buckets: the
// first 32-shift bits of the ID.
func bucketOf(id *chunk.ID, shift uint8) int {
	return int(binary.BigEndian.Uint32(id[:4]) >> shift)
}

// searchMain returns the index of the first main entry with key (id, t), or
// -1 if there is none.
func (ix *Index) searchMain(t pack.BlobType, id *chunk.ID) int {
	i, _ := ix.searchMainEnd(t, id)
	return i
}

// searchMainEnd is searchMain, also returning the end of id's bucket: the
// entries with key (id, t) are main[i:j] for the j < end where they stop.
// Entries past the bucket end may hold id's last 31 bytes with another
// first byte, so a caller scanning for more copies must stop there.
func (ix *Index) searchMainEnd(t pack.BlobType, id *chunk.ID) (int, int) {
	if len(ix.main) == 0 {
		return -1, 0
	}
	p := bucketOf(id, ix.shift)
	lo, end := int(ix.buckets[p]), int(ix.buckets[p+1])
	hi := end
	// Every entry in the bucket has id's first byte (at least 8 bucket
	// bits): compare bytes 1-8 as an integer before the rest.
	want := binary.BigEndian.Uint64(id[1:9])
	tree := uint8(0)
	if t == pack.TreeBlob {
		tree = 1
	} else if t != pack.DataBlob {
		return -1, end
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		e := &ix.main[m]
		c := cmp.Compare(phi8(e), want)
		if c == 0 {
			if c = bytes.Compare(e.id[8:], id[9:]); c == 0 {
				c = cmp.Compare(e.tree(), tree)
			}
		}
		if c < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < end && ix.main[lo].hasID(id) && ix.main[lo].tree() == tree {
		return lo, end
	}
	return -1, end
}

// searchTail returns the index of the first tail entry with key (id, t), or
// -1 if there is none.
func (ix *Index) searchTail(t pack.BlobType, id *chunk.ID) int32 {
	i, ok := ix.tailFirst[hi8(id)]
	if !ok {
		return -1
	}
	for ; i >= 0; i = ix.tailNext[i] {
		if ix.tail[i].id == *id && ix.tail[i].typ == t {
			return i
		}
	}
	return -1
}

// Lookup returns the location of the blob with type t and ID id. If the blob
// is stored in several packs, it returns the location added first.
func (ix *Index) Lookup(t pack.BlobType, id chunk.ID) (Location, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if i := ix.searchMain(t, &id); i >= 0 {
		e := &ix.main[i]
		return Location{Pack: ix.packs[e.packNum()], Blob: e.blob(&id)}, true
	}
	if i := ix.searchTail(t, &id); i >= 0 {
		e := &ix.tail[i]
		return Location{Pack: ix.packs[e.pack], Blob: e.blob()}, true
	}
	return Location{}, false
}

// Has reports whether the index holds the blob with type t and ID id.
func (ix *Index) Has(t pack.BlobType, id chunk.ID) bool {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if ix.searchMain(t, &id) >= 0 {
		return true
	}
	return ix.searchTail(t, &id) >= 0
}

// LookupAll returns every location of the blob with type t and ID id, in the
// order they were added, or nil.
func (ix *Index) LookupAll(t pack.BlobType, id chunk.ID) []Location {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var locs []Location
	if i, end := ix.searchMainEnd(t, &id); i >= 0 {
		for ; i < end && ix.main[i].hasID(&id) && ix.main[i].typ() == t; i++ {
			e := &ix.main[i]
			locs = append(locs, Location{Pack: ix.packs[e.packNum()], Blob: e.blob(&id)})
		}
	}
	for i := ix.searchTail(t, &id); i >= 0; i = ix.tailNext[i] {
		if e := &ix.tail[i]; e.id == id && e.typ == t {
			locs = append(locs, Location{Pack: ix.packs[e.pack], Blob: e.blob()})
		}
	}
	return locs
}

// Len returns the number of entries (a blob stored in two packs counts
// twice).
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.main) + len(ix.tail)
}

// Packs returns the IDs of all packs that hold indexed blobs, sorted.
func (ix *Index) Packs() []chunk.ID {
	ix.mu.RLock()
	ps := slices.Clone(ix.packs)
	ix.mu.RUnlock()
	slices.SortFunc(ps, chunk.ID.Compare)
	return ps
}

// AddPack records that pack packID holds blobs, and marks them pending (see
// Pending). It is meant for packs this process has just uploaded. Blobs
// identical to an entry the index already has for the same pack (the same
// pack added twice) are skipped. An empty blobs is a no-op.
//
// AddPack checks only what the index needs to represent blobs: a blob of
// unknown type or beyond MaxLength, or a pack beyond MaxPacks, is refused
// with an error wrapping ErrLimit, and nothing is added. It does not retain
// the slice.
func (ix *Index) AddPack(packID chunk.ID, blobs []pack.Blob) error {
	if len(blobs) == 0 {
		return nil
	}
	if err := checkBlobs(blobs); err != nil {
		return fmt.Errorf("add pack %s: %w", packID.Short(), err)
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if _, ok := ix.lookupPackLocked(packID); !ok && len(ix.packs) >= ix.packLimit {
		return fmt.Errorf("add pack %s: %w", packID.Short(), errTooManyPacks(ix.packLimit))
	}
	added := ix.addPackLocked(packID, blobs, true)
	if len(added) > 0 {
		ix.pending = append(ix.pending, PackBlobs{Pack: packID, Blobs: added})
	}
	ix.maybeMergeLocked()
	return nil
}

// checkBlobs returns checkEntryBlob's error for the first blob that has one.
func checkBlobs(blobs []pack.Blob) error {
	for i := range blobs {
		if err := checkEntryBlob(&blobs[i]); err != nil {
			return err
		}
	}
	return nil
}

// AddFile adds every pack listed in f, skipping entries identical to one the
// index already has (as AddPack does). It does not mark them pending, and
// ignores f.Supersedes: choosing which files to load is the caller's job.
// It refuses what AddPack refuses, adding nothing.
//
// To load many files, AddFiles is faster than calling AddFile for each.
func (ix *Index) AddFile(f *File) error {
	return ix.AddFiles([]*File{f})
}

// AddFiles adds every pack listed in files, like AddFile for each file. Large
// batches (more blobs than the tail may hold) are sorted and merged into the
// main array in one pass: loading a repository's whole index this way costs
// one O(n log n) sort instead of a series of merges. On an error (wrapping
// ErrLimit) nothing is added.
func (ix *Index) AddFiles(files []*File) error {
	n, listed := 0, 0
	for _, f := range files {
		n += f.NumBlobs()
		listed += len(f.Packs)
		for i := range f.Packs {
			if err := checkBlobs(f.Packs[i].Blobs); err != nil {
				return fmt.Errorf("add pack %s: %w", f.Packs[i].Pack.Short(), err)
			}
		}
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if len(ix.packs)+listed > ix.packLimit {
		// Count exactly only when the cheap bound fails.
		fresh := map[chunk.ID]struct{}{}
		for _, f := range files {
			for i := range f.Packs {
				pb := &f.Packs[i]
				if _, ok := ix.lookupPackLocked(pb.Pack); !ok && len(pb.Blobs) > 0 {
					fresh[pb.Pack] = struct{}{}
				}
			}
		}
		if len(ix.packs)+len(fresh) > ix.packLimit {
			return errTooManyPacks(ix.packLimit)
		}
	}
	if len(ix.tail)+n <= ix.tailLimit() {
		for _, f := range files {
			for i := range f.Packs {
				ix.addPackLocked(f.Packs[i].Pack, f.Packs[i].Blobs, false)
			}
		}
		return nil
	}
	// The tail entries are older than the new ones, so they go first into
	// the run; mergeRunLocked keeps that order among equal keys.
	run := make([]entry, len(ix.tail), len(ix.tail)+n)
	copy(run, ix.tail)
	for _, f := range files {
		for i := range f.Packs {
			pb := &f.Packs[i]
			if len(pb.Blobs) == 0 {
				continue
			}
			num := ix.packNumLocked(pb.Pack)
			for j := range pb.Blobs {
				run = append(run, newEntry(num, &pb.Blobs[j]))
			}
		}
	}
	ix.resetTailLocked()
	ix.mergeRunLocked(run)
	return nil
}

// packNumLocked returns the number of pack id, registering it if new. The
// caller must add at least one entry for a new pack, and have checked
// packLimit.
func (ix *Index) packNumLocked(id chunk.ID) uint32 {
	num, ok := ix.lookupPackLocked(id)
	if !ok {
		num = uint32(len(ix.packs))
		ix.packs = append(ix.packs, id)
		if ix.newPacks == nil {
			ix.newPacks = make(map[chunk.ID]uint32)
		}
		ix.newPacks[id] = num
	}
	return num
}

// addPackLocked appends the blobs of one pack to the tail, skipping exact
// duplicates of existing entries of the same pack. If collect is set it
// returns the blobs it added. The caller has checked the blobs and the
// pack limit.
func (ix *Index) addPackLocked(packID chunk.ID, blobs []pack.Blob, collect bool) []pack.Blob {
	if len(blobs) == 0 {
		return nil
	}
	_, known := ix.lookupPackLocked(packID)
	num := ix.packNumLocked(packID)
	if ix.tailFirst == nil {
		ix.tailFirst = make(map[uint64]int32)
	}
	// A new pack gets at least its first blob added (tail duplicates are
	// compared including the pack number), so every pack in the table has an
	// entry.
	var added []pack.Blob
	for i := range blobs {
		e := newEntry(num, &blobs[i])
		if known && ix.inMainLocked(&e) {
			continue
		}
		if !ix.appendTailLocked(e) {
			continue
		}
		if collect {
			added = append(added, blobs[i])
		}
	}
	return added
}

// inMainLocked reports whether main holds an entry identical to e.
func (ix *Index) inMainLocked(e *entry) bool {
	i, end := ix.searchMainEnd(e.typ, &e.id)
	if i < 0 {
		return false
	}
	p := e.compact()
	for ; i < end && ix.main[i].hasID(&e.id) && ix.main[i].typ() == e.typ; i++ {
		if ix.main[i] == p {
			return true
		}
	}
	return false
}

// appendTailLocked appends e to the tail unless the tail already holds an
// identical entry, and reports whether it did.
func (ix *Index) appendTailLocked(e entry) bool {
	n := int32(len(ix.tail))
	h := hi8(&e.id)
	i, ok := ix.tailFirst[h]
	if !ok {
		ix.tailFirst[h] = n
	} else {
		for {
			if ix.tail[i] == e {
				return false
			}
			if ix.tailNext[i] < 0 {
				break
			}
			i = ix.tailNext[i]
		}
		ix.tailNext[i] = n
	}
	ix.tail = append(ix.tail, e)
	ix.tailNext = append(ix.tailNext, -1)
	return true
}

// tailLimit is the number of entries above which the tail is merged.
func (ix *Index) tailLimit() int {
	return max(minTail, len(ix.main)/tailDivisor)
}

func (ix *Index) maybeMergeLocked() {
	if len(ix.tail) > ix.tailLimit() {
		ix.mergeLocked()
	}
}

// mergeLocked merges the tail into a new main slice and empties the tail.
func (ix *Index) mergeLocked() {
	if len(ix.tail) == 0 {
		return
	}
	tail := ix.tail
	ix.resetTailLocked()
	ix.mergeRunLocked(tail)
}

func (ix *Index) resetTailLocked() {
	ix.tail, ix.tailNext, ix.tailFirst = nil, nil, nil
}

// mergeRunLocked merges run, entries newer than all of main in the order
// they were added, into a new main slice. Equal keys stay in the order
// added; an entry identical to one already present is dropped.
func (ix *Index) mergeRunLocked(run []entry) {
	keys := sortRun(run)
	old, oldLead := ix.main, ix.lead
	merged := make([]packed, len(old)+len(run))
	var count [256]int // entries written to merged, by first ID byte
	ob := 0            // the first ID byte of old[i]
	i, j, k := 0, 0, 0
	for j < len(keys) {
		e := &run[keys[j].pos]
		// On equal keys the main entry is older and goes first.
		if i < len(old) {
			for int(oldLead[ob+1]) <= i {
				ob++
			}
			if comparePackedEntry(byte(ob), &old[i], e) <= 0 {
				merged[k] = old[i]
				count[ob]++
				i++
				k++
				continue
			}
		}
		j++
		p, b := e.compact(), e.id[0]
		// Entries with e's key that are already out are right before k,
		// among the count[b] that start with e's first byte.
		dup := false
		for q := k - 1; q >= k-count[b] && merged[q].hasID(&e.id) && merged[q].typ() == e.typ; q-- {
			if merged[q] == p {
				dup = true
				break
			}
		}
		if !dup {
			merged[k] = p
			count[b]++
			k++
		}
	}
	if i < len(old) {
		for b := range 256 {
			if n := int(oldLead[b+1]) - max(int(oldLead[b]), i); n > 0 {
				count[b] += n
			}
		}
		k += copy(merged[k:], old[i:])
	}
	ix.setMainLocked(merged[:k:k], leadOf(&count))
	ix.indexPacksLocked()
}

// leadOf returns the lead table of an array with count[b] entries whose
// ID starts with b.
func leadOf(count *[256]int) []uint32 {
	lead := make([]uint32, 257)
	for b, n := range count {
		lead[b+1] = lead[b] + uint32(n)
	}
	return lead
}

// sortKey stands for run[pos] while sorting a run: sorting these 16-byte
// pairs moves less memory than sorting 52-byte entries, and most
// comparisons end on hi without touching the entries.
type sortKey struct {
	hi  uint64 // hi8 of the entry's ID
	pos int32
}

// radixBits is the number of leading ID bits sortRun distributes by before
// sorting each part.
const radixBits = 16

// sortRun returns the positions of run's entries in key order, equal keys in
// position order (a stable sort).
func sortRun(run []entry) []sortKey {
	keys := make([]sortKey, len(run))
	for i := range run {
		keys[i] = sortKey{hi8(&run[i].id), int32(i)}
	}
	compare := func(a, b sortKey) int {
		if a.hi != b.hi {
			return cmp.Compare(a.hi, b.hi)
		}
		if c := compareEntries(&run[a.pos], &run[b.pos]); c != 0 {
			return c
		}
		return cmp.Compare(a.pos, b.pos)
	}
	if len(keys) < 1<<radixBits {
		slices.SortFunc(keys, compare)
		return keys
	}
	// IDs are uniformly distributed, so one counting-sort pass on the
	// leading bits leaves parts of a few entries each, which sort fast.
	start := make([]int32, 1<<radixBits+1)
	for _, k := range keys {
		start[k.hi>>(64-radixBits)+1]++
	}
	for p := 1; p < len(start); p++ {
		start[p] += start[p-1]
	}
	out := make([]sortKey, len(keys))
	next := slices.Clone(start[:1<<radixBits])
	for _, k := range keys {
		p := k.hi >> (64 - radixBits)
		out[next[p]] = k
		next[p]++
	}
	for p := range 1 << radixBits {
		if part := out[start[p]:start[p+1]]; len(part) > 1 {
			slices.SortFunc(part, compare)
		}
	}
	return out
}

// setMainLocked installs a new sorted main slice with its lead table and
// rebuilds the bucket table.
func (ix *Index) setMainLocked(m []packed, lead []uint32) {
	ix.main = m
	if len(m) == 0 {
		ix.buckets, ix.lead = nil, nil
		return
	}
	ix.lead = lead
	bits := bucketBits(len(m))
	if len(ix.buckets) != 1<<bits+1 {
		ix.buckets = make([]uint32, 1<<bits+1)
	}
	ix.shift = uint8(32 - bits)
	// The buckets of first byte b are b's 2^sub sub-buckets, keyed by the
	// next sub bits, which are the top bits of the stored ID bytes.
	sub := bits - 8
	for b := range 256 {
		j, end := int(lead[b]), int(lead[b+1])
		base := b << sub
		for q := range 1 << sub {
			for j < end && int(uint32(m[j].id[0])<<16|uint32(m[j].id[1])<<8|uint32(m[j].id[2]))>>(24-sub) < q {
				j++
			}
			ix.buckets[base+q] = uint32(j)
		}
	}
	ix.buckets[1<<bits] = uint32(len(m))
}

// bucketBits returns the size of the bucket table for n entries: about
// entriesPerBucket entries per bucket, within [minBucketBits, maxBucketBits].
func bucketBits(n int) int {
	bits := minBucketBits
	for bits < maxBucketBits && n>>bits > entriesPerBucket {
		bits++
	}
	return bits
}

// view is main, its lead table and the pack table at one moment: they
// stay valid and unchanged however the index is modified afterwards.
type view struct {
	main  []packed
	lead  []uint32
	packs []chunk.ID
}

// snapshot merges the tail and returns a view of the index.
func (ix *Index) snapshot() view {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.mergeLocked()
	return view{ix.main, ix.lead, ix.packs}
}

// Each calls fn for every entry in order of (ID, type), entries with equal
// ID and type in the order they were added, until fn returns false. It
// iterates over a snapshot taken when it is called, without holding the
// lock, so fn may call any method of ix; changes made meanwhile are not seen.
func (ix *Index) Each(fn func(Location) bool) {
	v := ix.snapshot()
	if len(v.main) == 0 {
		return
	}
	for b := range 256 {
		for i := v.lead[b]; i < v.lead[b+1]; i++ {
			e := &v.main[i]
			id := e.fullID(byte(b))
			if !fn(Location{Pack: v.packs[e.packNum()], Blob: e.blob(&id)}) {
				return
			}
		}
	}
}

// groupByPack is a counting sort of the positions of m's entries by pack
// number: the entries of pack p are m[byPack[start[p]:start[p+1]]]. It
// costs 4 bytes per entry and per pack.
func groupByPack(m []packed, packs int) (start, byPack []uint32) {
	start = make([]uint32, packs+1)
	for i := range m {
		start[m[i].packNum()+1]++
	}
	for p := 1; p < len(start); p++ {
		start[p] += start[p-1]
	}
	byPack = make([]uint32, len(m))
	next := slices.Clone(start[:packs])
	for i := range m {
		p := m[i].packNum()
		byPack[next[p]] = uint32(i)
		next[p]++
	}
	return start, byPack
}

// blobsAt returns the blobs at positions of v.main, ordered by offset.
func (v *view) blobsAt(positions []uint32) []pack.Blob {
	blobs := make([]pack.Blob, len(positions))
	for i, pos := range positions {
		id := v.main[pos].fullID(firstByte(v.lead, int(pos)))
		blobs[i] = v.main[pos].blob(&id)
	}
	sortBlobs(blobs)
	return blobs
}

// ByPack is a view of the index grouped by pack, for jobs that visit every
// pack (check, copy). PackBlobs scans the whole index for one pack, so
// asking it for each of P packs costs P×B entry visits: at 1 M blobs in
// 30,000 packs, 3·10^10, hours. ByPack costs one pass and 4 bytes per
// blob and per pack; its Blobs is then a binary search and the pack's own
// entries.
type ByPack struct {
	v      view
	start  []uint32
	byPack []uint32
	nums   []uint32 // pack numbers ordered by pack ID
}

// ByPack merges the tail and groups the index's entries by pack. The
// result describes the index as it is now; changes made afterwards are not
// seen.
func (ix *Index) ByPack() *ByPack {
	v := ix.snapshot()
	start, byPack := groupByPack(v.main, len(v.packs))
	return &ByPack{v: v, start: start, byPack: byPack, nums: sortedPackNums(v.packs)}
}

// Blobs returns the blobs the index held for pack packID, ordered by
// offset, or nil: what PackBlobs returns, without the scan.
func (bp *ByPack) Blobs(packID chunk.ID) []pack.Blob {
	i, ok := slices.BinarySearchFunc(bp.nums, packID, func(n uint32, id chunk.ID) int {
		return bp.v.packs[n].Compare(id)
	})
	if !ok {
		return nil
	}
	p := bp.nums[i]
	positions := bp.byPack[bp.start[p]:bp.start[p+1]]
	if len(positions) == 0 {
		return nil
	}
	return bp.v.blobsAt(positions)
}

// PackBlobs returns the blobs the index holds for pack packID, ordered by
// offset, or nil. It scans the whole index: a job that asks for every pack
// uses ByPack.
func (ix *Index) PackBlobs(packID chunk.ID) []pack.Blob {
	ix.mu.RLock()
	num, ok := ix.lookupPackLocked(packID)
	var blobs []pack.Blob
	if ok {
		if len(ix.main) > 0 {
			for b := range 256 {
				for i := ix.lead[b]; i < ix.lead[b+1]; i++ {
					if e := &ix.main[i]; e.packNum() == num {
						id := e.fullID(byte(b))
						blobs = append(blobs, e.blob(&id))
					}
				}
			}
		}
		for i := range ix.tail {
			if ix.tail[i].pack == num {
				blobs = append(blobs, ix.tail[i].blob())
			}
		}
	}
	ix.mu.RUnlock()
	sortBlobs(blobs)
	return blobs
}

// sortBlobs orders blobs by offset, then type and ID, for a deterministic
// result.
func sortBlobs(blobs []pack.Blob) {
	slices.SortFunc(blobs, func(a, b pack.Blob) int {
		if c := cmp.Compare(a.Offset, b.Offset); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		if c := a.ID.Compare(b.ID); c != 0 {
			return c
		}
		return cmp.Compare(a.Length, b.Length)
	})
}

// RemovePacks removes every entry stored in one of the packs in set, and
// forgets those packs, also from the pending set. It rebuilds the index:
// O(n).
func (ix *Index) RemovePacks(set map[chunk.ID]struct{}) {
	if len(set) == 0 {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	hit := false
	for id := range set {
		if _, ok := ix.lookupPackLocked(id); ok {
			hit = true
			break
		}
	}
	if hit {
		ix.mergeLocked()
		const gone = ^uint32(0)
		renum := make([]uint32, len(ix.packs))
		packs := make([]chunk.ID, 0, len(ix.packs))
		ix.indexPacksLocked()
		for old, id := range ix.packs {
			if _, ok := set[id]; ok {
				renum[old] = gone
				continue
			}
			renum[old] = uint32(len(packs))
			packs = append(packs, id)
		}
		n := 0
		for i := range ix.main {
			if renum[ix.main[i].packNum()] != gone {
				n++
			}
		}
		m := make([]packed, 0, n)
		var count [256]int
		if len(ix.main) > 0 {
			for b := range 256 {
				for _, e := range ix.main[ix.lead[b]:ix.lead[b+1]] {
					if num := renum[e.packNum()]; num != gone {
						e.setPackNum(num)
						m = append(m, e)
						count[b]++
					}
				}
			}
		}
		// Renumbering keeps the packs' order, so byID stays sorted.
		byID := ix.byID[:0:0]
		for _, num := range ix.byID {
			if renum[num] != gone {
				byID = append(byID, renum[num])
			}
		}
		ix.packs, ix.byID = packs, byID
		ix.setMainLocked(m, leadOf(&count))
	}
	ix.pending = slices.DeleteFunc(ix.pending, func(pb PackBlobs) bool {
		_, ok := set[pb.Pack]
		return ok
	})
}

// Pending returns the blobs added by AddPack that have not been cleared by
// ClearPending, grouped by pack in the order they were added, as a File
// ready to be encoded. It returns a File without packs if nothing is pending.
// The result does not alias the index.
func (ix *Index) Pending() *File {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	f := &File{Packs: make([]PackBlobs, len(ix.pending))}
	for i, pb := range ix.pending {
		f.Packs[i] = PackBlobs{Pack: pb.Pack, Blobs: slices.Clone(pb.Blobs)}
	}
	return f
}

// ClearPending removes from the pending set the blobs listed in f, typically
// a File returned by Pending once it has been stored. Blobs added after
// Pending was called are not in f and stay pending.
func (ix *Index) ClearPending(f *File) {
	written := make(map[chunk.ID][][]pack.Blob, len(f.Packs))
	for _, pb := range f.Packs {
		written[pb.Pack] = append(written[pb.Pack], pb.Blobs)
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	out := ix.pending[:0]
	for _, pb := range ix.pending {
		lists := written[pb.Pack]
		if len(lists) == 1 && slices.Equal(lists[0], pb.Blobs) {
			continue // the usual case: f lists this pack as Pending did
		}
		blobs := pb.Blobs
		if len(lists) > 0 {
			done := make(map[pack.Blob]struct{})
			for _, l := range lists {
				for _, b := range l {
					done[b] = struct{}{}
				}
			}
			blobs = slices.DeleteFunc(slices.Clone(blobs), func(b pack.Blob) bool {
				_, ok := done[b]
				return ok
			})
		}
		if len(blobs) > 0 {
			out = append(out, PackBlobs{Pack: pb.Pack, Blobs: blobs})
		}
	}
	clear(ix.pending[len(out):])
	ix.pending = out
}

// Files returns the whole index as index files of at most maxBlobsPerFile
// blobs each (no limit if maxBlobsPerFile <= 0), for writing it out anew or
// compacting. Packs are sorted by ID and blobs within a pack by offset; a
// pack's blobs are split over files only if it alone has more than
// maxBlobsPerFile blobs (see File.Split). Loading the result with AddFile
// into a new Index gives the same entries. An empty index yields one empty
// file. Supersedes is left empty for the caller to fill in.
func (ix *Index) Files(maxBlobsPerFile int) []*File {
	var out []*File
	_ = ix.EachFile(maxBlobsPerFile, nil, func(f *File) error {
		out = append(out, f)
		return nil
	})
	return out
}

// EachFile is Files one file at a time, leaving out the packs for which
// skip (if not nil) returns true: fn receives each file as soon as it is
// complete, and the index is not copied. Beyond the index it holds 4 bytes
// per entry and one file's blobs, where Files holds a copy of every entry:
// prune rewrites the index of a large repository so, in about half the
// memory. An error from fn stops the iteration and is returned.
func (ix *Index) EachFile(maxBlobsPerFile int, skip func(chunk.ID) bool, fn func(*File) error) error {
	if maxBlobsPerFile <= 0 {
		maxBlobsPerFile = int(^uint(0) >> 1)
	}
	v := ix.snapshot()
	m, packs := v.main, v.packs
	start, byPack := groupByPack(m, len(packs))
	order := make([]int, len(packs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return packs[a].Compare(packs[b]) })
	cur, n, emitted := &File{}, 0, false
	emit := func() error {
		f := cur
		cur, n, emitted = &File{}, 0, true
		return fn(f)
	}
	for _, p := range order {
		if skip != nil && skip(packs[p]) {
			continue
		}
		positions := byPack[start[p]:start[p+1]]
		if len(positions) == 0 {
			continue
		}
		blobs := v.blobsAt(positions)
		if n > 0 && n+len(blobs) > maxBlobsPerFile {
			if err := emit(); err != nil {
				return err
			}
		}
		for {
			take := min(len(blobs), maxBlobsPerFile-n)
			cur.Packs = append(cur.Packs, PackBlobs{Pack: packs[p], Blobs: blobs[:take:take]})
			n += take
			blobs = blobs[take:]
			if len(blobs) == 0 {
				break
			}
			if err := emit(); err != nil {
				return err
			}
		}
	}
	if n > 0 || !emitted {
		return fn(cur)
	}
	return nil
}

// MemoryBytes returns an estimate of the heap memory the index uses.
func (ix *Index) MemoryBytes() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	n := int(unsafe.Sizeof(*ix))
	n += cap(ix.main)*packedSize + cap(ix.lead)*4
	n += cap(ix.buckets) * 4
	n += cap(ix.tail)*entrySize + cap(ix.tailNext)*4
	n += len(ix.tailFirst) * tailMapEntryBytes
	n += cap(ix.packs)*chunk.IDSize + cap(ix.byID)*4 + len(ix.newPacks)*packMapEntryBytes
	for _, pb := range ix.pending {
		n += int(unsafe.Sizeof(pb)) + cap(pb.Blobs)*int(unsafe.Sizeof(pack.Blob{}))
	}
	return n
}

// Ordinal returns the position, in the order Each visits, of the first
// entry for (t, id), or -1. Positions stay valid until the index changes.
// They let a caller keep a set of blobs as a bitmap over the index (one bit
// per entry) instead of a map of IDs (prune marks live blobs so: about 1/400
// of the index's own memory).
func (ix *Index) Ordinal(t pack.BlobType, id chunk.ID) int {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.mergeLocked()
	return ix.searchMain(t, &id)
}
