package command

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStreamOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name       string
		spec       Spec
		wantOut    string
		wantStatus int            // with wantSignal: an *ExitError; both 0: see wantErr
		wantSignal syscall.Signal // the signal that killed it
		wantErr    error          // errors.Is target, for non-exit failures
		wantMsg    []string       // substrings of the error message
		wantStderr string         // substring of Stderr()
	}{
		{
			name:    "success",
			spec:    Spec{Argv: []string{"printf", "%s\\n", "one", "two"}},
			wantOut: "one\ntwo\n",
		},
		{
			name:       "success with warnings on stderr",
			spec:       Spec{Argv: []string{"echo data; echo 'warning: careful' >&2"}, Shell: true},
			wantOut:    "data\n",
			wantStderr: "warning: careful",
		},
		{
			name:       "exit 1 after partial output",
			spec:       Spec{Argv: []string{"echo partial; echo 'pg_dump: error: query failed: out of memory' >&2; exit 1"}, Shell: true},
			wantOut:    "partial\n",
			wantStatus: 1,
			wantMsg:    []string{"exited with status 1: pg_dump: error: query failed: out of memory"},
			wantStderr: "out of memory",
		},
		{
			name:       "exit 1 writing only to stderr",
			spec:       Spec{Argv: []string{"echo 'connection refused' >&2; echo 'is the server running?' >&2; exit 1"}, Shell: true},
			wantStatus: 1,
			wantMsg:    []string{"exited with status 1: connection refused\n\tis the server running?"},
		},
		{
			name:       "exit 1 silently",
			spec:       Spec{Argv: []string{"false"}},
			wantStatus: 1,
			wantMsg:    []string{"command: false exited with status 1, writing nothing on stderr"},
		},
		{
			name:       "killed by a signal",
			spec:       Spec{Argv: []string{"echo started; kill -9 $$"}, Shell: true},
			wantOut:    "started\n",
			wantStatus: -1, wantSignal: syscall.SIGKILL,
			wantMsg: []string{"was killed by signal 9 (killed)"},
		},
		{
			name:       "missing binary inside a shell",
			spec:       Spec{Argv: []string{"pg_dumpx mydb"}, Shell: true},
			wantStatus: 127,
			wantMsg:    []string{"exited with status 127 (the shell found no such command)", "pg_dumpx"},
		},
		{
			name:    "empty output",
			spec:    Spec{Argv: []string{"true"}},
			wantErr: ErrEmpty,
			wantMsg: []string{"command: true exited with status 0 but produced no output (if an empty dump is expected: allow_empty"},
		},
		{
			name: "empty output allowed",
			spec: Spec{Argv: []string{"true"}, AllowEmpty: true},
		},
		{
			name:    "environment and directory",
			spec:    Spec{Argv: []string{`printf '%s %s' "$CAIRN_TEST_VAR" "$(pwd)"`}, Shell: true, Env: []string{"CAIRN_TEST_VAR=first", "CAIRN_TEST_VAR=second"}, Dir: "/"},
			wantOut: "second /",
		},
		{
			name:    "shell positional parameters are not parsed",
			spec:    Spec{Argv: []string{`printf '%s|' "$@"`, "a b", "$HOME", "'q'"}, Shell: true},
			wantOut: "a b|$HOME|'q'|",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := bounded(t, 20*time.Second)
			s, err := Start(ctx, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			out, rerr, werr := readAll(t, ctx, s)
			if string(out) != tc.wantOut {
				t.Errorf("output %q, want %q", out, tc.wantOut)
			}
			if tc.wantStderr != "" && !strings.Contains(string(s.Stderr()), tc.wantStderr) {
				t.Errorf("Stderr() = %q, want it to contain %q", s.Stderr(), tc.wantStderr)
			}
			failing := tc.wantStatus != 0 || tc.wantErr != nil
			if !failing {
				if rerr != nil || werr != nil {
					t.Fatalf("read: %v, wait: %v", rerr, werr)
				}
				if got := s.Meta()[MetaExitStatus]; got != "0" {
					t.Errorf("Meta exit status %q, want 0", got)
				}
				return
			}
			// Read reports the failure at the end of the stream, so a
			// reader that never calls Wait cannot mistake it for a
			// complete dump; Wait reports the same.
			if rerr == nil || werr == nil || rerr.Error() != werr.Error() {
				t.Fatalf("read error %v and wait error %v, want the same failure", rerr, werr)
			}
			if tc.wantErr != nil && !errors.Is(werr, tc.wantErr) {
				t.Errorf("error %v, want %v", werr, tc.wantErr)
			}
			if tc.wantStatus != 0 {
				isExitError(t, werr, tc.wantStatus, tc.wantSignal)
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(werr.Error(), m) {
					t.Errorf("error message\n%s\nlacks %q", werr, m)
				}
			}
		})
	}
}

