package efuse

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fuseline/esp/chip"
)

// Dump renders exactly espefuse's block lines.
func TestDumpRoundTrip(t *testing.T) {
	t.Parallel()
	for _, id := range []chip.ID{chip.ESP32S3, chip.ESP32C3} {
		t.Run(id.String(), func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile("testdata/" + id.String() + ".provisioned.dump.txt")
			if err != nil {
				t.Fatal(err)
			}
			img, err := ParseDump(id, raw)
			if err != nil {
				t.Fatal(err)
			}
			if img.Blocks[0][0] != 0x03800700 || img.Blocks[5][7] != 0xdb02a7ba || img.Blocks[10][7] != 0 {
				t.Errorf("parsed %08x", img.Blocks)
			}
			out, err := img.Dump()
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, l := range strings.Split(string(raw), "\n") {
				if strings.Contains(l, "dump:") {
					want = append(want, l)
				}
			}
			if got := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("Dump:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
			}
			bin, err := img.MarshalBinary()
			if err != nil || len(bin) != 336 || RawSize(id) != 336 {
				t.Fatalf("raw %d bytes, %v", len(bin), err)
			}
			if !bytes.Equal(bin[:4], []byte{0x00, 0x07, 0x80, 0x03}) {
				t.Errorf("raw starts % x, want BLOCK0 word 0 little-endian", bin[:4])
			}
			back, err := ParseRaw(id, bin)
			if err != nil || !back.Equal(img) {
				t.Errorf("raw round trip: %v", err)
			}
			for _, in := range [][]byte{raw, bin} {
				auto, err := Parse(id, in)
				if err != nil || !auto.Equal(img) {
					t.Errorf("Parse auto-detect: %v", err)
				}
			}
		})
	}
}

func TestESP32DumpAndRaw(t *testing.T) {
	t.Parallel()
	img := mustImage(t, chip.ESP32)
	_ = img.Set("CODING_SCHEME", 1)
	_ = img.Set("FLASH_CRYPT_CNT", 0x7F)
	img.Blocks[2][5] = 0xAABBCCDD
	out, _ := img.Dump()
	if !strings.Contains(out, "BLOCK1          (flash_encryption) [1 ] dump:") || !strings.Contains(out, "BLOCK2          (secure_boot_v1 s) [2 ]") {
		t.Errorf("ESP32 dump:\n%s", out)
	}
	back, err := ParseDump(chip.ESP32, []byte(out))
	if err != nil || !back.Equal(img) {
		t.Fatalf("round trip: %v", err)
	}
	// espefuse shows 6 words for 3/4-coded blocks.
	short := strings.ReplaceAll(out, "aabbccdd 00000000 00000000", "aabbccdd")
	short = strings.ReplaceAll(short, "00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000", "00000000 00000000 00000000 00000000 00000000 00000000")
	if back, err := ParseDump(chip.ESP32, []byte(short)); err != nil || !back.Equal(img) {
		t.Errorf("6-word ESP32 dump: %v\n%s", err, short)
	}
	bin, _ := img.MarshalBinary()
	if len(bin) != 124 {
		t.Fatalf("ESP32 raw %d bytes", len(bin))
	}
	// The 100-byte 3/4 layout: BLOCK1…3 with 6 words.
	var short34 []byte
	short34 = append(short34, bin[:28]...)
	for b := range 3 {
		short34 = append(short34, bin[28+32*b:28+32*b+24]...)
	}
	if back, err := ParseRaw(chip.ESP32, short34); err != nil || !back.Equal(img) {
		t.Errorf("100-byte raw: %v", err)
	}
	_ = img.Set("CODING_SCHEME", 0)
	bin, _ = img.MarshalBinary()
	if _, err := ParseRaw(chip.ESP32, bin[:100]); err == nil {
		t.Error("100-byte raw accepted without 3/4 coding")
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	good, err := os.ReadFile("testdata/esp32s3.provisioned.dump.txt")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(good), "\n")
	mutate := func(i int, f func(string) string) []byte {
		c := append([]string(nil), lines...)
		c[i] = f(c[i])
		return []byte(strings.Join(c, "\n"))
	}
	blockLine := 3 // BLOCK0 is line 4
	cases := []struct {
		name string
		in   []byte
		want string // in Want
		line int
	}{
		{"short block", mutate(blockLine, func(s string) string { return strings.TrimSuffix(s, " 00000000") }), "6 words for BLOCK0", 4},
		{"bad hex", mutate(blockLine+5, func(s string) string { return strings.Replace(s, "6efc4978", "6efc49zz", 1) }), "8 hex digits", 9},
		{"short word", mutate(blockLine+5, func(s string) string { return strings.Replace(s, "6efc4978", "6efc497", 1) }), "8 hex digits", 9},
		{"missing block", mutate(blockLine+10, func(string) string { return "" }), "a line for BLOCK_SYS_DATA2", 0},
		{"duplicate", mutate(blockLine+10, func(string) string { return lines[blockLine+9] }), "each block once", 14},
		{"wrong name", mutate(blockLine+1, func(s string) string {
			return strings.Replace(s, "MAC_SPI_8M_0    (BLOCK1", "BLOCK_KEY0      (BLOCK4", 1)
		}), "block 1 named MAC_SPI_8M_0", 5},
		{"block 11", mutate(blockLine+10, func(s string) string { return strings.Replace(s, "[10]", "[11]", 1) }), "block number below 11", 14},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseDump(chip.ESP32S3, tc.in)
			fe, ok := errors.AsType[*FormatError](err)
			if !ok || !strings.Contains(fe.Want, tc.want) || fe.Line != tc.line {
				t.Fatalf("err = %v, want FormatError %q on line %d", err, tc.want, tc.line)
			}
			if fe.Offset < 0 || fe.Offset > len(tc.in) {
				t.Errorf("offset %d outside input", fe.Offset)
			}
		})
	}
	// The offset of a bad word points at it.
	in := mutate(blockLine+5, func(s string) string { return strings.Replace(s, "d53f21ed", "d53f21eX", 1) })
	_, err = ParseDump(chip.ESP32S3, in)
	if fe, ok := errors.AsType[*FormatError](err); !ok || !bytes.HasPrefix(in[fe.Offset:], []byte("d53f21eX")) {
		t.Errorf("offset does not point at the bad word: %v", err)
	}
	if _, err := ParseRaw(chip.ESP32C3, make([]byte, 335)); err == nil {
		t.Error("335-byte raw accepted")
	}
	if _, err := Parse(chip.ESP32S3, []byte("hello\n")); err == nil {
		t.Error("text without block lines accepted")
	}
	if _, err := ParseSummaryJSON([]byte(`{"A": {"block": "x"}}`)); err == nil {
		t.Error("bad summary JSON accepted")
	}
}

