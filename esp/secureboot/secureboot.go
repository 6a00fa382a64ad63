// Package secureboot implements Espressif Secure Boot v2 with RSA-3072 PSS
// as the ROM of the ESP32-S3, ESP32-C3 and ESP32 v3 checks it: the public-key
// digest burned into eFuse, the 1216-byte signature block and the 4096-byte
// signature sector appended to an image, signing (with any crypto.Signer, so
// an HSM can sign) and verification, both against public keys (what espsecure
// verify_signature does) and against eFuse digests with revocation (what the
// ROM and bootloader do).
//
// It follows esp-security-facts.md §4 (block layout §4.2, key digest §4.3,
// validity and verification rules §4.4) and §2.5 for the byte order of the
// digest in eFuse (natural order). The package is pure: it reads and returns
// byte slices and never touches files.
package secureboot

import (
	"errors"
	"fmt"
	"strings"
)

// Sizes and markers of the signature sector (§4.1, §4.2).
const (
	// SectorSize is the flash sector that holds the signature blocks. The
	// signed content is padded with 0xFF to a multiple of it.
	SectorSize = 4096
	// BlockSize is the size of one signature block.
	BlockSize = 1216
	// MaxBlocks is the number of signature blocks a sector can hold.
	MaxBlocks = 3
	// Magic is byte 0 of every signature block.
	Magic = 0xE7
	// VersionRSA is byte 1 of an RSA-3072 PSS block (0x03 would be ECDSA).
	VersionRSA = 0x02
	// KeyBits is the only RSA key size Secure Boot v2 accepts.
	KeyBits = 3072
	// SaltLength is the PSS salt length (bytes) the ROM expects.
	SaltLength = 32
)

// Offsets inside a signature block (§4.2).
const (
	offMagic       = 0
	offVersion     = 1
	offReserved    = 2
	offImageDigest = 4
	offN           = 36
	offE           = 420
	offR2          = 424
	offMPrime      = 808
	offSignature   = 812
	offCRC         = 1196
	offTail        = 1200

	modLen = KeyBits / 8 // 384
	// keyMaterialLen is bytes 36…811: n ‖ e ‖ R² ‖ M′, what the eFuse digest covers.
	keyMaterialLen = offSignature - offN // 776
)

// Sentinel errors callers branch on. Verification errors wrap them (see
// BlockError and NotVerifiedError), so use errors.Is.
var (
	// ErrNoSignature: the image carries no valid signature block (no magic,
	// bad CRC, or not even a sector-aligned length).
	ErrNoSignature = errors.New("secureboot: no valid signature block")
	// ErrBadSignature: a block's key is trusted, but its image digest does not
	// match the content or its RSA-PSS signature does not verify.
	ErrBadSignature = errors.New("secureboot: signature does not verify")
	// ErrRevoked: a block's key digest is burned, but in a revoked slot.
	ErrRevoked = errors.New("secureboot: key digest is revoked")
	// ErrUnknownKey: a block's key digest matches no trusted key or digest.
	ErrUnknownKey = errors.New("secureboot: key is not trusted")
	// ErrSectorFull: appending would need more than MaxBlocks blocks.
	ErrSectorFull = errors.New("secureboot: signature sector is full")
	// ErrKeyType: a key is not an RSA-3072 key.
	ErrKeyType = errors.New("secureboot: key is not RSA-3072")
)

// FormatError reports bytes that do not have the layout of §4.2. Offset is
// counted from the start of the slice given to the function that failed
// (a block, a sector or a whole signed image).
type FormatError struct {
	Offset int
	Want   string
	Got    string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("secureboot: at offset %d (0x%x): want %s, got %s", e.Offset, e.Offset, e.Want, e.Got)
}

// noSignatureError wraps ErrNoSignature and the *FormatError that says
// where the expected block was not found, with a single package prefix.
type noSignatureError struct{ format error }

func noSignature(format error) error { return &noSignatureError{format: format} }

func (e *noSignatureError) Error() string {
	return ErrNoSignature.Error() + ": " + strings.TrimPrefix(e.format.Error(), "secureboot: ")
}

func (e *noSignatureError) Unwrap() []error { return []error{ErrNoSignature, e.format} }

// BlockError says why one signature block did not verify. Err wraps one of
// ErrNoSignature (the slot holds no valid block; it then also wraps a
// *FormatError), ErrUnknownKey, ErrRevoked or ErrBadSignature.
type BlockError struct {
	Block     int      // slot 0…2 in the signature sector
	KeyDigest [32]byte // digest of the block's key; zero when the slot holds no valid block
	Err       error
}

func (e *BlockError) Error() string {
	// The wrapped sentinels carry the package prefix; inside this message it
	// would only repeat.
	msg := strings.ReplaceAll(strings.TrimPrefix(e.Err.Error(), "secureboot: "), ": secureboot: ", ": ")
	if e.KeyDigest == ([32]byte{}) {
		return fmt.Sprintf("secureboot: block %d: %s", e.Block, msg)
	}
	return fmt.Sprintf("secureboot: block %d (key digest %x…): %s", e.Block, e.KeyDigest[:4], msg)
}

func (e *BlockError) Unwrap() error { return e.Err }

// NotVerifiedError is returned when no block of a signed image verifies. It
// lists what happened in every slot that held a valid block, and unwraps to
// each of them, so errors.Is(err, ErrRevoked) is true when any block failed
// because its key was revoked.
type NotVerifiedError struct {
	Blocks []*BlockError
}

func (e *NotVerifiedError) Error() string {
	s := "secureboot: no signature block verifies"
	for i, b := range e.Blocks {
		if i == 0 {
			s += ": "
		} else {
			s += "; "
		}
		s += strings.TrimPrefix(b.Error(), "secureboot: ")
	}
	return s
}

func (e *NotVerifiedError) Unwrap() []error {
	errs := make([]error, len(e.Blocks))
	for i, b := range e.Blocks {
		errs[i] = b
	}
	return errs
}
