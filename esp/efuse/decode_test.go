package efuse

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"

	"fuseline/esp/chip"
)

// Decoding an image gives what espefuse's summary --format json says, for
// every field of ours that espefuse lists: readable and writeable flags,
// numbers and bools, bytes, MACs, key purposes by name, and the crypt
// counter's Enable/Disable.
func TestDecodeMatchesSummary(t *testing.T) {
	t.Parallel()
	for _, id := range []chip.ID{chip.ESP32S3, chip.ESP32C3} {
		for _, state := range []string{"blank", "provisioned"} {
			t.Run(id.String()+"/"+state, func(t *testing.T) {
				t.Parallel()
				img := mustImage(t, id)
				if state == "provisioned" {
					img = parseDumpFile(t, id, id.String()+".provisioned.dump.txt")
				}
				b, err := os.ReadFile("testdata/" + id.String() + "." + state + ".summary.json")
				if err != nil {
					t.Fatal(err)
				}
				sum, err := ParseSummaryJSON(b)
				if err != nil {
					t.Fatal(err)
				}
				vals, err := Decode(img)
				if err != nil {
					t.Fatal(err)
				}
				compared, valued := 0, 0
				for _, v := range vals {
					s, ok := sum[v.Field.Name]
					if !ok {
						continue
					}
					compared++
					if v.Readable != s.Readable || v.Writable != s.Writeable {
						t.Errorf("%s: readable/writable %v/%v, espefuse %v/%v", v.Field.Name, v.Readable, v.Writable, s.Readable, s.Writeable)
					}
					if checkSummaryValue(t, v, s) {
						valued++
					}
				}
				t.Logf("%d fields compared, %d values", compared, valued)
				if compared < 60 || valued < 50 {
					t.Errorf("too few comparisons: %d fields, %d values", compared, valued)
				}
			})
		}
	}
}

// checkSummaryValue compares one value; it reports whether it could.
func checkSummaryValue(t *testing.T, v Value, s SummaryField) bool {
	t.Helper()
	name := v.Field.Name
	if n, ok := s.Uint(); ok {
		if v.Raw != n {
			t.Errorf("%s = %d, espefuse %d", name, v.Raw, n)
		}
		return true
	}
	text, _ := s.Text()
	switch {
	case strings.HasPrefix(name, "KEY_PURPOSE_"):
		if Purpose(v.Raw).String() != text || v.Meaning != text {
			t.Errorf("%s = %v (%s), espefuse %s", name, Purpose(v.Raw), v.Meaning, text)
		}
		return true
	case name == "SPI_BOOT_CRYPT_CNT":
		on := strings.Contains(v.Meaning, " on")
		if on != (text == "Enable") {
			t.Errorf("%s meaning %q, espefuse %s", name, v.Meaning, text)
		}
		return true
	case v.Field.Kind == KindMAC || v.Field.Kind == KindCustomMAC:
		mac, _ := s.Bytes()
		if want := formatMAC(mac); v.Text != want {
			t.Errorf("%s = %s, espefuse %s", name, v.Text, want)
		}
		return true
	case v.Field.Kind == KindBytes:
		want, ok := s.Bytes()
		if !ok { // "?? ?? …": read-protected
			if v.Readable || v.Text != "(read-protected)" {
				t.Errorf("%s: espefuse cannot read it, we show %q", name, v.Text)
			}
			return true
		}
		if !bytes.Equal(v.Bytes, want) || v.Text != hexBytes(want) {
			t.Errorf("%s = %s, espefuse %x", name, v.Text, want)
		}
		return true
	}
	return false // an espefuse display name ("No calib", "Enable" for a clear bit…)
}

// §2.5 byte orders: factory MAC reversed, CUSTOM_MAC natural.
func TestMACByteOrder(t *testing.T) {
	t.Parallel()
	for _, id := range allChips {
		t.Run(id.String(), func(t *testing.T) {
			t.Parallel()
			img := mustImage(t, id)
			f, _ := FieldByName(id, "MAC")
			setBits(img.Blocks[f.Block], f.start(), 32, 0x33445566)
			setBits(img.Blocks[f.Block], f.start()+32, 16, 0x1122)
			mac, err := img.MAC()
			if err != nil || mac != [6]byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66} {
				t.Errorf("MAC = %x, %v", mac, err)
			}
			if err := img.SetBytes("CUSTOM_MAC", []byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}); err != nil {
				t.Fatal(err)
			}
			vals, _ := Decode(img)
			for _, v := range vals {
				switch v.Field.Name {
				case "MAC":
					if v.Text != "11:22:33:44:55:66" {
						t.Errorf("MAC text %s", v.Text)
					}
				case "CUSTOM_MAC":
					if v.Text != "aa:bb:cc:dd:ee:ff" {
						t.Errorf("CUSTOM_MAC text %s", v.Text)
					}
				}
			}
			if id != chip.ESP32 {
				if img.Blocks[3][6] != 0xCCBBAA00 || img.Blocks[3][7] != 0x00FFEEDD {
					t.Errorf("CUSTOM_MAC words %08x %08x, want ccbbaa00 00ffeedd", img.Blocks[3][6], img.Blocks[3][7])
				}
			}
		})
	}
}

