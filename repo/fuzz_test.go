package repo

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/internal/memstore"
	"github.com/cairn-backup/cairn/pack"
)

// The decoders of the store's mutable objects (key files, the config, lock
// records) take untrusted input. Each fuzz test asserts what Open and the
// lockers rely on, not only that nothing panics.
//
//	go test -run '^$' -fuzz FuzzParseKeyFile -fuzztime 30s ./repo

func sampleKeyFile(tb testing.TB) []byte {
	tb.Helper()
	kf := keyFile{Version: 1, Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Host: "h", KDF: "scrypt",
		N: 1 << 15, R: 8, P: 1, Salt: bytes.Repeat([]byte{1}, 32), Sealed: bytes.Repeat([]byte{2}, 200), Check: bytes.Repeat([]byte{3}, keyCheckSize)}
	buf, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		tb.Fatal(err)
	}
	return buf
}

// FuzzParseKeyFile: an accepted key file is within every bound (so scrypt
// can neither panic nor take more than 1 GiB or 2^24 work), and its
// fields survive a re-encoding unchanged.
func FuzzParseKeyFile(f *testing.F) {
	f.Add(sampleKeyFile(f))
	f.Add([]byte(`{"version":1,"kdf":"scrypt","n":1099511627776,"r":8,"p":1,"salt":"AAAAAAAAAAAAAAAAAAAAAA==","sealed":"` + string(bytes.Repeat([]byte("A"), 80)) + `"}`))
	f.Add([]byte(`{"version":1,"kdf":"scrypt","n":16384,"r":2147483647,"p":2147483647}`))
	f.Add([]byte(`{"version":2,"kdf":"argon2id"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		kf, err := parseKeyFile(data)
		if err != nil {
			if kf != nil {
				t.Fatal("key file returned with an error")
			}
			return
		}
		p := KDFParams{N: kf.N, R: kf.R, P: kf.P}
		if p.validate() != nil || kf.Version != 1 || kf.KDF != "scrypt" {
			t.Fatalf("accepted %+v", kf)
		}
		if mem := 128 * int64(kf.N) * int64(kf.R); mem > maxKDFMemory || mem <= 0 {
			t.Fatalf("accepted scrypt needing %d bytes", mem)
		}
		if work := int64(kf.N) * int64(kf.R) * int64(kf.P); work > maxKDFWork {
			t.Fatalf("accepted scrypt work %d", work)
		}
		if len(kf.Salt) < minSaltSize || len(kf.Salt) > maxSaltSize || len(kf.Sealed) > maxSealedKeySize {
			t.Fatalf("accepted salt %d / sealed %d bytes", len(kf.Salt), len(kf.Sealed))
		}
		again, err := json.Marshal(kf)
		if err != nil {
			return // a time JSON cannot write
		}
		back, err := parseKeyFile(again)
		if err != nil || !reflect.DeepEqual(back, kf) {
			t.Fatalf("re-encoded key file: %v\n%+v\n%+v", err, kf, back)
		}
	})
}

// FuzzParseConfig: an accepted config has this version, an ID and a sealed
// part that can at least hold a seal, and re-encodes to the same config.
func FuzzParseConfig(f *testing.F) {
	cfg := Config{Version: 1, ID: chunk.ID{1, 2, 3}, Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Sealed: bytes.Repeat([]byte{4}, 120)}
	seed, _ := json.MarshalIndent(cfg, "", "  ")
	f.Add(seed)
	f.Add([]byte(`{"version":7}`))
	f.Add([]byte(`{"version":1,"id":"00"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseConfig(data)
		if err != nil {
			return
		}
		if c.Version != FormatVersion || c.ID == (chunk.ID{}) || len(c.Sealed) < 40 {
			t.Fatalf("accepted %+v", c)
		}
		again, err := json.Marshal(c)
		if err != nil {
			return
		}
		back, err := parseConfig(again)
		if err != nil || !reflect.DeepEqual(back, c) {
			t.Fatalf("re-encoded config: %v\n%+v\n%+v", err, c, back)
		}
	})
}

// FuzzParseSecretConfig: the sealed part of the config. An accepted one
// has valid chunker sets whose data blobs are all within the limit readers
// allocate up to (the files' max_size, at most 64 MiB), with or without a
// stream set, and re-encodes to the same sets.
func FuzzParseSecretConfig(f *testing.F) {
	files, streams := testParams(f)
	for _, sc := range []secretConfig{{Chunker: files}, {Chunker: files, StreamChunker: &streams}} {
		seed, _ := json.Marshal(sc)
		f.Add(seed)
	}
	f.Add([]byte(`{"chunker":{"algorithm":"rabin-restic","polynomial":17349423945073011,"min_size":524288,"max_size":8388608,"average_bits":20},"stream_chunker":{"algorithm":"rabin-restic","polynomial":17349423945073011,"min_size":65536,"max_size":1099511627776,"average_bits":17}}`))
	f.Add([]byte(`{"chunker":{"algorithm":"rabin-restic","polynomial":17349423945073011,"min_size":1,"max_size":1024,"average_bits":10},"stream_chunker":{"algorithm":"rabin-restic","polynomial":17349423945073011,"min_size":1,"max_size":2048,"average_bits":26}}`))
	f.Add([]byte(`{"stream_chunker":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := parseSecretConfig(data)
		if err != nil {
			return
		}
		if sc.Chunker.Validate() != nil || sc.Chunker.MaxSize > 64<<20 {
			t.Fatalf("accepted chunker %+v", sc.Chunker)
		}
		r := &Repository{chunker: sc.Chunker, stream: sc.StreamChunker}
		if s := r.StreamChunkerParams(); s.Validate() != nil || uint64(s.MaxSize) > uint64(r.rawLimit(pack.DataBlob)) {
			t.Fatalf("accepted stream set %+v with the chunker's %+v", s, sc.Chunker)
		}
		again, err := json.Marshal(sc)
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseSecretConfig(again)
		if err != nil || !reflect.DeepEqual(back, sc) {
			t.Fatalf("re-encoded sealed config: %v\n%+v\n%+v", err, sc, back)
		}
	})
}

// FuzzReadLock: a lock record is read through the store with its size
// bounded; an accepted record has a refresh time, anything else is a
// badLockError (which blocks exclusive lockers) and never a panic.
func FuzzReadLock(f *testing.F) {
	rec := lockRecord{Host: "h", PID: 42, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Refreshed: time.Date(2026, 1, 2, 3, 9, 5, 0, time.UTC), Purpose: "backup"}
	seed, _ := json.Marshal(rec)
	f.Add(seed)
	f.Add([]byte(`{"exclusive":true,"prune":true,"refreshed":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"host":"h"}`))
	f.Add(bytes.Repeat([]byte(" "), maxLockRecord+1))
	st := memstore.New()
	r := &Repository{st: st}
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := t.Context()
		if err := st.Put(ctx, "locks/x", data); err != nil {
			t.Fatal(err)
		}
		got, err := r.readLock(ctx, "locks/x")
		if err != nil {
			var bad *badLockError
			if !errors.As(err, &bad) {
				t.Fatalf("a bad record is not a badLockError: %v", err)
			}
			return
		}
		if len(data) > maxLockRecord || got.Refreshed.IsZero() {
			t.Fatalf("accepted %d bytes, record %+v", len(data), got)
		}
	})
}
