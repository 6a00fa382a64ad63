package provisioning_test

import (
	"errors"
	"strings"
	"testing"

	"fuseline/esp/chip"
	"fuseline/provisioning"
	"fuseline/provisioning/workspace"
	"fuseline/reports/evidence"
)

// An ESP32 whose Secure Boot signed bootloader is 0x9000 bytes (at 0x1000,
// so to 0xa000) needs the partition table moved past it: a release with
// the table at 0xb000 provisions and boots on a virtual board whose
// bootloader was built so.
func TestRunTableAt0xB000(t *testing.T) {
	t.Parallel()
	e := setup(t, chip.ESP32V3(), workspace.Options{TableOffset: 0xb000, BootloaderSize: 0x7c00})
	if e.rel.TableOffset != 0xb000 {
		t.Fatalf("release table offset 0x%x", e.rel.TableOffset)
	}
	if n := len(e.ws.Bootloader); n != 0x9000 {
		t.Fatalf("signed bootloader is 0x%x bytes, the test wants 0x9000", n)
	}
	res, err := provisioning.Run(ctxT(t), e.b, e.cfg())
	if err != nil || res.Verdict != evidence.PASS {
		t.Fatalf("Run: %v (verdict %s: %s)\n%s", err, res.Verdict, res.Reason, res.BootLog)
	}
	if !strings.Contains(res.BootLog, "Calling app_main()") || strings.Contains(res.BootLog, "invalid header") {
		t.Fatalf("boot log:\n%s", res.BootLog)
	}
}

// A release whose layout cannot boot is refused by Run before the board
// is touched, even when it did not come from Intake as it is: nothing is
// burned.
func TestRunRefusesUnbootableLayout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(rel *provisioning.Release)
		want string
	}{
		{"table moved into the bootloader", func(rel *provisioning.Release) {
			for i := range rel.Images {
				if rel.Images[i].Role == "partition-table" {
					rel.Images[i].Offset = 0x4000
				}
			}
		}, "runs into the partition table at 0x4000"},
		{"app overlapping the next image", func(rel *provisioning.Release) {
			im := rel.Images[1] // the table, copied to overlap the app's end
			app := rel.Images[len(rel.Images)-1]
			im.Role, im.File, im.Offset = "data/extra", "extra.bin", app.Offset+0x1000
			rel.Images = append(rel.Images, im)
		}, "overlaps app.bin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, chip.S3(), workspace.Options{})
			rel := *e.rel
			rel.Images = append([]provisioning.Image(nil), e.rel.Images...)
			tc.edit(&rel)
			before := e.b.V.Efuse()
			cfg := e.cfg()
			cfg.Release = &rel
			_, err := provisioning.Run(ctxT(t), e.b, cfg)
			if !errors.Is(err, provisioning.ErrIntake) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an intake refusal with %q", err, tc.want)
			}
			if !before.Equal(e.b.V.Efuse()) {
				t.Fatal("eFuses were burned for a release that cannot boot")
			}
		})
	}
}
