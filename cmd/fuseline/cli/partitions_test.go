package cli

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// partitionsSingleApp is ESP-IDF's partitions_singleapp.csv; its binary is
// the §6.1 example (MD5 f4ad4f45…).
const partitionsSingleApp = `# Name,   Type, SubType, Offset,  Size, Flags
nvs,      data, nvs,     ,        0x6000,
phy_init, data, phy,     ,        0x1000,
factory,  app,  factory, ,        1M,
`

func TestPartitionsConvert(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "p.csv")
	binPath := filepath.Join(dir, "p.bin")
	os.WriteFile(csvPath, []byte(partitionsSingleApp), 0o644)

	code, out, errs := runImageCLI(t, "partitions", csvPath, "-o", binPath)
	if code != ExitOK || out != "" {
		t.Fatalf("csv→bin: %d %q %q", code, out, errs)
	}
	bin, _ := os.ReadFile(binPath)
	if len(bin) != 0xC00 || hex.EncodeToString(bin[0x60:0x80]) != "ebebffffffffffffffffffffffffffff"+"f4ad4f4538564b5d7435b62c75b69524" {
		t.Fatalf("binary: %d bytes\n%x", len(bin), bin[:0x80])
	}

	code, out, errs = runImageCLI(t, "partitions", binPath)
	want := "# ESP-IDF Partition Table\n# Name, Type, SubType, Offset, Size, Flags\n" +
		"nvs,data,nvs,0x9000,24K,\nphy_init,data,phy,0xf000,4K,\nfactory,app,factory,0x10000,1M,\n"
	if code != ExitOK || out != want {
		t.Fatalf("bin→csv: %d %q\n%s", code, errs, out)
	}

	// CSV to stdout as binary, too.
	code, out, _ = runImageCLI(t, "partitions", csvPath)
	if code != ExitOK || !bytes.Equal([]byte(out), bin) {
		t.Fatalf("csv→stdout: %d, %d bytes", code, len(out))
	}

	code, out, _ = runImageCLI(t, "partitions", "--json", binPath)
	var l struct {
		MD5     bool `json:"md5"`
		Entries []struct {
			Label     string   `json:"label"`
			Type      string   `json:"type"`
			SubType   string   `json:"subtype"`
			Offset    uint32   `json:"offset"`
			Size      uint32   `json:"size"`
			Flags     []string `json:"flags"`
			Encrypted bool     `json:"encrypted_under_flash_encryption"`
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil || code != ExitOK {
		t.Fatalf("json: %d %v %s", code, err, out)
	}
	if !l.MD5 || len(l.Entries) != 3 || l.Entries[2].Label != "factory" || l.Entries[2].Type != "app" || l.Entries[2].Offset != 0x10000 ||
		l.Entries[2].Size != 1<<20 || !l.Entries[2].Encrypted || l.Entries[0].Encrypted || l.Entries[0].SubType != "nvs" || l.Entries[0].Flags == nil {
		t.Fatalf("listing %+v", l)
	}
}

func TestPartitionsChecks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	ok := write("ok.csv", partitionsSingleApp)
	plainBin := filepath.Join(dir, "plain.bin")
	// A table to corrupt and to read with another table offset.
	plain := write("plain.csv", "a,data,nvs,0x9000,0x6000\nb,data,fat,0x10000,0x1000\nc,data,fat,0x11000,0x1000\n")
	if code, _, errs := runImageCLI(t, "partitions", "--no-verify", plain, "-o", plainBin); code != ExitOK {
		t.Fatal(errs)
	}
	raw, _ := os.ReadFile(plainBin)
	copy(raw[0x20+4:], []byte{0x00, 0x90, 0x00, 0x00}) // b now starts at 0x9000, inside a; MD5 now stale too
	garbage := filepath.Join(dir, "garbage.bin")
	os.WriteFile(garbage, raw, 0o644)

	tests := []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"fits 4MB", []string{"partitions", ok, "--flash-size", "4MB", "-o", filepath.Join(dir, "x.bin")}, ExitOK, ""},
		{"past 1MB flash", []string{"partitions", ok, "--flash-size", "1MB"}, ExitFail, "past the end"},
		{"past flash, unchecked", []string{"partitions", ok, "--flash-size", "1MB", "--no-verify", "-o", filepath.Join(dir, "y.bin")}, ExitOK, ""},
		{"misaligned app", []string{"partitions", write("mis.csv", "f,app,factory,0x18000,1M\n")}, ExitFail, "not aligned to 0x10000"},
		{"small otadata", []string{"partitions", write("ota.csv", "o,data,ota,,0x1000\n")}, ExitFail, "must be 0x2000"},
		{"csv syntax", []string{"partitions", write("bad.csv", "n,data,nvs,,0x6000,shiny\n")}, ExitFail, "line 1"},
		{"stale md5", []string{"partitions", garbage}, ExitFail, "MD5"},
		{"table elsewhere", []string{"partitions", write("fixed.csv", "n,data,nvs,0x9000,0x6000\n"), "--offset", "0xA000"}, ExitFail, "after the partition table"},
		{"table elsewhere, binary", []string{"partitions", plainBin, "--offset", "0x10000"}, ExitFail, "below 0x11000"},
		{"missing file", []string{"partitions", filepath.Join(dir, "none.csv")}, ExitUsage, "no such file"},
		{"bad flash size", []string{"partitions", ok, "--flash-size", "big"}, ExitUsage, "--flash-size"},
		{"bad chip", []string{"partitions", ok, "--chip", "esp8266"}, ExitUsage, "unknown name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, _, errs := runImageCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.err) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, tc.code, errs, tc.err)
			}
		})
	}
}
