//go:build cgo

package pkcs11_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fuseline/esp/secureboot"
	"fuseline/release"
	"fuseline/release/pkcs11"
	"fuseline/release/releasetest"
)

// TestSoftHSM: a token in a temp dir holds an EC P-256 key that signs the
// release's CMS and an RSA-3072 key that signs the images' Secure Boot v2
// blocks; both verify with our code (and the CMS with OpenSSL's).
// Not parallel: the module reads SOFTHSM2_CONF from the environment.
func TestSoftHSM(t *testing.T) {
	if why := releasetest.SoftHSMMissing(); why != "" {
		t.Skip(why)
	}
	ctx := t.Context()
	h, err := releasetest.NewSoftHSM(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(h.Env())
	if err := h.GenerateKey(ctx, "EC:prime256v1", "signer", "01"); err != nil {
		t.Fatal(err)
	}
	if err := h.GenerateKey(ctx, "rsa:3072", "sbkey", "02"); err != nil {
		t.Fatal(err)
	}

	// Failures name the key by its redacted URI and never show the PIN.
	// (Before any key is open: PKCS#11 login is per token per process, so
	// while one Key is logged in, a second Open does not re-check the PIN.)
	for uri, want := range map[string]string{
		h.URI("nosuchkey", true): "finding key of",
		strings.Replace(h.URI("signer", false), "token=station", "token=nope", 1) + "&pin-value=999999": "opening pkcs11:token=nope",
		h.URI("signer", false) + "&pin-value=000000":                                                    "opening pkcs11:token=station",
	} {
		u, _ := pkcs11.ParseURI(uri)
		k, err := pkcs11.Open(ctx, u, u.PinValue)
		if err == nil {
			k.Close()
			t.Fatalf("%s opened", u)
		}
		if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), u.PinValue) {
			t.Fatalf("%s: err = %v", u, err)
		}
		t.Logf("%v", err)
	}

	open := func(uri string, getenv func(string) string) *pkcs11.Key {
		t.Helper()
		u, err := pkcs11.ParseURI(uri)
		if err != nil {
			t.Fatal(err)
		}
		pin, err := u.PIN(getenv)
		if err != nil {
			t.Fatal(err)
		}
		k, err := pkcs11.Open(ctx, u, pin)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { k.Close() })
		return k
	}
	cmsKey := open(h.URI("signer", true), nil)
	// The second key takes its PIN from the environment variable.
	sbKey := open(h.URI("sbkey", false)+"", func(k string) string {
		if k == pkcs11.PINEnv {
			return h.PIN
		}
		return ""
	})
	if _, ok := cmsKey.Public().(*ecdsa.PublicKey); !ok {
		t.Fatalf("signer is %T", cmsKey.Public())
	}
	sbPub, ok := sbKey.Public().(*rsa.PublicKey)
	if !ok || sbPub.N.BitLen() != 3072 {
		t.Fatalf("sbkey is %T", sbKey.Public())
	}

	// A certificate for the token's key, from the test CA.
	pki, err := releasetest.NewPKI(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.Issue(pki.Intermediate, releasetest.CertSpec{CN: "HSM Signer", Key: cmsKey})
	if err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "rel")
	opts, err := releasetest.Options(t.TempDir(), "2.0.0", 2)
	if err != nil {
		t.Fatal(err)
	}
	opts.SecureBoot = []crypto.Signer{sbKey}
	m, err := release.Create(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	signer := release.Signer{Key: cmsKey, Cert: cert.Cert, Chain: pki.ReleaseSigner(cert).Chain}
	if err := release.SignDir(ctx, dir, signer); err != nil {
		t.Fatal(err)
	}
	a, err := release.Verify(ctx, dir, release.Policy{Roots: pki.Roots(), SignerNames: []string{"HSM Signer"}})
	if err != nil {
		t.Fatalf("HSM-signed release refused: %v", err)
	}
	t.Logf("accepted %s %s signed by %s", a.Manifest.Product, a.Manifest.Version, a.Signer.Subject)

	signed := 0
	for _, f := range m.Files {
		if f.Role != release.RoleBootloader && !f.Role.IsApp() {
			continue
		}
		img, err := os.ReadFile(filepath.Join(dir, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		res, err := secureboot.Verify(img, sbPub)
		if err != nil || !res.Verified() {
			t.Fatalf("%s: Secure Boot v2 signature by the HSM key: %v", f.Path, err)
		}
		d, _ := secureboot.Digest(sbPub)
		if _, err := secureboot.VerifyDigests(img, [][32]byte{d}, nil); err != nil {
			t.Fatalf("%s: as the ROM would check it: %v", f.Path, err)
		}
		signed++
	}
	if signed != 2 {
		t.Fatalf("%d images Secure Boot signed, want bootloader and app", signed)
	}

	if _, err := exec.LookPath("openssl"); err == nil {
		root := filepath.Join(t.TempDir(), "root.pem")
		os.WriteFile(root, releasetest.CertPEM(pki.Root.Cert), 0o644)
		out, err := exec.CommandContext(ctx, "openssl", "cms", "-verify", "-binary", "-inform", "DER",
			"-in", filepath.Join(dir, release.SignatureName), "-content", filepath.Join(dir, release.ManifestName),
			"-CAfile", root, "-purpose", "any", "-out", os.DevNull).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl refused the HSM signature: %v\n%s", err, out)
		}
	}

}
