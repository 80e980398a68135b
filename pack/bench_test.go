package pack

import (
	"fmt"
	"testing"
)

var benchInputs = []struct {
	name string
	data []byte
}{
	{"text", sqlText(1<<20, 1)},
	{"random", randomBytes(1<<20, 1)},
}

// BenchmarkEncode measures Encoder.Encode on 1 MiB chunks; "noprobe" turns
// off the incompressibility probe to show what it saves or costs.
func BenchmarkEncode(b *testing.B) {
	key := testKey(1)
	e := NewEncoder(*key)
	id := testID(1)
	for _, in := range benchInputs {
		for _, probe := range []bool{true, false} {
			name := in.name
			if !probe {
				name += "/noprobe"
			}
			b.Run(name, func(b *testing.B) {
				e := NewEncoder(*key)
				e.noProbe = !probe
				dst := make([]byte, 0, 2<<20)
				b.SetBytes(int64(len(in.data)))
				b.ReportAllocs()
				var n int
				cpu := startCPU(b)
				for b.Loop() {
					out, _ := e.Encode(dst[:0], DataBlob, id, in.data)
					n = len(out)
				}
				cpu.stop(len(in.data))
				b.ReportMetric(float64(n)/float64(len(in.data)), "ratio")
			})
		}
		b.Run(in.name+"/parallel", func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			cpu := startCPU(b)
			b.RunParallel(func(pb *testing.PB) {
				dst := make([]byte, 0, 2<<20)
				for pb.Next() {
					dst, _ = e.Encode(dst[:0], DataBlob, id, in.data)
				}
			})
			cpu.stop(len(in.data))
		})
	}
}

// BenchmarkDecode measures Decode on 1 MiB chunks.
func BenchmarkDecode(b *testing.B) {
	key := testKey(1)
	e := NewEncoder(*key)
	id := testID(1)
	for _, in := range benchInputs {
		stored, blob := encodeBlob(e, DataBlob, id, in.data)
		b.Run(in.name, func(b *testing.B) {
			dst := make([]byte, 0, len(in.data))
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			cpu := startCPU(b)
			for b.Loop() {
				if _, err := Decode(key, dst[:0], blob, stored); err != nil {
					b.Fatal(err)
				}
			}
			cpu.stop(len(in.data))
		})
		b.Run(in.name+"/parallel", func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			cpu := startCPU(b)
			b.RunParallel(func(pb *testing.PB) {
				dst := make([]byte, 0, len(in.data))
				for pb.Next() {
					if _, err := Decode(key, dst[:0], blob, stored); err != nil {
						panic(err)
					}
				}
			})
			cpu.stop(len(in.data))
		})
	}
}

// BenchmarkSeal is the encryption alone, for comparison.
func BenchmarkSeal(b *testing.B) {
	key := testKey(1)
	for _, size := range []int{1 << 20} {
		pt := randomBytes(size, 1)
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			dst := make([]byte, 0, size+Overhead)
			b.SetBytes(int64(size))
			cpu := startCPU(b)
			for b.Loop() {
				Seal(key, dst[:0], pt, nil)
			}
			cpu.stop(size)
		})
	}
}
