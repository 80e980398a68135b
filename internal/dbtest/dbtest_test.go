package dbtest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// serverPid returns the pid on the first line of a server's pid file.
func serverPid(t *testing.T, pidFile string) int {
	t.Helper()
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		t.Fatalf("%s: %v", pidFile, err)
	}
	return pid
}

// processUID returns the real uid of process pid.
func processUID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "Uid:" {
			uid, _ := strconv.Atoi(f[1])
			return uid
		}
	}
	t.Fatalf("no Uid in /proc/%d/status", pid)
	return -1
}

// checkServer checks what both servers promise: an unprivileged process,
// on a port of its own, that ends with Stop.
func checkServer(t *testing.T, pid, port int, stop func() error) {
	t.Helper()
	if port == 5432 || port == 3306 {
		t.Errorf("server on the system service's port %d", port)
	}
	if uid := processUID(t, pid); uid == 0 {
		t.Errorf("server process %d runs as root", pid)
	}
	if os.Geteuid() == 0 {
		acct, err := serverAccount()
		if err != nil || acct.name != UnprivilegedUser || processUID(t, pid) != acct.uid {
			t.Errorf("server account %+v, %v", acct, err)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		t.Errorf("server process %d still exists after Stop", pid)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
		c.Close()
		t.Errorf("port %d still accepts connections after Stop", port)
	}
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	p := StartPostgres(t)
	if got := p.Query(t, "SELECT current_user, current_setting('port'), current_setting('fsync')"); got != "postgres|"+strconv.Itoa(p.Port)+"|off" {
		t.Errorf("server settings %q", got)
	}
	a, b := p.NewDatabase(t), p.NewDatabase(t)
	if a.Database == b.Database || a.Database == "postgres" {
		t.Errorf("NewDatabase gave %q and %q", a.Database, b.Database)
	}
	a.Exec(t, "CREATE TABLE only_in_a (x int); INSERT INTO only_in_a VALUES (1), (2)")
	if got := b.Query(t, "SELECT to_regclass('only_in_a') IS NULL"); got != "t" {
		t.Error("databases are not isolated")
	}
	if _, err := a.Psql(t.Context(), "SELECT * FROM no_such_table"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Psql of a failing query: %v", err)
	}
	// The environment alone reaches the database: what a dump command
	// configured through Env would see.
	cmd := exec.Command(p.Bin("psql"), "-X", "-A", "-t", "-c", "SELECT count(*) FROM only_in_a")
	cmd.Env = a.Env()
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "2" {
		t.Errorf("psql through Env: %q, %v", out, err)
	}
	// The socket works too, for tools configured with it.
	if got := p.Query(t, "SELECT 1"); got != "1" {
		t.Errorf("SELECT 1 = %q", got)
	}
	sock := filepath.Join(p.SocketDir, ".s.PGSQL."+strconv.Itoa(p.Port))
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket %s: %v", sock, err)
	}
	checkServer(t, serverPid(t, filepath.Join(p.DataDir, "postmaster.pid")), p.Port, p.Stop)
}

func TestMariaDB(t *testing.T) {
	t.Parallel()
	m := StartMariaDB(t)
	if got := m.Query(t, "SELECT CURRENT_USER(), @@port, @@skip_grant_tables"); got != "cairn@127.0.0.1\t"+strconv.Itoa(m.Port)+"\t0" {
		t.Errorf("server settings %q", got)
	}
	a, b := m.NewDatabase(t), m.NewDatabase(t)
	a.Exec(t, "CREATE TABLE only_in_a (x INT); INSERT INTO only_in_a VALUES (1), (2)")
	if got := b.Query(t, "SHOW TABLES"); got != "" {
		t.Errorf("databases are not isolated: %q", got)
	}
	if got := a.Query(t, "SELECT COUNT(*) FROM only_in_a"); got != "2" {
		t.Errorf("count %q", got)
	}
	// Authentication is real: no password, a wrong one, or root over TCP
	// are all refused.
	for _, args := range [][]string{
		{"-u", m.User},
		{"-u", m.User, "--password=wrong"},
		{"-u", "root"},
	} {
		cmd := exec.Command(m.ClientBin(), append([]string{"--no-defaults", "-h", m.Host, "-P", strconv.Itoa(m.Port), "-e", "SELECT 1"}, args...)...)
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "Access denied") {
			t.Errorf("mariadb %v: %q, %v; want access denied", args, out, err)
		}
	}
	if fi, err := os.Stat(m.Socket); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket %s: %v", m.Socket, err)
	}
	checkServer(t, serverPid(t, filepath.Join(filepath.Dir(m.DataDir), "mariadbd.pid")), m.Port, m.Stop)
}

func TestShared(t *testing.T) {
	t.Parallel()
	var s Shared
	p1 := s.Postgres(t)
	p2 := s.Postgres(t)
	if p1 != p2 {
		t.Error("Shared started two servers")
	}
	pid := serverPid(t, filepath.Join(p1.DataDir, "postmaster.pid"))
	dir := filepath.Dir(p1.DataDir)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Close left %s: %v", dir, err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		t.Errorf("server %d still running after Close", pid)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestMissingBinary(t *testing.T) {
	_, err := findBinary([]string{t.TempDir()}, "mariadbd-not-installed", "mysqld-not-installed")
	if err == nil || !strings.Contains(err.Error(), "run scripts/install-databases.sh") {
		t.Errorf("error %v", err)
	}
}

func TestSocketDirFallback(t *testing.T) {
	acct, err := serverAccount()
	if err != nil {
		t.Fatal(err)
	}
	long := filepath.Join(t.TempDir(), strings.Repeat("x", 100))
	dir, cleanup, err := socketDir(long, ".s.PGSQL.65535", acct)
	if err != nil {
		t.Fatal(err)
	}
	if len(filepath.Join(dir, ".s.PGSQL.65535")) >= 100 {
		t.Errorf("socket dir %s too long", dir)
	}
	cleanup()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cleanup left %s", dir)
	}
}
