package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
)

// DirDump is a dump a command wrote into a directory. The caller archives
// Dir as a tree, then calls Done.
type DirDump struct {
	// Dir is the directory, absolute.
	Dir    string
	spec   Spec
	meta   map[string]string
	log    []byte
	status string
}

// RunToDir runs spec, with {dir} in its argv replaced by dir, for a tool
// that writes its dump as a directory (pg_dump -Fd -f {dir}, expdp with
// %U files in a directory object pointing at dir). It fails like a Stream:
// a failure exit or signal, a missing program, or — unless AllowEmpty — an
// empty directory afterwards.
//
// dir is created (mode 0700) if missing. If it exists it must be empty:
// files left from an earlier run would be archived as part of this dump.
// With Spec.Clean it is emptied instead, and emptied again if the command
// fails. Stdout and stderr both go to the log (DirDump.Log).
func RunToDir(ctx context.Context, spec Spec, dir string) (*DirDump, error) {
	if dir == "" {
		return nil, errors.New("command: RunToDir needs a directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("command: %w", err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return nil, fmt.Errorf("command: dump directory: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("command: dump directory: %w", err)
	case !fi.IsDir():
		return nil, fmt.Errorf("command: dump directory %s is not a directory", abs)
	default:
		names, err := dirNames(abs)
		if err != nil {
			return nil, err
		}
		if len(names) > 0 {
			if !spec.Clean {
				return nil, fmt.Errorf("command: dump directory %s is not empty (%d entries, e.g. %s): they would be archived as part of this dump; empty it first", abs, len(names), names[0])
			}
			if err := CleanDir(abs); err != nil {
				return nil, err
			}
		}
	}
	meta := spec.Meta()
	sub, _ := spec.substitute("{dir}", abs)
	cmd, err := newCmd(ctx, sub)
	if err != nil {
		return nil, err
	}
	log := &tailBuffer{}
	err = run(ctx, sub, cmd, log)
	if err == nil && !spec.AllowEmpty {
		names, derr := dirNames(abs)
		switch {
		case derr != nil:
			err = derr
		case len(names) == 0:
			err = fmt.Errorf("command: %s exited with status 0 but %w in %s (if an empty dump is expected: allow_empty: true in cairn.yaml, --allow-empty on the command line)", sub.name(), ErrEmpty, abs)
		}
	}
	if err != nil {
		if spec.Clean {
			// A partial dump is of no use, and the next run would have
			// to clean it anyway.
			err = errors.Join(err, CleanDir(abs))
		}
		return nil, err
	}
	return &DirDump{Dir: abs, spec: spec, meta: meta, log: log.Bytes(), status: exitStatus(cmd.ProcessState)}, nil
}

// run runs cmd to its end, its stdout and stderr into log.
func run(ctx context.Context, spec Spec, cmd *exec.Cmd, log *tailBuffer) error {
	cmd.Stdout = log
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		return startErr(spec, err)
	}
	return exitResult(ctx, spec, cmd, cmd.Wait(), log)
}

// Log returns the last 64 KiB of what the command wrote on stdout and
// stderr.
func (d *DirDump) Log() []byte { return d.log }

// Meta returns the manifest metadata: the command line (with {dir}, not
// the directory: the directory is the component's source), the mode and
// the exit status.
func (d *DirDump) Meta() map[string]string {
	m := maps.Clone(d.meta)
	m[MetaMode] = ModeDir
	m[MetaExitStatus] = d.status
	return m
}

// Sniff looks for compression in the dump: the header of a pg_dump
// directory archive's toc.dat, else the first bytes of each file at the
// top of the directory. It is advice, so unreadable files are passed over.
func (d *DirDump) Sniff() (kind string, compressed bool) {
	if k, c := sniffFile(filepath.Join(d.Dir, "toc.dat")); k != "" {
		return k, c
	}
	names, err := dirNames(d.Dir)
	if err != nil {
		return "", false
	}
	for _, name := range names {
		if k, c := sniffFile(filepath.Join(d.Dir, name)); c {
			return k, c
		}
	}
	return "", false
}

func sniffFile(path string) (kind string, compressed bool) {
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return "", false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	b := make([]byte, sniffLen)
	n, _ := io.ReadFull(f, b)
	return Sniff(b[:n])
}

// Done ends the dump's use: with Spec.Clean it empties the directory, now
// that it has been archived.
func (d *DirDump) Done() error {
	if !d.spec.Clean {
		return nil
	}
	return CleanDir(d.Dir)
}

// CleanDir removes everything inside dir, leaving dir itself (it may be a
// mount point, or carry permissions a database server needs). Symbolic
// links inside are removed, not followed. It refuses "/" and anything that
// is not a directory, symbolic links to those included.
func CleanDir(dir string) error {
	if dir == "" {
		return errors.New("command: clean: no directory given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("command: clean: %w", err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("command: clean: %w", err)
	}
	if abs == "/" || real == "/" {
		return fmt.Errorf("command: clean: refusing to empty the root directory (%s)", dir)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return fmt.Errorf("command: clean: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("command: clean: %s is not a directory", dir)
	}
	names, err := dirNames(real)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		if err := os.RemoveAll(filepath.Join(real, name)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("command: clean %s: %w", dir, err)
	}
	return nil
}

// dirNames lists dir's entries, sorted.
func dirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("command: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("command: %w", err)
	}
	slices.Sort(names)
	return names, nil
}
