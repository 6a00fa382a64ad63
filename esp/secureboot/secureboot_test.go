package secureboot

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func load(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func privKey(t testing.TB, name string) *rsa.PrivateKey {
	t.Helper()
	k, err := ParsePrivateKeyPEM(load(t, name))
	if err != nil {
		t.Fatalf("ParsePrivateKeyPEM(%s): %v", name, err)
	}
	return k
}

func pubKey(t testing.TB, name string) *rsa.PublicKey {
	t.Helper()
	k, err := ParsePublicKeyPEM(load(t, name))
	if err != nil {
		t.Fatalf("ParsePublicKeyPEM(%s): %v", name, err)
	}
	return k
}

func digestFile(t testing.TB, name string) [32]byte {
	t.Helper()
	b := load(t, name)
	if len(b) != 32 {
		t.Fatalf("%s: %d bytes", name, len(b))
	}
	return [32]byte(b)
}

// fixCRC rewrites the CRC of the block at off after a deliberate change, so
// the test reaches the check behind the CRC.
func fixCRC(b []byte, off int) {
	binary.LittleEndian.PutUint32(b[off+offCRC:], crc32.ChecksumIEEE(b[off:off+offCRC]))
}

func TestDigestVectors(t *testing.T) {
	t.Parallel()
	tests := []struct{ pem, digest string }{
		{"key1.pem", "key1.digest.bin"},
		{"key1.pub.pem", "key1.digest.bin"},
		{"key2.pem", "key2.digest.bin"},
		{"key2.pub.pem", "key2.digest.bin"},
	}
	for _, tc := range tests {
		t.Run(tc.pem, func(t *testing.T) {
			t.Parallel()
			got, err := Digest(pubKey(t, tc.pem))
			if err != nil {
				t.Fatal(err)
			}
			if want := digestFile(t, tc.digest); got != want {
				t.Errorf("Digest = %x, espsecure says %x", got, want)
			}
		})
	}
}

// The vector sectors carry exactly the layout of §4.2, and our encoder
// reproduces every byte of them from the parsed fields.
func TestParseSectorVectors(t *testing.T) {
	t.Parallel()
	payload := load(t, "payload.bin")
	tests := []struct {
		file string
		keys []string
	}{
		{"signed-key1.bin", []string{"key1.digest.bin"}},
		{"signed-key1-key2.bin", []string{"key1.digest.bin", "key2.digest.bin"}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			signed := load(t, tc.file)
			if len(signed) != SignedLength(len(payload)) {
				t.Fatalf("len = %d, SignedLength(%d) = %d", len(signed), len(payload), SignedLength(len(payload)))
			}
			content, sector, err := Split(signed)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(content, Pad(payload)) {
				t.Fatal("content is not the payload padded with 0xFF")
			}
			blocks, err := ParseSector(sector)
			if err != nil {
				t.Fatal(err)
			}
			if len(blocks) != len(tc.keys) {
				t.Fatalf("%d blocks, want %d", len(blocks), len(tc.keys))
			}
			wantDigest := sha256.Sum256(content)
			if got := ImageDigest(payload); got != wantDigest {
				t.Errorf("ImageDigest(payload) = %x, sha256(padded) = %x", got, wantDigest)
			}
			for i, blk := range blocks {
				if blk.Slot != i {
					t.Errorf("block %d: Slot = %d", i, blk.Slot)
				}
				if blk.ImageDigest != wantDigest {
					t.Errorf("block %d: image digest %x, want %x", i, blk.ImageDigest, wantDigest)
				}
				kd, err := blk.KeyDigest()
				if err != nil {
					t.Fatal(err)
				}
				if want := digestFile(t, tc.keys[i]); kd != want {
					t.Errorf("block %d: key digest %x, want %x", i, kd, want)
				}
				// §4.3: the digest is SHA-256 over bytes 36…811 of the block.
				raw := sector[i*BlockSize : (i+1)*BlockSize]
				if h := sha256.Sum256(raw[36:812]); h != kd {
					t.Errorf("block %d: sha256(bytes 36..811) = %x, KeyDigest = %x", i, h, kd)
				}
				enc, err := blk.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(enc, raw) {
					t.Errorf("block %d: re-encoding differs from espsecure's bytes", i)
				}
			}
			// Unused sector space is 0xFF.
			for i := len(blocks) * BlockSize; i < SectorSize; i++ {
				if sector[i] != 0xFF {
					t.Fatalf("sector byte %d = %#x, want 0xff", i, sector[i])
				}
			}
			// And the whole sector re-encodes byte for byte.
			again, err := AppendSector(nil, blocks...)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, sector) {
				t.Error("AppendSector(ParseSector(sector)) differs from the sector")
			}
		})
	}
}

