package release_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fuseline/esp/secureboot"
	"fuseline/release"
	"fuseline/release/releasetest"
)

func TestManifestMinimalFromPython(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("testdata", "manifest-minimal.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := release.ParseManifest(b); err != nil {
		t.Fatalf("an independent canonical encoder's output refused: %v", err)
	}
	b, _ = os.ReadFile(filepath.Join("testdata", "manifest-pretty.json"))
	if _, err := release.ParseManifest(b); err == nil {
		t.Fatal("pretty-printed manifest accepted")
	}
}

func sbKeys(t *testing.T) ([]crypto.Signer, []*rsa.PublicKey) {
	t.Helper()
	var signers []crypto.Signer
	var pubs []*rsa.PublicKey
	for _, n := range []string{"key1", "key2"} {
		b, err := os.ReadFile(filepath.Join("testdata", n+".pem"))
		if err != nil {
			t.Fatal(err)
		}
		k, err := secureboot.ParsePrivateKeyPEM(b)
		if err != nil {
			t.Fatal(err)
		}
		pb, _ := os.ReadFile(filepath.Join("testdata", n+".pub.pem"))
		pub, err := secureboot.ParsePublicKeyPEM(pb)
		if err != nil {
			t.Fatal(err)
		}
		signers = append(signers, k)
		pubs = append(pubs, pub)
	}
	return signers, pubs
}

// Create with Secure Boot keys signs bootloader and app images (and only
// those) before hashing, so the manifest vouches for the signed images.
func TestCreateSecureBoot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFx(t)
	src := t.TempDir()
	opts, err := releasetest.Options(src, "1.0.0", 1)
	if err != nil {
		t.Fatal(err)
	}
	signers, pubs := sbKeys(t)
	opts.SecureBoot = signers
	m, err := release.Create(ctx, f.dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range m.Files {
		got, _ := os.ReadFile(filepath.Join(f.dir, file.Path))
		orig, _ := os.ReadFile(filepath.Join(src, file.Path))
		if file.Role == release.RoleBootloader || file.Role.IsApp() {
			for i, pub := range pubs {
				res, err := secureboot.Verify(got, pub)
				if err != nil || !res.Verified() {
					t.Fatalf("%s: key %d: %v", file.Path, i+1, err)
				}
			}
			if len(got) != secureboot.SignedLength(len(orig)) || !bytes.Equal(got[:len(orig)], orig) {
				t.Fatalf("%s: signed image is %d bytes from %d", file.Path, len(got), len(orig))
			}
		} else if !bytes.Equal(got, orig) {
			t.Fatalf("%s (%s) was changed", file.Path, file.Role)
		}
		if file.Size != int64(len(got)) {
			t.Fatalf("%s: manifest size %d, file %d", file.Path, file.Size, len(got))
		}
	}
	if err := release.SignDir(ctx, f.dir, f.signer); err != nil {
		t.Fatal(err)
	}
	if _, err := release.Verify(ctx, f.dir, f.pol); err != nil {
		t.Fatal(err)
	}
}

func TestCreateErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cases := []struct {
		name string
		edit func(o *release.CreateOptions, dir string)
		want string
	}{
		{"bad role", func(o *release.CreateOptions, _ string) { o.Files[0].Role = "boot" }, `files[0].role`},
		{"bad chip", func(o *release.CreateOptions, _ string) { o.Chip = "esp8266" }, `chip`},
		{"missing source", func(o *release.CreateOptions, _ string) { o.Files[1].Source += ".nope" }, "no such file"},
		{"same base name twice", func(o *release.CreateOptions, _ string) {
			o.Files[1].Source = filepath.Join(filepath.Dir(o.Files[0].Source), "x", filepath.Base(o.Files[0].Source))
		}, "each path once"},
		{"empty image", func(o *release.CreateOptions, _ string) { os.WriteFile(o.Files[2].Source, nil, 0o644) }, "is empty"},
		{"already a release", func(o *release.CreateOptions, dir string) {
			os.MkdirAll(dir, 0o755)
			os.WriteFile(filepath.Join(dir, release.ManifestName), []byte("{}"), 0o644)
		}, "already holds a release"},
		{"secure boot key not RSA", func(o *release.CreateOptions, _ string) { o.SecureBoot = []crypto.Signer{ec} }, "Secure Boot signing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src, dir := t.TempDir(), filepath.Join(t.TempDir(), "rel")
			opts, err := releasetest.Options(src, "1.0.0", 0)
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(&opts, dir)
			_, err = release.Create(ctx, dir, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestSignErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFx(t)
	f.write()
	manifest, _ := os.ReadFile(filepath.Join(f.dir, release.ManifestName))

	other := f.signer
	other.Key = f.pki.Intermediate.Key
	if _, err := release.Sign(manifest, other); err == nil || !strings.Contains(err.Error(), `does not belong to certificate "Line Signer"`) {
		t.Fatalf("mismatched key: %v", err)
	}
	if _, err := release.Sign(append(manifest, ' '), f.signer); !errors.As(err, new(*release.FormatError)) {
		t.Fatalf("non-canonical manifest signed: %v", err)
	}
	wrongChain := f.signer
	wrongChain.Chain = nil
	wrongChain.Chain = append(wrongChain.Chain, f.pki.Root.Cert)
	if _, err := release.Sign(manifest, wrongChain); err == nil {
		t.Fatal("signed with a chain whose first element is not the issuer")
	}
	// A signer does not vouch for files that are not what the manifest says.
	p := filepath.Join(f.dir, "app.bin")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, b[:len(b)-1], 0o644)
	before, _ := os.ReadFile(filepath.Join(f.dir, release.SignatureName))
	err := release.SignDir(ctx, f.dir, f.signer)
	if re, ok := errors.AsType[*release.RegionError](err); !ok || re.Fault != release.FaultTooShort {
		t.Fatalf("SignDir over a short image: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(f.dir, release.SignatureName))
	if !bytes.Equal(before, after) {
		t.Fatal("SignDir replaced the signature despite failing")
	}
}
