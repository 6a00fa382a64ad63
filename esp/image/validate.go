package image

import (
	"fmt"

	"fuseline/esp/chip"
)

// Validate checks that a parsed image may run on chip c at revision rev
// (major×100+minor), the way esptool's write_flash and the ESP-IDF
// bootloader do (§5.1):
//   - chip_id must be c's;
//   - the revision window: when max_rev_full is 0 (field absent), or 0xFFFF
//     with min_rev_full 0 and a non-zero legacy byte, only the legacy
//     min_chip_rev byte counts (compared with the minor revision on ESP32-C3,
//     the major elsewhere); otherwise min_rev_full ≤ rev ≤ max_rev_full;
//   - every flash-mapped segment (load address in c's IROM or DROM window)
//     has its data at a file offset congruent to the load address modulo the
//     64 KiB MMU page, so it maps when the image sits at a 64 KiB-aligned
//     partition.
//
// Errors are *FormatError naming the header field or segment at fault.
func Validate(img *Image, c chip.Chip, rev int) error {
	h := img.Header
	if h.ChipID != c.ID {
		return &FormatError{Offset: 12,
			Want: fmt.Sprintf("chip_id 0x%04X (%s)", uint16(c.ID), c.ID),
			Got:  fmt.Sprintf("0x%04X (%s)", uint16(h.ChipID), h.ChipID)}
	}
	legacy := h.MaxRevFull == 0 || (h.MaxRevFull == 0xFFFF && h.MinRevFull == 0 && h.MinRev != 0)
	if legacy {
		chipRev, what := rev/100, "major"
		if c.LegacyRevIsMinor {
			chipRev, what = rev%100, "minor"
		}
		if chipRev < int(h.MinRev) {
			return &FormatError{Offset: 14,
				Want: fmt.Sprintf("min_chip_rev <= %s revision %d of the chip (v%s)", what, chipRev, revString(rev)),
				Got:  fmt.Sprintf("%d", h.MinRev)}
		}
	} else {
		if rev < int(h.MinRevFull) {
			return &FormatError{Offset: 15,
				Want: fmt.Sprintf("min_rev_full <= chip revision v%s", revString(rev)),
				Got:  fmt.Sprintf("v%s", revString(int(h.MinRevFull)))}
		}
		if rev > int(h.MaxRevFull) {
			return &FormatError{Offset: 17,
				Want: fmt.Sprintf("max_rev_full >= chip revision v%s", revString(rev)),
				Got:  fmt.Sprintf("v%s", revString(int(h.MaxRevFull)))}
		}
	}
	for i, s := range img.Segments {
		if !flashMapped(c, s.LoadAddr) {
			continue
		}
		if uint32(s.DataOffset())%MMUPageSize != s.LoadAddr%MMUPageSize {
			return &FormatError{Offset: s.Offset,
				Want: fmt.Sprintf("segment %d data at a file offset ≡ load address 0x%08X mod 0x10000", i, s.LoadAddr),
				Got:  fmt.Sprintf("data at 0x%x", s.DataOffset())}
		}
	}
	return nil
}

// flashMapped reports whether addr lies in the chip's IROM or DROM window.
func flashMapped(c chip.Chip, addr uint32) bool {
	return (addr >= c.IROM[0] && addr < c.IROM[1]) || (addr >= c.DROM[0] && addr < c.DROM[1])
}

func revString(r int) string { return fmt.Sprintf("%d.%d", r/100, r%100) }