// TestSignatureInfo renders what the parser reports in the words of
// `espsecure signature_info_v2` and compares it with the tool's output.
func TestSignatureInfo(t *testing.T) {
	t.Parallel()
	want := strings.Split(strings.TrimSpace(string(load(t, "signed-key1-key2.info.txt"))), "\n")
	if !strings.HasPrefix(want[0], "espsecure.py v") {
		t.Fatalf("unexpected first line %q", want[0])
	}
	_, sector, err := Split(load(t, "signed-key1-key2.bin"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := ParseSector(sector)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{want[0]}
	for _, blk := range blocks {
		kd, err := blk.KeyDigest()
		if err != nil {
			t.Fatal(err)
		}
		hexes := make([]string, len(kd))
		for i, c := range kd {
			hexes[i] = fmt.Sprintf("%02x", c)
		}
		got = append(got, fmt.Sprintf("Signature block %d is valid (RSA).", blk.Slot),
			fmt.Sprintf("Public key digest for block %d: %s", blk.Slot, strings.Join(hexes, " ")))
	}
	got = append(got, fmt.Sprintf("Signature block %d absent/invalid. Skipping checking next blocks.", len(blocks)))
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("parser reports\n%s\nespsecure printed\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestBlockFormatErrors(t *testing.T) {
	t.Parallel()
	_, sector, err := Split(load(t, "signed-key1.bin"))
	if err != nil {
		t.Fatal(err)
	}
	good := sector[:BlockSize]
	tests := []struct {
		name   string
		mutate func(b []byte) []byte
		offset int
	}{
		{"magic", func(b []byte) []byte { b[0] = 0xFF; return b }, 0},
		{"crc", func(b []byte) []byte { b[100] ^= 1; return b }, offCRC},
		{"short", func(b []byte) []byte { return b[:1000] }, 1000},
		{"ecdsa version", func(b []byte) []byte { b[1] = 3; fixCRC(b, 0); return b }, offVersion},
		{"reserved", func(b []byte) []byte { b[3] = 1; fixCRC(b, 0); return b }, offReserved},
		{"small modulus", func(b []byte) []byte { b[offN+modLen-1] = 0; fixCRC(b, 0); return b }, offN},
		{"even exponent", func(b []byte) []byte { b[offE] = 2; b[offE+1], b[offE+2] = 0, 0; fixCRC(b, 0); return b }, offE},
		{"R²", func(b []byte) []byte { b[offR2+7] ^= 0x10; fixCRC(b, 0); return b }, offR2},
		{"M′", func(b []byte) []byte { b[offMPrime] ^= 1; fixCRC(b, 0); return b }, offMPrime},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := tc.mutate(bytes.Clone(good))
			_, err := ParseBlock(b)
			fe, ok := errors.AsType[*FormatError](err)
			if !ok {
				t.Fatalf("ParseBlock = %v, want *FormatError", err)
			}
			if fe.Offset != tc.offset {
				t.Errorf("offset %d, want %d (%v)", fe.Offset, tc.offset, err)
			}
			if !strings.HasPrefix(err.Error(), "secureboot: ") {
				t.Errorf("message %q lacks the package prefix", err)
			}
		})
	}
	// A sector whose every slot is bad says so, with slot 0's offset.
	bad := bytes.Clone(sector)
	bad[0] = 0
	_, err = ParseSector(bad)
	if !errors.Is(err, ErrNoSignature) {
		t.Fatalf("ParseSector = %v, want ErrNoSignature", err)
	}
	if fe, ok := errors.AsType[*FormatError](err); !ok || fe.Offset != 0 {
		t.Errorf("ParseSector error %v: want a *FormatError at offset 0", err)
	}
	if _, err := ParseSector(sector[:100]); !errors.Is(err, ErrNoSignature) {
		t.Errorf("short sector: %v", err)
	}
}

// tamper returns a copy of b with byte off flipped and, when fix >= 0, the
// CRC of the block at fix recomputed.
func tamper(b []byte, off, fix int) []byte {
	c := bytes.Clone(b)
	c[off] ^= 0x01
	if fix >= 0 {
		fixCRC(c, fix)
	}
	return c
}

func TestVerify(t *testing.T) {
	t.Parallel()
	one := load(t, "signed-key1.bin")
	two := load(t, "signed-key1-key2.bin")
	sec := len(one) - SectorSize
	k1, k2 := pubKey(t, "key1.pub.pem"), pubKey(t, "key2.pub.pem")
	tests := []struct {
		name      string
		signed    []byte
		keys      []*rsa.PublicKey
		wantBlock int
		wantKey   int
		wantErr   error
	}{
		{"one/key1", one, []*rsa.PublicKey{k1}, 0, 0, nil},
		{"two/key1", two, []*rsa.PublicKey{k1}, 0, 0, nil},
		{"two/key2", two, []*rsa.PublicKey{k2}, 1, 0, nil},
		{"two/key2,key1", two, []*rsa.PublicKey{k2, k1}, 0, 1, nil},
		{"one/wrong key", one, []*rsa.PublicKey{k2}, -1, -1, ErrUnknownKey},
		{"payload byte flipped", tamper(one, 1234, -1), []*rsa.PublicKey{k1}, -1, -1, ErrBadSignature},
		{"padding byte flipped", tamper(one, 20100, -1), []*rsa.PublicKey{k1}, -1, -1, ErrBadSignature},
		{"two: payload byte flipped", tamper(two, 0, -1), []*rsa.PublicKey{k1, k2}, -1, -1, ErrBadSignature},
		{"signature byte flipped, CRC fixed", tamper(one, sec+offSignature+100, sec), []*rsa.PublicKey{k1}, -1, -1, ErrBadSignature},
		{"block digest flipped, CRC fixed", tamper(one, sec+offImageDigest, sec), []*rsa.PublicKey{k1}, -1, -1, ErrBadSignature},
		{"signature byte flipped, CRC stale", tamper(one, sec+offSignature+100, -1), []*rsa.PublicKey{k1}, -1, -1, ErrNoSignature},
		{"first block broken, second verifies", tamper(two, sec+5, -1), []*rsa.PublicKey{k2}, 1, 0, nil},
		{"unsigned payload", load(t, "payload.bin"), []*rsa.PublicKey{k1}, -1, -1, ErrNoSignature},
		{"padded, no sector", Pad(load(t, "payload.bin")), []*rsa.PublicKey{k1}, -1, -1, ErrNoSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, err := Verify(tc.signed, tc.keys...)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
			} else if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify = %v, want %v", err, tc.wantErr)
			}
			if err != nil && res != nil && res.Verified() {
				t.Fatal("error together with a verified result")
			}
			if tc.wantErr == nil || res != nil {
				if got := res.Block; got != tc.wantBlock {
					t.Errorf("Block = %d, want %d", got, tc.wantBlock)
				}
				if got := res.Key; got != tc.wantKey {
					t.Errorf("Key = %d, want %d", got, tc.wantKey)
				}
			}
			if err != nil {
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is not one line: %q", err)
				}
				// The failure names the block (or the offset) it is about.
				if !strings.Contains(err.Error(), "block ") && !strings.Contains(err.Error(), "offset ") {
					t.Errorf("error %q names no block or offset", err)
				}
			}
		})
	}
}

