package efuse

import (
	"fmt"
	"strings"

	"fuseline/esp/chip"
)

// Value is one decoded field.
type Value struct {
	Field Field
	// Raw is the field's bits for fields up to 64 bits wide.
	Raw uint64
	// Bytes is the field in block byte order for byte-kind fields; nil when
	// the field holds a secret key.
	Bytes []byte
	// Text is the value as shown: a number, a MAC, hex bytes,
	// "(read-protected)" or "(secret key, not shown)".
	Text string
	// Meaning says what the value does ("enabled permanently"); empty for a
	// zero field without special meaning.
	Meaning string
	// Readable is false when RD_DIS hides the field (it then reads as zero);
	// Writable is false when WR_DIS locks it.
	Readable, Writable bool
	// Secret marks a key that must never be shown.
	Secret bool
}

// String renders "NAME = text (meaning)".
func (v Value) String() string {
	s := v.Field.Name + " = " + v.Text
	if v.Meaning != "" {
		s += " (" + v.Meaning + ")"
	}
	return s
}

// Decode names every field of the image (as read from the board) in table
// order, with readable/writable flags from RD_DIS and WR_DIS. Keys with a
// secret purpose (XTS, HMAC; ESP32 BLOCK1) are never put in Text or Bytes.
func Decode(img *Image) ([]Value, error) {
	l, err := img.layout()
	if err != nil {
		return nil, err
	}
	wrDis, rdDis := img.protections()
	out := make([]Value, 0, len(l.fields))
	for _, f := range l.fields {
		v := Value{Field: f, Readable: l.readable(f, rdDis), Writable: l.writable(f, wrDis)}
		if f.Width <= 64 {
			v.Raw = getBits(img.Blocks[f.Block], f.start(), f.Width)
		}
		switch f.Kind {
		case KindBytes, KindMAC, KindCustomMAC:
			v.Bytes = getBytes(img.Blocks[f.Block], f.start(), f.Width)
		}
		v.Secret = l.secret(img, f) && !allZero(getBytes(img.Blocks[f.Block], f.start(), f.Width))
		switch {
		case !v.Readable:
			v.Text = "(read-protected)"
			v.Bytes = nil
		case v.Secret:
			v.Text = "(secret key, not shown)"
			v.Bytes = nil
		default:
			v.Text = l.text(f, v)
		}
		v.Meaning = l.meaning(img, f, v)
		out = append(out, v)
	}
	return out, nil
}

// secret reports whether field f holds a secret key in this image.
func (l *layout) secret(img *Image, f Field) bool {
	if l.id == chip.ESP32 {
		switch f.Name {
		case "BLOCK1":
			return true
		case "BLOCK2":
			v, _ := img.Get("ABS_DONE_0") // a Secure Boot v1 key, not a v2 digest
			return v != 0
		}
		return false
	}
	if f.Block < 4 || f.Block > 9 || f.Kind != KindBytes {
		return false
	}
	p, _ := img.Get(fmt.Sprintf("KEY_PURPOSE_%d", f.Block-4))
	return Purpose(p).Secret()
}

func (l *layout) text(f Field, v Value) string {
	switch f.Kind {
	case KindMAC:
		return formatMAC(reverse(v.Bytes))
	case KindCustomMAC:
		return formatMAC(v.Bytes)
	case KindBytes:
		return hexBytes(v.Bytes)
	}
	if f.Width > 8 && f.Name != "SECURE_VERSION" {
		return fmt.Sprintf("0x%x", v.Raw)
	}
	return fmt.Sprint(v.Raw)
}

