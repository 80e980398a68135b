package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/index"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/check"
	"github.com/cairn-backup/cairn/store/local"
)

// openRepoAPI opens the test repository through the repo package, for
// tests that need to know where blobs are.
func openRepoAPI(t *testing.T, repoDir string) *repo.Repository {
	t.Helper()
	st, err := local.Open(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(context.Background(), st, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if err := r.LoadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

func packPath(repoDir string, id chunk.ID) string {
	s := id.String()
	return filepath.Join(repoDir, "data", s[:2], s)
}

// locate returns where the single data blob of a small file, or the root
// tree of a component, is stored.
func locate(t *testing.T, r *repo.Repository, snapRef, ref string, tree bool) index.Location {
	t.Helper()
	ctx := context.Background()
	sn, err := r.FindSnapshot(ctx, snapRef)
	if err != nil {
		t.Fatal(err)
	}
	if tree {
		id := sn.Component(ref).Tree
		loc, ok := r.Index().Lookup(pack.TreeBlob, id)
		if !ok {
			t.Fatalf("tree %s not indexed", id.Short())
		}
		return loc
	}
	n, err := r.FindNode(ctx, sn.Snapshot, ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Content) != 1 {
		t.Fatalf("%s has %d blobs, want 1", ref, len(n.Content))
	}
	loc, ok := r.Index().Lookup(pack.DataBlob, n.Content[0])
	if !ok {
		t.Fatalf("blob of %s not indexed", ref)
	}
	return loc
}

// TestCorruptPack damages pack files and checks that check finds it, names
// the pack and the lost blobs, and that restore still restores every file
// whose blobs are intact.
func TestCorruptPack(t *testing.T) {
	repoDir := testEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	// Each file is smaller than the chunker's minimum (512 KiB), so it is
	// exactly one blob. Two backups make two packs: a.bin and b.bin (and
	// the first trees) in pack 1, c.bin and the new trees in pack 2.
	a, b, c := randomBytes(10, 100<<10), randomBytes(11, 100<<10), randomBytes(12, 100<<10)
	write(t, filepath.Join(src, "a.bin"), a, 0o644)
	write(t, filepath.Join(src, "b.bin"), b, 0o644)
	s1 := decodeJSON[backupOut](t, mustCairn(t, nil, "backup", "--json", "--time", "2024-01-01T00:00:00Z", "--tree", "files="+src))
	write(t, filepath.Join(src, "c.bin"), c, 0o644)
	s2 := decodeJSON[backupOut](t, mustCairn(t, nil, "backup", "--json", "--time", "2024-01-02T00:00:00Z", "--tree", "files="+src))
	if s1.AddedPacks != 1 || s2.AddedPacks != 1 {
		t.Fatalf("backups added %d and %d packs, want 1 each", s1.AddedPacks, s2.AddedPacks)
	}

	r := openRepoAPI(t, repoDir)
	locA := locate(t, r, s1.ID, "files/a.bin", false)
	locB := locate(t, r, s1.ID, "files/b.bin", false)
	locC := locate(t, r, s2.ID, "files/c.bin", false)
	locTree1 := locate(t, r, s1.ID, "files", true)
	pack1, pack2 := locA.Pack, locC.Pack
	if locB.Pack != pack1 || locTree1.Pack != pack1 || pack2 == pack1 {
		t.Fatalf("unexpected layout: a in %s, b in %s, tree 1 in %s, c in %s", locA.Pack.Short(), locB.Pack.Short(), locTree1.Pack.Short(), pack2.Short())
	}

	// damage changes a pack file and returns a function that undoes it.
	damage := func(t *testing.T, id chunk.ID, change func([]byte) []byte) {
		t.Helper()
		p := packPath(repoDir, id)
		orig := readFile(t, p)
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, change(bytes.Clone(orig)), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := os.WriteFile(p, orig, 0o600); err != nil {
				t.Error(err)
			}
		})
	}
	flipAt := func(off uint32) func([]byte) []byte {
		return func(b []byte) []byte { b[off] ^= 0x40; return b }
	}

	t.Run("flipped byte in a data blob", func(t *testing.T) {
		damage(t, pack1, flipAt(locA.Blob.Offset+locA.Blob.Length/2))

		t.Run("check reads structure only and does not see it", func(t *testing.T) {
			// Plain check verifies the index, pack sizes and every tree, but
			// reads no data blob: a flipped bit inside one needs --read-data.
			r := cairn(t, nil, "check")
			if r.code != 0 {
				t.Errorf("check: %v", r)
			}
		})
		t.Run("check --read-data names the pack and the blob", func(t *testing.T) {
			r := cairn(t, nil, "check", "--read-data")
			if r.code != 1 {
				t.Errorf("exit %d, want 1", r.code)
			}
			for _, want := range []string{
				"damaged pack " + pack1.String(),
				"content does not match its name",
				"1 of ",
				"blob " + locA.Blob.ID.String() + " lost",
				"affected snapshot " + s1.ShortID,
				"affected snapshot " + s2.ShortID,
			} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, r.stdout)
				}
			}
			for _, intact := range []chunk.ID{locB.Blob.ID, locC.Blob.ID, pack2} {
				if strings.Contains(r.stdout, intact.String()) {
					t.Errorf("output names intact %s:\n%s", intact.Short(), r.stdout)
				}
			}
			if !strings.Contains(r.stderr, "check found 1 damaged packs") {
				t.Errorf("stderr: %s", r.stderr)
			}
		})
		t.Run("check --read-data --json", func(t *testing.T) {
			r := cairn(t, nil, "check", "--read-data", "--json")
			rep := decodeJSON[check.Report](t, r)
			if r.code != 1 || len(rep.Damaged) != 1 || rep.Damaged[0].Pack != pack1 ||
				len(rep.Damaged[0].Blobs) != 1 || rep.Damaged[0].Blobs[0] != locA.Blob.ID || len(rep.MissingFor) != 2 {
				t.Errorf("exit %d, report %+v", r.code, rep)
			}
		})
		t.Run("restore restores every intact file", func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "restore")
			r := cairn(t, nil, "restore", "--snapshot", s2.ShortID, "--target", target, "--verify")
			if r.code != 1 {
				t.Errorf("restore: exit %d, want 1\n%v", r.code, r)
			}
			if !strings.Contains(r.stderr, "not restored: files/a.bin") || !strings.Contains(r.stderr, pack1.String()) {
				t.Errorf("stderr does not name files/a.bin and its pack:\n%s", r.stderr)
			}
			if strings.Contains(r.stderr, "b.bin") || strings.Contains(r.stderr, "c.bin") {
				t.Errorf("intact files reported:\n%s", r.stderr)
			}
			if !strings.Contains(r.stdout, "2 files") {
				t.Errorf("stdout does not count 2 restored files:\n%s", r.stdout)
			}
			// The file that could not be restored must not be left looking
			// restored: with the snapshot's size, mode and mtime but other
			// content, a later size+mtime comparison (rsync, make, backup's
			// own unchanged-file shortcut) would take it for the original.
			srcInfo, err := os.Stat(filepath.Join(src, "a.bin"))
			if err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(filepath.Join(target, "files", "a.bin")); err == nil &&
				fi.Size() == srcInfo.Size() && fi.ModTime().Equal(srcInfo.ModTime()) && fi.Mode() == srcInfo.Mode() {
				got := readFile(t, filepath.Join(target, "files", "a.bin"))
				if !bytes.Equal(got, a) {
					t.Errorf("files/a.bin failed to restore but was left with the original's size, mode and mtime (content %d non-zero bytes of %d)", nonZero(got), len(got))
				}
			}
			for name, want := range map[string][]byte{"b.bin": b, "c.bin": c} {
				got, err := os.ReadFile(filepath.Join(target, "files", name))
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s (same pack as a.bin for b, other pack for c) not restored intact: %v", name, err)
				}
			}
		})
		t.Run("dump of the damaged file fails, of an intact one works", func(t *testing.T) {
			if r := cairn(t, nil, "dump", s2.ShortID, "files/a.bin"); r.code != 1 || !strings.Contains(r.stderr, pack1.String()) {
				t.Errorf("dump a.bin: %v", r)
			}
			if r := mustCairn(t, nil, "dump", s2.ShortID, "files/b.bin"); r.stdout != string(b) {
				t.Error("dump b.bin differs")
			}
		})
	})

	t.Run("flipped byte in a tree blob", func(t *testing.T) {
		damage(t, pack1, flipAt(locTree1.Blob.Offset+locTree1.Blob.Length/2))
		r := cairn(t, nil, "check")
		if r.code != 1 {
			t.Errorf("check: exit %d, want 1\n%v", r.code, r)
		}
		for _, want := range []string{"tree blob " + locTree1.Blob.ID.Short() + " in pack " + pack1.String(), "affected snapshot " + s1.ShortID} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("check output lacks %q:\n%s", want, r.stdout)
			}
		}
		if strings.Contains(r.stdout, "affected snapshot "+s2.ShortID) {
			t.Errorf("snapshot 2 (own root tree in pack 2) reported affected:\n%s", r.stdout)
		}
		// Snapshot 1's root cannot be read: nothing of it is restored, and
		// restore says so.
		rr := cairn(t, nil, "restore", "--snapshot", s1.ShortID, "--target", filepath.Join(t.TempDir(), "restore"))
		if rr.code != 1 || !strings.Contains(rr.stderr, "not restored: files:") {
			t.Errorf("restore of snapshot 1: %v", rr)
		}
	})

	for _, tc := range []struct {
		name string
		pack chunk.ID
		cut  int
	}{
		{"truncated pack by one byte", pack2, 1},
		{"truncated pack to half", pack1, -1},
		{"emptied pack", pack2, 1 << 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			damage(t, tc.pack, func(b []byte) []byte {
				switch {
				case tc.cut < 0:
					return b[:len(b)/2]
				case tc.cut > len(b):
					return b[:0]
				}
				return b[:len(b)-tc.cut]
			})
			r := cairn(t, nil, "check")
			if r.code != 1 {
				t.Errorf("check: exit %d, want 1\n%v", r.code, r)
			}
			if !strings.Contains(r.stdout, "damaged pack "+tc.pack.String()+": size ") ||
				!strings.Contains(r.stdout, "truncated or overwritten") {
				t.Errorf("check output does not report the pack's size:\n%s", r.stdout)
			}
		})
	}

	t.Run("missing pack", func(t *testing.T) {
		p := packPath(repoDir, pack2)
		orig := readFile(t, p)
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.WriteFile(p, orig, 0o600) })
		r := cairn(t, nil, "check")
		if r.code != 1 || !strings.Contains(r.stdout, "damaged pack "+pack2.String()+": missing from the store") {
			t.Errorf("check: %v", r)
		}
	})

	t.Run("repaired repository checks clean", func(t *testing.T) {
		r := mustCairn(t, nil, "check", "--read-data")
		if !strings.Contains(r.stdout, "no errors found") {
			t.Errorf("check after undoing the damage:\n%s", r.stdout)
		}
	})
}

