package secureboot

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/big"
)

// Block is one RSA signature block (§4.2). Only what cannot be derived is
// kept: R² and M′ follow from the modulus, so parsing checks them and
// encoding recomputes them, and a parsed block re-encodes byte for byte
// (bytes 0…1199; the 16-byte tail is always written as zeros).
type Block struct {
	// Slot is where the block sits in its sector (0…2). Parsing sets it;
	// encoding a sector places blocks in the order given and ignores it.
	Slot int
	// ImageDigest is the SHA-256 of the signed content (everything before
	// the signature sector).
	ImageDigest [32]byte
	// Key is the signer's public key (n and e of the block).
	Key *rsa.PublicKey
	// Signature is the RSASSA-PSS signature in the usual big-endian order,
	// as rsa.VerifyPSS takes it; the block stores it byte-reversed.
	Signature []byte
}

// KeyDigest is the digest of the block's key, the value the ROM compares
// with the eFuse digests (§4.3).
func (b *Block) KeyDigest() ([32]byte, error) { return Digest(b.Key) }

// AppendBinary appends the 1216-byte encoding of b to dst.
func (b *Block) AppendBinary(dst []byte) ([]byte, error) {
	km, err := keyMaterial(b.Key)
	if err != nil {
		return dst, err
	}
	if len(b.Signature) != modLen {
		return dst, fmt.Errorf("secureboot: signature is %d bytes, want %d", len(b.Signature), modLen)
	}
	start := len(dst)
	dst = append(dst, Magic, VersionRSA, 0, 0)
	dst = append(dst, b.ImageDigest[:]...)
	dst = append(dst, km...)
	sig := len(dst)
	dst = append(dst, b.Signature...)
	reverse(dst[sig:])
	dst = binary.LittleEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst[start:]))
	dst = append(dst, make([]byte, BlockSize-offTail)...)
	return dst, nil
}

// MarshalBinary returns the 1216-byte encoding of b.
func (b *Block) MarshalBinary() ([]byte, error) {
	return b.AppendBinary(make([]byte, 0, BlockSize))
}

// validBlock is the ROM's validity test (§4.4): magic and CRC, plus the
// version byte espsecure insists on. Anything failing it is "no block".
func validBlock(b []byte, base int) error {
	if len(b) < BlockSize {
		return &FormatError{Offset: base + len(b), Want: fmt.Sprintf("%d-byte signature block", BlockSize),
			Got: fmt.Sprintf("%d bytes", len(b))}
	}
	if b[offMagic] != Magic {
		return &FormatError{Offset: base + offMagic, Want: "magic 0xe7", Got: fmt.Sprintf("0x%02x", b[offMagic])}
	}
	if got, want := binary.LittleEndian.Uint32(b[offCRC:]), crc32.ChecksumIEEE(b[:offCRC]); got != want {
		return &FormatError{Offset: base + offCRC, Want: fmt.Sprintf("CRC-32 0x%08x of bytes 0…1195", want),
			Got: fmt.Sprintf("0x%08x", got)}
	}
	return nil
}

// parseBlock parses one block whose first byte sits at offset base of the
// caller's slice.
func parseBlock(b []byte, base int) (*Block, error) {
	if err := validBlock(b, base); err != nil {
		return nil, err
	}
	b = b[:BlockSize]
	if b[offVersion] != VersionRSA {
		got := fmt.Sprintf("0x%02x", b[offVersion])
		if b[offVersion] == 0x03 {
			got += " (ECDSA, not used on ESP32-S3/C3/ESP32)"
		}
		return nil, &FormatError{Offset: base + offVersion, Want: "version 0x02 (RSA-3072)", Got: got}
	}
	// espsecure always writes zero here; what the ROM does with other values
	// is unknown (§7 item 8), so refuse rather than guess.
	if r := b[offReserved : offReserved+2]; r[0] != 0 || r[1] != 0 {
		return nil, &FormatError{Offset: base + offReserved, Want: "reserved bytes 00 00", Got: fmt.Sprintf("% x", r)}
	}

	le := func(off int) *big.Int {
		be := bytes.Clone(b[off : off+modLen])
		reverse(be)
		return new(big.Int).SetBytes(be)
	}
	n := le(offN)
	if n.BitLen() != KeyBits || n.Bit(0) == 0 {
		return nil, &FormatError{Offset: base + offN, Want: "odd 3072-bit RSA modulus", Got: fmt.Sprintf("%d-bit modulus", n.BitLen())}
	}
	e := binary.LittleEndian.Uint32(b[offE:])
	key := &rsa.PublicKey{N: n, E: int(e)}
	if err := checkKey(key); err != nil {
		return nil, &FormatError{Offset: base + offE, Want: "odd public exponent in [3, 2^31)", Got: fmt.Sprint(e)}
	}
	// The ROM multiplies with these precomputed constants rather than n
	// alone: a block whose R² or M′ does not belong to n would fail on the
	// chip even though a plain RSA check with (n, e) passes.
	r2, mPrime := montgomery(n)
	if le(offR2).Cmp(r2) != 0 {
		return nil, &FormatError{Offset: base + offR2, Want: "R² = 2^6144 mod n", Got: "a different value"}
	}
	if got := binary.LittleEndian.Uint32(b[offMPrime:]); got != mPrime {
		return nil, &FormatError{Offset: base + offMPrime, Want: fmt.Sprintf("M′ = -n⁻¹ mod 2^32 = 0x%08x", mPrime),
			Got: fmt.Sprintf("0x%08x", got)}
	}
	blk := &Block{Key: key, Signature: bytes.Clone(b[offSignature:offCRC])}
	copy(blk.ImageDigest[:], b[offImageDigest:])
	reverse(blk.Signature)
	return blk, nil
}

