package memstore_test

import (
	"errors"
	"testing"

	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/internal/storetest"
	"github.com/cairn-backup/cairn/store"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return memstore.New() })
}

// mem validates names like the file-system backends do, so that tests using
// it catch names a real backend would refuse.
func TestRejectsBadNames(t *testing.T) {
	s := memstore.New()
	ctx := t.Context()
	for _, name := range []string{"", "/abs", "a/../b", "a//b", "a/", `a\b`, "Upper", ".tmp-x"} {
		if err := s.Put(ctx, name, []byte("x")); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("Put(%q): err = %v, want ErrInvalidName", name, err)
		}
		if _, err := s.Stat(ctx, name); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("Stat(%q): err = %v, want ErrInvalidName", name, err)
		}
	}
	if err := s.List(ctx, "../", func(store.Info) error { return nil }); !errors.Is(err, store.ErrInvalidName) {
		t.Errorf("List(../): err = %v, want ErrInvalidName", err)
	}
}
