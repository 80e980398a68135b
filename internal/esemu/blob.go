package esemu

import (
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
)

// Lucene CodecUtil constants (docs/ELASTICSEARCH.md §2).
const (
	codecMagic  uint32 = 0x3FD76C17
	footerMagic uint32 = 0xC02893E8
	footerLen          = 16
	// dflHeader marks a DEFLATE-compressed checksum-blob payload.
	dflHeader = "DFL\x00"
)

// Codec names of the metadata blobs (ChecksumBlobStoreFormat).
const (
	codecSnapshot      = "snapshot"       // root and shard snap-*.dat
	codecMetadata      = "metadata"       // root meta-*.dat
	codecIndexMetadata = "index-metadata" // indices/<id>/meta-*.dat
	codecSnapshots     = "snapshots"      // shard index-<gen>
)

var errCorrupt = errors.New("corrupt blob")

// newUUID returns a 22-character URL-safe base64 UUID like
// UUIDs.randomBase64UUID().
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40 // version 4, as ES sets
	b[8] = b[8]&0x3f | 0x80
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func writeVInt(b *bytes.Buffer, v int) {
	for v >= 0x80 {
		b.WriteByte(byte(v) | 0x80)
		v >>= 7
	}
	b.WriteByte(byte(v))
}

func readVInt(p []byte) (int, int, error) {
	v, shift := 0, 0
	for i, c := range p {
		if i >= 5 {
			break
		}
		v |= int(c&0x7f) << shift
		if c < 0x80 {
			return v, i + 1, nil
		}
		shift += 7
	}
	return 0, 0, fmt.Errorf("%w: bad vint", errCorrupt)
}

func writeHeader(b *bytes.Buffer, codec string, version uint32) {
	_ = binary.Write(b, binary.BigEndian, codecMagic)
	writeVInt(b, len(codec))
	b.WriteString(codec)
	_ = binary.Write(b, binary.BigEndian, version)
}

// writeFooter appends Lucene's footer: magic, algorithm 0 and the CRC32 of
// every preceding byte (including magic and algorithm id).
func writeFooter(b *bytes.Buffer) {
	_ = binary.Write(b, binary.BigEndian, footerMagic)
	_ = binary.Write(b, binary.BigEndian, uint32(0))
	crc := crc32.ChecksumIEEE(b.Bytes())
	_ = binary.Write(b, binary.BigEndian, uint64(crc))
}

// checkFooter verifies the footer and returns the recorded CRC32.
func checkFooter(data []byte) (uint32, error) {
	if len(data) < footerLen {
		return 0, fmt.Errorf("%w: too short for a footer (%d bytes)", errCorrupt, len(data))
	}
	f := data[len(data)-footerLen:]
	if binary.BigEndian.Uint32(f) != footerMagic {
		return 0, fmt.Errorf("%w: codec footer mismatch", errCorrupt)
	}
	if binary.BigEndian.Uint32(f[4:]) != 0 {
		return 0, fmt.Errorf("%w: unknown checksum algorithm", errCorrupt)
	}
	want := binary.BigEndian.Uint64(f[8:])
	got := crc32.ChecksumIEEE(data[:len(data)-8])
	if uint64(got) != want {
		return 0, fmt.Errorf("%w: checksum failed (hardware problem?) : expected=%s actual=%s",
			errCorrupt, strconv.FormatUint(want, 36), strconv.FormatUint(uint64(got), 36))
	}
	return got, nil
}

// readHeader parses a CodecUtil header and returns codec, version and the
// offset after it.
func readHeader(data []byte) (string, uint32, int, error) {
	if len(data) < 4 || binary.BigEndian.Uint32(data) != codecMagic {
		return "", 0, 0, fmt.Errorf("%w: codec header mismatch", errCorrupt)
	}
	n, w, err := readVInt(data[4:])
	if err != nil {
		return "", 0, 0, err
	}
	off := 4 + w
	if len(data) < off+n+4 {
		return "", 0, 0, fmt.Errorf("%w: truncated header", errCorrupt)
	}
	codec := string(data[off : off+n])
	off += n
	ver := binary.BigEndian.Uint32(data[off:])
	return codec, ver, off + 4, nil
}

