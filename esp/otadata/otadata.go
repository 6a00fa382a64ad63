// Package otadata reads and writes the OTA data partition (data/ota,
// 0x2000 bytes) that tells the ESP-IDF bootloader which ota_N app to boot,
// and picks the slot the way the bootloader does.
//
// It follows docs/esp-serial-and-images.md §6.2 (esp_ota_select_entry_t,
// the CRC, bootloader_utility_get_selected_boot_partition). Under flash
// encryption the partition is ciphertext (§6.1): encrypt what Encode and
// Marshal return before writing it.
package otadata

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Layout constants.
const (
	// PartitionLen is the size of the otadata partition: two sectors.
	PartitionLen = 0x2000
	// SectorLen separates the two copies: entry i sits at i×SectorLen.
	SectorLen = 0x1000
	EntryLen  = 32
	// Empty is the ota_seq (and state) of an erased entry.
	Empty = 0xFFFFFFFF
)

// State is ota_state.
type State uint32

// OTA states.
const (
	StateNew           State = 0x0
	StatePendingVerify State = 0x1
	StateValid         State = 0x2
	StateInvalid       State = 0x3
	StateAborted       State = 0x4
	// StateUndefined is what esp_ota_set_boot_partition writes when app
	// rollback is disabled.
	StateUndefined State = 0xFFFFFFFF
)

func (s State) String() string {
	switch s {
	case StateNew:
		return "new"
	case StatePendingVerify:
		return "pending-verify"
	case StateValid:
		return "valid"
	case StateInvalid:
		return "invalid"
	case StateAborted:
		return "aborted"
	case StateUndefined:
		return "undefined"
	}
	return fmt.Sprintf("state(0x%x)", uint32(s))
}

// Entry is esp_ota_select_entry_t. Its 20-byte seq_label is unused by
// ESP-IDF; Encode writes it as 0xFF and Parse does not keep it.
type Entry struct {
	Seq   uint32 // ota_seq, 1-based; Empty when erased
	State State
	CRC   uint32 // CRC of Seq as stored
}

// CRC is the entry checksum: CRC-32/IEEE over the 4 little-endian ota_seq
// bytes as esp_rom_crc32_le(0xFFFFFFFF, …) computes it, which is not
// crc32.ChecksumIEEE (seq 1 → 0x4743989A).
func CRC(seq uint32) uint32 {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], seq)
	return crc32.Update(0xFFFFFFFF, crc32.IEEETable, b[:])
}

// NewEntry is an entry for seq in state st with its CRC.
func NewEntry(seq uint32, st State) Entry { return Entry{Seq: seq, State: st, CRC: CRC(seq)} }

// Valid reports whether the bootloader would consider the entry:
// ota_seq not erased, state neither INVALID nor ABORTED, CRC matching.
func (e Entry) Valid() bool {
	return e.Seq != Empty && e.State != StateInvalid && e.State != StateAborted && e.CRC == CRC(e.Seq)
}

// Encode is the entry's 32 bytes: seq, 20 × 0xFF, state, CRC. An erased
// entry (all fields 0xFFFFFFFF) encodes as 32 × 0xFF.
func Encode(e Entry) [EntryLen]byte {
	var b [EntryLen]byte
	binary.LittleEndian.PutUint32(b[0:], e.Seq)
	for i := 4; i < 24; i++ {
		b[i] = 0xFF
	}
	binary.LittleEndian.PutUint32(b[24:], uint32(e.State))
	binary.LittleEndian.PutUint32(b[28:], e.CRC)
	return b
}

// Decode reads one 32-byte entry from the start of b.
func Decode(b []byte) (Entry, error) {
	if len(b) < EntryLen {
		return Entry{}, &FormatError{Offset: 0, Want: "a 32-byte esp_ota_select_entry_t", Got: fmt.Sprintf("%d bytes", len(b))}
	}
	return Entry{
		Seq:   binary.LittleEndian.Uint32(b[0:]),
		State: State(binary.LittleEndian.Uint32(b[24:])),
		CRC:   binary.LittleEndian.Uint32(b[28:]),
	}, nil
}

