package evidence

import (
	"time"
)

// Schema is the value of Record.Schema for this version of the record. A
// change that an old reader would misread gets a new version.
//
// v2 added Check.Established (how each check was established: observed,
// computed or modelled). Parse still reads SchemaV1 records, whose checks
// carry no establishment (Record.Establishment says what can still be
// told), so evidence signed before v2 keeps verifying byte for byte.
const Schema = "fuseline.evidence/v2"

// SchemaV1 is the first schema: no Check.Established.
const SchemaV1 = "fuseline.evidence/v1"

// Schemas lists every schema Parse reads, oldest first.
func Schemas() []string { return []string{SchemaV1, Schema} }

// Record is the evidence of one provisioning run on one device. Build it with
// the provisioning flow, then Marshal (canonical bytes) and Sign.
type Record struct {
	Schema   string   `json:"schema"`   // always Schema
	ID       string   `json:"id"`       // unique per run; FileName derives from it
	Lot      string   `json:"lot"`      // lot or work order the board belongs to; may be empty
	Device   Device   `json:"device"`   // the board as identified by the ROM
	Station  Station  `json:"station"`  // where it ran
	Operator Operator `json:"operator"` // who ran it
	Recipe   Recipe   `json:"recipe"`   // what the board was made into
	Release  Release  `json:"release"`  // which firmware release
	Images   []Image  `json:"images"`   // what was written, in write order
	Efuse    Efuse    `json:"efuse"`    // eFuse state before and after
	Steps    []Step   `json:"steps"`    // every step, in run order
	Checks   []Check  `json:"checks"`   // every verification, run or not
	Result   Result   `json:"result"`   // the verdict
	Timing   Timing   `json:"timing"`   // the run as a whole
}

// Device identifies the board.
type Device struct {
	MAC      string `json:"mac"`       // factory MAC, "aa:bb:cc:dd:ee:ff" lower case
	Chip     string `json:"chip"`      // marketing name as chip.Chip.Name ("ESP32-S3")
	Revision string `json:"revision"`  // chip revision as read ("v0.2"); empty if unknown
	FlashID  string `json:"flash_id"`  // JEDEC ID as hex ("0xef4018"); empty if not read
	SerialNo string `json:"serial_no"` // product serial assigned by the line; may be empty
}

// Station identifies where the run happened and which key signs its records.
type Station struct {
	ID       string `json:"id"`       // station name ("line1-st3")
	Slot     string `json:"slot"`     // fixture slot ("slot2"); may be empty
	KeyName  string `json:"key_name"` // name in the station's note verifier key
	Software string `json:"software"` // fuseline version that ran
	Target   string `json:"target"`   // TargetVirtual, TargetQEMU or TargetBoard
	// LoaderStub is the SHA-256 of the flasher-stub file the station ran
	// in the chip's RAM to write its flash (the code that saw the
	// plaintext in chip-encrypted writes); zero when only the ROM loader
	// was used.
	LoaderStub Digest `json:"loader_stub_sha256,omitzero"`
}

// Operator is the person who ran the board, as authenticated by the station.
type Operator struct {
	ID   string `json:"id"`   // login or badge ID
	Name string `json:"name"` // display name; may be empty
}

// Recipe names the recipe and pins its exact bytes.
type Recipe struct {
	Name   string `json:"name"`
	SHA256 Digest `json:"sha256"` // SHA-256 of the recipe file as loaded
}

// Release pins the firmware release.
type Release struct {
	Product        string `json:"product"`
	Version        string `json:"version"`
	SecureVersion  uint32 `json:"secure_version"`  // the app's anti-rollback secure_version
	ManifestSHA256 Digest `json:"manifest_sha256"` // SHA-256 of the signed manifest
}

// Image is one region written to flash.
type Image struct {
	Role   string `json:"role"`   // bootloader, partition-table, app, otadata, nvs, …
	File   string `json:"file"`   // file name in the release; empty for generated data
	Offset uint32 `json:"offset"` // flash offset
	Size   int64  `json:"size"`   // plaintext size in bytes
	// PlaintextSHA256 is the SHA-256 of the release image (before encryption).
	PlaintextSHA256 Digest `json:"plaintext_sha256"`
	// WrittenSHA256 is the SHA-256 of the bytes stored in flash: the
	// ciphertext when Encrypted, else equal to PlaintextSHA256.
	WrittenSHA256 Digest `json:"written_sha256"`
	Encrypted     bool   `json:"encrypted"`
	// WriteMode is "host-encrypted", "chip-encrypted" or "plain".
	WriteMode string `json:"write_mode"`
	// SignatureKeyDigests are the Secure Boot v2 public-key digests of the
	// image's signature blocks, in block order; empty if unsigned.
	SignatureKeyDigests []Digest `json:"signature_key_digests"`
}

