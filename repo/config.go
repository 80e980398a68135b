package repo

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/pack"
	"github.com/cairn-backup/cairn/store"
)

// FormatVersion is the repository format this code writes and the newest it
// opens.
const FormatVersion = 1

// Sentinel errors callers branch on (the CLI maps them to exit codes).
var (
	// ErrNoRepository: there is no config object at the location.
	ErrNoRepository = errors.New("repo: no repository at this location")
	// ErrExists: init found a repository already there.
	ErrExists = errors.New("repo: a repository already exists at this location")
	// ErrWrongPassword: no key in keys/ opens with the password given.
	ErrWrongPassword = errors.New("repo: wrong password or no key matches")
	// ErrUnknownVersion: the repository was written by a newer format.
	ErrUnknownVersion = errors.New("repo: unknown repository format version")
)

// Config is the repository's public config object. The chunker parameters
// are sealed with the data key: the random polynomial is secret so chunk
// boundaries cannot be predicted by someone who sees only the store.
type Config struct {
	Version int       `json:"version"`
	ID      chunk.ID  `json:"id"`
	Created time.Time `json:"created"`
	Sealed  []byte    `json:"sealed"` // Seal(dataKey, secretConfig JSON, "cairn config v1")
}

type secretConfig struct {
	Chunker chunk.Params `json:"chunker"`
	// StreamChunker chunks streams (command components); absent in
	// repositories made before it existed, whose streams use Chunker.
	StreamChunker *chunk.Params `json:"stream_chunker,omitempty"`
}

// parseSecretConfig decodes the sealed part of the config and checks both
// chunker sets. A stream set may not cut larger chunks than the files'
// set: readers bound a data blob by Chunker.MaxSize (rawLimit), also
// readers older than the stream set, so a stream blob above it would be
// refused as corrupt.
func parseSecretConfig(buf []byte) (secretConfig, error) {
	var sc secretConfig
	if err := json.Unmarshal(buf, &sc); err != nil {
		return secretConfig{}, fmt.Errorf("repo: parse sealed config: %w", err)
	}
	if err := sc.validate(); err != nil {
		return secretConfig{}, fmt.Errorf("repo: config: %w", err)
	}
	return sc, nil
}

func (sc *secretConfig) validate() error {
	if err := sc.Chunker.Validate(); err != nil {
		return err
	}
	if s := sc.StreamChunker; s != nil {
		if err := s.Validate(); err != nil {
			return fmt.Errorf("stream chunker: %w", err)
		}
		if s.MaxSize > sc.Chunker.MaxSize {
			return fmt.Errorf("stream chunker: max_size %d above the chunker's %d", s.MaxSize, sc.Chunker.MaxSize)
		}
	}
	return nil
}

// masterKey is what a password unwraps.
type masterKey struct {
	Data pack.Key `json:"data"` // encrypts blobs, pack headers, index files, manifests
	ID   [32]byte `json:"id"`   // keys BLAKE3 blob IDs
}

// keyFile is one password's wrapping of the master key.
type keyFile struct {
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	Host    string    `json:"host,omitempty"`
	KDF     string    `json:"kdf"`
	N       int       `json:"n"`
	R       int       `json:"r"`
	P       int       `json:"p"`
	Salt    []byte    `json:"salt"`
	Sealed  []byte    `json:"sealed"` // Seal(scrypt(password), masterKey JSON, "cairn key v1")
	// Check is keyCheck(scrypt(password)): it tells a wrong password from
	// a damaged Sealed. Absent in key files written before it existed.
	Check []byte `json:"check,omitempty"`
}

// KDFParams are scrypt's cost parameters.
type KDFParams struct{ N, R, P int }

// DefaultKDF costs about 100 ms and 32 MiB per password check on a current
// core: cheap for a backup run, expensive for a guesser.
var DefaultKDF = KDFParams{N: 1 << 15, R: 8, P: 1}

var (
	adConfig   = []byte("cairn config v1")
	adKey      = []byte("cairn key v1")
	adIndex    = []byte("cairn index v1")
	adSnapshot = []byte("cairn snapshot v1")
)

// InitOptions tune a new repository. Zero values take defaults.
type InitOptions struct {
	KDF     KDFParams     // scrypt cost; tests lower it
	Chunker *chunk.Params // nil: fresh random parameters (chunk.DefaultParams)
	// StreamChunker chunks the streams of command components. nil: fresh
	// random parameters of chunk.DefaultStreamParams (128 KiB average).
	StreamChunker *chunk.Params
	// NoStreamChunker writes the config without a stream set, so streams
	// use Chunker, as in repositories made before the set existed.
	NoStreamChunker bool
	Replica         *ReplicaOf // nil: an independent repository
}

