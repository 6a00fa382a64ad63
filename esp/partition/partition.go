// Package partition reads and writes ESP-IDF partition tables: the binary
// table the bootloader reads at 0x8000 and the CSV that gen_esp32part.py
// turns into it, in both directions, with the checks gen_esp32part makes.
//
// It follows docs/esp-serial-and-images.md §6.1 and, for the CSV dialect
// and the checks, ESP-IDF's components/partition_table/gen_esp32part.py
// (v1.5). The station uses it to know where each image goes and which
// regions must be written as ciphertext under flash encryption.
package partition

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Layout constants.
const (
	// DefaultOffset is CONFIG_PARTITION_TABLE_OFFSET's default.
	DefaultOffset = 0x8000
	// SectorLen is the flash sector the table occupies; partitions start
	// after it.
	SectorLen = 0x1000
	// MaxLen is the table region: entries, the MD5 entry and 0xFF padding.
	// The rest of the sector is left for a Secure Boot signature.
	MaxLen   = 0xC00
	EntryLen = 32
	// LabelLen is the label field; a 16-byte label has no NUL.
	LabelLen = 16
)

var (
	entryMagic = [2]byte{0xAA, 0x50}
	md5Magic   = [2]byte{0xEB, 0xEB}
)

// Type is a partition type.
type Type uint8

// Partition types. 0x40–0xFE are free for custom use.
const (
	TypeApp            Type = 0x00
	TypeData           Type = 0x01
	TypeBootloader     Type = 0x02 // recent ESP-IDF only
	TypePartitionTable Type = 0x03 // recent ESP-IDF only
)

// SubType is a partition subtype; its meaning depends on the Type.
type SubType uint8

// App subtypes.
const (
	SubFactory SubType = 0x00
	SubOTA0    SubType = 0x10 // ota_0; ota_N is SubOTA0+N, N < 16
	SubOTA15   SubType = 0x1F
	SubTest    SubType = 0x20
	SubTEE0    SubType = 0x30
	SubTEE1    SubType = 0x31
)

// Data subtypes.
const (
	SubOTAData   SubType = 0x00 // otadata
	SubPHY       SubType = 0x01
	SubNVS       SubType = 0x02
	SubCoredump  SubType = 0x03
	SubNVSKeys   SubType = 0x04
	SubEfuse     SubType = 0x05
	SubUndefined SubType = 0x06
	SubESPHTTPD  SubType = 0x80
	SubFAT       SubType = 0x81
	SubSPIFFS    SubType = 0x82
	SubLittleFS  SubType = 0x83
	SubTEEOTA    SubType = 0x90
)

// Bootloader and partition-table subtypes.
const (
	SubPrimary  SubType = 0x00
	SubOTA      SubType = 0x01
	SubRecovery SubType = 0x02 // bootloader only
)

// Flags is the flags word of an entry.
type Flags uint32

// Flag bits.
const (
	Encrypted Flags = 1 << 0
	ReadOnly  Flags = 1 << 1 // data partitions other than ota and coredump
)

// Entry is one partition (esp_partition_info_t without its magic).
type Entry struct {
	Label   string // at most 16 bytes
	Type    Type
	SubType SubType
	Offset  uint32
	Size    uint32
	Flags   Flags
}

// End is the first byte after the partition.
func (e Entry) End() uint64 { return uint64(e.Offset) + uint64(e.Size) }

// IsOTA reports an app partition ota_0…ota_15, and which.
func (e Entry) IsOTA() (slot int, ok bool) {
	if e.Type == TypeApp && e.SubType >= SubOTA0 && e.SubType <= SubOTA15 {
		return int(e.SubType - SubOTA0), true
	}
	return 0, false
}

func (e Entry) isPrimary() bool {
	return (e.Type == TypeBootloader || e.Type == TypePartitionTable) && e.SubType == SubPrimary
}

// Table is a partition table.
type Table struct {
	Entries []Entry
	// NoMD5 says the binary has no MD5 entry (gen_esp32part --disable-md5sum,
	// or ESP-IDF before v3.1). The zero value writes one.
	NoMD5 bool
}