func nonZero(b []byte) int {
	n := 0
	for _, c := range b {
		if c != 0 {
			n++
		}
	}
	return n
}

// TestCorruptManifest damages one snapshot manifest. check must report it
// by name; the other snapshots must stay restorable; and new backups must
// still be possible — the earlier snapshots only serve the unchanged-file
// shortcut ("an unreadable parent only costs the shortcut", archiver.go).
func TestCorruptManifest(t *testing.T) {
	repoDir := testEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	a := randomBytes(20, 10<<10)
	write(t, filepath.Join(src, "a.bin"), a, 0o644)
	s1 := decodeJSON[backupOut](t, mustCairn(t, nil, "backup", "--json", "--time", "2024-01-01T00:00:00Z", "--tree", "files="+src))
	s2 := decodeJSON[backupOut](t, mustCairn(t, nil, "backup", "--json", "--time", "2024-01-02T00:00:00Z", "--tree", "files="+src))
	p := filepath.Join(repoDir, "snapshots", s1.ID)
	buf := readFile(t, p)
	buf[len(buf)/2] ^= 0x01
	if err := os.WriteFile(p, buf, 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("check names the snapshot", func(t *testing.T) {
		r := cairn(t, nil, "check")
		if r.code != 1 || !strings.Contains(r.stdout, "error: snapshot "+s1.ShortID) || !strings.Contains(r.stdout, "does not match its hash") {
			t.Errorf("check: %v", r)
		}
	})
	t.Run("restore of the intact snapshot by ID", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "restore")
		mustCairn(t, nil, "restore", "--snapshot", s2.ShortID, "--target", target, "--verify")
		if got := readFile(t, filepath.Join(target, "files", "a.bin")); !bytes.Equal(got, a) {
			t.Error("restored a.bin differs")
		}
	})
	t.Run("restore of the damaged snapshot", func(t *testing.T) {
		r := cairn(t, nil, "restore", "--snapshot", s1.ShortID, "--target", filepath.Join(t.TempDir(), "restore"))
		if r.code != 1 || !strings.Contains(r.stderr, "corrupt object") {
			t.Errorf("restore: %v", r)
		}
	})
	t.Run("backup still works", func(t *testing.T) {
		r := cairn(t, nil, "backup", "--tree", "files="+src)
		if r.code != 0 {
			t.Errorf("one damaged manifest blocks every new backup: %v", r)
		}
	})
}
