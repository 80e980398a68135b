package pack

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// cpuMeter reports a benchmark's throughput per CPU-second of the whole
// process (MB/cpu-s), which unlike MB/s does not drop when other processes
// share the machine. Start it just before the timed loop; call stop after.
type cpuMeter struct {
	b     *testing.B
	start float64
}

func startCPU(b *testing.B) cpuMeter { return cpuMeter{b, cpuSeconds()} }

func (m cpuMeter) stop(bytesPerOp int) {
	if d := cpuSeconds() - m.start; d > 0 && m.start > 0 {
		m.b.ReportMetric(float64(bytesPerOp)*float64(m.b.N)/1e6/d, "MB/cpu-s")
	}
}

// sqlText returns n bytes of deterministic text that looks like a SQL dump:
// INSERT statements with ids, names, e-mail addresses, timestamps, amounts
// and free-text comments. It compresses about as well as real dumps do.
func sqlText(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	first := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yolanda"}
	last := []string{"smith", "jones", "garcia", "miller", "davis", "lopez", "wilson", "anderson", "thomas", "taylor", "moore", "martin", "lee", "perez", "white", "harris"}
	words := []string{"order", "shipped", "pending", "refund", "customer", "requested", "delivery", "invoice", "payment", "received", "backorder", "warehouse", "express", "standard", "cancelled", "gift", "wrap", "note", "address", "changed", "the", "a", "to", "and", "of", "for", "with"}
	domains := []string{"example.com", "mail.example.org", "corp.example.net", "example.co.uk"}
	status := []string{"'new'", "'paid'", "'shipped'", "'closed'", "NULL"}
	b := make([]byte, 0, n+512)
	id := r.IntN(1_000_000)
	for len(b) < n {
		b = fmt.Appendf(b, "INSERT INTO public.orders (id, customer, email, created_at, amount, status, comment) VALUES ")
		rows := 5 + r.IntN(20)
		for i := range rows {
			id += 1 + r.IntN(3)
			f, l := first[r.IntN(len(first))], last[r.IntN(len(last))]
			b = fmt.Appendf(b, "(%d, '%s %s', '%s.%s%d@%s', '2024-%02d-%02d %02d:%02d:%02d.%06d+00', %d.%02d, %s, '",
				id, f, l, f, l, r.IntN(100), domains[r.IntN(len(domains))],
				1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1_000_000),
				r.IntN(5000), r.IntN(100), status[r.IntN(len(status))])
			for w := range 2 + r.IntN(8) {
				if w > 0 {
					b = append(b, ' ')
				}
				b = append(b, words[r.IntN(len(words))]...)
			}
			b = append(b, "')"...)
			if i < rows-1 {
				b = append(b, ",\n\t"...)
			}
		}
		b = append(b, ";\n"...)
	}
	return b[:n]
}

// randomBytes returns n deterministic pseudo-random (incompressible) bytes.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0xdead))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}