// FormatError reports input that is not a partition table: what was
// expected and what was found, at which byte offset (and, in a CSV, line).
type FormatError struct {
	Offset int // byte offset in the input
	Line   int // 1-based CSV line; 0 for binary input
	Want   string
	Got    string
}

func (e *FormatError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("partition: line %d (offset 0x%x): want %s, got %s", e.Line, e.Offset, e.Want, e.Got)
	}
	return fmt.Sprintf("partition: at offset 0x%x: want %s, got %s", e.Offset, e.Want, e.Got)
}

// Parse reads a binary table: 32-byte entries, an optional MD5 entry that
// must be last, and the end marker (32 bytes of 0xFF), all inside the first
// 0xC00 bytes. Bytes after the end marker are ignored. Every error is a
// *FormatError.
func Parse(b []byte) (Table, error) {
	var t Table
	limit := min(len(b), MaxLen)
	md5Seen := false
	for o := 0; ; o += EntryLen {
		if o+EntryLen > limit {
			end := "input"
			if limit == MaxLen {
				end = "0xC00-byte table region"
			}
			return Table{}, &FormatError{Offset: o, Want: "another entry or the end marker (32 × 0xFF)",
				Got: fmt.Sprintf("the end of the %s at 0x%x", end, limit)}
		}
		row := b[o : o+EntryLen]
		switch {
		case isEnd(row):
			t.NoMD5 = !md5Seen
			return t, nil
		case md5Seen:
			return Table{}, &FormatError{Offset: o, Want: "the end marker after the MD5 entry", Got: hex.EncodeToString(row[:4]) + "…"}
		case [2]byte(row[:2]) == md5Magic:
			sum := md5.Sum(b[:o])
			if !bytes.Equal(row[16:], sum[:]) {
				return Table{}, &FormatError{Offset: o + 16, Want: "MD5 " + hex.EncodeToString(sum[:]) + " of the entries before it",
					Got: hex.EncodeToString(row[16:])}
			}
			md5Seen = true
		case [2]byte(row[:2]) == entryMagic:
			t.Entries = append(t.Entries, decodeEntry(row))
		default:
			return Table{}, &FormatError{Offset: o, Want: "entry magic AA 50, MD5 magic EB EB or the end marker",
				Got: fmt.Sprintf("% X", row[:2])}
		}
	}
}

func isEnd(row []byte) bool {
	for _, c := range row {
		if c != 0xFF {
			return false
		}
	}
	return true
}

func decodeEntry(row []byte) Entry {
	label := row[12:28]
	if i := bytes.IndexByte(label, 0); i >= 0 {
		label = label[:i]
	}
	return Entry{
		Type:    Type(row[2]),
		SubType: SubType(row[3]),
		Offset:  binary.LittleEndian.Uint32(row[4:]),
		Size:    binary.LittleEndian.Uint32(row[8:]),
		Label:   string(label),
		Flags:   Flags(binary.LittleEndian.Uint32(row[28:])),
	}
}

// MarshalBinary encodes the table as gen_esp32part does: the entries, the
// MD5 entry (unless NoMD5), 0xFF to 0xC00 bytes. The end marker is the
// first row of padding. It fails when a label is longer than 16 bytes or
// holds a NUL, or when the table does not leave room for the end marker.
func (t Table) MarshalBinary() ([]byte, error) {
	n := len(t.Entries)
	if !t.NoMD5 {
		n++
	}
	if n*EntryLen >= MaxLen {
		return nil, fmt.Errorf("partition: %d entries take 0x%x bytes; the table region is 0x%x including the end marker", len(t.Entries), n*EntryLen, MaxLen)
	}
	out := bytes.Repeat([]byte{0xFF}, MaxLen)
	for i, e := range t.Entries {
		if err := checkLabel(e.Label); err != nil {
			return nil, fmt.Errorf("partition: entry %d: %w", i, err)
		}
		row := out[i*EntryLen : (i+1)*EntryLen]
		copy(row, entryMagic[:])
		row[2], row[3] = byte(e.Type), byte(e.SubType)
		binary.LittleEndian.PutUint32(row[4:], e.Offset)
		binary.LittleEndian.PutUint32(row[8:], e.Size)
		clear(row[12:28])
		copy(row[12:28], e.Label)
		binary.LittleEndian.PutUint32(row[28:], uint32(e.Flags))
	}
	if !t.NoMD5 {
		o := len(t.Entries) * EntryLen
		sum := md5.Sum(out[:o])
		copy(out[o:], md5Magic[:])
		copy(out[o+16:], sum[:])
	}
	return out, nil
}

