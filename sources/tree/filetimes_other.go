//go:build !linux

package tree

import (
	"errors"
	"os"
	"time"
)

// setModTime: elsewhere the times are set through the path
// (SetFileMetadata falls back to Chtimes).
func setModTime(*os.File, time.Time) error { return errors.ErrUnsupported }
