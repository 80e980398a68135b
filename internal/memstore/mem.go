// Package memstore implements store.Store in memory, for fast tests.
//
// It keeps the whole contract, including name validation (store.CheckName),
// so code tested against it behaves the same on a real backend. Put and Get
// copy the bytes, so neither the caller nor the store can change the other's
// data afterwards.
package memstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/cairn-backup/cairn/store"
)

var _ store.Store = (*Store)(nil)

// Store is an in-memory store.Store. The zero value is not usable; call New.
type Store struct {
	mu      sync.RWMutex
	objects map[string][]byte
}

// New returns an empty store.
func New() *Store {
	return &Store{objects: make(map[string][]byte)}
}

// Close implements store.Store. The objects stay readable, which lets a test
// reopen "the same" store by wrapping it again.
func (s *Store) Close() error { return nil }

func check(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return store.CheckName(name)
}

func opErr(op, name string, err error) error {
	return fmt.Errorf("mem: %s %s: %w", op, name, err)
}

// Put implements store.Store.
func (s *Store) Put(ctx context.Context, name string, data []byte) error {
	if err := check(ctx, name); err != nil {
		return opErr("put", name, err)
	}
	b := bytes.Clone(data)
	if b == nil {
		b = []byte{} // Clone(nil) is nil; keep "present but empty" distinct
	}
	s.mu.Lock()
	s.objects[name] = b
	s.mu.Unlock()
	return nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := check(ctx, name); err != nil {
		return nil, opErr("get", name, err)
	}
	if offset < 0 {
		return nil, opErr("get", name, fmt.Errorf("negative offset %d", offset))
	}
	s.mu.RLock()
	b, ok := s.objects[name]
	s.mu.RUnlock()
	if !ok {
		return nil, opErr("get", name, store.ErrNotFound)
	}
	// Stored slices are never modified (Put replaces them), so slicing
	// without the lock is safe; the copy keeps callers from reaching in.
	b = b[min(offset, int64(len(b))):]
	if length >= 0 && length < int64(len(b)) {
		b = b[:length]
	}
	return io.NopCloser(bytes.NewReader(bytes.Clone(b))), nil
}

// Stat implements store.Store.
func (s *Store) Stat(ctx context.Context, name string) (store.Info, error) {
	if err := check(ctx, name); err != nil {
		return store.Info{}, opErr("stat", name, err)
	}
	s.mu.RLock()
	b, ok := s.objects[name]
	s.mu.RUnlock()
	if !ok {
		return store.Info{}, opErr("stat", name, store.ErrNotFound)
	}
	return store.Info{Name: name, Size: int64(len(b))}, nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := check(ctx, name); err != nil {
		return opErr("delete", name, err)
	}
	s.mu.Lock()
	_, ok := s.objects[name]
	delete(s.objects, name)
	s.mu.Unlock()
	if !ok {
		return opErr("delete", name, store.ErrNotFound)
	}
	return nil
}

// List implements store.Store. It calls fn on a snapshot taken without
// holding the lock during the calls, so fn may use the store (for example,
// delete what it is shown).
func (s *Store) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mem: list %s: %w", prefix, err)
	}
	if err := store.CheckPrefix(prefix); err != nil {
		return fmt.Errorf("mem: list %s: %w", prefix, err)
	}
	var infos []store.Info
	s.mu.RLock()
	for name, b := range s.objects {
		if strings.HasPrefix(name, prefix) {
			infos = append(infos, store.Info{Name: name, Size: int64(len(b))})
		}
	}
	s.mu.RUnlock()
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("mem: list %s: %w", prefix, err)
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}