func (l *layout) meaning(img *Image, f Field, v Value) string {
	raw := v.Raw
	switch {
	case f.Name == "WR_DIS":
		return l.wrDisMeaning(raw)
	case f.Name == "RD_DIS":
		return l.rdDisMeaning(raw)
	case f.Name == "SPI_BOOT_CRYPT_CNT" || f.Name == "FLASH_CRYPT_CNT":
		return cryptCntMeaning(raw, f.Width)
	case strings.HasPrefix(f.Name, "KEY_PURPOSE_"):
		return Purpose(raw).String()
	case f.Name == "SECURE_VERSION":
		return secureVersionMeaning(raw)
	case f.Name == "SOFT_DIS_JTAG":
		switch {
		case raw == 0:
			return ""
		case popcount(raw)%2 == 1:
			return "JTAG off (an HMAC_DOWN_JTAG key can turn it back on)"
		default:
			return "JTAG on (even number of bits set)"
		}
	case f.Name == "CODING_SCHEME":
		return []string{"none", "3/4", "repeat (unsupported)", "none"}[raw&3]
	case f.Name == "MAC" && l.id == chip.ESP32 && v.Readable:
		mac := reverse(v.Bytes)
		stored, _ := img.Get("MAC_CRC")
		if c := crc8MAC(mac); uint64(c) != stored {
			return fmt.Sprintf("CRC 0x%02x invalid, computed 0x%02x", stored, c)
		}
		return fmt.Sprintf("CRC 0x%02x OK", stored)
	case strings.HasPrefix(f.Name, "SECURE_BOOT_KEY_REVOKE") && raw != 0:
		return "digest " + f.Name[len(f.Name)-1:] + " revoked"
	case f.Kind == KindBytes && f.Block >= 4 && f.Block <= 9 && l.id != chip.ESP32:
		if v.Readable && allZero(getBytes(img.Blocks[f.Block], f.start(), f.Width)) {
			return "empty"
		}
		p, _ := img.Get(fmt.Sprintf("KEY_PURPOSE_%d", f.Block-4))
		return Purpose(p).String()
	}
	if raw != 0 && f.Width <= 64 && f.Kind != KindMAC && f.Kind != KindCustomMAC {
		return f.Desc
	}
	return ""
}

func (l *layout) wrDisMeaning(raw uint64) string {
	if raw == 0 {
		return "nothing write-protected"
	}
	var parts []string
	for bit := range 32 {
		if raw&(1<<bit) == 0 {
			continue
		}
		var names []string
		for _, f := range l.fields {
			if f.WrDis == bit && !f.Hidden {
				names = append(names, f.Name)
			}
		}
		switch {
		case len(names) == 0:
			parts = append(parts, fmt.Sprintf("bit %d", bit))
		case len(names) == 1:
			parts = append(parts, names[0])
		default:
			s := names[0] + " group"
			for _, n := range names[1:] {
				if n == "SECURE_VERSION" {
					s += " (incl. SECURE_VERSION)"
				}
			}
			parts = append(parts, s)
		}
	}
	return "locks " + strings.Join(parts, ", ")
}

func (l *layout) rdDisMeaning(raw uint64) string {
	if raw == 0 {
		return "nothing read-protected"
	}
	var parts []string
	for bit := range 8 {
		if raw&(1<<bit) == 0 {
			continue
		}
		found := false
		for _, b := range l.blocks {
			if b.RdDis == bit {
				parts, found = append(parts, b.Name), true
			}
		}
		if !found && l.id == chip.ESP32 && bit == 3 {
			parts, found = append(parts, "FLASH_CRYPT_CONFIG/CODING_SCHEME group"), true
		}
		if !found {
			parts = append(parts, fmt.Sprintf("bit %d", bit))
		}
	}
	return "hides " + strings.Join(parts, ", ")
}

// cryptCntMeaning: encryption is on while an odd number of bits is set; with
// every bit set it can never be turned off (§3.1, §3.6).
func cryptCntMeaning(raw uint64, width int) string {
	n := popcount(raw)
	switch {
	case n == 0:
		return "flash encryption off"
	case n == width:
		if n%2 == 1 {
			return "flash encryption on permanently"
		}
		return "flash encryption off permanently"
	case n%2 == 1:
		return "flash encryption on"
	}
	return "flash encryption off (was on)"
}

