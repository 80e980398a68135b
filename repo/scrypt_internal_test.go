package repo

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"testing"

	"golang.org/x/crypto/scrypt"
)

// Every key file written before cairn had its own scrypt was derived by
// x/crypto's: the two must agree on every input, or those repositories no
// longer open.
func TestScryptKeyRFC7914(t *testing.T) {
	cases := []struct {
		password, salt string
		n, r, p        int
		want           string
	}{
		{"", "", 16, 1, 1, "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906"},
		{"password", "NaCl", 1024, 8, 16, "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"},
		{"pleaseletmein", "SodiumChloride", 16384, 8, 1, "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887"},
	}
	for _, c := range cases {
		want, _ := hex.DecodeString(c.want)
		got, err := scryptKey([]byte(c.password), []byte(c.salt), c.n, c.r, c.p, len(want))
		if err != nil {
			t.Fatalf("N=%d r=%d p=%d: %v", c.n, c.r, c.p, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("N=%d r=%d p=%d: got %x, RFC 7914 says %x", c.n, c.r, c.p, got, want)
		}
	}
}

func TestScryptKeyMatchesXCrypto(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range 40 {
		n := 2 << rng.IntN(11) // 2 .. 4096
		r := 1 + rng.IntN(9)
		p := 1 + rng.IntN(3)
		password := make([]byte, rng.IntN(40))
		salt := make([]byte, rng.IntN(40))
		for j := range password {
			password[j] = byte(rng.Uint32())
		}
		for j := range salt {
			salt[j] = byte(rng.Uint32())
		}
		keyLen := 1 + rng.IntN(80)
		checkScryptAgainstXCrypto(t, password, salt, n, r, p, keyLen)
		if t.Failed() {
			t.Fatalf("case %d", i)
		}
	}
	// The default cost (KDFParams' N 2^15, r 8): the huge-page mapping of
	// 32 MiB, the path every repository opened in production takes.
	checkScryptAgainstXCrypto(t, []byte("correct horse"), bytes.Repeat([]byte{0x5a}, 32), DefaultKDF.N, DefaultKDF.R, DefaultKDF.P, 32)
}

func checkScryptAgainstXCrypto(t *testing.T, password, salt []byte, n, r, p, keyLen int) {
	t.Helper()
	want, err := scrypt.Key(password, salt, n, r, p, keyLen)
	if err != nil {
		t.Fatalf("x/crypto N=%d r=%d p=%d: %v", n, r, p, err)
	}
	got, err := scryptKey(password, salt, n, r, p, keyLen)
	if err != nil {
		t.Fatalf("N=%d r=%d p=%d: %v", n, r, p, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("N=%d r=%d p=%d len %d: got %x, x/crypto %x", n, r, p, keyLen, got, want)
	}
}

func TestScryptKeyRejectsBadParameters(t *testing.T) {
	for _, c := range []struct{ n, r, p int }{{0, 8, 1}, {1, 8, 1}, {3, 8, 1}, {1024, 0, 1}, {1024, 8, 0}} {
		if _, err := scryptKey([]byte("pw"), []byte("salt"), c.n, c.r, c.p, 32); err == nil {
			t.Errorf("N=%d r=%d p=%d: no error", c.n, c.r, c.p)
		}
	}
}

func FuzzScryptKeyMatchesXCrypto(f *testing.F) {
	f.Add([]byte("password"), []byte("NaCl"), uint8(3), uint8(2), uint8(1))
	f.Add([]byte{}, []byte{}, uint8(0), uint8(0), uint8(0))
	f.Fuzz(func(t *testing.T, password, salt []byte, logN, r, p uint8) {
		n := 2 << (logN % 10)
		checkScryptAgainstXCrypto(t, password, salt, n, 1+int(r%8), 1+int(p%3), 32)
	})
}