// Efuse is the board's eFuse state as read before planning and after locking.
type Efuse struct {
	Before EfuseSnapshot `json:"before"`
	After  EfuseSnapshot `json:"after"`
}

// EfuseSnapshot is one reading of the eFuses: named field values and the key
// blocks as digests. Make it with NewEfuseSnapshot.
type EfuseSnapshot struct {
	// Fields maps the eFuse field name (espefuse spelling, "SPI_BOOT_CRYPT_CNT")
	// to its value. Fields that hold key bits are refused (see KeyField).
	Fields    map[string]uint64 `json:"fields"`
	KeyBlocks []KeyBlock        `json:"key_blocks"`
}

// KeyBlock is a key block by digest only.
type KeyBlock struct {
	Block          string    `json:"block"`   // "BLOCK_KEY0" … or "BLOCK1" … on ESP32
	Purpose        string    `json:"purpose"` // "XTS_AES_128_KEY", "SECURE_BOOT_DIGEST0", "USER", …
	Empty          bool      `json:"empty"`   // all bits zero
	ReadProtected  bool      `json:"read_protected"`
	WriteProtected bool      `json:"write_protected"`
	Digest         KeyDigest `json:"digest"` // SHA-256 of the block bytes
	// Source says where the digested bytes came from: "readback" (read from
	// the chip) or "burned" (what the station programmed, for a block that
	// reads as zero once read-protected).
	Source string `json:"source"`
}

// Step results.
const (
	StepOK      = "ok"
	StepFailed  = "failed"
	StepSkipped = "skipped"
)

