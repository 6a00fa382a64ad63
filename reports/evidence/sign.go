package evidence

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// ErrBadSignature is returned when a signature does not verify.
var ErrBadSignature = errors.New("evidence: signature does not verify with the station key")

// StationKey is a station's public key: the Ed25519 key that signs evidence
// files and, under Name, the checkpoints of the station's audit log.
type StationKey struct {
	// Name is the note key name ("fuseline-line1-st3"). It is empty when the
	// key was read from PEM; checkpoints are then matched by key hash under
	// the name their signature line gives.
	Name   string
	Public ed25519.PublicKey
}

// algEd25519 is the note signature algorithm byte for Ed25519.
const algEd25519 = 1

// ParseStationKey reads a station public key file: a note verifier key line
// ("name+hash+base64", as note.NewEd25519VerifierKey writes) or a PEM
// "PUBLIC KEY" block holding an Ed25519 key. Blank lines and lines starting
// with "#" around a verifier key are ignored.
func ParseStationKey(b []byte) (*StationKey, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("evidence: station key: PEM block %q, want \"PUBLIC KEY\"", blk.Type)
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("evidence: station key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("evidence: station key: %T, want an Ed25519 key", k)
		}
		return &StationKey{Public: pub}, nil
	}
	var line string
	for l := range strings.Lines(string(b)) {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if line != "" {
			return nil, errors.New("evidence: station key: more than one key line")
		}
		line = l
	}
	if strings.HasPrefix(line, "PRIVATE+KEY+") {
		// Never echo it: this is the station's secret.
		return nil, errors.New("evidence: station key: this is a private key; give the public (verifier) key")
	}
	if _, err := note.NewVerifier(line); err != nil {
		return nil, fmt.Errorf("evidence: station key: not a note verifier key or PEM public key: %w", err)
	}
	name, rest, _ := strings.Cut(line, "+")
	_, key64, _ := strings.Cut(rest, "+")
	key, err := base64.StdEncoding.DecodeString(key64)
	if err != nil || len(key) != 1+ed25519.PublicKeySize || key[0] != algEd25519 {
		return nil, errors.New("evidence: station key: not an Ed25519 verifier key")
	}
	return &StationKey{Name: name, Public: ed25519.PublicKey(key[1:])}, nil
}

// VerifierKey returns the note verifier key line for k (no newline).
func (k *StationKey) VerifierKey() (string, error) {
	if k.Name == "" {
		return "", errors.New("evidence: station key has no name (read from PEM)")
	}
	return note.NewEd25519VerifierKey(k.Name, k.Public)
}

// MarshalText writes the station public key file: the verifier key line,
// or PEM when the key has no name.
func (k *StationKey) MarshalText() ([]byte, error) {
	if k.Name == "" {
		der, err := x509.MarshalPKIXPublicKey(k.Public)
		if err != nil {
			return nil, fmt.Errorf("evidence: station key: %w", err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
	}
	v, err := k.VerifierKey()
	if err != nil {
		return nil, err
	}
	return []byte(v + "\n"), nil
}

// Equal reports whether k and o are the same public key.
func (k *StationKey) Equal(o *StationKey) bool {
	return k != nil && o != nil && k.Public.Equal(o.Public)
}

// verifier returns a note verifier for k under name (k.Name if set).
func (k *StationKey) verifier(name string) (note.Verifier, error) {
	if k.Name != "" {
		name = k.Name
	}
	vkey, err := note.NewEd25519VerifierKey(name, k.Public)
	if err != nil {
		return nil, fmt.Errorf("evidence: station key: %w", err)
	}
	return note.NewVerifier(vkey)
}

// ParseStationPrivateKey reads a note signer key ("PRIVATE+KEY+name+hash+
// base64", as note.GenerateKey writes) and returns its name and Ed25519
// private key. Errors never contain the key text.
func ParseStationPrivateKey(skey string) (name string, priv ed25519.PrivateKey, err error) {
	skey = strings.TrimSpace(skey)
	if _, err := note.NewSigner(skey); err != nil {
		return "", nil, errors.New("evidence: station private key: not a note signer key (PRIVATE+KEY+name+hash+base64)")
	}
	parts := strings.SplitN(skey, "+", 5)
	key, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(key) != 1+ed25519.SeedSize || key[0] != algEd25519 {
		return "", nil, errors.New("evidence: station private key: not an Ed25519 signer key")
	}
	return parts[2], ed25519.NewKeyFromSeed(key[1:]), nil
}

// SignBytes signs canonical evidence bytes with the station key and returns
// the contents of the detached signature file. key must be an Ed25519
// signer (an ed25519.PrivateKey, or an HSM key that signs Ed25519).
func SignBytes(data []byte, key crypto.Signer) ([]byte, error) {
	if _, ok := key.Public().(ed25519.PublicKey); !ok {
		return nil, fmt.Errorf("evidence: station key is %T, want Ed25519", key.Public())
	}
	sig, err := key.Sign(rand.Reader, data, crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("evidence: sign: %w", err)
	}
	return EncodeSignature(sig), nil
}

// Sign marshals r to its canonical bytes and signs them. It returns the
// evidence file and the signature file contents.
func Sign(r *Record, key crypto.Signer) (data, sig []byte, err error) {
	data, err = Marshal(r)
	if err != nil {
		return nil, nil, err
	}
	sig, err = SignBytes(data, key)
	if err != nil {
		return nil, nil, err
	}
	return data, sig, nil
}

// EncodeSignature writes a raw 64-byte signature as a signature file.
func EncodeSignature(raw []byte) []byte {
	return []byte(base64.StdEncoding.EncodeToString(raw) + "\n")
}

// DecodeSignature reads a signature file: standard base64 of 64 bytes,
// optionally followed by a newline.
func DecodeSignature(file []byte) ([]byte, error) {
	s := bytes.TrimSuffix(file, []byte("\n"))
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Strict().Decode(raw, s)
	if err != nil {
		return nil, fmt.Errorf("evidence: signature file is not base64: %w", err)
	}
	if n != ed25519.SignatureSize {
		return nil, fmt.Errorf("evidence: signature is %d bytes, want %d", n, ed25519.SignatureSize)
	}
	return raw[:n], nil
}

// VerifySignature checks a signature file against the evidence bytes.
func VerifySignature(data, sigFile []byte, key *StationKey) error {
	sig, err := DecodeSignature(sigFile)
	if err != nil {
		return err
	}
	if len(key.Public) != ed25519.PublicKeySize {
		return errors.New("evidence: station key is not " + strconv.Itoa(ed25519.PublicKeySize) + " bytes")
	}
	if !ed25519.Verify(key.Public, data, sig) {
		return ErrBadSignature
	}
	return nil
}
