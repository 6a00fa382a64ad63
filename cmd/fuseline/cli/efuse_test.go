package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fuseline/esp/chip"
	"fuseline/esp/efuse"
)

func runEfuse(t *testing.T, args ...string) (code int, out, errOut string) {
	t.Helper()
	var o, e bytes.Buffer
	code = Run(context.Background(), append([]string{"efuse"}, args...), Stdio{In: strings.NewReader(""), Out: &o, Err: &e})
	return code, o.String(), e.String()
}

func TestEfuseDecodeText(t *testing.T) {
	t.Parallel()
	for _, c := range []string{"esp32s3", "esp32c3"} {
		t.Run(c, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runEfuse(t, "decode", "--chip", c, "testdata/efuse/"+c+".provisioned.dump.txt")
			if code != ExitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, want := range []string{
				"(dump, " + c + ")",
				"flash encryption:  on (permanent)",
				"secure boot:       on",
				"secure version:    2",
				"BLOCK_KEY0  XTS_AES_128_KEY      read-protected, write-protected",
				"BLOCK_KEY2  SECURE_BOOT_DIGEST1  write-protected",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			rows := map[string][]string{}
			for _, l := range strings.Split(out, "\n") {
				if f := strings.Fields(l); len(f) >= 3 {
					rows[f[0]] = f[1:]
				}
			}
			for name, want := range map[string]string{
				"SPI_BOOT_CRYPT_CNT": "RW 7 flash encryption on permanently",
				"KEY_PURPOSE_0":      "R- 4 XTS_AES_128_KEY",
				"SECURE_VERSION":     "RW 3 anti-rollback version 2",
				"BLOCK_KEY0":         "-- (read-protected) XTS_AES_128_KEY",
				"BLOCK_KEY1":         "R- 7849fc6ed6801632… SECURE_BOOT_DIGEST0",
				"RD_DIS":             "RW 1 hides BLOCK_KEY0",
			} {
				if got := strings.Join(rows[name], " "); got != want {
					t.Errorf("%s row = %q, want %q", name, got, want)
				}
			}
			if strings.Contains(out, "DIS_RTC_RAM_BOOT") {
				t.Error("hidden field shown without --all")
			}
		})
	}
}

func TestEfuseDecodeJSONRaw(t *testing.T) {
	t.Parallel()
	dump, err := os.ReadFile("testdata/efuse/esp32s3.provisioned.dump.txt")
	if err != nil {
		t.Fatal(err)
	}
	img, err := efuse.ParseDump(chip.ESP32S3, dump)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := img.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "s3.efuse.bin")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runEfuse(t, "decode", "--chip", "esp32s3", "--json", "--all", path)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep efuseReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if rep.Format != "raw" || rep.Chip != "esp32s3" || !rep.Summary.FlashEncryptionPermanent || rep.Summary.SecureVersion != 2 || len(rep.Summary.Keys) != 6 {
		t.Errorf("report %+v", rep.Summary)
	}
	byName := map[string]efuseFieldJS{}
	for _, f := range rep.Fields {
		byName[f.Name] = f
	}
	if f := byName["WR_DIS"]; f.Raw == nil || *f.Raw != 0x03800700 {
		t.Errorf("WR_DIS %+v", f)
	}
	if f := byName["BLOCK_KEY0"]; f.Readable || f.Writable || f.Value != "(read-protected)" {
		t.Errorf("BLOCK_KEY0 %+v", f)
	}
	if f := byName["DIS_RTC_RAM_BOOT"]; !f.Hidden {
		t.Errorf("--all should include hidden fields: %+v", f)
	}
}

func TestEfuseDecodeErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.bin")
	if err := os.WriteFile(junk, []byte{1, 2, 3}, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no chip", []string{"decode", "testdata/efuse/esp32s3.provisioned.dump.txt"}, ExitUsage, "--chip is required"},
		{"unknown chip", []string{"decode", "--chip", "esp8266", "x"}, ExitUsage, "unknown name"},
		{"missing file", []string{"decode", "--chip", "esp32s3", filepath.Join(dir, "nope")}, ExitUsage, "no such file"},
		{"no file", []string{"decode", "--chip", "esp32s3"}, ExitUsage, "accepts 1 arg"},
		{"junk", []string{"decode", "--chip", "esp32c3", junk}, ExitFail, "want 336 bytes"},
		{"dump of the wrong chip", []string{"decode", "--chip", "esp32", "testdata/efuse/esp32c3.provisioned.dump.txt"}, ExitFail, "line 4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, _, errOut := runEfuse(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.msg) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, tc.code, tc.msg)
			}
		})
	}
}
