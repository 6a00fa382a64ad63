// Package releasetest builds what release tests need and production gets
// from a CA: a real X.509 hierarchy (root, intermediate, code-signing
// leaf), CRLs, and release directories with sparse or random images, plus a
// recording SubdeviceWriter. It sits beside package release as httptest
// sits beside net/http. Keys are ECDSA P-256 (fast to make); nothing here
// is fit to sign a real release.
package releasetest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"

	"fuseline/esp/chip"
	"fuseline/esp/image"
	"fuseline/release"
)

// Cert is a certificate with its key.
type Cert struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// PKI is a root CA, an intermediate CA under it, and a code-signing
// signer under the intermediate, all valid from Now-1h to Now+24h.
type PKI struct {
	Now          time.Time
	Root         Cert
	Intermediate Cert
	Signer       Cert
	serial       int64
	mu           sync.Mutex
}

// CertSpec describes a certificate to issue. Zero fields: valid Now-1h to
// Now+24h, EKU codeSigning, key usage digitalSignature, a new P-256 key.
type CertSpec struct {
	CN        string
	NotBefore time.Time
	NotAfter  time.Time
	EKU       []x509.ExtKeyUsage // nil: codeSigning; use []x509.ExtKeyUsage{} for none
	CA        bool
	Key       crypto.Signer // nil: generate
}

// NewPKI makes a fresh hierarchy with its validity around now.
func NewPKI(now time.Time) (*PKI, error) {
	p := &PKI{Now: now, serial: 0x1000}
	var err error
	if p.Root, err = p.issue(CertSpec{CN: "Fuseline Test Root", CA: true, EKU: []x509.ExtKeyUsage{}}, nil); err != nil {
		return nil, err
	}
	if p.Intermediate, err = p.Issue(p.Root, CertSpec{CN: "Fuseline Test Release CA", CA: true, EKU: []x509.ExtKeyUsage{}}); err != nil {
		return nil, err
	}
	if p.Signer, err = p.Issue(p.Intermediate, CertSpec{CN: "Line Signer"}); err != nil {
		return nil, err
	}
	return p, nil
}

// Issue signs a new certificate with issuer.
func (p *PKI) Issue(issuer Cert, s CertSpec) (Cert, error) { return p.issue(s, &issuer) }

func (p *PKI) issue(s CertSpec, issuer *Cert) (Cert, error) {
	key := s.Key
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return Cert{}, err
		}
		key = k
	}
	p.mu.Lock()
	p.serial++
	serial := big.NewInt(p.serial)
	p.mu.Unlock()
	t := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: s.CN, Organization: []string{"Fuseline Test"}},
		NotBefore:             s.NotBefore,
		NotAfter:              s.NotAfter,
		BasicConstraintsValid: true,
		IsCA:                  s.CA,
		ExtKeyUsage:           s.EKU,
	}
	if t.NotBefore.IsZero() {
		t.NotBefore = p.Now.Add(-time.Hour)
	}
	if t.NotAfter.IsZero() {
		t.NotAfter = p.Now.Add(24 * time.Hour)
	}
	if s.EKU == nil {
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
	}
	if s.CA {
		t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		t.KeyUsage = x509.KeyUsageDigitalSignature
	}
	parent, signer := t, key
	if issuer != nil {
		parent, signer = issuer.Cert, issuer.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, t, parent, key.Public(), signer)
	if err != nil {
		return Cert{}, fmt.Errorf("releasetest: issuing %s: %w", s.CN, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return Cert{}, err
	}
	return Cert{Cert: c, Key: key}, nil
}

// CRL makes a CRL signed by issuer, revoking the given certificates, valid
// from thisUpdate to nextUpdate.
func (p *PKI) CRL(issuer Cert, thisUpdate, nextUpdate time.Time, revoked ...*x509.Certificate) (*x509.RevocationList, error) {
	t := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: thisUpdate, NextUpdate: nextUpdate}
	for _, c := range revoked {
		t.RevokedCertificateEntries = append(t.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: c.SerialNumber, RevocationTime: thisUpdate,
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, t, issuer.Cert, issuer.Key)
	if err != nil {
		return nil, fmt.Errorf("releasetest: CRL: %w", err)
	}
	return x509.ParseRevocationList(der)
}

// ReleaseSigner is the release.Signer for s with the intermediate as chain.
func (p *PKI) ReleaseSigner(s Cert) release.Signer {
	return release.Signer{Key: s.Key, Cert: s.Cert, Chain: []*x509.Certificate{p.Intermediate.Cert}}
}

// Roots is a pool holding only the root.
func (p *PKI) Roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.Root.Cert)
	return pool
}

// CertPEM encodes certificates as PEM.
func CertPEM(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// CRLPEM encodes a CRL as PEM.
func CRLPEM(crl *x509.RevocationList) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl.Raw})
}

