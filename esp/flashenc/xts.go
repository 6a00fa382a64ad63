package flashenc

import (
	"crypto/aes"
	"encoding/binary"
	"fmt"

	"golang.org/x/crypto/xts"
)

// unitSize is the XTS data unit of the S3/C3 flash controller: 128 bytes
// at a 0x80-aligned flash address (§5.1).
const unitSize = 128

// xtsCipher is XTS-AES as the S3/C3 apply it: each 128-byte unit is
// byte-reversed, encrypted with standard IEEE 1619 XTS whose tweak is the
// unit's byte address as a little-endian 128-bit number, and reversed
// again. The key file is used as is (dependencies.md, AES-XTS row).
type xtsCipher struct {
	c *xts.Cipher
}

func newXTS(key []byte) (*xtsCipher, error) {
	// xts.NewCipher splits the key in halves: data key, then tweak key,
	// exactly the split of the key file (§5.1).
	c, err := xts.NewCipher(aes.NewCipher, key)
	if err != nil {
		// aes errors name only the length, never the key.
		return nil, fmt.Errorf("flashenc: XTS key setup: %w", err)
	}
	return &xtsCipher{c: c}, nil
}

func (x *xtsCipher) Encrypt(dst, src []byte, addr uint32) error {
	return x.crypt(dst, src, addr, false)
}
func (x *xtsCipher) Decrypt(dst, src []byte, addr uint32) error { return x.crypt(dst, src, addr, true) }

func (x *xtsCipher) crypt(dst, src []byte, addr uint32, decrypt bool) error {
	if err := checkRange(dst, src, addr); err != nil {
		return err
	}
	// Buffer for a unit only partly covered by src (a start not aligned to
	// 0x80, or a short last unit). Allocated at most once per call; whole
	// units are processed in dst without any copy.
	var part *[unitSize]byte
	for len(src) > 0 {
		u := addr &^ (unitSize - 1)
		off := int(addr - u)
		n := min(unitSize-off, len(src))
		var p *[unitSize]byte
		if n == unitSize {
			p = (*[unitSize]byte)(dst[:unitSize])
			reverseInto(p, (*[unitSize]byte)(src[:unitSize]))
		} else {
			// espsecure pads with zeros to the unit bounds. XTS without
			// ciphertext stealing treats each 16-byte block on its own, so
			// the padding does not change the real bytes.
			if part == nil {
				part = new([unitSize]byte)
			}
			p = part
			*p = [unitSize]byte{}
			copy(p[off:], src[:n])
			reverseInto(p, p)
		}
		if decrypt {
			x.c.Decrypt(p[:], p[:], uint64(u))
		} else {
			x.c.Encrypt(p[:], p[:], uint64(u))
		}
		reverseInto(p, p)
		if n != unitSize {
			copy(dst[:n], p[off:off+n])
		}
		src, dst = src[n:], dst[n:]
		addr += uint32(n)
	}
	return nil
}

// reverseInto sets dst to src with its 128 bytes in reverse order; dst and
// src may be the same array. It moves 64-bit words, loading all of src
// before storing, so the in-place case needs no second buffer.
func reverseInto(dst, src *[unitSize]byte) {
	var w [unitSize / 8]uint64
	for i := range w {
		w[i] = binary.LittleEndian.Uint64(src[8*i:])
	}
	for i, v := range w {
		// Little-endian load + big-endian store reverses the 8 bytes; the
		// word goes to the mirrored position.
		binary.BigEndian.PutUint64(dst[unitSize-8-8*i:], v)
	}
}
