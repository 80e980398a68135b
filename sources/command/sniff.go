package command

import (
	"bytes"
	"encoding/binary"
)

// Kinds of data Sniff recognises.
const (
	KindGzip  = "gzip"
	KindZstd  = "zstd"
	KindBzip2 = "bzip2"
	KindXz    = "xz"
	KindLZ4   = "lz4"
	// KindPGCustom is a pg_dump custom-format archive (-Fc), compressed
	// or not; KindPGDirectory is the toc.dat of a directory-format one
	// (-Fd, or the tar format's toc.dat), whose header says how its data
	// files are compressed.
	KindPGCustom    = "pg_dump custom format"
	KindPGDirectory = "pg_dump directory format"
)

// Sniff recognises the start of a dump: gzip, zstd, bzip2, xz and lz4 by
// their magic numbers (all compressed), and a pg_dump archive header, which
// says whether the archive's data is compressed. kind is "" for anything
// else (plain SQL, say). Give it the first bytes of the data; 16 are enough.
func Sniff(first []byte) (kind string, compressed bool) {
	switch {
	case bytes.HasPrefix(first, []byte{0x1f, 0x8b}):
		return KindGzip, true
	case bytes.HasPrefix(first, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return KindZstd, true
	case len(first) >= 4 && bytes.HasPrefix(first, []byte("BZh")) && first[3] >= '1' && first[3] <= '9':
		return KindBzip2, true
	case bytes.HasPrefix(first, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return KindXz, true
	case bytes.HasPrefix(first, []byte{0x04, 0x22, 0x4d, 0x18}), // frame format
		bytes.HasPrefix(first, []byte{0x02, 0x21, 0x4c, 0x18}): // legacy format (lz4 -l)
		return KindLZ4, true
	case bytes.HasPrefix(first, []byte("PGDMP")):
		return sniffPGDump(first)
	}
	return "", false
}

// pg_dump's archive formats (ArchiveFormat in pg_backup.h). The directory
// format writes its toc.dat with the tar format's code, which it shares
// (checked against pg_dump 15's output), so 3 stands for both.
const (
	pgFormatCustom    = 1
	pgFormatTar       = 3
	pgFormatDirectory = 5
)

// sniffPGDump reads a pg_dump archive header (WriteHead in
// pg_backup_archiver.c):
//
//	"PGDMP" vmaj vmin vrev intSize offSize format
//	archive version < 1.15 (PostgreSQL ≤ 15): the compression level as an
//	  int — a sign byte (1 = negative), then intSize bytes, little-endian;
//	  -1 (zlib's default, what -Fc uses without -Z), 1–9: gzip; 0: none
//	archive version ≥ 1.15 (PostgreSQL 16+): one byte, the algorithm —
//	  0 none, 1 gzip, 2 lz4, 3 zstd
//
// Archive versions before 1.2 always compressed. A header cut short is
// reported as the kind, uncompressed: better no warning than a false one.
func sniffPGDump(h []byte) (kind string, compressed bool) {
	if len(h) < 11 {
		return KindPGCustom, false
	}
	vmaj, vmin, intSize, format := h[5], h[6], int(h[8]), h[10]
	switch format {
	case pgFormatCustom:
		kind = KindPGCustom
	case pgFormatTar, pgFormatDirectory:
		kind = KindPGDirectory
	default:
		// Something newer; the header layout is the same, so read on.
		kind = KindPGCustom
	}
	version := int(vmaj)<<8 | int(vmin)
	switch {
	case version >= 1<<8|15:
		if len(h) < 12 {
			return kind, false
		}
		return kind, h[11] != 0
	case version >= 1<<8|2:
		if intSize < 1 || intSize > 8 || len(h) < 12+intSize {
			return kind, false
		}
		var v [8]byte
		copy(v[:], h[12:12+intSize])
		level := binary.LittleEndian.Uint64(v[:])
		negative := h[11] != 0
		return kind, negative || level != 0
	default:
		return kind, true
	}
}

// CompressionAdvice is the warning for a dump Sniff found compressed: why
// it matters and how to turn compression off. "" when kind needs none.
func CompressionAdvice(kind string) string {
	const why = "compressed data defeats deduplication (a small change in the database changes every compressed byte after it, so each backup stores nearly the whole dump again); cairn compresses what it stores anyway"
	switch kind {
	case KindPGCustom:
		return "the pg_dump custom-format archive is compressed (pg_dump compresses -Fc by default): " + why +
			". Add -Z0 to pg_dump (PostgreSQL 16+ also accept --compress=none), or use the plain format (-Fp)"
	case KindPGDirectory:
		return "the pg_dump directory-format archive is compressed (pg_dump compresses -Fd by default): " + why +
			". Add -Z0 to pg_dump (PostgreSQL 16+ also accept --compress=none)"
	case KindGzip, KindZstd, KindBzip2, KindXz, KindLZ4:
		return "the dump is " + kind + "-compressed: " + why +
			". Remove the compression step: a `| " + kind + "` in the command, or the tool's own option (pg_dump -Z0)"
	}
	return ""
}