// ReplicaOf makes Init create a replica of an open repository: the same
// chunker parameters (both sets, or only the one the source has) and
// blob-ID key, so blobs deduplicate across the two
// and copy needs no re-chunking; with ShareDataKey also the same data key,
// so copy moves whole packs as stored, never decrypting them.
type ReplicaOf struct {
	Source       *Repository
	ShareDataKey bool
}

// Init creates a repository in st, protected by password.
func Init(ctx context.Context, st store.Store, password string, opts InitOptions) (*Repository, error) {
	if password == "" {
		return nil, errors.New("repo: empty password")
	}
	if _, err := st.Stat(ctx, "config"); err == nil {
		return nil, ErrExists
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("repo: check for config: %w", err)
	}
	sc, err := initChunkers(opts)
	if err != nil {
		return nil, err
	}
	var mk masterKey
	if _, err := rand.Read(mk.Data[:]); err != nil {
		return nil, err
	}
	if _, err := rand.Read(mk.ID[:]); err != nil {
		return nil, err
	}
	if rep := opts.Replica; rep != nil {
		mk.ID = rep.Source.idKey
		if rep.ShareDataKey {
			mk.Data = rep.Source.key
		}
	}
	if opts.KDF.N == 0 {
		opts.KDF = DefaultKDF
	}
	keyName, err := writeKey(ctx, st, password, mk, opts.KDF)
	if err != nil {
		return nil, err
	}
	secret, err := json.Marshal(sc)
	if err != nil {
		return nil, err
	}
	cfg := Config{Version: FormatVersion, Created: time.Now().UTC().Truncate(time.Second)}
	if _, err := rand.Read(cfg.ID[:]); err != nil {
		return nil, err
	}
	cfg.Sealed = pack.Seal(&mk.Data, nil, secret, adConfig)
	buf, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	// config last: a crash before this leaves a key file but no repository,
	// and a second init succeeds.
	if err := st.Put(ctx, "config", buf); err != nil {
		return nil, fmt.Errorf("repo: write config: %w", err)
	}
	r := newRepository(st, cfg, mk, sc)
	r.keyName = keyName
	return r, nil
}

// initChunkers chooses a new repository's chunker sets. A replica takes
// its source's as they are, a missing stream set included: the same
// parameters and ID key are what make their blobs the same, so a backup
// taken into either deduplicates against what copy brought over.
func initChunkers(opts InitOptions) (secretConfig, error) {
	var sc secretConfig
	switch {
	case opts.Replica != nil:
		src := opts.Replica.Source
		sc.Chunker = src.chunker
		if src.stream != nil {
			s := *src.stream
			sc.StreamChunker = &s
		}
	default:
		if opts.Chunker != nil {
			sc.Chunker = *opts.Chunker
		} else {
			p, err := chunk.DefaultParams()
			if err != nil {
				return sc, err
			}
			sc.Chunker = p
		}
		if opts.StreamChunker != nil {
			s := *opts.StreamChunker
			sc.StreamChunker = &s
		} else if !opts.NoStreamChunker {
			s, err := chunk.DefaultStreamParams()
			if err != nil {
				return sc, err
			}
			sc.StreamChunker = &s
		}
	}
	if err := sc.validate(); err != nil {
		return sc, fmt.Errorf("repo: init: %w", err)
	}
	return sc, nil
}

// writeKey wraps mk with password in a new key file and returns its name.
func writeKey(ctx context.Context, st store.Store, password string, mk masterKey, kdf KDFParams) (string, error) {
	if err := kdf.validate(); err != nil {
		return "", fmt.Errorf("repo: %w", err)
	}
	kf := keyFile{Version: 1, Created: time.Now().UTC().Truncate(time.Second), KDF: "scrypt", N: kdf.N, R: kdf.R, P: kdf.P}
	kf.Host, _ = os.Hostname()
	kf.Salt = make([]byte, 32)
	if _, err := rand.Read(kf.Salt); err != nil {
		return "", err
	}
	wrap, err := deriveKey(password, &kf)
	if err != nil {
		return "", err
	}
	plain, err := json.Marshal(mk)
	if err != nil {
		return "", err
	}
	kf.Sealed = pack.Seal(&wrap, nil, plain, adKey)
	kf.Check = keyCheck(&wrap)
	buf, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return "", err
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", err
	}
	name := fmt.Sprintf("keys/%x", id)
	if err := st.Put(ctx, name, buf); err != nil {
		return "", fmt.Errorf("repo: write key: %w", err)
	}
	return name, nil
}

