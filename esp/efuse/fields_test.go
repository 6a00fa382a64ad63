package efuse

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"

	"fuseline/esp/chip"
)

var allChips = []chip.ID{chip.ESP32S3, chip.ESP32C3, chip.ESP32}

// Structural checks of every table: bounds, unique names, no overlaps except
// whole-block fields, protection bits in range.
func TestTablesWellFormed(t *testing.T) {
	t.Parallel()
	for _, id := range allChips {
		t.Run(id.String(), func(t *testing.T) {
			t.Parallel()
			fs := Fields(id)
			bs := Blocks(id)
			if len(fs) == 0 || len(bs) == 0 {
				t.Fatal("empty table")
			}
			names := map[string]bool{}
			for _, f := range fs {
				for _, n := range append([]string{f.Name}, f.Alias...) {
					if names[n] {
						t.Errorf("name %s used twice", n)
					}
					names[n] = true
				}
				if f.Width <= 0 || f.Bit < 0 || f.Bit > 31 || f.start()+f.Width > 32*bs[f.Block].Words {
					t.Errorf("%s outside BLOCK%d", f.Name, f.Block)
				}
				if f.WrDis < -1 || f.WrDis > 31 || f.RdDis < -1 || f.RdDis > 6 {
					t.Errorf("%s: protection bits %d/%d", f.Name, f.WrDis, f.RdDis)
				}
				if f.Block > 0 && f.WrDis != bs[f.Block].WrDis {
					t.Errorf("%s: WR_DIS %d, its block has %d", f.Name, f.WrDis, bs[f.Block].WrDis)
				}
				if f.Kind == 0 || f.Desc == "" {
					t.Errorf("%s: kind %v desc %q", f.Name, f.Kind, f.Desc)
				}
			}
			whole := func(f Field) bool { return f.Width == 32*bs[f.Block].Words || f.Name == "BLOCK_USR_DATA" }
			for i, a := range fs {
				for _, b := range fs[i+1:] {
					if a.Block == b.Block && a.start() < b.start()+b.Width && b.start() < a.start()+a.Width && !whole(a) && !whole(b) {
						t.Errorf("%s and %s overlap", a.Name, b.Name)
					}
				}
			}
			if !slices.IsSortedFunc(fs, func(a, b Field) int { return (a.Block*1024 + a.start()) - (b.Block*1024 + b.start()) }) {
				t.Error("Fields not in block/bit order")
			}
		})
	}
}

