//go:build linux

package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// genVersion names the generator's output. Bump it whenever a change to the
// generator changes a single byte of the data, so stale data is regenerated.
const genVersion = 1

// dataParams determine the generated data completely.
type dataParams struct {
	Version int    `json:"generator_version"`
	Seed    uint64 `json:"seed"`
	DumpMiB int    `json:"dump_mib"`
	TreeMiB int    `json:"tree_mib"`
}

// treeStats summarises the generated tree pair.
type treeStats struct {
	Dirs          int               `json:"dirs"`
	V1Files       int               `json:"v1_files"`
	V1Bytes       int64             `json:"v1_bytes"`
	V1BinaryBytes int64             `json:"v1_binary_bytes"`
	V2Files       int               `json:"v2_files"`
	V2Bytes       int64             `json:"v2_bytes"`
	Mutation      treeMutationStats `json:"mutation"`
}

// fileSum is one file of a manifest.
type fileSum struct {
	Rel  string `json:"rel"`
	Size int64  `json:"size"`
	SHA  string `json:"sha256"`
}

// stamp is written after the data is complete; its presence with matching
// params means the data on disk can be reused.
type stamp struct {
	Params     dataParams `json:"params"`
	Dump       dumpStats  `json:"dump"`
	Tree       treeStats  `json:"tree"`
	TreeV1     []fileSum  `json:"tree_v1_manifest"`
	TreeV2     []fileSum  `json:"tree_v2_manifest"`
	GenSeconds float64    `json:"generation_seconds"`
}

// layout names the paths under the work dir.
type layout struct{ root string }

func (l layout) stampPath() string { return filepath.Join(l.root, "data-stamp.json") }
func (l layout) dumpV1() string    { return filepath.Join(l.root, "dump", "v1", "app.sql") }
func (l layout) dumpV2() string    { return filepath.Join(l.root, "dump", "v2", "app.sql") }
func (l layout) dumpLive() string  { return filepath.Join(l.root, "dump", "live", "app.sql") }
func (l layout) treeV1() string    { return filepath.Join(l.root, "tree", "v1") }
func (l layout) treeV2() string    { return filepath.Join(l.root, "tree", "v2") }
func (l layout) treeLive() string  { return filepath.Join(l.root, "tree", "live") }
func (l layout) repo(tool, ds string) string {
	return filepath.Join(l.root, "repos", tool+"-"+ds)
}
func (l layout) cache(tool, ds string) string {
	return filepath.Join(l.root, "cache", tool+"-"+ds)
}
func (l layout) trash() string { return filepath.Join(l.root, "trash") }
func (l layout) restore(tool, ds string) string {
	return filepath.Join(l.root, "restore", tool+"-"+ds)
}

// prepareData returns the stamp of data matching p, generating the data
// unless a previous run left a complete copy.
func prepareData(l layout, p dataParams, logf func(string, ...any)) (st *stamp, reused bool, err error) {
	if old, err := loadStamp(l); err == nil && old.Params == p {
		err := checkData(l, old)
		if err == nil {
			logf("data: reusing %s (generator v%d, seed %d, dump %d MiB, tree %d MiB)", l.root, p.Version, p.Seed, p.DumpMiB, p.TreeMiB)
			return old, true, nil
		}
		logf("data: stamp matches but data is damaged (%v); regenerating", err)
	}
	logf("data: generating into %s (dump %d MiB, tree %d MiB, seed %d)...", l.root, p.DumpMiB, p.TreeMiB, p.Seed)
	start := time.Now()
	// Remove the stamp first: an interrupted generation must not be reused.
	for _, p := range []string{l.stampPath(), filepath.Join(l.root, "dump"), filepath.Join(l.root, "tree")} {
		if err := os.RemoveAll(p); err != nil {
			return nil, false, err
		}
	}
	if st, err = generateData(l, p); err != nil {
		return nil, false, err
	}
	st.GenSeconds = time.Since(start).Seconds()
	b, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		return nil, false, err
	}
	if err := writeFileAtomic(l.stampPath(), b); err != nil {
		return nil, false, err
	}
	logf("data: generated in %.1f s", st.GenSeconds)
	return st, false, nil
}

func generateData(l layout, p dataParams) (*stamp, error) {
	st := &stamp{Params: p}
	var err error
	st.Dump, err = generateDump(l.dumpV1(), l.dumpV2(), p.Seed, int64(p.DumpMiB)<<20)
	if err != nil {
		return nil, fmt.Errorf("generate dump: %w", err)
	}
	dirs, files, ops, mst := treePlan(p)
	if err := generateTree(l.treeV1(), files); err != nil {
		return nil, fmt.Errorf("generate tree v1: %w", err)
	}
	if err := copyTree(l.treeV1(), l.treeV2()); err != nil {
		return nil, fmt.Errorf("copy tree v1 to v2: %w", err)
	}
	if err := applyTreeMutation(l.treeV2(), ops); err != nil {
		return nil, fmt.Errorf("generate tree v2: %w", err)
	}
	if st.TreeV1, err = manifest(l.treeV1()); err != nil {
		return nil, err
	}
	if st.TreeV2, err = manifest(l.treeV2()); err != nil {
		return nil, err
	}
	st.Tree = treeStats{Dirs: len(dirs), V1Files: len(st.TreeV1), V2Files: len(st.TreeV2), Mutation: mst}
	for _, f := range files {
		if f.binary {
			st.Tree.V1BinaryBytes += f.size
		}
	}
	st.Tree.V1Bytes, st.Tree.V2Bytes = manifestBytes(st.TreeV1), manifestBytes(st.TreeV2)
	return st, nil
}

