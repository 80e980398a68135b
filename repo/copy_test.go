package repo_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/store"

	"github.com/cairn-backup/cairn/internal/faulty"
	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/archive"
	"github.com/cairn-backup/cairn/repo/check"
	"github.com/cairn-backup/cairn/repo/replicate"
	"github.com/cairn-backup/cairn/repo/restore"
)

func TestCopyModes(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, 20)
	srcRepo := initRepo(t, memstore.New())
	for i := range 2 {
		if _, err := backup(t, srcRepo, src, textData(uint64(30+i), 2<<20), archive.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := srcRepo.Snapshots(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		replica *repo.ReplicaOf
		mode    replicate.Mode
	}{
		{"unrelated repositories", nil, replicate.CopyRewrite},
		{"replica", &repo.ReplicaOf{Source: srcRepo}, replicate.CopyBlobs},
		{"replica sharing the data key", &repo.ReplicaOf{Source: srcRepo, ShareDataKey: true}, replicate.CopyPacks},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dstStore := memstore.New()
			opts := testKDF
			opts.Replica = tc.replica
			dst, err := repo.Init(t.Context(), dstStore, "other password", opts)
			if err != nil {
				t.Fatal(err)
			}
			res, err := replicate.Copy(t.Context(), srcRepo, dst, all, replicate.Options{Verify: true})
			if err != nil {
				t.Fatal(err)
			}
			if res.Mode != tc.mode || len(res.Copied) != 2 || res.Bytes == 0 {
				t.Fatalf("result %+v", res)
			}
			// A fresh process on the target sees two complete snapshots.
			dst2, err := repo.Open(t.Context(), dstStore, "other password")
			if err != nil {
				t.Fatal(err)
			}
			rep, err := check.Check(t.Context(), dst2, check.Options{ReadData: true})
			if err != nil || !rep.OK() || rep.Snapshots != 2 {
				t.Fatalf("check of the target: %v %+v", err, rep)
			}
			dir, _, err := restoreSnapshot(t, dst2, "latest", restore.Options{Verify: true})
			if err != nil {
				t.Fatal(err)
			}
			sameTree(t, src, filepath.Join(dir, "files"))

			again, err := replicate.Copy(t.Context(), srcRepo, dst2, all, replicate.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(again.Copied) != 0 || len(again.Skipped) != 2 || again.Bytes != 0 {
				t.Errorf("second copy sent something: %+v", again)
			}
		})
	}
}

// TestCopyResumes interrupts a copy at every point and checks that the
// target stays consistent, holds no snapshot that is not complete, and that
// running the copy again finishes it without sending everything again.
func TestCopyResumes(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, 21)
	srcRepo := initRepo(t, memstore.New())
	if _, err := backup(t, srcRepo, src, randomData(23, 3<<20), archive.Options{Saver: repo.SaverOptions{PackSize: 256 << 10}}); err != nil {
		t.Fatal(err)
	}
	all, _ := srcRepo.Snapshots(t.Context())
	// One encoder and one uploader: blobs reach packs in the walk's order
	// and each pack gets its own index file, so every run makes the same
	// puts. With two encoders, which small blob shares a pack with which
	// large one depends on timing; with two uploaders, whether two packs
	// share an index file does; either way a crash after the last put of
	// one run may come after all of another's.
	copyOpts := replicate.Options{Saver: repo.SaverOptions{PackSize: 256 << 10, IndexEvery: 1, Encoders: 1, Uploaders: 1}}
	for _, share := range []bool{false, true} {
		newDst := func() (*faulty.Store, *repo.Repository) {
			fs := faulty.New(memstore.New())
			dst, err := repo.Init(t.Context(), fs, "p", repo.InitOptions{KDF: testKDF.KDF, Replica: &repo.ReplicaOf{Source: srcRepo, ShareDataKey: share}})
			if err != nil {
				t.Fatal(err)
			}
			return fs, dst
		}
		// An undisturbed copy: how many puts, how many bytes.
		fs, dst := newDst()
		before := fs.Puts()
		res, err := replicate.Copy(t.Context(), srcRepo, dst, all, copyOpts)
		if err != nil {
			t.Fatal(err)
		}
		total, full := fs.Puts()-before, res.Bytes
		if total < 6 {
			t.Fatalf("only %d puts; the test needs several packs", total)
		}
		t.Logf("share=%v: an undisturbed copy makes %d puts", share, total)
		resumed := 0 // crash points after which an index file had landed
		for n := 0; n < total; n++ {
			fs, dst := newDst()
			fs.Crash(n)
			// An index file after every pack: a resumed copy skips every
			// pack an index file recorded before the interruption.
			if _, err := replicate.Copy(t.Context(), srcRepo, dst, all, copyOpts); !errors.Is(err, faulty.ErrCrashed) {
				t.Fatalf("share=%v crash after %d of %d puts: got %v", share, n, total, err)
			}
			fs.Reset()
			dst2, err := repo.Open(t.Context(), fs, "p")
			if err != nil {
				t.Fatal(err)
			}
			if c := snapshotCount(t, dst2); c != 0 {
				t.Fatalf("an interrupted copy left %d snapshots", c)
			}
			// What the interruption left decides what resuming must skip:
			// the packs an index file names. (Several packs go out at once,
			// so which puts those were depends on the run.)
			indexed, err := dst2.ListIDs(t.Context(), "index/")
			if err != nil {
				t.Fatal(err)
			}
			res, err := replicate.Copy(t.Context(), srcRepo, dst2, all, copyOpts)
			if err != nil {
				t.Fatalf("share=%v crash after %d puts: resumed copy: %v", share, n, err)
			}
			if len(indexed) > 0 {
				resumed++
				if res.Bytes >= full {
					t.Errorf("share=%v crash after %d puts, %d index files written: the resumed copy sent %d bytes, a full one %d", share, n, len(indexed), res.Bytes, full)
				}
			}
			rep, err := check.Check(t.Context(), dst2, check.Options{ReadData: true})
			if err != nil || !rep.OK() || rep.Snapshots != 1 {
				t.Fatalf("check: %v %+v", err, rep)
			}
		}
		if resumed == 0 {
			t.Errorf("share=%v: no interruption left an index file; the test proves nothing about resuming", share)
		}
	}
}