func secureVersionMeaning(raw uint64) string {
	n := popcount(raw)
	s := fmt.Sprintf("anti-rollback version %d", n)
	if raw != 1<<n-1 {
		s += " (bits set, not a thermometer code)"
	}
	return s
}

// Revision is a chip revision, major.minor.
type Revision struct{ Major, Minor int }

func (r Revision) String() string { return fmt.Sprintf("v%d.%d", r.Major, r.Minor) }

// ChipRevision computes the chip revision (§3.7, §3.8). apbCtlDate is the
// value of the ESP32's APB_CTL_DATE register (bit 31 is the third revision
// bit); S3/C3 ignore it.
func ChipRevision(img *Image, apbCtlDate uint32) (Revision, error) {
	if _, err := img.layout(); err != nil {
		return Revision{}, err
	}
	g := func(n string) uint64 { v, _ := img.Get(n); return v }
	if img.Chip == chip.ESP32 {
		code := g("CHIP_VER_REV1") | g("CHIP_VER_REV2")<<1 | uint64(apbCtlDate>>31)<<2
		major := map[uint64]int{0: 0, 1: 1, 3: 2, 7: 3}
		m, ok := major[code]
		if !ok {
			return Revision{}, fmt.Errorf("efuse: ESP32 revision bits %03b do not name a revision: %w", code, ErrRange)
		}
		return Revision{Major: m, Minor: int(g("WAFER_VERSION_MINOR"))}, nil
	}
	lo, hi := g("WAFER_VERSION_MINOR_LO"), g("WAFER_VERSION_MINOR_HI")
	if img.Chip == chip.ESP32S3 && lo == 0 && g("BLK_VERSION_MAJOR") == 1 && g("BLK_VERSION_MINOR") == 1 {
		return Revision{}, nil // early S3 samples report v0.0 (§3.7)
	}
	return Revision{Major: int(g("WAFER_VERSION_MAJOR")), Minor: int(hi<<3 | lo)}, nil
}

// MAC returns the factory MAC in display order (it is stored reversed, §2.5).
func (img *Image) MAC() ([6]byte, error) {
	b, err := img.GetBytes("MAC")
	if err != nil {
		return [6]byte{}, err
	}
	var m [6]byte
	copy(m[:], reverse(b))
	return m, nil
}

// SecureVersion is the anti-rollback version: the number of set bits of
// SECURE_VERSION (S3/C3 BLOCK0 w4[29:14]; ESP32 BLOCK3 w4), §3.9.
func (img *Image) SecureVersion() (int, error) {
	v, err := img.Get("SECURE_VERSION")
	return popcount(v), err
}

// SecureVersionBits is the raw SECURE_VERSION value that records version v:
// the low v bits set (what espefuse's burn_efuse takes, §3.9).
func SecureVersionBits(v int) uint64 {
	if v >= 64 {
		return ^uint64(0)
	}
	return 1<<v - 1
}

// FlashEncryption reports whether flash encryption is on (an odd number of
// SPI_BOOT_CRYPT_CNT / FLASH_CRYPT_CNT bits) and whether that is permanent.
func (img *Image) FlashEncryption() (on, permanent bool, err error) {
	name := "SPI_BOOT_CRYPT_CNT"
	if img.Chip == chip.ESP32 {
		name = "FLASH_CRYPT_CNT"
	}
	f, err := FieldByName(img.Chip, name)
	if err != nil {
		return false, false, err
	}
	v, err := img.Get(name)
	if err != nil {
		return false, false, err
	}
	n := popcount(v)
	return n%2 == 1, n%2 == 1 && n == f.Width, nil
}

// KeyPurposes returns KEY_PURPOSE_0…5 (S3/C3).
func (img *Image) KeyPurposes() ([6]Purpose, error) {
	var p [6]Purpose
	for i := range p {
		v, err := img.Get(fmt.Sprintf("KEY_PURPOSE_%d", i))
		if err != nil {
			return p, err
		}
		p[i] = Purpose(v)
	}
	return p, nil
}

