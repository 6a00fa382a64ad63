package release_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"fuseline/release"
	"fuseline/release/releasetest"
)

// fx is one release under test: a PKI, the signer used, the policy, and
// where things are.
type fx struct {
	t        *testing.T
	pki      *releasetest.PKI
	signer   release.Signer
	version  string
	secure   uint32
	pol      release.Policy
	dir      string
	stateDir string
	now      time.Time
}

func newFx(t *testing.T) *fx {
	t.Helper()
	now := time.Now()
	pki, err := releasetest.NewPKI(now)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	f := &fx{t: t, pki: pki, signer: pki.ReleaseSigner(pki.Signer), version: "1.2.0", secure: 2, now: now,
		dir: filepath.Join(tmp, "rel"), stateDir: filepath.Join(tmp, "state")}
	f.pol = release.Policy{Roots: pki.Roots(), Now: func() time.Time { return now }}
	return f
}

func (f *fx) write() {
	f.t.Helper()
	if _, err := releasetest.WriteRelease(context.Background(), f.dir, f.version, f.secure, f.signer); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fx) cert(issuer releasetest.Cert, spec releasetest.CertSpec) releasetest.Cert {
	f.t.Helper()
	c, err := f.pki.Issue(issuer, spec)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *fx) crl(issuer releasetest.Cert, this, next time.Time, revoked ...*x509.Certificate) *x509.RevocationList {
	f.t.Helper()
	crl, err := f.pki.CRL(issuer, this, next, revoked...)
	if err != nil {
		f.t.Fatal(err)
	}
	return crl
}

