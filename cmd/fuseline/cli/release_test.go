package cli

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fuseline/esp/secureboot"
	"fuseline/release"
	"fuseline/release/releasetest"
)

func relRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

// relFx is a PKI written as PEM files and source images for one release.
type relFx struct {
	t    *testing.T
	pki  *releasetest.PKI
	tmp  string // PEM files live here
	src  string
	opts release.CreateOptions
}

func newRelFx(t *testing.T) *relFx {
	t.Helper()
	pki, err := releasetest.NewPKI(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f := &relFx{t: t, pki: pki, tmp: t.TempDir(), src: t.TempDir()}
	if err := pki.WritePEMs(f.tmp); err != nil {
		t.Fatal(err)
	}
	if f.opts, err = releasetest.Options(f.src, "1.2.0", 2); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *relFx) path(name string) string { return filepath.Join(f.tmp, name) }

func (f *relFx) write(name string, b []byte) string {
	f.t.Helper()
	p := f.path(name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// createArgs are the `release create` arguments for the fixture's sources.
func (f *relFx) createArgs(dir, version, secure string) []string {
	args := []string{"release", "create", "--chip", "esp32s3", "--product", "demo", "--version", version,
		"--secure-version", secure, "--created", "2026-11-21T10:00:00Z", "-o", dir}
	for _, s := range f.opts.Files {
		target := fmt.Sprintf("0x%x", s.Offset)
		if s.Role == release.RoleSubdevice {
			target = s.Device
		}
		args = append(args, "--file", string(s.Role)+":"+target+":"+s.Source)
	}
	return args
}

// release creates and signs a release with the signer cert and key files.
func (f *relFx) release(dir, version, secure, cert, key string) {
	f.t.Helper()
	if code, out, errs := relRun(f.t, f.createArgs(dir, version, secure)...); code != 0 {
		f.t.Fatalf("create: %d\n%s%s", code, out, errs)
	}
	if code, out, errs := relRun(f.t, "release", "sign", "--key", key, "--cert", cert, "--chain", f.path("chain.pem"), dir); code != 0 {
		f.t.Fatalf("sign: %d\n%s%s", code, out, errs)
	}
}

func TestReleaseCLIFlow(t *testing.T) {
	t.Parallel()
	f := newRelFx(t)
	dir := filepath.Join(t.TempDir(), "rel")
	state := filepath.Join(t.TempDir(), "state")

	code, out, errs := relRun(t, f.createArgs(dir, "1.2.0", "2")...)
	if code != ExitOK || !strings.Contains(out, "created "+dir+": demo 1.2.0 (esp32s3, secure_version 2), 5 files") ||
		!strings.Contains(out, "app/factory      flash 0x10000") || !strings.Contains(out, "sub-device motor @0x0") {
		t.Fatalf("create: %d\n%s%s", code, out, errs)
	}
	code, out, _ = relRun(t, "release", "inspect", dir)
	if code != ExitOK || !strings.Contains(out, "signature       none (manifest.json.p7s missing): unsigned") {
		t.Fatalf("inspect unsigned: %d\n%s", code, out)
	}
	code, _, errs = relRun(t, "release", "verify", "--trust", f.path("root.pem"), dir)
	if code != ExitFail || errs != "fuseline: release: refused (missing-file): manifest.json.p7s not found: the release is not signed\n" {
		t.Fatalf("verify unsigned: %d %q", code, errs)
	}

	code, out, errs = relRun(t, "release", "sign", "--key", f.path("signer.key"), "--cert", f.path("signer.pem"), "--chain", f.path("chain.pem"), dir)
	if code != ExitOK || !strings.Contains(out, `signed `+filepath.Join(dir, "manifest.json.p7s")+` by "CN=Line Signer,O=Fuseline Test"`) {
		t.Fatalf("sign: %d\n%s%s", code, out, errs)
	}

	code, out, _ = relRun(t, "release", "inspect", "--json", dir)
	var ins struct {
		Manifest  release.Manifest
		Signature struct {
			Signer       string
			Detached     bool
			Certificates []string
		}
		Verified bool
	}
	if code != ExitOK || json.Unmarshal([]byte(out), &ins) != nil || ins.Signature.Signer != "CN=Line Signer,O=Fuseline Test" ||
		!ins.Signature.Detached || len(ins.Signature.Certificates) != 2 || ins.Verified || ins.Manifest.Version != "1.2.0" {
		t.Fatalf("inspect --json: %d\n%s", code, out)
	}
	code, out, _ = relRun(t, "release", "inspect", dir)
	if code != ExitOK || !strings.Contains(out, "signer          CN=Line Signer,O=Fuseline Test (serial 0x1003") ||
		!strings.Contains(out, "(not verified") {
		t.Fatalf("inspect: %d\n%s", code, out)
	}

	code, out, errs = relRun(t, "release", "verify", "--trust", f.path("root.pem"), "--state", state, "--signer-name", "Line Signer", dir)
	if code != ExitOK || out != `valid: demo 1.2.0 (esp32s3, secure_version 2) signed by "CN=Line Signer,O=Fuseline Test", 5 files (211264 bytes) verified`+"\n" || errs != "" {
		t.Fatalf("verify: %d\n%q\n%s", code, out, errs)
	}
	code, out, _ = relRun(t, "release", "verify", "--json", "--trust", f.path("root.pem"), "--state", state, dir)
	var vr relVerifyResult
	if code != ExitOK || json.Unmarshal([]byte(out), &vr) != nil || !vr.Valid || len(vr.Chain) != 3 || vr.Files != 5 || !vr.StateUpdated {
		t.Fatalf("verify --json: %d\n%s", code, out)
	}

	// An older release after this one is refused by the station's state.
	old := filepath.Join(t.TempDir(), "old")
	f2 := *f
	f2.opts, _ = releasetest.Options(t.TempDir(), "1.1.0", 2)
	f2.release(old, "1.1.0", "2", f.path("signer.pem"), f.path("signer.key"))
	code, out, errs = relRun(t, "release", "verify", "--json", "--trust", f.path("root.pem"), "--state", state, old)
	if code != ExitFail || !strings.Contains(out, `"reason": "rollback"`) ||
		!strings.HasPrefix(errs, `fuseline: release: refused (rollback): version 1.1.0 of "demo" is older than 1.2.0`) {
		t.Fatalf("older: %d\n%s%s", code, out, errs)
	}
}

// Every refusal is exit 1 with exactly one line on stderr naming the reason.
func TestReleaseVerifyRefusals(t *testing.T) {
	t.Parallel()
	now := time.Now()
	cases := []struct {
		name  string
		setup func(f *relFx, dir string) []string // returns extra verify flags
		code  int
		line  string // prefix of the stderr line
		warn  string
	}{
		{name: "signer revoked", setup: func(f *relFx, dir string) []string {
			f.release(dir, "1.2.0", "2", f.path("signer.pem"), f.path("signer.key"))
			crl, _ := f.pki.CRL(f.pki.Intermediate, now.Add(-time.Hour), now.Add(time.Hour), f.pki.Signer.Cert)
			return []string{"--crl", f.write("crl.pem", releasetest.CRLPEM(crl))}
		}, code: 1, line: `fuseline: release: refused (revoked): signer certificate "Line Signer" (serial 0x1003) revoked`},
		{name: "CRL in DER, not revoking", setup: func(f *relFx, dir string) []string {
			f.release(dir, "1.2.0", "2", f.path("signer.pem"), f.path("signer.key"))
			crl, _ := f.pki.CRL(f.pki.Intermediate, now.Add(-time.Hour), now.Add(time.Hour))
			return []string{"--crl", f.write("crl.der", crl.Raw)}
		}, code: 0},
		{name: "expired signer", setup: func(f *relFx, dir string) []string {
			c, _ := f.pki.Issue(f.pki.Intermediate, releasetest.CertSpec{CN: "Old Signer", NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)})
			key, _ := releasetest.KeyPEM(c.Key)
			f.release(dir, "1.2.0", "2", f.write("old.pem", releasetest.CertPEM(c.Cert)), f.write("old.key", key))
			return nil
		}, code: 1, line: `fuseline: release: refused (expired): signer certificate "Old Signer" was not valid at signing time`},
		{name: "wrong purpose", setup: func(f *relFx, dir string) []string {
			c, _ := f.pki.Issue(f.pki.Intermediate, releasetest.CertSpec{CN: "Web", EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			key, _ := releasetest.KeyPEM(c.Key)
			f.release(dir, "1.2.0", "2", f.write("web.pem", releasetest.CertPEM(c.Cert)), f.write("web.key", key))
			return nil
		}, code: 1, line: `fuseline: release: refused (wrong-purpose): signer certificate "Web" has no extended key usage codeSigning (has serverAuth)`},
		{name: "tampered manifest", setup: func(f *relFx, dir string) []string {
			f.release(dir, "1.2.0", "2", f.path("signer.pem"), f.path("signer.key"))
			p := filepath.Join(dir, "manifest.json")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte(`"secure_version":2`), []byte(`"secure_version":9`), 1), 0o644)
			return nil
		}, code: 1, line: "fuseline: release: refused (bad-signature): manifest.json (sha256 "},
		{name: "tampered image", setup: func(f *relFx, dir string) []string {
			f.release(dir, "1.2.0", "2", f.path("signer.pem"), f.path("signer.key"))
			p := filepath.Join(dir, "partition-table.bin")
			b, _ := os.ReadFile(p)
			b[7] ^= 0xff
			os.WriteFile(p, b, 0o644)
			return nil
		}, code: 1, line: "fuseline: release: refused (image): partition-table partition-table.bin (flash 0x8000) invalid: sha256 mismatch"},
		{name: "untrusted root", setup: func(f *relFx, dir string) []string {
			f.release(dir, "1.2.0", "2", f.path("signer.pem"), f.path("signer.key"))
			other, _ := releasetest.NewPKI(now)
			return []string{"--trust", f.write("other-root.pem", releasetest.CertPEM(other.Root.Cert))}
		}, code: 1, line: `fuseline: release: refused (untrusted): signer certificate "Line Signer"`},
		{name: "stale CRL refused", setup: func(f *relFx, dir string) []string {
			f.release(dir, "1.2.0", "2", f.path("signer.pem"), f.path("signer.key"))
			crl, _ := f.pki.CRL(f.pki.Intermediate, now.Add(-48*time.Hour), now.Add(-time.Hour))
			return []string{"--crl", f.write("crl.pem", releasetest.CRLPEM(crl))}
		}, code: 1, line: `fuseline: release: refused (crl-stale): CRL of "Fuseline Test Release CA" is stale`},
		{name: "stale CRL warned", setup: func(f *relFx, dir string) []string {
			f.release(dir, "1.2.0", "2", f.path("signer.pem"), f.path("signer.key"))
			crl, _ := f.pki.CRL(f.pki.Intermediate, now.Add(-48*time.Hour), now.Add(-time.Hour))
			return []string{"--crl", f.write("crl.pem", releasetest.CRLPEM(crl)), "--stale-crl", "warn"}
		}, code: 0, warn: `warning: CRL of "Fuseline Test Release CA" is stale`},
		{name: "signer name", setup: func(f *relFx, dir string) []string {
			f.release(dir, "1.2.0", "2", f.path("signer.pem"), f.path("signer.key"))
			return []string{"--signer-name", "Release Manager"}
		}, code: 1, line: `fuseline: release: refused (signer-name): signer "Line Signer" is not an allowed signer`},
		{name: "older version", setup: func(f *relFx, dir string) []string {
			state := filepath.Join(f.tmp, "state")
			newer := dir + "-newer"
			older := f.opts
			f.opts, _ = releasetest.Options(f.t.TempDir(), "1.3.0", 2) // an app that says 1.3.0
			f.release(newer, "1.3.0", "2", f.path("signer.pem"), f.path("signer.key"))
			f.opts = older
			if code, _, errs := relRun(f.t, "release", "verify", "--trust", f.path("root.pem"), "--state", state, newer); code != 0 {
				f.t.Fatal(errs)
			}
			f.release(dir, "1.2.0", "2", f.path("signer.pem"), f.path("signer.key"))
			return []string{"--state", state}
		}, code: 1, line: `fuseline: release: refused (rollback): version 1.2.0 of "demo" is older than 1.3.0`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newRelFx(t)
			dir := filepath.Join(t.TempDir(), "rel")
			extra := tc.setup(f, dir)
			args := []string{"release", "verify"}
			if !strings.Contains(strings.Join(extra, " "), "--trust") {
				args = append(args, "--trust", f.path("root.pem"))
			}
			args = append(append(args, extra...), dir)
			code, out, errs := relRun(t, args...)
			t.Logf("exit %d: %s%s", code, out, errs)
			if code != tc.code {
				t.Fatalf("exit %d, want %d", code, tc.code)
			}
			if tc.code == 0 {
				if !strings.HasPrefix(out, "valid: demo 1.2.0") || !strings.Contains(errs, tc.warn) {
					t.Fatalf("out %q err %q", out, errs)
				}
				return
			}
			if out != "" || strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, tc.line) {
				t.Fatalf("stderr %q, want one line starting %q", errs, tc.line)
			}
		})
	}
}

