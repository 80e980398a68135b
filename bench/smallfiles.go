//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

// The smallfiles data set: many small files (a mail spool, a source
// checkout, a cache of thumbnails), where per-file costs dominate. It is
// backed up twice without any change in between: the second backup is the
// figure that matters (a nightly backup of a tree that barely changes),
// then restored and checked, with cp -a of the same tree as the reference.

// smallGenVersion names the generator below; bump it when one byte of its
// output changes.
const smallGenVersion = 1

// Sizes are log-uniform in [smallMin, smallMax): mean (max-min)/ln(max/min)
// = 3.8 KiB. A tenth of the files are random (incompressible), the rest
// text of the tree's five flavours.
const (
	smallMin        = 256
	smallMax        = 16 << 10
	smallBinaryFrac = 0.10
	smallDirsPerTop = 50 // dirs per top-level group: g000/d00000/
)

type smallParams struct {
	Version int    `json:"generator_version"`
	Seed    uint64 `json:"seed"`
	Files   int    `json:"files"`
	Dirs    int    `json:"dirs"`
}

// smallStamp is written once the tree is complete.
type smallStamp struct {
	Params     smallParams `json:"params"`
	Bytes      int64       `json:"bytes"`
	Manifest   []fileSum   `json:"manifest"`
	GenSeconds float64     `json:"generation_seconds"`
}

func (l layout) smallRoot() string  { return filepath.Join(l.root, "smallfiles") }
func (l layout) smallTree() string  { return filepath.Join(l.root, "smallfiles", "tree") }
func (l layout) smallStamp() string { return filepath.Join(l.root, "smallfiles", "stamp.json") }

// planSmallFiles lays out the files: file i goes to directory i mod dirs,
// so every directory has about files/dirs entries. Pure function of p.
func planSmallFiles(p smallParams) []treeEntry {
	r := rand.New(rand.NewPCG(p.Seed, 0x736d616c))
	files := make([]treeEntry, p.Files)
	for i := range files {
		d := i % p.Dirs
		e := treeEntry{size: logUniform(r, smallMin, smallMax), seed: r.Uint64()}
		var ext string
		if r.Float64() < smallBinaryFrac {
			e.binary, ext = true, pick(r, binaryExts)
		} else {
			x := pick(r, textExts)
			e.flavor, ext = x.flavor, x.ext
		}
		e.rel = fmt.Sprintf("g%03d/d%05d/f%07d.%s", d/smallDirsPerTop, d, i, ext)
		files[i] = e
	}
	return files
}

// smallContent is the content of a small file: like writeContent, but
// generating only about size bytes (writeContent works in 64 KiB blocks,
// sixteen times too much for a 4 KiB file).
func smallContent(e treeEntry) []byte {
	if e.binary {
		return contentBytes(true, 0, e.seed, e.size)
	}
	src := rand.NewPCG(e.seed, 0x636f6e74)
	lg := &lineGen{t: newTextGen(rand.New(src)), flavor: e.flavor, ts: treeEpoch.Unix() - int64(e.seed%(365*24*3600))}
	b := make([]byte, 0, e.size+256)
	for int64(len(b)) < e.size {
		b = lg.line(b)
	}
	return b[:e.size]
}

// prepareSmallFiles returns the stamp of the tree matching p, generating it
// unless a previous run left it complete.
func prepareSmallFiles(l layout, p smallParams, logf func(string, ...any)) (*smallStamp, bool, error) {
	if b, err := os.ReadFile(l.smallStamp()); err == nil {
		var old smallStamp
		if json.Unmarshal(b, &old) == nil && old.Params == p && len(old.Manifest) == p.Files {
			// Cheap check: the first and last files are there with their sizes.
			first, last := old.Manifest[0], old.Manifest[len(old.Manifest)-1]
			if checkSize(filepath.Join(l.smallTree(), first.Rel), first.Size) == nil && checkSize(filepath.Join(l.smallTree(), last.Rel), last.Size) == nil {
				logf("smallfiles: reusing %s (%d files in %d dirs)", l.smallTree(), p.Files, p.Dirs)
				return &old, true, nil
			}
		}
	}
	logf("smallfiles: generating %d files in %d dirs into %s...", p.Files, p.Dirs, l.smallTree())
	start := time.Now()
	if err := os.RemoveAll(l.smallRoot()); err != nil {
		return nil, false, err
	}
	files := planSmallFiles(p)
	made := map[string]bool{}
	for i, e := range files {
		path := filepath.Join(l.smallTree(), filepath.FromSlash(e.rel))
		if dir := filepath.Dir(path); !made[dir] {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, false, err
			}
			made[dir] = true
		}
		if err := os.WriteFile(path, smallContent(e), 0o644); err != nil {
			return nil, false, err
		}
		mt := treeEpoch.Add(time.Duration(i) * 13 * time.Second)
		if err := os.Chtimes(path, mt, mt); err != nil {
			return nil, false, err
		}
	}
	m, err := manifest(l.smallTree())
	if err != nil {
		return nil, false, err
	}
	st := &smallStamp{Params: p, Bytes: manifestBytes(m), Manifest: m, GenSeconds: time.Since(start).Seconds()}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, false, err
	}
	if err := writeFileAtomic(l.smallStamp(), b); err != nil {
		return nil, false, err
	}
	logf("smallfiles: %d files, %.1f MiB, generated in %.0f s", len(m), float64(st.Bytes)/mib, st.GenSeconds)
	return st, false, nil
}

// smallFilesDataset backs up the generated tree in place, twice: nothing
// changes it, so both backups and the restore see the same files.
//
// Its reset reads and hashes the whole tree before each tool's first
// backup. The other data sets write their input just before the backup,
// so it is in the page cache; this tree is made once and reused, and by a
// tool's turn a run has written enough (repositories, restores, 12 GiB of
// page cache here) to evict part of it. The tool that came first after
// other data sets paid for the disk: cairn's first backup of it took
// 20.9-23.4 s in the bench against 12.7-14.5 s by hand on the warm tree,
// and 36.5 s after drop_caches. Reading it first gives every tool the
// same warm start, and a reused tree that changed since it was made is
// an error instead of a wrong verdict.
func smallFilesDataset(l layout, st *smallStamp) *dataset {
	return &dataset{
		name: dsSmallFiles, src: l.smallTree(), v2Dir: l.smallTree(), v1Bytes: st.Bytes, v2Bytes: st.Bytes,
		reset: func() error {
			got, err := manifest(l.smallTree())
			if err != nil {
				return err
			}
			if err := compareManifests(st.Manifest, got); err != nil {
				return fmt.Errorf("the small-files tree changed since it was generated (remove %s to make it again): %w", l.smallRoot(), err)
			}
			return nil
		},
		mutate: func() error { return nil }, // the unchanged re-backup is the point
		verify: func(restored string) error {
			got, err := manifest(restored)
			if err != nil {
				return err
			}
			return compareManifests(st.Manifest, got)
		},
	}
}
