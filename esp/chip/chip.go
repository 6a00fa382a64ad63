// Package chip holds the facts about each supported Espressif chip that the
// rest of Fuseline needs: names, identifiers, magic values, flash offsets,
// the eFuse controller's register map and what each chip supports.
//
// Chips are plain values: every accessor returns a fresh copy, so per-device
// state (revision, secure download mode) never lives in a shared table. The
// facts follow docs/esp-serial-and-images.md §2 and docs/esp-security-facts.md
// §1–§2 in the shared folder.
package chip

import (
	"fmt"
	"strings"
)

// ID is the chip identifier used in the image header (esp_image_header_t
// chip_id) and in the GET_SECURITY_INFO answer.
type ID uint16

// The supported chips. The values are Espressif's image chip IDs.
const (
	ESP32   ID = 0x0000
	ESP32C3 ID = 0x0005
	ESP32S3 ID = 0x0009
)

// String returns the esptool-style argument name ("esp32s3").
func (id ID) String() string {
	switch id {
	case ESP32:
		return "esp32"
	case ESP32C3:
		return "esp32c3"
	case ESP32S3:
		return "esp32s3"
	}
	return fmt.Sprintf("chip(0x%04x)", uint16(id))
}

// BootMode is what the chip does when it leaves reset, as selected by the
// strapping pins (GPIO0 on ESP32/S3, GPIO9 on C3).
type BootMode int

const (
	// BootSPI runs the second-stage bootloader from flash (strap high).
	BootSPI BootMode = iota
	// BootDownload enters the ROM serial bootloader (strap low).
	BootDownload
)

func (m BootMode) String() string {
	if m == BootDownload {
		return "download"
	}
	return "spi-boot"
}

// Encryption is a flash-encryption scheme a chip implements.
type Encryption int

const (
	// XTSAES128 is XTS-AES with a 256-bit key (one key block, purpose XTS_AES_128_KEY).
	XTSAES128 Encryption = iota + 1
	// XTSAES256 is XTS-AES with a 512-bit key (two key blocks, XTS_AES_256_KEY_1/_2).
	XTSAES256
	// AES256Classic is the classic ESP32 scheme: AES-256 with an address-tweaked key.
	AES256Classic
)

func (e Encryption) String() string {
	switch e {
	case XTSAES128:
		return "xts-aes-128"
	case XTSAES256:
		return "xts-aes-256"
	case AES256Classic:
		return "aes-256-classic"
	}
	return fmt.Sprintf("encryption(%d)", int(e))
}

// KeyLen is the length in bytes of a key file for the scheme.
func (e Encryption) KeyLen() int {
	if e == XTSAES256 {
		return 64
	}
	return 32
}

// Coding is how an eFuse key block protects its data.
type Coding int

const (
	// CodingRS is Reed-Solomon RS(44,32): 12 check bytes per 32-byte block (S3, C3).
	CodingRS Coding = iota + 1
	// CodingNone stores 256 bits as they are (ESP32 CODING_SCHEME 0 or 3).
	CodingNone
	// Coding34 is ESP32 3/4 coding: 192 data bits per block.
	Coding34
)

// EfuseRegs is the register map of the S3/C3 eFuse controller, as absolute
// addresses (docs/esp-security-facts.md §1.1). Classic ESP32 has its own map
// in ClassicEfuseRegs.
type EfuseRegs struct {
	Base        uint32
	PgmData0    uint32     // PGM_DATA0…7 follow at +4 each
	CheckValue0 uint32     // PGM_CHECK_VALUE0…2
	BlockRead   [11]uint32 // address of word 0 of each block's read registers
	RepeatErr0  uint32     // RD_REPEAT_ERR0…3 at +4 each
	RepeatErr4  []uint32   // RD_REPEAT_ERR4; sources disagree, so both addresses
	RSErr0      uint32
	RSErr1      uint32
	Clk         uint32
	Conf        uint32
	Status      uint32
	Cmd         uint32
	DacConf     uint32
	RdTimConf   uint32
	WrTimConf1  uint32
	WrTimConf2  uint32
	Date        uint32
	// RSFailShifted reports the C3 quirk: each block's FAIL bit sits one
	// nibble above its error count (§1.1).
	RSFailShifted bool
}

// ClassicEfuseRegs is the classic ESP32 eFuse controller (§1.2): each block
// has its own read and write windows.
type ClassicEfuseRegs struct {
	Base       uint32
	BlockRead  [4]uint32
	BlockWrite [4]uint32
	Clk        uint32
	Conf       uint32
	Cmd        uint32
	DacConf    uint32
	DecStatus  uint32
	APBCtlDate uint32 // bit 31 is the third revision bit
}