func TestReleaseCLIUsage(t *testing.T) {
	t.Parallel()
	f := newRelFx(t)
	dir := filepath.Join(t.TempDir(), "rel")
	f.release(dir, "1.2.0", "2", f.path("signer.pem"), f.path("signer.key"))
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"release", "verify", dir}, "needs --trust"},
		{[]string{"release", "verify", "--trust", f.path("nope.pem"), dir}, "read --trust"},
		{[]string{"release", "verify", "--trust", f.path("root.pem"), "--stale-crl", "maybe", dir}, "want refuse or warn"},
		{[]string{"release", "verify", "--trust", f.path("root.pem"), dir + "-missing"}, "release directory"},
		{[]string{"release", "verify", "--trust", f.path("signer.key"), dir}, "no certificate"},
		{[]string{"release", "sign", "--cert", f.path("signer.pem"), dir}, "exactly one of --key and --pkcs11"},
		{[]string{"release", "sign", "--key", f.path("signer.key"), "--pkcs11", "pkcs11:token=x", "--cert", f.path("signer.pem"), dir}, "exactly one of"},
		{[]string{"release", "sign", "--key", f.path("signer.key"), dir}, "needs --cert"},
		{[]string{"release", "sign", "--key", f.path("root.pem"), "--cert", f.path("signer.pem"), dir}, "no PEM private key"},
		{[]string{"release", "sign", "--key", f.path("intermediate.pem"), "--cert", f.path("signer.pem"), dir}, "no PEM private key"},
		{[]string{"release", "sign", "--pkcs11", "pkcs11:token=station;object=signer?pin-value=999999", "--cert", f.path("signer.pem"), dir}, "names no module"},
		{[]string{"release", "sign", "--pkcs11", "pkcs11:tokn=station?pin-value=999999", "--cert", f.path("signer.pem"), dir}, `unknown URI attribute "tokn"`},
		{[]string{"release", "create", "--chip", "esp32s3", "-o", dir + "2"}, "needs --product, at least one --file"},
		{[]string{"release", "create", "--chip", "esp32s3", "--product", "p", "--version", "1.0.0", "--file", "boot:0:x", "-o", dir + "2"}, `unknown role "boot"`},
		{[]string{"release", "create", "--chip", "esp32s3", "--product", "p", "--version", "1.0.0", "--file", "bootloader:zero:x", "-o", dir + "2"}, `offset "zero"`},
		{[]string{"release", "create", "--chip", "esp32s3", "--product", "p", "--version", "1.0", "--file", "bootloader:0:" + f.opts.Files[0].Source, "-o", dir + "2"}, "semantic version"},
		{[]string{"release", "create", "--chip", "esp32s3", "--product", "p", "--version", "1.0.0", "--file", "bootloader:0x1001:" + f.opts.Files[0].Source, "-o", dir + "2"}, "multiple of 0x1000"},
		{[]string{"release", "inspect", dir + "-missing"}, "read manifest"},
	}
	for _, tc := range cases {
		code, out, errs := relRun(t, tc.args...)
		if code != ExitUsage || !strings.Contains(errs, tc.want) || strings.Contains(errs+out, "999999") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args[1:], code, errs, tc.want)
		}
	}
	// A manifest that is not canonical is an invalid input: exit 1.
	p := filepath.Join(dir, "manifest.json")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, append(b, '\n'), 0o644)
	if code, _, errs := relRun(t, "release", "inspect", dir); code != ExitFail || !strings.Contains(errs, "byte ") {
		t.Errorf("inspect of a reformatted manifest: %d %q", code, errs)
	}
	if code, _, errs := relRun(t, "release", "sign", "--key", f.path("signer.key"), "--cert", f.path("signer.pem"), dir); code != ExitFail {
		t.Errorf("sign of a reformatted manifest: %d %q", code, errs)
	}
}

