package repo

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cairn-backup/cairn/store"
)

// ErrLocked is returned when a conflicting lock is held.
var ErrLocked = errors.New("repo: repository is locked")

// ErrLockLost is returned (wrapped) when a held lock could not be refreshed
// in time: other processes may already treat it as stale, so the holder
// must not write anything that relies on it (a snapshot above all).
var ErrLockLost = errors.New("repo: lock lost")

// LockTiming sets how locks age. The defaults suit production; tests
// shorten them so that staleness needs no long waits.
type LockTiming struct {
	// Refresh is how often a held lock is rewritten (default 5 min). A
	// failed rewrite is retried every Refresh/5.
	Refresh time.Duration
	// Stale is how long a lock may go without a refresh before others
	// may ignore it (default 30 min).
	Stale time.Duration
	// Margin is the clock skew between hosts that locking tolerates
	// (default 10 min): a holder gives its lock up once its last
	// successful refresh is Stale-Margin old, and a pruner treats a lock
	// as gone only Stale+Margin after its last refresh (see FORMAT.md).
	Margin time.Duration
}

// DefaultLockTiming is the production timing.
var DefaultLockTiming = LockTiming{Refresh: 5 * time.Minute, Stale: 30 * time.Minute, Margin: 10 * time.Minute}

func (t LockTiming) check() error {
	if t.Refresh <= 0 || t.Stale <= 0 || t.Margin < 0 || t.Stale-t.Margin <= 2*t.Refresh {
		return fmt.Errorf("repo: lock timing %+v: need Stale-Margin > 2*Refresh > 0", t)
	}
	return nil
}

// ParseLockTiming parses "refresh=1s,stale=10s,margin=2s" (the parts given
// override the defaults). cairn reads it from CAIRN_LOCK_TIMING so that
// process-level tests can age locks in seconds.
func ParseLockTiming(s string) (LockTiming, error) {
	t := DefaultLockTiming
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		d, err := time.ParseDuration(v)
		if !ok || err != nil {
			return LockTiming{}, fmt.Errorf("repo: lock timing %q: want refresh=D,stale=D,margin=D", s)
		}
		switch k {
		case "refresh":
			t.Refresh = d
		case "stale":
			t.Stale = d
		case "margin":
			t.Margin = d
		default:
			return LockTiming{}, fmt.Errorf("repo: lock timing %q: unknown part %q", s, k)
		}
	}
	return t, t.check()
}

// SetLockTiming changes the timing of locks taken from now on.
func (r *Repository) SetLockTiming(t LockTiming) error {
	if err := t.check(); err != nil {
		return err
	}
	r.mu.Lock()
	r.lockTiming = t
	r.mu.Unlock()
	return nil
}

// LockTiming returns the timing locks use.
func (r *Repository) LockTiming() LockTiming {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lockTiming
}

// LockKind says what a lock excludes.
type LockKind int

const (
	// LockShared is taken by backup, copy, restore and check; shared
	// locks coexist with each other and with a prune lock.
	LockShared LockKind = iota
	// LockPrune is taken by prune: it excludes other prunes and exclusive
	// locks, not backups (prune's two-phase deletion keeps them safe).
	LockPrune
	// LockExclusive excludes every other lock.
	LockExclusive
)

func (k LockKind) String() string {
	return [...]string{"shared", "prune", "exclusive"}[k]
}

// maxLockRecord bounds what is read of a lock record; ours are ~200 bytes.
const maxLockRecord = 4 << 10

// lockRecord is stored under locks/<random>.
type lockRecord struct {
	Exclusive bool      `json:"exclusive"`
	Prune     bool      `json:"prune,omitempty"`
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Time      time.Time `json:"time"`
	Refreshed time.Time `json:"refreshed"`
	Purpose   string    `json:"purpose,omitempty"`
	// Run, when set, makes the lock an application's run lock as well:
	// it conflicts with every other lock of the same Run (see LockRun).
	// Older versions read it as a shared lock.
	Run string `json:"run,omitempty"`
}

func (rec lockRecord) kind() LockKind {
	switch {
	case rec.Exclusive:
		return LockExclusive
	case rec.Prune:
		return LockPrune
	}
	return LockShared
}

// conflicts reports whether locks of kinds a and b exclude each other.
func conflicts(a, b LockKind) bool {
	return a == LockExclusive || b == LockExclusive || (a == LockPrune && b == LockPrune)
}