func deriveKey(password string, kf *keyFile) (pack.Key, error) {
	var k pack.Key
	b, err := scryptKey([]byte(password), kf.Salt, kf.N, kf.R, kf.P, len(k))
	if err != nil {
		return k, fmt.Errorf("repo: scrypt: %w", err)
	}
	copy(k[:], b)
	return k, nil
}

// ReadConfig reads and version-checks the config object without a password.
func ReadConfig(ctx context.Context, st store.Store) (Config, error) {
	var cfg Config
	buf, err := store.ReadAtMost(ctx, st, "config", maxConfigSize)
	if errors.Is(err, store.ErrNotFound) {
		if lost, _ := hasAny(ctx, st, "index/", "snapshots/"); lost {
			// Not "no repository": a backup run would init a new one
			// beside the old data, and the operator must know to restore
			// the config from a copy instead.
			return cfg, errors.New("repo: the config object is missing but index files or snapshots are there: a damaged repository (restore config from a copy, e.g. a replica made by cairn copy from the same init)")
		}
		return cfg, ErrNoRepository
	}
	if err != nil {
		return cfg, fmt.Errorf("repo: read config: %w", err)
	}
	return parseConfig(buf)
}

// hasAny reports whether the store holds an object under any of prefixes.
func hasAny(ctx context.Context, st store.Store, prefixes ...string) (bool, error) {
	errFound := errors.New("found")
	for _, p := range prefixes {
		err := st.List(ctx, p, func(store.Info) error { return errFound })
		if errors.Is(err, errFound) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
	return false, nil
}

// parseConfig decodes the public config object and checks what Open
// relies on before it asks for a password.
func parseConfig(buf []byte) (Config, error) {
	var cfg Config
	if err := json.Unmarshal(buf, &cfg); err != nil {
		return cfg, fmt.Errorf("repo: parse config: %w", err)
	}
	switch {
	case cfg.Version != FormatVersion:
		return cfg, fmt.Errorf("%w %d (this cairn reads version %d)", ErrUnknownVersion, cfg.Version, FormatVersion)
	case cfg.ID == chunk.ID{}:
		return cfg, errors.New("repo: config: repository ID missing")
	case len(cfg.Sealed) < pack.Overhead:
		return cfg, fmt.Errorf("repo: config: sealed part of %d bytes is damaged", len(cfg.Sealed))
	}
	return cfg, nil
}

// Open opens the repository in st with password.
func Open(ctx context.Context, st store.Store, password string) (*Repository, error) {
	cfg, err := ReadConfig(ctx, st)
	if err != nil {
		return nil, err
	}
	var names []string
	err = st.List(ctx, "keys/", func(fi store.Info) error {
		names = append(names, fi.Name)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("repo: list keys: %w", err)
	}
	if len(names) == 0 {
		return nil, errors.New("repo: keys/ holds no key file: no password can open this repository (restore keys/ from a copy)")
	}
	var damaged []error
	for _, name := range names {
		mk, err := openKey(ctx, st, name, password)
		if errors.Is(err, errOtherPassword) || errors.Is(err, store.ErrNotFound) {
			continue // another password's key, or one removed meanwhile
		}
		var dk *damagedKeyError
		if errors.As(err, &dk) {
			damaged = append(damaged, err) // another key may still open
			continue
		}
		if err != nil {
			return nil, err
		}
		secret, err := pack.Open(&mk.Data, nil, cfg.Sealed, adConfig)
		if err != nil {
			return nil, fmt.Errorf("repo: config is damaged or does not belong to key %s: %w", name, err)
		}
		sc, err := parseSecretConfig(secret)
		if err != nil {
			return nil, err
		}
		r := newRepository(st, cfg, *mk, sc)
		r.keyName = name
		return r, nil
	}
	if len(damaged) > 0 {
		// Not ErrWrongPassword: retrying passwords will not help while the
		// key that may be this password's is damaged.
		return nil, fmt.Errorf("repo: no intact key opens with this password: %w", errors.Join(damaged...))
	}
	return nil, ErrWrongPassword
}
