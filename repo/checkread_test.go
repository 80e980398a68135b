package repo_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/archive"
	"github.com/cairn-backup/cairn/repo/check"
	"github.com/cairn-backup/cairn/store"
)

// readStore serves a store's objects through readers that return short
// pieces (iotest.HalfReader) or their last bytes with io.EOF
// (iotest.DataErrReader), and lists packs at a size other than theirs, to
// walk every path of check's piecewise pack reader.
type readStore struct {
	store.Store
	wrap     func(io.Reader) io.Reader
	listName string // the object listed at listSize
	listSize func(real int64) int64
}

func (s *readStore) Get(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	rc, err := s.Store.Get(ctx, name, off, n)
	if err != nil || s.wrap == nil {
		return rc, err
	}
	return struct {
		io.Reader
		io.Closer
	}{s.wrap(rc), rc}, nil
}

func (s *readStore) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	return s.Store.List(ctx, prefix, func(fi store.Info) error {
		if s.listSize != nil && fi.Name == s.listName {
			fi.Size = s.listSize(fi.Size)
		}
		return fn(fi)
	})
}

// oracleReadPack is check's reading of one pack as it was before it read
// packs in pieces (whole pack into memory, then its name, header and every
// blob from the index's view): the reference the piecewise reader must
// agree with, reason for reason and blob for blob.
func oracleReadPack(t *testing.T, r *repo.Repository, st store.Store, id chunk.ID) *check.PackDamage {
	t.Helper()
	want := r.Index().PackBlobs(id)
	var end int64
	for _, b := range want {
		end = max(end, int64(b.Offset)+int64(b.Length))
	}
	limit := end + int64(pack.TailSize(len(want)))
	ids := func() []chunk.ID {
		var s []chunk.ID
		for _, b := range want {
			s = append(s, b.ID)
		}
		return s
	}
	buf, err := store.ReadAtMost(t.Context(), st, repo.PackName(id), limit)
	if err != nil {
		return &check.PackDamage{Pack: id, Reason: "unreadable: " + err.Error(), Blobs: ids()}
	}
	var reasons []string
	if chunk.ObjectID(buf) != id {
		reasons = append(reasons, "content does not match its name")
	}
	hdr, err := r.ReadPackHeader(bytes.NewReader(buf), int64(len(buf)))
	if err != nil {
		reasons = append(reasons, "header: "+err.Error())
	} else {
		byOff := func(x, y pack.Blob) int { return int(x.Offset) - int(y.Offset) }
		a, b := slices.Clone(hdr), slices.Clone(want)
		slices.SortFunc(a, byOff)
		slices.SortFunc(b, byOff)
		if !slices.Equal(a, b) {
			reasons = append(reasons, "header does not match the index")
		}
	}
	var bad []chunk.ID
	for _, b := range want {
		end := int64(b.Offset) + int64(b.Length)
		if end > int64(len(buf)) {
			bad = append(bad, b.ID)
			continue
		}
		if _, err := r.DecodeBlob(nil, b, buf[b.Offset:end]); err != nil {
			bad = append(bad, b.ID)
		}
	}
	if len(bad) > 0 {
		reasons = append(reasons, fmt.Sprintf("%d of %d blobs do not decrypt to their ID", len(bad), len(want)))
	}
	if len(reasons) == 0 {
		return nil
	}
	return &check.PackDamage{Pack: id, Reason: strings.Join(reasons, "; "), Blobs: bad}
}

