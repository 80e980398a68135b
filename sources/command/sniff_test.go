package command

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

func gzipped(t *testing.T, data string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(data))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func zstded(t *testing.T, data string) []byte {
	t.Helper()
	w, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	return w.EncodeAll([]byte(data), nil)
}

func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		name       string
		data       []byte
		kind       string
		compressed bool
	}{
		{"gzip (Go)", gzipped(t, "COPY items FROM stdin;"), KindGzip, true},
		{"zstd (Go)", zstded(t, "COPY items FROM stdin;"), KindZstd, true},
		// The first bytes of `echo hello | gzip` (zstd, bzip2, xz, lz4)
		// as Debian 12's programs write them.
		{"gzip", []byte{0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xcb, 0x48}, KindGzip, true},
		{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58, 0x31, 0x00, 0x00, 0x68, 0x65, 0x6c}, KindZstd, true},
		{"bzip2", []byte{0x42, 0x5a, 0x68, 0x39, 0x31, 0x41, 0x59, 0x26, 0x53, 0x59, 0xc1, 0xc0}, KindBzip2, true},
		{"xz", []byte{0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x04, 0xe6, 0xd6, 0xb4, 0x46}, KindXz, true},
		{"lz4", []byte{0x04, 0x22, 0x4d, 0x18, 0x64, 0x40, 0xa7, 0x06, 0x00, 0x00, 0x80, 0x68}, KindLZ4, true},
		{"lz4 legacy", []byte{0x02, 0x21, 0x4c, 0x18, 0x00}, KindLZ4, true},
		{"plain pg_dump", []byte("--\n-- PostgreSQL database dump\n--\n"), "", false},
		{"mariadb-dump", []byte("/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump"), "", false},
		{"BZ but not bzip2", []byte("BZhX"), "", false},
		{"empty", nil, "", false},
		{"one byte of gzip", []byte{0x1f}, "", false},
		// pg_dump 15 headers as written by the real pg_dump 15 (the
		// database tests check them against it): 1.14, int 4, off 8,
		// custom; then the level as sign byte + 4 bytes.
		{"pg 15 -Fc", []byte("PGDMP\x01\x0e\x00\x04\x08\x01\x01\x01\x00\x00\x00"), KindPGCustom, true},
		{"pg 15 -Fc -Z0", []byte("PGDMP\x01\x0e\x00\x04\x08\x01\x00\x00\x00\x00\x00"), KindPGCustom, false},
		{"pg 15 -Fc -Z9", []byte("PGDMP\x01\x0e\x00\x04\x08\x01\x00\x09\x00\x00\x00"), KindPGCustom, true},
		// -Fd's toc.dat says "tar" (3), which the directory format shares.
		{"pg 15 -Fd toc.dat", []byte("PGDMP\x01\x0e\x00\x04\x08\x03\x01\x01\x00\x00\x00"), KindPGDirectory, true},
		{"pg 15 -Fd -Z0 toc.dat", []byte("PGDMP\x01\x0e\x00\x04\x08\x03\x00\x00\x00\x00\x00"), KindPGDirectory, false},
		// PostgreSQL 16+ (archive 1.15): one algorithm byte.
		{"pg 16 none", []byte("PGDMP\x01\x0f\x00\x04\x08\x01\x00"), KindPGCustom, false},
		{"pg 16 gzip", []byte("PGDMP\x01\x0f\x00\x04\x08\x01\x01"), KindPGCustom, true},
		{"pg 16 zstd", []byte("PGDMP\x01\x0f\x00\x04\x08\x01\x03"), KindPGCustom, true},
		{"pg 17 lz4", []byte("PGDMP\x01\x10\x00\x04\x08\x01\x02"), KindPGCustom, true},
		{"pg header cut short", []byte("PGDMP\x01\x0e"), KindPGCustom, false},
		{"pg level cut short", []byte("PGDMP\x01\x0e\x00\x04\x08\x01\x00\x00"), KindPGCustom, false},
		{"pg archive 1.1 always compressed", []byte("PGDMP\x01\x01\x00\x04\x04\x01"), KindPGCustom, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind, compressed := Sniff(tc.data)
			if kind != tc.kind || compressed != tc.compressed {
				t.Errorf("Sniff(% x) = %q, %v; want %q, %v", tc.data[:min(len(tc.data), 16)], kind, compressed, tc.kind, tc.compressed)
			}
		})
	}
}

func TestCompressionAdvice(t *testing.T) {
	for _, kind := range []string{KindGzip, KindZstd, KindBzip2, KindXz, KindLZ4, KindPGCustom, KindPGDirectory} {
		a := CompressionAdvice(kind)
		if !strings.Contains(a, "deduplication") || !strings.Contains(a, "-Z0") {
			t.Errorf("CompressionAdvice(%q) = %q: want why and the fix", kind, a)
		}
	}
	if a := CompressionAdvice(""); a != "" {
		t.Errorf("advice for plain data: %q", a)
	}
}

func TestStreamSniff(t *testing.T) {
	ctx := bounded(t, 10*time.Second)
	s, err := Start(ctx, Spec{Argv: []string{"seq 1 100000 | gzip -1"}, Shell: true})
	if err != nil {
		t.Fatal(err)
	}
	if kind, _ := s.Sniff(); kind != "" {
		t.Errorf("Sniff before reading = %q", kind)
	}
	// The archiver reads in large blocks, but a reader may take a byte at
	// a time: the head is collected across reads.
	b := make([]byte, 1)
	for range 3 {
		if _, err := s.Read(b); err != nil {
			t.Fatal(err)
		}
	}
	if kind, compressed := s.Sniff(); kind != KindGzip || !compressed {
		t.Errorf("Sniff() after 3 bytes = %q, %v", kind, compressed)
	}
	data, rerr, werr := readAll(t, ctx, s)
	if rerr != nil || werr != nil || s.BytesRead() != int64(len(data)+3) {
		t.Errorf("read %v, wait %v, %d bytes of %d", rerr, werr, len(data)+3, s.BytesRead())
	}
}
