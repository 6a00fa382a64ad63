package image

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Descriptor constants (§5.3, §5.4).
const (
	AppDescMagic        = 0xABCD5432 // esp_app_desc_t.magic_word
	AppDescLen          = 256
	BootloaderDescMagic = 0x50 // esp_bootloader_desc_t.magic_byte
	BootloaderDescLen   = 80
	// AppDescOffset is where the app descriptor sits in an app image: the
	// data of segment 0, after the 24-byte header and 8-byte segment header.
	AppDescOffset = HeaderLen + SegmentHeaderLen
)

// AppDesc is esp_app_desc_t, the 256-byte descriptor ESP-IDF links at the
// start of an app's first DROM segment (§5.3). Strings are NUL-padded in
// the image and are not NUL-terminated when they fill their field.
type AppDesc struct {
	Magic uint32 // always AppDescMagic once parsed
	// SecureVersion is the anti-rollback version the bootloader compares
	// with the SECURE_VERSION eFuse (esp-security-facts §3.9).
	SecureVersion      uint32
	Version            string // char[32]
	ProjectName        string // char[32]
	Time               string // char[16], e.g. "19:46:07"
	Date               string // char[16], e.g. "Sep 13 2022"
	IDFVersion         string // char[32]
	ELFSHA256          [32]byte
	MinEfuseBlkRevFull uint16
	MaxEfuseBlkRevFull uint16
	MMUPageSize        uint8 // log2 of the page size; 0 means the default 64 KiB
}

// app descriptor field offsets within the struct.
const (
	adSecureVersion = 4
	adVersion       = 16
	adProject       = 48
	adTime          = 80
	adDate          = 96
	adIDF           = 112
	adELFSHA        = 144
	adMinBlkRev     = 176
	adMaxBlkRev     = 178
	adMMUPage       = 180
)

// ParseAppDesc decodes an app descriptor from the first 256 bytes of b.
// The offsets in errors are relative to b.
func ParseAppDesc(b []byte) (*AppDesc, error) {
	if len(b) < AppDescLen {
		return nil, formatErr(0, "a 256-byte esp_app_desc_t", "%d bytes", len(b))
	}
	if m := binary.LittleEndian.Uint32(b); m != AppDescMagic {
		return nil, formatErr(0, "app descriptor magic 0xABCD5432", "0x%08X", m)
	}
	d := &AppDesc{
		Magic:              AppDescMagic,
		SecureVersion:      binary.LittleEndian.Uint32(b[adSecureVersion:]),
		Version:            cstring(b[adVersion : adVersion+32]),
		ProjectName:        cstring(b[adProject : adProject+32]),
		Time:               cstring(b[adTime : adTime+16]),
		Date:               cstring(b[adDate : adDate+16]),
		IDFVersion:         cstring(b[adIDF : adIDF+32]),
		MinEfuseBlkRevFull: binary.LittleEndian.Uint16(b[adMinBlkRev:]),
		MaxEfuseBlkRevFull: binary.LittleEndian.Uint16(b[adMaxBlkRev:]),
		MMUPageSize:        b[adMMUPage],
	}
	copy(d.ELFSHA256[:], b[adELFSHA:adELFSHA+32])
	return d, nil
}

// MarshalBinary encodes the descriptor as the 256 bytes ESP-IDF links. The
// magic word is always AppDescMagic; reserved bytes are zero. It fails when
// a string does not fit its field or holds a NUL byte.
func (d *AppDesc) MarshalBinary() ([]byte, error) {
	b := make([]byte, AppDescLen)
	binary.LittleEndian.PutUint32(b, AppDescMagic)
	binary.LittleEndian.PutUint32(b[adSecureVersion:], d.SecureVersion)
	for _, f := range []struct {
		name string
		off  int
		size int
		v    string
	}{
		{"version", adVersion, 32, d.Version},
		{"project_name", adProject, 32, d.ProjectName},
		{"time", adTime, 16, d.Time},
		{"date", adDate, 16, d.Date},
		{"idf_ver", adIDF, 32, d.IDFVersion},
	} {
		if err := putCString(b[f.off:f.off+f.size], f.v); err != nil {
			return nil, fmt.Errorf("image: app descriptor %s: %w", f.name, err)
		}
	}
	copy(b[adELFSHA:], d.ELFSHA256[:])
	binary.LittleEndian.PutUint16(b[adMinBlkRev:], d.MinEfuseBlkRevFull)
	binary.LittleEndian.PutUint16(b[adMaxBlkRev:], d.MaxEfuseBlkRevFull)
	b[adMMUPage] = d.MMUPageSize
	return b, nil
}

// BootloaderDesc is esp_bootloader_desc_t (ESP-IDF ≥ v5.2), 80 bytes at the
// start of a bootloader's first DRAM segment (§5.4).
type BootloaderDesc struct {
	Magic uint8 // always BootloaderDescMagic once parsed
	// SecureVersion is byte 3: reserved in ESP-IDF v5.2, the bootloader's
	// secure_version in newer releases (§9 item 6).
	SecureVersion uint8
	Version       uint32 // CONFIG_BOOTLOADER_PROJECT_VER
	IDFVersion    string // char[32]
	DateTime      string // char[24], e.g. "Apr 25 2023 00:13:32"
}

// ParseBootloaderDesc decodes a bootloader descriptor from the first 80
// bytes of b. The offsets in errors are relative to b.
func ParseBootloaderDesc(b []byte) (*BootloaderDesc, error) {
	if len(b) < BootloaderDescLen {
		return nil, formatErr(0, "an 80-byte esp_bootloader_desc_t", "%d bytes", len(b))
	}
	if b[0] != BootloaderDescMagic {
		return nil, formatErr(0, "bootloader descriptor magic 0x50", "0x%02X", b[0])
	}
	return &BootloaderDesc{
		Magic:         BootloaderDescMagic,
		SecureVersion: b[3],
		Version:       binary.LittleEndian.Uint32(b[4:]),
		IDFVersion:    cstring(b[8:40]),
		DateTime:      cstring(b[40:64]),
	}, nil
}

// MarshalBinary encodes the descriptor as its 80 bytes.
func (d *BootloaderDesc) MarshalBinary() ([]byte, error) {
	b := make([]byte, BootloaderDescLen)
	b[0] = BootloaderDescMagic
	b[3] = d.SecureVersion
	binary.LittleEndian.PutUint32(b[4:], d.Version)
	if err := putCString(b[8:40], d.IDFVersion); err != nil {
		return nil, fmt.Errorf("image: bootloader descriptor idf_ver: %w", err)
	}
	if err := putCString(b[40:64], d.DateTime); err != nil {
		return nil, fmt.Errorf("image: bootloader descriptor date_time: %w", err)
	}
	return b, nil
}

// parseDescriptors looks for a descriptor at the start of segment 0. The
// app descriptor's 32-bit magic wins over the bootloader's single byte.
func (img *Image) parseDescriptors() {
	if len(img.Segments) == 0 {
		return
	}
	d := img.Segments[0].Data
	if app, err := ParseAppDesc(d); err == nil {
		img.App = app
		return
	}
	if bl, err := ParseBootloaderDesc(d); err == nil {
		img.Bootloader = bl
	}
}

func putCString(dst []byte, s string) error {
	if len(s) > len(dst) {
		return fmt.Errorf("%q is %d bytes, the field holds %d", s, len(s), len(dst))
	}
	if bytes.IndexByte([]byte(s), 0) >= 0 {
		return fmt.Errorf("%q holds a NUL byte", s)
	}
	copy(dst, s)
	return nil
}
