package repo

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/snapshot"
)

// A manifest that names a component ".." cannot be written through
// SaveSnapshot (Encode refuses it), but a repository written by another
// program, or by someone holding the key, can still contain one. Written
// raw, it must not load: restore would otherwise join ".." to its target.
func TestCraftedManifestWithEscapingComponentDoesNotLoad(t *testing.T) {
	ctx := t.Context()
	r, err := Init(ctx, memstore.New(), "pw", InitOptions{KDF: KDFParams{N: 1 << 10, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	sn := &snapshot.Snapshot{Version: snapshot.Version, Time: at, Host: "crafted",
		Components: []snapshot.Component{{Name: "xx", Kind: snapshot.KindTree, Started: at, Finished: at}}}
	plain, err := sn.Encode()
	if err != nil {
		t.Fatal(err)
	}
	crafted := bytes.Replace(plain, []byte(`"xx"`), []byte(`".."`), 1)
	if bytes.Equal(crafted, plain) {
		t.Fatalf("component name not found in the encoded manifest:\n%s", plain)
	}
	id, err := r.writeSealed(ctx, "snapshots/", crafted, adSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.LoadSnapshot(ctx, id); !errors.Is(err, snapshot.ErrBadComponentName) {
		t.Fatalf("LoadSnapshot of a manifest with component \"..\": %v, want ErrBadComponentName", err)
	}
}
