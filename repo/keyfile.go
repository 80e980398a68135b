package repo

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/store"
	"github.com/zeebo/blake3"
)

// ErrDamagedKey is returned (wrapped) by Open when no key opens with the
// password and some key files are damaged: unparsable, out of bounds, or
// their check value matches the password but their sealed master key does
// not authenticate. The error names each damaged file; the password may be
// right.
var ErrDamagedKey = errors.New("repo: damaged key file")

// Bounds on what Open accepts from the store before it allocates or
// computes anything on its strength: every field of a key file and the
// config is untrusted input. A key file with "n": 1<<40 made scrypt
// allocate 128 TiB and panic in every command.
const (
	maxKeyFileSize = 64 << 10 // a key file is about 600 bytes
	maxConfigSize  = 64 << 10 // the config is about 400 bytes
	// scrypt needs 128·N·r bytes and time in proportion to N·r·p.
	// DefaultKDF (N 2^15, r 8, p 1) takes 32 MiB; the bounds allow 32
	// times its memory and 64 times its time, and nothing a guesser could
	// use to make opening a repository hang or fail for lack of memory.
	maxKDFMemory = 1 << 30
	maxKDFWork   = 1 << 24 // N·r·p
	maxKDFR      = 32
	maxKDFP      = 16
	minSaltSize  = 16
	maxSaltSize  = 64
	// The sealed master key is 40 bytes of overhead and about 250 of JSON.
	maxSealedKeySize = 4096
)

// errOtherPassword is openKey's answer for a key file that the password
// does not open.
var errOtherPassword = errors.New("repo: key belongs to another password")

// damagedKeyError is openKey's answer for a damaged key file.
type damagedKeyError struct {
	name string
	err  error
}

func (e *damagedKeyError) Error() string   { return fmt.Sprintf("key %s is damaged: %v", e.name, e.err) }
func (e *damagedKeyError) Unwrap() []error { return []error{ErrDamagedKey, e.err} }

// openKey reads the key file name and unwraps the master key with
// password. It returns errOtherPassword when the password does not fit,
// a *damagedKeyError for a file that is damaged, and other errors for
// I/O failures.
func openKey(ctx context.Context, st store.Store, name, password string) (*masterKey, error) {
	buf, err := store.ReadAtMost(ctx, st, name, maxKeyFileSize)
	if errors.Is(err, store.ErrTooLarge) {
		return nil, &damagedKeyError{name, err}
	}
	if err != nil {
		return nil, fmt.Errorf("repo: read key %s: %w", name, err)
	}
	kf, err := parseKeyFile(buf)
	if err != nil {
		return nil, &damagedKeyError{name, err}
	}
	wrap, err := deriveKey(password, kf)
	if err != nil {
		return nil, &damagedKeyError{name, err}
	}
	if kf.Check != nil && subtle.ConstantTimeCompare(kf.Check, keyCheck(&wrap)) != 1 {
		return nil, errOtherPassword
	}
	plain, err := pack.Open(&wrap, nil, kf.Sealed, adKey)
	if err != nil {
		if kf.Check != nil {
			return nil, &damagedKeyError{name, errors.New("the password matches but the sealed master key does not authenticate")}
		}
		return nil, errOtherPassword
	}
	var mk masterKey
	if err := json.Unmarshal(plain, &mk); err != nil {
		return nil, &damagedKeyError{name, fmt.Errorf("master key: %w", err)}
	}
	return &mk, nil
}

// validate checks a KDF's parameters against the bounds above.
func (p KDFParams) validate() error {
	switch {
	case p.N < 2 || p.N&(p.N-1) != 0:
		return fmt.Errorf("scrypt N %d is not a power of two of at least 2", p.N)
	case p.R < 1 || p.R > maxKDFR:
		return fmt.Errorf("scrypt r %d is outside 1..%d", p.R, maxKDFR)
	case p.P < 1 || p.P > maxKDFP:
		return fmt.Errorf("scrypt p %d is outside 1..%d", p.P, maxKDFP)
	case int64(p.N) > maxKDFMemory/128/int64(p.R):
		return fmt.Errorf("scrypt N %d, r %d need more than %d MiB", p.N, p.R, maxKDFMemory>>20)
	case int64(p.N)*int64(p.R)*int64(p.P) > maxKDFWork:
		return fmt.Errorf("scrypt N·r·p = %d exceeds %d", int64(p.N)*int64(p.R)*int64(p.P), maxKDFWork)
	}
	return nil
}

// parseKeyFile decodes a key file and checks every field Open relies on.
func parseKeyFile(buf []byte) (*keyFile, error) {
	var kf keyFile
	dec := json.NewDecoder(bytes.NewReader(buf))
	if err := dec.Decode(&kf); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	switch {
	case kf.Version != 1:
		return nil, fmt.Errorf("key file version %d (this cairn reads version 1)", kf.Version)
	case kf.KDF != "scrypt":
		return nil, fmt.Errorf("unknown KDF %q", kf.KDF)
	case len(kf.Salt) < minSaltSize || len(kf.Salt) > maxSaltSize:
		return nil, fmt.Errorf("salt of %d bytes, want %d..%d", len(kf.Salt), minSaltSize, maxSaltSize)
	case len(kf.Sealed) <= pack.Overhead || len(kf.Sealed) > maxSealedKeySize:
		return nil, fmt.Errorf("sealed master key of %d bytes, want %d..%d", len(kf.Sealed), pack.Overhead+1, maxSealedKeySize)
	case kf.Check != nil && len(kf.Check) != keyCheckSize:
		return nil, fmt.Errorf("check value of %d bytes, want %d", len(kf.Check), keyCheckSize)
	}
	if err := (KDFParams{N: kf.N, R: kf.R, P: kf.P}).validate(); err != nil {
		return nil, err
	}
	return &kf, nil
}

// keyCheckSize is the length of a key file's check value.
const keyCheckSize = 16

// keyCheck is the value a key file stores to tell a wrong password from a
// damaged sealed master key: the BLAKE3 of a fixed string keyed with the
// password's wrapping key. It tells a guesser nothing that trying to open
// the sealed key would not. Key files written before it existed have none;
// for them a damaged sealed key still reads as a wrong password.
func keyCheck(wrap *pack.Key) []byte {
	h, err := blake3.NewKeyed(wrap[:])
	if err != nil {
		panic(err) // only for a key that is not 32 bytes
	}
	_, _ = h.WriteString("cairn key check v1")
	return h.Sum(nil)[:keyCheckSize]
}