// Lock is a held lock; Unlock releases it. A goroutine rewrites it every
// LockTiming.Refresh. When it cannot do so before the lock would look stale
// to another host, the lock is lost: Lost is closed, Err and Fresh return
// ErrLockLost, and the repository refuses to save snapshots.
type Lock struct {
	r      *Repository
	name   string
	timing LockTiming
	stop   chan struct{}
	lost   chan struct{}
	done   sync.WaitGroup

	mu     sync.Mutex
	rec    lockRecord // guarded by mu
	lastOK time.Time  // guarded by mu: Refreshed of the last record known written
	err    error      // guarded by mu: set when lost
}

// LockError describes the lock that is in the way.
type LockError struct {
	Holder     lockRecord
	Name       string
	Unreadable error // set when the record could not be read or parsed
	stale      time.Duration
	run        bool // in the way as the holder of the same run lock
}

func (e *LockError) Error() string {
	if e.Unreadable != nil {
		return fmt.Sprintf("repository is locked: lock %s cannot be read (%v); an exclusive command cannot tell whether it is in use. If no cairn process uses the repository, delete it", e.Name, e.Unreadable)
	}
	if e.run {
		return fmt.Sprintf("application %s is already running: run lock %s held by PID %d on %s since %s (%s); wait for it (--wait DURATION), or if that process is gone, the lock expires %s after its last refresh",
			e.Holder.Run, e.Name, e.Holder.PID, e.Holder.Host, e.Holder.Time.Format(time.RFC3339), e.Holder.Purpose, e.stale)
	}
	return fmt.Sprintf("repository is locked: %s lock %s held by PID %d on %s since %s (%s); if that process is gone, the lock expires %s after its last refresh",
		e.Holder.kind(), e.Name, e.Holder.PID, e.Holder.Host, e.Holder.Time.Format(time.RFC3339), e.Holder.Purpose, e.stale)
}

func (e *LockError) Unwrap() error {
	if e.run {
		return ErrRunInProgress
	}
	return ErrLocked
}

// ErrRunInProgress is returned (wrapped in a *LockError) by LockRun when
// another process holds the run lock of the same application.
var ErrRunInProgress = errors.New("repo: another run of this application is in progress")

// LockRun takes an application's run lock: a shared lock of the
// repository that also excludes every other lock with the same run name,
// on any host, so two runs of one application (a cron job and a manual
// restore, two overlapping cron runs) never interleave their hooks and
// dumps. It is refreshed, lost and found stale like any other lock.
func (r *Repository) LockRun(ctx context.Context, run, purpose string) (*Lock, error) {
	if run == "" {
		return nil, errors.New("repo: run lock without a name")
	}
	return r.lockAs(ctx, LockShared, purpose, run)
}

// Lock takes a shared (exclusive false) or exclusive lock; see LockAs.
func (r *Repository) Lock(ctx context.Context, exclusive bool, purpose string) (*Lock, error) {
	kind := LockShared
	if exclusive {
		kind = LockExclusive
	}
	return r.LockAs(ctx, kind, purpose)
}

// LockAs takes a lock of the given kind. Stale locks (not refreshed for
// Stale, or left by a dead process on this host) are ignored and removed.
// A lock record that cannot be parsed blocks exclusive and prune lockers:
// it may be a live lock of another version or a damaged one, and guessing
// wrong lets prune delete what a backup needs.
func (r *Repository) LockAs(ctx context.Context, kind LockKind, purpose string) (*Lock, error) {
	return r.lockAs(ctx, kind, purpose, "")
}

func (r *Repository) lockAs(ctx context.Context, kind LockKind, purpose, run string) (*Lock, error) {
	host, _ := os.Hostname()
	now := time.Now().UTC()
	l := &Lock{
		r: r, timing: r.LockTiming(), stop: make(chan struct{}), lost: make(chan struct{}),
		rec: lockRecord{Exclusive: kind == LockExclusive, Prune: kind == LockPrune, Host: host, PID: os.Getpid(),
			Time: now, Refreshed: now, Purpose: purpose, Run: run},
	}
	var name [16]byte
	if _, err := rand.Read(name[:]); err != nil {
		return nil, err
	}
	l.name = fmt.Sprintf("locks/%x", name)
	if err := r.checkLocks(ctx, l); err != nil {
		return nil, err
	}
	if err := l.write(ctx, now); err != nil {
		return nil, err
	}
	// Two processes can pass the check at the same time; look again now
	// that ours is visible, and back off if someone conflicts.
	if err := r.checkLocks(ctx, l); err != nil {
		_ = r.st.Delete(context.WithoutCancel(ctx), l.name)
		return nil, err
	}
	r.mu.Lock()
	r.locks = append(r.locks, l)
	r.mu.Unlock()
	l.done.Add(1)
	go l.refresh()
	return l, nil
}

