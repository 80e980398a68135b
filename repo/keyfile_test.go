package repo_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/store"
)

// keyName returns the name of the repository's only key file.
func keyName(t *testing.T, st store.Store) string {
	t.Helper()
	var names []string
	if err := st.List(t.Context(), "keys/", func(fi store.Info) error {
		names = append(names, fi.Name)
		return nil
	}); err != nil || len(names) != 1 {
		t.Fatalf("keys: %q, %v", names, err)
	}
	return names[0]
}

// editJSON rewrites the JSON object name with edit.
func editJSON(t *testing.T, st store.Store, name string, edit func(m map[string]any)) {
	t.Helper()
	ctx := t.Context()
	buf, err := store.ReadAll(ctx, st, name)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	if buf, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, name, buf); err != nil {
		t.Fatal(err)
	}
}

// Issue 8, item 5: "n": 1<<40 in a key file panicked repo.Open (scrypt
// allocated on the strength of it), and any damaged key file read as a
// wrong password. Out-of-bounds parameters and damaged files are named as
// damaged keys; a wrong password is still a wrong password.
func TestDamagedKeyFiles(t *testing.T) {
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	for _, tc := range []struct {
		name string
		edit func(m map[string]any)
		raw  func([]byte) []byte // instead of edit
		msg  string
	}{
		{"N of 2^40", set("n", 1<<40), nil, "scrypt N"},
		{"N not a power of two", set("n", 1000), nil, "power of two"},
		{"N of 2^24 at r 8", set("n", 1<<24), nil, "MiB"},
		{"negative N", set("n", -2), nil, "scrypt N"},
		{"r of 0", set("r", 0), nil, "scrypt r"},
		{"r huge", set("r", 1<<30), nil, "scrypt r"},
		{"p huge", set("p", 1<<30), nil, "scrypt p"},
		{"work too high", func(m map[string]any) { m["n"], m["r"], m["p"] = 1<<20, 8, 16 }, nil, "N·r·p"},
		{"unknown KDF", set("kdf", "argon2id"), nil, "unknown KDF"},
		{"unknown version", set("version", 2), nil, "version 2"},
		{"short salt", set("salt", "AAAA"), nil, "salt"},
		{"no sealed key", func(m map[string]any) { delete(m, "sealed") }, nil, "sealed master key"},
		{"bad check length", set("check", "AAAA"), nil, "check value"},
		{"truncated", nil, func(b []byte) []byte { return b[:len(b)/2] }, "parse"},
		{"not JSON", nil, func([]byte) []byte { return []byte("\x00\x01garbage") }, "parse"},
		{"oversized", nil, func(b []byte) []byte { return append(b, bytes.Repeat([]byte(" "), 1<<20)...) }, "exceeds"},
		{"sealed key flipped", nil, func(b []byte) []byte {
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			s := []byte(m["sealed"].(string))
			// Another base64 digit: still base64, a different nonce byte.
			if s[10] == 'A' {
				s[10] = 'B'
			} else {
				s[10] = 'A'
			}
			m["sealed"] = string(s)
			out, _ := json.Marshal(m)
			return out
		}, "sealed master key does not authenticate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			st := memstore.New()
			initRepo(t, st)
			name := keyName(t, st)
			damageObject(t, st, name, tc.edit, tc.raw)
			_, err := repo.Open(ctx, st, "secret")
			if !errors.Is(err, repo.ErrDamagedKey) || errors.Is(err, repo.ErrWrongPassword) {
				t.Fatalf("got %v, want ErrDamagedKey and not ErrWrongPassword", err)
			}
			if !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not name %s and %q", err, name, tc.msg)
			}
		})
	}
}

func TestWrongPasswordAndSecondKey(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	initRepo(t, st)
	if _, err := repo.Open(ctx, st, "nope"); !errors.Is(err, repo.ErrWrongPassword) || errors.Is(err, repo.ErrDamagedKey) {
		t.Fatalf("wrong password: got %v", err)
	}
	// A damaged key file beside an intact one does not stop the intact
	// one from opening (it used to: the first unparsable file ended Open).
	if err := st.Put(ctx, "keys/00000000000000000000000000000000", []byte("{")); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Open(ctx, st, "secret"); err != nil {
		t.Fatalf("intact key beside a damaged one: %v", err)
	}
}

func TestInitRefusesKDFOutOfBounds(t *testing.T) {
	_, err := repo.Init(t.Context(), memstore.New(), "pw", repo.InitOptions{KDF: repo.KDFParams{N: 1 << 30, R: 8, P: 1}})
	if err == nil || !strings.Contains(err.Error(), "scrypt N") {
		t.Fatalf("got %v", err)
	}
}

func TestDamagedConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(m map[string]any)
		raw  func([]byte) []byte // instead of edit
		msg  string
	}{
		{"oversized", nil, func(b []byte) []byte { return append(b, bytes.Repeat([]byte(" "), 1<<20)...) }, "exceeds"},
		{"no ID", func(m map[string]any) { delete(m, "id") }, nil, "repository ID"},
		{"sealed cut", func(m map[string]any) { m["sealed"] = "AAAA" }, nil, "damaged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := memstore.New()
			initRepo(t, st)
			damageObject(t, st, "config", tc.edit, tc.raw)
			_, err := repo.Open(t.Context(), st, "secret")
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.msg)
			}
		})
	}
}

// damageObject rewrites the object name with edit (on its JSON) or raw.
func damageObject(t *testing.T, st store.Store, name string, edit func(map[string]any), raw func([]byte) []byte) {
	t.Helper()
	if edit != nil {
		editJSON(t, st, name, edit)
		return
	}
	buf, err := store.ReadAll(t.Context(), st, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(t.Context(), name, raw(buf)); err != nil {
		t.Fatal(err)
	}
}