// eFuse controller operation codes and commands shared by all chips.
const (
	EfuseOpProgram uint32 = 0x5A5A
	EfuseOpRead    uint32 = 0x5AA5
	EfuseCmdRead   uint32 = 0x1
	EfuseCmdPgm    uint32 = 0x2
)

// SPIRegs locates the SPI1 flash controller registers used for "user
// commands" (JEDEC ID, SFDP) in ROM mode (docs/esp-serial-and-images.md §2.5).
type SPIRegs struct {
	Base     uint32
	Cmd      uint32
	Addr     uint32
	User     uint32
	User1    uint32
	User2    uint32
	MOSIDLen uint32
	MISODLen uint32
	W0       uint32
}

// Chip is the set of facts about one chip family. Values are copies: callers
// may keep and change them without affecting anyone else.
type Chip struct {
	ID   ID
	Name string // marketing name, "ESP32-S3"
	// Magic values of the ROM word at MagicAddr that identify the chip when
	// GET_SECURITY_INFO is unavailable.
	MagicValues []uint32
	// HasSecurityInfo says the ROM answers GET_SECURITY_INFO (0x14) with 20 bytes.
	HasSecurityInfo bool
	// SecureDownload says the chip has the ENABLE_SECURITY_DOWNLOAD eFuse.
	SecureDownload bool
	// LockdownResetsLoader says the ROM loader checks DIS_DOWNLOAD_MODE and
	// ENABLE_SECURITY_DOWNLOAD after every command, before its reply (seven
	// times over, against glitching), and on finding either set makes a
	// software reset instead of replying: C3 ECO3 ROM, UartDwnLdProc calls
	// check_condCOUNTER before SendMsg and before RcvMsg (the S3 ROM has the
	// same handlers). The command whose eFuse reload loads the lockdown so
	// gets no reply, and the chip comes back (straps latched) in secure
	// download mode or without a loader. espefuse's burn of
	// ENABLE_SECURITY_DOWNLOAD relies on it: it catches the lost reply and
	// reconnects.
	LockdownResetsLoader bool
	// BootloaderOffset is where the second-stage bootloader lives in flash.
	BootloaderOffset uint32
	// PartitionTableOffset is the default partition table offset.
	PartitionTableOffset uint32
	// MaxSecureBootBootloader is the largest bootloader (without its 4 KiB
	// signature sector) a Secure Boot v2 ROM verifies: the ROM loads it
	// into a fixed buffer first (ESP-IDF docs/en/security/
	// secure-boot-bootloader-size.rst, IDF_TARGET_MAX_BOOTLOADER_SIZE:
	// 48 KiB on ESP32, 64 KiB on the others).
	MaxSecureBootBootloader uint32
	// Encryptions lists the flash-encryption schemes, preferred first.
	Encryptions []Encryption
	// EncryptedWriteAlign is the alignment esptool demands for encrypted writes.
	EncryptedWriteAlign uint32
	// KeyBlocks is the number of eFuse key blocks usable for keys/digests.
	KeyBlocks int
	// SecureBootDigests is the number of Secure Boot v2 key digest slots:
	// 3 on S3/C3 (key blocks with purpose SECURE_BOOT_DIGEST0…2), 1 on
	// ESP32 v3 (BLOCK2). Whether a slot can be revoked is an eFuse table
	// fact (efuse.RevokeField).
	SecureBootDigests int
	// Coding is the key blocks' coding on a chip as shipped.
	Coding Coding
	// Efuse is the S3/C3 controller map; nil on classic ESP32.
	Efuse *EfuseRegs
	// ClassicEfuse is the ESP32 controller map; nil on S3/C3.
	ClassicEfuse *ClassicEfuseRegs
	// UARTDateReg is the register esptool writes with mask 0 to get a delay.
	UARTDateReg uint32
	// SPI is the flash controller used for user commands.
	SPI SPIRegs
	// MinRevision is the lowest supported revision (major*100+minor).
	MinRevision int
	// MaxRevision is the last minor revision of the newest major revision
	// ESP-IDF v5 knows, the max_rev_full its builds write (major*100+minor).
	MaxRevision int
	// LegacyRevIsMinor says the image header's legacy min_chip_rev byte is
	// compared with the minor revision (C3) rather than the major one
	// (docs/esp-serial-and-images.md §5.1).
	LegacyRevIsMinor bool
	// DefaultBaud is the ROM's baud rate after reset.
	DefaultBaud int
	// ROM loader banner lines for a reset into download mode (without CR LF).
	DownloadBanner []string
	// IROM and DROM are the flash-mapped address ranges [lo, hi).
	IROM, DROM [2]uint32
	// RAMLoadAddr is a plausible DRAM address for synthetic data segments.
	RAMLoadAddr uint32
	// EntryAddr is a plausible IRAM entry address for synthetic images.
	EntryAddr uint32
}