// Sub-device targets with an address, and Secure Boot signing with PEM keys.
func TestReleaseCreateSubdeviceAndSB(t *testing.T) {
	t.Parallel()
	f := newRelFx(t)
	dir := filepath.Join(t.TempDir(), "rel")
	key := filepath.Join("..", "..", "..", "release", "testdata", "key1.pem")
	// No --chip, --version, --secure-version: the app's header and
	// descriptor give them.
	code, out, errs := relRun(t, "release", "create", "--product", "p",
		"--file", "app/ota_0:0x20000:"+f.opts.Files[3].Source, "--file", "subdevice:radio@0x1000:"+f.opts.Files[4].Source,
		"--sb-key", key, "-o", dir, "--json")
	var m release.Manifest
	if code != 0 || json.Unmarshal([]byte(out), &m) != nil {
		t.Fatalf("%d %s %s", code, out, errs)
	}
	if m.Chip != "esp32s3" || m.Version != "1.2.0" || m.SecureVersion != 2 {
		t.Fatalf("metadata not read from the app: chip %s version %s secure_version %d", m.Chip, m.Version, m.SecureVersion)
	}
	if m.Files[1].Device != "radio" || m.Files[1].Offset != 0x1000 || m.Files[0].Size != int64(secureboot.SignedLength(150000)) {
		t.Fatalf("manifest %+v", m.Files)
	}
}