// treePlan recomputes the tree layout and its mutation from the params; both
// are pure functions, so the bench applies exactly the ops that made v2.
func treePlan(p dataParams) ([]string, []treeEntry, []treeOp, treeMutationStats) {
	dirs, files := planTree(p.Seed, int64(p.TreeMiB)<<20)
	ops, st := planTreeMutation(p.Seed, dirs, files)
	return dirs, files, ops, st
}

func loadStamp(l layout) (*stamp, error) {
	b, err := os.ReadFile(l.stampPath())
	if err != nil {
		return nil, err
	}
	var st stamp
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", l.stampPath(), err)
	}
	return &st, nil
}

// checkData is a cheap check (existence and sizes, no hashing) that the
// stamped data is still on disk.
func checkData(l layout, st *stamp) error {
	for _, c := range []struct {
		path string
		size int64
	}{{l.dumpV1(), st.Dump.V1Bytes}, {l.dumpV2(), st.Dump.V2Bytes}} {
		if err := checkSize(c.path, c.size); err != nil {
			return err
		}
	}
	for _, m := range []struct {
		root  string
		files []fileSum
	}{{l.treeV1(), st.TreeV1}, {l.treeV2(), st.TreeV2}} {
		for _, f := range m.files {
			if err := checkSize(filepath.Join(m.root, filepath.FromSlash(f.Rel)), f.Size); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkSize(path string, size int64) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() != size {
		return fmt.Errorf("%s: size %d, want %d", path, fi.Size(), size)
	}
	return nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// hashFile returns the hex SHA-256 and size of a file.
func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// manifest hashes every file under root, sorted by path. Entries that are
// neither regular files nor directories are listed with their type instead of
// a hash, so a comparison catches them too.
func manifest(root string) ([]fileSum, error) {
	var out []fileSum
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !d.Type().IsRegular() {
			out = append(out, fileSum{Rel: rel, SHA: "not a regular file: " + d.Type().String()})
			return nil
		}
		sum, n, err := hashFile(p)
		if err != nil {
			return err
		}
		out = append(out, fileSum{Rel: rel, Size: n, SHA: sum})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hash tree %s: %w", root, err)
	}
	slices.SortFunc(out, func(a, b fileSum) int { return strings.Compare(a.Rel, b.Rel) })
	return out, nil
}

func manifestBytes(m []fileSum) int64 {
	var n int64
	for _, f := range m {
		n += f.Size
	}
	return n
}

// compareManifests returns nil if got equals want, else an error listing the
// first few differences.
func compareManifests(want, got []fileSum) error {
	wm := make(map[string]fileSum, len(want))
	for _, f := range want {
		wm[f.Rel] = f
	}
	var diffs []string
	missing, extra, changed := 0, 0, 0
	note := func(s string) {
		if len(diffs) < 8 {
			diffs = append(diffs, s)
		}
	}
	for _, g := range got {
		w, ok := wm[g.Rel]
		switch {
		case !ok:
			extra++
			note("unexpected file " + g.Rel)
		case w != g:
			changed++
			note(fmt.Sprintf("%s: got %d bytes sha256 %.12s, want %d bytes sha256 %.12s", g.Rel, g.Size, g.SHA, w.Size, w.SHA))
		}
		delete(wm, g.Rel)
	}
	for rel := range wm {
		missing++
		note("missing file " + rel)
	}
	if missing+extra+changed == 0 {
		return nil
	}
	return fmt.Errorf("%d missing, %d unexpected, %d different files; e.g.\n    %s",
		missing, extra, changed, strings.Join(diffs, "\n    "))
}

// copyFile copies src to dst (truncating dst in place if it exists, as a
// program rewriting its output file does). keepMtime copies src's mtime.
func copyFile(src, dst string, keepMtime bool) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in) // copy_file_range on Linux
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if !keepMtime {
		return nil
	}
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	return os.Chtimes(dst, fi.ModTime(), fi.ModTime())
}

// copyTree copies the regular files and directories under src to dst,
// keeping file mtimes.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			return copyFile(p, target, true)
		}
		return fmt.Errorf("copy tree: %s is not a regular file", p)
	})
}

// dirSize is the total apparent size of the regular files under root (0 if
// root does not exist).
func dirSize(root string) (int64, error) {
	var n int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // e.g. a lock file removed while we walked
			}
			return err
		}
		n += fi.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", root, err)
	}
	return n, nil
}
