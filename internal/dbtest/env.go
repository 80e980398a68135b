package dbtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// UnprivilegedUser is the system user the servers run as when the tests
// run as root.
const UnprivilegedUser = "cairntest"

// installHint ends every "binary not found" failure.
const installHint = "run scripts/install-databases.sh"

// account is who the servers run as: the calling user, or UnprivilegedUser
// when the caller is root.
type account struct {
	name     string
	uid, gid int
	cred     *syscall.Credential // nil: run as the caller
}

var (
	accountOnce sync.Once
	accountVal  *account
	accountErr  error
)

// serverAccount returns the account the servers run as, creating
// UnprivilegedUser if the caller is root and it does not exist yet.
func serverAccount() (*account, error) {
	accountOnce.Do(func() { accountVal, accountErr = lookupAccount() })
	return accountVal, accountErr
}

func lookupAccount() (*account, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("dbtest: current user: %w", err)
		}
		return &account{name: u.Username, uid: os.Getuid(), gid: os.Getgid()}, nil
	}
	u, err := user.Lookup(UnprivilegedUser)
	if err != nil {
		// Test packages run in parallel: two of them may race to create
		// the user, and useradd fails while the other holds the lock on
		// /etc/passwd. Retry, and accept a user the other one created.
		var lastErr error
		for attempt := 0; attempt < 20; attempt++ {
			out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
				"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
				"--comment", "cairn test database servers", UnprivilegedUser).CombinedOutput()
			if u, lerr := user.Lookup(UnprivilegedUser); lerr == nil {
				return accountFromUser(u)
			}
			if err != nil {
				lastErr = fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))
			}
			time.Sleep(100 * time.Millisecond)
		}
		return nil, fmt.Errorf("dbtest: the database servers refuse to run as root and user %s could not be created: %v", UnprivilegedUser, lastErr)
	}
	return accountFromUser(u)
}

func accountFromUser(u *user.User) (*account, error) {
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("dbtest: user %s: uid %q: %w", u.Username, u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("dbtest: user %s: gid %q: %w", u.Username, u.Gid, err)
	}
	return &account{
		name: u.Username, uid: uid, gid: gid,
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}},
	}, nil
}

// prepareDir creates dir for the server account: owned by it, mode 0700.
// The account must also be able to reach dir, so every parent that lacks
// the search bit for others gets it — but only below the temporary
// directory (t.TempDir's per-test parent is 0700); anything else is an
// error rather than a silent chmod of the caller's directories.
func prepareDir(dir string, acct *account) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("dbtest: %w", err)
	}
	if acct.cred == nil {
		return nil
	}
	if err := os.Chown(dir, acct.uid, acct.gid); err != nil {
		return fmt.Errorf("dbtest: %w", err)
	}
	tmp, err := filepath.EvalSymlinks(os.TempDir())
	if err != nil {
		tmp = os.TempDir()
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("dbtest: %w", err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("dbtest: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if p == tmp || !strings.HasPrefix(p, tmp+string(filepath.Separator)) {
				return fmt.Errorf("dbtest: user %s cannot reach %s: %s is not searchable by others (use a TMPDIR it can reach)", acct.name, dir, p)
			}
			if err := os.Chmod(p, fi.Mode().Perm()|0o011); err != nil {
				return fmt.Errorf("dbtest: %w", err)
			}
		}
		if p == "/" || p == filepath.Dir(p) {
			return nil
		}
	}
}

// socketDir returns a directory for a unix socket: want if the socket path
// fits the kernel's 108-byte limit, else a short one under /tmp (test names
// make t.TempDir paths long). cleanup removes the short one.
func socketDir(want string, socketName string, acct *account) (dir string, cleanup func(), err error) {
	if len(filepath.Join(want, socketName)) < 100 {
		return want, func() {}, prepareDir(want, acct)
	}
	d, err := os.MkdirTemp("/tmp", "cdb")
	if err != nil {
		return "", nil, fmt.Errorf("dbtest: %w", err)
	}
	if err := prepareDir(d, acct); err != nil {
		os.RemoveAll(d)
		return "", nil, err
	}
	return d, func() { os.RemoveAll(d) }, nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Another process may take it before the server binds it; the servers'
// start retries with a new port when that happens.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("dbtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// findBinary looks name up in dirs first, then in PATH, then in the sbin
// directories that a non-root PATH often lacks; alternatives are tried in
// order (mariadbd before mysqld).
func findBinary(dirs []string, names ...string) (string, error) {
	for _, name := range names {
		for _, d := range dirs {
			p := filepath.Join(d, name)
			if isExecutable(p) {
				return p, nil
			}
		}
	}
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	for _, name := range names {
		for _, d := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"} {
			p := filepath.Join(d, name)
			if isExecutable(p) {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("dbtest: %s not found (looked in %s, PATH and the sbin directories): %s",
		strings.Join(names, " or "), strings.Join(append(slices.Clone(dirs), "…"), ", "), installHint)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// clientEnv is the environment for client programs: the caller's, without
// variables that would point them at another server or user.
func clientEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "MYSQL") || strings.HasPrefix(k, "MARIADB") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// serverEnv is the minimal environment for server processes: a fixed
// locale, and HOME in the server's directory (the unprivileged user has no
// home).
func serverEnv(home string) []string {
	return []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", "LANG=C", "TZ=UTC", "HOME=" + home}
}

// runAsServer runs a setup program (initdb, mariadb-install-db, pg_ctl) as
// the server account and returns its combined output.
func runAsServer(ctx context.Context, acct *account, home string, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = serverEnv(home)
	cmd.Dir = home
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: acct.cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("dbtest: %s (as %s): %w\n%s", filepath.Base(argv[0]), acct.name, err, tail(out, 4096))
	}
	return out, nil
}

// process is a running server.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been reaped
	err    error         // its Wait result, valid after exited
}

// startServer starts a server as the account in its own process group (a
// Ctrl-C to go test reaches go test, which then stops the server in order),
// with a parent-death signal so that a test binary killed by its timeout
// does not leave servers behind.
func startServer(acct *account, home, logPath string, deathSig syscall.Signal, argv ...string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("dbtest: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = serverEnv(home)
	cmd.Dir = home
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = serverProcAttr(acct.cred, deathSig)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("dbtest: start %s: %w", filepath.Base(argv[0]), err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// running reports whether the server process has not exited.
func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// waitReady polls ready until it succeeds, the process exits, or the
// deadline passes.
func (p *process) waitReady(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited during start-up (%v)", p.err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop asks the server to shut down with stopFn, waits up to timeout, then
// kills its process group.
func (p *process) stop(timeout time.Duration, stopFn func() error) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	var errs []error
	if err := stopFn(); err != nil {
		errs = append(errs, err)
	}
	select {
	case <-p.exited:
		return errors.Join(errs...)
	case <-time.After(timeout):
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
	return errors.Join(append(errs, fmt.Errorf("dbtest: %s did not stop within %v and was killed", filepath.Base(p.cmd.Path), timeout))...)
}

// tail returns the last n bytes of b, starting at a line boundary.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(bytes.TrimSpace(b))
}

// fileTail is tail of a file, for diagnostics; "" if unreadable.
func fileTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return tail(b, n)
}

// nameSeq numbers the databases that uniqueName hands out.
var nameSeq struct {
	sync.Mutex
	n int
}

// uniqueName returns a database name unique within this process (the pid
// keeps two test binaries sharing a server apart too).
func uniqueName(prefix string) string {
	nameSeq.Lock()
	defer nameSeq.Unlock()
	nameSeq.n++
	return fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), nameSeq.n)
}
