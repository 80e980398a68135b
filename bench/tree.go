//go:build linux

package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"time"
)

// Shape of the v1 tree (see README "Data"). Sizes are log-uniform within two
// ranges: most files are small sources and documents, a few are large assets
// that hold most of the bytes, as in real project trees.
const (
	treeSmallMin    = 1 << 10
	treeSmallMax    = 256 << 10
	treeLargeMax    = 20 << 20
	treeLargeFrac   = 0.01 // share of files drawn from [treeSmallMax, treeLargeMax)
	treeBinaryShare = 0.40 // share of bytes in incompressible (random) files
	treeFilesPerDir = 12
	treeMaxDepth    = 6
)

// Mutation model of tree v2, as shares of the v1 file count (at least one
// file each). Together about 2% of the files change.
const (
	treeRewriteFrac = 0.008 // rewritten with new content, size within ±20%
	treePatchFrac   = 0.005 // a 1-64 KiB region overwritten in place
	treeInsertFrac  = 0.003 // 1-64 KiB inserted in the middle (shifts the rest)
	treeAddFrac     = 0.003 // new files
	treeDeleteFrac  = 0.002 // deleted files
	treeEditMin     = 1 << 10
	treeEditMax     = 64 << 10
)

// Text flavours of generated files, by extension.
const (
	flavorProse = iota
	flavorCode
	flavorLog
	flavorCSV
	flavorJSON
)

var (
	textExts = []struct {
		ext    string
		flavor int
	}{{"md", flavorProse}, {"txt", flavorProse}, {"go", flavorCode}, {"py", flavorCode}, {"js", flavorCode}, {"c", flavorCode}, {"log", flavorLog}, {"csv", flavorCSV}, {"json", flavorJSON}}
	binaryExts = []string{"png", "jpg", "pdf", "zip", "bin", "gz"}
)

// v1 files get fixed modification times, so the tree's metadata is as
// deterministic as its content.
var treeEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// treeEntry is one file of the generated tree; its content is a function of
// (binary, flavor, seed, size) alone.
type treeEntry struct {
	rel    string
	size   int64
	binary bool
	flavor int
	seed   uint64
}

// planTree lays out the v1 tree: nested directories and files until target
// bytes are reached. Pure function of its arguments.
func planTree(seed uint64, target int64) (dirs []string, files []treeEntry) {
	r := rand.New(rand.NewPCG(seed, 0x74726565))
	t := newTextGen(r)
	// ~95 KiB is the mean file size of the distribution below.
	nDirs := max(3, int(target/(95<<10))/treeFilesPerDir)
	dirs = []string{"."}
	depth := map[string]int{".": 0}
	seen := map[string]bool{}
	unique := func(p string, i int) string {
		if seen[p] {
			p = fmt.Sprintf("%s_%d", p, i)
		}
		seen[p] = true
		return p
	}
	for i := 1; i < nDirs; i++ {
		parent := dirs[r.IntN(len(dirs))]
		for depth[parent] >= treeMaxDepth {
			parent = path.Dir(parent)
		}
		d := unique(path.Join(parent, string(t.ident(nil, '_'))), i)
		dirs = append(dirs, d)
		depth[d] = depth[parent] + 1
	}
	var total, binBytes int64
	for i := 0; total < target; i++ {
		size := sampleFileSize(r)
		size = min(size, max(target-total, treeSmallMin))
		// Pick the kind that keeps the share of random bytes closest to
		// treeBinaryShare; a coin flip would let a few large files skew it.
		after := float64(total + size)
		asBin := math.Abs(float64(binBytes+size)/after - treeBinaryShare)
		asText := math.Abs(float64(binBytes)/after - treeBinaryShare)
		e := treeEntry{size: size, seed: r.Uint64(), binary: asBin < asText}
		ext := ""
		if e.binary {
			ext = pick(r, binaryExts)
			binBytes += size
		} else {
			x := pick(r, textExts)
			ext, e.flavor = x.ext, x.flavor
		}
		name := string(t.ident(nil, '_')) + "." + ext
		e.rel = unique(path.Join(dirs[r.IntN(len(dirs))], name), i)
		files = append(files, e)
		total += size
	}
	return dirs, files
}

func sampleFileSize(r *rand.Rand) int64 {
	if r.Float64() < treeLargeFrac {
		return logUniform(r, treeSmallMax, treeLargeMax)
	}
	return logUniform(r, treeSmallMin, treeSmallMax)
}

