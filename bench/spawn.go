//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// Why commands run through a spawner: Linux starts a new program's ru_maxrss
// at the high-water RSS of the address space that called execve, and os/exec
// calls execve from a vfork child that shares our address space, which holds
// manifests and generator buffers. Measured directly, every tool would be
// charged at least our own peak. So each command is started by a spawner —
// this binary re-executed with spawnArg, before any of its own work — whose
// footprint of ~2-3 MiB is the floor of every RSS figure, the same for all
// tools. It reports the command's rusage on fd 3.
const spawnArg = "__cairn_bench_spawn__"

// spawnReport is what the spawner tells us about the command it ran.
type spawnReport struct {
	WallNS    int64  `json:"wall_ns"`
	UserNS    int64  `json:"user_ns"`
	SysNS     int64  `json:"sys_ns"`
	MaxRSSKiB int64  `json:"max_rss_kib"`
	Status    string `json:"status"` // "exit status 0", "signal: killed", ...
	StartErr  string `json:"start_error,omitempty"`
}

// spawner is the binary to re-execute as spawner.
var spawner = sync.OnceValues(os.Executable)

// runAsSpawnerIfAsked turns this process into the spawner when it was
// started as one. It must run first in main (and TestMain).
func runAsSpawnerIfAsked() {
	if len(os.Args) > 2 && os.Args[1] == spawnArg {
		os.Exit(spawnMain(os.Args[2], os.Args[3:]))
	}
}

// spawnMain runs path with args on our stdin, stdout, stderr, environment and
// working directory, writes its spawnReport to fd 3 and exits like it.
func spawnMain(path string, args []string) int {
	report := os.NewFile(3, "report")
	syscall.CloseOnExec(3) // the command must not hold our report pipe open
	cmd := exec.Command(path, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// If we are killed (timeout, interrupt), the command dies with us.
	// Pdeathsig fires when the creating thread exits, so pin this goroutine.
	runtime.LockOSThread()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var rep spawnReport
	start := time.Now()
	err := cmd.Start()
	if err == nil {
		_ = cmd.Wait() // the status is in ProcessState
	}
	rep.WallNS = time.Since(start).Nanoseconds()
	code := 127
	if err != nil {
		rep.StartErr = err.Error()
		fmt.Fprintln(os.Stderr, "bench spawner:", err)
	} else {
		ps := cmd.ProcessState
		rep.UserNS, rep.SysNS, rep.Status = ps.UserTime().Nanoseconds(), ps.SystemTime().Nanoseconds(), ps.String()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			rep.MaxRSSKiB = ru.Maxrss
		}
		code = ps.ExitCode()
		if code < 0 { // killed by a signal
			code = 128
			if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
				code += int(ws.Signal())
			}
		}
	}
	if err := json.NewEncoder(report).Encode(rep); err != nil {
		fmt.Fprintln(os.Stderr, "bench spawner: report:", err)
		return 125
	}
	return code
}