// release create and release verify refuse a manifest the images
// contradict (the fixture's app is an esp32s3 app 1.2.0, secure_version
// 2): one line naming the field, the image and both values.
func TestReleaseMetadataMismatch(t *testing.T) {
	t.Parallel()
	f := newRelFx(t)
	dir := filepath.Join(t.TempDir(), "rel")
	code, out, errs := relRun(t, f.createArgs(dir, "9.9.9", "3")...)
	if code != ExitUsage || errs != "fuseline: release: manifest version \"9.9.9\", but app.bin's app descriptor version is \"1.2.0\"\n" {
		t.Fatalf("create --version 9.9.9: %d %q %q", code, out, errs)
	}
	code, out, errs = relRun(t, f.createArgs(dir, "1.2.0", "3")...)
	if code != ExitUsage || errs != "fuseline: release: manifest secure_version 3, but app.bin's app descriptor secure_version is 2\n" {
		t.Fatalf("create --secure-version 3: %d %q %q", code, out, errs)
	}
	args := f.createArgs(dir, "1.2.0", "2")
	args[3] = "esp32c3" // --chip
	code, out, errs = relRun(t, args...)
	if code != ExitUsage || errs != "fuseline: release: manifest chip esp32c3, but bootloader.bin's image header chip_id is 0x0009 (esp32s3)\n" {
		t.Fatalf("create --chip esp32c3: %d %q %q", code, out, errs)
	}
	// A consistent release whose manifest is changed and signed again:
	// verify refuses it (exit 1).
	f.release(dir, "1.2.0", "2", f.path("signer.pem"), f.path("signer.key"))
	p := filepath.Join(dir, release.ManifestName)
	b, _ := os.ReadFile(p)
	os.WriteFile(p, []byte(strings.Replace(string(b), `"version":"1.2.0"`, `"version":"9.9.9"`, 1)), 0o644)
	if code, out, errs := relRun(t, "release", "sign", "--key", f.path("signer.key"), "--cert", f.path("signer.pem"), "--chain", f.path("chain.pem"), dir); code != 0 {
		t.Fatalf("sign: %d\n%s%s", code, out, errs)
	}
	code, out, errs = relRun(t, "release", "verify", "--trust", f.path("root.pem"), dir)
	if code != ExitFail || errs != "fuseline: release: refused (metadata): manifest version \"9.9.9\", but app.bin's app descriptor version is \"1.2.0\"\n" {
		t.Fatalf("verify: %d %q %q", code, out, errs)
	}
}