func TestVerifyReportsEveryBlock(t *testing.T) {
	t.Parallel()
	two := load(t, "signed-key1-key2.bin")
	res, err := Verify(two, pubKey(t, "key2.pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Blocks) != MaxBlocks {
		t.Fatalf("%d block results", len(res.Blocks))
	}
	b0, b1, b2 := res.Blocks[0], res.Blocks[1], res.Blocks[2]
	if !b0.Present || !errors.Is(b0.Err, ErrUnknownKey) || b0.KeyDigest != digestFile(t, "key1.digest.bin") {
		t.Errorf("block 0 = %+v, want present, unknown key1", b0)
	}
	if be, ok := errors.AsType[*BlockError](b0.Err); !ok || be.Block != 0 {
		t.Errorf("block 0 error %v is not a *BlockError for block 0", b0.Err)
	}
	if !b1.Present || b1.Err != nil || b1.Key != 0 || res.KeyDigest != digestFile(t, "key2.digest.bin") {
		t.Errorf("block 1 = %+v, want verified by key 0", b1)
	}
	if b2.Present || !errors.Is(b2.Err, ErrNoSignature) || b2.ROMChecked {
		t.Errorf("block 2 = %+v, want absent and not examined by the ROM", b2)
	}
	if _, ok := errors.AsType[*FormatError](b2.Err); !ok {
		t.Errorf("block 2 error %v carries no offset", b2.Err)
	}
}

func TestVerifyDigests(t *testing.T) {
	t.Parallel()
	one := load(t, "signed-key1.bin")
	two := load(t, "signed-key1-key2.bin")
	d1, d2 := digestFile(t, "key1.digest.bin"), digestFile(t, "key2.digest.bin")
	var zero [32]byte
	tests := []struct {
		name      string
		signed    []byte
		digests   [][32]byte
		revoked   []bool
		wantBlock int
		wantKey   int
		wantErr   error
		// errors every failing, examined block must carry
		blockErrs map[int]error
	}{
		{"one, digest0", one, [][32]byte{d1}, nil, 0, 0, nil, nil},
		{"one, key in slot 2", one, [][32]byte{zero, zero, d1}, nil, 0, 2, nil, nil},
		{"two, both burned", two, [][32]byte{d1, d2}, nil, 0, 0, nil, nil},
		{"two, key1 revoked", two, [][32]byte{d1, d2}, []bool{true}, 1, 1, nil, map[int]error{0: ErrRevoked}},
		{"two, only key2 burned", two, [][32]byte{d2}, nil, 1, 0, nil, map[int]error{0: ErrUnknownKey}},
		{"one, key1 revoked", one, [][32]byte{d1, d2}, []bool{true, false, true}, -1, -1, ErrRevoked, map[int]error{0: ErrRevoked}},
		{"two, both revoked", two, [][32]byte{d1, d2}, []bool{true, true}, -1, -1, ErrRevoked,
			map[int]error{0: ErrRevoked, 1: ErrRevoked}},
		{"same digest revoked and not", one, [][32]byte{d1, d1}, []bool{true, false}, 0, 1, nil, nil},
		{"nothing burned", one, [][32]byte{zero, zero, zero}, nil, -1, -1, ErrUnknownKey, map[int]error{0: ErrUnknownKey}},
		{"no digests", one, nil, nil, -1, -1, ErrUnknownKey, nil},
		{"tampered", tamper(two, 77, -1), [][32]byte{d1, d2}, []bool{true}, -1, -1, ErrBadSignature,
			map[int]error{0: ErrRevoked, 1: ErrBadSignature}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, err := VerifyDigests(tc.signed, tc.digests, tc.revoked)
			if tc.wantErr == nil && err != nil {
				t.Fatalf("VerifyDigests: %v", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("VerifyDigests = %v, want %v", err, tc.wantErr)
			}
			if res.Block != tc.wantBlock || res.Key != tc.wantKey {
				t.Errorf("verified by block %d key %d, want block %d key %d", res.Block, res.Key, tc.wantBlock, tc.wantKey)
			}
			for slot, want := range tc.blockErrs {
				if got := res.Blocks[slot].Err; !errors.Is(got, want) {
					t.Errorf("block %d: %v, want %v", slot, got, want)
				}
			}
			if nv, ok := errors.AsType[*NotVerifiedError](err); ok {
				for _, be := range nv.Blocks {
					if res.Blocks[be.Block].Err != error(be) {
						t.Errorf("NotVerifiedError block %d differs from Result", be.Block)
					}
				}
			}
		})
	}
}

// A Go-signed image has exactly espsecure's layout: for the same key and
// payload it equals signed-key1.bin everywhere except bytes 812…1199 of the
// block (signature and CRC), and both verifiers accept it.
func TestSignMatchesEspsecure(t *testing.T) {
	t.Parallel()
	payload := load(t, "payload.bin")
	tests := []struct {
		name string
		keys []string
		want string
	}{
		{"key1", []string{"key1.pem"}, "signed-key1.bin"},
		{"key1+key2", []string{"key1.pem", "key2.pem"}, "signed-key1-key2.bin"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var signers []crypto.Signer
			for _, k := range tc.keys {
				signers = append(signers, privKey(t, k))
			}
			got, err := Sign(payload, signers...)
			if err != nil {
				t.Fatal(err)
			}
			want := load(t, tc.want)
			assertSameOutsideSignatures(t, got, want, len(tc.keys))
			for i := range tc.keys {
				res, err := Verify(got, &signers[i].(*rsa.PrivateKey).PublicKey)
				if err != nil || res.Block != i {
					t.Errorf("key %d: Verify = %v, block %d", i, err, res.Block)
				}
			}
		})
	}
}

