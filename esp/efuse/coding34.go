package efuse

import (
	"errors"
	"fmt"
	"math/bits"
)

// ErrCoding reports write data whose check bytes do not match (an RS block
// whose CHECK_VALUE words are not RSCheck of its data, or a broken ESP32 3/4
// group). A controller refuses to program it.
var ErrCoding = errors.New("check bytes do not match the data")

// Encode34 applies the classic ESP32 3/4 coding (§2.4): the 24 data bytes in
// 4 groups of 6; each group is emitted as its 6 bytes, their XOR, and
// Σ i·popcount(d_i) for i = 1…6. The 32 bytes are returned as the block's 8
// write-register words, little-endian.
func Encode34(data [24]byte) [8]uint32 {
	var out [32]byte
	for g := range 4 {
		d := data[6*g : 6*g+6]
		o := out[8*g : 8*g+8]
		copy(o, d)
		var x byte
		sum := 0
		for i, b := range d {
			x ^= b
			sum += (i + 1) * bits.OnesCount8(b)
		}
		o[6], o[7] = x, byte(sum) // sum ≤ 6·8·21/6 = 168, one byte
	}
	return bytesToWords(out)
}

// Decode34 checks 3/4-coded write words and returns the 24 data bytes.
func Decode34(words [8]uint32) ([24]byte, error) {
	enc := wordsToBytes(words)
	var data [24]byte
	for g := range 4 {
		copy(data[6*g:], enc[8*g:8*g+6])
	}
	if Encode34(data) != words {
		for g := range 4 {
			var one [24]byte
			copy(one[6*g:], data[6*g:6*g+6])
			e := wordsToBytes(Encode34(one))
			if e[8*g+6] != enc[8*g+6] || e[8*g+7] != enc[8*g+7] {
				return data, fmt.Errorf("efuse: 3/4 group %d (bytes %d-%d): %w", g, 8*g, 8*g+7, ErrCoding)
			}
		}
	}
	return data, nil
}
