package dbtest

import (
	"errors"
	"os"
	"sync"
	"testing"
)

// Shared hands one server of each kind to all the tests of a package, so
// that a package pays for initdb and mariadb-install-db once. A server is
// started by the first test that asks for it (a run of unrelated tests
// starts none); tests isolate themselves with NewDatabase. Use it from
// TestMain:
//
//	var dbs dbtest.Shared
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		dbs.Close()
//		os.Exit(code)
//	}
type Shared struct {
	mu     sync.Mutex
	pg     *Postgres
	pgErr  error
	my     *MariaDB
	myErr  error
	dirs   []string
	closed bool
}

// Postgres returns the shared PostgreSQL server, starting it on first use.
// A failure to start fails every test that asks.
func (s *Shared) Postgres(t testing.TB) *Postgres {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pg == nil && s.pgErr == nil {
		s.pg, s.pgErr = launchShared(s, "cairn-dbtest-pg-", LaunchPostgres)
	}
	if s.pgErr != nil {
		t.Fatal(s.pgErr)
	}
	return s.pg
}

// MariaDB returns the shared MariaDB server, starting it on first use.
func (s *Shared) MariaDB(t testing.TB) *MariaDB {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.my == nil && s.myErr == nil {
		s.my, s.myErr = launchShared(s, "cairn-dbtest-my-", LaunchMariaDB)
	}
	if s.myErr != nil {
		t.Fatal(s.myErr)
	}
	return s.my
}

// launchShared starts a server in a fresh directory that Close removes.
// The directory is short (os.MkdirTemp, not a test name) so the sockets fit
// in it.
func launchShared[T any](s *Shared, prefix string, launch func(string) (T, error)) (T, error) {
	var zero T
	if s.closed {
		return zero, errors.New("dbtest: Shared used after Close")
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return zero, err
	}
	s.dirs = append(s.dirs, dir)
	return launch(dir)
}

// Close stops the servers that were started and removes their directories.
func (s *Shared) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	var errs []error
	if s.pg != nil {
		errs = append(errs, s.pg.Stop())
	}
	if s.my != nil {
		errs = append(errs, s.my.Stop())
	}
	for _, d := range s.dirs {
		errs = append(errs, os.RemoveAll(d))
	}
	s.dirs = nil
	return errors.Join(errs...)
}
