package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spec describes a command to run.
type Spec struct {
	// Argv is the program and its arguments; the program is looked up in
	// PATH. {dir} (RunToDir) and {path} or {name} (StartWithPipe,
	// RestoreViaFile) are replaced in every argument.
	Argv []string
	// Shell runs Argv[0] as a script with /bin/sh -c; Argv[1:] become its
	// positional parameters $1, $2, …. Substituted paths are shell-quoted.
	Shell bool
	// Env is added to cairn's environment, NAME=VALUE, later entries
	// winning: the place for PGPASSFILE, MYSQL_PWD and the like.
	Env []string
	// Dir is the working directory; "" keeps cairn's.
	Dir string
	// AllowEmpty accepts a command that succeeds without writing anything
	// (an empty directory for RunToDir). By default that fails: a dump
	// tool that exits 0 with no output has almost always failed quietly.
	AllowEmpty bool
	// Clean, for RunToDir, makes the directory cairn's scratch space:
	// emptied before the command runs (leftovers of an interrupted run),
	// after a failed run, and by DirDump.Done once archived.
	Clean bool
	// FileName names the named pipe of StartWithPipe and the file of
	// RestoreViaFile, for tools that choose a format by extension or need
	// a fixed name (impdp's DUMPFILE). Default: "dump" for the pipe, a
	// random name for the file.
	FileName string
	// FileMode is the mode of RestoreViaFile's file (default 0600); a
	// tool whose server reads it as another user (impdp) needs more.
	FileMode fs.FileMode
}

// Modes recorded in the manifest's "mode" key.
const (
	ModeStream = "stream"
	ModePipe   = "pipe"
	ModeDir    = "dir"
)

// Meta keys, recorded in the manifest's component.
const (
	MetaCommand    = "command"     // argv, shell-quoted
	MetaMode       = "mode"        // ModeStream, ModePipe or ModeDir
	MetaExitStatus = "exit_status" // "0" once the command has succeeded
)

// Meta returns the manifest metadata the spec alone determines: the command
// line, shell-quoted so that it can be pasted into a shell. Stream.Meta
// and DirDump.Meta add the mode and the exit status.
func (s Spec) Meta() map[string]string {
	return map[string]string{MetaCommand: s.commandLine()}
}

// commandLine is argv as a shell would need it typed.
func (s Spec) commandLine() string {
	if s.Shell && len(s.Argv) > 0 {
		return shellJoin(append([]string{"/bin/sh", "-c", s.Argv[0], "sh"}, s.Argv[1:]...))
	}
	return shellJoin(s.Argv)
}

// name is the command as error messages call it: the program's base name,
// or the start of the shell script.
func (s Spec) name() string {
	if len(s.Argv) == 0 {
		return "(no command)"
	}
	if s.Shell {
		script := strings.Join(strings.Fields(s.Argv[0]), " ")
		if len(script) > 60 {
			script = strings.ToValidUTF8(script[:57], "") + "..."
		}
		return "sh -c " + shellQuote(script)
	}
	return filepath.Base(s.Argv[0])
}

// shellQuote quotes s for a POSIX shell, leaving plain words alone.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	plain := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./_-", r)) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

// substitute replaces the placeholders in argv — pairs of placeholder and
// value, in order — quoting the values for the shell in a shell script. It
// reports whether any placeholder occurred.
func (s Spec) substitute(pairs ...string) (Spec, bool) {
	out := s
	out.Argv = make([]string, len(s.Argv))
	found := false
	for i, a := range s.Argv {
		var oldnew []string
		for j := 0; j+1 < len(pairs); j += 2 {
			k, v := pairs[j], pairs[j+1]
			if !strings.Contains(a, k) {
				continue
			}
			found = true
			if s.Shell && i == 0 {
				v = shellQuote(v)
			}
			oldnew = append(oldnew, k, v)
		}
		if oldnew != nil {
			// One pass: a value containing a placeholder stays as it is.
			a = strings.NewReplacer(oldnew...).Replace(a)
		}
		out.Argv[i] = a
	}
	return out, found
}

// Errors to test with errors.Is.
var (
	// ErrNotFound: the program does not exist or is not executable.
	ErrNotFound = errors.New("command not found")
	// ErrEmpty: the command succeeded but wrote nothing, and the spec
	// does not allow that.
	ErrEmpty = errors.New("produced no output")
	// ErrStopped: the stream was closed or waited for before its end; the
	// command was killed.
	ErrStopped = errors.New("stopped before the end of its output")
)

// ExitError is a command that failed: a non-zero exit status or death by
// a signal.
type ExitError struct {
	Command string         // the program's name
	Status  int            // the exit status; -1 when killed by a signal
	Signal  syscall.Signal // the signal that killed it, or 0
	Stderr  string         // its last lines on stderr (and stdout, unless that was the dump); "" if none

	shell bool // the command was a shell script: 127 means "not found"
}

func (e *ExitError) Error() string {
	var b strings.Builder
	b.WriteString("command: ")
	b.WriteString(e.Command)
	if e.Signal != 0 {
		fmt.Fprintf(&b, " was killed by signal %d (%v)", int(e.Signal), e.Signal)
	} else {
		fmt.Fprintf(&b, " exited with status %d", e.Status)
		if e.Status == 127 && e.shell {
			b.WriteString(" (the shell found no such command)")
		}
	}
	if e.Stderr == "" {
		b.WriteString(", writing nothing on stderr")
	} else {
		b.WriteString(": ")
		b.WriteString(strings.ReplaceAll(e.Stderr, "\n", "\n\t"))
	}
	return b.String()
}

// stderrLimit is how much of a command's stderr is kept: enough for a
// dump tool's complete warnings, bounded for a chatty one.
const stderrLimit = 64 << 10

