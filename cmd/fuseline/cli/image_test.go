package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runImageCLI runs the CLI and returns exit code, stdout and stderr.
func runImageCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func TestImageSynthAndInfo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	app := filepath.Join(dir, "app.bin")
	code, out, errs := runImageCLI(t, "image", "synth", "--chip", "esp32s3", "--version", "1.2.0", "--secure-version", "3",
		"--project", "blink", "--size", "64K", "-o", app)
	if code != ExitOK || !strings.Contains(out, "wrote "+app+": esp32s3 app") {
		t.Fatalf("synth: %d %q %q", code, out, errs)
	}
	first, err := os.ReadFile(app)
	if err != nil {
		t.Fatal(err)
	}

	code, out, errs = runImageCLI(t, "image", "info", app)
	if code != ExitOK {
		t.Fatalf("info: %d %q", code, errs)
	}
	for _, want := range []string{"chip esp32s3 (id 0x0009)", "dio, 4MB, 80m", "max_rev_full 99", "DROM    load 0x3c",
		"IROM    load 0x42000020", "padding", "(valid)", "version 1.2.0, secure_version 3, project blink", "Signature:   none"} {
		if !strings.Contains(out, want) {
			t.Errorf("info output lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = runImageCLI(t, "image", "info", "--json", app)
	var info struct {
		Chip     string `json:"chip"`
		Length   int    `json:"length"`
		Valid    bool   `json:"valid"`
		Segments []struct {
			Region string `json:"region"`
		} `json:"segments"`
		App *struct {
			Version       string `json:"version"`
			SecureVersion uint32 `json:"secure_version"`
			ProjectName   string `json:"project_name"`
		} `json:"app"`
		Checksum struct{ Valid bool }  `json:"checksum"`
		SHA256   *struct{ Valid bool } `json:"sha256"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil || code != ExitOK {
		t.Fatalf("json: %d %v\n%s", code, err, out)
	}
	if info.Chip != "esp32s3" || info.Length != len(first) || !info.Valid || !info.Checksum.Valid || info.SHA256 == nil || !info.SHA256.Valid ||
		info.App == nil || info.App.Version != "1.2.0" || info.App.SecureVersion != 3 || info.App.ProjectName != "blink" || len(info.Segments) != 5 {
		t.Fatalf("json info = %+v", info)
	}

	// The same flags give the same bytes.
	again := filepath.Join(dir, "again.bin")
	runImageCLI(t, "image", "synth", "--chip", "esp32s3", "--version", "1.2.0", "--secure-version", "3", "--project", "blink", "--size", "64K", "-o", again)
	second, _ := os.ReadFile(again)
	if !bytes.Equal(first, second) {
		t.Fatal("synth is not deterministic")
	}
}

func TestImageInfoSignedAndBootloader(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bl := filepath.Join(dir, "bl.bin")
	if code, _, errs := runImageCLI(t, "image", "synth", "--chip", "esp32c3", "--kind", "bootloader", "--version", "7", "-o", bl); code != ExitOK {
		t.Fatalf("synth: %s", errs)
	}
	b, _ := os.ReadFile(bl)
	// espsecure's layout: 0xFF to a 4 KiB boundary, then a sector with two
	// block headers (magic E7, version 02) at 0 and 1216, the rest 0xFF.
	pad := (4096 - len(b)%4096) % 4096
	sector := bytes.Repeat([]byte{0xFF}, 4096)
	for _, o := range []int{0, 1216} {
		copy(sector[o:], []byte{0xE7, 0x02, 0, 0})
	}
	signed := append(append(b, bytes.Repeat([]byte{0xFF}, pad)...), sector...)
	sp := filepath.Join(dir, "signed.bin")
	if err := os.WriteFile(sp, signed, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runImageCLI(t, "image", "info", sp)
	if code != ExitOK {
		t.Fatalf("info: %d %s", code, errs)
	}
	for _, want := range []string{"chip esp32c3", "Bootloader:  version 7", "min_rev_full 3, max_rev_full 199", "2 block(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runImageCLI(t, "image", "info", "--json", sp)
	var info struct {
		Signature *struct {
			Offset int `json:"offset"`
			Blocks int `json:"blocks"`
		} `json:"signature_sector"`
		Trailer int `json:"trailer_bytes"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil || code != ExitOK || info.Signature == nil ||
		info.Signature.Blocks != 2 || info.Signature.Offset != len(b)+pad || info.Trailer != pad+4096 {
		t.Fatalf("json %d %v %+v", code, err, info)
	}
}

func TestImageInfoFailures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	app := filepath.Join(dir, "app.bin")
	if code, _, errs := runImageCLI(t, "image", "synth", "--chip", "esp32", "--size", "4096", "-o", app); code != ExitOK {
		t.Fatal(errs)
	}
	b, _ := os.ReadFile(app)
	b[0x40] ^= 0xFF // inside the app descriptor: checksum and hash now wrong
	bad := filepath.Join(dir, "bad.bin")
	os.WriteFile(bad, b, 0o644)
	garbage := filepath.Join(dir, "garbage.bin")
	os.WriteFile(garbage, []byte("not an image at all, just text"), 0o644)

	tests := []struct {
		name string
		args []string
		code int
		out  string // in stdout
		err  string // in stderr
	}{
		{"bad checksum", []string{"image", "info", bad}, ExitFail, "INVALID, computed", "want checksum"},
		{"not an image", []string{"image", "info", garbage}, ExitFail, "", "magic 0xE9"},
		{"missing file", []string{"image", "info", filepath.Join(dir, "nope.bin")}, ExitUsage, "", "no such file"},
		{"no file", []string{"image", "info"}, ExitUsage, "", "arg"},
		{"unknown chip", []string{"image", "synth", "--chip", "esp8266", "-o", app}, ExitUsage, "", "unknown name"},
		{"no output", []string{"image", "synth", "--chip", "esp32s3"}, ExitUsage, "", "output"},
		{"bad kind", []string{"image", "synth", "--chip", "esp32s3", "--kind", "elf", "-o", app}, ExitUsage, "", "unknown kind"},
		{"bootloader version", []string{"image", "synth", "--chip", "esp32s3", "--kind", "bootloader", "--version", "1.2.0", "-o", app}, ExitUsage, "", "whole number"},
		{"bad size", []string{"image", "synth", "--chip", "esp32s3", "--size", "lots", "-o", app}, ExitUsage, "", "--size"},
		{"size too big", []string{"image", "synth", "--chip", "esp32s3", "--size", "64M", "-o", app}, ExitUsage, "", "size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out, errs := runImageCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errs, tc.err) {
				t.Fatalf("exit %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)", code, tc.code, out, tc.out, errs, tc.err)
			}
		})
	}
}
