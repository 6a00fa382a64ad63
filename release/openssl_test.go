package release_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fuseline/release"
	"fuseline/release/releasetest"
)

// opensslFx is a signed release plus the PKI as PEM files for openssl.
func opensslFx(t *testing.T) (f *fx, pemDir string) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not on PATH (apt-get install openssl)")
	}
	f = newFx(t)
	f.write()
	pemDir = t.TempDir()
	if err := f.pki.WritePEMs(pemDir); err != nil {
		t.Fatal(err)
	}
	return f, pemDir
}

func openssl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "openssl", args...).CombinedOutput()
	return string(out), err
}

// OpenSSL's CMS verifier accepts our detached signature over the exact
// manifest bytes, with the chain we embed, and agrees with our CRL check.
func TestOpenSSLVerifiesOurSignature(t *testing.T) {
	t.Parallel()
	f, pems := opensslFx(t)
	p7s := filepath.Join(f.dir, release.SignatureName)
	manifest := filepath.Join(f.dir, release.ManifestName)
	root := filepath.Join(pems, "root.pem")
	base := []string{"cms", "-verify", "-binary", "-inform", "DER", "-in", p7s, "-content", manifest, "-out", os.DevNull}

	t.Run("root only, chain from the signature", func(t *testing.T) {
		if out, err := openssl(t, append(base, "-CAfile", root, "-purpose", "any")...); err != nil {
			t.Fatalf("openssl refused our signature: %v\n%s", err, out)
		}
	})
	t.Run("with explicit chain", func(t *testing.T) {
		if out, err := openssl(t, append(base, "-CAfile", root, "-certfile", filepath.Join(pems, "chain.pem"), "-purpose", "any")...); err != nil {
			t.Fatalf("openssl refused our signature: %v\n%s", err, out)
		}
	})
	t.Run("tampered manifest", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "m.json")
		b, _ := os.ReadFile(manifest)
		os.WriteFile(bad, []byte(strings.Replace(string(b), "1.2.0", "1.2.1", 1)), 0o644)
		args := []string{"cms", "-verify", "-binary", "-inform", "DER", "-in", p7s, "-content", bad, "-CAfile", root, "-purpose", "any", "-out", os.DevNull}
		if out, err := openssl(t, args...); err == nil {
			t.Fatalf("openssl accepted a tampered manifest:\n%s", out)
		}
	})
	t.Run("CRL revoking the signer", func(t *testing.T) {
		crl := f.crl(f.pki.Intermediate, f.now.Add(-time.Hour), f.now.Add(time.Hour), f.pki.Signer.Cert)
		rootCRL := f.crl(f.pki.Root, f.now.Add(-time.Hour), f.now.Add(time.Hour))
		// openssl cms has no -CRLfile: CRLs ride in the CAfile.
		caCRL := filepath.Join(t.TempDir(), "root+crls.pem")
		rootPEM, _ := os.ReadFile(root)
		os.WriteFile(caCRL, append(append(rootPEM, releasetest.CRLPEM(crl)...), releasetest.CRLPEM(rootCRL)...), 0o644)
		out, err := openssl(t, append(base, "-CAfile", caCRL, "-purpose", "any", "-crl_check_all")...)
		if err == nil || !strings.Contains(out, "certificate revoked") {
			t.Fatalf("openssl with the CRL: err %v\n%s", err, out)
		}
		pol := f.pol
		pol.CRLs = append(pol.CRLs, crl)
		_, err = release.Verify(t.Context(), f.dir, pol)
		if re, ok := errors.AsType[*release.RefusedError](err); !ok || re.Reason != release.ReasonRevoked {
			t.Fatalf("we disagree with openssl: %v", err)
		}
	})
}

// We accept a detached signature made by `openssl cms -sign`, and refuse
// one made over different bytes.
func TestWeVerifyOpenSSLSignature(t *testing.T) {
	t.Parallel()
	f, pems := opensslFx(t)
	p7s := filepath.Join(f.dir, release.SignatureName)
	manifest := filepath.Join(f.dir, release.ManifestName)
	sign := func(content string) {
		t.Helper()
		out, err := openssl(t, "cms", "-sign", "-binary", "-outform", "DER", "-md", "sha256",
			"-in", content, "-signer", filepath.Join(pems, "signer.pem"), "-inkey", filepath.Join(pems, "signer.key"),
			"-certfile", filepath.Join(pems, "chain.pem"), "-out", p7s)
		if err != nil {
			t.Fatalf("openssl cms -sign: %v\n%s", err, out)
		}
	}
	sign(manifest)
	a, err := release.Verify(t.Context(), f.dir, f.pol)
	if err != nil {
		t.Fatalf("refused an OpenSSL signature: %v", err)
	}
	if a.Signer.Subject.CommonName != "Line Signer" || a.SigningTime.IsZero() {
		t.Fatalf("authenticated %+v", a)
	}

	other := filepath.Join(t.TempDir(), "other.json")
	b, _ := os.ReadFile(manifest)
	os.WriteFile(other, []byte(strings.Replace(string(b), `"product":"demo"`, `"product":"demo2"`, 1)), 0o644)
	sign(other)
	_, err = release.Verify(t.Context(), f.dir, f.pol)
	if re, ok := errors.AsType[*release.RefusedError](err); !ok || re.Reason != release.ReasonSignature {
		t.Fatalf("err = %v, want bad-signature", err)
	}
}