func (f *fx) edit(name string, fn func([]byte) []byte) {
	f.t.Helper()
	p := filepath.Join(f.dir, name)
	b, err := os.ReadFile(p)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, fn(b), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// accept records version/secure as accepted in the state dir, by verifying
// a release of that version.
func (f *fx) accept(version string, secure uint32) {
	f.t.Helper()
	g := *f
	g.dir = f.dir + "-" + version
	g.version, g.secure = version, secure
	g.write()
	pol := f.pol
	pol.StateDir = f.stateDir
	if _, err := release.Verify(context.Background(), g.dir, pol); err != nil {
		f.t.Fatalf("accepting %s: %v", version, err)
	}
}

func TestVerifyPolicy(t *testing.T) {
	t.Parallel()
	hour := time.Hour
	cases := []struct {
		name    string
		prepare func(f *fx) // before the release is written
		mutate  func(f *fx) // after
		want    release.Reason
		msg     string // substring of the one-line refusal
	}{
		{name: "valid"},
		{name: "valid with CRL not revoking", mutate: func(f *fx) {
			f.pol.CRLs = append(f.pol.CRLs, f.crl(f.pki.Intermediate, f.now.Add(-hour), f.now.Add(hour)))
			f.pol.RequireCRL = true
		}},
		{name: "signer revoked", mutate: func(f *fx) {
			f.pol.CRLs = append(f.pol.CRLs, f.crl(f.pki.Intermediate, f.now.Add(-hour), f.now.Add(hour), f.pki.Signer.Cert))
		}, want: release.ReasonRevoked, msg: `signer certificate "Line Signer" (serial 0x1003) revoked`},
		{name: "intermediate revoked by root CRL", mutate: func(f *fx) {
			f.pol.CRLs = append(f.pol.CRLs, f.crl(f.pki.Root, f.now.Add(-hour), f.now.Add(hour), f.pki.Intermediate.Cert))
		}, want: release.ReasonRevoked, msg: `intermediate certificate "Fuseline Test Release CA"`},
		{name: "expired signer", prepare: func(f *fx) {
			c := f.cert(f.pki.Intermediate, releasetest.CertSpec{CN: "Old Signer", NotBefore: f.now.Add(-48 * hour), NotAfter: f.now.Add(-hour)})
			f.signer = f.pki.ReleaseSigner(c)
		}, want: release.ReasonExpired, msg: `"Old Signer"`},
		{name: "signer expired since signing, checked now", mutate: func(f *fx) {
			f.pol.Now = func() time.Time { return f.now.Add(48 * hour) }
		}, want: release.ReasonExpired, msg: `signer certificate "Line Signer" expired`},
		{name: "signer expired since signing, checked at signing time", mutate: func(f *fx) {
			f.pol.Now = func() time.Time { return f.now.Add(48 * hour) }
			f.pol.ValidityAt = release.AtSigningTime
		}},
		{name: "signer not yet valid", prepare: func(f *fx) {
			c := f.cert(f.pki.Intermediate, releasetest.CertSpec{CN: "Future Signer", NotBefore: f.now.Add(-hour), NotAfter: f.now.Add(48 * hour)})
			f.signer = f.pki.ReleaseSigner(c)
		}, mutate: func(f *fx) {
			f.pol.Now = func() time.Time { return f.now.Add(-2 * hour) }
		}, want: release.ReasonExpired, msg: "not valid before"},
		{name: "wrong purpose serverAuth", prepare: func(f *fx) {
			c := f.cert(f.pki.Intermediate, releasetest.CertSpec{CN: "TLS Server", EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			f.signer = f.pki.ReleaseSigner(c)
		}, want: release.ReasonPurpose, msg: `"TLS Server" has no extended key usage codeSigning (has serverAuth)`},
		{name: "wrong purpose no EKU", prepare: func(f *fx) {
			c := f.cert(f.pki.Intermediate, releasetest.CertSpec{CN: "Plain", EKU: []x509.ExtKeyUsage{}})
			f.signer = f.pki.ReleaseSigner(c)
		}, want: release.ReasonPurpose, msg: "(has none)"},
		{name: "intermediate restricted to serverAuth", prepare: func(f *fx) {
			ica := f.cert(f.pki.Root, releasetest.CertSpec{CN: "TLS CA", CA: true, EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			c := f.cert(ica, releasetest.CertSpec{CN: "Signer Under TLS CA"})
			f.signer = release.Signer{Key: c.Key, Cert: c.Cert, Chain: []*x509.Certificate{ica.Cert}}
		}, want: release.ReasonPurpose, msg: "does not allow codeSigning"},
		{name: "tampered manifest", mutate: func(f *fx) {
			f.edit(release.ManifestName, func(b []byte) []byte {
				return bytes.Replace(b, []byte(`"version":"1.2.0"`), []byte(`"version":"1.2.1"`), 1)
			})
		}, want: release.ReasonSignature, msg: "is not the content manifest.json.p7s signed"},
		{name: "reformatted manifest", mutate: func(f *fx) {
			f.edit(release.ManifestName, func(b []byte) []byte {
				var out bytes.Buffer
				json.Indent(&out, b, "", "  ")
				return out.Bytes()
			})
		}, want: release.ReasonMalformed, msg: "manifest.json byte 1: want canonical JSON"},
		{name: "signature of another manifest", mutate: func(f *fx) {
			g := newFx(f.t)
			g.pki, g.signer = f.pki, f.signer
			g.version = "1.2.1"
			g.write()
			sig, _ := os.ReadFile(filepath.Join(g.dir, release.SignatureName))
			os.WriteFile(filepath.Join(f.dir, release.SignatureName), sig, 0o644)
		}, want: release.ReasonSignature},
		{name: "garbage signature", mutate: func(f *fx) {
			f.edit(release.SignatureName, func(b []byte) []byte { return b[:len(b)/2] })
		}, want: release.ReasonMalformed, msg: "is not a CMS SignedData"},
		{name: "unsigned", mutate: func(f *fx) {
			os.Remove(filepath.Join(f.dir, release.SignatureName))
		}, want: release.ReasonMissing, msg: "the release is not signed"},
		{name: "tampered image", mutate: func(f *fx) {
			f.edit("app.bin", func(b []byte) []byte { b[1000] ^= 1; return b })
		}, want: release.ReasonImage, msg: "app/factory app.bin (flash 0x10000) invalid: sha256 mismatch after 150000 bytes"},
		{name: "truncated image", mutate: func(f *fx) {
			f.edit("bootloader.bin", func(b []byte) []byte { return b[:19999] })
		}, want: release.ReasonImage, msg: "shorter than declared (20000 bytes declared, ended at byte 19999)"},
		{name: "image with extra bytes", mutate: func(f *fx) {
			f.edit("motor.bin", func(b []byte) []byte { return append(b, 0) })
		}, want: release.ReasonImage, msg: "subdevice motor.bin (sub-device motor @0x0) invalid: longer than declared"},
		{name: "missing image", mutate: func(f *fx) {
			os.Remove(filepath.Join(f.dir, "otadata.bin"))
		}, want: release.ReasonMissing, msg: "otadata otadata.bin (flash 0xd000): cannot open"},
		{name: "image is a FIFO", mutate: func(f *fx) {
			// Opening a FIFO with no writer would wait for good.
			p := filepath.Join(f.dir, "otadata.bin")
			os.Remove(p)
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				f.t.Fatal(err)
			}
		}, want: release.ReasonMissing, msg: "otadata otadata.bin (flash 0xd000): cannot open: otadata.bin: not a regular file (a FIFO)"},
		{name: "older version", prepare: func(f *fx) { f.accept("1.3.0", 2) },
			want: release.ReasonRollback, msg: `version 1.2.0 of "demo" is older than 1.3.0`},
		{name: "lower secure version", prepare: func(f *fx) { f.accept("1.1.0", 3) },
			want: release.ReasonRollback, msg: "secure_version 2 of \"demo\" is lower than 3"},
		{name: "same version again", prepare: func(f *fx) { f.accept("1.2.0", 2) }},
		{name: "newer than accepted", prepare: func(f *fx) { f.accept("1.2.0-rc.1", 1) }},
		{name: "untrusted root", mutate: func(f *fx) {
			other, err := releasetest.NewPKI(f.now)
			if err != nil {
				f.t.Fatal(err)
			}
			f.pol.Roots = other.Roots()
		}, want: release.ReasonUntrusted, msg: `signer certificate "Line Signer" (issuer CN=Fuseline Test Release CA,O=Fuseline Test) does not chain to a trusted root`},
		{name: "stale CRL refused by policy", mutate: func(f *fx) {
			f.pol.CRLs = append(f.pol.CRLs, f.crl(f.pki.Intermediate, f.now.Add(-48*hour), f.now.Add(-hour)))
		}, want: release.ReasonCRLStale, msg: `CRL of "Fuseline Test Release CA" is stale: next update was due`},
		{name: "stale CRL warned by policy", mutate: func(f *fx) {
			f.pol.CRLs = append(f.pol.CRLs, f.crl(f.pki.Intermediate, f.now.Add(-48*hour), f.now.Add(-hour)))
			f.pol.StaleCRL = release.StaleCRLWarn
		}},
		{name: "stale CRL that revokes is still revoked", mutate: func(f *fx) {
			f.pol.CRLs = append(f.pol.CRLs, f.crl(f.pki.Intermediate, f.now.Add(-48*hour), f.now.Add(-hour), f.pki.Signer.Cert))
			f.pol.StaleCRL = release.StaleCRLWarn
		}, want: release.ReasonRevoked},
		{name: "CRL not yet valid", mutate: func(f *fx) {
			f.pol.CRLs = append(f.pol.CRLs, f.crl(f.pki.Intermediate, f.now.Add(hour), f.now.Add(2*hour)))
		}, want: release.ReasonCRL, msg: "is not valid before"},
		{name: "CRL signed by an impostor with the issuer's name", mutate: func(f *fx) {
			other, err := releasetest.NewPKI(f.now)
			if err != nil {
				f.t.Fatal(err)
			}
			f.pol.CRLs = append(f.pol.CRLs, f.crl(other.Intermediate, f.now.Add(-hour), f.now.Add(hour)))
		}, want: release.ReasonCRL, msg: `CRL naming issuer "Fuseline Test Release CA" is not signed by that issuer`},
		{name: "CRL required but only the root's given", mutate: func(f *fx) {
			f.pol.CRLs = append(f.pol.CRLs, f.crl(f.pki.Root, f.now.Add(-hour), f.now.Add(hour)))
			f.pol.RequireCRL = true
		}, want: release.ReasonCRL, msg: `no CRL from "Fuseline Test Release CA", the issuer of signer "Line Signer"`},
		{name: "allowed signer name", mutate: func(f *fx) { f.pol.SignerNames = []string{"Someone", "Line Signer"} }},
		{name: "allowed signer by DN", mutate: func(f *fx) { f.pol.SignerNames = []string{"CN=Line Signer,O=Fuseline Test"} }},
		{name: "signer name not allowed", mutate: func(f *fx) { f.pol.SignerNames = []string{"Release Manager"} },
			want: release.ReasonSignerName, msg: `signer "Line Signer" is not an allowed signer (Release Manager)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFx(t)
			if tc.prepare != nil {
				tc.prepare(f)
			}
			f.write()
			if tc.mutate != nil {
				tc.mutate(f)
			}
			f.pol.StateDir = f.stateDir
			a, err := release.Verify(context.Background(), f.dir, f.pol)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if a.Manifest.Version != f.version || a.Signer == nil || len(a.Chain) != 3 {
					t.Fatalf("accepted %+v", a)
				}
				st, err := release.State{Dir: f.stateDir}.Load()
				if err != nil || st["demo"].Version != f.version {
					t.Fatalf("state after accept: %+v, %v", st, err)
				}
				if strings.Contains(tc.name, "warned") && len(a.Warnings) != 1 {
					t.Fatalf("warnings = %q, want the stale CRL", a.Warnings)
				}
				return
			}
			re, ok := errors.AsType[*release.RefusedError](err)
			if !ok {
				t.Fatalf("err = %v (%T), want *RefusedError %s", err, err, tc.want)
			}
			msg := err.Error()
			t.Logf("%s", msg)
			if re.Reason != tc.want {
				t.Fatalf("reason = %s, want %s (%s)", re.Reason, tc.want, msg)
			}
			if strings.ContainsAny(msg, "\n\t") || !strings.HasPrefix(msg, "release: refused ("+string(tc.want)+"): ") {
				t.Fatalf("not one clear line: %q", msg)
			}
			if !strings.Contains(msg, tc.msg) {
				t.Fatalf("message %q does not contain %q", msg, tc.msg)
			}
			// A refused release never moves the anti-rollback floor.
			st, err := release.State{Dir: f.stateDir}.Load()
			if err != nil {
				t.Fatal(err)
			}
			if got := st["demo"].Version; got == f.version && tc.want != release.ReasonRollback {
				t.Fatalf("refused release was recorded as accepted")
			}
		})
	}
}

func TestAuthenticateNeedsRoots(t *testing.T) {
	t.Parallel()
	f := newFx(t)
	f.write()
	m, _ := os.ReadFile(filepath.Join(f.dir, release.ManifestName))
	s, _ := os.ReadFile(filepath.Join(f.dir, release.SignatureName))
	_, err := release.Authenticate(m, s, release.Policy{})
	if err == nil || !strings.Contains(err.Error(), "no trust anchors") {
		t.Fatalf("err = %v", err)
	}
	if _, ok := errors.AsType[*release.RefusedError](err); ok {
		t.Fatal("a policy without roots is a configuration error, not a refusal")
	}
}

// Finish must notice a manifest or signature swapped after Open, even for
// another validly signed release.
func TestFinishDetectsChange(t *testing.T) {
	t.Parallel()
	for _, name := range []string{release.ManifestName, release.SignatureName} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFx(t)
			f.write()
			g := *f
			g.dir = f.dir + "-b"
			g.version = "1.2.1"
			g.write()
			ctx := context.Background()
			f.pol.StateDir = f.stateDir
			r, err := release.Open(ctx, f.dir, f.pol)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if err := r.VerifyFiles(ctx); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(filepath.Join(g.dir, name))
			os.WriteFile(filepath.Join(f.dir, name), b, 0o644)
			_, err = r.Finish(ctx)
			re, ok := errors.AsType[*release.RefusedError](err)
			if !ok || re.Reason != release.ReasonChanged || !strings.Contains(err.Error(), name+" changed") {
				t.Fatalf("err = %v", err)
			}
			if st, _ := (release.State{Dir: f.stateDir}).Load(); len(st) != 0 {
				t.Fatalf("state written after a failed Finish: %v", st)
			}
		})
	}
}