func TestESP32MACCRC(t *testing.T) {
	t.Parallel()
	img := mustImage(t, chip.ESP32)
	if err := img.SetBytes("MAC", reverse([]byte{0x24, 0x0a, 0xc4, 0x12, 0x34, 0x56})); err != nil {
		t.Fatal(err)
	}
	crc := crc8MAC([]byte{0x24, 0x0a, 0xc4, 0x12, 0x34, 0x56})
	// CRC-8/MAXIM style (reflected 0x31 = 0x8C): "123456789" gives 0xA1.
	if c := crc8MAC([]byte("123456789")); c != 0xA1 {
		t.Fatalf("crc8 check value %02x, want a1", c)
	}
	for _, tc := range []struct {
		stored uint64
		want   string
	}{{uint64(crc), "OK"}, {uint64(crc ^ 1), "invalid"}} {
		if err := img.Set("MAC_CRC", tc.stored); err != nil {
			t.Fatal(err)
		}
		vals, _ := Decode(img)
		for _, v := range vals {
			if v.Field.Name == "MAC" && (!strings.Contains(v.Meaning, tc.want) || v.Text != "24:0a:c4:12:34:56") {
				t.Errorf("MAC = %s (%s), want %s", v.Text, v.Meaning, tc.want)
			}
		}
	}
}

