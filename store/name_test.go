package store_test

import (
	"errors"
	"testing"

	"github.com/cairn-backup/cairn/store"
)

func TestCheckName(t *testing.T) {
	for _, name := range []string{
		"config", "keys/k", "data/ab/ab12cd", "a-b_c.d", "a/.b", "x/..y", "0/1/2/3/4",
	} {
		if err := store.CheckName(name); err != nil {
			t.Errorf("CheckName(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{
		"", "/", "/abs", "a/", "a//b", ".", "..", "a/..", "../a", "a/./b",
		`a\b`, "A", "data/AB", "a b", "a\x00b", "é", ".tmp-123", "data/.tmp-x",
	} {
		if err := store.CheckName(name); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("CheckName(%q) = %v, want ErrInvalidName", name, err)
		}
	}
}

func TestCheckPrefix(t *testing.T) {
	for _, p := range []string{"", "d", "data", "data/", "data/a", "data/ab/", ".", "a/."} {
		if err := store.CheckPrefix(p); err != nil {
			t.Errorf("CheckPrefix(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"/", "/data", "../", "../x", "a//", "a/../", `a\`, "A", ".tmp-", "a/.tmp-x"} {
		if err := store.CheckPrefix(p); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("CheckPrefix(%q) = %v, want ErrInvalidName", p, err)
		}
	}
}
