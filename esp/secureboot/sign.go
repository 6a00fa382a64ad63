package secureboot

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
)

// pssOptions returns the PSS parameters of §4.2: SHA-256, MGF1-SHA-256,
// salt 32 (a fresh value each time, so nobody can change a shared one).
func pssOptions() *rsa.PSSOptions {
	return &rsa.PSSOptions{SaltLength: SaltLength, Hash: crypto.SHA256}
}

// existingBlocks returns the valid blocks of an already signed image, taken
// from slot 0 on up to the first invalid slot, as espsecure
// --append_signatures collects them. signed is false when img does not end
// in a signature sector whose slot 0 is valid (magic and CRC): img is then
// plain content.
func existingBlocks(img []byte) (content []byte, blocks []Block, signed bool, err error) {
	content, sector, err := Split(img)
	if err != nil {
		return nil, nil, false, nil
	}
	for slot := range MaxBlocks {
		off := slot * BlockSize
		if validBlock(sector[off:off+BlockSize], off) != nil {
			break
		}
		blk, err := parseBlock(sector[off:off+BlockSize], off)
		if err != nil {
			// Valid to the ROM but not a block we can re-encode (an ECDSA
			// block, say): refuse rather than silently drop it.
			return nil, nil, true, fmt.Errorf("existing signature block %d: %w", slot, shiftOffset(err, len(content)))
		}
		blk.Slot = slot
		blocks = append(blocks, *blk)
	}
	return content, blocks, len(blocks) > 0, nil
}

// Sign signs img with each signer (1 to 3, each an RSA-3072 key; a
// crypto.Signer so the key may live in an HSM) and returns the signed image:
// the content, then a 4096-byte signature sector with one block per signer.
//
// If img is plain content it is first padded with 0xFF to a 4 KiB boundary
// (§4.1). If img is already signed (its length is a multiple of 4096 and its
// last sector holds a valid block in slot 0), the new blocks are appended
// after the blocks already there, as `espsecure sign_data
// --append_signatures` does: the content stays everything before the last
// sector. Beyond espsecure, Sign refuses an existing block whose image
// digest does not match the content (it could never verify) and a key that
// already signed, and returns ErrSectorFull when the blocks would not fit.
//
// Signatures use crypto/rand and are randomised, so two runs differ in
// bytes 812…1199 of each new block only.
func Sign(img []byte, signers ...crypto.Signer) ([]byte, error) {
	if len(signers) == 0 {
		return nil, errors.New("secureboot: sign: no signing key given")
	}
	content, blocks, signed, err := existingBlocks(img)
	if err != nil {
		return nil, fmt.Errorf("secureboot: sign: %w", err)
	}
	if !signed {
		if len(img) == 0 {
			return nil, errors.New("secureboot: sign: empty image")
		}
		content = Pad(img)
		blocks = nil
	}
	digest := ImageDigest(content)
	seen := map[[32]byte]int{}
	for _, blk := range blocks {
		if blk.ImageDigest != digest {
			return nil, fmt.Errorf("secureboot: sign: existing block %d signs image digest %x…, the content's is %x…; strip the stale sector first: %w",
				blk.Slot, blk.ImageDigest[:4], digest[:4], ErrBadSignature)
		}
		kd, err := blk.KeyDigest()
		if err != nil {
			return nil, fmt.Errorf("secureboot: sign: existing block %d: %w", blk.Slot, err)
		}
		seen[kd] = blk.Slot
	}
	if total := len(blocks) + len(signers); total > MaxBlocks {
		return nil, fmt.Errorf("%w: %d block(s) present, %d more requested, at most %d fit", ErrSectorFull,
			len(blocks), len(signers), MaxBlocks)
	}
	// Check every key before the first signature: an HSM call is slow and
	// may need an operator, so fail early on a duplicate or a wrong key.
	pubs := make([]*rsa.PublicKey, len(signers))
	for i, s := range signers {
		pub, ok := s.Public().(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("secureboot: sign with key %d: %w (got %s)", i, ErrKeyType, describeKey(s.Public()))
		}
		kd, err := Digest(pub)
		if err != nil {
			return nil, fmt.Errorf("secureboot: sign with key %d: %w", i, err)
		}
		if slot, dup := seen[kd]; dup {
			return nil, fmt.Errorf("secureboot: sign with key %d: this key (digest %x…) already signs block %d", i, kd[:4], slot)
		}
		seen[kd] = len(blocks) + i
		pubs[i] = pub
	}
	for i, s := range signers {
		blk, err := signBlock(s, pubs[i], digest)
		if err != nil {
			return nil, fmt.Errorf("secureboot: sign with key %d: %w", i, err)
		}
		blocks = append(blocks, *blk)
	}
	out := make([]byte, 0, len(content)+SectorSize)
	out = append(out, content...)
	return AppendSector(out, blocks...)
}

// signBlock makes one block over digest with s (whose public key is pub),
// and checks the signature before trusting it (an HSM can return garbage).
func signBlock(s crypto.Signer, pub *rsa.PublicKey, digest [32]byte) (*Block, error) {
	opts := pssOptions()
	sig, err := s.Sign(rand.Reader, digest[:], opts)
	if err != nil {
		return nil, fmt.Errorf("RSA-PSS sign: %w", err)
	}
	if err := rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, opts); err != nil {
		return nil, fmt.Errorf("the signer returned a signature its own public key rejects: %w", err)
	}
	return &Block{ImageDigest: digest, Key: pub, Signature: sig}, nil
}