func TestRevision(t *testing.T) {
	t.Parallel()
	cases := []struct {
		id     chip.ID
		fields map[string]uint64
		apb    uint32
		want   Revision
	}{
		{chip.ESP32S3, map[string]uint64{"WAFER_VERSION_MAJOR": 0, "WAFER_VERSION_MINOR_LO": 2}, 0, Revision{0, 2}},
		{chip.ESP32C3, map[string]uint64{"WAFER_VERSION_MAJOR": 0, "WAFER_VERSION_MINOR_LO": 3}, 0, Revision{0, 3}},
		{chip.ESP32C3, map[string]uint64{"WAFER_VERSION_MAJOR": 1, "WAFER_VERSION_MINOR_LO": 1, "WAFER_VERSION_MINOR_HI": 1}, 0, Revision{1, 9}},
		{chip.ESP32S3, map[string]uint64{"WAFER_VERSION_MAJOR": 1, "BLK_VERSION_MAJOR": 1, "BLK_VERSION_MINOR": 1}, 0, Revision{0, 0}},
		{chip.ESP32, map[string]uint64{"CHIP_VER_REV1": 1, "CHIP_VER_REV2": 1, "WAFER_VERSION_MINOR": 1}, 1 << 31, Revision{3, 1}},
		{chip.ESP32, map[string]uint64{"CHIP_VER_REV1": 1, "CHIP_VER_REV2": 1}, 0, Revision{2, 0}},
		{chip.ESP32, map[string]uint64{"CHIP_VER_REV1": 1}, 0, Revision{1, 0}},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			img := mustImage(t, tc.id)
			for n, v := range tc.fields {
				if err := img.Set(n, v); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ChipRevision(img, tc.apb)
			if err != nil || got != tc.want {
				t.Errorf("revision %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	img := mustImage(t, chip.ESP32)
	_ = img.Set("CHIP_VER_REV2", 1)
	if _, err := ChipRevision(img, 0); err == nil {
		t.Error("ESP32 revision bits 010 should be refused")
	}
}

func TestCountersAndMeanings(t *testing.T) {
	t.Parallel()
	cases := []struct {
		id          chip.ID
		field       string
		raw         uint64
		on, perm    bool
		wantMeaning string
	}{
		{chip.ESP32S3, "SPI_BOOT_CRYPT_CNT", 0, false, false, "flash encryption off"},
		{chip.ESP32S3, "SPI_BOOT_CRYPT_CNT", 1, true, false, "flash encryption on"},
		{chip.ESP32S3, "SPI_BOOT_CRYPT_CNT", 3, false, false, "flash encryption off (was on)"},
		{chip.ESP32C3, "SPI_BOOT_CRYPT_CNT", 7, true, true, "flash encryption on permanently"},
		{chip.ESP32, "FLASH_CRYPT_CNT", 0x0F, false, false, "flash encryption off (was on)"},
		{chip.ESP32, "FLASH_CRYPT_CNT", 0x7F, true, true, "flash encryption on permanently"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%v/%s=%d", tc.id, tc.field, tc.raw), func(t *testing.T) {
			t.Parallel()
			img := mustImage(t, tc.id)
			if err := img.Set(tc.field, tc.raw); err != nil {
				t.Fatal(err)
			}
			on, perm, err := img.FlashEncryption()
			if err != nil || on != tc.on || perm != tc.perm {
				t.Errorf("FlashEncryption = %v %v %v", on, perm, err)
			}
			vals, _ := Decode(img)
			for _, v := range vals {
				if v.Field.Name == tc.field && v.Meaning != tc.wantMeaning {
					t.Errorf("meaning %q, want %q", v.Meaning, tc.wantMeaning)
				}
			}
		})
	}
	img := mustImage(t, chip.ESP32S3)
	_ = img.Set("SECURE_VERSION", 3)
	_ = img.Set("SPI_BOOT_CRYPT_CNT", 7)
	if v, _ := img.SecureVersion(); v != 2 {
		t.Errorf("secure version of raw 3 = %d, want 2", v)
	}
	if SecureVersionBits(2) != 3 || SecureVersionBits(16) != 0xFFFF || SecureVersionBits(0) != 0 {
		t.Error("SecureVersionBits")
	}
	vals, _ := Decode(img)
	for _, v := range vals {
		switch v.Field.Name {
		case "SECURE_VERSION":
			if v.String() != "SECURE_VERSION = 3 (anti-rollback version 2)" {
				t.Errorf("%s", v)
			}
		case "SPI_BOOT_CRYPT_CNT":
			if v.String() != "SPI_BOOT_CRYPT_CNT = 7 (flash encryption on permanently)" {
				t.Errorf("%s", v)
			}
		}
	}
	_ = img.Set("SECURE_VERSION", 5)
	vals, _ = Decode(img)
	for _, v := range vals {
		if v.Field.Name == "SECURE_VERSION" && !strings.Contains(v.Meaning, "not a thermometer") {
			t.Errorf("raw 5: %s", v)
		}
	}
}

// A readable secret key (purpose XTS, RD_DIS not yet set) is never shown.
func TestSecretsNotShown(t *testing.T) {
	t.Parallel()
	phys := mustImage(t, chip.ESP32S3)
	key := reversed32(read32(t, "key256.bin"))
	var b Batch
	b.BurnKey(KeyBurn{Block: 4, Data: key, Purpose: PurposeXTSAES128Key})
	p := burn(t, phys, b)
	for _, pr := range p.Programs {
		if strings.Contains(pr.String(), fmt.Sprintf("%08x", bytesToWords(key)[0])) {
			t.Errorf("program shows key words: %s", pr)
		}
	}
	vals, err := Decode(phys)
	if err != nil {
		t.Fatal(err)
	}
	hexKey := hex.EncodeToString(key[:4])
	for _, v := range vals {
		s := strings.ReplaceAll(v.String(), " ", "")
		if strings.Contains(s, hexKey) {
			t.Errorf("%s shows the key", v.Field.Name)
		}
		if v.Field.Name == "BLOCK_KEY0" && (!v.Secret || v.Bytes != nil || !v.Readable || v.Meaning != "XTS_AES_128_KEY") {
			t.Errorf("BLOCK_KEY0 = %+v", v)
		}
	}
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	img := parseDumpFile(t, chip.ESP32S3, "esp32s3.provisioned.dump.txt")
	s, err := Summarize(img)
	if err != nil {
		t.Fatal(err)
	}
	if !s.FlashEncryption || !s.FlashEncryptionPermanent || !s.SecureBoot || s.SecureVersion != 2 || s.Download != "enabled" {
		t.Errorf("summary %+v", s)
	}
	if len(s.Keys) != 6 || s.Keys[0].Readable || s.Keys[0].Purpose != PurposeXTSAES128Key ||
		s.Keys[1].Purpose != PurposeSecureBootDigest0 || s.Keys[1].Empty || s.Keys[1].Writable || !s.Keys[3].Empty || !s.Keys[3].Writable {
		t.Errorf("keys %+v", s.Keys)
	}
	phys := provision(t, chip.ESP32C3)
	var b Batch
	b.Set("SECURE_BOOT_KEY_REVOKE1", 1)
	b.Set("ENABLE_SECURITY_DOWNLOAD", 1)
	burn(t, phys, b)
	view, _ := phys.ReadView()
	s, _ = Summarize(view)
	if !s.Keys[2].Revoked || s.Keys[1].Revoked || s.Download != "secure" {
		t.Errorf("C3 summary %+v", s)
	}
	e, _ := Summarize(mustImage(t, chip.ESP32))
	if len(e.Keys) != 3 || e.RevisionNote == "" {
		t.Errorf("ESP32 summary %+v", e)
	}
}

func TestPurposeNames(t *testing.T) {
	t.Parallel()
	for p := Purpose(0); p <= PurposeSecureBootDigest2; p++ {
		got, err := ParsePurpose(p.String())
		if err != nil || got != p {
			t.Errorf("%v round trip: %v %v", p, got, err)
		}
		if n, err := ParsePurpose(fmt.Sprint(uint8(p))); err != nil || n != p {
			t.Errorf("numeric %d: %v", p, err)
		}
	}
	if Purpose(12).String() != "FORBIDDEN_STATE(12)" {
		t.Error(Purpose(12).String())
	}
	if _, err := ParsePurpose("XTS"); err == nil {
		t.Error("ParsePurpose accepted XTS")
	}
	if PurposeXTSAES256Key1.Valid(chip.ESP32C3) || !PurposeXTSAES256Key1.Valid(chip.ESP32S3) || PurposeUser.Valid(chip.ESP32) {
		t.Error("Valid")
	}
}

// DownloadDisableField names a field of each chip's table, and Summarize
// reports the loader off when it is set (also over secure download mode).
func TestDownloadDisableField(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		id   chip.ID
		want string
	}{{chip.ESP32S3, "DIS_DOWNLOAD_MODE"}, {chip.ESP32C3, "DIS_DOWNLOAD_MODE"}, {chip.ESP32, "UART_DOWNLOAD_DIS"}} {
		if got := DownloadDisableField(tc.id); got != tc.want {
			t.Fatalf("%v: %q, want %q", tc.id, got, tc.want)
		}
		img, err := NewImage(tc.id)
		if err != nil {
			t.Fatal(err)
		}
		if tc.id != chip.ESP32 {
			if err := img.Set("ENABLE_SECURITY_DOWNLOAD", 1); err != nil {
				t.Fatal(err)
			}
		}
		if err := img.Set(tc.want, 1); err != nil {
			t.Fatal(err)
		}
		s, err := Summarize(img)
		if err != nil || s.Download != "disabled" {
			t.Fatalf("%v: download %q, %v", tc.id, s.Download, err)
		}
	}
	if DownloadDisableField(chip.ID(0x7777)) != "" {
		t.Fatal("an unknown chip names a field")
	}
}

// ClosesLoader answers for the fields that end register access and no
// other, by name or case, and only where the chip has the field.
func TestClosesLoader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		id    chip.ID
		field string
		want  bool
	}{
		{chip.ESP32S3, "DIS_DOWNLOAD_MODE", true},
		{chip.ESP32S3, "enable_security_download", true},
		{chip.ESP32C3, "ENABLE_SECURITY_DOWNLOAD", true},
		{chip.ESP32C3, "DIS_DOWNLOAD_MODE", true},
		{chip.ESP32, "UART_DOWNLOAD_DIS", true},
		{chip.ESP32, "DIS_DOWNLOAD_MODE", false},
		{chip.ESP32, "ENABLE_SECURITY_DOWNLOAD", false},
		{chip.ESP32S3, "UART_DOWNLOAD_DIS", false},
		{chip.ESP32S3, "SECURE_BOOT_EN", false},
		{chip.ESP32S3, "DIS_DOWNLOAD_ICACHE", false},
		{chip.ID(0x7777), "DIS_DOWNLOAD_MODE", false},
	} {
		if got := ClosesLoader(tc.id, tc.field); got != tc.want {
			t.Errorf("%v %s: %v, want %v", tc.id, tc.field, got, tc.want)
		}
	}
	for _, tc := range []struct {
		id   chip.ID
		want string
	}{{chip.ESP32S3, "ENABLE_SECURITY_DOWNLOAD"}, {chip.ESP32C3, "ENABLE_SECURITY_DOWNLOAD"}, {chip.ESP32, ""}, {chip.ID(0x7777), ""}} {
		if got := SecureDownloadField(tc.id); got != tc.want {
			t.Errorf("SecureDownloadField(%v) = %q, want %q", tc.id, got, tc.want)
		}
	}
}

// RevokeField names a table field for every digest slot of a chip that
// can revoke, and nothing on ESP32 (one digest, no revocation).
func TestRevokeField(t *testing.T) {
	t.Parallel()
	for _, c := range chip.All() {
		for slot := -1; slot <= c.SecureBootDigests; slot++ {
			name := RevokeField(c.ID, slot)
			want := c.ID != chip.ESP32 && slot >= 0 && slot < c.SecureBootDigests
			if (name != "") != want {
				t.Errorf("%s slot %d: %q", c.Name, slot, name)
				continue
			}
			if name != "" {
				if _, err := FieldByName(c.ID, name); err != nil {
					t.Errorf("%s slot %d: %v", c.Name, slot, err)
				}
			}
		}
	}
	if RevokeField(chip.ID(0x7777), 0) != "" {
		t.Error("an unknown chip names a revoke field")
	}
}
