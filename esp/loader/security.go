package loader

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strings"
)

// SecurityFlags are the flag bits of GET_SECURITY_INFO (§1.7).
type SecurityFlags uint32

// Flag bits, identical on every chip that answers GET_SECURITY_INFO.
const (
	FlagSecureBootEn               SecurityFlags = 1 << 0
	FlagSecureBootAggressiveRevoke SecurityFlags = 1 << 1
	FlagSecureDownloadEnable       SecurityFlags = 1 << 2
	FlagSecureBootKeyRevoke0       SecurityFlags = 1 << 3
	FlagSecureBootKeyRevoke1       SecurityFlags = 1 << 4
	FlagSecureBootKeyRevoke2       SecurityFlags = 1 << 5
	FlagSoftDisJTAG                SecurityFlags = 1 << 6
	FlagHardDisJTAG                SecurityFlags = 1 << 7
	FlagDisUSB                     SecurityFlags = 1 << 8
	FlagDisDownloadDcache          SecurityFlags = 1 << 9
	FlagDisDownloadIcache          SecurityFlags = 1 << 10
)

// flagName names flag bit i, "" for bits without a meaning.
func flagName(i int) string {
	names := [...]string{
		"SECURE_BOOT_EN", "SECURE_BOOT_AGGRESSIVE_REVOKE", "SECURE_DOWNLOAD_ENABLE",
		"SECURE_BOOT_KEY_REVOKE0", "SECURE_BOOT_KEY_REVOKE1", "SECURE_BOOT_KEY_REVOKE2",
		"SOFT_DIS_JTAG", "HARD_DIS_JTAG", "DIS_USB", "DIS_DOWNLOAD_DCACHE", "DIS_DOWNLOAD_ICACHE",
	}
	if i >= 0 && i < len(names) {
		return names[i]
	}
	return ""
}

// Names returns the names of the set bits, low bit first; unknown bits as "BIT<n>".
func (f SecurityFlags) Names() []string {
	var out []string
	for i := 0; i < 32; i++ {
		if f&(1<<i) == 0 {
			continue
		}
		if n := flagName(i); n != "" {
			out = append(out, n)
		} else {
			out = append(out, fmt.Sprintf("BIT%d", i))
		}
	}
	return out
}

// String joins the names with "|", or "0" when no bit is set.
func (f SecurityFlags) String() string {
	if f == 0 {
		return "0"
	}
	return strings.Join(f.Names(), "|")
}

// SecurityInfo is the GET_SECURITY_INFO result: 20 bytes on S3/C3, 12 on
// ESP32-S2 (no chip id / eco version).
type SecurityInfo struct {
	Flags         SecurityFlags
	FlashCryptCnt uint8    // SPI_BOOT_CRYPT_CNT
	KeyPurposes   [7]uint8 // KEY0..KEY5 purposes + one trailing entry
	// HasChipID says the 20-byte form was (or is to be) used.
	HasChipID  bool
	ChipID     uint32
	EcoVersion uint32 // esptool's "API version"
}

// Security info lengths.
const (
	SecurityInfoLen      = 20
	SecurityInfoShortLen = 12
)

// Encode returns the 20-byte form when HasChipID, else the 12-byte form.
func (s SecurityInfo) Encode() []byte {
	n := SecurityInfoShortLen
	if s.HasChipID {
		n = SecurityInfoLen
	}
	b := make([]byte, n)
	binary.LittleEndian.PutUint32(b, uint32(s.Flags))
	b[4] = s.FlashCryptCnt
	copy(b[5:12], s.KeyPurposes[:])
	if s.HasChipID {
		binary.LittleEndian.PutUint32(b[12:], s.ChipID)
		binary.LittleEndian.PutUint32(b[16:], s.EcoVersion)
	}
	return b
}

// ParseSecurityInfo accepts the 20- and 12-byte forms.
func ParseSecurityInfo(b []byte) (SecurityInfo, error) {
	if len(b) != SecurityInfoLen && len(b) != SecurityInfoShortLen {
		return SecurityInfo{}, lenErr("GET_SECURITY_INFO result", len(b), "20 or 12 bytes")
	}
	s := SecurityInfo{Flags: SecurityFlags(binary.LittleEndian.Uint32(b)), FlashCryptCnt: b[4]}
	copy(s.KeyPurposes[:], b[5:12])
	if len(b) == SecurityInfoLen {
		s.HasChipID = true
		s.ChipID = binary.LittleEndian.Uint32(b[12:])
		s.EcoVersion = binary.LittleEndian.Uint32(b[16:])
	}
	return s, nil
}

// SecureDownload reports the chip's ROM is in Secure Download Mode.
func (s SecurityInfo) SecureDownload() bool { return s.Flags&FlagSecureDownloadEnable != 0 }

// SecureBoot reports Secure Boot v2 is enabled.
func (s SecurityInfo) SecureBoot() bool { return s.Flags&FlagSecureBootEn != 0 }

// FlashEncryption reports flash encryption is on: an odd number of bits set
// in SPI_BOOT_CRYPT_CNT.
func (s SecurityInfo) FlashEncryption() bool { return bits.OnesCount8(s.FlashCryptCnt)%2 == 1 }
