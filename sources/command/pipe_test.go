package command

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStartWithPipe(t *testing.T) {
	for _, tc := range []struct {
		name       string
		spec       Spec
		wantOut    string
		wantStatus int
		wantErr    error
	}{
		{
			name:    "writes to the pipe",
			spec:    Spec{Argv: []string{"sh", "-c", `printf 'via the pipe' > "$1"; echo "log line"`, "sh", "{path}"}},
			wantOut: "via the pipe",
		},
		{
			name:    "shell, path quoted",
			spec:    Spec{Argv: []string{"printf 'quoted' > {path}"}, Shell: true, FileName: "it's a dump.sql"},
			wantOut: "quoted",
		},
		{
			name:    "placeholder inside an argument",
			spec:    Spec{Argv: []string{"sh", "-c", `f=${1#--file=}; echo "$f" | grep -q '/out.sql$' && printf 'ok' > "$f"`, "sh", "--file={path}"}, FileName: "out.sql"},
			wantOut: "ok",
		},
		{
			name:    "opens and closes the pipe twice",
			spec:    Spec{Argv: []string{"sh", "-c", `printf 'one ' > "$1"; sleep 0.1; printf 'two' >> "$1"`, "sh", "{path}"}},
			wantOut: "one two",
		},
		{
			name:    "exits 0 without opening the pipe",
			spec:    Spec{Argv: []string{"sh", "-c", "exit 0", "sh", "{path}"}},
			wantErr: ErrEmpty,
		},
		{
			name:       "fails without opening the pipe",
			spec:       Spec{Argv: []string{"sh", "-c", "echo 'expdp: ORA-39002: invalid operation' >&2; exit 3", "sh", "{path}"}},
			wantStatus: 3,
		},
		{
			name:       "fails after writing part",
			spec:       Spec{Argv: []string{"sh", "-c", `printf partial > "$1"; exit 4`, "sh", "{path}"}},
			wantOut:    "partial",
			wantStatus: 4,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A reader waiting for a writer that never comes would hang:
			// the deadline turns that into a failure.
			ctx := bounded(t, 10*time.Second)
			start := time.Now()
			s, err := StartWithPipe(ctx, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			dir := s.dir
			if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("pipe directory: %v, %v", fi, err)
			}
			out, rerr, werr := readAll(t, ctx, s)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
			if string(out) != tc.wantOut {
				t.Errorf("output %q, want %q", out, tc.wantOut)
			}
			switch {
			case tc.wantStatus != 0:
				isExitError(t, werr, tc.wantStatus, 0)
				if rerr == nil {
					t.Error("Read returned a clean end for a failed command")
				}
			case tc.wantErr != nil:
				if !errors.Is(werr, tc.wantErr) || !errors.Is(rerr, tc.wantErr) {
					t.Errorf("read %v, wait %v, want %v", rerr, werr, tc.wantErr)
				}
			default:
				if rerr != nil || werr != nil {
					t.Fatalf("read %v, wait %v", rerr, werr)
				}
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("pipe directory %s left behind: %v", dir, err)
			}
			if m := s.Meta(); m[MetaMode] != ModePipe || !strings.Contains(m[MetaCommand], "{path}") {
				t.Errorf("Meta() = %v: want mode pipe and the command with {path}", m)
			}
		})
	}
	t.Run("stdout goes to the log", func(t *testing.T) {
		ctx := bounded(t, 10*time.Second)
		s, err := StartWithPipe(ctx, Spec{Argv: []string{"sh", "-c", `echo progress; printf data > "$1"`, "sh", "{path}"}})
		if err != nil {
			t.Fatal(err)
		}
		out, rerr, werr := readAll(t, ctx, s)
		if string(out) != "data" || rerr != nil || werr != nil || !strings.Contains(string(s.Stderr()), "progress") {
			t.Errorf("output %q, read %v, wait %v, log %q", out, rerr, werr, s.Stderr())
		}
	})
	t.Run("Close kills a writer the consumer gave up on", func(t *testing.T) {
		s, err := StartWithPipe(bounded(t, 10*time.Second), Spec{Argv: []string{"sh", "-c", `yes > "$1"`, "sh", "{path}"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, s, 1<<20); err != nil {
			t.Fatal(err)
		}
		dir := s.dir
		s.Close()
		waitGone(t, s.cmd.Process.Pid, 3*time.Second)
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pipe directory left behind: %v", err)
		}
	})
	t.Run("argv without {path}", func(t *testing.T) {
		_, err := StartWithPipe(t.Context(), Spec{Argv: []string{"pg_dump", "app"}})
		if err == nil || !strings.Contains(err.Error(), "needs {path}") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("missing binary leaves no directory", func(t *testing.T) {
		before, _ := filepath.Glob(filepath.Join(os.TempDir(), "cairn-pipe-*"))
		_, err := StartWithPipe(t.Context(), Spec{Argv: []string{"pg_dumpx", "-f", "{path}"}})
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("error %v, want ErrNotFound", err)
		}
		after, _ := filepath.Glob(filepath.Join(os.TempDir(), "cairn-pipe-*"))
		if len(after) > len(before) {
			t.Errorf("pipe directories before %v, after %v", before, after)
		}
	})
}
