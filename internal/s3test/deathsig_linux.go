package s3test

import (
	"os/exec"
	"syscall"
)

// setDeathSignal has the kernel kill the server when the test binary dies,
// so a crashed or timed-out test run leaves no MinIO behind.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
