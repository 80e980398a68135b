//go:build !linux && !freebsd

package dbtest

import "syscall"

// serverProcAttr runs a database server as cred in a process group of its
// own. Without a parent-death signal (macOS has none) a server outlives a
// test binary that is killed; the shared servers' cleanup stops it on
// every other way out.
func serverProcAttr(cred *syscall.Credential, _ syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true}
}