// Positions and protection bits of the security fields, as §3.1, §3.6 and
// §3.7 list them.
func TestSecurityFields(t *testing.T) {
	t.Parallel()
	type pos struct{ block, word, bit, width, wr, rd int }
	s3 := map[string]pos{
		"WR_DIS": {0, 0, 0, 32, -1, -1}, "RD_DIS": {0, 1, 0, 7, 0, -1},
		"DIS_ICACHE": {0, 1, 8, 1, 2, -1}, "DIS_DCACHE": {0, 1, 9, 1, 2, -1},
		"DIS_DOWNLOAD_ICACHE": {0, 1, 10, 1, 2, -1}, "DIS_DOWNLOAD_DCACHE": {0, 1, 11, 1, 2, -1},
		"SOFT_DIS_JTAG": {0, 1, 16, 3, 31, -1}, "DIS_PAD_JTAG": {0, 1, 19, 1, 2, -1}, "HARD_DIS_JTAG": {0, 1, 19, 1, 2, -1},
		"DIS_DOWNLOAD_MANUAL_ENCRYPT": {0, 1, 20, 1, 2, -1}, "USB_EXCHG_PINS": {0, 1, 25, 1, 30, -1},
		"SPI_BOOT_CRYPT_CNT":      {0, 2, 18, 3, 4, -1},
		"SECURE_BOOT_KEY_REVOKE0": {0, 2, 21, 1, 5, -1}, "SECURE_BOOT_KEY_REVOKE1": {0, 2, 22, 1, 6, -1}, "SECURE_BOOT_KEY_REVOKE2": {0, 2, 23, 1, 7, -1},
		"KEY_PURPOSE_0": {0, 2, 24, 4, 8, -1}, "KEY_PURPOSE_1": {0, 2, 28, 4, 9, -1}, "KEY_PURPOSE_2": {0, 3, 0, 4, 10, -1},
		"KEY_PURPOSE_3": {0, 3, 4, 4, 11, -1}, "KEY_PURPOSE_4": {0, 3, 8, 4, 12, -1}, "KEY_PURPOSE_5": {0, 3, 12, 4, 13, -1},
		"SECURE_BOOT_EN": {0, 3, 20, 1, 15, -1}, "SECURE_BOOT_AGGRESSIVE_REVOKE": {0, 3, 21, 1, 16, -1},
		"DIS_USB_JTAG": {0, 3, 22, 1, 2, -1}, "DIS_USB_SERIAL_JTAG": {0, 3, 23, 1, 2, -1},
		"FLASH_TPUW": {0, 3, 28, 4, 18, -1}, "DIS_DOWNLOAD_MODE": {0, 4, 0, 1, 18, -1}, "DIS_DIRECT_BOOT": {0, 4, 1, 1, 18, -1},
		"DIS_LEGACY_SPI_BOOT": {0, 4, 1, 1, 18, -1}, "ENABLE_SECURITY_DOWNLOAD": {0, 4, 5, 1, 18, -1},
		"SECURE_VERSION": {0, 4, 14, 16, 18, -1}, "DIS_USB_OTG_DOWNLOAD_MODE": {0, 4, 31, 1, 19, -1},
		"MAC": {1, 0, 0, 48, 20, -1}, "WAFER_VERSION_MINOR_LO": {1, 3, 18, 3, 20, -1}, "PKG_VERSION": {1, 3, 21, 3, 20, -1},
		"BLK_VERSION_MINOR": {1, 3, 24, 3, 20, -1}, "WAFER_VERSION_MINOR_HI": {1, 5, 23, 1, 20, -1}, "WAFER_VERSION_MAJOR": {1, 5, 24, 2, 20, -1},
		"BLK_VERSION_MAJOR": {2, 4, 0, 2, 21, -1}, "OPTIONAL_UNIQUE_ID": {2, 0, 0, 128, 21, -1}, "CUSTOM_MAC": {3, 6, 8, 48, 22, -1},
		"BLOCK_KEY0": {4, 0, 0, 256, 23, 0}, "BLOCK_KEY5": {9, 0, 0, 256, 28, 5}, "BLOCK_SYS_DATA2": {10, 0, 0, 256, 29, 6},
	}
	c3 := map[string]pos{}
	for k, v := range s3 {
		c3[k] = v
	}
	delete(c3, "DIS_DCACHE")
	delete(c3, "DIS_DOWNLOAD_DCACHE")
	delete(c3, "HARD_DIS_JTAG") // alias only on S3
	delete(c3, "DIS_USB_OTG_DOWNLOAD_MODE")
	c3["DIS_USB_JTAG"] = pos{0, 1, 9, 1, 2, -1}
	c3["DIS_USB_SERIAL_JTAG"] = pos{0, 1, 11, 1, 2, -1}
	c3["ERR_RST_ENABLE"] = pos{0, 4, 31, 1, 19, -1}
	esp32 := map[string]pos{
		"WR_DIS": {0, 0, 0, 16, 1, -1}, "RD_DIS": {0, 0, 16, 4, 0, -1}, "FLASH_CRYPT_CNT": {0, 0, 20, 7, 2, -1},
		"UART_DOWNLOAD_DIS": {0, 0, 27, 1, 2, -1}, "MAC": {0, 1, 0, 48, 3, -1}, "MAC_CRC": {0, 2, 16, 8, 3, -1},
		"DIS_CACHE": {0, 3, 3, 1, 3, -1}, "BLK3_PART_RESERVE": {0, 3, 14, 1, 10, 3}, "CHIP_VER_REV1": {0, 3, 15, 1, -1, -1},
		"CHIP_VER_REV2": {0, 5, 20, 1, -1, -1}, "WAFER_VERSION_MINOR": {0, 5, 24, 2, -1, -1},
		"FLASH_CRYPT_CONFIG": {0, 5, 28, 4, 10, 3}, "CODING_SCHEME": {0, 6, 0, 2, 10, 3}, "CONSOLE_DEBUG_DISABLE": {0, 6, 2, 1, 15, -1},
		"ABS_DONE_0": {0, 6, 4, 1, 12, -1}, "ABS_DONE_1": {0, 6, 5, 1, 13, -1}, "JTAG_DISABLE": {0, 6, 6, 1, 14, -1},
		"DISABLE_DL_ENCRYPT": {0, 6, 7, 1, 15, -1}, "DISABLE_DL_DECRYPT": {0, 6, 8, 1, 15, -1}, "DISABLE_DL_CACHE": {0, 6, 9, 1, 15, -1},
		"KEY_STATUS": {0, 6, 10, 1, 10, 3}, "BLOCK1": {1, 0, 0, 256, 7, 0}, "BLOCK2": {2, 0, 0, 256, 8, 1}, "BLOCK3": {3, 0, 0, 256, 9, 2},
		"SECURE_VERSION": {3, 4, 0, 32, 9, 2}, "CUSTOM_MAC": {3, 0, 8, 48, 9, 2},
	}
	for id, want := range map[chip.ID]map[string]pos{chip.ESP32S3: s3, chip.ESP32C3: c3, chip.ESP32: esp32} {
		t.Run(id.String(), func(t *testing.T) {
			t.Parallel()
			for name, w := range want {
				f, err := FieldByName(id, name)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				if got := (pos{f.Block, f.Word, f.Bit, f.Width, f.WrDis, f.RdDis}); got != w {
					t.Errorf("%s = %+v, want %+v", name, got, w)
				}
			}
		})
	}
	if _, err := FieldByName(chip.ESP32C3, "HARD_DIS_JTAG"); !errors.Is(err, ErrUnknownField) {
		t.Errorf("HARD_DIS_JTAG on C3: %v, want ErrUnknownField", err)
	}
	if _, err := FieldByName(chip.ID(0x42), "WR_DIS"); !errors.Is(err, ErrUnknownChip) {
		t.Errorf("unknown chip: %v", err)
	}
}