// KeyPEM encodes a private key as PKCS#8 PEM.
func KeyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// WritePEMs writes root.pem, intermediate.pem, signer.pem, signer.key and
// chain.pem (intermediate) into dir and returns dir.
func (p *PKI) WritePEMs(dir string) error {
	key, err := KeyPEM(p.Signer.Key)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"root.pem":         CertPEM(p.Root.Cert),
		"intermediate.pem": CertPEM(p.Intermediate.Cert),
		"chain.pem":        CertPEM(p.Intermediate.Cert),
		"signer.pem":       CertPEM(p.Signer.Cert),
		"signer.key":       key,
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// Image is a deterministic pseudo-random image of n bytes (seeded).
func Image(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// SparseFile writes a file of size bytes at path that is mostly a hole,
// with a 4 KiB block of data every stride bytes, so large-release tests
// exercise real reads without filling the disk.
func SparseFile(path string, size, stride int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	for off := int64(0); off+4096 <= size; off += stride {
		if _, err := f.WriteAt(Image(4096, byte(off/stride)), off); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// Writer is a SubdeviceWriter that records what it received and can be
// told to fail; it is safe for concurrent use.
type Writer struct {
	mu     sync.Mutex
	Got    map[string][]byte // path -> bytes received, for completed images
	Order  []string          // paths in the order they completed
	Err    error             // returned by every WriteImage when set
	StopAt int64             // when > 0, stop reading after this many bytes and return nil
}

// WriteImage implements release.SubdeviceWriter: it reads r to EOF and
// keeps the bytes only if the read ended cleanly, as a real device discards
// a partial image.
func (w *Writer) WriteImage(ctx context.Context, f release.File, r io.Reader) error {
	if w.Err != nil {
		return w.Err
	}
	var rd io.Reader = r
	if w.StopAt > 0 {
		rd = io.LimitReader(r, w.StopAt)
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.Got == nil {
		w.Got = map[string][]byte{}
	}
	w.Got[f.Path] = b
	w.Order = append(w.Order, f.Path)
	return nil
}

// Options returns CreateOptions for a small esp32s3 release of product
// "demo" with a bootloader, partition table, factory app, otadata and one
// sub-device image ("motor"), whose sources it writes into src.
func Options(src, version string, secureVersion uint32) (release.CreateOptions, error) {
	files := []struct {
		role   release.Role
		off    uint32
		device string
		name   string
		size   int
	}{
		{release.RoleBootloader, 0x0, "", "bootloader.bin", 20000},
		{release.RolePartitionTable, 0x8000, "", "partition-table.bin", 3072},
		{release.RoleOTAData, 0xd000, "", "otadata.bin", 8192},
		{release.RoleFactory, 0x10000, "", "app.bin", 150000},
		{release.RoleSubdevice, 0, "motor", "motor.bin", 30000},
	}
	opts := release.CreateOptions{Product: "demo", Chip: "esp32s3", Version: version, SecureVersion: &secureVersion}
	for i, f := range files {
		p := filepath.Join(src, f.name)
		b := Image(f.size, byte(i+1))
		if f.role == release.RoleBootloader || f.role.IsApp() {
			// The bootloader and the app are ESP images whose header and app
			// descriptor agree with the manifest (release.Manifest.CheckImage),
			// filled with erased flash to the size above.
			var err error
			if b, err = espImage(f.role, f.size, version, secureVersion); err != nil {
				return opts, err
			}
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return opts, err
		}
		opts.Files = append(opts.Files, release.FileSpec{Role: f.role, Offset: f.off, Device: f.device, Source: p})
	}
	return opts, nil
}

// espImage is an ESP32-S3 bootloader or app of exactly size bytes: a
// synthetic image (image.Synth) followed by 0xFF.
func espImage(role release.Role, size int, version string, secureVersion uint32) ([]byte, error) {
	o := image.SynthOptions{Chip: chip.S3(), Kind: image.Bootloader, Size: size * 3 / 4}
	if role.IsApp() {
		o.Kind, o.Version, o.SecureVersion = image.App, version, secureVersion
	}
	b, err := image.Synth(o)
	if err != nil {
		return nil, err
	}
	if len(b) > size {
		return nil, fmt.Errorf("releasetest: a %s image takes %d bytes, more than %d", role, len(b), size)
	}
	return append(b, bytes.Repeat([]byte{0xFF}, size-len(b))...), nil
}

// WriteRelease creates and signs a release in dir (see Options), with its
// sources in dir+".src".
func WriteRelease(ctx context.Context, dir, version string, secureVersion uint32, s release.Signer) (*release.Manifest, error) {
	src := dir + ".src"
	if err := os.MkdirAll(src, 0o755); err != nil {
		return nil, err
	}
	opts, err := Options(src, version, secureVersion)
	if err != nil {
		return nil, err
	}
	m, err := release.Create(ctx, dir, opts)
	if err != nil {
		return nil, err
	}
	return m, release.SignDir(ctx, dir, s)
}
