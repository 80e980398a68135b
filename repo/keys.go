package repo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/store"
)

// KeyInfo describes one key file: a password's wrapping of the master key.
type KeyInfo struct {
	ID      string    `json:"id"` // the name under keys/
	Created time.Time `json:"created"`
	Host    string    `json:"host,omitempty"`
	KDF     string    `json:"kdf"`
	N       int       `json:"n"`
	R       int       `json:"r"`
	P       int       `json:"p"`
	Current bool      `json:"current"`           // the key this Repository was opened with
	Damaged string    `json:"damaged,omitempty"` // why the file cannot be used
}

// Keys lists the repository's key files (no password is tried on them).
func (r *Repository) Keys(ctx context.Context) ([]KeyInfo, error) {
	var names []string
	err := r.st.List(ctx, "keys/", func(fi store.Info) error {
		names = append(names, fi.Name)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("repo: list keys: %w", err)
	}
	out := make([]KeyInfo, 0, len(names))
	for _, name := range names {
		ki := KeyInfo{ID: strings.TrimPrefix(name, "keys/"), Current: name == r.keyName}
		buf, err := store.ReadAtMost(ctx, r.st, name, maxKeyFileSize)
		if errors.Is(err, store.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil && !errors.Is(err, store.ErrTooLarge) {
			return nil, fmt.Errorf("repo: read key %s: %w", name, err)
		}
		kf, perr := parseKeyFile(buf)
		switch {
		case err != nil:
			ki.Damaged = err.Error()
		case perr != nil:
			ki.Damaged = perr.Error()
		default:
			ki.Created, ki.Host, ki.KDF, ki.N, ki.R, ki.P = kf.Created, kf.Host, kf.KDF, kf.N, kf.R, kf.P
		}
		out = append(out, ki)
	}
	return out, nil
}

// AddKey wraps the master key with password in a new key file and returns
// its ID. The new file is read back and opened with the password before
// AddKey returns, so a key it reports works.
func (r *Repository) AddKey(ctx context.Context, password string, kdf KDFParams) (string, error) {
	if password == "" {
		return "", errors.New("repo: empty password")
	}
	if kdf.N == 0 {
		kdf = DefaultKDF
	}
	mk := masterKey{Data: r.key, ID: r.idKey}
	name, err := writeKey(ctx, r.st, password, mk, kdf)
	if err != nil {
		return "", err
	}
	got, err := openKey(ctx, r.st, name, password)
	if err != nil || got.Data != mk.Data || got.ID != mk.ID {
		// Do not leave a key that does not work.
		_ = r.st.Delete(ctx, name)
		return "", fmt.Errorf("repo: the new key %s does not read back: %v", name, err)
	}
	return strings.TrimPrefix(name, "keys/"), nil
}

// ErrLastKey is returned when removing a key would leave the repository
// without a working one, or would remove the key in use.
var ErrLastKey = errors.New("repo: refusing to remove the key")

// RemoveKey removes the key file id (a unique prefix will do). It refuses
// the key this Repository was opened with (open with another key's
// password to remove it) and any removal that would leave no intact key.
// Run it under an exclusive lock: two removals side by side could each
// leave only the key the other removes.
func (r *Repository) RemoveKey(ctx context.Context, id string) error {
	keys, err := r.Keys(ctx)
	if err != nil {
		return err
	}
	var match *KeyInfo
	intact := 0
	for i, k := range keys {
		if k.Damaged == "" {
			intact++
		}
		if id != "" && strings.HasPrefix(k.ID, id) {
			if match != nil {
				return fmt.Errorf("repo: key %q is ambiguous (%s, %s)", id, match.ID, k.ID)
			}
			match = &keys[i]
		}
	}
	switch {
	case match == nil:
		return fmt.Errorf("repo: no key %q", id)
	case match.Current:
		return fmt.Errorf("%w %s: it is the key your password opened; open the repository with another key's password to remove it", ErrLastKey, match.ID)
	case match.Damaged == "" && intact <= 1:
		return fmt.Errorf("%w %s: it is the last intact key", ErrLastKey, match.ID)
	}
	if err := r.st.Delete(ctx, "keys/"+match.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("repo: remove key %s: %w", match.ID, err)
	}
	return nil
}

// ChangePassword replaces the key in use by a new one for password: the new
// key is written and proven to open first, then the old file is removed,
// so a crash in between leaves both passwords working, never neither.
// It returns the new key's ID.
func (r *Repository) ChangePassword(ctx context.Context, password string, kdf KDFParams) (string, error) {
	if r.keyName == "" {
		return "", errors.New("repo: the key in use is not known")
	}
	id, err := r.AddKey(ctx, password, kdf)
	if err != nil {
		return "", err
	}
	old := r.keyName
	r.keyName = "keys/" + id
	if err := r.st.Delete(ctx, old); err != nil && !errors.Is(err, store.ErrNotFound) {
		return id, fmt.Errorf("repo: new key %s written, but removing the old key %s failed: %w", id, strings.TrimPrefix(old, "keys/"), err)
	}
	return id, nil
}