// KeySlot is one key block as a summary shows it.
type KeySlot struct {
	Block    int
	Name     string
	Purpose  Purpose // PurposeUser on ESP32
	Empty    bool    // readable and all zero
	Readable bool
	Writable bool
	Revoked  bool // a Secure Boot digest whose SECURE_BOOT_KEY_REVOKEn is set
}

// Summary is the security state at a glance.
type Summary struct {
	Chip     chip.ID
	MAC      [6]byte
	Revision Revision
	// RevisionNote says what the revision rests on when eFuses alone do not
	// settle it (ESP32: APB_CTL_DATE bit 31 is assumed set, as on v3).
	RevisionNote             string
	FlashEncryption          bool
	FlashEncryptionPermanent bool
	SecureBoot               bool // SECURE_BOOT_EN (ESP32: ABS_DONE_1)
	SecureVersion            int
	// Download is "enabled", "secure" (secure download mode) or "disabled".
	Download string
	Keys     []KeySlot
}

// Summarize computes the Summary of an image as read from the board.
func Summarize(img *Image) (Summary, error) {
	l, err := img.layout()
	if err != nil {
		return Summary{}, err
	}
	s := Summary{Chip: img.Chip}
	g := func(n string) uint64 { v, _ := img.Get(n); return v }
	s.MAC, _ = img.MAC()
	apb := uint32(0)
	if img.Chip == chip.ESP32 {
		apb = 1 << 31
		s.RevisionNote = "assumes APB_CTL_DATE bit 31 = 1 (ESP32 v3)"
	}
	if r, err := ChipRevision(img, apb); err == nil {
		s.Revision = r
	} else {
		s.RevisionNote = err.Error()
	}
	s.FlashEncryption, s.FlashEncryptionPermanent, _ = img.FlashEncryption()
	s.SecureVersion, _ = img.SecureVersion()
	wrDis, rdDis := img.protections()
	s.Download = "enabled"
	if g(l.downloadOff) != 0 {
		s.Download = "disabled"
	}
	if img.Chip == chip.ESP32 {
		s.SecureBoot = g("ABS_DONE_1") != 0
		for b := 1; b <= 3; b++ {
			f, _ := l.field(fmt.Sprintf("BLOCK%d", b))
			s.Keys = append(s.Keys, l.slot(img, f, PurposeUser, wrDis, rdDis))
		}
		return s, nil
	}
	s.SecureBoot = g("SECURE_BOOT_EN") != 0
	if s.Download != "disabled" && g("ENABLE_SECURITY_DOWNLOAD") != 0 {
		s.Download = "secure"
	}
	ps, _ := img.KeyPurposes()
	for n, p := range ps {
		f, _ := l.field(fmt.Sprintf("BLOCK_KEY%d", n))
		k := l.slot(img, f, p, wrDis, rdDis)
		if d, ok := p.SecureBootDigest(); ok {
			k.Revoked = g(fmt.Sprintf("SECURE_BOOT_KEY_REVOKE%d", d)) != 0
		}
		s.Keys = append(s.Keys, k)
	}
	return s, nil
}

func (l *layout) slot(img *Image, f Field, p Purpose, wrDis, rdDis uint64) KeySlot {
	k := KeySlot{Block: f.Block, Name: f.Name, Purpose: p, Readable: l.readable(f, rdDis), Writable: l.writable(f, wrDis)}
	k.Empty = k.Readable && allZeroWords(img.Blocks[f.Block])
	return k
}

// crc8MAC is the ESP32 MAC CRC: CRC-8, reflected polynomial 0x8C, initial
// value 0, over the MAC in display order (§3.6).
func crc8MAC(mac []byte) byte {
	var c byte
	for _, b := range mac {
		c ^= b
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ 0x8C
			} else {
				c >>= 1
			}
		}
	}
	return c
}

func reverse(b []byte) []byte {
	r := make([]byte, len(b))
	for i := range b {
		r[len(b)-1-i] = b[i]
	}
	return r
}

func formatMAC(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":")
}

func hexBytes(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, " ")
}