func TestStartMissingBinary(t *testing.T) {
	for _, argv0 := range []string{"pg_dumpx", "/nonexistent/bin/pg_dumpx", "./pg_dumpx"} {
		t.Run(argv0, func(t *testing.T) {
			s, err := Start(t.Context(), Spec{Argv: []string{argv0, "mydb"}})
			if err == nil {
				s.Close()
				t.Fatal("Start succeeded")
			}
			if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "command not found: "+argv0) {
				t.Errorf("error %q, want ErrNotFound naming %s", err, argv0)
			}
		})
	}
	t.Run("no command", func(t *testing.T) {
		if _, err := Start(t.Context(), Spec{}); err == nil {
			t.Error("Start of an empty argv succeeded")
		}
	})
	t.Run("relative to Dir", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(dir+"/dump.sh", []byte("#!/bin/sh\necho from-dir\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		got := dump(t, t.Context(), Spec{Argv: []string{"./dump.sh"}, Dir: dir})
		if string(got) != "from-dir\n" {
			t.Errorf("output %q", got)
		}
	})
}

// startLooping starts a shell that prints the pid of a background child,
// then floods stdout from both: a dump that would never end on its own.
func startLooping(t *testing.T, ctx context.Context) (s *Stream, shellPid, childPid int, r *bufio.Reader) {
	t.Helper()
	s, err := Start(ctx, Spec{Argv: []string{"yes child & echo $!; exec yes parent"}, Shell: true})
	if err != nil {
		t.Fatal(err)
	}
	r = bufio.NewReader(s)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	childPid, err = strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("first line %q: %v", line, err)
	}
	if _, err := io.CopyN(io.Discard, r, 1<<20); err != nil {
		t.Fatal(err)
	}
	return s, s.cmd.Process.Pid, childPid, r
}

func TestStreamStoppedEarly(t *testing.T) {
	t.Run("Close kills the command and its children", func(t *testing.T) {
		s, pid, child, _ := startLooping(t, bounded(t, 20*time.Second))
		start := time.Now()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Close took %v", d)
		}
		waitGone(t, pid, 3*time.Second)
		waitGone(t, child, 3*time.Second)
		if err := s.Wait(t.Context()); !errors.Is(err, ErrStopped) {
			t.Errorf("Wait after Close: %v, want ErrStopped", err)
		}
		if _, err := s.Read(make([]byte, 10)); !errors.Is(err, ErrStopped) {
			t.Errorf("Read after Close: %v, want ErrStopped", err)
		}
	})
	t.Run("Close from another goroutine interrupts a blocked Read", func(t *testing.T) {
		s, err := Start(bounded(t, 20*time.Second), Spec{Argv: []string{"sleep", "60"}})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(100 * time.Millisecond)
			s.Close()
		}()
		start := time.Now()
		_, err = s.Read(make([]byte, 10))
		if !errors.Is(err, ErrStopped) {
			t.Errorf("Read: %v, want ErrStopped", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Read returned after %v", d)
		}
		waitGone(t, s.cmd.Process.Pid, 3*time.Second)
	})
	t.Run("Wait with output left unread", func(t *testing.T) {
		s, pid, child, _ := startLooping(t, bounded(t, 20*time.Second))
		defer s.Close()
		err := s.Wait(t.Context())
		if !errors.Is(err, ErrStopped) || !strings.Contains(err.Error(), "output left unread") {
			t.Errorf("Wait: %v, want ErrStopped", err)
		}
		waitGone(t, pid, 3*time.Second)
		waitGone(t, child, 3*time.Second)
	})
	t.Run("cancelled context kills the command and its children", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		s, pid, child, r := startLooping(t, ctx)
		defer s.Close()
		cancel()
		_, err := io.Copy(io.Discard, r)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("reading after cancel: %v, want context.Canceled", err)
		}
		if err := s.Wait(t.Context()); !errors.Is(err, context.Canceled) {
			t.Errorf("Wait after cancel: %v, want context.Canceled", err)
		}
		waitGone(t, pid, 3*time.Second)
		waitGone(t, child, 3*time.Second)
	})
	t.Run("Wait's context ends a command that never finishes", func(t *testing.T) {
		s, err := Start(bounded(t, 20*time.Second), Spec{Argv: []string{"sleep", "60"}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err = s.Wait(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Wait: %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Wait returned after %v", d)
		}
		waitGone(t, s.cmd.Process.Pid, 3*time.Second)
	})
	t.Run("Start with a cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := Start(ctx, Spec{Argv: []string{"true"}}); !errors.Is(err, context.Canceled) {
			t.Errorf("Start: %v, want context.Canceled", err)
		}
	})
}

