package index

import (
	"cmp"
	"fmt"
	"slices"
	"sync"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/pack"
)

// Loader builds an index from a repository's index files holding about one
// copy of the entries: each file is decoded straight into one growing array
// of packed entries (no File, no per-file slices) plus their first ID
// bytes, which is then sorted in place and becomes the index's main array.
// Loading through Decode and AddFiles holds every decoded File (48 bytes a
// blob), the unsorted run (52), sort keys (2 × 16) and the merged array
// (46) at once: its heap peaked at 3.5 × the final index. With a Loader
// sized from the files' lengths the peak is the array (46 + 1 bytes a
// blob) plus the files being decoded (measured in TestLoaderMemory).
//
// Add may be called from several goroutines (a file is decoded under the
// Loader's lock; reading and decrypting, the slow part, happen outside).
// AddTo is called once, after every Add has returned.
type Loader struct {
	mu      sync.Mutex
	entries []packed
	// first holds the first ID byte of each entry, which packed does not
	// store, until AddTo has sorted the entries (1 byte an entry, freed
	// then).
	first   []byte
	files   []loadedFile // in the order added, so by position in entries
	packs   []chunk.ID
	packNum map[chunk.ID]uint32
	// packLimit is the most packs the loader numbers: MaxPacks, lowered by
	// tests.
	packLimit int
}

// loadedFile is where one added file's entries are.
type loadedFile struct {
	seq        int
	start, end int
}

// NewLoader returns a Loader for files of about plainBytes bytes in all
// (0 if unknown): the entry array is allocated once for the most blobs
// they can hold, so it is not copied while growing. A wrong hint costs
// memory, never correctness.
func NewLoader(plainBytes int64) *Loader {
	l := &Loader{packNum: make(map[chunk.ID]uint32), packLimit: MaxPacks}
	if n := plainBytes / int64(v1BlobSize); n > 0 {
		l.entries = make([]packed, 0, n)
		l.first = make([]byte, 0, n)
	}
	return l
}

// Add decodes the plaintext of one index file into the loader, applying
// every check Decode applies; seq orders the file among the others (see
// AddTo). It returns the IDs of the files this one supersedes. On an error
// (wrapping ErrCorrupt or ErrUnknownVersion, or ErrLimit for a blob or a
// pack the in-memory index cannot hold) nothing of the file is kept.
func (l *Loader) Add(seq int, data []byte) ([]chunk.ID, error) {
	if err := checkHeader(data); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	start := len(l.entries)
	var num uint32
	var limitErr error
	sup, err := walkV1(data, func(id chunk.ID, nBlobs, _ int) {
		if nBlobs == 0 || limitErr != nil {
			return // a pack without blobs gets no number: every numbered pack has entries
		}
		var ok bool
		if num, ok = l.packNum[id]; !ok {
			if len(l.packs) >= l.packLimit {
				limitErr = fmt.Errorf("pack %s: %w", id.Short(), errTooManyPacks(l.packLimit))
				return
			}
			num = uint32(len(l.packs))
			l.packs = append(l.packs, id)
			l.packNum[id] = num
		}
	}, func(b *pack.Blob) {
		if limitErr != nil {
			return
		}
		if limitErr = checkEntryBlob(b); limitErr != nil {
			return
		}
		l.entries = append(l.entries, packBlob(num, b))
		l.first = append(l.first, b.ID[0])
	})
	if err == nil {
		err = limitErr
	}
	if err != nil {
		// Packs this file numbered may now have no entry; AddTo drops them.
		l.entries, l.first = l.entries[:start], l.first[:start]
		return nil, err
	}
	l.files = append(l.files, loadedFile{seq: seq, start: start, end: len(l.entries)})
	return sup, nil
}

// AddTo adds the entries of every added file for which drop (if not nil)
// returns false to ix, and empties the loader. Entries with the same type
// and ID are ordered by their pack's first appearance, files taken in
// order of seq; so Lookup returns the copy in the pack met first. If ix is
// empty, the loader's array becomes ix's main array without a copy. An
// error (wrapping ErrLimit: ix and the loader together hold more than
// MaxPacks packs) leaves ix unchanged.
func (l *Loader) AddTo(ix *Index, drop func(seq int) bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.compact(drop)
	l.renumber()
	m, first, packs := l.entries, l.first, l.packs
	l.entries, l.first, l.files, l.packs, l.packNum = nil, nil, nil, nil, nil
	// Once sorted, the lead table replaces first (no longer referenced).
	count := sortEntries(m, first)
	m = dedupSorted(m, &count)
	if len(m) <= cap(m)/2 {
		// The size hint was far off (superseded files, or a lying store):
		// give the slack back.
		m = slices.Clone(m)
	}
	lead := leadOf(&count)

	ix.mu.Lock()
	defer ix.mu.Unlock()
	if len(ix.main) == 0 && len(ix.tail) == 0 && len(ix.packs) == 0 {
		if len(packs) > ix.packLimit {
			return errTooManyPacks(ix.packLimit)
		}
		if cap(packs)-len(packs) > len(packs)/8 {
			packs = slices.Clone(packs) // packs of superseded files dropped
		}
		ix.packs = packs
		ix.byID = sortedPackNums(packs)
		ix.setMainLocked(m, lead)
		return nil
	}
	// Not the usual case (LoadIndex fills an empty index): renumber into
	// ix's pack table and merge as AddFiles does.
	fresh := 0
	for _, id := range packs {
		if _, ok := ix.lookupPackLocked(id); !ok {
			fresh++
		}
	}
	if len(ix.packs)+fresh > ix.packLimit {
		return errTooManyPacks(ix.packLimit)
	}
	run := make([]entry, len(ix.tail), len(ix.tail)+len(m))
	copy(run, ix.tail)
	renum := make([]uint32, len(packs))
	for i, id := range packs {
		renum[i] = ix.packNumLocked(id)
	}
	for b := range 256 {
		for i := lead[b]; i < lead[b+1]; i++ {
			e := m[i].unpack(byte(b))
			e.pack = renum[e.pack]
			run = append(run, e)
		}
	}
	ix.resetTailLocked()
	ix.mergeRunLocked(run)
	return nil
}

