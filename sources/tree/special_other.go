//go:build !linux

package tree

import (
	"errors"
	"os"

	"github.com/cairn-backup/cairn/snapshot"
)

// mknodAt: restoring named pipes and device nodes is implemented for Linux
// only; elsewhere they are reported as not restored.
func mknodAt(*os.Root, string, *snapshot.Node) error {
	return errors.New("restoring special files is not supported on this platform")
}