// MagicAddr is the ROM address whose value identifies older chips.
const MagicAddr uint32 = 0x40001000

// SupportsEncryption reports whether the chip implements e.
func (c Chip) SupportsEncryption(e Encryption) bool {
	for _, x := range c.Encryptions {
		if x == e {
			return true
		}
	}
	return false
}

// Arg is the esptool-style name, "esp32s3".
func (c Chip) Arg() string { return c.ID.String() }

func s3c3Efuse(base uint32, c3 bool) *EfuseRegs {
	r := &EfuseRegs{
		Base:        base,
		PgmData0:    base + 0x000,
		CheckValue0: base + 0x020,
		RepeatErr0:  base + 0x17C,
		RepeatErr4:  []uint32{base + 0x18C, base + 0x190},
		RSErr0:      base + 0x1C0,
		RSErr1:      base + 0x1C4,
		Clk:         base + 0x1C8,
		Conf:        base + 0x1CC,
		Status:      base + 0x1D0,
		Cmd:         base + 0x1D4,
		DacConf:     base + 0x1E8,
		RdTimConf:   base + 0x1EC,
		WrTimConf1:  base + 0x1F4,
		WrTimConf2:  base + 0x1F8,
		Date:        base + 0x1FC,
	}
	if c3 {
		r.WrTimConf1 = base + 0x1F0
		r.WrTimConf2 = base + 0x1F4
		r.RSFailShifted = true
	}
	r.BlockRead = [11]uint32{
		base + 0x02C, base + 0x044, base + 0x05C, base + 0x07C,
		base + 0x09C, base + 0x0BC, base + 0x0DC, base + 0x0FC, base + 0x11C, base + 0x13C,
		base + 0x15C,
	}
	return r
}

func s3c3SPI() SPIRegs {
	const b = 0x60002000
	return SPIRegs{Base: b, Cmd: b, Addr: b + 0x04, User: b + 0x18, User1: b + 0x1C, User2: b + 0x20,
		MOSIDLen: b + 0x24, MISODLen: b + 0x28, W0: b + 0x58}
}

// S3 returns the ESP32-S3 facts.
func S3() Chip {
	return Chip{
		ID:                   ESP32S3,
		Name:                 "ESP32-S3",
		MagicValues:          []uint32{0x00000009},
		HasSecurityInfo:      true,
		SecureDownload:       true,
		LockdownResetsLoader: true,
		BootloaderOffset:     0x0,
		PartitionTableOffset: 0x8000,
		Encryptions:          []Encryption{XTSAES128, XTSAES256},
		EncryptedWriteAlign:  16,
		KeyBlocks:            6,
		SecureBootDigests:    3,
		Coding:               CodingRS,
		Efuse:                s3c3Efuse(0x60007000, false),
		MaxRevision:          99,
		UARTDateReg:          0x60000080,
		SPI:                  s3c3SPI(),
		MinRevision:          0,
		DefaultBaud:          115200,
		DownloadBanner: []string{
			"ESP-ROM:esp32s3-20210327",
			"Build:Mar 27 2021",
			"rst:0x1 (POWERON),boot:0x0 (DOWNLOAD(USB/UART0))",
			"waiting for download",
		},
		IROM:        [2]uint32{0x42000000, 0x44000000},
		DROM:        [2]uint32{0x3C000000, 0x3E000000},
		RAMLoadAddr: 0x3FC88000,
		EntryAddr:   0x40375000,

		MaxSecureBootBootloader: 0x10000,
	}
}

