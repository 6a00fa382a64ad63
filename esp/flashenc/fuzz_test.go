package flashenc

import (
	"bytes"
	"errors"
	"testing"

	"fuseline/esp/chip"
)

// FuzzCipher: for any scheme, key, FLASH_CRYPT_CONFIG, address and data,
// New and Encrypt either fail with a typed error or Decrypt gives the data
// back; encrypting in two pieces at their own addresses equals one call.
func FuzzCipher(f *testing.F) {
	f.Add(uint8(chip.XTSAES128), load(f, "key256.bin"), uint8(0), uint32(0x10000), load(f, "plain-odd.bin"))
	f.Add(uint8(chip.XTSAES256), load(f, "key512.bin"), uint8(0), uint32(0x1f0080), load(f, "plain-odd.bin")[:256])
	f.Add(uint8(chip.AES256Classic), seq(32), uint8(0xF), uint32(0x1000), seq(64))
	f.Add(uint8(chip.AES256Classic), seq(24), uint8(0x5), uint32(0x1010), seq(48))
	f.Add(uint8(chip.XTSAES128), seq(32), uint8(0), uint32(0x10008), seq(17))

	f.Fuzz(func(t *testing.T, scheme uint8, key []byte, cfg uint8, addr uint32, data []byte) {
		c, err := New(chip.Encryption(scheme), key, cfg)
		if err != nil {
			if !errors.Is(err, ErrKeyLength) && !errors.Is(err, ErrScheme) {
				t.Fatalf("New: untyped error %v", err)
			}
			return
		}
		ct := make([]byte, len(data))
		if err := c.Encrypt(ct, data, addr); err != nil {
			aligned := addr%16 == 0 && len(data)%16 == 0
			if aligned && uint64(addr)+uint64(len(data)) <= 1<<32 {
				t.Fatalf("Encrypt refused aligned input: %v", err)
			}
			return
		}
		back := make([]byte, len(ct))
		if err := c.Decrypt(back, ct, addr); err != nil || !bytes.Equal(back, data) {
			t.Fatalf("round trip failed: %v", err)
		}
		if half := len(data) / 32 * 16; half > 0 {
			split := make([]byte, len(data))
			if err := c.Encrypt(split[:half], data[:half], addr); err != nil {
				t.Fatal(err)
			}
			if err := c.Encrypt(split[half:], data[half:], addr+uint32(half)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(split, ct) {
				t.Fatal("two calls differ from one")
			}
		}
	})
}
