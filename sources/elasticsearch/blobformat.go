package elasticsearch

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Elasticsearch's metadata blobs (snap-*.dat, meta-*.dat and the shard
// index-* files) are "checksum blobs" (ChecksumBlobStoreFormat, described
// in docs/ELASTICSEARCH.md): a Lucene codec header, a payload that is SMILE
// (or, from the emulator, JSON), DEFLATE-compressed behind "DFL\0" when the
// repository's compress setting is on, and a Lucene footer with the CRC32
// of everything before its last 8 bytes.

const (
	codecMagic  = 0x3FD76C17
	footerMagic = 0xC02893E8
	footerLen   = 16
	dflHeader   = "DFL\x00"
	// maxPayload bounds an inflated metadata payload. A shard index file
	// of a shard with 1,000 snapshots of 300 files each is a few MiB of
	// SMILE; 64 MiB leaves room without letting a damaged blob exhaust
	// memory (see also smileMaxValues).
	maxPayload = 64 << 20
)

// Codec names of the blobs cairn reads.
const (
	codecShardSnapshots = "snapshots" // shard index-*
)

// decodeChecksumBlob checks the envelope of a metadata blob (codec name,
// format version 1, footer and CRC32) and decodes its payload.
func decodeChecksumBlob(data []byte, codec string) (any, error) {
	if len(data) < 4+1+4+footerLen {
		return nil, fmt.Errorf("%d bytes is too short for a checksum blob", len(data))
	}
	f := data[len(data)-footerLen:]
	if binary.BigEndian.Uint32(f) != footerMagic || binary.BigEndian.Uint32(f[4:]) != 0 {
		return nil, errors.New("no Lucene footer")
	}
	if got, want := uint64(crc32.ChecksumIEEE(data[:len(data)-8])), binary.BigEndian.Uint64(f[8:]); got != want {
		return nil, fmt.Errorf("checksum mismatch (stored %x, computed %x)", want, got)
	}
	if binary.BigEndian.Uint32(data) != codecMagic {
		return nil, errors.New("no Lucene codec header")
	}
	n := int(data[4]) // a codec name is shorter than 128 bytes: a one-byte VInt
	if n >= 0x80 || 5+n+4 > len(data)-footerLen {
		return nil, errors.New("bad codec name length")
	}
	if got := string(data[5 : 5+n]); got != codec {
		return nil, fmt.Errorf("codec %q, want %q", got, codec)
	}
	if v := binary.BigEndian.Uint32(data[5+n:]); v != 1 {
		return nil, fmt.Errorf("format version %d of codec %q is not one cairn knows (1)", v, codec)
	}
	payload := data[5+n+4 : len(data)-footerLen]
	if rest, ok := bytes.CutPrefix(payload, []byte(dflHeader)); ok {
		raw, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(rest)), maxPayload+1))
		if err != nil {
			return nil, fmt.Errorf("inflate payload: %w", err)
		}
		if len(raw) > maxPayload {
			return nil, fmt.Errorf("payload inflates to more than %d bytes", maxPayload)
		}
		payload = raw
	}
	switch {
	case bytes.HasPrefix(payload, smileHeader):
		return decodeSmile(payload)
	case bytes.HasPrefix(payload, []byte("{")):
		dec := json.NewDecoder(bytes.NewReader(payload))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("payload: %w", err)
		}
		return jsonInts(v), nil
	}
	return nil, errors.New("payload is neither SMILE nor JSON")
}

// jsonInts turns the json.Numbers of a decoded JSON value into int64 (or
// float64 when not integral), the types the SMILE decoder yields.
func jsonInts(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		for k, e := range v {
			v[k] = jsonInts(e)
		}
	case []any:
		for i, e := range v {
			v[i] = jsonInts(e)
		}
	}
	return v
}
