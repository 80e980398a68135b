package repo

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/internal/memstore"
)

// testParams are fixed, valid chunker sets: the files' and the streams'
// default sizes with one irreducible polynomial.
func testParams(tb testing.TB) (files, streams chunk.Params) {
	tb.Helper()
	files, err := chunk.DefaultParams()
	if err != nil {
		tb.Fatal(err)
	}
	files.Polynomial = 0x3DA3358B4DC173 // restic/chunker's test polynomial
	streams = files
	streams.MinSize, streams.MaxSize, streams.AverageBits = 64<<10, 1<<20, 17
	return files, streams
}

func TestParseSecretConfig(t *testing.T) {
	files, streams := testParams(t)
	js := func(v any) string {
		buf, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf)
	}
	// encode writes the sealed JSON with stream as the raw stream_chunker.
	encode := func(stream string) string {
		return `{"chunker":` + js(files) + `,"stream_chunker":` + stream + `}`
	}
	with := func(f func(*chunk.Params)) string {
		p := streams
		f(&p)
		return encode(js(p))
	}
	tests := []struct {
		name    string
		in      string
		wantErr string // "" when accepted
	}{
		{"without a stream set", js(secretConfig{Chunker: files}), ""},
		{"with a stream set", encode(js(streams)), ""},
		{"stream set equal to the files'", encode(js(files)), ""},
		{"stream set null", encode("null"), ""},
		{"stream max above the files' max", with(func(p *chunk.Params) { p.MaxSize = files.MaxSize + 1 }), "above the chunker's"},
		{"stream max above 64 MiB", with(func(p *chunk.Params) { p.MaxSize = 1 << 40 }), "bad size bounds"},
		{"stream min 0", with(func(p *chunk.Params) { p.MinSize = 0 }), "bad size bounds"},
		{"stream min above max", with(func(p *chunk.Params) { p.MinSize = p.MaxSize + 1 }), "bad size bounds"},
		{"stream average bits 40", with(func(p *chunk.Params) { p.AverageBits = 40 }), "bad average bits"},
		{"stream polynomial reducible", with(func(p *chunk.Params) { p.Polynomial = 4 }), "not irreducible"},
		{"stream algorithm unknown", with(func(p *chunk.Params) { p.Algorithm = "fastcdc" }), "unknown algorithm"},
		{"stream set not an object", encode("7"), "parse sealed config"},
		{"only a stream set", `{"stream_chunker":` + js(streams) + `}`, "unknown algorithm"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := parseSecretConfig([]byte(tc.in))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %+v, %v; want an error with %q", sc, err, tc.wantErr)
			}
		})
	}
}

// TestInitStreamChunker: what Init seals, by option, as Open reads it back.
func TestInitStreamChunker(t *testing.T) {
	files, streams := testParams(t)
	big := streams
	big.MaxSize = 16 << 20
	kdf := KDFParams{N: 1 << 10, R: 8, P: 1}
	tests := []struct {
		name    string
		opts    InitOptions
		want    func(chunk.Params) bool // the stream set Open reads; nil: none sealed
		wantErr string
	}{
		{"default", InitOptions{}, func(p chunk.Params) bool {
			return p.MinSize == 64<<10 && p.AverageBits == 17 && p.MaxSize == 1<<20 && p.Validate() == nil
		}, ""},
		{"given", InitOptions{Chunker: &files, StreamChunker: &streams}, func(p chunk.Params) bool { return p == streams }, ""},
		{"none", InitOptions{Chunker: &files, NoStreamChunker: true}, nil, ""},
		{"above the files' max", InitOptions{Chunker: &files, StreamChunker: &big}, nil, "above the chunker's"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := memstore.New()
			tc.opts.KDF = kdf
			_, err := Init(t.Context(), st, "pw", tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("init: %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r, err := Open(t.Context(), st, "pw")
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.want == nil && r.stream != nil:
				t.Errorf("sealed a stream set %+v", *r.stream)
			case tc.want != nil && (r.stream == nil || !tc.want(*r.stream)):
				t.Errorf("stream set %v", r.stream)
			}
		})
	}
}
