package flashenc

import (
	"crypto/aes"
	"crypto/cipher"
)

// granuleSize is the span of flash that shares one tweaked key on the
// classic ESP32 (§5.3).
const granuleSize = 32

// tweakPattern returns the classic ESP32 tweak table P (§5.3): key bit n
// (n = 0 is the most significant bit of the key, bit 7 of file byte 0) is
// flipped when flash-address bit P[n] is set. The table is four runs; each
// is three copies of 23…5 followed by a shorter tail, and run r is the
// key-bit range enabled by FLASH_CRYPT_CONFIG bit r.
func tweakPattern() (p [256]uint8, run [256]uint8) {
	i := 0
	for r, tail := range []int{14, 12, 10, 8} {
		for range 3 {
			for bit := 23; bit >= 5; bit-- {
				p[i], run[i] = uint8(bit), uint8(r)
				i++
			}
		}
		for bit := tail; bit >= 5; bit-- {
			p[i], run[i] = uint8(bit), uint8(r)
			i++
		}
	}
	return p, run
}

// classicCipher is the ESP32 (v3 and earlier) flash encryption: for each
// 16-byte block at address a, ciphertext = reverse(AES-256-Decrypt with
// K_t(a)(reverse(plaintext))), where K_t(a) is the key with the tweak of
// the granule a &^ 31 applied. Flash "encryption" uses the AES decrypt
// primitive and flash decryption the encrypt primitive (§5.3).
type classicCipher struct {
	key [32]byte
	// flips[k] holds the key bits flash-address bit k flips, already
	// restricted to the ranges FLASH_CRYPT_CONFIG enables.
	flips [24][32]byte
}

func newClassic(key []byte, config uint8) *classicCipher {
	c := &classicCipher{}
	if len(key) == 24 {
		// A 3/4-coded BLOCK1 holds 24 bytes; the hardware extends them.
		copy(c.key[:], key)
		copy(c.key[24:], key[8:16])
	} else {
		copy(c.key[:], key)
	}
	p, run := tweakPattern()
	for n := range 256 {
		if config&(1<<run[n]) != 0 {
			c.flips[p[n]][n/8] |= 0x80 >> (n % 8)
		}
	}
	return c
}

// granuleKey returns the tweaked key for the granule holding addr.
func (c *classicCipher) granuleKey(addr uint32) [32]byte {
	k := c.key
	for bit := 5; bit < 24; bit++ {
		if addr&(1<<bit) == 0 {
			continue
		}
		for i := range k {
			k[i] ^= c.flips[bit][i]
		}
	}
	return k
}

func (c *classicCipher) Encrypt(dst, src []byte, addr uint32) error {
	return c.crypt(dst, src, addr, false)
}
func (c *classicCipher) Decrypt(dst, src []byte, addr uint32) error {
	return c.crypt(dst, src, addr, true)
}

func (c *classicCipher) crypt(dst, src []byte, addr uint32, decrypt bool) error {
	if err := checkRange(dst, src, addr); err != nil {
		return err
	}
	var blk cipher.Block
	buf := make([]byte, aes.BlockSize)
	for i := 0; i < len(src); i += aes.BlockSize {
		a := addr + uint32(i)
		if blk == nil || a%granuleSize == 0 {
			k := c.granuleKey(a)
			var err error
			if blk, err = aes.NewCipher(k[:]); err != nil {
				return err // cannot happen: the key is 32 bytes
			}
		}
		for j := range aes.BlockSize {
			buf[j] = src[i+aes.BlockSize-1-j]
		}
		if decrypt {
			blk.Encrypt(buf, buf)
		} else {
			blk.Decrypt(buf, buf)
		}
		for j := range aes.BlockSize {
			dst[i+j] = buf[aes.BlockSize-1-j]
		}
	}
	return nil
}