// TestCopyToSeveralTargetsReadsOnce feeds two replicas from one read of the
// source: the source is read about as much as for one target, not twice.
func TestCopyToSeveralTargetsReadsOnce(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, 22)
	srcStore := faulty.New(memstore.New())
	srcRepo := initRepo(t, srcStore)
	if _, err := backup(t, srcRepo, src, textData(5, 3<<20), archive.Options{Saver: repo.SaverOptions{PackSize: 1 << 20}}); err != nil {
		t.Fatal(err)
	}
	all, _ := srcRepo.Snapshots(t.Context())
	replica := func(share bool) *repo.Repository {
		dst, err := repo.Init(t.Context(), memstore.New(), "p", repo.InitOptions{KDF: testKDF.KDF, Replica: &repo.ReplicaOf{Source: srcRepo, ShareDataKey: share}})
		if err != nil {
			t.Fatal(err)
		}
		return dst
	}
	for _, share := range []bool{true, false} {
		before := srcStore.Gets()
		if _, err := replicate.Copy(t.Context(), srcRepo, replica(share), all, replicate.Options{}); err != nil {
			t.Fatal(err)
		}
		one := srcStore.Gets() - before

		before = srcStore.Gets()
		dsts := []*repo.Repository{replica(share), replica(share)}
		results, err := replicate.CopyToAll(t.Context(), srcRepo, dsts, all, replicate.Options{})
		if err != nil {
			t.Fatal(err)
		}
		two := srcStore.Gets() - before
		if len(results) != 2 || len(results[0].Copied) != 1 || len(results[1].Copied) != 1 {
			t.Fatalf("results %+v", results)
		}
		t.Logf("share=%v: %d source reads for one target, %d for two", share, one, two)
		if float64(two) > 1.5*float64(one) {
			t.Errorf("share=%v: two targets read the source %d times, one target %d", share, two, one)
		}
		for _, d := range dsts {
			rep, err := check.Check(t.Context(), d, check.Options{ReadData: true})
			if err != nil || !rep.OK() || rep.Snapshots != 1 {
				t.Fatalf("check: %v %+v", err, rep)
			}
		}
	}
}