// writeContent writes size bytes of the given kind, derived from seed.
func writeContent(w io.Writer, binaryData bool, flavor int, seed uint64, size int64) error {
	src := rand.NewPCG(seed, 0x636f6e74)
	buf := make([]byte, 0, 80<<10)
	var lg *lineGen
	if !binaryData {
		lg = &lineGen{t: newTextGen(rand.New(src)), flavor: flavor, ts: treeEpoch.Unix() - int64(seed%(365*24*3600))}
	}
	for left := size; left > 0; {
		buf = buf[:0]
		if binaryData {
			for len(buf) < 64<<10 {
				buf = binary.LittleEndian.AppendUint64(buf, src.Uint64())
			}
		} else {
			for len(buf) < 64<<10 {
				buf = lg.line(buf)
			}
		}
		n := min(int64(len(buf)), left)
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
		left -= n
	}
	return nil
}

// contentBytes returns writeContent's output as a slice (for small regions).
func contentBytes(binaryData bool, flavor int, seed uint64, size int64) []byte {
	var b sliceWriter
	_ = writeContent(&b, binaryData, flavor, seed, size) // sliceWriter never fails
	return b
}

type sliceWriter []byte

func (s *sliceWriter) Write(p []byte) (int, error) { *s = append(*s, p...); return len(p), nil }

// lineGen appends lines of one text flavour; it carries the little state a
// file has from line to line (indentation, log clock, CSV row number).
type lineGen struct {
	t      *textGen
	flavor int
	depth  int
	ts     int64
	row    int64
}

func (g *lineGen) line(b []byte) []byte {
	r, t := g.t.r, g.t
	switch g.flavor {
	case flavorProse:
		if r.IntN(6) == 0 {
			b = append(b, "## "...)
			b = appendTitle(b, t.word())
			b = append(b, ' ')
			b = t.words(b, 1+r.IntN(4))
			return append(b, "\n\n"...)
		}
		return append(t.paragraph(b), "\n\n"...)
	case flavorCode:
		return g.codeLine(b)
	case flavorLog:
		g.ts += 1 + r.Int64N(30)
		b = time.Unix(g.ts, int64(r.IntN(1000))*1e6).UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z ")
		b = append(b, pick(r, []string{"INFO ", "INFO ", "INFO ", "DEBUG", "WARN ", "ERROR"})...)
		b = append(b, " ["...)
		b = t.ident(b, '.')
		b = append(b, "] "...)
		b = t.sentence(b)
		b = append(b, " req="...)
		b = hexRand(b, r, 12)
		return append(b, '\n')
	case flavorCSV:
		g.row++
		return fmt.Appendf(b, "%d,%s,%d,%s,%.2f\n", g.row, t.ident(nil, '_'), r.IntN(100000), t.word(), r.Float64()*1000)
	default: // flavorJSON
		g.row++
		b = fmt.Appendf(b, `{"id": %d, "name": "%s", "tags": ["%s", "%s"], "note": "`, g.row, t.ident(nil, '-'), t.word(), t.word())
		return append(t.sentence(b), "\"}\n"...)
	}
}

func (g *lineGen) codeLine(b []byte) []byte {
	r, t := g.t.r, g.t
	indent := func(b []byte) []byte {
		for range g.depth {
			b = append(b, '\t')
		}
		return b
	}
	switch k := r.IntN(12); {
	case g.depth == 0:
		g.depth = 1
		b = append(b, "\nfunc "...)
		b = appendTitle(b, t.word())
		b = appendTitle(b, t.word())
		b = append(b, '(')
		b = t.ident(b, '_')
		b = append(b, " string, "...)
		b = t.ident(b, '_')
		return append(b, " int) error {\n"...)
	case k == 0:
		return append(indent(b), '\n')
	case k == 1:
		b = append(indent(b), "// "...)
		return append(t.sentence(b), '\n')
	case k == 2 && g.depth < 4:
		b = append(indent(b), "if "...)
		b = t.ident(b, '_')
		g.depth++
		return append(b, " != nil {\n"...)
	case k <= 4:
		g.depth--
		return append(indent(b), "}\n"...)
	case k == 5:
		b = append(indent(b), "return "...)
		b = t.ident(b, '_')
		return append(b, '\n')
	default:
		b = t.ident(indent(b), '_')
		b = append(b, " := "...)
		b = t.ident(b, '.')
		b = append(b, '(')
		b = t.ident(b, '_')
		return fmt.Appendf(b, ", %d)\n", r.IntN(4096))
	}
}

