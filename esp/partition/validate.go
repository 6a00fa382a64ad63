package partition

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// Alignment is the offset alignment gen_esp32part requires for a type:
// 0x10000 (one MMU page) for apps, 0x1000 (one flash sector) for the rest.
func Alignment(t Type) uint32 {
	if t == TypeApp {
		return 0x10000
	}
	return 0x1000
}

// ValidateOptions say what the table is checked against. The zero value
// checks a table at 0x8000 without a flash size limit.
type ValidateOptions struct {
	TableOffset uint32 // 0 means DefaultOffset
	FlashSize   uint32 // bytes; 0 skips the "past the end of flash" check
}

// ValidationError is one rule a table breaks.
type ValidationError struct {
	Index  int    // entry index, -1 for a rule about the whole table
	Label  string // the entry's label
	Reason string
}

func (e *ValidationError) Error() string {
	if e.Index < 0 {
		return "partition: table: " + e.Reason
	}
	return fmt.Sprintf("partition: entry %d (%q): %s", e.Index, e.Label, e.Reason)
}

// nvsMinRW is the smallest NVS partition that may be read-write.
const nvsMinRW = 0x3000

// Validate applies gen_esp32part's verify() checks and the station's own:
// offsets aligned for their type; app sizes a multiple of 0x1000 (the erase
// sector; also what Secure Boot v2 needs); ota and coredump data never
// readonly; read-write NVS at least 0x3000; unique labels of at most 16
// bytes; no partition below the end of the table's sector (except the
// primary bootloader and table entries) or overlapping another; at most one
// otadata and one tee_ota, each exactly 0x2000; nothing past FlashSize; the
// binary fits its 0xC00 bytes. It returns every broken rule, joined, each a
// *ValidationError.
func (t Table) Validate(o ValidateOptions) error {
	tableOff := uint64(o.TableOffset)
	if tableOff == 0 {
		tableOff = DefaultOffset
	}
	var errs []error
	bad := func(i int, format string, a ...any) {
		label := ""
		if i >= 0 {
			label = t.Entries[i].Label
		}
		errs = append(errs, &ValidationError{Index: i, Label: label, Reason: fmt.Sprintf(format, a...)})
	}

	seen := map[string]int{}
	otadata, teeOTA := 0, 0
	for i, e := range t.Entries {
		if err := checkLabel(e.Label); err != nil {
			bad(i, "%v", err)
		}
		if j, dup := seen[e.Label]; dup {
			bad(i, "label also used by entry %d; labels must be unique", j)
		} else {
			seen[e.Label] = i
		}
		if a := Alignment(e.Type); e.Offset%a != 0 {
			bad(i, "offset 0x%x is not aligned to 0x%x", e.Offset, a)
		}
		if e.Type == TypeApp && e.Size%0x1000 != 0 {
			bad(i, "app size 0x%x is not a multiple of 0x1000", e.Size)
		}
		if e.End() > 1<<32 {
			bad(i, "offset 0x%x + size 0x%x passes 4 GiB", e.Offset, e.Size)
		}
		if e.Type == TypeData && (e.SubType == SubOTAData || e.SubType == SubCoredump) && e.Flags&ReadOnly != 0 {
			bad(i, "%s partitions are always read-write and cannot be readonly", SubTypeName(e.Type, e.SubType))
		}
		if e.Type == TypeData && e.SubType == SubNVS && e.Size < nvsMinRW && e.Flags&ReadOnly == 0 {
			bad(i, "NVS of 0x%x bytes must be readonly (read-write NVS needs at least 0x%x)", e.Size, nvsMinRW)
		}
		if e.Type == TypeData && e.SubType == SubOTAData {
			otadata++
			if e.Size != 0x2000 {
				bad(i, "otadata size is 0x%x, must be 0x2000", e.Size)
			}
		}
		if e.Type == TypeData && e.SubType == SubTEEOTA {
			teeOTA++
			if e.Size != 0x2000 {
				bad(i, "TEE otadata size is 0x%x, must be 0x2000", e.Size)
			}
		}
		if o.FlashSize != 0 && e.End() > uint64(o.FlashSize) {
			bad(i, "ends at 0x%x, past the end of the 0x%x-byte flash", e.End(), o.FlashSize)
		}
		if !e.isPrimary() && uint64(e.Offset) < tableOff+SectorLen {
			bad(i, "offset 0x%x is below 0x%x, the end of the partition table's sector", e.Offset, tableOff+SectorLen)
		}
	}
	if otadata > 1 {
		bad(-1, "%d otadata partitions; at most one is allowed", otadata)
	}
	if teeOTA > 1 {
		bad(-1, "%d TEE otadata partitions; at most one is allowed", teeOTA)
	}

	order := make([]int, len(t.Entries))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(t.Entries[a].Offset, t.Entries[b].Offset) })
	// Compare each partition with the one reaching furthest so far, so a
	// partition inside a large one is caught even after a smaller neighbour.
	for k := 1; k < len(order); k++ {
		far, cur := t.Entries[order[k-1]], t.Entries[order[k]]
		for _, j := range order[:k] {
			if t.Entries[j].End() > far.End() {
				far = t.Entries[j]
			}
		}
		if uint64(cur.Offset) < far.End() {
			bad(order[k], "offset 0x%x overlaps %q at 0x%x-0x%x", cur.Offset, far.Label, far.Offset, far.End()-1)
		}
	}

	n := len(t.Entries)
	if !t.NoMD5 {
		n++
	}
	if n*EntryLen >= MaxLen {
		bad(-1, "%d entries do not fit the 0x%x-byte table region", len(t.Entries), MaxLen)
	}
	return errors.Join(errs...)
}
