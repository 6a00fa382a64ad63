package secureboot

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
)

// checkKey refuses anything the ROM could not verify: only RSA-3072 with a
// public exponent that fits the block's u32 field.
func checkKey(pub *rsa.PublicKey) error {
	if pub == nil || pub.N == nil {
		return fmt.Errorf("%w: no key", ErrKeyType)
	}
	if n := pub.N.BitLen(); n != KeyBits {
		return fmt.Errorf("%w (got RSA-%d)", ErrKeyType, n)
	}
	if pub.N.Bit(0) == 0 {
		return fmt.Errorf("%w: even modulus", ErrKeyType)
	}
	if pub.E < 3 || int64(pub.E) > 1<<31-1 || pub.E%2 == 0 {
		return fmt.Errorf("%w: public exponent %d is not an odd value in [3, 2^31)", ErrKeyType, pub.E)
	}
	return nil
}

// appendLE appends x as a size-byte little-endian number, the order the
// ROM's RSA peripheral reads (§4.2 "the [bignums are] byte-reversed").
func appendLE(dst []byte, x *big.Int, size int) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, size)...)
	x.FillBytes(dst[start:])
	reverse(dst[start:])
	return dst
}

func reverse(b []byte) {
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
}

// montgomery returns R² mod n with R = 2^3072 (espsecure's "rinv", §4.2)
// and M′ = −n⁻¹ mod 2^32, the two constants the ROM's Montgomery
// multiplier needs besides n and e.
func montgomery(n *big.Int) (r2 *big.Int, mPrime uint32) {
	r2 = new(big.Int).Lsh(big.NewInt(1), 2*KeyBits)
	r2.Mod(r2, n)
	// n is odd, so n0 has an inverse mod 2^32; Newton's iteration doubles
	// the number of correct low bits each step (3 → 6 → 12 → 24 → 48).
	words := n.Bits()
	n0 := uint32(words[0])
	inv := n0 // correct to 3 bits for any odd n0
	for range 4 {
		inv *= 2 - n0*inv
	}
	return r2, -inv
}

// keyMaterial encodes bytes 36…811 of a signature block for pub:
// n (384 LE) ‖ e (u32 LE) ‖ R² mod n (384 LE) ‖ M′ (u32 LE), §4.3.
func keyMaterial(pub *rsa.PublicKey) ([]byte, error) {
	if err := checkKey(pub); err != nil {
		return nil, err
	}
	r2, mPrime := montgomery(pub.N)
	b := make([]byte, 0, keyMaterialLen)
	b = appendLE(b, pub.N, modLen)
	b = binary.LittleEndian.AppendUint32(b, uint32(pub.E))
	b = appendLE(b, r2, modLen)
	b = binary.LittleEndian.AppendUint32(b, mPrime)
	return b, nil
}

// Digest returns the public-key digest burned into a SECURE_BOOT_DIGESTn
// eFuse key block (ESP32: BLOCK2), byte 0 first, as §4.3 defines it and
// `espsecure digest_sbv2_public_key` writes it. It is stored in natural
// order in the block (§2.5).
func Digest(pub *rsa.PublicKey) ([32]byte, error) {
	km, err := keyMaterial(pub)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(km), nil
}

// GenerateKey makes a new RSA-3072 signing key, for demos and tests.
//
// Since Go 1.26 crypto/rsa always uses its own secure random source and
// ignores rand (unless GODEBUG=cryptocustomrand=1); rand is passed through
// for that case only. For a deterministic key in a test, call
// testing/cryptotest.SetGlobalRandom in a non-parallel test.
func GenerateKey(rand io.Reader) (*rsa.PrivateKey, error) {
	k, err := rsa.GenerateKey(rand, KeyBits)
	if err != nil {
		return nil, fmt.Errorf("secureboot: generate RSA-%d key: %w", KeyBits, err)
	}
	return k, nil
}

// The PEM block types a key file may carry.
const (
	pemPKCS1Private = "RSA PRIVATE KEY"
	pemPKCS8Private = "PRIVATE KEY"
	pemPKCS1Public  = "RSA PUBLIC KEY"
	pemPKIXPublic   = "PUBLIC KEY"
)

