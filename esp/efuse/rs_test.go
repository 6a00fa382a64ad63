package efuse

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

// gfMulRef multiplies in GF(2^8) mod 0x11D bit by bit, without tables.
func gfMulRef(a, b byte) byte {
	var p byte
	for b != 0 {
		if b&1 != 0 {
			p ^= a
		}
		hi := a & 0x80
		a <<= 1
		if hi != 0 {
			a ^= 0x1D
		}
		b >>= 1
	}
	return p
}

// rsReference is reedsolo's systematic encoding written as plain polynomial
// long division with nsym check symbols (fcr 0, α = 2): the baseline the
// table-driven RSCheck is checked and benchmarked against.
func rsReference(msg []byte, nsym int) []byte {
	g := []byte{1}
	alpha := byte(1)
	for range nsym {
		next := make([]byte, len(g)+1)
		for j, c := range g {
			next[j] ^= c
			next[j+1] ^= gfMulRef(c, alpha)
		}
		g = next
		alpha = gfMulRef(alpha, 2)
	}
	rem := make([]byte, len(msg)+nsym)
	copy(rem, msg)
	for i := range msg {
		c := rem[i]
		if c == 0 {
			continue
		}
		for j := 1; j < len(g); j++ {
			rem[i+j] ^= gfMulRef(g[j], c)
		}
	}
	return rem[len(msg):]
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The reference encoder against reedsolo's published examples.
func TestRSReferenceVectors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		msg  []byte
		nsym int
		want string
	}{
		{[]byte("hello world"), 12, "3f4179b2bcdc0171b9e3e23d"},
		{[]byte("hello world"), 10, "ed2554c4fdfd89f3a8aa"},
		{[]byte{1, 2, 3, 4}, 10, "2c9d1c2b3df868fa984d"},
	}
	for _, tc := range cases {
		if got := rsReference(tc.msg, tc.nsym); !bytes.Equal(got, unhex(t, tc.want)) {
			t.Errorf("%q nsym %d: %x, want %s", tc.msg, tc.nsym, got, tc.want)
		}
	}
}

// §2.2 worked examples (espefuse v4.8.1 on a virtual S3) and reedsolo's
// 12-symbol example, zero-padded to a block (leading zeros do not change the
// remainder).
func TestRSCheck(t *testing.T) {
	t.Parallel()
	seq := func(from, step int) [32]byte {
		var b [32]byte
		for i := range b {
			b[i] = byte(from + step*i)
		}
		return b
	}
	var ff, zero, hello [32]byte
	for i := range ff {
		ff[i] = 0xFF
	}
	copy(hello[21:], "hello world")
	cases := []struct {
		name  string
		data  [32]byte
		words [8]uint32 // PGM_DATA0…7 as espefuse wrote them (zero: not given)
		check string
	}{
		{"00..1F burn_block_data", seq(0, 1),
			[8]uint32{0x03020100, 0x07060504, 0x0B0A0908, 0x0F0E0D0C, 0x13121110, 0x17161514, 0x1B1A1918, 0x1F1E1D1C},
			"a04c470d3ffcb203dae9f413"},
		{"1F..00 reversed XTS key", seq(0x1F, -1),
			[8]uint32{0x1C1D1E1F, 0x18191A1B, 0x14151617, 0x10111213, 0x0C0D0E0F, 0x08090A0B, 0x04050607, 0x00010203},
			"067c7cae6d1cd6797510e1f2"},
		{"3F..20 second key half", seq(0x3F, -1), [8]uint32{0x3C3D3E3F, 7: 0x20212223}, "809fb1a507fea90f8f24c639"},
		{"all FF", ff, [8]uint32{}, "13a3629259740425737 5e0aa"},
		{"all 00", zero, [8]uint32{}, "000000000000000000000000"},
		{"reedsolo hello world", hello, [8]uint32{}, "3f4179b2bcdc0171b9e3e23d"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := unhex(t, string(bytes.ReplaceAll([]byte(tc.check), []byte(" "), nil)))
			got := RSCheck(tc.data)
			if !bytes.Equal(got[:], want) {
				t.Errorf("RSCheck = %x, want %x", got, want)
			}
			w := bytesToWords(tc.data)
			if tc.words != ([8]uint32{}) {
				if tc.words[0] != w[0] || tc.words[7] != w[7] {
					t.Errorf("PGM_DATA = %08x, espefuse wrote %08x", w, tc.words)
				}
			}
			cw := CheckWords(w)
			for k := range cw {
				v := uint32(want[4*k]) | uint32(want[4*k+1])<<8 | uint32(want[4*k+2])<<16 | uint32(want[4*k+3])<<24
				if cw[k] != v {
					t.Errorf("CHECK_VALUE%d = %08x, want %08x", k, cw[k], v)
				}
			}
		})
	}
	// The register form of the first two examples, as the doc lists it.
	if got := CheckWords(bytesToWords(seq(0, 1))); got != [3]uint32{0x0D474CA0, 0x03B2FC3F, 0x13F4E9DA} {
		t.Errorf("00..1F CHECK_VALUE = %08x", got)
	}
	if got := CheckWords(bytesToWords(seq(0x1F, -1))); got != [3]uint32{0xAE7C7C06, 0x79D61C6D, 0xF2E11075} {
		t.Errorf("1F..00 CHECK_VALUE = %08x", got)
	}
	if got := CheckWords(bytesToWords(seq(0x3F, -1))); got != [3]uint32{0xA5B19F80, 0x0FA9FE07, 0x39C6248F} {
		t.Errorf("3F..20 CHECK_VALUE = %08x", got)
	}
}

// The generated tables equal a fresh computation, and the generator
// polynomial is the one §2.2 lists.
func TestRSTables(t *testing.T) {
	t.Parallel()
	x := byte(1)
	for i := range 255 {
		if gfExp[i] != x || gfExp[i+255] != x || gfLog[x] != byte(i) {
			t.Fatalf("table entry %d wrong", i)
		}
		x = gfMulRef(x, 2)
	}
	want := [13]byte{0x01, 0x44, 0x77, 0x43, 0x76, 0xDC, 0x1F, 0x07, 0x54, 0x5C, 0x7F, 0xD5, 0x61}
	if rsGenerator != want {
		t.Errorf("generator %x, want %x", rsGenerator, want)
	}
	for i := range rsGenLog {
		if gfExp[rsGenLog[i]] != rsGenerator[i+1] {
			t.Errorf("rsGenLog[%d] wrong", i)
		}
	}
}

func TestRSCheckMatchesReference(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var d [32]byte
		for i := range d {
			d[i] = byte(r.Uint32())
		}
		got := RSCheck(d)
		if want := rsReference(d[:], 12); !bytes.Equal(got[:], want) {
			t.Fatalf("%x: %x, want %x", d, got, want)
		}
	}
}

// BenchmarkRSCheck reports ns per 32-byte block for the table-driven encoder
// and, as the baseline in the same run, the bitwise long division.
func BenchmarkRSCheck(b *testing.B) {
	var d [32]byte
	for i := range d {
		d[i] = byte(7*i + 3)
	}
	var sink byte
	for _, bc := range []struct {
		name string
		fn   func()
	}{
		{"table", func() { c := RSCheck(d); sink ^= c[0] }},
		{"baseline-bitwise", func() { c := rsReference(d[:], 12); sink ^= c[0] }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(32)
			for b.Loop() {
				bc.fn()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/block")
		})
	}
	_ = sink
}
