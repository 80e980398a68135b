//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// cmdSpec is one command a tool runs.
type cmdSpec struct {
	Path  string
	Args  []string
	Env   []string // complete environment
	Dir   string   // working directory ("" = ours)
	Stdin string   // file fed as standard input ("" = /dev/null, so nothing can prompt)
}

func (c cmdSpec) String() string {
	s := strings.Join(append([]string{c.Path}, c.Args...), " ")
	if c.Stdin != "" {
		s += " < " + c.Stdin
	}
	if c.Dir != "" {
		s = "(cd " + c.Dir + " && " + s + ")"
	}
	return s
}

// usage is what one command cost.
type usage struct {
	Wall      time.Duration
	User, Sys time.Duration
	MaxRSSKiB int64 // peak resident set size of the child (Linux reports KiB)
	Stdout    string
}

// runCmd runs c to completion (through the spawner, see spawn.go) and
// measures it. On failure the error carries the command, its exit status and
// the tail of its output.
func runCmd(ctx context.Context, c cmdSpec) (usage, error) {
	self, err := spawner()
	if err != nil {
		return usage{}, fmt.Errorf("find own binary to spawn %s: %w", c, err)
	}
	stdin := c.Stdin
	if stdin == "" {
		stdin = os.DevNull
	}
	in, err := os.Open(stdin)
	if err != nil {
		return usage{}, fmt.Errorf("%s: %w", c, err)
	}
	defer in.Close()
	repR, repW, err := os.Pipe()
	if err != nil {
		return usage{}, err
	}
	defer repR.Close()
	cmd := exec.CommandContext(ctx, self, append([]string{spawnArg, c.Path}, c.Args...)...)
	cmd.Env, cmd.Dir = c.Env, c.Dir
	// An *os.File is handed down as fd 0 without copying through us, so the
	// command reads the file exactly as from a shell redirect.
	cmd.Stdin = in
	stdout, stderr := &tailBuffer{max: 16 << 10}, &tailBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.ExtraFiles = []*os.File{repW} // fd 3 in the spawner
	cmd.WaitDelay = 10 * time.Second  // don't hang on output pipes held by strays
	start := time.Now()
	err = cmd.Start()
	repW.Close()
	if err != nil {
		return usage{}, fmt.Errorf("%s: start spawner: %w", c, err)
	}
	runErr := cmd.Wait()
	u := usage{Wall: time.Since(start), Stdout: stdout.String()}
	var rep spawnReport
	repErr := json.NewDecoder(repR).Decode(&rep)
	if repErr == nil {
		u.Wall, u.User, u.Sys = time.Duration(rep.WallNS), time.Duration(rep.UserNS), time.Duration(rep.SysNS)
		u.MaxRSSKiB = rep.MaxRSSKiB
	}
	if runErr == nil && repErr != nil {
		runErr = fmt.Errorf("no usage report from spawner: %w", repErr)
	}
	if runErr != nil {
		status := runErr.Error()
		if rep.Status != "" {
			status = rep.Status
		}
		if ctx.Err() != nil {
			status += " (" + context.Cause(ctx).Error() + ")"
		}
		return u, fmt.Errorf("command failed: %s\n  %s\n  stderr (tail):\n%s\n  stdout (tail):\n%s",
			c, status, indentTail(stderr.String(), 20), indentTail(stdout.String(), 10))
	}
	return u, nil
}

// indentTail returns the last n lines of s, indented.
func indentTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    | " + strings.Join(lines, "\n    | ")
}

// tailBuffer keeps only the last max bytes written to it, so a chatty tool
// cannot make us hold its whole output.
type tailBuffer struct {
	buf bytes.Buffer
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > t.max {
		p = p[len(p)-t.max:]
	}
	if over := t.buf.Len() + len(p) - t.max; over > 0 {
		t.buf.Next(over)
	}
	t.buf.Write(p)
	return n, nil
}

func (t *tailBuffer) String() string { return t.buf.String() }