// blobEncoding says how metadata blob payloads are written: DEFLATE when
// the repository's compress is on, and SMILE (as Elasticsearch writes
// them) or JSON (easier to read; the emulator's default).
type blobEncoding struct {
	compress, smile bool
}

// encodeChecksumBlob writes v as ChecksumBlobStoreFormat does.
func encodeChecksumBlob(codec string, v any, enc blobEncoding) ([]byte, error) {
	js, err := json.Marshal(v)
	if enc.smile {
		js, err = toSmile(v)
	}
	if err != nil {
		return nil, err
	}
	compress := enc.compress
	var b bytes.Buffer
	writeHeader(&b, codec, 1)
	if compress {
		b.WriteString(dflHeader)
		fw, err := flate.NewWriter(&b, flate.DefaultCompression)
		if err != nil {
			return nil, err
		}
		if _, err := fw.Write(js); err != nil {
			return nil, err
		}
		if err := fw.Close(); err != nil {
			return nil, err
		}
	} else {
		b.Write(js)
	}
	writeFooter(&b)
	return b.Bytes(), nil
}

// decodeChecksumBlob verifies header, codec name and CRC, and decodes the
// payload into v.
func decodeChecksumBlob(data []byte, codec string, v any) error {
	if _, err := checkFooter(data); err != nil {
		return err
	}
	got, _, off, err := readHeader(data)
	if err != nil {
		return err
	}
	if got != codec {
		return fmt.Errorf("%w: codec mismatch: expected [%s], got [%s]", errCorrupt, codec, got)
	}
	payload := data[off : len(data)-footerLen]
	if bytes.HasPrefix(payload, []byte(dflHeader)) {
		raw, err := io.ReadAll(flate.NewReader(bytes.NewReader(payload[len(dflHeader):])))
		if err != nil {
			return fmt.Errorf("%w: inflate: %v", errCorrupt, err)
		}
		payload = raw
	}
	if bytes.HasPrefix(payload, []byte(":)\n")) {
		if err := fromSmile(payload, v); err != nil {
			return fmt.Errorf("%w: payload: %v", errCorrupt, err)
		}
		return nil
	}
	if err := json.Unmarshal(payload, v); err != nil {
		return fmt.Errorf("%w: payload: %v", errCorrupt, err)
	}
	return nil
}

// luceneFile builds a Lucene-style index file: CodecUtil index header
// (magic, codec, version, 16-byte id, suffix), payload, footer.
func luceneFile(codec string, id [16]byte, suffix string, payload []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(payload) + 64)
	writeHeader(&b, codec, 1)
	b.Write(id[:])
	b.WriteByte(byte(len(suffix)))
	b.WriteString(suffix)
	b.Write(payload)
	writeFooter(&b)
	return b.Bytes()
}

// parseLuceneFile verifies a Lucene-style file and returns its codec,
// suffix, payload and footer CRC.
func parseLuceneFile(data []byte) (codec, suffix string, payload []byte, crc uint32, err error) {
	crc, err = checkFooter(data)
	if err != nil {
		return
	}
	codec, _, off, err := readHeader(data)
	if err != nil {
		return
	}
	if len(data) < off+17+footerLen {
		err = fmt.Errorf("%w: truncated index header", errCorrupt)
		return
	}
	off += 16
	sl := int(data[off])
	off++
	if len(data) < off+sl+footerLen {
		err = fmt.Errorf("%w: truncated suffix", errCorrupt)
		return
	}
	suffix = string(data[off : off+sl])
	payload = data[off+sl : len(data)-footerLen]
	return codec, suffix, payload, crc, nil
}

// checksumString renders a CRC32 the way ES Store.digestToString does.
func checksumString(crc uint32) string { return strconv.FormatUint(uint64(crc), 36) }

// luceneChecksum returns the footer CRC of a Lucene file (the checksum ES
// records) without checking the header.
func luceneChecksum(data []byte) (string, error) {
	crc, err := checkFooter(data)
	if err != nil {
		return "", err
	}
	return checksumString(crc), nil
}
