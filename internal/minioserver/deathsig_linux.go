package minioserver

import (
	"os/exec"
	"syscall"
)

// setDeathSignal has the kernel kill the server when its parent dies,
// so a crashed or timed-out run leaves no MinIO behind.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