// C3 returns the ESP32-C3 facts (ECO3 ROM and later).
func C3() Chip {
	return Chip{
		ID:                   ESP32C3,
		Name:                 "ESP32-C3",
		MagicValues:          []uint32{0x6921506F, 0x1B31506F, 0x4881606F, 0x4361606F},
		HasSecurityInfo:      true,
		SecureDownload:       true,
		LockdownResetsLoader: true,
		BootloaderOffset:     0x0,
		PartitionTableOffset: 0x8000,
		Encryptions:          []Encryption{XTSAES128},
		EncryptedWriteAlign:  16,
		KeyBlocks:            6,
		SecureBootDigests:    3,
		Coding:               CodingRS,
		Efuse:                s3c3Efuse(0x60008800, true),
		MaxRevision:          199,
		LegacyRevIsMinor:     true,
		UARTDateReg:          0x6000007C,
		SPI:                  s3c3SPI(),
		MinRevision:          3, // Secure Boot v2 needs ECO3 (v0.3)
		DefaultBaud:          115200,
		DownloadBanner: []string{
			"ESP-ROM:esp32c3-api1-20210207",
			"Build:Feb  7 2021",
			"rst:0x1 (POWERON),boot:0x5 (DOWNLOAD(USB/UART0/1))",
			"waiting for download",
		},
		IROM:        [2]uint32{0x42000000, 0x42800000},
		DROM:        [2]uint32{0x3C000000, 0x3C800000},
		RAMLoadAddr: 0x3FC80000,
		EntryAddr:   0x40380000,

		MaxSecureBootBootloader: 0x10000,
	}
}

// ESP32V3 returns the classic ESP32 (revision v3) facts.
func ESP32V3() Chip {
	const b = 0x3FF5A000
	const s = 0x3FF42000
	return Chip{
		ID:                   ESP32,
		Name:                 "ESP32",
		MagicValues:          []uint32{0x00F01D83},
		HasSecurityInfo:      false,
		SecureDownload:       false,
		BootloaderOffset:     0x1000,
		PartitionTableOffset: 0x8000,
		Encryptions:          []Encryption{AES256Classic},
		EncryptedWriteAlign:  32,
		KeyBlocks:            3,
		SecureBootDigests:    1,
		Coding:               CodingNone,
		ClassicEfuse: &ClassicEfuseRegs{
			Base:       b,
			BlockRead:  [4]uint32{b + 0x000, b + 0x038, b + 0x058, b + 0x078},
			BlockWrite: [4]uint32{b + 0x01C, b + 0x098, b + 0x0B8, b + 0x0D8},
			Clk:        b + 0x0F8,
			Conf:       b + 0x0FC,
			Cmd:        b + 0x104,
			DacConf:    b + 0x118,
			DecStatus:  b + 0x11C,
			APBCtlDate: 0x3FF6607C,
		},
		UARTDateReg: 0x60000078,
		MaxRevision: 399,
		SPI: SPIRegs{Base: s, Cmd: s, Addr: s + 0x04, User: s + 0x1C, User1: s + 0x20, User2: s + 0x24,
			MOSIDLen: s + 0x28, MISODLen: s + 0x2C, W0: s + 0x80},
		MinRevision: 300,
		DefaultBaud: 115200,
		DownloadBanner: []string{
			"ets Jul 29 2019 12:21:46",
			"",
			"rst:0x1 (POWERON_RESET),boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))",
			"waiting for download",
		},
		IROM:        [2]uint32{0x400D0000, 0x40400000},
		DROM:        [2]uint32{0x3F400000, 0x3F800000},
		RAMLoadAddr: 0x3FFB0000,
		EntryAddr:   0x40080000,

		MaxSecureBootBootloader: 0xC000,
	}
}

// All returns every supported chip, S3 first.
func All() []Chip { return []Chip{S3(), C3(), ESP32V3()} }

// UnknownChipError reports a chip name, ID or magic value Fuseline does not support.
type UnknownChipError struct {
	What string // "name", "chip id" or "magic"
	Got  string
}

func (e *UnknownChipError) Error() string {
	return fmt.Sprintf("chip: unknown %s %s (supported: esp32s3, esp32c3, esp32)", e.What, e.Got)
}

// ByName looks a chip up by its esptool name ("esp32s3", "ESP32-S3" also works).
func ByName(name string) (Chip, error) {
	n := strings.ToLower(strings.ReplaceAll(name, "-", ""))
	for _, c := range All() {
		if c.Arg() == n {
			return c, nil
		}
	}
	return Chip{}, &UnknownChipError{What: "name", Got: fmt.Sprintf("%q", name)}
}

// ByID looks a chip up by its image/security-info chip ID.
func ByID(id ID) (Chip, error) {
	for _, c := range All() {
		if c.ID == id {
			return c, nil
		}
	}
	return Chip{}, &UnknownChipError{What: "chip id", Got: fmt.Sprintf("0x%04x", uint16(id))}
}

// ByMagic looks a chip up by the value of the ROM word at MagicAddr.
func ByMagic(v uint32) (Chip, error) {
	for _, c := range All() {
		for _, m := range c.MagicValues {
			if m == v {
				return c, nil
			}
		}
	}
	return Chip{}, &UnknownChipError{What: "magic", Got: fmt.Sprintf("0x%08x", v)}
}
