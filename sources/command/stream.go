package command

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// sniffLen is how many leading bytes a Stream keeps for Sniff.
const sniffLen = 64

// Stream is a running dump command's output. Read it to the end, then call
// Wait (the component's Finish check) and Close; Close alone, at any time,
// kills the command. Read and Close may be called from different
// goroutines; Read itself is not for concurrent use.
type Stream struct {
	spec Spec
	meta map[string]string // the spec's, before {path} was substituted
	mode string
	ctx  context.Context
	cmd  *exec.Cmd
	out  *os.File    // stdout's pipe, or the named pipe
	hold *os.File    // pipe mode: a writer of our own on the FIFO, closed when the command exits
	dir  string      // pipe mode: the private directory of the FIFO
	log  *tailBuffer // stderr (and, in pipe mode, stdout)

	exited  chan struct{} // closed once the command has been reaped
	waitErr error         // cmd.Wait's result, set before exited is closed

	mu         sync.Mutex
	head       []byte // the first sniffLen bytes
	n          int64
	eof        bool
	stopCause  error // why the stream was stopped early, if it was
	result     error
	resultDone bool

	closeOnce sync.Once
	cleanOnce sync.Once
}

// Start runs spec with its stdout connected to the returned Stream. A
// program that does not exist fails here with ErrNotFound. ctx bounds the
// command's whole life: when it is done, the command's process group is
// killed.
func Start(ctx context.Context, spec Spec) (*Stream, error) {
	cmd, err := newCmd(ctx, spec)
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("command: %w", err)
	}
	s := &Stream{spec: spec, meta: spec.Meta(), mode: ModeStream, ctx: ctx, cmd: cmd, out: r, log: &tailBuffer{}}
	cmd.Stdout = w
	cmd.Stderr = s.log
	err = s.launch()
	// The child has its own copy of the write end; ours would keep the
	// end of the stream from ever coming.
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	return s, nil
}

// StartWithPipe runs spec, whose argv names the output file as {path}, with
// {path} a named pipe in a private temporary directory: tools that insist
// on a file name stream as if to stdout, and nothing lands on disk. The
// pipe and its directory are removed by Wait or Close. The command's own
// stdout and stderr both go to Stderr.
//
// A command that exits without opening the pipe does not leave the reader
// waiting: the reader sees the end of the stream when the command exits,
// and Wait reports the failure (or the empty dump).
//
// A tool that fsyncs its output file fails on a pipe (fsync of a FIFO is
// EINVAL), after writing everything: pg_dump -Fc needs --no-sync here.
func StartWithPipe(ctx context.Context, spec Spec) (*Stream, error) {
	name := spec.FileName
	if name == "" {
		name = "dump"
	}
	if strings.ContainsRune(name, '/') || name == "." || name == ".." {
		return nil, fmt.Errorf("command: file name %q must be a plain name", name)
	}
	dir, err := os.MkdirTemp("", "cairn-pipe-")
	if err != nil {
		return nil, fmt.Errorf("command: %w", err)
	}
	fifo := filepath.Join(dir, name)
	meta := spec.Meta()
	spec, found := spec.substitute("{path}", fifo)
	if !found {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("command: %s: StartWithPipe needs {path} in the arguments, where the output file goes", spec.name())
	}
	cmd, err := newCmd(ctx, spec)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("command: make named pipe: %w", &os.PathError{Op: "mkfifo", Path: fifo, Err: err})
	}
	// Open the read side without waiting for a writer (a plain open would
	// block until the command opened the pipe — forever if it never
	// does), then hold a writer of our own until the command exits: with
	// no writer at all, a read would see the end of the stream before the
	// command had even opened the pipe. Both stay non-blocking, which the
	// runtime's poller handles, so Close can interrupt a Read.
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("command: %w", err)
	}
	hold, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		r.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("command: %w", err)
	}
	s := &Stream{spec: spec, meta: meta, mode: ModePipe, ctx: ctx, cmd: cmd, out: r, hold: hold, dir: dir, log: &tailBuffer{}}
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	if err := s.launch(); err != nil {
		hold.Close()
		r.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// launch starts the command and a goroutine that reaps it as soon as it
// exits, so that no zombie is left whatever the consumer does.
func (s *Stream) launch() error {
	if err := s.cmd.Start(); err != nil {
		return startErr(s.spec, err)
	}
	s.exited = make(chan struct{})
	delay := waitDelay
	go func() {
		s.waitErr = s.cmd.Wait()
		if s.hold != nil {
			s.hold.Close()
		}
		close(s.exited)
		// A child the command left running (a shell's background job)
		// may keep stdout open, and the reader would never see the end.
		// The command is done: kill what it left once the delay is over.
		// Output already in the pipe is still read; the group outlives
		// its leader only while such children exist, so its ID cannot
		// have been reused.
		time.AfterFunc(delay, func() {
			s.mu.Lock()
			eof := s.eof
			s.mu.Unlock()
			if !eof {
				killGroup(s.cmd)
			}
		})
	}()
	return nil
}

// Read reads the command's output. At the end of the output it waits for
// the command to exit and returns its failure, if any, instead of io.EOF:
// a reader that never calls Wait still cannot take a failed dump for a
// complete one.
func (s *Stream) Read(p []byte) (int, error) {
	n, err := s.out.Read(p)
	s.mu.Lock()
	if k := min(n, sniffLen-len(s.head)); k > 0 {
		s.head = append(s.head, p[:k]...)
	}
	s.n += int64(n)
	if err == io.EOF {
		s.eof = true
	}
	cause := s.stopCause
	s.mu.Unlock()
	switch {
	case err == nil:
		return n, nil
	case cause != nil:
		return n, fmt.Errorf("command: %s: %w", s.spec.name(), cause)
	case err == io.EOF:
		if ferr := s.finish(); ferr != nil {
			return n, ferr
		}
		return n, io.EOF
	default:
		return n, fmt.Errorf("command: read the output of %s: %w", s.spec.name(), err)
	}
}

// Wait waits for the command to exit and reports how it went: an
// *ExitError for a failure status or a signal, an error wrapping ErrEmpty
// for an empty dump, one wrapping ErrStopped if the output was not read to
// its end (the command is then killed). Use it as the component's Finish.
// When ctx is done first, the command is killed.
func (s *Stream) Wait(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.stop(context.Cause(ctx)) })
	defer stop()
	s.mu.Lock()
	eof, cause := s.eof, s.stopCause
	s.mu.Unlock()
	if !eof && cause == nil {
		// The consumer should have read everything. One more read tells
		// an output that has just ended from one that was left unread.
		var b [1]byte
		n, err := s.Read(b[:])
		if n > 0 {
			s.stop(fmt.Errorf("%w (Wait was called with output left unread)", ErrStopped))
		} else if err != nil && err != io.EOF {
			s.cleanup()
			return err
		}
	}
	err := s.finish()
	s.cleanup()
	return err
}

