package tree

import (
	"fmt"
	"os"

	"github.com/cairn-backup/cairn/snapshot"
	"golang.org/x/sys/unix"
)

// mknodAt makes a named pipe or device node called base in the directory
// r. Device nodes need root (CAP_MKNOD); the caller reports a refusal.
func mknodAt(r *os.Root, base string, n *snapshot.Node) error {
	d, err := r.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	mode := uint32(n.Mode.Perm())
	switch n.Type {
	case snapshot.Fifo:
		mode |= unix.S_IFIFO
	case snapshot.CharDev:
		mode |= unix.S_IFCHR
	case snapshot.BlockDev:
		mode |= unix.S_IFBLK
	default:
		return fmt.Errorf("not a special file: %s", n.Type)
	}
	return unix.Mknodat(int(d.Fd()), base, mode, int(n.Rdev))
}
