// Package recipe is the provisioning recipe: the YAML file a manufacturing
// engineer writes once per product to say what a board must become: the
// chip, the firmware release, the Secure Boot v2 keys and revocations, the
// flash-encryption scheme, the anti-rollback floor, the lockdown set, the
// write mode, which verifications run, and whether the per-device key is
// escrowed.
//
// It follows docs/design.md ("What one board goes through") and the
// production order of docs/esp-security-facts.md §6 (which lockdown fields
// exist per chip, §3.1 and §3.6). Parse is pure: it decodes and validates
// bytes, and every error names the file, line, column and field. Load also
// reads the files a recipe names (public keys, trust anchors, CRLs), relative
// to the recipe's directory.
//
// A recipe, fully spelled out:
//
//	version: 1
//	name: thermostat-s3
//	chip: esp32s3
//	release:
//	  path: build            # ESP-IDF build dir (flasher_args.json) or a signed release (manifest.json)
//	  format: auto           # auto | esp-idf | signed
//	  trust: [root.pem]      # signed releases: trust anchors (required), PEM certificates
//	  crls: []               # signed releases: CRLs (PEM or DER)
//	  signers: []            # signed releases: accepted signer names (CN or DN)
//	secure_boot:
//	  keys: [sb0.pub.pem, sb1.pub.pem]   # 1 to 3 RSA-3072 public keys, digest slot = position
//	  revoke: [2]                        # unused digest slots to revoke; default: every unused slot (ESP32: none, it cannot revoke)
//	  keep_unused_slots_open: false      # true: unused slots revoke does not name stay open (shown in plan and evidence)
//	flash_encryption:
//	  scheme: xts-aes-128    # xts-aes-128 | xts-aes-256 (S3) | aes-256-classic (ESP32)
//	  mode: release
//	anti_rollback:
//	  floor: 1               # images need secure_version >= floor; the board's SECURE_VERSION is raised to it
//	lockdown:
//	  jtag: true             # DIS_PAD_JTAG, DIS_USB_JTAG, SOFT_DIS_JTAG (ESP32: JTAG_DISABLE)
//	  direct_boot: true      # DIS_DIRECT_BOOT
//	  download_caches: true  # DIS_DOWNLOAD_ICACHE, DIS_DOWNLOAD_DCACHE (ESP32: DISABLE_DL_CACHE)
//	  manual_encryption: true  # DIS_DOWNLOAD_MANUAL_ENCRYPT (ESP32: DISABLE_DL_ENCRYPT/DECRYPT)
//	  download: secure       # secure | disabled | enabled
//	write_mode: host-encrypted   # host-encrypted | chip-encrypted
//	verify:
//	  md5: true
//	  decrypt_and_verify: true
//	  spi_probe: false       # true: a fixture SPI probe is required
//	  boot_check: true
//	  boot_timeout: 10s
//	escrow:
//	  enabled: false
//	  recipient: age1…       # an age X25519 recipient
//	subdevices:              # devices behind the main board a release can carry images for
//	  motor:                 # the manifest's device name ([a-z0-9._-], up to 32)
//	    link: tcp://10.0.0.7:4000   # tcp://HOST:PORT (a served port) or virtual:NAME (a station virtual board)
//	    chip: esp32c3        # the sub-device's chip, in download mode on that link
//
// Unused Secure Boot digest slots (S3/C3 have three, one per recipe key) are
// revoked by default, as the last Secure Boot step of ESP-IDF's host-based
// workflow does: a slot left open lets code on the chip burn a digest of
// its own key there later. keep_unused_slots_open: true is the explicit
// opt-out (for a key to be added in the field); revoke then names the
// unused slots still to revoke, and a revoke list that leaves a slot open
// without it is refused. The plan and the evidence name every slot left
// open. An ESP-IDF app built without CONFIG_SECURE_BOOT_ALLOW_UNUSED_DIGEST_SLOTS
// revokes open slots itself on its first boot (esp-security-facts.md §4.4).
// ESP32 v3 has one digest (BLOCK2) and no revocation: both keys are refused
// there.
package recipe

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"

	"fuseline/esp/chip"
)

