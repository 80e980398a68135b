package store

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidName is returned (wrapped) by CheckName and CheckPrefix, and by
// backends that validate names with them.
var ErrInvalidName = errors.New("store: invalid object name")

// TempPrefix starts the names of the temporary files a backend may keep next
// to its objects while writing them. No segment of an object name may start
// with it, so such files can never be mistaken for objects.
const TempPrefix = ".tmp-"

// CheckName reports whether name has the form the Store contract promises:
// non-empty slash-separated segments of [a-z0-9._-], none of them "." or "..",
// none starting with TempPrefix.
//
// Backends that map names onto a file system must call it: a name such as
// "../x" or "a//b" would otherwise escape the store or alias another object.
// Backends that do not need it may still call it so that every backend
// accepts and rejects the same names.
func CheckName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	for seg := range strings.SplitSeq(name, "/") {
		if err := checkSegment(seg); err != nil {
			return err
		}
	}
	return nil
}

// CheckPrefix reports whether prefix can start a valid name, so that it is
// safe to use for List: "" and "data/" and "data/a" are fine, "../" and
// "a//" are not.
func CheckPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	// Every segment but the last must be complete; the last may be empty
	// (trailing slash) or any start of a valid segment.
	segs := strings.Split(prefix, "/")
	for _, seg := range segs[:len(segs)-1] {
		if err := checkSegment(seg); err != nil {
			return err
		}
	}
	last := segs[len(segs)-1]
	if err := checkChars(last); err != nil {
		return err
	}
	if strings.HasPrefix(last, TempPrefix) {
		return fmt.Errorf("%w: segment %q uses the reserved prefix %q", ErrInvalidName, last, TempPrefix)
	}
	return nil
}

func checkSegment(seg string) error {
	switch {
	case seg == "":
		return fmt.Errorf("%w: empty path segment", ErrInvalidName)
	case seg == "." || seg == "..":
		return fmt.Errorf("%w: segment %q", ErrInvalidName, seg)
	case strings.HasPrefix(seg, TempPrefix):
		return fmt.Errorf("%w: segment %q uses the reserved prefix %q", ErrInvalidName, seg, TempPrefix)
	}
	return checkChars(seg)
}

func checkChars(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' {
			continue
		}
		return fmt.Errorf("%w: character %q not allowed", ErrInvalidName, c)
	}
	return nil
}
