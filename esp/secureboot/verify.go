package secureboot

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Result reports how a signed image was verified. Verify and VerifyDigests
// return it whenever they got as far as reading the signature sector, also
// when the image did not verify, so the caller can see every slot.
type Result struct {
	// ImageDigest is the SHA-256 of the signed content (all bytes before
	// the signature sector).
	ImageDigest [32]byte
	// Block is the slot (0…2) of the block that verified; -1 when none did.
	Block int
	// Key is the index of the key (Verify) or eFuse digest (VerifyDigests)
	// that verified it; -1 when none did.
	Key int
	// KeyDigest is the digest of the verifying block's key.
	KeyDigest [32]byte
	// Blocks has one entry per slot, 0…2.
	Blocks []BlockResult
}

// Verified reports whether some block verified.
func (r *Result) Verified() bool { return r != nil && r.Block >= 0 }

// BlockResult is what happened to one slot of the signature sector.
type BlockResult struct {
	Slot int
	// Present: the slot holds a valid RSA signature block.
	Present bool
	// KeyDigest is the digest of the block's key (zero if not Present).
	KeyDigest [32]byte
	// Key is the index of the trusted key or eFuse digest the block's key
	// matched, -1 if none (for a revoked digest: the revoked index).
	Key int
	// ROMChecked: the ROM would have examined this slot. It stops at the
	// first block that verifies, so slots after it are reported for
	// information only (an aggressive-revocation model must ignore them).
	ROMChecked bool
	// Err is nil for the block that verified, else a *BlockError saying why
	// (wrapping ErrNoSignature, ErrUnknownKey, ErrRevoked or ErrBadSignature).
	Err error
}

// trustedDigest is one entry the verifier trusts: a key digest and whether
// its eFuse slot is revoked.
type trustedDigest struct {
	digest  [32]byte
	revoked bool
}

// Verify checks a signed image (content followed by its 4096-byte signature
// sector) against public keys, as `espsecure verify_signature --version 2`
// does with one key at a time: the image verifies when some valid block's key
// is one of keys, its image digest matches the content and its RSA-PSS
// signature verifies. On failure the error is a *NotVerifiedError (or wraps
// ErrNoSignature when no slot holds a valid block) and Result says, per
// block, why.
func Verify(signed []byte, keys ...*rsa.PublicKey) (*Result, error) {
	if len(keys) == 0 {
		return nil, errors.New("secureboot: verify: no public key given")
	}
	trust := make([]trustedDigest, len(keys))
	for i, k := range keys {
		d, err := Digest(k)
		if err != nil {
			return nil, fmt.Errorf("secureboot: verify: key %d: %w", i, err)
		}
		trust[i] = trustedDigest{digest: d}
	}
	return verify(signed, trust)
}

// VerifyDigests checks a signed image the way the ROM and the bootloader do
// against the eFuse key digests (§4.4): digests[i] is SECURE_BOOT_DIGESTi
// (an all-zero entry is an unused slot and trusts nothing) and revoked[i] is
// SECURE_BOOT_KEY_REVOKEi (missing entries mean not revoked). The slots are
// tried in order; a block verifies when its key digest equals an unrevoked
// digest, its image digest matches and its RSA-PSS signature verifies. A
// block whose only matching digest is revoked fails with ErrRevoked.
func VerifyDigests(signed []byte, digests [][32]byte, revoked []bool) (*Result, error) {
	trust := make([]trustedDigest, len(digests))
	for i, d := range digests {
		trust[i] = trustedDigest{digest: d, revoked: i < len(revoked) && revoked[i]}
	}
	return verify(signed, trust)
}

// match finds d among the trusted digests: the first unrevoked match wins;
// failing that, a revoked match is reported as such.
func match(trust []trustedDigest, d [32]byte) (idx int, err error) {
	revokedAt := -1
	for i, t := range trust {
		if t.digest != d || t.digest == ([32]byte{}) {
			continue
		}
		if !t.revoked {
			return i, nil
		}
		if revokedAt < 0 {
			revokedAt = i
		}
	}
	if revokedAt >= 0 {
		return revokedAt, fmt.Errorf("%w (digest slot %d)", ErrRevoked, revokedAt)
	}
	return -1, ErrUnknownKey
}

func verify(signed []byte, trust []trustedDigest) (*Result, error) {
	content, sector, err := Split(signed)
	if err != nil {
		return nil, err
	}
	res := &Result{ImageDigest: sha256.Sum256(content), Block: -1, Key: -1}
	base := len(content)
	var failed []*BlockError
	var firstFormat error
	for slot := range MaxBlocks {
		off := slot * BlockSize
		br := BlockResult{Slot: slot, Key: -1, ROMChecked: res.Block < 0}
		fail := func(err error) {
			be := &BlockError{Block: slot, KeyDigest: br.KeyDigest, Err: err}
			br.Err = be
			if br.Present && br.ROMChecked {
				failed = append(failed, be)
			}
		}
		blk, err := parseBlock(sector[off:off+BlockSize], base+off)
		if err != nil {
			if firstFormat == nil {
				firstFormat = err
			}
			fail(noSignature(err))
			res.Blocks = append(res.Blocks, br)
			continue
		}
		br.Present = true
		br.KeyDigest, err = blk.KeyDigest()
		if err != nil { // parseBlock already checked the key; keep the guard
			fail(err)
			res.Blocks = append(res.Blocks, br)
			continue
		}
		br.Key, err = match(trust, br.KeyDigest)
		switch {
		case err != nil:
			fail(err)
		case blk.ImageDigest != res.ImageDigest:
			fail(fmt.Errorf("block signs image digest %x…, the content's is %x…: %w",
				blk.ImageDigest[:4], res.ImageDigest[:4], ErrBadSignature))
		default:
			if err := rsa.VerifyPSS(blk.Key, crypto.SHA256, res.ImageDigest[:], blk.Signature, pssOptions()); err != nil {
				fail(fmt.Errorf("RSA-PSS check failed: %w", ErrBadSignature))
			} else if res.Block < 0 {
				res.Block, res.Key, res.KeyDigest = slot, br.Key, br.KeyDigest
			}
		}
		res.Blocks = append(res.Blocks, br)
	}
	if res.Verified() {
		return res, nil
	}
	if len(failed) == 0 {
		return res, noSignature(firstFormat)
	}
	return res, &NotVerifiedError{Blocks: failed}
}