// writeTreeFile creates root/e.rel with e's content and its fixed mtime.
func writeTreeFile(root string, e treeEntry, mtime time.Time) error {
	p := filepath.Join(root, filepath.FromSlash(e.rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	err = writeContent(w, e.binary, e.flavor, e.seed, e.size)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && !mtime.IsZero() {
		err = os.Chtimes(p, mtime, mtime)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// generateTree writes the v1 tree under root.
func generateTree(root string, files []treeEntry) error {
	for i, e := range files {
		if err := writeTreeFile(root, e, treeEpoch.Add(time.Duration(i)*97*time.Second)); err != nil {
			return err
		}
	}
	return nil
}

// treeOp is one change from tree v1 to v2.
type treeOp struct {
	kind   string // rewrite, patch, insert, add, delete
	entry  treeEntry
	off, n int64 // region of patch and insert
}

// treeMutationStats counts the v2 changes.
type treeMutationStats struct {
	Rewritten    int   `json:"files_rewritten"`
	Patched      int   `json:"files_patched_in_place"`
	Inserted     int   `json:"files_with_insertion"`
	Added        int   `json:"files_added"`
	Deleted      int   `json:"files_deleted"`
	BytesTouched int64 `json:"bytes_of_touched_files_v2"`
}

// planTreeMutation picks the v2 changes. Pure function of its arguments.
func planTreeMutation(seed uint64, dirs []string, files []treeEntry) ([]treeOp, treeMutationStats) {
	r := rand.New(rand.NewPCG(seed, 0x6d757461))
	count := func(frac float64) int { return max(1, int(frac*float64(len(files))+0.5)) }
	order := r.Perm(len(files))
	take := func(n int) []int {
		n = min(n, len(order))
		s := order[:n]
		order = order[n:]
		return s
	}
	var ops []treeOp
	var st treeMutationStats
	for _, i := range take(count(treeRewriteFrac)) {
		e := files[i]
		e.seed = r.Uint64()
		e.size = max(treeSmallMin, int64(float64(e.size)*(0.8+0.4*r.Float64())))
		ops = append(ops, treeOp{kind: "rewrite", entry: e})
		st.Rewritten++
		st.BytesTouched += e.size
	}
	for _, kind := range []string{"patch", "insert"} {
		frac := treePatchFrac
		if kind == "insert" {
			frac = treeInsertFrac
		}
		for _, i := range take(count(frac)) {
			e := files[i]
			n := min(logUniform(r, treeEditMin, treeEditMax), e.size)
			off := r.Int64N(e.size - n + 1)
			e.seed = r.Uint64()
			ops = append(ops, treeOp{kind: kind, entry: e, off: off, n: n})
			if kind == "patch" {
				st.Patched++
				st.BytesTouched += e.size
			} else {
				st.Inserted++
				st.BytesTouched += e.size + n
			}
		}
	}
	for _, i := range take(count(treeDeleteFrac)) {
		ops = append(ops, treeOp{kind: "delete", entry: files[i]})
		st.Deleted++
	}
	t := newTextGen(r)
	for i := range count(treeAddFrac) {
		e := treeEntry{size: sampleFileSize(r), seed: r.Uint64(), binary: r.Float64() < treeBinaryShare}
		ext := ""
		if e.binary {
			ext = pick(r, binaryExts)
		} else {
			x := pick(r, textExts)
			ext, e.flavor = x.ext, x.flavor
		}
		// The "_new<i>" suffix keeps added names distinct from v1's.
		e.rel = path.Join(dirs[r.IntN(len(dirs))], fmt.Sprintf("%s_new%d.%s", t.ident(nil, '_'), i, ext))
		ops = append(ops, treeOp{kind: "add", entry: e})
		st.Added++
		st.BytesTouched += e.size
	}
	return ops, st
}

// applyTreeMutation turns a v1 tree at root into v2, in place, the way an
// application would: unchanged files are not touched at all.
func applyTreeMutation(root string, ops []treeOp) error {
	for _, op := range ops {
		if err := applyTreeOp(root, op); err != nil {
			return fmt.Errorf("mutate %s (%s): %w", op.entry.rel, op.kind, err)
		}
	}
	return nil
}

func applyTreeOp(root string, op treeOp) error {
	e := op.entry
	p := filepath.Join(root, filepath.FromSlash(e.rel))
	switch op.kind {
	case "rewrite", "add":
		return writeTreeFile(root, e, time.Time{})
	case "delete":
		return os.Remove(p)
	case "patch":
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = f.WriteAt(contentBytes(e.binary, e.flavor, e.seed, op.n), op.off)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	case "insert":
		old, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b := make([]byte, 0, len(old)+int(op.n))
		b = append(b, old[:op.off]...)
		b = append(b, contentBytes(e.binary, e.flavor, e.seed, op.n)...)
		b = append(b, old[op.off:]...)
		return os.WriteFile(p, b, 0o644) // truncates: same inode, as an editor saving in place
	}
	return fmt.Errorf("unknown op %q", op.kind)
}
