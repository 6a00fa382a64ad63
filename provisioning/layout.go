package provisioning

import (
	"cmp"
	"fmt"
	"slices"

	"fuseline/esp/chip"
	"fuseline/esp/image"
	"fuseline/esp/partition"
	"fuseline/release"
)

// sectorSize is the flash erase unit: every region starts on one, and the
// partition table has one to itself (its 0xC00 bytes and a signature).
const sectorSize = 0x1000

// findTable returns the index of the release's partition table image: the
// one file named as the table (role partition-table in a signed manifest,
// the "partition-table" entry of flasher_args.json) or, when no file is
// named so, the file at the chip's default offset (chip.PartitionTableOffset);
// -1 when there is none. Two files named as the table are refused: the
// bootloader reads one offset, and which one cannot be told from outside.
func findTable(c chip.Chip, images []Image) (int, error) {
	found, fallback := -1, -1
	for i, im := range images {
		switch {
		case im.Role == string(release.RolePartitionTable):
			if found >= 0 {
				return -1, &IntakeError{File: im.File, Reason: fmt.Sprintf("a second partition table (at 0x%x; %s at 0x%x is one already)", im.Offset, images[found].File, images[found].Offset)}
			}
			found = i
		case im.Offset == c.PartitionTableOffset:
			fallback = i
		}
	}
	if found < 0 {
		found = fallback
	}
	return found, nil
}

// checkLayout refuses, before anything is written or burned, a flash
// layout the chip cannot boot from (images sorted by offset, table the
// index of the partition table):
//   - every region on a 4 KiB sector, none overlapping the next;
//   - a bootloader only at the chip's bootloader offset (the ROM loads it
//     from nowhere else), and one there;
//   - a bootloader the Secure Boot v2 ROM can load for verification
//     (chip.MaxSecureBootBootloader);
//   - the partition table on a sector of its own, after the bootloader's
//     offset and past the bootloader's last byte: a second-stage
//     bootloader reads the table at the CONFIG_PARTITION_TABLE_OFFSET it
//     was built with, and a table inside the bootloader's image (an ESP32
//     bootloader at 0x1000 of 0x9000 bytes with the table at 0x8000) is a
//     build that overwrites one with the other.
//
// The release's table offset is taken to be the bootloader's
// CONFIG_PARTITION_TABLE_OFFSET: ESP-IDF writes flasher_args.json from the
// same sdkconfig, and the signer of a manifest names it. The compiled-in
// value cannot be read back from the bootloader image.
func checkLayout(c chip.Chip, images []Image, table int) error {
	boot := -1
	for i := range images {
		im := &images[i]
		switch {
		case im.Offset == c.BootloaderOffset:
			boot = i
		case im.Role == string(release.RoleBootloader):
			return &IntakeError{File: im.File, Reason: fmt.Sprintf("a bootloader at 0x%x: the %s ROM loads it from 0x%x", im.Offset, c.Name, c.BootloaderOffset)}
		}
	}
	if boot < 0 {
		return &IntakeError{Reason: fmt.Sprintf("the release has no bootloader at 0x%x", c.BootloaderOffset)}
	}
	if table < 0 {
		return &IntakeError{Reason: fmt.Sprintf("the release has no partition table (none named so, nothing at 0x%x)", c.PartitionTableOffset)}
	}
	// The two the bootloader build ties together first, with what to change.
	t, b := &images[table], &images[boot]
	if t.Offset <= b.Offset {
		return &IntakeError{File: t.File, Reason: fmt.Sprintf("a partition table at 0x%x, at or before the bootloader at 0x%x: no bootloader can be built so", t.Offset, b.Offset)}
	}
	if end := uint64(b.Offset) + uint64(len(b.Data)); end > uint64(t.Offset) {
		return &IntakeError{File: b.File, Reason: fmt.Sprintf("the bootloader (0x%x bytes at 0x%x, to 0x%x) runs into the partition table at 0x%x: build it with CONFIG_PARTITION_TABLE_OFFSET at or above 0x%x",
			len(b.Data), b.Offset, end, t.Offset, (end+sectorSize-1)&^(sectorSize-1))}
	}
	// Under Secure Boot v2 (the station burns it) the ROM loads the
	// bootloader into a fixed buffer before it verifies it.
	if n := len(b.Data) - image.SignatureSectorLen; n > int(c.MaxSecureBootBootloader) {
		return &IntakeError{File: b.File, Reason: fmt.Sprintf("the bootloader is 0x%x bytes before its signature sector; the %s ROM verifies at most 0x%x under Secure Boot v2", n, c.Name, c.MaxSecureBootBootloader)}
	}
	if len(t.Data) > sectorSize {
		return &IntakeError{File: t.File, Reason: fmt.Sprintf("%d bytes: a partition table has one 4 KiB sector (0x%x bytes of entries)", len(t.Data), partition.MaxLen)}
	}
	for i := range images {
		im := &images[i]
		if im.Offset%sectorSize != 0 {
			return &IntakeError{File: im.File, Reason: fmt.Sprintf("offset 0x%x is not on a 4 KiB sector", im.Offset)}
		}
		if i > 0 {
			o := &images[i-1]
			if end := uint64(o.Offset) + uint64(len(o.Data)); end > uint64(im.Offset) {
				return &IntakeError{File: im.File, Reason: fmt.Sprintf("at 0x%x overlaps %s (0x%x…0x%x)", im.Offset, o.File, o.Offset, end)}
			}
		}
	}
	return nil
}

// checkLayout checks r's images again (Run does, before it touches the
// board): a Release is meant to come from Intake unchanged, and a layout
// that cannot boot must never reach the burn.
func (r *Release) checkLayout() error {
	images := slices.SortedStableFunc(slices.Values(r.Images), func(a, b Image) int { return cmp.Compare(a.Offset, b.Offset) })
	ti, err := findTable(r.Chip, images)
	if err != nil {
		return err
	}
	if err := checkLayout(r.Chip, images, ti); err != nil {
		return err
	}
	if images[ti].Offset != r.TableOffset {
		return &IntakeError{File: images[ti].File, Reason: fmt.Sprintf("the partition table is at 0x%x, the release says 0x%x", images[ti].Offset, r.TableOffset)}
	}
	return nil
}