// Name is the lock's object name ("locks/…").
func (l *Lock) Name() string { return l.name }

// write stores the record with Refreshed = at; on success at becomes the
// last known refresh.
func (l *Lock) write(ctx context.Context, at time.Time) error {
	l.mu.Lock()
	l.rec.Refreshed = at
	buf, err := json.Marshal(l.rec)
	l.mu.Unlock()
	if err != nil {
		return err
	}
	if err := l.r.st.Put(ctx, l.name, buf); err != nil {
		return fmt.Errorf("write lock: %w", err)
	}
	l.mu.Lock()
	if at.After(l.lastOK) {
		l.lastOK = at
	}
	l.mu.Unlock()
	return nil
}

// deadline is when the lock stops counting as held: its last successful
// refresh plus Stale-Margin. Another host, whose clock may be up to Margin
// ahead of ours, sees it stale only after Stale.
func (l *Lock) deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastOK.Add(l.timing.Stale - l.timing.Margin)
}

func (l *Lock) refresh() {
	defer l.done.Done()
	next := l.timing.Refresh
	for {
		t := time.NewTimer(next)
		select {
		case <-l.stop:
			t.Stop()
			return
		case <-t.C:
		}
		dl := l.deadline()
		if !time.Now().Before(dl) {
			l.fail(fmt.Errorf("%w: %s not refreshed since %s", ErrLockLost, l.name, dl.Add(-(l.timing.Stale - l.timing.Margin)).Format(time.RFC3339)))
			return
		}
		// A write that would end after the deadline is useless: the lock
		// may look stale by then.
		ctx, cancel := context.WithDeadline(context.Background(), dl)
		err := l.write(ctx, time.Now().UTC())
		cancel()
		if err == nil {
			next = l.timing.Refresh
			continue
		}
		next = l.timing.Refresh / 5
		if time.Until(l.deadline()) < next {
			l.fail(fmt.Errorf("%w: refresh %s: %w", ErrLockLost, l.name, err))
			return
		}
	}
}

func (l *Lock) fail(err error) {
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
	close(l.lost)
}

// Lost is closed when the lock is lost.
func (l *Lock) Lost() <-chan struct{} { return l.lost }

// Err returns the reason the lock was lost, or nil.
func (l *Lock) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Fresh returns nil if the lock is demonstrably held now and for at least
// within more: its last successful refresh is recent enough that no other
// host can see it stale before then.
func (l *Lock) Fresh(within time.Duration) error {
	if err := l.Err(); err != nil {
		return err
	}
	if left := time.Until(l.deadline()); left < within {
		return fmt.Errorf("%w: %s was last refreshed too long ago (%s left, need %s)", ErrLockLost, l.name, left.Round(time.Millisecond), within)
	}
	return nil
}

// Unlock stops refreshing and removes the lock.
func (l *Lock) Unlock() error {
	if l == nil {
		return nil
	}
	close(l.stop)
	l.done.Wait()
	r := l.r
	r.mu.Lock()
	for i, x := range r.locks {
		if x == l {
			r.locks = append(r.locks[:i], r.locks[i+1:]...)
			break
		}
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.st.Delete(ctx, l.name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("remove lock: %w", err)
	}
	return nil
}

// checkHeldLocks fails unless every lock this Repository holds is fresh
// for at least one more refresh interval (a healthy lock always is: it has
// Stale-Margin-Refresh left); it returns until when all of them are.
func (r *Repository) checkHeldLocks() (time.Time, error) {
	r.mu.Lock()
	locks := append([]*Lock(nil), r.locks...)
	r.mu.Unlock()
	var until time.Time
	for _, l := range locks {
		if err := l.Fresh(l.timing.Refresh); err != nil {
			return time.Time{}, err
		}
		if dl := l.deadline(); until.IsZero() || dl.Before(until) {
			until = dl
		}
	}
	return until, nil
}

// HeldLocks returns the names of the locks this Repository holds.
func (r *Repository) HeldLocks() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.locks))
	for i, l := range r.locks {
		out[i] = l.name
	}
	return out
}