// Version is the only recipe format version this package reads.
const Version = 1

// Recipe is a decoded, validated recipe. Paths are as written in the file;
// Load resolves them against Dir and fills in the loaded keys and
// certificates.
type Recipe struct {
	Name string
	Chip chip.Chip

	Release         Release
	SecureBoot      SecureBoot
	FlashEncryption FlashEncryption
	AntiRollback    AntiRollback
	Lockdown        Lockdown
	WriteMode       WriteMode
	Verify          Verify
	Escrow          Escrow
	// Subdevices are the devices behind the main board, in recipe order
	// (design.md, system upgrade): a release's sub-device image is sent
	// only to a device named here.
	Subdevices []Subdevice

	// Source is where the recipe came from: its file name, directory and
	// the SHA-256 of its exact bytes (the evidence pins it).
	Source Source
}

// Source identifies the recipe's bytes.
type Source struct {
	File   string   // as given to Parse or Load
	Dir    string   // directory that relative paths resolve against
	SHA256 [32]byte // of the file bytes
}

// Ref is a file named in the recipe, with where it was named (for errors
// found when the file is read).
type Ref struct {
	Path         string
	Line, Column int
	Field        string
}

// ReleaseFormat says how the release directory is laid out.
type ReleaseFormat string

const (
	// FormatAuto picks ESPIDF when the directory has flasher_args.json and
	// Signed when it has manifest.json.
	FormatAuto ReleaseFormat = "auto"
	// FormatESPIDF is a build directory as `idf.py build` leaves it, read
	// through flasher_args.json.
	FormatESPIDF ReleaseFormat = "esp-idf"
	// FormatSigned is a Fuseline signed release (manifest.json + .p7s).
	FormatSigned ReleaseFormat = "signed"
)

// Release names the firmware release.
type Release struct {
	Path    Ref
	Format  ReleaseFormat
	Trust   []Ref
	CRLs    []Ref
	Signers []string

	// Filled in by Load.
	TrustCerts []*x509.Certificate
	CRLList    []*x509.RevocationList
}

// SecureBoot holds the Secure Boot v2 keys (digest slot i holds key i) and
// the unused slots to revoke.
type SecureBoot struct {
	Keys []Ref
	// Revoke lists the unused digest slots the run revokes, in order. Parse
	// fills in every unused slot of the chip (none on ESP32, which cannot
	// revoke) unless KeepUnusedSlotsOpen, when it is the file's revoke list.
	Revoke []int
	// KeepUnusedSlotsOpen is the recipe's explicit opt-out
	// (keep_unused_slots_open: true): the unused slots Revoke does not name
	// stay open, so code running on the chip could still burn a digest of
	// its own there. Plans and evidence show those slots (OpenSlots).
	KeepUnusedSlotsOpen bool

	// Filled in by Load.
	PublicKeys []*rsa.PublicKey
	Digests    [][32]byte
}

// FlashEncryption is the flash-encryption scheme. Only release mode
// (SPI_BOOT_CRYPT_CNT = 7, FLASH_CRYPT_CNT = 0x7F) is supported.
type FlashEncryption struct {
	Scheme chip.Encryption
	Mode   string // "release"
}

// AntiRollback is the anti-rollback floor: every app must carry
// secure_version >= Floor, and the board's SECURE_VERSION eFuse is raised
// to Floor (never lowered; a board above the release's secure_version is a
// conflict).
type AntiRollback struct {
	Floor int
}

// Download is what remains of the ROM download mode after lockdown.
type Download string

const (
	// DownloadSecure burns ENABLE_SECURITY_DOWNLOAD (S3/C3): only plain
	// flash read/write/erase remain; no register access.
	DownloadSecure Download = "secure"
	// DownloadDisabled burns DIS_DOWNLOAD_MODE (ESP32: UART_DOWNLOAD_DIS):
	// the ROM loader is gone for good.
	DownloadDisabled Download = "disabled"
	// DownloadEnabled leaves download mode as it is (development only).
	DownloadEnabled Download = "enabled"
)