// Step is one step of the flow (intake, connect, plan, burn-keys, flash,
// verify, lock, record).
type Step struct {
	Name     string    `json:"name"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Duration Duration  `json:"duration"`
	Result   string    `json:"result"` // StepOK, StepFailed or StepSkipped
	// Error is why the step failed or was skipped; required unless ok.
	Error string `json:"error"`
}

// Check kinds: the part of Check.Name before any ":". The IEC 62443 matrix
// names these kinds, so they are part of the schema.
const (
	CheckManifestSignature  = "manifest-signature"    // release manifest CMS signature and chain
	CheckImageHash          = "image-hash"            // image SHA-256 against the manifest
	CheckSecureBoot         = "secure-boot"           // SBv2 signature against the recipe keys
	CheckSecureVersion      = "secure-version"        // secure_version against the anti-rollback floor
	CheckEfuseReadback      = "efuse-readback"        // burned blocks read back equal, no error flags
	CheckKeyReadProtected   = "key-read-protected"    // key block reads as zero after RD_DIS
	CheckFlashMD5           = "flash-md5"             // flash MD5 against the expected ciphertext
	CheckDecryptedSignature = "decrypted-secure-boot" // expected ciphertext decrypts to a validly signed image
	CheckSPIProbe           = "spi-probe"             // raw flash read off-chip equals what was written
	CheckBootLog            = "boot-log"              // the board booted the release
	CheckLockdown           = "lockdown"              // final eFuse state has the recipe's lockdown bits
	CheckOperator           = "operator-auth"         // the operator was authenticated by the station
	CheckKeyEscrow          = "key-escrow"            // the device key was sealed to the recipe's escrow recipient
)

// CheckKinds lists every known check kind.
func CheckKinds() []string {
	return []string{
		CheckManifestSignature, CheckImageHash, CheckSecureBoot, CheckSecureVersion,
		CheckEfuseReadback, CheckKeyReadProtected, CheckFlashMD5, CheckDecryptedSignature,
		CheckSPIProbe, CheckBootLog, CheckLockdown, CheckOperator, CheckKeyEscrow,
	}
}

// Check is one verification. A check that was not done is still recorded,
// with the reason it could not be.
type Check struct {
	// Name is a check kind, optionally followed by ":" and what it applied
	// to ("flash-md5:app@0x10000").
	Name string `json:"name"`
	// What says in plain words what was compared with what.
	What     string `json:"what"`
	Verified bool   `json:"verified"`
	// Because is why the check did not verify (it failed, or could not be
	// done); required when Verified is false.
	Because string `json:"because"`
	// Established is how the fact the check rests on was obtained:
	// Observed, Computed or Modelled (Establish decides it). Required from
	// schema v2 on; absent in v1 records (omitted, so their canonical bytes
	// are unchanged).
	Established string `json:"established,omitempty"`
}

// Target kinds (Station.Target): what the station talked to.
const (
	TargetBoard   = "board"   // a real board: a serial port, socket or RFC 2217 server leading to silicon
	TargetVirtual = "virtual" // Fuseline's virtual board (fixtures/virtual)
	TargetQEMU    = "qemu"    // Espressif's QEMU
)

// How a check was established (Check.Established). An IEC 62443 assessor
// reads these as: only Observed is a fact about a shipped device's
// silicon; Computed is the station's own arithmetic over the release,
// recipe and keys (true whatever board is attached); Modelled is what a
// model of the chip answered and proves nothing about a shipped device.
const (
	// Observed: seen on a real board: the chip's answers over its serial
	// link (flash MD5, eFuse read-back), its UART (the boot log), the
	// fixture's SPI probe on its flash.
	Observed = "observed"
	// Computed: computed on the host: signatures, hashes, versions,
	// decrypting the expected ciphertext, the operator's login.
	Computed = "computed"
	// Modelled: answered by a model of the board (the virtual board, an
	// emulator such as QEMU), not by silicon.
	Modelled = "modelled"
	// Unrecorded is what Record.Establishment returns for a board-side
	// check of a v1 record on a real-board target: v1 did not record it,
	// and v1 stations recorded some links to virtual boards as "board".
	Unrecorded = "unrecorded"
)

// hostKinds are the check kinds whose fact the station computes itself,
// whatever board is attached; every other kind rests on what the board
// (or a model of it) answered.
var hostKinds = map[string]bool{
	CheckManifestSignature:  true,
	CheckImageHash:          true,
	CheckSecureBoot:         true,
	CheckSecureVersion:      true,
	CheckDecryptedSignature: true,
	CheckOperator:           true,
	CheckKeyEscrow:          true,
}

// HostComputed reports whether checks of kind are computed on the host
// (true) or rest on the board's answers (false; unknown kinds too, so a new
// kind never claims the host's certainty by default).
func HostComputed(kind string) bool { return hostKinds[kind] }

// Establish is how a check of kind is established on a run against
// target: Computed for a host-side kind; for a board-side kind Observed on
// a real board (TargetBoard) and Modelled on anything else (the virtual
// board, QEMU, or a target the record does not name).
func Establish(kind, target string) string {
	switch {
	case HostComputed(kind):
		return Computed
	case target == TargetBoard:
		return Observed
	}
	return Modelled
}

// Establishment is how check c of r was established: c.Established when
// the record holds it (schema v2). For a v1 record it is what can still be
// told: Computed for a host-side kind, Modelled for a board-side kind on a
// virtual or QEMU target, and Unrecorded otherwise.
func (r *Record) Establishment(c Check) string {
	if c.Established != "" {
		return c.Established
	}
	switch {
	case HostComputed(c.Kind()):
		return Computed
	case r.Station.Target == TargetVirtual || r.Station.Target == TargetQEMU:
		return Modelled
	}
	return Unrecorded
}

// Kind is the check kind: Name up to the first ":".
func (c Check) Kind() string {
	for i := 0; i < len(c.Name); i++ {
		if c.Name[i] == ':' {
			return c.Name[:i]
		}
	}
	return c.Name
}

// Status is "verified" or "not verified, because …".
func (c Check) Status() string {
	if c.Verified {
		return "verified"
	}
	return "not verified, because " + c.Because
}

// Verdicts.
const (
	PASS    = "PASS"
	FAIL    = "FAIL"
	REFUSED = "REFUSED" // the board's state conflicts with the recipe; nothing was changed
)

// Result is the verdict of the run.
type Result struct {
	Verdict string `json:"verdict"` // PASS, FAIL or REFUSED
	// Code is a short stable token for the reason ("verify-md5",
	// "efuse-conflict", "link-lost") that lot reports group by; may be empty.
	Code string `json:"code"`
	// Reason is the one-line plain-language reason; required unless PASS.
	Reason string `json:"reason"`
}

// Timing is the run as a whole.
type Timing struct {
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	Duration    Duration  `json:"duration"`
	Baud        int       `json:"baud"`          // highest baud the link held; 0 if unknown
	BytesOnWire int64     `json:"bytes_on_wire"` // bytes sent to the board
}