// compact moves the entries of the files drop keeps together, in place, and
// orders l.files by seq.
func (l *Loader) compact(drop func(int) bool) {
	n := 0
	kept := l.files[:0]
	for _, f := range l.files {
		if drop != nil && drop(f.seq) {
			continue
		}
		k := copy(l.entries[n:], l.entries[f.start:f.end])
		copy(l.first[n:], l.first[f.start:f.end])
		kept = append(kept, loadedFile{seq: f.seq, start: n, end: n + k})
		n += k
	}
	l.entries, l.first = l.entries[:n], l.first[:n]
	l.files = kept
	slices.SortFunc(l.files, func(a, b loadedFile) int { return cmp.Compare(a.seq, b.seq) })
}

// renumber gives the packs that still have entries new numbers in order of
// first appearance, files taken by seq, so ties between copies of a blob
// are broken the same way whatever order the files were added in.
func (l *Loader) renumber() {
	const none = ^uint32(0)
	renum := make([]uint32, len(l.packs))
	for i := range renum {
		renum[i] = none
	}
	packs := make([]chunk.ID, 0, len(l.packs))
	for _, f := range l.files {
		part := l.entries[f.start:f.end]
		for i := range part {
			p := &renum[part[i].packNum()]
			if *p == none {
				*p = uint32(len(packs))
				packs = append(packs, l.packs[part[i].packNum()])
			}
			part[i].setPackNum(*p)
		}
	}
	l.packs = packs
}

// sortEntries sorts m in place, first byte by first[i] (the first ID byte
// of m[i], permuted along), then by compareFull, and returns how many
// entries start with each byte. IDs are uniformly spread keyed hashes, so
// in-place counting passes on the leading ID bits (American flag sort), 8
// bits at a time, leave parts of a few entries each, which sort fast. 8
// bits a pass, not 16 in one: a pass swaps entries into 256 parts whose
// next free slots stay in the CPU cache, where 65536 parts made every swap
// a cache miss (2.5 s for 5M entries, against 1.1 s for the whole load
// now).
func sortEntries(m []packed, first []byte) (count [256]int) {
	for _, b := range first {
		count[b]++
	}
	var start, next [257]int
	for b := range 256 {
		start[b+1] = start[b] + count[b]
	}
	copy(next[:], start[:256])
	for p := range 256 {
		end := start[p+1]
		for next[p] < end {
			d := int(first[next[p]])
			if d == p {
				next[p]++
				continue
			}
			// m[next[p]] belongs in part d: swap it into d's next free slot.
			m[next[p]], m[next[d]] = m[next[d]], m[next[p]]
			first[next[p]], first[next[d]] = first[next[d]], first[next[p]]
			next[d]++
		}
	}
	for p := range 256 {
		if part := m[start[p]:start[p+1]]; len(part) > 1 {
			flagSort(part, 64-8)
		}
	}
	return count
}

// flagSortMin is the part size below which flagSort leaves the rest to a
// comparison sort.
const flagSortMin = 256

// flagSort sorts m, entries with one first ID byte, by compareFull: a
// counting pass on bits shift..shift+7 of the stored ID bytes 1-8, then
// each part.
func flagSort(m []packed, shift uint) {
	if len(m) < flagSortMin || shift > 64 {
		slices.SortFunc(m, func(a, b packed) int { return compareFull(&a, &b) })
		return
	}
	var start, next [257]int
	for i := range m {
		start[phi8(&m[i])>>shift&0xff+1]++
	}
	for p := 1; p < len(start); p++ {
		start[p] += start[p-1]
	}
	copy(next[:], start[:256])
	for p := range 256 {
		end := start[p+1]
		for next[p] < end {
			d := int(phi8(&m[next[p]]) >> shift & 0xff)
			if d == p {
				next[p]++
				continue
			}
			m[next[p]], m[next[d]] = m[next[d]], m[next[p]]
			next[d]++
		}
	}
	for p := range 256 {
		if part := m[start[p]:start[p+1]]; len(part) > 1 {
			// Past the first 64 bits (never, for distinct random IDs) the
			// comparison sort takes over.
			flagSort(part, shift-8)
		}
	}
}

// dedupSorted removes, in place, entries identical to the one before them
// with the same first ID byte, count[b] being the number of entries that
// start with b (updated).
func dedupSorted(m []packed, count *[256]int) []packed {
	i, k := 0, 0
	for b := range 256 {
		end, startK := i+count[b], k
		for ; i < end; i++ {
			if k > startK && m[i] == m[k-1] {
				continue
			}
			m[k] = m[i]
			k++
		}
		count[b] = k - startK
	}
	return m[:k]
}
