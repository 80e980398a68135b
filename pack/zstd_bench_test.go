package pack

import (
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// These benchmarks justify the structure of Encoder. They compare, on 1 MiB
// chunks, one shared zstd.Encoder limited to one encoder state, one shared
// zstd.Encoder with GOMAXPROCS states and a sync.Pool of single-state
// encoders (what Encoder uses), serially and from parallel
// goroutines, at the two candidate levels. Run the strategies of one level
// several times in turn (-count) and compare within a round: other load on
// the machine moves absolute figures more than the differences.

func newZstd(tb testing.TB, level zstd.EncoderLevel, conc int) *zstd.Encoder {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(conc), zstd.WithWindowSize(encoderWindow), zstd.WithEncoderCRC(false))
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func BenchmarkZstdStrategy(b *testing.B) {
	inputs := []struct {
		name string
		data []byte
	}{
		{"text", sqlText(1<<20, 1)},
		{"random", randomBytes(1<<20, 1)},
	}
	levels := []struct {
		name  string
		level zstd.EncoderLevel
	}{
		{"default", zstd.SpeedDefault},
		{"fastest", zstd.SpeedFastest},
	}
	for _, in := range inputs {
		for _, lv := range levels {
			shared1 := newZstd(b, lv.level, 1)
			sharedN := newZstd(b, lv.level, 0)
			pool := &sync.Pool{New: func() any { return newZstd(b, lv.level, 1) }}
			strategies := []struct {
				name string
				enc  func(dst []byte) []byte
			}{
				{"shared1", func(dst []byte) []byte { return shared1.EncodeAll(in.data, dst) }},
				{"sharedN", func(dst []byte) []byte { return sharedN.EncodeAll(in.data, dst) }},
				{"pool", func(dst []byte) []byte {
					e := pool.Get().(*zstd.Encoder)
					dst = e.EncodeAll(in.data, dst)
					pool.Put(e)
					return dst
				}},
			}
			for _, s := range strategies {
				b.Run(in.name+"/"+lv.name+"/"+s.name+"/serial", func(b *testing.B) {
					dst := make([]byte, 0, 2<<20)
					b.SetBytes(int64(len(in.data)))
					b.ReportAllocs()
					var out []byte
					cpu := startCPU(b)
					for b.Loop() {
						out = s.enc(dst[:0])
					}
					cpu.stop(len(in.data))
					b.ReportMetric(float64(len(out))/float64(len(in.data)), "ratio")
				})
				b.Run(in.name+"/"+lv.name+"/"+s.name+"/parallel", func(b *testing.B) {
					b.SetBytes(int64(len(in.data)))
					b.ReportAllocs()
					cpu := startCPU(b)
					b.RunParallel(func(pb *testing.PB) {
						dst := make([]byte, 0, 2<<20)
						for pb.Next() {
							dst = s.enc(dst[:0])
						}
					})
					cpu.stop(len(in.data))
				})
			}
		}
	}
}
