package efuse

//go:generate go run gen_rstables.go

// RSCheck returns the 12 Reed-Solomon check bytes espefuse computes for a
// 32-byte block (esp-security-facts.md §2.2): RS(44,32) over GF(2^8) with
// polynomial 0x11D, α = 2, first consecutive root α^0; data[0] is the highest
// power; the check bytes are the remainder of data(x)·x^12 mod g(x), highest
// power first. data[4w+j] is byte j of PGM_DATAw.
func RSCheck(data [32]byte) [12]byte {
	// A systematic encoder as a shift register: each data byte enters at the
	// top and the feedback is multiplied by g's coefficients (in log form, so
	// one table lookup per coefficient).
	var p [12]byte
	for _, d := range data {
		fb := d ^ p[0]
		copy(p[:], p[1:])
		p[11] = 0
		if fb == 0 {
			continue
		}
		l := int(gfLog[fb])
		for i := range p {
			p[i] ^= gfExp[l+int(rsGenLog[i])]
		}
	}
	return p
}

// CheckWords returns the PGM_CHECK_VALUE0…2 register values for the 8
// PGM_DATA words of an RS-coded block (BLOCK1 passes its 6 words and two
// zero words): CHECK_VALUEk = p[4k] | p[4k+1]<<8 | p[4k+2]<<16 | p[4k+3]<<24.
func CheckWords(words [8]uint32) [3]uint32 {
	p := RSCheck(wordsToBytes(words))
	var c [3]uint32
	for k := range c {
		c[k] = uint32(p[4*k]) | uint32(p[4*k+1])<<8 | uint32(p[4*k+2])<<16 | uint32(p[4*k+3])<<24
	}
	return c
}

// wordsToBytes lays 8 words out little-endian, block byte order.
func wordsToBytes(words [8]uint32) [32]byte {
	var b [32]byte
	for w, v := range words {
		b[4*w], b[4*w+1], b[4*w+2], b[4*w+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	return b
}

// bytesToWords is the inverse of wordsToBytes.
func bytesToWords(b [32]byte) [8]uint32 {
	var w [8]uint32
	for i := range w {
		w[i] = uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24
	}
	return w
}
