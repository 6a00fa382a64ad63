//go:build cgo

package cli

import (
	"crypto/rsa"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fuseline/esp/secureboot"
	"fuseline/release/pkcs11"
	"fuseline/release/releasetest"
)

// TestReleaseCLIPKCS11: `release create --sb-key pkcs11:…` and `release sign
// --pkcs11 …` against a SoftHSM2 token, PIN from FUSELINE_PKCS11_PIN, and
// the PIN never appears in any output. Not parallel: it sets environment
// variables the PKCS#11 module and the CLI read.
func TestReleaseCLIPKCS11(t *testing.T) {
	if why := releasetest.SoftHSMMissing(); why != "" {
		t.Skip(why)
	}
	ctx := t.Context()
	h, err := releasetest.NewSoftHSM(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(h.Env())
	t.Setenv(pkcs11.PINEnv, h.PIN)
	if err := h.GenerateKey(ctx, "EC:prime256v1", "signer", "01"); err != nil {
		t.Fatal(err)
	}
	if err := h.GenerateKey(ctx, "rsa:3072", "sbkey", "02"); err != nil {
		t.Fatal(err)
	}
	f := newRelFx(t)
	// The token's public keys: a certificate for the CMS key, and the SB key
	// to check the images with.
	pub := func(label string) any {
		u, _ := pkcs11.ParseURI(h.URI(label, false))
		k, err := pkcs11.Open(ctx, u, h.PIN)
		if err != nil {
			t.Fatal(err)
		}
		defer k.Close()
		return k.Public()
	}
	sbPub := pub("sbkey").(*rsa.PublicKey)
	u, _ := pkcs11.ParseURI(h.URI("signer", false))
	k, err := pkcs11.Open(ctx, u, h.PIN)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := f.pki.Issue(f.pki.Intermediate, releasetest.CertSpec{CN: "HSM Signer", Key: k})
	k.Close()
	if err != nil {
		t.Fatal(err)
	}
	certPath := f.write("hsm.pem", releasetest.CertPEM(cert.Cert))

	dir := filepath.Join(t.TempDir(), "rel")
	var all strings.Builder
	run := func(want int, args ...string) string {
		t.Helper()
		code, out, errs := relRun(t, args...)
		all.WriteString(out + errs)
		if code != want {
			t.Fatalf("%v: exit %d\n%s%s", args[:2], code, out, errs)
		}
		return out
	}
	if f.opts, err = releasetest.Options(t.TempDir(), "3.0.0", 3); err != nil { // an app that says 3.0.0
		t.Fatal(err)
	}
	run(0, append(f.createArgs(dir, "3.0.0", "3"), "--sb-key", h.URI("sbkey", false))...)
	run(0, "release", "sign", "--pkcs11", h.URI("signer", false), "--cert", certPath, "--chain", f.path("chain.pem"), dir)
	out := run(0, "release", "verify", "--trust", f.path("root.pem"), "--signer-name", "HSM Signer", dir)
	if !strings.HasPrefix(out, `valid: demo 3.0.0 (esp32s3, secure_version 3) signed by "CN=HSM Signer`) {
		t.Fatalf("verify: %s", out)
	}
	for _, name := range []string{"bootloader.bin", "app.bin"} {
		img, _ := os.ReadFile(filepath.Join(dir, name))
		if res, err := secureboot.Verify(img, sbPub); err != nil || !res.Verified() {
			t.Fatalf("%s: Secure Boot v2 by the HSM key: %v", name, err)
		}
	}

	// A wrong PIN in the URI: exit 2, a clear line, the PIN redacted.
	t.Setenv(pkcs11.PINEnv, "")
	code, _, errs := relRun(t, "release", "sign", "--pkcs11", h.URI("signer", false)+"&pin-value=777777",
		"--cert", certPath, "--chain", f.path("chain.pem"), dir)
	all.WriteString(errs)
	if code != ExitUsage || !strings.Contains(errs, "CKR_PIN_INCORRECT") || !strings.Contains(errs, "pin-value=***") {
		t.Fatalf("wrong PIN: %d %q", code, errs)
	}
	code, _, errs = relRun(t, "release", "sign", "--pkcs11", h.URI("signer", false), "--cert", certPath, dir)
	if code != ExitUsage || !strings.Contains(errs, "set FUSELINE_PKCS11_PIN") {
		t.Fatalf("no PIN: %d %q", code, errs)
	}
	for _, pin := range []string{"=" + h.PIN, "777777"} {
		if strings.Contains(all.String(), pin) {
			t.Fatalf("output shows a PIN (%s):\n%s", pin, all.String())
		}
	}
}
