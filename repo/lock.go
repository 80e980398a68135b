package repo

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/cairn-backup/cairn/store"
)

// ErrLocked is returned when a conflicting lock is held.
var ErrLocked = errors.New("repo: repository is locked")

// Lock timing: a lock is refreshed every lockRefresh and considered stale
// when not refreshed for lockStale (a process that died, on another host).
const (
	lockRefresh = 5 * time.Minute
	lockStale   = 30 * time.Minute
)

// lockRecord is stored under locks/<random>.
type lockRecord struct {
	Exclusive bool      `json:"exclusive"`
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Time      time.Time `json:"time"`
	Refreshed time.Time `json:"refreshed"`
	Purpose   string    `json:"purpose,omitempty"`
}

// Lock is a held lock; Unlock releases it.
type Lock struct {
	st   store.Store
	name string
	rec  lockRecord
	stop chan struct{}
	done sync.WaitGroup
}

// LockError describes the lock that is in the way.
type LockError struct {
	Holder lockRecord
	Name   string
}

func (e *LockError) Error() string {
	kind := "shared"
	if e.Holder.Exclusive {
		kind = "exclusive"
	}
	return fmt.Sprintf("repository is locked: %s lock %s held by PID %d on %s since %s (%s); if that process is gone, the lock expires %s after its last refresh",
		kind, e.Name, e.Holder.PID, e.Holder.Host, e.Holder.Time.Format(time.RFC3339), e.Holder.Purpose, lockStale)
}

func (e *LockError) Unwrap() error { return ErrLocked }

// Lock takes a shared (backup, restore, check) or exclusive (prune) lock.
// Shared locks coexist; an exclusive lock excludes every other lock. Stale
// locks (not refreshed for 30 minutes, or left by a dead process on this
// host) are ignored and removed.
func (r *Repository) Lock(ctx context.Context, exclusive bool, purpose string) (*Lock, error) {
	host, _ := os.Hostname()
	now := time.Now().UTC()
	l := &Lock{st: r.st, rec: lockRecord{Exclusive: exclusive, Host: host, PID: os.Getpid(), Time: now, Refreshed: now, Purpose: purpose}, stop: make(chan struct{})}
	var name [16]byte
	if _, err := rand.Read(name[:]); err != nil {
		return nil, err
	}
	l.name = fmt.Sprintf("locks/%x", name)
	if err := r.checkLocks(ctx, l); err != nil {
		return nil, err
	}
	if err := l.write(ctx); err != nil {
		return nil, err
	}
	// Two processes can pass the check at the same time; look again now
	// that ours is visible, and back off if someone conflicts.
	if err := r.checkLocks(ctx, l); err != nil {
		_ = r.st.Delete(context.WithoutCancel(ctx), l.name)
		return nil, err
	}
	l.done.Add(1)
	go l.refresh()
	return l, nil
}

func (l *Lock) write(ctx context.Context) error {
	buf, err := json.Marshal(l.rec)
	if err != nil {
		return err
	}
	if err := l.st.Put(ctx, l.name, buf); err != nil {
		return fmt.Errorf("write lock: %w", err)
	}
	return nil
}

func (l *Lock) refresh() {
	defer l.done.Done()
	t := time.NewTicker(lockRefresh)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.rec.Refreshed = time.Now().UTC()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_ = l.write(ctx) // a missed refresh is retried at the next tick
			cancel()
		}
	}
}

// Unlock stops refreshing and removes the lock.
func (l *Lock) Unlock() error {
	if l == nil {
		return nil
	}
	close(l.stop)
	l.done.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.st.Delete(ctx, l.name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("remove lock: %w", err)
	}
	return nil
}

func (r *Repository) checkLocks(ctx context.Context, mine *Lock) error {
	var names []string
	err := r.st.List(ctx, "locks/", func(fi store.Info) error {
		if fi.Name != mine.name {
			names = append(names, fi.Name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list locks: %w", err)
	}
	for _, name := range names {
		buf, err := store.ReadAll(ctx, r.st, name)
		if errors.Is(err, store.ErrNotFound) {
			continue // released meanwhile
		}
		if err != nil {
			return fmt.Errorf("read lock %s: %w", name, err)
		}
		var rec lockRecord
		if err := json.Unmarshal(buf, &rec); err != nil {
			continue // unparsable: not a lock this version wrote; ignore
		}
		if stale(rec, mine.rec.Host) {
			_ = r.st.Delete(ctx, name)
			continue
		}
		if rec.Exclusive || mine.rec.Exclusive {
			return &LockError{Holder: rec, Name: name}
		}
	}
	return nil
}

func stale(rec lockRecord, host string) bool {
	if time.Since(rec.Refreshed) > lockStale {
		return true
	}
	if rec.Host == host && rec.PID > 0 {
		// Signal 0 checks existence; ESRCH means the process is gone.
		if err := syscall.Kill(rec.PID, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
	}
	return false
}