// assertSameOutsideSignatures compares two signed images byte for byte,
// skipping bytes 812…1199 of each of n blocks.
func assertSameOutsideSignatures(t *testing.T, got, want []byte, n int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("len %d, want %d", len(got), len(want))
	}
	sec := len(want) - SectorSize
	skip := func(i int) bool {
		if i < sec {
			return false
		}
		off := (i - sec) % BlockSize
		return (i-sec)/BlockSize < n && off >= offSignature && off < offTail
	}
	for i := range got {
		if !skip(i) && got[i] != want[i] {
			t.Fatalf("byte %d (0x%x) = %#02x, espsecure wrote %#02x", i, i, got[i], want[i])
		}
	}
	// The randomised part must really differ (else the comparison is empty).
	if bytes.Equal(got[sec+offSignature:sec+offCRC], want[sec+offSignature:sec+offCRC]) {
		t.Error("signature bytes equal espsecure's: PSS salt not random?")
	}
}

func TestSignAppend(t *testing.T) {
	t.Parallel()
	one := load(t, "signed-key1.bin")
	two := load(t, "signed-key1-key2.bin")
	k1, k2 := privKey(t, "key1.pem"), privKey(t, "key2.pem")

	t.Run("append key2", func(t *testing.T) {
		t.Parallel()
		got, err := Sign(one, k2)
		if err != nil {
			t.Fatal(err)
		}
		sec := len(one) - SectorSize
		if !bytes.Equal(got[:sec+BlockSize], one[:sec+BlockSize]) {
			t.Error("content or block 0 changed while appending")
		}
		// espsecure's two-key image was signed separately, so both blocks'
		// signatures differ; everything else must be equal.
		assertSameOutsideSignatures(t, got, two, 2)
		res, err := Verify(got, &k2.PublicKey)
		if err != nil || res.Block != 1 {
			t.Errorf("Verify = %v, block %d", err, res.Block)
		}
	})
	tests := []struct {
		name    string
		img     []byte
		signers []crypto.Signer
		wantErr error
		wantMsg string
	}{
		{"sector full", two, []crypto.Signer{k1, k2}, ErrSectorFull, ""},
		{"same key twice", one, []crypto.Signer{k1}, nil, "already signs block 0"},
		{"duplicate signers", load(t, "payload.bin"), []crypto.Signer{k2, k2}, nil, "already signs block 0"},
		{"stale block", tamper(one, 10, -1), []crypto.Signer{k2}, ErrBadSignature, "strip the stale sector"},
		{"no signers", one, nil, nil, "no signing key"},
		{"empty image", nil, []crypto.Signer{k1}, nil, "empty image"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := Sign(tc.img, tc.signers...)
			if err == nil {
				t.Fatalf("Sign succeeded (%d bytes)", len(out))
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Sign = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Sign = %q, want it to say %q", err, tc.wantMsg)
			}
		})
	}
}