// Lockdown is the set of lockdown eFuses to burn.
type Lockdown struct {
	JTAG             bool
	DirectBoot       bool
	DownloadCaches   bool
	ManualEncryption bool
	Download         Download
}

// WriteMode says who encrypts the images.
type WriteMode string

const (
	// HostEncrypted: the station encrypts with the device key and writes
	// ciphertext.
	HostEncrypted WriteMode = "host-encrypted"
	// ChipEncrypted: the station sends plaintext with the loader's
	// encrypted-write flag and the chip encrypts with its burned key.
	ChipEncrypted WriteMode = "chip-encrypted"
)

// Verify selects the verifications. A verification that is off is still
// recorded in the evidence, as not verified because the recipe turned it
// off.
type Verify struct {
	MD5              bool
	DecryptAndVerify bool
	SPIProbe         bool
	BootCheck        bool
	BootTimeout      time.Duration
}

// Escrow says whether the per-device flash-encryption key is kept, sealed
// to an age recipient, beside the evidence.
type Escrow struct {
	Enabled   bool
	Recipient string
}

// Link prefixes of Subdevice.Link.
const (
	LinkTCP     = "tcp://"   // tcp://HOST:PORT: a raw byte stream to the sub-device's UART (fuseline sim, a serial server)
	LinkVirtual = "virtual:" // virtual:NAME: a virtual board the station creates (the virtual target)
)

// Subdevice is one device behind the main board: another ESP chip, in
// download mode, reached over its own link. Its images come from the signed
// release (files of role subdevice naming it).
type Subdevice struct {
	Name string    // the name the release manifest routes files to
	Link string    // LinkTCP + "HOST:PORT" or LinkVirtual + "NAME"
	Chip chip.Chip // what the flasher must find on the link
	// Line and Column are where the recipe names the device, for errors
	// found later (intake, the run).
	Line, Column int
}

// TCP returns HOST:PORT for a tcp:// link.
func (s Subdevice) TCP() (addr string, ok bool) {
	if a, ok := strings.CutPrefix(s.Link, LinkTCP); ok {
		return a, true
	}
	return "", false
}

// Virtual returns NAME for a virtual: link: the name of the virtual board
// (its state directory under the main board's).
func (s Subdevice) Virtual() (name string, ok bool) {
	if n, ok := strings.CutPrefix(s.Link, LinkVirtual); ok {
		return n, true
	}
	return "", false
}

// Subdevice returns the recipe's sub-device called name.
func (r *Recipe) Subdevice(name string) (Subdevice, bool) {
	for _, s := range r.Subdevices {
		if s.Name == name {
			return s, true
		}
	}
	return Subdevice{}, false
}

// DefaultBootTimeout is Verify.BootTimeout when the recipe gives none.
const DefaultBootTimeout = 10 * time.Second

// Defaults are the values of fields a recipe leaves out.
func defaults() Recipe {
	return Recipe{
		Release:         Release{Format: FormatAuto},
		FlashEncryption: FlashEncryption{Mode: "release"},
		Lockdown: Lockdown{
			JTAG: true, DirectBoot: true, DownloadCaches: true, ManualEncryption: true,
			Download: DownloadSecure,
		},
		WriteMode: HostEncrypted,
		Verify:    Verify{MD5: true, DecryptAndVerify: true, BootCheck: true, BootTimeout: DefaultBootTimeout},
	}
}

// OpenSlots lists the Secure Boot digest slots the recipe leaves unused and
// unrevoked (only with KeepUnusedSlotsOpen; never on ESP32, which has one
// slot and no revocation).
func (r *Recipe) OpenSlots() []int {
	var open []int
	if !r.SecureBoot.KeepUnusedSlotsOpen {
		return nil
	}
	for s := len(r.SecureBoot.Keys); s < r.Chip.SecureBootDigests; s++ {
		if !slices.Contains(r.SecureBoot.Revoke, s) {
			open = append(open, s)
		}
	}
	return open
}

// SHA256Hex is the recipe hash as lower-case hex.
func (r *Recipe) SHA256Hex() string { return fmt.Sprintf("%x", r.Source.SHA256) }

func sum(b []byte) [32]byte { return sha256.Sum256(b) }
