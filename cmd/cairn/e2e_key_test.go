package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type keyOut struct {
	ID      string `json:"id"`
	Current bool   `json:"current"`
	Damaged string `json:"damaged"`
}

// TestKeys: passwords are added, listed, changed and removed without the
// repository ever lacking a working key.
func TestKeys(t *testing.T) {
	repoDir := testEnv(t)
	mustCairn(t, []byte("data"), "backup", "--stdin", "db")
	keys := decodeJSON[[]keyOut](t, mustCairn(t, nil, "key", "list", "--json"))
	if len(keys) != 1 || !keys[0].Current {
		t.Fatalf("keys after init: %+v", keys)
	}
	first := keys[0].ID

	// The only key, and the one in use: refused.
	r := cairn(t, nil, "key", "remove", first[:8])
	if r.code == 0 || !strings.Contains(r.stderr, "refusing") {
		t.Errorf("removing the last key:\n%v", r)
	}
	t.Setenv("CAIRN_NEW_PASSWORD", "second password")
	added := decodeJSON[map[string]string](t, mustCairn(t, nil, "key", "add", "--json"))["key"]
	if added == "" {
		t.Fatal("no key added")
	}
	// Still the key in use: refused although another exists.
	if r := cairn(t, nil, "key", "remove", first); r.code == 0 {
		t.Errorf("removed the key in use:\n%v", r)
	}
	// With the second password, the first key can go.
	t.Setenv("CAIRN_PASSWORD", "second password")
	mustCairn(t, nil, "key", "remove", first)
	if got := mustCairn(t, nil, "dump", "latest", "db").stdout; got != "data" {
		t.Errorf("dump with the second password: %q", got)
	}
	t.Setenv("CAIRN_PASSWORD", testPassword)
	if r := cairn(t, nil, "snapshots"); r.code != exitBadPassword {
		t.Errorf("the removed password still opens:\n%v", r)
	}

	// passwd: the new password opens, the old one does not, one key left.
	t.Setenv("CAIRN_PASSWORD", "second password")
	t.Setenv("CAIRN_NEW_PASSWORD", "third password")
	mustCairn(t, nil, "key", "passwd")
	if r := cairn(t, nil, "snapshots"); r.code != exitBadPassword {
		t.Errorf("the old password still opens after passwd:\n%v", r)
	}
	t.Setenv("CAIRN_PASSWORD", "third password")
	keys = decodeJSON[[]keyOut](t, mustCairn(t, nil, "key", "list", "--json"))
	if len(keys) != 1 || !keys[0].Current {
		t.Errorf("keys after passwd: %+v", keys)
	}
	if got := mustCairn(t, nil, "dump", "latest", "db").stdout; got != "data" {
		t.Errorf("dump after passwd: %q", got)
	}

	// A damaged key file is listed as such and can be removed.
	write(t, filepath.Join(repoDir, "keys", "00damaged"), []byte("{not json"), 0o600)
	keys = decodeJSON[[]keyOut](t, mustCairn(t, nil, "key", "list", "--json"))
	if len(keys) != 2 {
		t.Fatalf("keys: %+v", keys)
	}
	t.Setenv("CAIRN_NEW_PASSWORD", "fourth")
	mustCairn(t, nil, "key", "add")
	t.Setenv("CAIRN_PASSWORD", "fourth")
	mustCairn(t, nil, "key", "remove", "00damaged")
	if _, err := os.Stat(filepath.Join(repoDir, "keys", "00damaged")); !os.IsNotExist(err) {
		t.Errorf("damaged key not removed: %v", err)
	}
	t.Setenv("CAIRN_NEW_PASSWORD", "")
	if r := cairn(t, nil, "key", "add"); r.code == 0 || !strings.Contains(r.stderr, "no password") {
		t.Errorf("key add without a new password:\n%v", r)
	}
}