// TestCheckReadDataDamage damages one pack of several blobs in every way
// check's piecewise reader has a path for (a flipped byte in a blob or in
// the header, cuts inside a blob, at a blob's end and inside the header,
// bytes appended, another pack's bytes) and serves it through readers that
// return short pieces or data with io.EOF, listed at sizes that are wrong:
// check reports each exactly as reading the whole pack did.
func TestCheckReadDataDamage(t *testing.T) {
	base := memstore.New()
	r := initRepo(t, base)
	src := t.TempDir()
	// About 3 MiB of text in ~1 MiB chunks, so the pack holds several
	// data blobs and a tree blob.
	if err := os.WriteFile(filepath.Join(src, "a.txt"), textData(31, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "b.bin"), randomData(32, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := backup(t, r, src, nil, archive.Options{}); err != nil {
		t.Fatal(err)
	}
	// A second backup writes a second pack.
	if err := os.WriteFile(filepath.Join(src, "c.txt"), textData(33, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := backup(t, r, src, nil, archive.Options{}); err != nil {
		t.Fatal(err)
	}
	// The pack with the most blobs is the victim, another one donates its
	// bytes for the swap.
	var victim, donor chunk.ID
	for _, id := range r.Index().Packs() {
		if n := len(r.Index().PackBlobs(id)); victim.IsNull() || n > len(r.Index().PackBlobs(victim)) {
			if !victim.IsNull() {
				donor = victim
			}
			victim = id
		} else {
			donor = id
		}
	}
	blobs := r.Index().PackBlobs(victim)
	if len(blobs) < 3 || donor.IsNull() {
		t.Fatalf("fixture: pack %v has %d blobs (want 3 or more), donor %v", victim, len(blobs), donor)
	}
	pristine, err := store.ReadAll(t.Context(), base, repo.PackName(victim))
	if err != nil {
		t.Fatal(err)
	}
	donorBytes, err := store.ReadAll(t.Context(), base, repo.PackName(donor))
	if err != nil {
		t.Fatal(err)
	}
	mid := blobs[len(blobs)/2]
	midEnd := int(mid.Offset + mid.Length)
	var dataEnd int
	for _, b := range blobs {
		dataEnd = max(dataEnd, int(b.Offset+b.Length))
	}
	damages := []struct {
		name string
		fn   func([]byte) []byte
	}{
		{"intact", func(b []byte) []byte { return b }},
		{"flip in a blob", func(b []byte) []byte { b[mid.Offset+mid.Length/2] ^= 0x10; return b }},
		{"flip in the header", func(b []byte) []byte { b[dataEnd+pack.NonceSize+3] ^= 0x10; return b }},
		{"flip in the trailer", func(b []byte) []byte { b[len(b)-1] ^= 0x01; return b }},
		{"cut inside a blob", func(b []byte) []byte { return b[:int(mid.Offset)+int(mid.Length)/2] }},
		{"cut at a blob's end", func(b []byte) []byte { return b[:midEnd] }},
		{"cut inside the header", func(b []byte) []byte { return b[:dataEnd+10] }},
		{"empty", func(b []byte) []byte { return b[:0] }},
		{"one byte appended", func(b []byte) []byte { return append(b, 0) }},
		{"a MiB appended", func(b []byte) []byte { return append(b, make([]byte, 1<<20)...) }},
		{"another pack's bytes", func([]byte) []byte { return slices.Clone(donorBytes) }},
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", nil},
		{"half reads", iotest.HalfReader},
		{"data with EOF", iotest.DataErrReader},
		{"one byte at a time", iotest.OneByteReader},
	}
	sizes := []struct {
		name string
		fn   func(int64) int64
	}{
		{"listed right", nil},
		{"listed short", func(n int64) int64 { return n / 3 }},
		{"listed long", func(n int64) int64 { return 2*n + 5 }},
		{"listed zero", func(int64) int64 { return 0 }},
	}
	for _, dmg := range damages {
		st := memstore.New()
		copyStore(t, base, st)
		if err := st.Put(t.Context(), repo.PackName(victim), dmg.fn(slices.Clone(pristine))); err != nil {
			t.Fatal(err)
		}
		for _, rd := range readers {
			for _, sz := range sizes {
				if rd.name == "one byte at a time" && (dmg.name != "cut inside a blob" || sz.name != "listed short") {
					continue // slow: once is enough
				}
				t.Run(dmg.name+"/"+rd.name+"/"+sz.name, func(t *testing.T) {
					rs := &readStore{Store: st, wrap: rd.wrap, listName: repo.PackName(victim), listSize: sz.fn}
					r := reopen(t, rs)
					structural, err := check.Check(t.Context(), r, check.Options{})
					if err != nil {
						t.Fatal(err)
					}
					r = reopen(t, rs)
					rep, err := check.Check(t.Context(), r, check.Options{ReadData: true})
					if err != nil {
						t.Fatal(err)
					}
					want := oracleReadPack(t, r, st, victim)
					if d := findDamage(structural, victim); d != nil {
						if want == nil {
							want = d
						} else {
							want.Reason = d.Reason + "; " + want.Reason
						}
					}
					got := findDamage(rep, victim)
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Errorf("check --read-data reports\n  %v\nwant (as reading the whole pack did)\n  %v", got, want)
					}
					if (want == nil) != rep.OK() || len(rep.Damaged) > 1 {
						t.Errorf("damage beyond the victim pack, or OK=%v with %v", rep.OK(), want)
					}
				})
			}
		}
	}
}

func findDamage(rep *check.Report, id chunk.ID) *check.PackDamage {
	for i := range rep.Damaged {
		if rep.Damaged[i].Pack == id {
			return &rep.Damaged[i]
		}
	}
	return nil
}

// copyStore copies every object of from into to.
func copyStore(t *testing.T, from, to store.Store) {
	t.Helper()
	names := []string{"config"}
	for _, prefix := range []string{"keys/", "data/", "index/", "snapshots/"} {
		if err := from.List(t.Context(), prefix, func(fi store.Info) error { names = append(names, fi.Name); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range names {
		b, err := store.ReadAll(t.Context(), from, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := to.Put(t.Context(), name, b); err != nil {
			t.Fatal(err)
		}
	}
}