// badSigner returns a signature its own public key rejects, as a broken
// HSM might.
type badSigner struct{ *rsa.PrivateKey }

func (s badSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := s.PrivateKey.Sign(r, digest, opts)
	if err == nil {
		sig[7] ^= 0x40
	}
	return sig, err
}

// Sign refuses signers whose key is not RSA-3072 and signers whose
// signature does not verify.
func TestSignRefusesBadSigners(t *testing.T) {
	t.Parallel()
	payload := load(t, "payload.bin")
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		signer  crypto.Signer
		wantErr error
		wantMsg string
	}{
		{"ecdsa", ec, ErrKeyType, "ECDSA P-256"},
		{"broken hsm", badSigner{privKey(t, "key1.pem")}, nil, "rejects"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Sign(payload, tc.signer)
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Sign = %v, want %v mentioning %q", err, tc.wantErr, tc.wantMsg)
			}
		})
	}
}

// TestGenerateAndFullSector makes a third key (the slow part: one RSA-3072
// generation), fills all three slots and checks each key verifies its slot.
func TestGenerateAndFullSector(t *testing.T) {
	t.Parallel()
	k3, err := GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if k3.N.BitLen() != KeyBits {
		t.Fatalf("generated RSA-%d", k3.N.BitLen())
	}
	// PEM round trip of the generated key.
	back, err := ParsePrivateKeyPEM(MarshalPrivateKeyPEM(k3))
	if err != nil || !back.Equal(k3) {
		t.Fatalf("private PEM round trip: %v", err)
	}
	pubPEM, err := MarshalPublicKeyPEM(&k3.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKeyPEM(pubPEM)
	if err != nil || !pub.Equal(&k3.PublicKey) {
		t.Fatalf("public PEM round trip: %v", err)
	}

	keys := []*rsa.PrivateKey{privKey(t, "key1.pem"), privKey(t, "key2.pem"), k3}
	payload := load(t, "payload.bin")
	signed, err := Sign(payload, keys[0])
	if err != nil {
		t.Fatal(err)
	}
	if signed, err = Sign(signed, keys[1], keys[2]); err != nil {
		t.Fatal(err)
	}
	_, sector, _ := Split(signed)
	blocks, err := ParseSector(sector)
	if err != nil || len(blocks) != 3 {
		t.Fatalf("ParseSector: %d blocks, %v", len(blocks), err)
	}
	if !bytes.Equal(sector[3*BlockSize:], bytes.Repeat([]byte{0xFF}, SectorSize-3*BlockSize)) {
		t.Error("tail of a full sector is not 0xFF")
	}
	var digests [][32]byte
	for i, k := range keys {
		res, err := Verify(signed, &k.PublicKey)
		if err != nil || res.Block != i {
			t.Errorf("key %d: block %d, %v", i, res.Block, err)
		}
		d, _ := Digest(&k.PublicKey)
		digests = append(digests, d)
	}
	// Revoke the first two: the ROM falls through to block 2.
	res, err := VerifyDigests(signed, digests, []bool{true, true, false})
	if err != nil || res.Block != 2 || res.Key != 2 {
		t.Errorf("VerifyDigests with 0 and 1 revoked: block %d key %d, %v", res.Block, res.Key, err)
	}
	if _, err := Sign(signed, keys[0]); !errors.Is(err, ErrSectorFull) {
		t.Errorf("fourth signature: %v, want ErrSectorFull", err)
	}
}

func TestPEM(t *testing.T) {
	t.Parallel()
	key1 := privKey(t, "key1.pem")
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key1)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalECPrivateKey(ecKey)
	ecPKCS8, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	ecPub, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	// A 1024-bit key (fast to make) stands for "RSA, wrong size".
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallPub, _ := x509.MarshalPKIXPublicKey(&small.PublicKey)
	encrypted := []byte("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00000000000000000000000000000000\n\nAAAA\n-----END RSA PRIVATE KEY-----\n")
	withParams := append([]byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"), load(t, "key1.pem")...)

	tests := []struct {
		name       string
		in         []byte
		privErr    error // nil: parses
		privMsg    string
		pubErr     error
		pubMsg     string
		wantDigest string
	}{
		{"pkcs1 private", load(t, "key1.pem"), nil, "", nil, "", "key1.digest.bin"},
		{"pkcs8 private", enc("PRIVATE KEY", pkcs8), nil, "", nil, "", "key1.digest.bin"},
		{"pkix public", load(t, "key2.pub.pem"), nil, "public key", nil, "", "key2.digest.bin"},
		{"pkcs1 public", enc("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&key1.PublicKey)), nil, "public key", nil, "", "key1.digest.bin"},
		{"after EC PARAMETERS", withParams, nil, "", nil, "", "key1.digest.bin"},
		{"ec private", enc("EC PRIVATE KEY", ecDER), ErrKeyType, "EC", ErrKeyType, "EC", ""},
		{"ec pkcs8", enc("PRIVATE KEY", ecPKCS8), ErrKeyType, "ECDSA P-256", ErrKeyType, "ECDSA P-256", ""},
		{"ec public", enc("PUBLIC KEY", ecPub), nil, "public key", ErrKeyType, "ECDSA P-256", ""},
		{"rsa-1024 private", MarshalPrivateKeyPEM(small), ErrKeyType, "RSA-1024", ErrKeyType, "RSA-1024", ""},
		{"rsa-1024 public", enc("PUBLIC KEY", smallPub), nil, "public key", ErrKeyType, "RSA-1024", ""},
		{"encrypted", encrypted, nil, "encrypted", nil, "encrypted", ""},
		{"not pem", []byte("hello"), nil, "no PEM key block", nil, "no PEM key block", ""},
		{"certificate only", enc("CERTIFICATE", []byte{1, 2, 3}), nil, "no PEM key block", nil, "no PEM key block", ""},
		{"corrupt der", enc("RSA PRIVATE KEY", []byte{0x30, 0x03, 1, 2, 3}), nil, "RSA PRIVATE KEY", nil, "RSA PRIVATE KEY", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			priv, err := ParsePrivateKeyPEM(tc.in)
			checkErr(t, "ParsePrivateKeyPEM", tc.in, err, tc.privErr, tc.privMsg)
			if err == nil && priv.N.BitLen() != KeyBits {
				t.Errorf("private key of %d bits accepted", priv.N.BitLen())
			}
			pub, err := ParsePublicKeyPEM(tc.in)
			checkErr(t, "ParsePublicKeyPEM", tc.in, err, tc.pubErr, tc.pubMsg)
			if tc.wantDigest != "" {
				if err != nil {
					t.Fatal(err)
				}
				if d, _ := Digest(pub); d != digestFile(t, tc.wantDigest) {
					t.Errorf("digest %x, want %s", d, tc.wantDigest)
				}
			}
		})
	}
}

// checkErr: msg == "" means "must succeed"; otherwise the call must fail,
// mention msg, wrap want (if set) and never echo the input's key text.
func checkErr(t *testing.T, what string, in []byte, err, want error, msg string) {
	t.Helper()
	if msg == "" && want == nil {
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
		return
	}
	if err == nil {
		t.Errorf("%s succeeded, want an error mentioning %q", what, msg)
		return
	}
	if want != nil && !errors.Is(err, want) {
		t.Errorf("%s = %v, want %v", what, err, want)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("%s = %q, want it to mention %q", what, err, msg)
	}
	if !strings.HasPrefix(err.Error(), "secureboot: ") {
		t.Errorf("%s = %q lacks the package prefix", what, err)
	}
	// No line of base64 key material may appear in the message.
	for _, line := range strings.Split(string(in), "\n") {
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") && strings.Contains(err.Error(), line[:16]) {
			t.Errorf("%s error echoes key text: %q", what, err)
		}
	}
}

func TestSectorGeometry(t *testing.T) {
	t.Parallel()
	tests := []struct{ n, offset, signed int }{
		{1, 4096, 8192},
		{4096, 4096, 8192},
		{4097, 8192, 12288},
		{20000, 20480, 24576},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			t.Parallel()
			if got := SectorOffset(tc.n); got != tc.offset {
				t.Errorf("SectorOffset = %d, want %d", got, tc.offset)
			}
			if got := SignedLength(tc.n); got != tc.signed {
				t.Errorf("SignedLength = %d, want %d", got, tc.signed)
			}
			img := bytes.Repeat([]byte{0x5A}, tc.n)
			p := Pad(img)
			if len(p) != tc.offset || !bytes.Equal(p[:tc.n], img) {
				t.Errorf("Pad: len %d", len(p))
			}
			for _, c := range p[tc.n:] {
				if c != 0xFF {
					t.Fatalf("pad byte %#x", c)
				}
			}
			if ImageDigest(img) != sha256.Sum256(p) {
				t.Error("ImageDigest differs from sha256(Pad(img))")
			}
		})
	}
}
