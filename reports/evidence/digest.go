package evidence

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Digest is a SHA-256 value, written as 64 lower-case hex digits.
type Digest [sha256.Size]byte

// SHA256 returns the digest of b.
func SHA256(b []byte) Digest { return sha256.Sum256(b) }

func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// IsZero reports whether d is all zero (not set).
func (d Digest) IsZero() bool { return d == Digest{} }

// MarshalText writes the hex form.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads 64 hex digits.
func (d *Digest) UnmarshalText(b []byte) error { return decodeHex32((*[32]byte)(d), b) }

func decodeHex32(dst *[32]byte, b []byte) error {
	if len(b) != 2*len(dst) {
		return fmt.Errorf("evidence: digest has %d hex digits, want 64", len(b))
	}
	var tmp [32]byte
	if _, err := hex.Decode(tmp[:], b); err != nil {
		return fmt.Errorf("evidence: digest is not hex: %w", err)
	}
	*dst = tmp
	return nil
}

// KeyDigest is the SHA-256 of a key block. Its only constructors are
// DigestKey (which hashes) and JSON decoding (which reads a digest), so key
// bytes cannot be stored in one by mistake.
type KeyDigest struct{ sum [sha256.Size]byte }

// DigestKey returns the digest of the key block bytes b.
func DigestKey(b []byte) KeyDigest { return KeyDigest{sha256.Sum256(b)} }

func (k KeyDigest) String() string { return hex.EncodeToString(k.sum[:]) }

// Sum returns the digest bytes.
func (k KeyDigest) Sum() [sha256.Size]byte { return k.sum }

// MarshalText writes the hex form.
func (k KeyDigest) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads 64 hex digits.
func (k *KeyDigest) UnmarshalText(b []byte) error { return decodeHex32(&k.sum, b) }

// Duration is a time.Duration written as its String form ("1m2.5s"), which
// time.ParseDuration reads back exactly.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes the String form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a time.ParseDuration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("evidence: duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}