func checkLabel(l string) error {
	if len(l) > LabelLen {
		return fmt.Errorf("label %q is %d bytes, at most %d fit", l, len(l), LabelLen)
	}
	if bytes.IndexByte([]byte(l), 0) >= 0 {
		return fmt.Errorf("label %q holds a NUL byte", l)
	}
	return nil
}

// Find returns the first entry of the given type and subtype.
func (t Table) Find(typ Type, sub SubType) (Entry, bool) {
	for _, e := range t.Entries {
		if e.Type == typ && e.SubType == sub {
			return e, true
		}
	}
	return Entry{}, false
}

// FindLabel returns the entry with the given label.
func (t Table) FindLabel(label string) (Entry, bool) {
	for _, e := range t.Entries {
		if e.Label == label {
			return e, true
		}
	}
	return Entry{}, false
}

// OTACount is the bootloader's app_count: the number of ota_N app
// partitions in the table, whatever their N (ESP-IDF
// bootloader_utility_load_partition_table counts each one). Slot selection
// from otadata takes the sequence number modulo this.
func (t Table) OTACount() int {
	n := 0
	for _, e := range t.Entries {
		if _, ok := e.IsOTA(); ok {
			n++
		}
	}
	return n
}

// Encrypted reports whether e must be written as ciphertext when flash
// encryption is on (§6.1): ESP-IDF's partition driver treats every app
// partition, otadata, nvs_keys, and (recent IDF) bootloader and
// partition-table partitions as encrypted whatever the flag says; any other
// partition is encrypted when it carries the encrypted flag. (The
// bootloader and the table themselves are always encrypted too.)
func (t Table) Encrypted(e Entry) bool {
	switch {
	case e.Flags&Encrypted != 0:
		return true
	case e.Type == TypeApp, e.Type == TypeBootloader, e.Type == TypePartitionTable:
		return true
	case e.Type == TypeData && (e.SubType == SubOTAData || e.SubType == SubNVSKeys):
		return true
	}
	return false
}

// DefaultTable is the demo's table: ESP-IDF's "factory app, two OTA
// definitions" layout (partitions_two_ota.csv) with the offsets
// gen_esp32part computes for a table at 0x8000. It ends at 0x310000, so it
// fits 4 MB flash.
//
//	nvs      data nvs     0x9000   0x4000
//	otadata  data ota     0xd000   0x2000
//	phy_init data phy     0xf000   0x1000
//	factory  app  factory 0x10000  1M
//	ota_0    app  ota_0   0x110000 1M
//	ota_1    app  ota_1   0x210000 1M
func DefaultTable() Table {
	return Table{Entries: []Entry{
		{Label: "nvs", Type: TypeData, SubType: SubNVS, Offset: 0x9000, Size: 0x4000},
		{Label: "otadata", Type: TypeData, SubType: SubOTAData, Offset: 0xD000, Size: 0x2000},
		{Label: "phy_init", Type: TypeData, SubType: SubPHY, Offset: 0xF000, Size: 0x1000},
		{Label: "factory", Type: TypeApp, SubType: SubFactory, Offset: 0x10000, Size: 1 << 20},
		{Label: "ota_0", Type: TypeApp, SubType: SubOTA0, Offset: 0x110000, Size: 1 << 20},
		{Label: "ota_1", Type: TypeApp, SubType: SubOTA0 + 1, Offset: 0x210000, Size: 1 << 20},
	}}
}
