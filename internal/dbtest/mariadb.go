package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MariaDB is a running throwaway MariaDB server, seen through one database.
// Copies made by WithDatabase and NewDatabase share the server.
//
// Authentication is real: root is reachable only through unix_socket
// authentication by the server's own system user (mariadb-install-db's
// default), and clients use the password account User over TCP, with the
// credentials in a client option file so they never appear in argv.
type MariaDB struct {
	Host         string // always 127.0.0.1
	Port         int
	User         string // "cairn", with all privileges
	Password     string // random per server
	Database     string // "" (none) unless chosen with WithDatabase or NewDatabase
	Socket       string
	DataDir      string
	DefaultsFile string // [client] host, port, user, password (mode 0600)

	srv *myServer
}

type myServer struct {
	acct      *account
	dir       string
	logPath   string
	proc      *process
	cleanSock func()
	client    string // the mariadb client binary
	dump      string // mariadb-dump
	stopOnce  sync.Once
	stopErr   error
}

// StartMariaDB starts a server in t.TempDir() and stops it when the test
// ends. A missing MariaDB installation fails the test.
func StartMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	m, err := LaunchMariaDB(filepath.Join(t.TempDir(), "mariadb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Error(err)
		}
	})
	return m
}

// LaunchMariaDB starts a server in dir (created if missing) for callers
// without a testing.TB, such as TestMain; the caller calls Stop and removes
// dir.
func LaunchMariaDB(dir string) (*MariaDB, error) {
	acct, err := serverAccount()
	if err != nil {
		return nil, err
	}
	var bins [4]string
	for i, names := range [][]string{
		{"mariadbd", "mysqld"},
		{"mariadb-install-db", "mysql_install_db"},
		{"mariadb", "mysql"},
		{"mariadb-dump", "mysqldump"},
	} {
		if bins[i], err = findBinary(nil, names...); err != nil {
			return nil, err
		}
	}
	server, install := bins[0], bins[1]
	if err := prepareDir(dir, acct); err != nil {
		return nil, err
	}
	sock, cleanSock, err := socketDir(filepath.Join(dir, "sock"), "mariadbd.sock", acct)
	if err != nil {
		return nil, err
	}
	pw := make([]byte, 12)
	rand.Read(pw)
	m := &MariaDB{
		Host: "127.0.0.1", User: "cairn", Password: hex.EncodeToString(pw),
		Socket: filepath.Join(sock, "mariadbd.sock"), DataDir: filepath.Join(dir, "data"),
		DefaultsFile: filepath.Join(dir, "client.cnf"),
		srv: &myServer{acct: acct, dir: dir, logPath: filepath.Join(dir, "mariadbd.log"),
			cleanSock: cleanSock, client: bins[2], dump: bins[3]},
	}
	fail := func(err error) (*MariaDB, error) {
		cleanSock()
		return nil, err
	}

	// The test account is created while the system tables are: no server
	// option that weakens authentication is ever needed. The bootstrap
	// server runs without grant tables loaded; FLUSH PRIVILEGES loads the
	// ones just created so that CREATE USER works.
	initSQL := filepath.Join(dir, "init.sql")
	if err := os.WriteFile(initSQL, []byte(fmt.Sprintf(
		"FLUSH PRIVILEGES;\n"+
			"CREATE USER '%[1]s'@'127.0.0.1' IDENTIFIED BY '%[2]s';\n"+
			"GRANT ALL PRIVILEGES ON *.* TO '%[1]s'@'127.0.0.1' WITH GRANT OPTION;\n"+
			"CREATE USER '%[1]s'@'localhost' IDENTIFIED BY '%[2]s';\n"+
			"GRANT ALL PRIVILEGES ON *.* TO '%[1]s'@'localhost' WITH GRANT OPTION;\n",
		m.User, m.Password)), 0o644); err != nil {
		return fail(fmt.Errorf("dbtest: %w", err))
	}
	// Small, unsynced InnoDB files and no native AIO (containers often
	// limit it): the data is thrown away.
	tuning := []string{
		"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
		"--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
		"--innodb-use-native-aio=0", "--skip-log-bin", "--skip-name-resolve",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	installArgs := append([]string{install, "--no-defaults", "--datadir=" + m.DataDir,
		"--auth-root-authentication-method=socket", "--auth-root-socket-user=" + acct.name,
		"--skip-test-db", "--extra-file=" + initSQL,
		"--tmpdir=" + dir}, tuning...)
	if _, err := runAsServer(ctx, acct, dir, installArgs...); err != nil {
		return fail(err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return fail(err)
		}
		m.Port = port
		if err := os.WriteFile(m.DefaultsFile, []byte(fmt.Sprintf(
			"[client]\nhost=%s\nport=%d\nprotocol=tcp\nuser=%s\npassword=%s\n",
			m.Host, port, m.User, m.Password)), 0o600); err != nil {
			return fail(fmt.Errorf("dbtest: %w", err))
		}
		proc, err := startServer(acct, dir, m.srv.logPath, syscall.SIGTERM, append([]string{server, "--no-defaults",
			"--datadir=" + m.DataDir, "--socket=" + m.Socket, "--port=" + strconv.Itoa(port),
			"--bind-address=127.0.0.1", "--pid-file=" + filepath.Join(dir, "mariadbd.pid"),
			"--log-error=" + m.srv.logPath, "--tmpdir=" + dir, "--max-connections=40"}, tuning...)...)
		if err != nil {
			return fail(err)
		}
		m.srv.proc = proc
		err = proc.waitReady(60*time.Second, func() error {
			_, err := m.Client(context.Background(), "SELECT 1")
			return err
		})
		if err == nil {
			return m, nil
		}
		log := fileTail(m.srv.logPath, 2048)
		lastErr = fmt.Errorf("dbtest: mariadbd on 127.0.0.1:%d: %w\n%s", port, err, log)
		proc.stop(20*time.Second, func() error { return proc.cmd.Process.Signal(syscall.SIGTERM) })
		if !strings.Contains(log, "already in use") {
			break
		}
	}
	return fail(lastErr)
}

// Stop shuts the server down (SIGTERM, its normal shutdown) and waits for
// it. Safe to call more than once, and on any copy.
func (m *MariaDB) Stop() error {
	s := m.srv
	s.stopOnce.Do(func() {
		s.stopErr = s.proc.stop(30*time.Second, func() error {
			return s.proc.cmd.Process.Signal(syscall.SIGTERM)
		})
		s.cleanSock()
	})
	return s.stopErr
}

// ClientBin is the path of the mariadb client (or mysql).
func (m *MariaDB) ClientBin() string { return m.srv.client }

// DumpBin is the path of mariadb-dump (or mysqldump).
func (m *MariaDB) DumpBin() string { return m.srv.dump }

// ClientArgs are the connection options for mariadb and mariadb-dump. They
// must come first on the command line (an option-file rule).
func (m *MariaDB) ClientArgs() []string {
	return []string{"--defaults-file=" + m.DefaultsFile}
}

// Env is the caller's environment without MYSQL_*/MARIADB_* variables that
// could point a client elsewhere.
func (m *MariaDB) Env() []string { return clientEnv() }

// LogTail returns the end of the server's error log.
func (m *MariaDB) LogTail() string { return fileTail(m.srv.logPath, 4096) }

// WithDatabase returns a copy of m that uses database name.
func (m *MariaDB) WithDatabase(name string) *MariaDB {
	c := *m
	c.Database = name
	return &c
}

// NewDatabase creates an empty database with a unique name, dropped when
// the test ends, and returns a copy of m that uses it.
func (m *MariaDB) NewDatabase(t testing.TB) *MariaDB {
	t.Helper()
	name := uniqueName("cairn")
	admin := m.WithDatabase("")
	admin.Exec(t, "CREATE DATABASE "+name)
	t.Cleanup(func() {
		if !admin.srv.proc.running() {
			return // stopped already: the database went with it
		}
		if _, err := admin.Client(context.Background(), "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return m.WithDatabase(name)
}

// Client runs sql through the mariadb client (batch mode: tab-separated
// rows, no headers) and returns its trimmed output; it stops at the first
// error.
func (m *MariaDB) Client(ctx context.Context, sql string) (string, error) {
	args := append(m.ClientArgs(), "--batch", "--skip-column-names")
	if m.Database != "" {
		args = append(args, m.Database)
	}
	cmd := exec.CommandContext(ctx, m.srv.client, args...)
	cmd.Env = m.Env()
	cmd.Stdin = strings.NewReader(sql)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("dbtest: mariadb %s: %w: %s", m.Database, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// Exec runs sql and fails the test on error.
func (m *MariaDB) Exec(t testing.TB, sql string) {
	t.Helper()
	if _, err := m.Client(t.Context(), sql); err != nil {
		t.Fatal(err)
	}
}

// Query runs sql and returns its output (see Client); it fails the test on
// error.
func (m *MariaDB) Query(t testing.TB, sql string) string {
	t.Helper()
	out, err := m.Client(t.Context(), sql)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
