package image

import (
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
)

// rng is xoshiro256** seeded from a SHA-256 of its inputs: fast, fully
// specified here, so a seed gives the same bytes on every Go release.
type rng struct{ s [4]uint64 }

func newRNG(parts ...[]byte) *rng {
	h := sha256.New()
	for _, p := range parts {
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	sum := h.Sum(nil)
	r := &rng{}
	for i := range r.s {
		r.s[i] = binary.LittleEndian.Uint64(sum[8*i:])
	}
	if r.s == [4]uint64{} {
		r.s[0] = 1 // the one state xoshiro cannot leave; SHA-256 will not give it
	}
	return r
}

func (r *rng) u64() uint64 {
	s := &r.s
	out := bits.RotateLeft64(s[1]*5, 7) * 9
	t := s[1] << 17
	s[2] ^= s[0]
	s[3] ^= s[1]
	s[1] ^= s[2]
	s[0] ^= s[3]
	s[2] ^= t
	s[3] = bits.RotateLeft64(s[3], 45)
	return out
}

// intn returns a value in [0, n); the modulo bias is irrelevant here.
func (r *rng) intn(n int) int { return int(r.u64() % uint64(n)) }

func (r *rng) fill(b []byte) {
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, r.u64())
		b = b[8:]
	}
	if len(b) > 0 {
		var t [8]byte
		binary.LittleEndian.PutUint64(t[:], r.u64())
		copy(b, t[:])
	}
}

// fillCode writes bytes that compress like compiled code (zlib about 2:1):
// instructions drawn from a small per-image set of opcode templates with a
// few random operand bits each, runs repeated from earlier in the segment
// (prologues, inlined helpers), and literal pools of addresses in the given
// memory window.
func fillCode(r *rng, dst []byte, addrHi uint32) {
	const ntmpl = 96
	var tmpl, mask [ntmpl]uint32
	for i := range tmpl {
		tmpl[i] = uint32(r.u64())
		// 5 to 9 operand bits somewhere in the low 24 bits of the word.
		m := uint32(0)
		for range 5 + r.intn(5) {
			m |= 1 << r.intn(24)
		}
		mask[i] = m
	}
	pos := 0
	for pos < len(dst) {
		switch x := r.intn(100); {
		case x < 28 && pos >= 256:
			// A run seen before: the same helper inlined again.
			n := 8 + r.intn(48)
			src := pos - 4*(1+r.intn(min(pos, 8192)/4))
			for i := 0; i < n && pos < len(dst); i++ {
				dst[pos] = dst[src+i] // src+i stays behind pos
				pos++
			}
		case x < 36:
			// Literal pool: 32-bit addresses in the image's own window.
			for range 1 + r.intn(4) {
				v := addrHi | uint32(r.u64())&0x000FFFFC
				pos += put32(dst[pos:], v)
			}
		default:
			// A basic block of 3-byte and 4-byte instructions; popular
			// opcodes are far more common, as in real code.
			for range 2 + r.intn(8) {
				i := r.intn(12)
				if r.intn(3) == 0 {
					i = r.intn(ntmpl)
				}
				w := tmpl[i]&^mask[i] | uint32(r.u64())&mask[i]
				if i%3 == 0 {
					pos += put32(dst[pos:], w)
				} else {
					pos += put24(dst[pos:], w)
				}
			}
		}
	}
}

// fillRodata writes bytes that look like read-only data: format strings
// from a small vocabulary, lookup tables and alignment zeros.
func fillRodata(r *rng, dst []byte) {
	words := [...]string{"E (%d) %s: ", "W (%d) %s: ", "I (%d) %s: ", "failed", "error",
		"invalid", "argument", "timeout", "partition", "flash", "nvs", "wifi", "init", "0x%08x",
		"%s:%d (%s)- ", "assert failed: ", "out of memory", "task", "queue", "heap", "esp_",
		"config", "ota", "app", "\n", ", ", "not found", "ready", "buffer", "length"}
	pos := 0
	for pos < len(dst) {
		switch x := r.intn(10); {
		case x < 6:
			for range 2 + r.intn(5) {
				pos += copy(dst[pos:], words[r.intn(len(words))])
			}
			if pos < len(dst) {
				dst[pos] = 0
				pos++
			}
			for pos%4 != 0 && pos < len(dst) {
				dst[pos] = 0
				pos++
			}
		case x < 9:
			// A table of small integers.
			for range 4 + r.intn(16) {
				pos += put32(dst[pos:], uint32(r.intn(4096)))
			}
		default:
			// Constants with no structure (keys, CRC tables, fonts).
			n := min(16+r.intn(48), len(dst)-pos)
			r.fill(dst[pos : pos+n])
			pos += n
		}
	}
}

// fillData writes initialised RAM data: mostly zeros and small values.
func fillData(r *rng, dst []byte) {
	for pos := 0; pos < len(dst); {
		if r.intn(3) == 0 {
			pos += put32(dst[pos:], uint32(r.intn(1<<16)))
		} else {
			pos += put32(dst[pos:], 0)
		}
	}
}

func put32(dst []byte, v uint32) int {
	var t [4]byte
	binary.LittleEndian.PutUint32(t[:], v)
	return copy(dst, t[:])
}

func put24(dst []byte, v uint32) int {
	t := [3]byte{byte(v), byte(v >> 8), byte(v >> 16)}
	return copy(dst, t[:])
}