// firstKeyBlock returns the first PEM block that holds a key, skipping
// others (for example EC PARAMETERS in front of an EC key).
func firstKeyBlock(b []byte) (*pem.Block, error) {
	rest := b
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, fmt.Errorf("secureboot: no PEM key block found (want %q, %q, %q or %q)",
				pemPKCS1Private, pemPKCS8Private, pemPKIXPublic, pemPKCS1Public)
		}
		switch blk.Type {
		case pemPKCS1Private, pemPKCS8Private, pemPKCS1Public, pemPKIXPublic,
			"EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
			if _, encrypted := blk.Headers["Proc-Type"]; encrypted || blk.Type == "ENCRYPTED PRIVATE KEY" {
				return nil, fmt.Errorf("secureboot: PEM %q is encrypted; decrypt it first", blk.Type)
			}
			return blk, nil
		}
	}
}

// describeKey names a key type for an error, never its bytes.
func describeKey(k any) string {
	switch k := k.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *rsa.PrivateKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *ecdsa.PrivateKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey, ed25519.PrivateKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", k)
}

// ParsePrivateKeyPEM parses an RSA-3072 private key from PEM: PKCS#1
// ("RSA PRIVATE KEY", what espsecure generate_signing_key writes) or
// PKCS#8 ("PRIVATE KEY"). Any other type or size is an error wrapping
// ErrKeyType. Errors never contain key bytes.
func ParsePrivateKeyPEM(b []byte) (*rsa.PrivateKey, error) {
	blk, err := firstKeyBlock(b)
	if err != nil {
		return nil, err
	}
	var key any
	switch blk.Type {
	case pemPKCS1Private:
		key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case pemPKCS8Private:
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		return nil, fmt.Errorf("%w (got an EC private key)", ErrKeyType)
	default:
		return nil, fmt.Errorf("secureboot: PEM %q is a public key, a private key is needed to sign", blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("secureboot: PEM %q: %w", blk.Type, err)
	}
	priv, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w (got %s)", ErrKeyType, describeKey(key))
	}
	if err := checkKey(&priv.PublicKey); err != nil {
		return nil, err
	}
	return priv, nil
}

// ParsePublicKeyPEM parses an RSA-3072 public key from PEM. Like espsecure
// it accepts a private key too and returns its public half, so one key file
// serves digest, sign and verify. Accepted: PKIX ("PUBLIC KEY"), PKCS#1
// ("RSA PUBLIC KEY", "RSA PRIVATE KEY") and PKCS#8 ("PRIVATE KEY").
func ParsePublicKeyPEM(b []byte) (*rsa.PublicKey, error) {
	blk, err := firstKeyBlock(b)
	if err != nil {
		return nil, err
	}
	var key any
	switch blk.Type {
	case pemPKCS1Private, pemPKCS8Private, "EC PRIVATE KEY":
		priv, err := ParsePrivateKeyPEM(pem.EncodeToMemory(blk))
		if err != nil {
			return nil, err
		}
		return &priv.PublicKey, nil
	case pemPKIXPublic:
		key, err = x509.ParsePKIXPublicKey(blk.Bytes)
	case pemPKCS1Public:
		key, err = x509.ParsePKCS1PublicKey(blk.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("secureboot: PEM %q: %w", blk.Type, err)
	}
	pub, ok := key.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w (got %s)", ErrKeyType, describeKey(key))
	}
	if err := checkKey(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// MarshalPrivateKeyPEM encodes k as PKCS#1 PEM ("RSA PRIVATE KEY"), the
// form espsecure generate_signing_key writes.
func MarshalPrivateKeyPEM(k *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemPKCS1Private, Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

// MarshalPublicKeyPEM encodes k as PKIX PEM ("PUBLIC KEY"), the form
// espsecure extract_public_key writes.
func MarshalPublicKeyPEM(k *rsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil, fmt.Errorf("secureboot: encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPKIXPublic, Bytes: der}), nil
}