// §3.3: what each WR_DIS bit locks.
func TestWrDisMap(t *testing.T) {
	t.Parallel()
	cases := []struct {
		id   chip.ID
		bit  int
		want []string
	}{
		{chip.ESP32S3, 0, []string{"RD_DIS"}},
		{chip.ESP32S3, 2, []string{"DIS_ICACHE", "DIS_DCACHE", "DIS_DOWNLOAD_ICACHE", "DIS_DOWNLOAD_DCACHE", "DIS_FORCE_DOWNLOAD", "DIS_USB_OTG", "DIS_TWAI", "DIS_APP_CPU", "DIS_PAD_JTAG", "DIS_DOWNLOAD_MANUAL_ENCRYPT", "DIS_USB_JTAG", "DIS_USB_SERIAL_JTAG", "STRAP_JTAG_SEL", "USB_PHY_SEL"}},
		{chip.ESP32C3, 2, []string{"DIS_ICACHE", "DIS_USB_JTAG", "DIS_DOWNLOAD_ICACHE", "DIS_USB_SERIAL_JTAG", "DIS_FORCE_DOWNLOAD", "DIS_TWAI", "JTAG_SEL_ENABLE", "DIS_PAD_JTAG", "DIS_DOWNLOAD_MANUAL_ENCRYPT"}},
		{chip.ESP32S3, 4, []string{"SPI_BOOT_CRYPT_CNT"}},
		{chip.ESP32C3, 15, []string{"SECURE_BOOT_EN"}},
		{chip.ESP32S3, 18, []string{"FLASH_TPUW", "DIS_DOWNLOAD_MODE", "DIS_DIRECT_BOOT", "DIS_USB_SERIAL_JTAG_ROM_PRINT", "FLASH_ECC_MODE", "DIS_USB_SERIAL_JTAG_DOWNLOAD_MODE", "ENABLE_SECURITY_DOWNLOAD", "UART_PRINT_CONTROL", "PIN_POWER_SELECTION", "FLASH_TYPE", "FLASH_PAGE_SIZE", "FLASH_ECC_EN", "FORCE_SEND_RESUME", "SECURE_VERSION"}},
		{chip.ESP32S3, 19, []string{"DIS_USB_OTG_DOWNLOAD_MODE", "DISABLE_WAFER_VERSION_MAJOR", "DISABLE_BLK_VERSION_MAJOR"}},
		{chip.ESP32C3, 19, []string{"ERR_RST_ENABLE", "DISABLE_WAFER_VERSION_MAJOR", "DISABLE_BLK_VERSION_MAJOR"}},
		{chip.ESP32S3, 23, []string{"BLOCK_KEY0"}},
		{chip.ESP32C3, 29, []string{"BLOCK_SYS_DATA2"}},
		{chip.ESP32S3, 31, []string{"SOFT_DIS_JTAG"}},
		{chip.ESP32, 1, []string{"WR_DIS"}},
		{chip.ESP32, 2, []string{"FLASH_CRYPT_CNT", "UART_DOWNLOAD_DIS"}},
		{chip.ESP32, 10, []string{"BLK3_PART_RESERVE", "FLASH_CRYPT_CONFIG", "CODING_SCHEME", "KEY_STATUS"}},
		{chip.ESP32, 15, []string{"CONSOLE_DEBUG_DISABLE", "DISABLE_DL_ENCRYPT", "DISABLE_DL_DECRYPT", "DISABLE_DL_CACHE"}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%v/%d", tc.id, tc.bit), func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, n := range WrDisFields(tc.id, tc.bit) {
				if f, _ := FieldByName(tc.id, n); !f.Hidden {
					got = append(got, n)
				}
			}
			if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(tc.want))) {
				t.Errorf("WR_DIS bit %d locks %v, want %v", tc.bit, got, tc.want)
			}
		})
	}
}