func seedFiles(f *testing.F, glob string) {
	files, _ := filepath.Glob(filepath.Join("testdata", glob))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzParseDump: no panic; errors are FormatErrors inside the input; what
// parses renders back to a dump that parses the same.
func FuzzParseDump(f *testing.F) {
	seedFiles(f, "*.dump.txt")
	f.Add([]byte("BLOCK0 ( ) [0 ] dump: 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, id := range allChips {
			img, err := ParseDump(id, b)
			if err != nil {
				fe, ok := errors.AsType[*FormatError](err)
				if !ok || fe.Offset < 0 || fe.Offset > len(b) {
					t.Fatalf("%v: error %v without a valid offset", id, err)
				}
				continue
			}
			out, err := img.Dump()
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParseDump(id, []byte(out))
			if err != nil || !again.Equal(img) {
				t.Fatalf("%v: round trip failed: %v", id, err)
			}
			if _, err := Decode(img); err != nil {
				t.Fatalf("decode: %v", err)
			}
		}
	})
}

// FuzzParseRaw: no panic; wrong sizes give a FormatError; what parses
// marshals back to the same bytes (or, for the ESP32 3/4 form, parses the same).
func FuzzParseRaw(f *testing.F) {
	for _, id := range []chip.ID{chip.ESP32S3, chip.ESP32C3} {
		b, err := os.ReadFile("testdata/" + id.String() + ".provisioned.dump.txt")
		if err != nil {
			f.Fatal(err)
		}
		img, err := ParseDump(id, b)
		if err != nil {
			f.Fatal(err)
		}
		raw, _ := img.MarshalBinary()
		f.Add(raw)
	}
	f.Add(make([]byte, 124))
	f.Add(make([]byte, 100))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, id := range allChips {
			img, err := ParseRaw(id, b)
			if err != nil {
				fe, ok := errors.AsType[*FormatError](err)
				if !ok || fe.Offset < 0 || fe.Offset > len(b) {
					t.Fatalf("%v: error %v without a valid offset", id, err)
				}
				continue
			}
			out, err := img.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) == RawSize(id) && !bytes.Equal(out, b) {
				t.Fatalf("%v: raw round trip differs", id)
			}
			again, err := ParseRaw(id, out)
			if err != nil || !again.Equal(img) {
				t.Fatalf("%v: round trip: %v", id, err)
			}
			if _, err := Summarize(img); err != nil {
				t.Fatalf("summarize: %v", err)
			}
		}
	})
}

// FuzzParseSummaryJSON: no panic; errors carry an offset inside the input.
func FuzzParseSummaryJSON(f *testing.F) {
	seedFiles(f, "*.summary.json")
	f.Add([]byte(`{"MAC": {"value": "00:11:22:33:44:55 (OK)", "word": 0}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseSummaryJSON(b)
		if err != nil {
			fe, ok := errors.AsType[*FormatError](err)
			if !ok || fe.Offset < 0 || fe.Offset > len(b) {
				t.Fatalf("error %v without a valid offset", err)
			}
			return
		}
		for _, s := range m {
			s.Uint()
			s.Bytes()
		}
	})
}