// ParseBlock parses one 1216-byte RSA signature block. Errors are
// *FormatError with the offset of the first offending byte.
func ParseBlock(b []byte) (*Block, error) { return parseBlock(b, 0) }

// ParseSector parses a 4096-byte signature sector and returns every slot
// that holds a valid RSA block, in slot order, with Block.Slot set. Like the
// bootloader it skips an invalid slot and looks at the next (espsecure's
// signature_info stops at the first invalid slot instead; for sectors
// written by a signer the two agree). If no slot holds a valid block the
// error wraps ErrNoSignature and the *FormatError of slot 0.
func ParseSector(b []byte) ([]Block, error) {
	if len(b) != SectorSize {
		return nil, noSignature(&FormatError{Offset: min(len(b), SectorSize),
			Want: fmt.Sprintf("%d-byte signature sector", SectorSize), Got: fmt.Sprintf("%d bytes", len(b))})
	}
	var blocks []Block
	var first error
	for slot := range MaxBlocks {
		off := slot * BlockSize
		blk, err := parseBlock(b[off:off+BlockSize], off)
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		blk.Slot = slot
		blocks = append(blocks, *blk)
	}
	if len(blocks) == 0 {
		return nil, noSignature(first)
	}
	return blocks, nil
}

// AppendSector appends a 4096-byte signature sector holding blocks (at most
// MaxBlocks, placed from slot 0 in the order given) to dst; the unused
// rest of the sector is 0xFF, as espsecure leaves it.
func AppendSector(dst []byte, blocks ...Block) ([]byte, error) {
	if len(blocks) > MaxBlocks {
		return dst, fmt.Errorf("%w: %d blocks, at most %d fit", ErrSectorFull, len(blocks), MaxBlocks)
	}
	start := len(dst)
	for i := range blocks {
		var err error
		if dst, err = blocks[i].AppendBinary(dst); err != nil {
			return dst[:start], fmt.Errorf("secureboot: encode block %d: %w", i, err)
		}
	}
	return append(dst, bytes.Repeat([]byte{0xFF}, SectorSize-(len(dst)-start))...), nil
}

// SectorOffset is where the signature sector starts after contentLen bytes
// of image: the next 4 KiB boundary, as the bootloader computes it
// (ALIGN_UP(image length, 4096)).
func SectorOffset(contentLen int) int {
	return (contentLen + SectorSize - 1) / SectorSize * SectorSize
}

// SignedLength is the length of the image once padded and signed.
func SignedLength(contentLen int) int { return SectorOffset(contentLen) + SectorSize }

// Pad returns img padded with 0xFF to the next 4 KiB boundary, the bytes a
// signature covers. It returns img itself when it is already aligned.
func Pad(img []byte) []byte {
	n := SectorOffset(len(img))
	if n == len(img) {
		return img
	}
	out := make([]byte, n)
	copy(out, img)
	for i := len(img); i < n; i++ {
		out[i] = 0xFF
	}
	return out
}

// ImageDigest is the SHA-256 a signature of img covers: img padded with
// 0xFF to the next 4 KiB boundary (img is the content, without any
// signature sector).
func ImageDigest(img []byte) [32]byte {
	h := sha256.New()
	h.Write(img)
	if pad := SectorOffset(len(img)) - len(img); pad > 0 {
		h.Write(bytes.Repeat([]byte{0xFF}, pad))
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// Split cuts a signed image into the signed content and its signature
// sector (the last 4096 bytes). The length must be a non-zero multiple of
// 4096, else the error wraps ErrNoSignature and a *FormatError.
func Split(signed []byte) (content, sector []byte, err error) {
	if len(signed) < SectorSize || len(signed)%SectorSize != 0 {
		return nil, nil, noSignature(&FormatError{Offset: len(signed),
			Want: "a signed image: length a non-zero multiple of 4096", Got: fmt.Sprintf("%d bytes", len(signed))})
	}
	cut := len(signed) - SectorSize
	return signed[:cut], signed[cut:], nil
}

// shiftOffset moves the offset of a *FormatError by delta, so that it
// counts from the start of a larger slice the caller passed.
func shiftOffset(err error, delta int) error {
	if fe, ok := err.(*FormatError); ok {
		moved := *fe
		moved.Offset += delta
		return &moved
	}
	return err
}
