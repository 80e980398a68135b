package dbtest

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Postgres is a running throwaway PostgreSQL server, seen through one
// database. Copies made by WithDatabase and NewDatabase share the server.
type Postgres struct {
	Host      string // always 127.0.0.1
	Port      int
	User      string // "postgres", a superuser; trust authentication
	Database  string // "postgres" unless chosen with WithDatabase or NewDatabase
	SocketDir string // the server's unix socket directory (owned by the server's user)
	DataDir   string
	BinDir    string // where initdb, postgres, pg_dump, pg_restore and psql were found

	srv *pgServer
}

type pgServer struct {
	acct      *account
	dir       string
	logPath   string
	proc      *process
	cleanSock func()
	stopOnce  sync.Once
	stopErr   error
}

// StartPostgres starts a server in t.TempDir() and stops it when the test
// ends. A missing PostgreSQL installation fails the test.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	p, err := LaunchPostgres(filepath.Join(t.TempDir(), "pg"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// LaunchPostgres starts a server in dir (created if missing) for callers
// without a testing.TB, such as TestMain; the caller calls Stop and removes
// dir.
func LaunchPostgres(dir string) (*Postgres, error) {
	acct, err := serverAccount()
	if err != nil {
		return nil, err
	}
	binDir, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	if err := prepareDir(dir, acct); err != nil {
		return nil, err
	}
	sock, cleanSock, err := socketDir(filepath.Join(dir, "sock"), ".s.PGSQL.65535", acct)
	if err != nil {
		return nil, err
	}
	p := &Postgres{
		Host: "127.0.0.1", User: "postgres", Database: "postgres",
		SocketDir: sock, DataDir: filepath.Join(dir, "data"), BinDir: binDir,
		srv: &pgServer{acct: acct, dir: dir, logPath: filepath.Join(dir, "postgres.log"), cleanSock: cleanSock},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// No fsync: the data is thrown away, and initdb's syncs are most of its
	// run time.
	if _, err := runAsServer(ctx, acct, dir, p.Bin("initdb"), "-D", p.DataDir, "-U", p.User,
		"-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		cleanSock()
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			cleanSock()
			return nil, err
		}
		p.Port = port
		proc, err := startServer(acct, dir, p.srv.logPath, syscall.SIGQUIT, p.Bin("postgres"),
			"-D", p.DataDir, "-p", strconv.Itoa(port), "-k", sock,
			"-c", "listen_addresses=127.0.0.1",
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "max_connections=40", "-c", "shared_buffers=16MB",
			"-c", "logging_collector=off")
		if err != nil {
			cleanSock()
			return nil, err
		}
		p.srv.proc = proc
		err = proc.waitReady(60*time.Second, func() error {
			out, err := exec.Command(p.Bin("pg_isready"), "-q", "-h", p.Host, "-p", strconv.Itoa(port), "-U", p.User, "-d", "postgres").CombinedOutput()
			if err != nil {
				return fmt.Errorf("pg_isready: %v %s", err, out)
			}
			return nil
		})
		if err == nil {
			return p, nil
		}
		log := fileTail(p.srv.logPath, 2048)
		lastErr = fmt.Errorf("dbtest: postgres on 127.0.0.1:%d: %w\n%s", port, err, log)
		p.srv.proc.stop(10*time.Second, func() error { return syscall.Kill(proc.cmd.Process.Pid, syscall.SIGQUIT) })
		if !strings.Contains(log, "already in use") {
			break // not a lost race for the port; trying again will not help
		}
	}
	cleanSock()
	return nil, lastErr
}

// Stop shuts the server down (pg_ctl stop -m fast) and waits for it; the
// data directory is left for the caller (t.TempDir removes it). Safe to
// call more than once, and on any copy.
func (p *Postgres) Stop() error {
	s := p.srv
	s.stopOnce.Do(func() {
		s.stopErr = s.proc.stop(30*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			_, err := runAsServer(ctx, s.acct, s.dir, p.Bin("pg_ctl"), "stop", "-D", p.DataDir, "-m", "fast", "-w", "-t", "30")
			return err
		})
		s.cleanSock()
	})
	return s.stopErr
}

// Bin returns the path of a PostgreSQL program from the server's own
// installation (pg_dump must not be older than the server).
func (p *Postgres) Bin(name string) string { return filepath.Join(p.BinDir, name) }

// ConnArgs are the connection options for psql, pg_dump and pg_restore,
// without the database: -h 127.0.0.1 -p PORT -U postgres.
func (p *Postgres) ConnArgs() []string {
	return []string{"-h", p.Host, "-p", strconv.Itoa(p.Port), "-U", p.User}
}

// Env is the caller's environment with the libpq variables pointing at this
// server and database, and any others (PGPASSWORD, PGSERVICE, …) removed.
func (p *Postgres) Env() []string {
	return clientEnv("PGHOST="+p.Host, "PGPORT="+strconv.Itoa(p.Port), "PGUSER="+p.User,
		"PGDATABASE="+p.Database, "PGCONNECT_TIMEOUT=10")
}

// LogTail returns the end of the server log, for failure messages.
func (p *Postgres) LogTail() string { return fileTail(p.srv.logPath, 4096) }

// WithDatabase returns a copy of p that connects to database name.
func (p *Postgres) WithDatabase(name string) *Postgres {
	c := *p
	c.Database = name
	return &c
}

// NewDatabase creates an empty database with a unique name, dropped when
// the test ends, and returns a copy of p connected to it.
func (p *Postgres) NewDatabase(t testing.TB) *Postgres {
	t.Helper()
	name := uniqueName("cairn")
	admin := p.WithDatabase("postgres")
	admin.Exec(t, "CREATE DATABASE "+name)
	t.Cleanup(func() {
		if !admin.srv.proc.running() {
			return // stopped already: the database went with it
		}
		if _, err := admin.Psql(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return p.WithDatabase(name)
}

// Psql runs sql (any number of statements, fed on stdin so that statements
// such as CREATE DATABASE run outside a transaction) through psql and
// returns what it printed: unaligned rows, fields separated by "|",
// trimmed. It stops at the first error.
func (p *Postgres) Psql(ctx context.Context, sql string) (string, error) {
	args := append(p.ConnArgs(), "-d", p.Database, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-")
	cmd := exec.CommandContext(ctx, p.Bin("psql"), args...)
	cmd.Env = p.Env()
	cmd.Stdin = strings.NewReader(sql)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("dbtest: psql -d %s: %w: %s", p.Database, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// Exec runs sql and fails the test on error.
func (p *Postgres) Exec(t testing.TB, sql string) {
	t.Helper()
	if _, err := p.Psql(t.Context(), sql); err != nil {
		t.Fatal(err)
	}
}

// Query runs sql and returns its output (see Psql); it fails the test on
// error.
func (p *Postgres) Query(t testing.TB, sql string) string {
	t.Helper()
	out, err := p.Psql(t.Context(), sql)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// postgresBinDir finds the newest installed PostgreSQL's program directory:
// Debian's /usr/lib/postgresql/N/bin (its /usr/bin has only client
// wrappers and no initdb), else wherever PATH has initdb.
func postgresBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return pgVersion(b) - pgVersion(a) })
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if isExecutable(filepath.Join(d, "initdb")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("dbtest: PostgreSQL's initdb not found (looked in /usr/lib/postgresql/*/bin, pg_config --bindir and PATH): %s", installHint)
}

// pgVersion is the major version in /usr/lib/postgresql/N/bin, 0 if none.
func pgVersion(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}