// quoteLines and quoteBytes bound the stderr quoted in an error.
const (
	quoteLines = 6
	quoteBytes = 1500
)

// tailBuffer is an io.Writer that keeps the last stderrLimit bytes written
// to it. Safe for concurrent use.
type tailBuffer struct {
	mu    sync.Mutex
	buf   []byte
	total int64
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total += int64(len(p))
	if len(p) >= stderrLimit {
		t.buf = append(t.buf[:0], p[len(p)-stderrLimit:]...)
		return len(p), nil
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*stderrLimit {
		// Trim rarely, not on every write: copying 64 KiB per line of a
		// verbose tool's output would cost more than the dump.
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-stderrLimit:]...)
	}
	return len(p), nil
}

// Bytes returns a copy of the kept tail, prefixed with a note when earlier
// output was dropped.
func (t *tailBuffer) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if len(b) > stderrLimit {
		b = b[len(b)-stderrLimit:]
	}
	if t.total > int64(len(b)) {
		note := fmt.Sprintf("[cairn: the first %d bytes of output were dropped]\n", t.total-int64(len(b)))
		return append([]byte(note), b...)
	}
	return bytes.Clone(b)
}

// quote returns the last few lines, for an error message.
func (t *tailBuffer) quote() string {
	t.mu.Lock()
	b := bytes.Clone(t.buf) // Write may trim t.buf in place
	t.mu.Unlock()
	b = bytes.TrimRight(b, " \t\r\n")
	if len(b) > quoteBytes {
		b = b[len(b)-quoteBytes:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) > quoteLines {
		lines = lines[len(lines)-quoteLines:]
	}
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " \t\r")
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// waitDelay bounds how long a command's output pipes may stay open after
// it exited, held by a child it left running; then the child is killed
// (stdout) or the pipe closed (stderr). A variable for the tests.
var waitDelay = 5 * time.Second

// newCmd builds the command for spec: looked up in PATH (a missing program
// fails here, clearly), in a new session so that killing its process group
// reaches every process it started and it has no terminal to prompt on,
// killed with its group when ctx is done.
func newCmd(ctx context.Context, spec Spec) (*exec.Cmd, error) {
	if len(spec.Argv) == 0 || spec.Argv[0] == "" {
		return nil, errors.New("command: no command given")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("command: %s: %w", spec.name(), err)
	}
	var path string
	var args []string
	if spec.Shell {
		path = "/bin/sh"
		args = append([]string{"-c", spec.Argv[0], "sh"}, spec.Argv[1:]...)
	} else {
		prog := spec.Argv[0]
		if spec.Dir != "" && strings.Contains(prog, "/") && !filepath.IsAbs(prog) {
			// Relative to the command's directory, as a shell started
			// there would see it; made absolute so that exec does not
			// resolve it against Dir a second time.
			abs, err := filepath.Abs(filepath.Join(spec.Dir, prog))
			if err != nil {
				return nil, fmt.Errorf("command: %s: %w", prog, err)
			}
			prog = abs
		}
		p, err := exec.LookPath(prog)
		if err != nil {
			if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("command: %w: %s", ErrNotFound, spec.Argv[0])
			}
			return nil, fmt.Errorf("command: %s: %w", spec.Argv[0], err)
		}
		path, args = p, spec.Argv[1:]
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Args[0] = spec.Argv[0]
	if spec.Shell {
		cmd.Args[0] = "sh"
	}
	if len(spec.Env) > 0 {
		cmd.Env = append(os.Environ(), spec.Env...)
	}
	cmd.Dir = spec.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = waitDelay
	return cmd, nil
}

// killGroup kills the command's whole process group (its session: see
// newCmd), so that a shell's children or a tool's workers do not outlive it.
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// startErr wraps an error from exec.Cmd.Start.
func startErr(spec Spec, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("command: %w: %s", ErrNotFound, spec.Argv[0])
	}
	return fmt.Errorf("command: start %s: %w", spec.name(), err)
}

// exitResult turns the outcome of cmd.Wait into nil or an error: the
// context's cause when the command failed after ctx ended (the kill was
// ours), an *ExitError for a failure status or a signal.
func exitResult(ctx context.Context, spec Spec, cmd *exec.Cmd, waitErr error, log *tailBuffer) error {
	st := cmd.ProcessState
	if st == nil {
		return fmt.Errorf("command: %s: %w", spec.name(), waitErr)
	}
	if !st.Success() && ctx.Err() != nil {
		return fmt.Errorf("command: %s: %w", spec.name(), context.Cause(ctx))
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok {
		switch {
		case ws.Signaled():
			return &ExitError{Command: spec.name(), Status: -1, Signal: ws.Signal(), Stderr: log.quote(), shell: spec.Shell}
		case ws.Exited() && ws.ExitStatus() != 0:
			return &ExitError{Command: spec.name(), Status: ws.ExitStatus(), Stderr: log.quote(), shell: spec.Shell}
		}
	} else if !st.Success() {
		return &ExitError{Command: spec.name(), Status: st.ExitCode(), Stderr: log.quote(), shell: spec.Shell}
	}
	// The command succeeded. ErrWaitDelay means a child it left behind
	// still held its stderr: the dump itself is complete, so that is not
	// a failure.
	if waitErr != nil && !errors.Is(waitErr, exec.ErrWaitDelay) {
		return fmt.Errorf("command: %s: %w", spec.name(), waitErr)
	}
	return nil
}

// exitStatus renders the process's exit for the manifest.
func exitStatus(st *os.ProcessState) string {
	if st == nil {
		return ""
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "signal " + strconv.Itoa(int(ws.Signal()))
	}
	return strconv.Itoa(st.ExitCode())
}
