package image

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"

	"fuseline/esp/chip"
)

// Kind says what Synth builds.
type Kind int

const (
	// App is an ESP-IDF application: app descriptor in the first DROM
	// segment, flash-mapped code at its MMU page offset.
	App Kind = iota
	// Bootloader is a second-stage bootloader: bootloader descriptor in the
	// first DRAM segment, RAM segments only, small enough to fit between
	// the chip's bootloader offset and the partition table.
	Bootloader
)

func (k Kind) String() string {
	switch k {
	case App:
		return "app"
	case Bootloader:
		return "bootloader"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// ParseKind reads "app" or "bootloader".
func ParseKind(s string) (Kind, error) {
	switch s {
	case "app":
		return App, nil
	case "bootloader":
		return Bootloader, nil
	}
	return 0, fmt.Errorf("image: unknown kind %q (want app or bootloader)", s)
}

// FlashParams are header bytes 2 and 3.
type FlashParams struct {
	Mode FlashMode
	Size FlashSize
	Freq FlashFreq
}

// DefaultFlash is what an ESP-IDF project uses unless configured: DIO, 4 MB, 80 MHz.
func DefaultFlash() FlashParams { return FlashParams{Mode: DIO, Size: Size4MB, Freq: Freq80M} }

// RevWindow is the chip revision window of the header (§5.1).
type RevWindow struct {
	MinRev     uint8  // legacy byte: major revision, minor on ESP32-C3
	MinRevFull uint16 // major×100+minor
	MaxRevFull uint16
}

// DefaultRevWindow is the window an ESP-IDF v5 build for c writes: the
// lowest revision Fuseline supports (chip.MinRevision) up to chip.MaxRevision.
func DefaultRevWindow(c chip.Chip) RevWindow {
	w := RevWindow{MinRevFull: uint16(c.MinRevision), MaxRevFull: uint16(c.MaxRevision), MinRev: uint8(c.MinRevision / 100)}
	if c.LegacyRevIsMinor {
		w.MinRev = uint8(c.MinRevision % 100)
	}
	return w
}

// SynthOptions describe an image for Synth. The zero value of every field
// but Chip is a working default.
type SynthOptions struct {
	Chip chip.Chip // required: chip.S3(), chip.C3() or chip.ESP32V3()
	Kind Kind      // App (the zero value) or Bootloader
	// Version is esp_app_desc_t.version for an app ("" → "1.0.0"); for a
	// bootloader it is esp_bootloader_desc_t.version and must be a decimal
	// number ("" → 1).
	Version string
	// SecureVersion is the app's anti-rollback version; for a bootloader it
	// goes to descriptor byte 3 and must be below 256.
	SecureVersion uint32
	ProjectName   string // app only; "" → "fuseline-demo"
	IDFVersion    string // "" → "v5.3.1"
	Time, Date    string // build time and date; "" → "00:00:00", "Jan  1 2025"
	// Size is the number of filler bytes spread over the segments (rounded
	// to multiples of 4); 0 → 256 KiB for an app, 20 KiB for a bootloader.
	Size int
	// Seed selects the filler; the same options give the same bytes.
	Seed      uint64
	EntryAddr uint32       // 0 → Chip.EntryAddr
	Flash     *FlashParams // nil → DefaultFlash()
	Rev       *RevWindow   // nil → DefaultRevWindow(Chip)
	NoHash    bool         // leave out the appended SHA-256 (hash_appended 0)
	// PartitionTableOffset is the table a bootloader must end before (its
	// CONFIG_PARTITION_TABLE_OFFSET); 0 → Chip.PartitionTableOffset.
	PartitionTableOffset uint32
	// Segments, when not nil, are used as they are (lengths multiples of 4):
	// no descriptor, no filler. Kind, Version and the other descriptor
	// fields are then ignored.
	Segments []Segment
}

// Synth size limits.
const (
	DefaultAppSize        = 256 << 10
	DefaultBootloaderSize = 20 << 10
	MaxSynthSize          = 8 << 20
)

// Synth builds a valid, deterministic image. Apps look like elf2image
// output: DROM segment (app descriptor + read-only data) at file offset
// 0x18 with load address ≡ 0x20 mod 64 KiB, DRAM data, IRAM code, a padding
// segment, then the IROM code segment at its MMU page offset. The filler
// compresses about 2:1 with zlib, like real firmware, so compressed and
// encrypted writes behave as they do on a line. The result passes Parse and
// Validate for its chip at any revision inside its window.
func Synth(o SynthOptions) ([]byte, error) {
	c := o.Chip
	if c.Name == "" {
		return nil, fmt.Errorf("image: synth: no chip given")
	}
	h := Header{
		EntryAddr:    o.EntryAddr,
		WPPin:        0xEE,
		ChipID:       c.ID,
		HashAppended: !o.NoHash,
	}
	if h.EntryAddr == 0 {
		h.EntryAddr = c.EntryAddr
	}
	fp := DefaultFlash()
	if o.Flash != nil {
		fp = *o.Flash
	}
	h.FlashMode, h.FlashSize, h.FlashFreq = fp.Mode, fp.Size, fp.Freq&0x0F
	rw := DefaultRevWindow(c)
	if o.Rev != nil {
		rw = *o.Rev
	}
	h.MinRev, h.MinRevFull, h.MaxRevFull = rw.MinRev, rw.MinRevFull, rw.MaxRevFull

	if o.Segments != nil {
		return Build(h, o.Segments)
	}
	if o.Size < 0 || o.Size > MaxSynthSize {
		return nil, fmt.Errorf("image: synth: size %d outside 0..%d", o.Size, MaxSynthSize)
	}
	var seed [8 + 2 + 1]byte
	binary.LittleEndian.PutUint64(seed[:], o.Seed)
	binary.LittleEndian.PutUint16(seed[8:], uint16(c.ID))
	seed[10] = byte(o.Kind)
	r := newRNG([]byte("fuseline image synth v1"), seed[:])

	switch o.Kind {
	case App:
		return synthApp(o, c, h, r)
	case Bootloader:
		return synthBootloader(o, c, h, r)
	}
	return nil, fmt.Errorf("image: synth: unknown kind %v", o.Kind)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func align4(n int) int { return n &^ 3 }

func synthApp(o SynthOptions, c chip.Chip, h Header, r *rng) ([]byte, error) {
	size := o.Size
	if size == 0 {
		size = DefaultAppSize
	}
	nDROM := align4(size * 30 / 100)
	nDRAM := align4(size * 3 / 100)
	nIRAM := align4(size * 7 / 100)
	nIROM := roundUp(size-nDROM-nDRAM-nIRAM, 4)

	drom := make([]byte, AppDescLen+nDROM)
	fillRodata(r, drom[AppDescLen:])
	dram := make([]byte, nDRAM)
	fillData(r, dram)
	iram := make([]byte, nIRAM)
	fillCode(r, iram, h.EntryAddr&0xFFF00000)

	// Load addresses. The first DROM byte sits at file offset 0x20, so its
	// load address is ≡ 0x20 mod 64 KiB; so is the IROM segment's, which a
	// padding segment moves to the matching file offset. On S3 and C3 code
	// and data share one MMU table, so the DROM mapping starts after the
	// pages the code uses, as the ESP-IDF linker scripts arrange.
	iromLoad := c.IROM[0] + 0x20
	irom := make([]byte, nIROM)
	fillCode(r, irom, iromLoad&0xFF000000)
	dromLoad := c.DROM[0] + 0x20
	if c.ID != chip.ESP32 {
		dromLoad += uint32(roundUp(nIROM+0x20, MMUPageSize))
	}
	if uint64(dromLoad)+uint64(len(drom)) > uint64(c.DROM[1]) || uint64(iromLoad)+uint64(nIROM) > uint64(c.IROM[1]) {
		return nil, fmt.Errorf("image: synth: %d bytes do not fit the %s flash-mapped address windows", size, c.Name)
	}

	sum := sha256.New()
	for _, b := range [][]byte{drom[AppDescLen:], dram, iram, irom} {
		sum.Write(b)
	}
	desc := AppDesc{
		SecureVersion: o.SecureVersion,
		Version:       orDefault(o.Version, "1.0.0"),
		ProjectName:   orDefault(o.ProjectName, "fuseline-demo"),
		Time:          orDefault(o.Time, "00:00:00"),
		Date:          orDefault(o.Date, "Jan  1 2025"),
		IDFVersion:    orDefault(o.IDFVersion, "v5.3.1"),
	}
	// Stands in for the SHA-256 of the ELF, which a synthetic image lacks.
	copy(desc.ELFSHA256[:], sum.Sum(nil))
	db, err := desc.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("image: synth: %w", err)
	}
	copy(drom, db)

	segs := []Segment{
		{LoadAddr: dromLoad, Data: drom},
		{LoadAddr: c.RAMLoadAddr, Data: dram},
		{LoadAddr: h.EntryAddr, Data: iram},
	}
	off := HeaderLen
	for _, s := range segs {
		off += SegmentHeaderLen + len(s.Data)
	}
	// Bytes between where the IROM data would start and where it must.
	gap := int((iromLoad - uint32(off+SegmentHeaderLen)) % MMUPageSize)
	if gap != 0 {
		if gap < SegmentHeaderLen {
			gap += MMUPageSize
		}
		segs = append(segs, Segment{LoadAddr: 0, Data: make([]byte, gap-SegmentHeaderLen)})
	}
	segs = append(segs, Segment{LoadAddr: iromLoad, Data: irom})
	return Build(h, segs)
}

func synthBootloader(o SynthOptions, c chip.Chip, h Header, r *rng) ([]byte, error) {
	size := o.Size
	if size == 0 {
		size = DefaultBootloaderSize
	}
	ver := uint64(1)
	if o.Version != "" {
		v, err := strconv.ParseUint(o.Version, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("image: synth: bootloader version must be a whole number (esp_bootloader_desc_t.version is a u32), got %q", o.Version)
		}
		ver = v
	}
	if o.SecureVersion > 0xFF {
		return nil, fmt.Errorf("image: synth: bootloader secure version %d does not fit descriptor byte 3", o.SecureVersion)
	}
	desc := BootloaderDesc{
		SecureVersion: uint8(o.SecureVersion),
		Version:       uint32(ver),
		IDFVersion:    orDefault(o.IDFVersion, "v5.3.1"),
		DateTime:      orDefault(o.Date, "Jan  1 2025") + " " + orDefault(o.Time, "00:00:00"),
	}
	db, err := desc.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("image: synth: %w", err)
	}
	nData := align4(size * 30 / 100)
	nText0 := align4(size * 45 / 100)
	nText1 := roundUp(size-nData-nText0, 4)
	data := make([]byte, BootloaderDescLen+nData)
	copy(data, db)
	fillRodata(r, data[BootloaderDescLen:])
	text0 := make([]byte, nText0)
	fillCode(r, text0, h.EntryAddr&0xFFF00000)
	text1 := make([]byte, nText1)
	fillCode(r, text1, h.EntryAddr&0xFFF00000)
	segs := []Segment{
		{LoadAddr: c.RAMLoadAddr, Data: data},
		{LoadAddr: h.EntryAddr, Data: text0},
		{LoadAddr: h.EntryAddr + uint32(roundUp(nText0, 0x100)), Data: text1},
	}
	out, err := Build(h, segs)
	if err != nil {
		return nil, err
	}
	table := c.PartitionTableOffset
	if o.PartitionTableOffset != 0 {
		table = o.PartitionTableOffset
	}
	if room := int(table) - int(c.BootloaderOffset); len(out) > room {
		return nil, fmt.Errorf("image: synth: bootloader of %d bytes does not fit the 0x%x bytes between the %s bootloader (0x%x) and the partition table (0x%x)",
			len(out), room, c.Name, c.BootloaderOffset, table)
	}
	return out, nil
}