func TestStreamLeftoverChild(t *testing.T) {
	// The shell exits at once, but the sleep it left behind holds stdout:
	// without the clean-up the reader would wait a minute for the end.
	defer func(d time.Duration) { waitDelay = d }(waitDelay)
	waitDelay = 200 * time.Millisecond
	ctx := bounded(t, 20*time.Second)
	start := time.Now()
	s, err := Start(ctx, Spec{Argv: []string{"sleep 60 & echo $!; echo done"}, Shell: true})
	if err != nil {
		t.Fatal(err)
	}
	out, rerr, werr := readAll(t, ctx, s)
	if rerr != nil || werr != nil || !strings.HasSuffix(string(out), "\ndone\n") {
		t.Fatalf("output %q, read %v, wait %v", out, rerr, werr)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(out), "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid, 3*time.Second)
}

func TestStreamNoPasswordPrompt(t *testing.T) {
	// A tool that prompts on the terminal would stop the backup forever
	// (or be stopped by SIGTTIN); in its own session it has no terminal.
	ctx := bounded(t, 10*time.Second)
	s, err := Start(ctx, Spec{Argv: []string{"if (: </dev/tty) 2>/dev/null; then echo has a terminal; exit 1; fi; echo no terminal"}, Shell: true})
	if err != nil {
		t.Fatal(err)
	}
	out, rerr, werr := readAll(t, ctx, s)
	if rerr != nil || werr != nil || string(out) != "no terminal\n" {
		t.Errorf("output %q, read %v, wait %v", out, rerr, werr)
	}
}

func TestStderrIsBounded(t *testing.T) {
	ctx := bounded(t, 20*time.Second)
	// 2 MiB of stderr, then the line that matters.
	s, err := Start(ctx, Spec{Argv: []string{"head -c 2097152 /dev/zero | tr '\\0' x >&2; echo >&2; echo 'the real error' >&2; exit 2"}, Shell: true})
	if err != nil {
		t.Fatal(err)
	}
	_, _, werr := readAll(t, ctx, s)
	ee := isExitError(t, werr, 2, 0)
	if !strings.HasSuffix(ee.Stderr, "the real error") || len(ee.Stderr) > quoteBytes {
		t.Errorf("quoted stderr: %d bytes ending %q", len(ee.Stderr), ee.Stderr[max(0, len(ee.Stderr)-40):])
	}
	log := s.Stderr()
	if len(log) > stderrLimit+100 || !strings.Contains(string(log), "bytes of output were dropped") {
		t.Errorf("Stderr(): %d bytes, starting %q", len(log), log[:min(len(log), 80)])
	}
}

func TestMeta(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{Spec{Argv: []string{"pg_dump", "-Fc", "-Z0", "app"}}, "pg_dump -Fc -Z0 app"},
		{Spec{Argv: []string{"pg_dump", "--exclude-table=audit log", "it's"}}, `pg_dump '--exclude-table=audit log' 'it'\''s'`},
		{Spec{Argv: []string{"mariadb-dump", "", "$HOME"}}, `mariadb-dump '' '$HOME'`},
		{Spec{Argv: []string{"pg_dump app | cat", "x"}, Shell: true}, `/bin/sh -c 'pg_dump app | cat' sh x`},
	} {
		if got := tc.spec.Meta()[MetaCommand]; got != tc.want {
			t.Errorf("Meta command = %s, want %s", got, tc.want)
		}
	}
	ctx := bounded(t, 10*time.Second)
	s, err := Start(ctx, Spec{Argv: []string{"echo", "x"}})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, ctx, s)
	m := s.Meta()
	if m[MetaMode] != ModeStream || m[MetaExitStatus] != "0" || m[MetaCommand] != "echo x" {
		t.Errorf("Stream.Meta() = %v", m)
	}
}
