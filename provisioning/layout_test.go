package provisioning

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fuseline/esp/chip"
	"fuseline/provisioning/workspace"
)

// img is an image of n bytes at off for layout tests (content unused).
func img(file, role string, off uint32, n int) Image {
	return Image{File: file, Role: role, Offset: off, Data: make([]byte, n)}
}

func TestCheckLayout(t *testing.T) {
	t.Parallel()
	s3, esp32 := chip.S3(), chip.ESP32V3()
	s3Boot := img("bootloader.bin", "bootloader", 0x0, 0x5000)
	e32Boot := img("bootloader.bin", "bootloader", 0x1000, 0x9000)
	tbl := func(off uint32) Image { return img("partition-table.bin", "partition-table", off, 0xC00) }
	app := img("app.bin", "app/factory", 0x10000, 0x20000)
	for _, tc := range []struct {
		name   string
		c      chip.Chip
		images []Image
		want   string // "" accepts
	}{
		{"S3 default", s3, []Image{s3Boot, tbl(0x8000), app}, ""},
		{"ESP32 0x9000-byte bootloader, table at 0xb000", esp32, []Image{e32Boot, tbl(0xb000), app}, ""},
		{"ESP32 0x9000-byte bootloader, table at 0x8000", esp32, []Image{e32Boot, tbl(0x8000), app},
			"bootloader.bin: the bootloader (0x9000 bytes at 0x1000, to 0xa000) runs into the partition table at 0x8000: build it with CONFIG_PARTITION_TABLE_OFFSET at or above 0xa000"},
		{"ESP32 table before the bootloader", esp32, []Image{tbl(0x0), e32Boot, app},
			"partition-table.bin: a partition table at 0x0, at or before the bootloader at 0x1000"},
		{"table not on a sector", s3, []Image{s3Boot, tbl(0x8800), app}, "partition-table.bin: offset 0x8800 is not on a 4 KiB sector"},
		{"table larger than its sector", s3, []Image{s3Boot, img("partition-table.bin", "partition-table", 0x8000, 0x1400), app},
			"5120 bytes: a partition table has one 4 KiB sector"},
		{"ESP32 bootloader at 0x0", esp32, []Image{img("bootloader.bin", "bootloader", 0x0, 0x5000), tbl(0x8000), app},
			"a bootloader at 0x0: the ESP32 ROM loads it from 0x1000"},
		{"S3 bootloader of 64 KiB and its signature", s3, []Image{img("bootloader.bin", "bootloader", 0x0, 0x11000), tbl(0x11000), img("app.bin", "app/factory", 0x20000, 0x20000)}, ""},
		{"ESP32 bootloader past 48 KiB", esp32, []Image{img("bootloader.bin", "bootloader", 0x1000, 0xE000), tbl(0xf000), app},
			"the bootloader is 0xd000 bytes before its signature sector; the ESP32 ROM verifies at most 0xc000 under Secure Boot v2"},
		{"no bootloader", s3, []Image{tbl(0x8000), app}, "no bootloader at 0x0"},
		{"app overlapping the next image", s3, []Image{s3Boot, tbl(0x8000), app, img("nvs.bin", "data", 0x20000, 0x1000)},
			"nvs.bin: at 0x20000 overlaps app.bin (0x10000…0x30000)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ti, err := findTable(tc.c, tc.images)
			if err == nil {
				err = checkLayout(tc.c, tc.images, ti)
			}
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrIntake) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// Which file is the table: the one named so, wherever it is; two named so
// are refused; with none named, the file at the chip's default offset.
func TestFindTable(t *testing.T) {
	t.Parallel()
	s3 := chip.S3()
	for _, tc := range []struct {
		name   string
		images []Image
		want   int
		err    string
	}{
		{"named at 0xb000, data at 0x8000", []Image{img("b", "bootloader", 0, 1), img("x", "data", 0x8000, 1), img("t", "partition-table", 0xb000, 1)}, 2, ""},
		{"none named", []Image{img("b", "bootloader", 0, 1), img("t", "data", 0x8000, 1)}, 1, ""},
		{"two named", []Image{img("t1", "partition-table", 0x8000, 1), img("t2", "partition-table", 0xb000, 1)}, -1, "t2: a second partition table (at 0xb000; t1 at 0x8000 is one already)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := findTable(s3, tc.images)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %d %v, want %d", got, err, tc.want)
			}
		})
	}
}

// An ESP-IDF build with the table at 0xb000 passes intake with that
// offset; the same build with flasher_args.json putting the table at
// 0x8000 (inside the 0x9000-byte bootloader), or at 0x0 before the ESP32
// bootloader, is refused.
func TestIntakeTableOffset(t *testing.T) {
	t.Parallel()
	ws, r := newWorkspace(t, workspace.Options{Chip: chip.ESP32V3(), TableOffset: 0xb000, BootloaderSize: 0x7c00})
	rel, err := Intake(context.Background(), r, IntakeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rel.TableOffset != 0xb000 || rel.Table.Entries[0].Offset < 0xc000 {
		t.Fatalf("table offset 0x%x, first entry at 0x%x", rel.TableOffset, rel.Table.Entries[0].Offset)
	}
	fa := filepath.Join(ws.ReleaseDir, FlasherArgsName)
	orig, _ := os.ReadFile(fa)
	for _, tc := range []struct{ off, want string }{
		{"0x8000", "runs into the partition table at 0x8000"},
		{"0x0", "a partition table at 0x0, at or before the bootloader at 0x1000"},
	} {
		os.WriteFile(fa, []byte(strings.ReplaceAll(string(orig), `"0xb000"`, `"`+tc.off+`"`)), 0o644)
		if _, err := Intake(context.Background(), r, IntakeOptions{}); !errors.Is(err, ErrIntake) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("table at %s: got %v, want %q", tc.off, err, tc.want)
		}
	}
}