// Erased is the pair an erased partition holds.
func Erased() [2]Entry {
	e := Entry{Seq: Empty, State: StateUndefined, CRC: Empty}
	return [2]Entry{e, e}
}

// FormatError reports bytes too short to hold otadata.
type FormatError struct {
	Offset int
	Want   string
	Got    string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("otadata: at offset 0x%x: want %s, got %s", e.Offset, e.Want, e.Got)
}

// Parse reads both entries from the partition contents b (entry 0 at 0,
// entry 1 at 0x1000; bytes past entry 1 are ignored). Any 32 bytes form an
// entry; whether it counts is Valid's business.
func Parse(b []byte) ([2]Entry, error) {
	if len(b) < SectorLen+EntryLen {
		return [2]Entry{}, &FormatError{Offset: min(len(b), SectorLen), Want: "entry 1 at offset 0x1000 (at least 0x1020 bytes)",
			Got: fmt.Sprintf("%d bytes", len(b))}
	}
	e0, _ := Decode(b)
	e1, _ := Decode(b[SectorLen:])
	return [2]Entry{e0, e1}, nil
}

// Marshal is the full 0x2000-byte partition holding the two entries, the
// rest 0xFF as after an erase.
func Marshal(entries [2]Entry) []byte {
	out := make([]byte, PartitionLen)
	for i := range out {
		out[i] = 0xFF
	}
	for i, e := range entries {
		b := Encode(e)
		copy(out[i*SectorLen:], b[:])
	}
	return out
}

// Active returns the index of the entry the bootloader follows: the valid
// one with the larger ota_seq (entry 0 on a tie), or ok false when neither
// is valid.
func Active(entries [2]Entry) (index int, ok bool) {
	v0, v1 := entries[0].Valid(), entries[1].Valid()
	switch {
	case v0 && v1:
		if entries[1].Seq > entries[0].Seq {
			return 1, true
		}
		return 0, true
	case v0:
		return 0, true
	case v1:
		return 1, true
	}
	return 0, false
}

// SelectSlot is the OTA slot the bootloader boots: (ota_seq − 1) mod
// appCount of the active entry, where appCount is the table's number of
// ota_N partitions (partition.Table.OTACount). ok is false when no entry is
// valid or there are no OTA partitions: the bootloader then boots factory
// (or, with no factory, tries ota_0).
func SelectSlot(entries [2]Entry, appCount int) (slot int, ok bool) {
	i, ok := Active(entries)
	if !ok || appCount <= 0 {
		return 0, false
	}
	return int((entries[i].Seq - 1) % uint32(appCount)), true
}

// ForSlot computes the write that makes the bootloader boot slot: which
// entry (sector) to overwrite — the inactive one, so a power cut leaves
// the old choice intact — and the entry to write there, with the smallest
// ota_seq above the current maximum that selects slot, state VALID. On a
// partition with no valid entry it is entry 0 with seq slot+1.
func ForSlot(entries [2]Entry, slot, appCount int) (index int, e Entry, err error) {
	if appCount <= 0 || appCount > 16 {
		return 0, Entry{}, fmt.Errorf("otadata: %d OTA partitions; want 1..16", appCount)
	}
	if slot < 0 || slot >= appCount {
		return 0, Entry{}, fmt.Errorf("otadata: slot %d is not one of the %d OTA partitions", slot, appCount)
	}
	active, ok := Active(entries)
	if !ok {
		return 0, NewEntry(uint32(slot)+1, StateValid), nil
	}
	cur := uint64(entries[active].Seq)
	// Smallest seq > cur with (seq−1) mod appCount == slot.
	n := uint64(appCount)
	seq := (cur/n)*n + uint64(slot) + 1
	for seq <= cur {
		seq += n
	}
	if seq >= Empty {
		return 0, Entry{}, fmt.Errorf("otadata: ota_seq would reach 0x%x; erase otadata to start again", seq)
	}
	return 1 - active, NewEntry(uint32(seq), StateValid), nil
}
