package efuse

import (
	"fmt"
	"strings"

	"fuseline/esp/chip"
)

// Purpose is the value of a KEY_PURPOSE_n field on S3/C3 (§3.4).
type Purpose uint8

// Key purposes. Values above PurposeSecureBootDigest2 are "FORBIDDEN_STATE".
const (
	PurposeUser                     Purpose = 0
	PurposeReserved                 Purpose = 1
	PurposeXTSAES256Key1            Purpose = 2 // S3 only
	PurposeXTSAES256Key2            Purpose = 3 // S3 only
	PurposeXTSAES128Key             Purpose = 4
	PurposeHMACDownAll              Purpose = 5
	PurposeHMACDownJTAG             Purpose = 6
	PurposeHMACDownDigitalSignature Purpose = 7
	PurposeHMACUp                   Purpose = 8
	PurposeSecureBootDigest0        Purpose = 9
	PurposeSecureBootDigest1        Purpose = 10
	PurposeSecureBootDigest2        Purpose = 11
)

func purposeNames() []string {
	return []string{"USER", "RESERVED", "XTS_AES_256_KEY_1", "XTS_AES_256_KEY_2", "XTS_AES_128_KEY",
		"HMAC_DOWN_ALL", "HMAC_DOWN_JTAG", "HMAC_DOWN_DIGITAL_SIGNATURE", "HMAC_UP",
		"SECURE_BOOT_DIGEST0", "SECURE_BOOT_DIGEST1", "SECURE_BOOT_DIGEST2"}
}

// String is espefuse's name for the purpose.
func (p Purpose) String() string {
	if n := purposeNames(); int(p) < len(n) {
		return n[p]
	}
	return fmt.Sprintf("FORBIDDEN_STATE(%d)", uint8(p))
}

// ParsePurpose accepts espefuse's names (case-insensitive) or a number.
func ParsePurpose(s string) (Purpose, error) {
	for i, n := range purposeNames() {
		if strings.EqualFold(s, n) {
			return Purpose(i), nil
		}
	}
	var v uint8
	if _, err := fmt.Sscanf(s, "%d", &v); err == nil && fmt.Sprint(v) == s && int(v) < len(purposeNames()) {
		return Purpose(v), nil
	}
	return 0, fmt.Errorf("efuse: unknown key purpose %q: %w", s, ErrRange)
}

// Valid reports whether the purpose exists on the chip (C3 has no
// XTS-AES-256 purposes; classic ESP32 has no purposes at all).
func (p Purpose) Valid(id chip.ID) bool {
	switch id {
	case chip.ESP32S3:
		return p <= PurposeSecureBootDigest2
	case chip.ESP32C3:
		return p <= PurposeSecureBootDigest2 && p != PurposeXTSAES256Key1 && p != PurposeXTSAES256Key2
	}
	return false
}

// IsXTS reports a flash-encryption key purpose; burn_key stores such keys
// reversed (§2.5) and espefuse refuses them in KEY_PURPOSE_5 (§3.4).
func (p Purpose) IsXTS() bool {
	return p == PurposeXTSAES128Key || p == PurposeXTSAES256Key1 || p == PurposeXTSAES256Key2
}

// IsHMAC reports an HMAC key purpose.
func (p Purpose) IsHMAC() bool { return p >= PurposeHMACDownAll && p <= PurposeHMACUp }

// SecureBootDigest returns the digest slot (0…2) of a SECURE_BOOT_DIGESTn purpose.
func (p Purpose) SecureBootDigest() (int, bool) {
	if p >= PurposeSecureBootDigest0 && p <= PurposeSecureBootDigest2 {
		return int(p - PurposeSecureBootDigest0), true
	}
	return 0, false
}

// Secret reports whether a block with this purpose holds a secret key, which
// burn_key read-protects by default and which must never be shown.
func (p Purpose) Secret() bool { return p.IsXTS() || p.IsHMAC() }
