package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// RestoreFromReader runs spec (pg_restore -d DB, psql, mariadb) with r on
// its stdin and fails like the backup side: an *ExitError with the end of
// its output for a failure status or a signal, ErrNotFound for a missing
// program. Stdout and stderr both go into that quoted tail.
//
// If reading r fails (a damaged repository, say), the command is killed
// rather than given a clean end of input: a tool that saw end-of-file
// would take the truncated dump for a whole one and commit it. Run the
// tool so that a kill leaves nothing behind (pg_restore
// --single-transaction, psql --single-transaction -v ON_ERROR_STOP=1 —
// without ON_ERROR_STOP psql exits 0 after failed statements). A command
// that exits successfully without reading all of r succeeds: the tool
// decided it had what it needed.
func RestoreFromReader(ctx context.Context, spec Spec, r io.Reader) error {
	cmd, err := newCmd(ctx, spec)
	if err != nil {
		return err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("command: %w", err)
	}
	log := &tailBuffer{}
	cmd.Stdin = pr
	cmd.Stdout = log
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return startErr(spec, err)
	}
	pr.Close() // the command has its copy

	var (
		mu      sync.Mutex
		readErr error
	)
	fed := make(chan error, 1) // the write error, nil, once feeding has ended
	go func() {
		rerr, werr := feed(ctx, pw, r)
		if rerr != nil {
			mu.Lock()
			readErr = rerr
			mu.Unlock()
			killGroup(cmd)
		}
		pw.Close()
		fed <- werr
	}()
	waitErr := cmd.Wait()
	// Unblock a write the command will never read (a child of it may
	// still hold its stdin), then wait for the feeding to end, so that r is
	// no longer in use when this returns — unless ctx ends first while a
	// read of r is stuck.
	pw.Close()
	var werr error
	select {
	case werr = <-fed:
	case <-ctx.Done():
		return fmt.Errorf("command: %s: %w", spec.name(), context.Cause(ctx))
	}
	if ctx.Err() != nil {
		return fmt.Errorf("command: %s: %w", spec.name(), context.Cause(ctx))
	}
	mu.Lock()
	rerr := readErr
	mu.Unlock()
	if rerr != nil {
		// Our kill, not the tool's failure.
		return fmt.Errorf("command: read the dump for %s: %w (it was killed so that it does not restore a truncated dump)", spec.name(), rerr)
	}
	if err := exitResult(ctx, spec, cmd, waitErr, log); err != nil {
		return err
	}
	if werr != nil && !errors.Is(werr, syscall.EPIPE) && !errors.Is(werr, os.ErrClosed) {
		return fmt.Errorf("command: feed %s: %w", spec.name(), werr)
	}
	return nil
}

// feed copies r to w until r ends, reading r fails (rerr) or writing to the
// command fails (werr: it exited or closed its stdin).
func feed(ctx context.Context, w io.Writer, r io.Reader) (rerr, werr error) {
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err, nil
		}
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil, werr
			}
		}
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return err, nil
		}
	}
}

// RestoreViaFile is for tools that cannot read stdin (impdp): it writes r
// to a file in tmpdir (os.TempDir() if ""), replaces {path} (the file's
// path) and {name} (its base name, for tools given a directory and a file
// name separately) in argv, runs the command, and removes the file
// whatever happens. The file is named Spec.FileName if set (and must not
// exist yet), else a random name; its mode is Spec.FileMode, 0600 by
// default. Failures are reported as by RestoreFromReader.
func RestoreViaFile(ctx context.Context, spec Spec, r io.Reader, tmpdir string) error {
	if tmpdir == "" {
		tmpdir = os.TempDir()
	}
	mode := spec.FileMode.Perm()
	if mode == 0 {
		mode = 0o600
	}
	var f *os.File
	var err error
	if spec.FileName != "" {
		if strings.ContainsRune(spec.FileName, '/') || spec.FileName == "." || spec.FileName == ".." {
			return fmt.Errorf("command: file name %q must be a plain name", spec.FileName)
		}
		f, err = os.OpenFile(filepath.Join(tmpdir, spec.FileName), os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	} else {
		f, err = os.CreateTemp(tmpdir, "cairn-restore-*")
	}
	if err != nil {
		return fmt.Errorf("command: file to restore from: %w", err)
	}
	path := f.Name()
	defer os.Remove(path)
	// Check the command before writing what may be gigabytes.
	sub, found := spec.substitute("{path}", path, "{name}", filepath.Base(path))
	if !found {
		f.Close()
		return fmt.Errorf("command: %s: RestoreViaFile needs {path} or {name} in the arguments, where the file to restore from goes", spec.name())
	}
	cmd, err := newCmd(ctx, sub)
	if err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil { // exact, whatever the umask
		f.Close()
		return fmt.Errorf("command: %w", err)
	}
	if _, err := io.Copy(f, ctxReader{ctx, r}); err != nil {
		f.Close()
		return fmt.Errorf("command: write the dump to %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("command: write the dump to %s: %w", path, err)
	}
	return run(ctx, sub, cmd, &tailBuffer{})
}

// ctxReader stops a copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Run runs spec to its end with nothing on stdin and fails like the rest
// of the package. It is the restore side of RunToDir, once the directory
// is back on disk: pg_restore -d DB DIR, impdp with DIRECTORY=.
func Run(ctx context.Context, spec Spec) error {
	cmd, err := newCmd(ctx, spec)
	if err != nil {
		return err
	}
	return run(ctx, spec, cmd, &tailBuffer{})
}
