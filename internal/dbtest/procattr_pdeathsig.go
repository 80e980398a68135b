//go:build linux || freebsd

package dbtest

import "syscall"

// serverProcAttr runs a database server as cred in a process group of its
// own, and has the kernel send it deathSig when the test binary dies, so a
// crashed or timed-out run leaves no server behind.
func serverProcAttr(cred *syscall.Credential, deathSig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: deathSig}
}
