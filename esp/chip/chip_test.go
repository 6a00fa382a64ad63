package chip

import (
	"errors"
	"testing"
)

func TestLookups(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		byName  string
		id      ID
		magic   uint32
		blOff   uint32
		secInfo bool
	}{
		{"s3", "esp32s3", ESP32S3, 0x00000009, 0x0, true},
		{"c3", "ESP32-C3", ESP32C3, 0x1B31506F, 0x0, true},
		{"esp32", "esp32", ESP32, 0x00F01D83, 0x1000, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := ByName(tc.byName)
			if err != nil {
				t.Fatal(err)
			}
			if c.ID != tc.id || c.BootloaderOffset != tc.blOff || c.HasSecurityInfo != tc.secInfo {
				t.Errorf("ByName(%q) = %+v", tc.byName, c)
			}
			if got, err := ByID(tc.id); err != nil || got.Name != c.Name {
				t.Errorf("ByID(%v) = %v, %v", tc.id, got.Name, err)
			}
			if got, err := ByMagic(tc.magic); err != nil || got.ID != tc.id {
				t.Errorf("ByMagic(%#x) = %v, %v", tc.magic, got.ID, err)
			}
		})
	}
}

func TestUnknown(t *testing.T) {
	t.Parallel()
	for _, f := range []func() error{
		func() error { _, err := ByName("esp8266"); return err },
		func() error { _, err := ByID(2); return err },
		func() error { _, err := ByMagic(0xFFF0C101); return err },
	} {
		var ue *UnknownChipError
		if err := f(); !errors.As(err, &ue) {
			t.Errorf("got %v, want *UnknownChipError", err)
		}
	}
}

func TestCopiesAreIndependent(t *testing.T) {
	t.Parallel()
	a := S3()
	a.MagicValues[0] = 1
	a.Efuse.Base = 0
	if b := S3(); b.MagicValues[0] != 9 || b.Efuse.Base != 0x60007000 {
		t.Fatal("S3() shares state between calls")
	}
}

func TestEfuseMaps(t *testing.T) {
	t.Parallel()
	s3, c3 := S3().Efuse, C3().Efuse
	// Timing registers differ between S3 and C3 (§1.1); everything else is shared.
	if s3.WrTimConf1-s3.Base != 0x1F4 || c3.WrTimConf1-c3.Base != 0x1F0 {
		t.Errorf("WR_TIM_CONF1: s3 %#x c3 %#x", s3.WrTimConf1-s3.Base, c3.WrTimConf1-c3.Base)
	}
	if s3.BlockRead[4] != 0x6000709C || c3.BlockRead[1] != 0x60008844 {
		t.Errorf("block read addresses: %#x %#x", s3.BlockRead[4], c3.BlockRead[1])
	}
	if !c3.RSFailShifted || s3.RSFailShifted {
		t.Error("RS FAIL shift belongs to C3 only")
	}
}
