package release

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/smallstep/pkcs7"
)

// Signer is who signs a release: a key (a PEM key in tests, a PKCS#11
// token in production; either is a crypto.Signer), its certificate, and the
// intermediates up to (not necessarily including) the trust anchor, issuer
// of Cert first. The chain goes into the signature so a station needs only
// its root.
type Signer struct {
	Key   crypto.Signer
	Cert  *x509.Certificate
	Chain []*x509.Certificate
}

// Sign returns a DER CMS SignedData (RFC 5652) over manifest, detached
// (the content is not embedded), SHA-256, with signed attributes
// (content type, message digest, signing time) and the certificates of s.
// The manifest must be valid and canonical: a signature over anything else
// could never be accepted.
func Sign(manifest []byte, s Signer) ([]byte, error) {
	if _, err := ParseManifest(manifest); err != nil {
		return nil, err
	}
	if s.Key == nil || s.Cert == nil {
		return nil, errors.New("release: signing needs a key and its certificate")
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pub, ok := s.Key.Public().(equaler); !ok || !pub.Equal(s.Cert.PublicKey) {
		// Never print keys; the subject is enough to find the mistake.
		return nil, fmt.Errorf("release: the signing key does not belong to certificate %s", name(s.Cert))
	}
	sd, err := pkcs7.NewSignedData(manifest)
	if err != nil {
		return nil, fmt.Errorf("release: preparing signature: %w", err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSignerChain(s.Cert, s.Key, s.Chain, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, fmt.Errorf("release: signing with %s: %w", name(s.Cert), err)
	}
	sd.Detach()
	der, err := sd.Finish()
	if err != nil {
		return nil, fmt.Errorf("release: encoding signature: %w", err)
	}
	return der, nil
}

// SignDir signs the release in dir: it checks the manifest and streams
// every file it names against its size and SHA-256 (a signer must not vouch
// for files that are not there), then writes manifest.json.p7s atomically.
func SignDir(ctx context.Context, dir string, s Signer) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("release: opening release directory: %w", err)
	}
	defer root.Close()
	manifest, err := readLimited(root, ManifestName, MaxManifestSize)
	if err != nil {
		return err
	}
	m, err := ParseManifest(manifest)
	if err != nil {
		return err
	}
	buf := make([]byte, copyBufSize)
	for _, f := range m.Files {
		src, err := root.Open(f.Path)
		if err != nil {
			return fmt.Errorf("release: %s %s: %w", f.Role, f.Path, trimPathErr(err))
		}
		err = drain(ctx, NewImageReader(src, f), buf)
		src.Close()
		if err != nil {
			return err
		}
	}
	sig, err := Sign(manifest, s)
	if err != nil {
		return err
	}
	return writeFileAtomic(dir, SignatureName, sig)
}
