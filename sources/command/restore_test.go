package command

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRestoreFromReader(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: more than a pipe holds
	for _, tc := range []struct {
		name       string
		spec       func(out string) Spec
		in         io.Reader
		want       string // the file out's content, "" to skip
		wantStatus int
		wantErr    error
		wantMsg    string
	}{
		{
			name: "copies everything",
			spec: func(out string) Spec { return Spec{Argv: []string{"sh", "-c", `cat > "$1"`, "sh", out}} },
			in:   bytes.NewReader(big),
			want: string(big),
		},
		{
			name: "command stops reading and succeeds",
			spec: func(out string) Spec { return Spec{Argv: []string{"sh", "-c", `head -c 5 > "$1"`, "sh", out}} },
			in:   bytes.NewReader(big),
			want: "01234",
		},
		{
			name: "command fails before reading",
			spec: func(string) Spec {
				return Spec{Argv: []string{"sh", "-c", "echo 'pg_restore: error: input file is too short' >&2; exit 1"}}
			},
			in:         bytes.NewReader(big),
			wantStatus: 1,
			wantMsg:    "exited with status 1: pg_restore: error: input file is too short",
		},
		{
			name:    "reading the dump fails",
			spec:    func(out string) Spec { return Spec{Argv: []string{"sh", "-c", `cat > "$1"`, "sh", out}} },
			in:      io.MultiReader(bytes.NewReader(big[:100000]), errReader{io.ErrUnexpectedEOF}),
			wantErr: io.ErrUnexpectedEOF,
			wantMsg: "killed so that it does not restore a truncated dump",
		},
		{
			name:    "missing binary",
			spec:    func(string) Spec { return Spec{Argv: []string{"pg_restorex"}} },
			in:      strings.NewReader("x"),
			wantErr: ErrNotFound,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			err := RestoreFromReader(bounded(t, 10*time.Second), tc.spec(out), tc.in)
			switch {
			case tc.wantStatus != 0:
				isExitError(t, err, tc.wantStatus, 0)
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			}
			if tc.wantMsg != "" && (err == nil || !strings.Contains(err.Error(), tc.wantMsg)) {
				t.Errorf("error %v, want it to say %q", err, tc.wantMsg)
			}
			if tc.want != "" {
				if b, _ := os.ReadFile(out); string(b) != tc.want {
					t.Errorf("the command read %d bytes, want %d", len(b), len(tc.want))
				}
			}
		})
	}
	t.Run("cancelled while the command runs", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := RestoreFromReader(ctx, Spec{Argv: []string{"sleep", "60"}}, strings.NewReader("x"))
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
			t.Errorf("error %v after %v", err, time.Since(start))
		}
	})
}

func TestRestoreViaFile(t *testing.T) {
	t.Run("path and name", func(t *testing.T) {
		tmp := t.TempDir()
		out := filepath.Join(t.TempDir(), "out")
		spec := Spec{
			// The tool gets the directory and the name apart (impdp's
			// DIRECTORY= and DUMPFILE=), and checks the mode.
			Argv:     []string{"sh", "-c", `test "$(stat -c %a "$1/$2")" = 640 && test "$1/$2" = "$3" && cat "$3" > "$4"`, "sh", tmp, "{name}", "{path}", out},
			FileName: "app.dmp",
			FileMode: 0o640,
		}
		if err := RestoreViaFile(bounded(t, 10*time.Second), spec, strings.NewReader("dump data"), tmp); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(out); string(b) != "dump data" {
			t.Errorf("the command read %q", b)
		}
		if names := entries(t, tmp); len(names) != 0 {
			t.Errorf("left behind: %v", names)
		}
	})
	t.Run("shell script, random name", func(t *testing.T) {
		tmp := filepath.Join(t.TempDir(), "with space")
		os.Mkdir(tmp, 0o755)
		out := filepath.Join(t.TempDir(), "out")
		spec := Spec{Argv: []string{`test "$(stat -c %a {path})" = 600 && cat {path} > "$1"`, out}, Shell: true}
		if err := RestoreViaFile(bounded(t, 10*time.Second), spec, strings.NewReader("data"), tmp); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(out); string(b) != "data" {
			t.Errorf("the command read %q", b)
		}
		if names := entries(t, tmp); len(names) != 0 {
			t.Errorf("left behind: %v", names)
		}
	})
	t.Run("failure removes the file too", func(t *testing.T) {
		tmp := t.TempDir()
		err := RestoreViaFile(t.Context(), Spec{Argv: []string{"sh", "-c", "echo 'ORA-39001: invalid argument value' >&2; exit 5", "sh", "{path}"}}, strings.NewReader("x"), tmp)
		if ee := isExitError(t, err, 5, 0); !strings.Contains(ee.Stderr, "ORA-39001") {
			t.Errorf("error %v", err)
		}
		if names := entries(t, tmp); len(names) != 0 {
			t.Errorf("left behind: %v", names)
		}
	})
	for _, tc := range []struct {
		name string
		spec Spec
		r    io.Reader
		want string
	}{
		{"no placeholder", Spec{Argv: []string{"impdp", "app"}}, strings.NewReader("x"), "needs {path} or {name}"},
		{"missing binary", Spec{Argv: []string{"impdpx", "{path}"}}, strings.NewReader("x"), "command not found: impdpx"},
		{"name with a slash", Spec{Argv: []string{"cat", "{path}"}, FileName: "../x"}, strings.NewReader("x"), "plain name"},
		{"existing file", Spec{Argv: []string{"cat", "{path}"}, FileName: "exists"}, strings.NewReader("x"), "file exists"},
		{"reading fails", Spec{Argv: []string{"cat", "{path}"}}, errReader{io.ErrUnexpectedEOF}, "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			writeFile(t, filepath.Join(tmp, "exists"), "keep")
			err := RestoreViaFile(t.Context(), tc.spec, tc.r, tmp)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
			if names := entries(t, tmp); len(names) != 1 || names[0] != "exists" {
				t.Errorf("directory holds %v", names)
			}
		})
	}
}

func TestSubstitute(t *testing.T) {
	s, found := Spec{Argv: []string{"tool", "--file={path}", "{name}", "plain"}}.substitute("{path}", "/t/{name}", "{name}", "n")
	if !found || strings.Join(s.Argv, " ") != "tool --file=/t/{name} n plain" {
		t.Errorf("substitute: %q, %v", s.Argv, found)
	}
	s, found = Spec{Argv: []string{"cat {path} | psql", "{path}"}, Shell: true}.substitute("{path}", "/tmp/a b")
	if !found || s.Argv[0] != "cat '/tmp/a b' | psql" || s.Argv[1] != "/tmp/a b" {
		t.Errorf("shell substitute: %q", s.Argv)
	}
	if _, found := (Spec{Argv: []string{"pg_dump"}}).substitute("{dir}", "/x"); found {
		t.Error("found a placeholder that is not there")
	}
}

func TestRun(t *testing.T) {
	if err := Run(t.Context(), Spec{Argv: []string{"true"}}); err != nil {
		t.Error(err)
	}
	err := Run(t.Context(), Spec{Argv: []string{"sh", "-c", "echo 'pg_restore: error: could not open input file' >&2; exit 1"}})
	if ee := isExitError(t, err, 1, 0); !strings.Contains(ee.Stderr, "could not open input file") {
		t.Error(err)
	}
}