// TestCopyBetweenStreamChunkerSets copies from a repository with a stream
// chunker set and from one without (the fixture written before the set
// existed) into unrelated repositories with and without the set and into
// replicas. Every copy restores the dumps as they were; a replica takes
// its source's sets as they are, a missing stream set included, so a dump
// backed up straight into it deduplicates against what copy brought.
func TestCopyBetweenStreamChunkerSets(t *testing.T) {
	v1 := fixtureDump()
	v2 := editDump(v1)
	sources := []struct {
		name string
		open func(t *testing.T) *repo.Repository
	}{
		{"source with the stream set", func(t *testing.T) *repo.Repository {
			r := initRepo(t, memstore.New())
			backupStream(t, r, v1)
			return r
		}},
		{"source without (fixture)", func(t *testing.T) *repo.Repository {
			r, err := repo.Open(t.Context(), loadFixture(t, "before-stream-chunker"), fixturePassword)
			if err != nil {
				t.Fatal(err)
			}
			return r // its snapshot holds v1
		}},
	}
	targets := []struct {
		name string
		opts func(src *repo.Repository) repo.InitOptions
		mode replicate.Mode
	}{
		{"unrelated target with the set", func(*repo.Repository) repo.InitOptions { return testKDF }, replicate.CopyRewrite},
		{"unrelated target without", func(*repo.Repository) repo.InitOptions {
			o := testKDF
			o.NoStreamChunker = true
			return o
		}, replicate.CopyRewrite},
		{"replica", func(src *repo.Repository) repo.InitOptions {
			o := testKDF
			o.Replica = &repo.ReplicaOf{Source: src}
			return o
		}, replicate.CopyBlobs},
		{"replica sharing the data key", func(src *repo.Repository) repo.InitOptions {
			o := testKDF
			o.Replica = &repo.ReplicaOf{Source: src, ShareDataKey: true}
			return o
		}, replicate.CopyPacks},
	}
	for _, sc := range sources {
		for _, tg := range targets {
			t.Run(sc.name+"/"+tg.name, func(t *testing.T) {
				src := sc.open(t)
				backupStream(t, src, v2)
				all, err := src.Snapshots(t.Context())
				if err != nil || len(all) != 2 {
					t.Fatalf("source snapshots: %d, %v", len(all), err)
				}
				dstStore := memstore.New()
				dst, err := repo.Init(t.Context(), dstStore, "other", tg.opts(src))
				if err != nil {
					t.Fatal(err)
				}
				res, err := replicate.Copy(t.Context(), src, dst, all, replicate.Options{Verify: true})
				if err != nil {
					t.Fatal(err)
				}
				if res.Mode != tg.mode || len(res.Copied) != 2 {
					t.Fatalf("result %+v", res)
				}
				dst, err = repo.Open(t.Context(), dstStore, "other")
				if err != nil {
					t.Fatal(err)
				}
				rep, err := check.Check(t.Context(), dst, check.Options{ReadData: true})
				if err != nil || !rep.OK() || rep.Snapshots != 2 {
					t.Fatalf("check of the target: %v %+v", err, rep)
				}
				for i, want := range [][]byte{v1, v2} {
					copied := res.Copied[i].Target.String()
					dir, _, err := restoreSnapshot(t, dst, copied, restore.Options{Verify: true})
					if err != nil {
						t.Fatal(err)
					}
					if got, _ := os.ReadFile(filepath.Join(dir, "db")); !bytes.Equal(got, want) {
						t.Errorf("copy %d: restored dump differs (%d bytes, want %d)", i, len(got), len(want))
					}
				}
				if tg.mode == replicate.CopyRewrite {
					return // unrelated keys: nothing to share with the source
				}
				if dst.ChunkerParams() != src.ChunkerParams() || dst.StreamChunkerParams() != src.StreamChunkerParams() {
					t.Fatalf("replica chunks with %+v / %+v, its source with %+v / %+v",
						dst.ChunkerParams(), dst.StreamChunkerParams(), src.ChunkerParams(), src.StreamChunkerParams())
				}
				if err := dst.LoadIndex(t.Context()); err != nil {
					t.Fatal(err)
				}
				if again := backupStream(t, dst, v2); again.Saver.Blobs > 1 {
					t.Errorf("the dump backed up into the replica stored %d blobs; want only its tree", again.Saver.Blobs)
				}
			})
		}
	}
}

// TestCopyRefusesATargetThatCannotReadTheBlobs: readers bound a data blob
// by their own chunker's MaxSize, so blobs copied from a repository cut
// with a larger MaxSize would be written and then refused on every read of
// the target. The copy must say so before it writes anything.
func TestCopyRefusesATargetThatCannotReadTheBlobs(t *testing.T) {
	big, err := chunk.DefaultParams() // 512 KiB .. 8 MiB
	if err != nil {
		t.Fatal(err)
	}
	src, err := repo.Init(t.Context(), memstore.New(), "p", repo.InitOptions{KDF: testKDF.KDF, Chunker: &big, NoStreamChunker: true})
	if err != nil {
		t.Fatal(err)
	}
	// Random bytes: the chunks average 1.5 MiB here, so some are above
	// the target's 1 MiB.
	data := make([]byte, 12<<20)
	rand.NewChaCha8([32]byte{1}).Read(data)
	backupStream(t, src, data)
	all, err := src.Snapshots(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	small, err := chunk.DefaultStreamParams() // 64 KiB .. 1 MiB
	if err != nil {
		t.Fatal(err)
	}
	dstStore := memstore.New()
	dst, err := repo.Init(t.Context(), dstStore, "other", repo.InitOptions{KDF: testKDF.KDF, Chunker: &small, NoStreamChunker: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = replicate.Copy(t.Context(), src, dst, all, replicate.Options{})
	if err == nil || !strings.Contains(err.Error(), "max_size") {
		t.Fatalf("copy into a target with a smaller max_size: %v", err)
	}
	packs := 0
	if err := dstStore.List(t.Context(), "data/", func(store.Info) error { packs++; return nil }); err != nil {
		t.Fatal(err)
	}
	if packs != 0 {
		t.Errorf("the refused copy wrote %d packs", packs)
	}
	// Into a target with the same bound every blob fits.
	back, err := repo.Init(t.Context(), memstore.New(), "p2", repo.InitOptions{KDF: testKDF.KDF, Chunker: &big})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replicate.Copy(t.Context(), src, back, all, replicate.Options{Verify: true}); err != nil {
		t.Fatal(err)
	}
}