// LockInfo is a lock present in the store, as ListLocks reports it.
type LockInfo struct {
	Name       string
	Kind       LockKind
	Host       string
	PID        int
	Refreshed  time.Time // holder's clock; zero if unreadable
	Unreadable error
}

// Gone reports whether the lock can no longer belong to a running process:
// its holder died on this host, or it was not refreshed for Stale+Margin
// (so that a clock of ours up to Margin ahead of the holder's cannot make
// a live lock look dead). An unreadable lock is never gone.
func (li LockInfo) Gone(t LockTiming, now time.Time, host string) bool {
	if li.Unreadable != nil {
		return false
	}
	return now.Sub(li.Refreshed) > t.Stale+t.Margin || deadOnThisHost(lockRecord{Host: li.Host, PID: li.PID}, host)
}

// ListLocks reads every lock record.
func (r *Repository) ListLocks(ctx context.Context) ([]LockInfo, error) {
	var names []string
	err := r.st.List(ctx, "locks/", func(fi store.Info) error {
		names = append(names, fi.Name)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	var out []LockInfo
	for _, name := range names {
		rec, err := r.readLock(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			continue // released meanwhile
		}
		var bad *badLockError
		switch {
		case errors.As(err, &bad):
			out = append(out, LockInfo{Name: name, Unreadable: bad.err})
		case err != nil:
			return nil, err
		default:
			out = append(out, LockInfo{Name: name, Kind: rec.kind(), Host: rec.Host, PID: rec.PID, Refreshed: rec.Refreshed})
		}
	}
	return out, nil
}

type badLockError struct{ err error }

func (e *badLockError) Error() string { return e.err.Error() }

func (r *Repository) readLock(ctx context.Context, name string) (lockRecord, error) {
	rc, err := r.st.Get(ctx, name, 0, maxLockRecord+1)
	if err != nil {
		return lockRecord{}, fmt.Errorf("read lock %s: %w", name, err)
	}
	defer rc.Close()
	buf, err := io.ReadAll(io.LimitReader(rc, maxLockRecord+1))
	if err != nil {
		return lockRecord{}, fmt.Errorf("read lock %s: %w", name, err)
	}
	if len(buf) > maxLockRecord {
		return lockRecord{}, &badLockError{fmt.Errorf("record larger than %d bytes", maxLockRecord)}
	}
	var rec lockRecord
	if err := json.Unmarshal(buf, &rec); err != nil {
		return lockRecord{}, &badLockError{fmt.Errorf("parse: %w", err)}
	}
	if rec.Refreshed.IsZero() {
		return lockRecord{}, &badLockError{errors.New("no refresh time")}
	}
	return rec, nil
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
	myKind := mine.rec.kind()
	for _, name := range names {
		rec, err := r.readLock(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			continue // released meanwhile
		}
		var bad *badLockError
		if errors.As(err, &bad) {
			if myKind == LockShared {
				continue // a shared locker is in nobody's way
			}
			return &LockError{Name: name, Unreadable: bad.err}
		}
		if err != nil {
			return err
		}
		if stale(rec, mine.rec.Host, mine.timing.Stale) {
			_ = r.st.Delete(ctx, name)
			continue
		}
		if mine.rec.Run != "" && rec.Run == mine.rec.Run {
			return &LockError{Holder: rec, Name: name, stale: mine.timing.Stale, run: true}
		}
		if conflicts(rec.kind(), myKind) {
			return &LockError{Holder: rec, Name: name, stale: mine.timing.Stale}
		}
	}
	return nil
}

func stale(rec lockRecord, host string, after time.Duration) bool {
	if time.Since(rec.Refreshed) > after {
		return true
	}
	return deadOnThisHost(rec, host)
}

// deadOnThisHost reports whether rec was written by a process of this host
// that no longer exists.
func deadOnThisHost(rec lockRecord, host string) bool {
	if rec.Host == host && rec.PID > 0 {
		// Signal 0 checks existence; ESRCH means the process is gone.
		if err := syscall.Kill(rec.PID, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
	}
	return false
}