func TestBlock0WriteProtected(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		id    chip.ID
		wrDis uint32
		want  []uint32
	}{
		{"nothing", chip.ESP32S3, 0, []uint32{0, 0, 0, 0, 0, 0}},
		{"RD_DIS", chip.ESP32C3, 1 << 0, []uint32{0, 0x7F, 0, 0, 0, 0}},
		{"crypt cnt", chip.ESP32S3, 1 << 4, []uint32{0, 0, 0x7 << 18, 0, 0, 0}},
		{"purposes 0 and 5", chip.ESP32S3, 1<<8 | 1<<13, []uint32{0, 0, 0xF << 24, 0xF << 12, 0, 0}},
		// Bit 18: FLASH_TPUW plus word 4 bits 0…29, SECURE_VERSION included.
		{"bit 18 S3", chip.ESP32S3, 1 << 18, []uint32{0, 0, 0, 0xF0000000, 0x3FFFFFFF, 0}},
		{"bit 18 C3", chip.ESP32C3, 1 << 18, []uint32{0, 0, 0, 0xF0000000, 0x3FFFFFFF, 0}},
		{"all", chip.ESP32S3, 0xFFFFFFFF, nil},
		{"ESP32 WR_DIS itself", chip.ESP32, 1 << 1, []uint32{0xFFFF, 0, 0, 0, 0, 0, 0}},
		{"ESP32 bit 10", chip.ESP32, 1 << 10, []uint32{0, 0, 0, 1 << 14, 0, 0xF << 28, 0x403}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Block0WriteProtected(tc.id, tc.wrDis)
			if tc.want == nil {
				// Every bit that belongs to a protected field; WR_DIS itself never.
				if got[0] != 0 || got[2] != 0xFFFFFFFF || got[4]&(0xFFFF<<14) != 0xFFFF<<14 {
					t.Errorf("all bits: %08x", got)
				}
				return
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("mask %08x, want %08x", got, tc.want)
			}
		})
	}
	if Block0WriteProtected(chip.ID(77), 1) != nil {
		t.Error("unknown chip should give nil")
	}
}

func TestBlockBits(t *testing.T) {
	t.Parallel()
	for k := range 6 {
		if BlockWrDisBit(chip.ESP32S3, 4+k) != 23+k || BlockRdDisBit(chip.ESP32C3, 4+k) != k {
			t.Errorf("key block %d protection bits", k)
		}
	}
	if BlockWrDisBit(chip.ESP32S3, 0) != -1 || BlockRdDisBit(chip.ESP32S3, 3) != -1 || BlockRdDisBit(chip.ESP32S3, 10) != 6 || BlockWrDisBit(chip.ESP32S3, 11) != -1 {
		t.Error("S3 block bits")
	}
	if BlockWrDisBit(chip.ESP32, 1) != 7 || BlockRdDisBit(chip.ESP32, 3) != 2 {
		t.Error("ESP32 block bits")
	}
	if b, err := BlockByName(chip.ESP32, "FLASH_ENCRYPTION"); err != nil || b.Num != 1 {
		t.Errorf("BlockByName flash_encryption: %v %v", b, err)
	}
	if b, err := BlockByName(chip.ESP32C3, "BLOCK7"); err != nil || b.Name != "BLOCK_KEY3" {
		t.Errorf("BlockByName BLOCK7: %v %v", b, err)
	}
}

// Every field espefuse 4.9.1 reports with a position is in our table at the
// same place, with the same width.
func TestTablesMatchEspefuseSummary(t *testing.T) {
	t.Parallel()
	for _, id := range []chip.ID{chip.ESP32S3, chip.ESP32C3} {
		t.Run(id.String(), func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile("testdata/" + id.String() + ".blank.summary.json")
			if err != nil {
				t.Fatal(err)
			}
			sum, err := ParseSummaryJSON(b)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for name, s := range sum {
				if s.Word == nil {
					continue // computed by espefuse (WAFER_VERSION_MINOR, PSRAM_CAPACITY)
				}
				f, err := FieldByName(id, name)
				if err != nil {
					t.Errorf("%s: not in our table", name)
					continue
				}
				if f.Block != s.Block || f.Word != *s.Word || f.Bit != *s.Pos || f.Width != s.BitLen {
					t.Errorf("%s: ours B%d w%d b%d len %d, espefuse B%d w%d b%d len %d", name, f.Block, f.Word, f.Bit, f.Width, s.Block, *s.Word, *s.Pos, s.BitLen)
				}
				if f.Hidden {
					t.Errorf("%s is shown by espefuse but hidden here", name)
				}
				n++
			}
			if n < 60 {
				t.Errorf("only %d fields compared", n)
			}
		})
	}
}
