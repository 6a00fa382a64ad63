package cli

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func feTestdata(name string) string { return filepath.Join("testdata", "flashenc", name) }

func TestFlashencCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// §8 known answer for the classic ESP32: key 00…1F, plaintext 00…1F.
	seq32 := make([]byte, 32)
	for i := range seq32 {
		seq32[i] = byte(i)
	}
	seqPath := filepath.Join(dir, "seq32.bin")
	if err := os.WriteFile(seqPath, seq32, 0o644); err != nil {
		t.Fatal(err)
	}
	classicWant, _ := hex.DecodeString("a354ea55e9d9d83cd027e80a6b03a53cfc3886d3f8090e2da27c51dbc4a61351")

	tests := []struct {
		name   string
		args   []string // after "flashenc"; "-o OUT" is appended
		in     string
		want   []byte
		scheme string
	}{
		{"s3 xts-128", []string{"encrypt", "--chip", "esp32s3", "--key", feTestdata("key256.bin"), "--address", "0x10000"},
			feTestdata("plain-8k.bin"), sbRead(t, feTestdata("enc-key256-plain-8k-0x10000.bin")), "xts-aes-128"},
		{"s3 xts-256 from key length", []string{"encrypt", "--chip", "esp32s3", "--key", feTestdata("key512.bin"), "--address", "65536"},
			feTestdata("plain-8k.bin"), sbRead(t, feTestdata("enc-key512-plain-8k-0x10000.bin")), "xts-aes-256"},
		{"c3 decrypt", []string{"decrypt", "--chip", "esp32c3", "--key", feTestdata("key256.bin"), "--address", "0x10000"},
			feTestdata("enc-key256-plain-8k-0x10000.bin"), sbRead(t, feTestdata("plain-8k.bin")), "xts-aes-128"},
		{"scheme without chip", []string{"decrypt", "--scheme", "xts-aes-256", "--key", feTestdata("key512.bin"), "--address", "0x10000"},
			feTestdata("enc-key512-plain-8k-0x10000.bin"), sbRead(t, feTestdata("plain-8k.bin")), "xts-aes-256"},
		{"esp32 classic", []string{"encrypt", "--chip", "esp32", "--key", seqPath, "--address", "0x1000", "--crypt-config", "0xF"},
			seqPath, classicWant, "aes-256-classic"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(dir, "out"+string(rune('a'+i)))
			code, stdout, errOut := sbfeRun(t, append(append([]string{"flashenc"}, tc.args...), tc.in, "-o", out)...)
			if code != ExitOK {
				t.Fatalf("exit %d: %q %q", code, stdout, errOut)
			}
			if !strings.Contains(stdout, tc.scheme) {
				t.Errorf("stdout %q does not name %s", stdout, tc.scheme)
			}
			if got := sbRead(t, out); !bytes.Equal(got, tc.want) {
				t.Errorf("output differs from the reference (%d vs %d bytes)", len(got), len(tc.want))
			}
		})
	}

	bad := []struct {
		name string
		args []string
		msg  string
	}{
		{"c3 has no xts-256", []string{"encrypt", "--chip", "esp32c3", "--key", feTestdata("key512.bin"), "--address", "0"}, "esp32c3 does not implement"},
		{"c3 scheme check", []string{"encrypt", "--chip", "esp32c3", "--scheme", "xts-aes-256", "--key", feTestdata("key512.bin")}, "does not implement"},
		{"unaligned address", []string{"encrypt", "--chip", "esp32s3", "--key", feTestdata("key256.bin"), "--address", "0x10008"}, "address 0x10008"},
		{"crypt-config on xts", []string{"encrypt", "--chip", "esp32s3", "--key", feTestdata("key256.bin"), "--crypt-config", "0xF"}, "aes-256-classic only"},
		{"no chip", []string{"encrypt", "--key", feTestdata("key256.bin")}, "--chip"},
		{"unknown chip", []string{"encrypt", "--chip", "esp8266", "--key", feTestdata("key256.bin")}, "esp8266"},
		{"bad scheme", []string{"encrypt", "--scheme", "rot13", "--key", feTestdata("key256.bin")}, "rot13"},
		{"no key", []string{"encrypt", "--chip", "esp32s3"}, "--key"},
	}
	key := sbRead(t, feTestdata("key512.bin"))
	for _, tc := range bad {
		code, stdout, errOut := sbfeRun(t, append(append([]string{"flashenc"}, tc.args...), feTestdata("plain-8k.bin"), "-o", filepath.Join(dir, "bad"))...)
		if code != ExitUsage || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2 mentioning %q", tc.name, code, stdout, errOut, tc.msg)
		}
		if strings.Contains(errOut, hex.EncodeToString(key[:8])) {
			t.Errorf("%s: stderr leaks key bytes", tc.name)
		}
	}
}
