package cli

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sbfeRun runs the CLI in-process for the secureboot and flashenc tests.
func sbfeRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func sbTestdata(name string) string { return filepath.Join("testdata", "secureboot", name) }

func sbRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSecurebootDigestCLI(t *testing.T) {
	t.Parallel()
	tests := []struct{ key, digest string }{
		{"key1.pem", "key1.digest.bin"},
		{"key1.pub.pem", "key1.digest.bin"},
		{"key2.pub.pem", "key2.digest.bin"},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			t.Parallel()
			want := hex.EncodeToString(sbRead(t, sbTestdata(tc.digest)))
			code, out, errOut := sbfeRun(t, "secureboot", "digest", sbTestdata(tc.key))
			if code != ExitOK || out != want+"\n" {
				t.Fatalf("exit %d, stdout %q (stderr %q), want %s", code, out, errOut, want)
			}
			code, out, _ = sbfeRun(t, "secureboot", "digest", "--json", sbTestdata(tc.key))
			var j struct{ Digest string }
			if code != ExitOK || json.Unmarshal([]byte(out), &j) != nil || j.Digest != want {
				t.Errorf("--json: exit %d, %q", code, out)
			}
		})
	}
}

func TestSecurebootVerifyCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tampered := sbRead(t, sbTestdata("signed-key1-key2.bin"))
	tampered[4242] ^= 0x80
	tamperedPath := filepath.Join(dir, "tampered.bin")
	if err := os.WriteFile(tamperedPath, tampered, 0o644); err != nil {
		t.Fatal(err)
	}
	k1, k2 := sbTestdata("key1.pub.pem"), sbTestdata("key2.pub.pem")
	tests := []struct {
		name    string
		args    []string
		code    int
		wantOut string // substring of stdout
		wantErr string // substring of stderr
	}{
		{"both keys", []string{"--key", k1, "--key", k2, sbTestdata("signed-key1-key2.bin")}, ExitOK, "valid: signature block 0 verified with " + k1, ""},
		{"key2 only", []string{"--key", k2, sbTestdata("signed-key1-key2.bin")}, ExitOK, "signature block 1", ""},
		{"private key as trust", []string{"--key", sbTestdata("key1.pem"), sbTestdata("signed-key1.bin")}, ExitOK, "valid", ""},
		{"tampered", []string{"--key", k1, "--key", k2, tamperedPath}, ExitFail, "", "signature does not verify"},
		{"wrong key", []string{"--key", k2, sbTestdata("signed-key1.bin")}, ExitFail, "", "key is not trusted"},
		{"unsigned", []string{"--key", k1, sbTestdata("payload.bin")}, ExitFail, "", "no valid signature block"},
		{"no key", []string{sbTestdata("signed-key1.bin")}, ExitUsage, "", "--key"},
		{"missing key file", []string{"--key", filepath.Join(dir, "nope.pem"), sbTestdata("signed-key1.bin")}, ExitUsage, "", "nope.pem"},
		{"not a key", []string{"--key", sbTestdata("payload.bin"), sbTestdata("signed-key1.bin")}, ExitUsage, "", "no PEM key block"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := sbfeRun(t, append([]string{"secureboot", "verify"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", code, tc.code, out, errOut)
			}
			if !strings.Contains(out, tc.wantOut) || !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("stdout %q / stderr %q, want %q / %q", out, errOut, tc.wantOut, tc.wantErr)
			}
			if tc.code == ExitFail && strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("reason is not one line: %q", errOut)
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct {
			file  string
			code  int
			valid bool
			block int
		}{
			{sbTestdata("signed-key1-key2.bin"), ExitOK, true, 1},
			{tamperedPath, ExitFail, false, -1},
		} {
			code, out, _ := sbfeRun(t, "secureboot", "verify", "--json", "--key", k2, c.file)
			var rep verifyReport
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("%s: %v in %q", c.file, err, out)
			}
			if code != c.code || rep.Valid != c.valid || rep.Block != c.block || len(rep.Blocks) != 3 {
				t.Errorf("%s: exit %d, %+v", c.file, code, rep)
			}
			if !c.valid && rep.Reason == "" {
				t.Errorf("%s: invalid without a reason", c.file)
			}
		}
	})
}

// Signing through the CLI, then appending a second key: each verifies, and
// the secureboot info listing shows both digests in order.
func TestSecurebootSignCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	one, two := filepath.Join(dir, "one.bin"), filepath.Join(dir, "two.bin")
	code, out, errOut := sbfeRun(t, "secureboot", "sign", "--key", sbTestdata("key1.pem"), sbTestdata("payload.bin"), "-o", one)
	if code != ExitOK || !strings.Contains(out, "signature sector at 0x5000 with 1 block(s)") {
		t.Fatalf("sign: exit %d, %q %q", code, out, errOut)
	}
	if got, want := len(sbRead(t, one)), len(sbRead(t, sbTestdata("signed-key1.bin"))); got != want {
		t.Errorf("signed length %d, espsecure's %d", got, want)
	}
	code, out, errOut = sbfeRun(t, "secureboot", "sign", "--key", sbTestdata("key2.pem"), one, "-o", two)
	if code != ExitOK || !strings.Contains(out, "2 block(s)") {
		t.Fatalf("append: exit %d, %q %q", code, out, errOut)
	}
	for _, c := range []struct{ key, block string }{{"key1.pub.pem", "block 0"}, {"key2.pub.pem", "block 1"}} {
		code, out, errOut := sbfeRun(t, "secureboot", "verify", "--key", sbTestdata(c.key), two)
		if code != ExitOK || !strings.Contains(out, c.block) {
			t.Errorf("verify with %s: exit %d, %q %q", c.key, code, out, errOut)
		}
	}
	code, out, _ = sbfeRun(t, "secureboot", "info", two)
	d1 := hex.EncodeToString(sbRead(t, sbTestdata("key1.digest.bin")))
	d2 := hex.EncodeToString(sbRead(t, sbTestdata("key2.digest.bin")))
	if code != ExitOK || !strings.Contains(out, "block 0: RSA-3072, key digest "+d1) || !strings.Contains(out, "block 1: RSA-3072, key digest "+d2) {
		t.Errorf("info: exit %d, %q", code, out)
	}

	bad := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"public key cannot sign", []string{"--key", sbTestdata("key1.pub.pem"), sbTestdata("payload.bin"), "-o", filepath.Join(dir, "x")}, ExitUsage, "private key is needed"},
		{"no output", []string{"--key", sbTestdata("key1.pem"), sbTestdata("payload.bin")}, ExitUsage, "-o"},
		{"sector full", []string{"--key", sbTestdata("key1.pem"), "--key", sbTestdata("key2.pem"), two, "-o", filepath.Join(dir, "y")}, ExitFail, "sector is full"},
	}
	for _, tc := range bad {
		code, out, errOut := sbfeRun(t, append([]string{"secureboot", "sign"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %d mentioning %q", tc.name, code, out, errOut, tc.code, tc.msg)
		}
	}
}
