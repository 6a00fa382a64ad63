package secureboot

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"
)

// FuzzParseSector: no panic; every error carries an offset inside the
// input; whatever parses re-encodes to a sector that parses to the same
// blocks, and a block parsed from slot i re-encodes to the input's bytes
// 0…1199 of that slot.
func FuzzParseSector(f *testing.F) {
	for _, name := range []string{"signed-key1.bin", "signed-key1-key2.bin"} {
		_, sector, err := Split(load(f, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sector)
		// The same sector with slot 0 knocked out: the parser must move on.
		knocked := bytes.Clone(sector)
		knocked[0] = 0xFF
		f.Add(knocked)
	}
	f.Add(bytes.Repeat([]byte{0xFF}, SectorSize))
	f.Add(make([]byte, SectorSize))
	f.Add([]byte{Magic, VersionRSA})

	f.Fuzz(func(t *testing.T, b []byte) {
		blocks, err := ParseSector(b)
		if err != nil {
			if !errors.Is(err, ErrNoSignature) {
				t.Fatalf("error %v does not wrap ErrNoSignature", err)
			}
			fe, ok := errors.AsType[*FormatError](err)
			if !ok || fe.Offset < 0 || fe.Offset > len(b) {
				t.Fatalf("error %v: no offset within the %d input bytes", err, len(b))
			}
			return
		}
		for _, blk := range blocks {
			raw := b[blk.Slot*BlockSize : blk.Slot*BlockSize+BlockSize]
			enc, err := blk.MarshalBinary()
			if err != nil {
				t.Fatalf("slot %d parsed but does not encode: %v", blk.Slot, err)
			}
			if !bytes.Equal(enc[:offTail], raw[:offTail]) {
				t.Fatalf("slot %d: re-encoding differs in bytes 0..1199", blk.Slot)
			}
		}
		sector, err := AppendSector(nil, blocks...)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseSector(sector)
		if err != nil || len(again) != len(blocks) {
			t.Fatalf("re-encoded sector: %d blocks, %v; want %d", len(again), err, len(blocks))
		}
		for i := range again {
			a, b := again[i], blocks[i]
			if a.Slot != i || a.ImageDigest != b.ImageDigest || !a.Key.Equal(b.Key) || !bytes.Equal(a.Signature, b.Signature) {
				t.Fatalf("block %d changed across a round trip", i)
			}
		}
	})
}

// FuzzParseKeyPEM: no panic; a key either side accepts is RSA-3072 and
// survives a marshal/parse round trip with the same digest.
func FuzzParseKeyPEM(f *testing.F) {
	for _, name := range []string{"key1.pem", "key2.pem", "key1.pub.pem", "key2.pub.pem"} {
		f.Add(load(f, name))
	}
	k := privKey(f, "key1.pem")
	if der, err := x509.MarshalPKCS8PrivateKey(k); err == nil {
		f.Add(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.PublicKey)}))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"))

	f.Fuzz(func(t *testing.T, b []byte) {
		if priv, err := ParsePrivateKeyPEM(b); err == nil {
			if priv.N.BitLen() != KeyBits {
				t.Fatalf("accepted RSA-%d private key", priv.N.BitLen())
			}
			back, err := ParsePrivateKeyPEM(MarshalPrivateKeyPEM(priv))
			if err != nil || !back.Equal(priv) {
				t.Fatalf("private key round trip: %v", err)
			}
		}
		pub, err := ParsePublicKeyPEM(b)
		if err != nil {
			return
		}
		d, err := Digest(pub)
		if err != nil {
			t.Fatalf("accepted a key Digest refuses: %v", err)
		}
		out, err := MarshalPublicKeyPEM(pub)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParsePublicKeyPEM(out)
		if err != nil || !back.Equal(pub) {
			t.Fatalf("public key round trip: %v", err)
		}
		if d2, _ := Digest(back); d2 != d {
			t.Fatal("digest changed across a round trip")
		}
	})
}
