// Package flashenc computes Espressif flash-encryption ciphertext on the
// host, byte for byte what the chip's flash controller produces and what
// `espsecure encrypt_flash_data` writes: XTS-AES-128/256 with the
// byte-reversed 128-byte data units of the ESP32-S3 and ESP32-C3
// (esp-security-facts.md §5.1), and the classic ESP32's AES-256 with a key
// tweaked per 32-byte granule by FLASH_CRYPT_CONFIG (§5.3). It also maps a
// key file to the eFuse key blocks burn_key writes (byte order of §2.5).
//
// The package is pure (no I/O). Key bytes never appear in its errors.
package flashenc

import (
	"errors"
	"fmt"
	"unsafe"

	"fuseline/esp/chip"
)

// Cipher encrypts and decrypts flash contents for one key. dst and src must
// have the same length (dst may be longer) and overlap entirely or not at
// all. addr is the flash address of src[0]; the ciphertext depends on it.
// Both the address and the length must be multiples of 16. A Cipher is
// safe for concurrent use.
type Cipher interface {
	Encrypt(dst, src []byte, addr uint32) error
	Decrypt(dst, src []byte, addr uint32) error
}

// Errors callers can branch on; returned errors wrap them with the values
// (never the key) that were wrong.
var (
	// ErrAlignment: the address or the length is not a multiple of 16.
	ErrAlignment = errors.New("flashenc: address and length must be multiples of 16")
	// ErrKeyLength: the key does not have the length the scheme needs.
	ErrKeyLength = errors.New("flashenc: wrong key length")
	// ErrScheme: the scheme or FLASH_CRYPT_CONFIG value is not one this package knows.
	ErrScheme = errors.New("flashenc: unsupported scheme")
)

// blockAlign is the alignment of every address and length: the AES block.
const blockAlign = 16

// New returns the Cipher for scheme and key.
//
//   - chip.XTSAES128: 32-byte key file (data key = bytes 0…15, tweak key =
//     bytes 16…31), S3 and C3.
//   - chip.XTSAES256: 64-byte key file (data key 0…31, tweak key 32…63), S3.
//   - chip.AES256Classic: 32-byte key file, or a 24-byte one for a 3/4-coded
//     BLOCK1 (extended to file ‖ file[8:16] as §5.3 says). cryptConfig is the
//     FLASH_CRYPT_CONFIG eFuse (0…15, production 0xF); 0 disables the
//     per-granule tweak, which the chip allows but which makes every 32-byte
//     granule use the same key.
//
// cryptConfig is ignored by the XTS schemes. The key is copied.
func New(scheme chip.Encryption, key []byte, cryptConfig uint8) (Cipher, error) {
	switch scheme {
	case chip.XTSAES128, chip.XTSAES256:
		if len(key) != scheme.KeyLen() {
			return nil, fmt.Errorf("%w: %v needs a %d-byte key, got %d bytes", ErrKeyLength, scheme, scheme.KeyLen(), len(key))
		}
		return newXTS(key)
	case chip.AES256Classic:
		if len(key) != 32 && len(key) != 24 {
			return nil, fmt.Errorf("%w: %v needs a 32-byte (or 24-byte, 3/4 coding) key, got %d bytes", ErrKeyLength, scheme, len(key))
		}
		if cryptConfig > 0xF {
			return nil, fmt.Errorf("%w: FLASH_CRYPT_CONFIG 0x%x does not fit its 4 bits", ErrScheme, cryptConfig)
		}
		return newClassic(key, cryptConfig), nil
	}
	return nil, fmt.Errorf("%w: %v", ErrScheme, scheme)
}

// checkRange validates the arguments every Encrypt/Decrypt shares.
func checkRange(dst, src []byte, addr uint32) error {
	if addr%blockAlign != 0 {
		return fmt.Errorf("%w: address 0x%x", ErrAlignment, addr)
	}
	if len(src)%blockAlign != 0 {
		return fmt.Errorf("%w: length %d", ErrAlignment, len(src))
	}
	if len(dst) < len(src) {
		return fmt.Errorf("flashenc: output buffer of %d bytes is shorter than the %d-byte input", len(dst), len(src))
	}
	if uint64(addr)+uint64(len(src)) > 1<<32 {
		return fmt.Errorf("flashenc: range 0x%x+%d runs past the 32-bit flash address space", addr, len(src))
	}
	if inexactOverlap(dst[:len(src)], src) {
		return errors.New("flashenc: input and output overlap partially (they must be the same slice or disjoint)")
	}
	return nil
}

// inexactOverlap reports whether x and y share memory at different offsets,
// which would make in-place processing read bytes it already wrote.
func inexactOverlap(x, y []byte) bool {
	if len(x) == 0 || len(y) == 0 || &x[0] == &y[0] {
		return false
	}
	xs, ys := uintptr(unsafe.Pointer(&x[0])), uintptr(unsafe.Pointer(&y[0]))
	return xs < ys+uintptr(len(y)) && ys < xs+uintptr(len(x))
}

// reversed returns a reversed copy of b.
func reversed(b []byte) []byte {
	r := make([]byte, len(b))
	for i, c := range b {
		r[len(b)-1-i] = c
	}
	return r
}

// KeyBlocks returns the eFuse key-block contents (block byte 0 first) that
// `espefuse burn_key` stores for a key file (§2.5, §5.1, §5.3): the file
// reversed for XTS-AES-128 (purpose XTS_AES_128_KEY) and for the classic
// ESP32 (BLOCK1); for XTS-AES-256 two blocks, each 32-byte half reversed on
// its own (XTS_AES_256_KEY_1 then _2). That KEY_1 is the data key and KEY_2
// the tweak key on silicon is inferred, not tested on hardware (§7 item 3).
func KeyBlocks(scheme chip.Encryption, key []byte) ([][32]byte, error) {
	switch scheme {
	case chip.XTSAES128, chip.XTSAES256, chip.AES256Classic:
	default:
		return nil, fmt.Errorf("%w: %v", ErrScheme, scheme)
	}
	if len(key) != scheme.KeyLen() {
		return nil, fmt.Errorf("%w: %v key blocks need a %d-byte key, got %d bytes", ErrKeyLength, scheme, scheme.KeyLen(), len(key))
	}
	blocks := make([][32]byte, len(key)/32)
	for i := range blocks {
		blocks[i] = [32]byte(reversed(key[32*i : 32*i+32]))
	}
	return blocks, nil
}

// KeyFromBlocks is the inverse of KeyBlocks: the key file for the given
// eFuse key-block contents (one block, or two for XTS-AES-256, KEY_1 first).
func KeyFromBlocks(scheme chip.Encryption, blocks ...[32]byte) ([]byte, error) {
	switch scheme {
	case chip.XTSAES128, chip.XTSAES256, chip.AES256Classic:
	default:
		return nil, fmt.Errorf("%w: %v", ErrScheme, scheme)
	}
	if want := scheme.KeyLen() / 32; len(blocks) != want {
		return nil, fmt.Errorf("%w: %v is held in %d key block(s), got %d", ErrKeyLength, scheme, want, len(blocks))
	}
	key := make([]byte, 0, 32*len(blocks))
	for _, b := range blocks {
		key = append(key, reversed(b[:])...)
	}
	return key, nil
}