// finish waits for the command to be reaped and works out its result, once.
func (s *Stream) finish() error {
	<-s.exited
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resultDone {
		return s.result
	}
	s.resultDone = true
	switch {
	case s.stopCause != nil:
		s.result = fmt.Errorf("command: %s: %w", s.spec.name(), s.stopCause)
	default:
		s.result = exitResult(s.ctx, s.spec, s.cmd, s.waitErr, s.log)
		if s.result == nil && s.n == 0 && !s.spec.AllowEmpty {
			s.result = fmt.Errorf("command: %s exited with status 0 but %w (if an empty dump is expected: allow_empty: true in cairn.yaml, --allow-empty on the command line)", s.spec.name(), ErrEmpty)
		}
	}
	return s.result
}

// stop kills the command's process group unless the command is finished
// (exited, and its output read to the end), recording cause as the
// stream's result.
func (s *Stream) stop(cause error) {
	s.mu.Lock()
	done := s.eof
	select {
	case <-s.exited:
	default:
		done = false
	}
	if !done && s.stopCause == nil && !s.resultDone {
		s.stopCause = cause
	}
	s.mu.Unlock()
	if !done {
		killGroup(s.cmd)
	}
}

// Close releases the stream. Before the end of the output it kills the
// command (the backup failed elsewhere, or the consumer gave up) and reaps
// it: no zombie, no hang. Always call it; after Wait it only releases.
func (s *Stream) Close() error {
	s.closeOnce.Do(func() {
		s.stop(ErrStopped)
		s.out.Close()
		<-s.exited
		s.cleanup()
	})
	return nil
}

// cleanup removes the named pipe's directory.
func (s *Stream) cleanup() {
	s.cleanOnce.Do(func() {
		if s.dir != "" {
			os.RemoveAll(s.dir)
		}
	})
}

// Stderr returns the last 64 KiB of the command's stderr (in pipe mode,
// stdout too), for the snapshot's log. Safe to call at any time.
func (s *Stream) Stderr() []byte { return s.log.Bytes() }

// BytesRead is how many bytes of output have been read so far.
func (s *Stream) BytesRead() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// Sniff recognises compression in the output read so far (see Sniff): the
// caller checks it once reading has started and warns, with
// CompressionAdvice, that the dump will not deduplicate.
func (s *Stream) Sniff() (kind string, compressed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Sniff(s.head)
}

// Meta returns the manifest metadata: the command line, the mode and, once
// the command has exited, its exit status.
func (s *Stream) Meta() map[string]string {
	m := maps.Clone(s.meta)
	m[MetaMode] = s.mode
	select {
	case <-s.exited:
		m[MetaExitStatus] = exitStatus(s.cmd.ProcessState)
	default:
	}
	return m
}
