package provisioning

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"fuseline/esp/chip"
	"fuseline/esp/efuse"
	"fuseline/provisioning/recipe"
)

// Phase is a stage of the end-of-line flow (design.md, "What one board goes
// through"). Events, journal records and evidence steps carry it.
type Phase string

// The phases, in run order.
const (
	PhaseIntake   Phase = "intake"
	PhaseConnect  Phase = "connect"
	PhaseRead     Phase = "read"
	PhasePlan     Phase = "plan"
	PhaseBurnKeys Phase = "burn-keys"
	PhaseFlash    Phase = "flash"
	PhaseVerify   Phase = "verify"
	PhaseLock     Phase = "lock"
	PhaseReadback Phase = "readback"
	PhaseBoot     Phase = "boot"
	PhaseEvidence Phase = "evidence"
)

// The eFuse burn steps, in the order of esp-security-facts.md §6. Each is
// one burn run (key blocks first, BLOCK0 last with its lock-out fields
// postponed) and one pair of journal records.
const (
	StepFlashKey      = "flash-key"         // §6.2: per-device key, read- and write-protected, purpose write-protected
	StepEncryptionOn  = "encryption-on"     // §6.3: SPI_BOOT_CRYPT_CNT = 7 (ESP32: FLASH_CRYPT_CNT = 0x7F)
	StepFELockdown    = "fe-lockdown"       // §6.5: download caches, JTAG, direct boot, manual encryption; WR_DIS bit 2
	StepSBDigests     = "sb-digests"        // §6.6: Secure Boot v2 key digests, write-protected, never read-protected
	StepSBEnable      = "sb-enable"         // §6.7: SECURE_BOOT_EN (ESP32: ABS_DONE_1)
	StepSBLockdown    = "sb-lockdown"       // §6.9: SOFT_DIS_JTAG
	StepRdDisLock     = "rd-dis-lock"       // §6.9: write-protect RD_DIS
	StepRevoke        = "revoke"            // §6.9: revoke the unused digest slots
	StepSecureVersion = "secure-version"    // §3.9: raise SECURE_VERSION to the floor
	StepDownload      = "download-lockdown" // §6.10: ENABLE_SECURITY_DOWNLOAD or DIS_DOWNLOAD_MODE, very last
)

// burnOrder lists the burn steps with their phase. Flashing and
// verification run between StepEncryptionOn and StepFELockdown (§6.4).
var burnOrder = []struct {
	name  string
	phase Phase
}{
	{StepFlashKey, PhaseBurnKeys},
	{StepEncryptionOn, PhaseBurnKeys},
	{StepFELockdown, PhaseLock},
	{StepSBDigests, PhaseLock},
	{StepSBEnable, PhaseLock},
	{StepSBLockdown, PhaseLock},
	{StepRdDisLock, PhaseLock},
	{StepRevoke, PhaseLock},
	{StepSecureVersion, PhaseLock},
	{StepDownload, PhaseLock},
}

// Assignment says which eFuse key blocks hold what: block numbers (S3/C3
// 4…9 = BLOCK_KEY0…5; ESP32 1…3). It is journaled before the first burn so
// a re-run after a crash burns the same blocks.
type Assignment struct {
	FlashKey []int `json:"flash_key"` // one block (XTS-AES-128, ESP32 BLOCK1) or two (XTS-AES-256: KEY_1, KEY_2)
	Digests  []int `json:"digests"`   // Digests[i] holds the digest of recipe key i
}

// Change is one eFuse field a step changes, as the read registers show it.
type Change struct {
	Field string `json:"field"`
	From  string `json:"from"`
	To    string `json:"to"`
}

// BurnStep is one eFuse burn run of the plan. Every burn is irreversible.
type BurnStep struct {
	Name  string `json:"name"`
	Phase Phase  `json:"phase"`
	// Batch is what the step asks for; it may carry the device key and is
	// never rendered or marshalled.
	Batch efuse.Batch `json:"-"`
	// Burn is Batch compiled against the state the step starts from; empty
	// when the board already holds everything (the step is done).
	Burn *efuse.Plan `json:"-"`
	// Repair lists key blocks found half-programmed (a power cut during
	// their program): they are programmed again with the same journaled
	// data and check words, which only adds the missing bits (§6 risks).
	Repair []int `json:"repair,omitempty"`
	// Changes are the fields that change, before → after.
	Changes []Change `json:"changes"`
	// Lockdown: the step ends register access (secure download mode or
	// download disabled); the link drops when it is burned.
	Lockdown bool `json:"lockdown,omitempty"`
	// Skip says why the step asks for nothing at all ("" when it asks for
	// something, done or not): what the recipe chose or the chip lacks, so
	// a skipped step is never reported as "already burned".
	Skip string `json:"skip,omitempty"`
}

// Done reports whether the board already holds everything the step asks for.
func (s *BurnStep) Done() bool { return s.Burn == nil || s.Burn.Empty() }

// Irreversible reports whether running the step burns anything.
func (s *BurnStep) Irreversible() bool { return !s.Done() }

// PlanInput is what a plan is made from.
type PlanInput struct {
	Recipe *recipe.Recipe
	// State is the eFuse image as the host reads it (read-protected blocks
	// as zero).
	State *efuse.Image
	// Assignment comes from the journal when the board was started before;
	// nil chooses free blocks (or adopts blocks that already hold this
	// recipe's keys).
	Assignment *Assignment
	// FlashKey is the device key as eFuse block data (flashenc.KeyBlocks);
	// nil when the key is not known, which is fine only if the key step is
	// already done.
	FlashKey [][32]byte
	// KeyIsOurs says the flash-encryption key on the board (if any) was
	// burned by this station's journal for this device.
	KeyIsOurs bool
	// MinSecureVersion is the lowest secure_version of the release's apps;
	// a board whose SECURE_VERSION is above it would refuse the release.
	// -1 skips the check.
	MinSecureVersion int
}

// Plan is the eFuse side of provisioning one board: the block assignment
// and the burn steps in order, each compiled against the state the one
// before leaves.
type Plan struct {
	Chip       chip.Chip    `json:"-"`
	ChipName   string       `json:"chip"`
	Assignment Assignment   `json:"assignment"`
	Steps      []BurnStep   `json:"steps"`
	Final      *efuse.Image `json:"-"` // the predicted read view after every step
	// DigestSlots says what each of the chip's Secure Boot digest slots
	// holds once the plan has run.
	DigestSlots []DigestSlot `json:"digest_slots"`
}

// Digest slot states.
const (
	SlotKey     = "key"     // holds the digest of the recipe's key of the same index
	SlotRevoked = "revoked" // unused and revoked
	// SlotOpen: unused and not revoked, by the recipe's explicit
	// keep_unused_slots_open; code on the chip could still burn a digest
	// of its own there.
	SlotOpen = "open"
	// SlotUnusedNoRevoke: unused on a chip without revocation (none of the
	// supported chips has such a slot: ESP32 has one slot, for key 0).
	SlotUnusedNoRevoke = "unused"
)

// DigestSlot is one Secure Boot digest slot in a plan.
type DigestSlot struct {
	Slot  int    `json:"slot"`
	State string `json:"state"` // SlotKey, SlotRevoked, SlotOpen or SlotUnusedNoRevoke
}

// digestSlots lists what every digest slot of the recipe's chip holds after
// the run.
func digestSlots(r *recipe.Recipe) []DigestSlot {
	var out []DigestSlot
	for s := range r.Chip.SecureBootDigests {
		st := SlotKey
		switch {
		case s < len(r.SecureBoot.Keys):
		case slices.Contains(r.SecureBoot.Revoke, s):
			st = SlotRevoked
		case efuse.RevokeField(r.Chip.ID, s) == "":
			st = SlotUnusedNoRevoke
		default:
			st = SlotOpen
		}
		out = append(out, DigestSlot{Slot: s, State: st})
	}
	return out
}

// Step returns the named step, or nil.
func (p *Plan) Step(name string) *BurnStep {
	for i := range p.Steps {
		if p.Steps[i].Name == name {
			return &p.Steps[i]
		}
	}
	return nil
}

// Done reports whether the board already holds every burn of the plan.
func (p *Plan) Done() bool {
	for i := range p.Steps {
		if !p.Steps[i].Done() {
			return false
		}
	}
	return true
}

// Irreversible lists the steps that would burn something.
func (p *Plan) Irreversible() []string {
	var out []string
	for i := range p.Steps {
		if p.Steps[i].Irreversible() {
			out = append(out, p.Steps[i].Name)
		}
	}
	return out
}

// conflict builds a *ConflictError.
func conflict(field, format string, a ...any) error {
	return &ConflictError{Field: field, Reason: fmt.Sprintf(format, a...)}
}

// NewPlan compares the recipe's desired eFuse state with the board's and
// returns the burn steps, or a *ConflictError (wrapping ErrConflict) when the
// board's state conflicts with the recipe. Nothing is burned.
func NewPlan(in PlanInput) (*Plan, error) {
	r, st := in.Recipe, in.State
	if r == nil || st == nil {
		return nil, errors.New("provisioning: plan needs a recipe and an eFuse state")
	}
	if st.Chip != r.Chip.ID {
		return nil, conflict("chip", "the board is %v, the recipe is for %v", st.Chip, r.Chip.ID)
	}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("provisioning: eFuse state: %w", err)
	}
	if len(r.SecureBoot.Digests) != len(r.SecureBoot.Keys) || len(r.SecureBoot.Digests) == 0 {
		return nil, errors.New("provisioning: recipe keys are not loaded (call recipe.Load or Resolve)")
	}
	c := &planner{in: in, r: r, id: r.Chip.ID}
	if err := c.checkBoard(st); err != nil {
		return nil, err
	}
	a, adopted, err := c.assign(st)
	if err != nil {
		return nil, err
	}
	c.a = a
	if in.FlashKey != nil && len(in.FlashKey) != len(a.FlashKey) {
		return nil, fmt.Errorf("provisioning: the device key has %d blocks, the scheme needs %d", len(in.FlashKey), len(a.FlashKey))
	}
	p := &Plan{Chip: r.Chip, ChipName: r.Chip.Arg(), Assignment: a, DigestSlots: digestSlots(r)}
	cur := st.Clone()
	for _, s := range burnOrder {
		step, next, err := c.step(s.name, s.phase, cur)
		if err != nil {
			return nil, err
		}
		p.Steps = append(p.Steps, step)
		cur = next
	}
	p.Final = cur
	if adopted && !p.Done() {
		return nil, conflict(c.keyBlockName(a.FlashKey[0]), "flash encryption is already set up with a key this station did not burn (no journal for this board), and the board is not finished; it cannot be completed or verified")
	}
	return p, nil
}

type planner struct {
	in PlanInput
	r  *recipe.Recipe
	id chip.ID
	a  Assignment
}

func (c *planner) keyBlockName(block int) string {
	if c.id == chip.ESP32 {
		return fmt.Sprintf("BLOCK%d", block)
	}
	return fmt.Sprintf("BLOCK_KEY%d", block-4)
}

func get(img *efuse.Image, name string) uint64 {
	v, err := img.Get(name)
	if err != nil {
		return 0
	}
	return v
}

// checkBoard applies the conflicts that do not depend on the assignment:
// anti-rollback above the release, revoked slots the recipe needs, S3's
// DIS_USB_SERIAL_JTAG with the JTAG lockdown.
func (c *planner) checkBoard(st *efuse.Image) error {
	if c.in.MinSecureVersion >= 0 {
		v, err := st.SecureVersion()
		if err == nil && v > c.in.MinSecureVersion {
			return conflict("SECURE_VERSION", "the board records secure version %d, above the release's %d: it would refuse to boot this release", v, c.in.MinSecureVersion)
		}
	}
	for i := range c.r.SecureBoot.Digests {
		if f := efuse.RevokeField(c.id, i); f != "" && get(st, f) != 0 {
			return conflict(f, "digest slot %d is revoked, but recipe key %d needs it", i, i)
		}
	}
	return nil
}

func fePurposes(id chip.ID, scheme chip.Encryption) []efuse.Purpose {
	switch {
	case id == chip.ESP32:
		return []efuse.Purpose{efuse.PurposeUser}
	case scheme == chip.XTSAES256:
		return []efuse.Purpose{efuse.PurposeXTSAES256Key1, efuse.PurposeXTSAES256Key2}
	default:
		return []efuse.Purpose{efuse.PurposeXTSAES128Key}
	}
}

// assign picks the key blocks: the journal's assignment when there is one,
// otherwise blocks that already hold this recipe's digests (and, for a
// finished board, its flash key) and free blocks for the rest. adopted says
// a flash key found on the board was taken over without a journal.
func (c *planner) assign(st *efuse.Image) (a Assignment, adopted bool, err error) {
	sum, err := efuse.Summarize(st)
	if err != nil {
		return a, false, fmt.Errorf("provisioning: %w", err)
	}
	digests := c.r.SecureBoot.Digests
	cnt := "SPI_BOOT_CRYPT_CNT"
	if c.id == chip.ESP32 {
		cnt = "FLASH_CRYPT_CNT"
	}
	encOn := bits.OnesCount64(get(st, cnt))%2 == 1

	if c.id == chip.ESP32 {
		a = Assignment{FlashKey: []int{1}, Digests: []int{2}}
		if c.in.Assignment != nil && !slices.Equal(c.in.Assignment.FlashKey, a.FlashKey) {
			return a, false, fmt.Errorf("provisioning: journaled assignment %v does not fit ESP32: %w", *c.in.Assignment, ErrJournal)
		}
		k1 := sum.Keys[0]
		keyThere := !k1.Readable || !k1.Empty
		if (keyThere || encOn) && !c.in.KeyIsOurs {
			if !k1.Readable && encOn {
				adopted = true
			} else {
				return a, false, conflict("BLOCK1", "a flash-encryption key or counter is already on the board, and this station has no journal for it")
			}
		}
		k2 := sum.Keys[1]
		if !k2.Readable {
			return a, false, conflict("BLOCK2", "the Secure Boot digest block is read-protected; its content cannot be checked")
		}
		if got, _ := st.GetBytes("BLOCK2"); !allZero(got) && !bytes.Equal(got, digests[0][:]) {
			return a, false, conflict("BLOCK2", "holds a Secure Boot digest that is not the recipe's key (a foreign digest)")
		}
		return a, adopted, nil
	}

	purposes := fePurposes(c.id, c.r.FlashEncryption.Scheme)
	// Foreign digests: any digest purpose whose content is not the recipe's.
	digestBlock := map[int]int{} // slot → block
	for _, k := range sum.Keys {
		slot, ok := k.Purpose.SecureBootDigest()
		if !ok {
			continue
		}
		name := k.Name
		if !k.Readable {
			return a, false, conflict(name, "holds Secure Boot digest %d but is read-protected; its content cannot be checked", slot)
		}
		got, _ := st.GetBytes(name)
		if slot >= len(digests) {
			if !allZero(got) {
				return a, false, conflict(name, "holds Secure Boot digest slot %d, which this recipe does not use (a foreign digest)", slot)
			}
			return a, false, conflict(name, "has purpose SECURE_BOOT_DIGEST%d, a slot this recipe does not use", slot)
		}
		if !allZero(got) && !bytes.Equal(got, digests[slot][:]) {
			if !subset(got, digests[slot][:]) {
				return a, false, conflict(name, "holds a Secure Boot digest in slot %d that is not recipe key %d (a foreign digest)", slot, slot)
			}
		}
		if _, dup := digestBlock[slot]; dup {
			return a, false, conflict(name, "a second block claims Secure Boot digest slot %d", slot)
		}
		digestBlock[slot] = k.Block
	}
	// Existing flash-encryption key blocks.
	var feBlocks []int
	for _, p := range purposes {
		for _, k := range sum.Keys {
			if k.Purpose == p {
				feBlocks = append(feBlocks, k.Block)
				break
			}
		}
	}

	if j := c.in.Assignment; j != nil {
		a = Assignment{FlashKey: slices.Clone(j.FlashKey), Digests: slices.Clone(j.Digests)}
		if len(a.FlashKey) != len(purposes) || len(a.Digests) != len(digests) {
			return a, false, fmt.Errorf("provisioning: journaled assignment %v does not fit the recipe: %w", *j, ErrJournal)
		}
		for slot, b := range digestBlock {
			if slot < len(a.Digests) && a.Digests[slot] != b {
				return a, false, conflict(c.keyBlockName(b), "holds digest slot %d, the journal assigned BLOCK%d", slot, a.Digests[slot])
			}
		}
		return a, false, nil
	}

	if encOn || len(feBlocks) > 0 {
		if c.in.KeyIsOurs {
			return a, false, fmt.Errorf("provisioning: key is marked as ours but no assignment was journaled: %w", ErrJournal)
		}
		// Only a finished board (every step done) is acceptable: NewPlan
		// checks that once the steps are computed.
		if len(feBlocks) != len(purposes) || !encOn {
			return a, false, conflict(cnt, "flash encryption is already on, or a flash-encryption key is already burned, and this station has no journal for this board")
		}
		for _, b := range feBlocks {
			if k := sum.Keys[b-4]; k.Readable {
				return a, false, conflict(k.Name, "holds a flash-encryption key that is not read-protected, burned by someone else")
			}
		}
		adopted = true
	}
	used := map[int]bool{}
	for _, b := range feBlocks {
		used[b] = true
	}
	for _, b := range digestBlock {
		used[b] = true
	}
	free := func(xts bool) (int, error) {
		for _, k := range sum.Keys {
			if used[k.Block] || k.Purpose != efuse.PurposeUser || !k.Empty || !k.Writable {
				continue
			}
			if xts && k.Block == 9 {
				continue // XTS keys are refused in BLOCK_KEY5 (§3.4)
			}
			if w, _ := st.Writable(fmt.Sprintf("KEY_PURPOSE_%d", k.Block-4)); !w {
				continue
			}
			used[k.Block] = true
			return k.Block, nil
		}
		return 0, conflict("BLOCK_KEY0…5", "not enough free key blocks (need %d for the flash key and %d for the Secure Boot digests)", len(purposes), len(digests))
	}
	if adopted {
		a.FlashKey = feBlocks
	} else {
		for range purposes {
			b, err := free(true)
			if err != nil {
				return a, false, err
			}
			a.FlashKey = append(a.FlashKey, b)
		}
	}
	for slot := range digests {
		if b, ok := digestBlock[slot]; ok {
			a.Digests = append(a.Digests, b)
			continue
		}
		b, err := free(false)
		if err != nil {
			return a, false, err
		}
		a.Digests = append(a.Digests, b)
	}
	return a, adopted, nil
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// subset reports whether every bit set in a is set in b.
func subset(a, b []byte) bool {
	for i := range a {
		if a[i]&^b[i] != 0 {
			return false
		}
	}
	return true
}

// step builds one burn step against cur and returns it with the state it
// leaves (as the host would read it).
func (c *planner) step(name string, phase Phase, cur *efuse.Image) (BurnStep, *efuse.Image, error) {
	s := BurnStep{Name: name, Phase: phase, Lockdown: name == StepDownload}
	var b efuse.Batch
	base := cur // what NewPlan compiles against (a repair zeroes blocks)
	var err error
	switch name {
	case StepFlashKey:
		purposes := fePurposes(c.id, c.r.FlashEncryption.Scheme)
		for i, blk := range c.a.FlashKey {
			var data *[32]byte
			if c.in.FlashKey != nil {
				data = &c.in.FlashKey[i]
			}
			if base, err = c.keyBurn(&b, &s, base, blk, data, purposes[i], true); err != nil {
				return s, nil, err
			}
		}
		if c.id == chip.ESP32 {
			// §5.3: FLASH_CRYPT_CONFIG = 0xF, or every granule shares a key.
			b.Set("FLASH_CRYPT_CONFIG", 0xF)
		}
	case StepEncryptionOn:
		field, want := "SPI_BOOT_CRYPT_CNT", uint64(7)
		if c.id == chip.ESP32 {
			field, want = "FLASH_CRYPT_CNT", 0x7F
		}
		// A value between 0 and want is this station's own interrupted
		// burn (the journal says so); anything else was set by someone else.
		if v := get(cur, field); v != 0 && v != want && (v&^want != 0 || !c.in.KeyIsOurs) {
			return s, nil, conflict(field, "is 0x%x: flash encryption was switched on or off before; this station only takes it from 0 to release mode", v)
		}
		b.Set(field, want)
	case StepFELockdown:
		l := c.r.Lockdown
		set := func(on bool, names ...string) {
			if on {
				for _, n := range names {
					b.Set(n, 1)
				}
			}
		}
		if c.id == chip.ESP32 {
			set(l.DownloadCaches, "DISABLE_DL_CACHE")
			set(l.ManualEncryption, "DISABLE_DL_ENCRYPT", "DISABLE_DL_DECRYPT")
			set(l.JTAG, "JTAG_DISABLE")
			// §6.5 [ESP32]: write_protect_efuse MAC (WR_DIS bit 3, which
			// also locks DIS_CACHE).
			b.WriteProtect("MAC")
		} else {
			set(l.DownloadCaches, "DIS_DOWNLOAD_ICACHE")
			if c.id == chip.ESP32S3 {
				set(l.DownloadCaches, "DIS_DOWNLOAD_DCACHE")
			}
			set(l.JTAG, "DIS_PAD_JTAG", "DIS_USB_JTAG")
			set(l.DirectBoot, "DIS_DIRECT_BOOT")
			set(l.ManualEncryption, "DIS_DOWNLOAD_MANUAL_ENCRYPT")
			// §6.5: write_protect_efuse DIS_ICACHE (WR_DIS bit 2).
			b.WriteProtect("DIS_ICACHE")
		}
	case StepSBDigests:
		for i, blk := range c.a.Digests {
			d := c.r.SecureBoot.Digests[i]
			p := efuse.PurposeSecureBootDigest0 + efuse.Purpose(i)
			if c.id == chip.ESP32 {
				p = efuse.PurposeUser
			}
			if base, err = c.keyBurn(&b, &s, base, blk, &d, p, false); err != nil {
				return s, nil, err
			}
		}
	case StepSBEnable:
		if c.id == chip.ESP32 {
			b.Set("ABS_DONE_1", 1)
		} else {
			b.Set("SECURE_BOOT_EN", 1)
		}
	case StepSBLockdown:
		switch {
		case !c.r.Lockdown.JTAG:
			s.Skip = "nothing to burn: the recipe leaves JTAG on (lockdown.jtag: false)"
		case c.id == chip.ESP32:
			s.Skip = "nothing to burn: ESP32's JTAG_DISABLE is burned in " + StepFELockdown
		default:
			// 7: all three bits, so no later bit can make the count even
			// (§6.9, this project's stricter choice).
			b.Set("SOFT_DIS_JTAG", 7)
		}
	case StepRdDisLock:
		b.WriteProtect("RD_DIS")
	case StepRevoke:
		for _, slot := range c.r.SecureBoot.Revoke {
			b.Set(efuse.RevokeField(c.id, slot), 1)
		}
		if len(c.r.SecureBoot.Revoke) == 0 {
			s.Skip = c.noRevokeReason()
		}
	case StepSecureVersion:
		v, err := cur.SecureVersion()
		if err != nil {
			return s, nil, fmt.Errorf("provisioning: %w", err)
		}
		if v < c.r.AntiRollback.Floor {
			// Add the low floor bits to what is there: the count never
			// goes down and no bit is asked to clear (§3.9).
			b.Set("SECURE_VERSION", get(cur, "SECURE_VERSION")|efuse.SecureVersionBits(c.r.AntiRollback.Floor))
		}
		if c.r.AntiRollback.Floor == 0 {
			s.Skip = "nothing to burn: the recipe's anti-rollback floor is 0"
		}
	case StepDownload:
		switch c.r.Lockdown.Download {
		case recipe.DownloadSecure:
			b.Set(efuse.SecureDownloadField(c.id), 1)
		case recipe.DownloadDisabled:
			b.Set(efuse.DownloadDisableField(c.id), 1)
		default:
			s.Skip = "nothing to burn: the recipe leaves download mode on (lockdown.download: enabled)"
		}
	default:
		return s, nil, fmt.Errorf("provisioning: unknown step %q", name)
	}
	s.Batch = b
	burn, err := efuse.NewPlan(base, b)
	if err != nil {
		if be, ok := errors.AsType[*efuse.BurnError](err); ok {
			return s, nil, &ConflictError{Field: be.Field, Reason: c.burnReason(be), Err: err}
		}
		return s, nil, fmt.Errorf("provisioning: plan %s: %w", name, err)
	}
	s.Burn = burn
	next := base.Clone()
	if err := efuse.Apply(next, burn); err != nil {
		return s, nil, fmt.Errorf("provisioning: simulate %s: %w", name, err)
	}
	view, err := next.ReadView()
	if err != nil {
		return s, nil, err
	}
	clear(next.Blocks[0]) // next may hold key bits; only the view is kept
	for _, blk := range next.Blocks {
		clear(blk)
	}
	s.Changes, err = c.changes(cur, view)
	if err != nil {
		return s, nil, err
	}
	return s, view, nil
}

// noRevokeReason says why the revoke step burns nothing.
func (c *planner) noRevokeReason() string {
	var open []string
	for _, d := range digestSlots(c.r) {
		if d.State == SlotOpen {
			open = append(open, fmt.Sprint(d.Slot))
		}
	}
	switch {
	case len(open) > 0:
		return fmt.Sprintf("nothing to burn: the recipe keeps unused digest slot %s open (secure_boot.keep_unused_slots_open: true)", strings.Join(open, ", "))
	case efuse.RevokeField(c.id, 0) == "":
		return fmt.Sprintf("nothing to burn: %v has %d digest slot and no key revocation", c.r.Chip.Name, c.r.Chip.SecureBootDigests)
	}
	return "nothing to burn: every digest slot holds a key of the recipe"
}

func (c *planner) burnReason(be *efuse.BurnError) string {
	switch {
	case errors.Is(be.Err, efuse.ErrWriteProtected):
		return "write-protected, but the recipe needs it changed"
	case errors.Is(be.Err, efuse.ErrBitClear):
		return "holds bits the recipe's value does not have (eFuse bits cannot be cleared)"
	case errors.Is(be.Err, efuse.ErrReadProtected):
		return "read-protected, so its content cannot be checked before burning"
	case errors.Is(be.Err, efuse.ErrCodedRewrite):
		return "already holds other data in an RS-coded block"
	case errors.Is(be.Err, efuse.ErrForbidden):
		return "the chip forbids this combination"
	}
	return "cannot be burned as the recipe asks"
}

// keyBurn adds one key block burn (the flash key or a digest) to b,
// handling the states a crash can leave (§6 risks): a block already done
// and hidden (only the protections remain to add), a block half-programmed
// (programmed again with the same data; base gets the block zeroed so the
// full program is compiled), a block holding other data (a conflict).
func (c *planner) keyBurn(b *efuse.Batch, s *BurnStep, base *efuse.Image, blk int, data *[32]byte, p efuse.Purpose, secret bool) (*efuse.Image, error) {
	name := c.keyBlockName(blk)
	readable, err := base.Readable(name)
	if err != nil {
		return base, fmt.Errorf("provisioning: %w", err)
	}
	purposeField := ""
	if c.id != chip.ESP32 {
		purposeField = fmt.Sprintf("KEY_PURPOSE_%d", blk-4)
		if cur := efuse.Purpose(get(base, purposeField)); cur != efuse.PurposeUser && cur != p {
			return base, conflict(purposeField, "BLOCK_KEY%d already has purpose %v, the plan needs %v", blk-4, cur, p)
		}
	}
	if !readable {
		// Done and hidden: only add the protections that are missing.
		if purposeField != "" {
			if efuse.Purpose(get(base, purposeField)) != p {
				return base, conflict(name, "is read-protected but its purpose is not %v", p)
			}
			b.WriteProtect(purposeField)
		}
		if secret {
			b.ReadProtect(name)
		}
		b.WriteProtect(name)
		return base, nil
	}
	cur, err := base.GetBytes(name)
	if err != nil {
		return base, fmt.Errorf("provisioning: %w", err)
	}
	if data == nil {
		if secret {
			return base, fmt.Errorf("provisioning: %s: the flash-encryption key must still be burned (or its protections finished) but the device key is not available: %w", name, ErrJournal)
		}
		return base, fmt.Errorf("provisioning: %s: no data to burn", name)
	}
	switch {
	case allZero(cur) || bytes.Equal(cur, data[:]):
	case subset(cur, data[:]):
		// Half-programmed by an earlier run: program the same data again.
		s.Repair = append(s.Repair, blk)
		base = base.Clone()
		clear(base.Blocks[blk])
	default:
		what := "holds data that is not this device's journaled key"
		if !secret {
			what = "holds a Secure Boot digest that is not the recipe's (a foreign digest)"
		}
		return base, conflict(name, "%s", what)
	}
	b.BurnKey(efuse.KeyBurn{Block: blk, Data: *data, Purpose: p, ReadProtect: secret, WriteProtect: true})
	return base, nil
}

// changes lists the fields that differ between two read views. Key blocks
// of the flash key are never shown, whatever state they are in.
func (c *planner) changes(before, after *efuse.Image) ([]Change, error) {
	bv, err := efuse.Decode(before)
	if err != nil {
		return nil, err
	}
	av, err := efuse.Decode(after)
	if err != nil {
		return nil, err
	}
	var out []Change
	for i := range bv {
		if i >= len(av) {
			break
		}
		f := bv[i].Field
		if bv[i].Text == av[i].Text && bv[i].Readable == av[i].Readable {
			continue
		}
		from, to := describe(bv[i]), describe(av[i])
		if slices.Contains(c.a.FlashKey, f.Block) && f.Block != 0 {
			from, to = redact(bv[i]), redact(av[i])
		}
		if from == to {
			continue
		}
		out = append(out, Change{Field: f.Name, From: from, To: to})
	}
	return out, nil
}

func describe(v efuse.Value) string {
	s := v.Text
	if v.Meaning != "" {
		s += " (" + v.Meaning + ")"
	}
	return s
}

// redact shows a flash-key block only as empty, set or read-protected.
func redact(v efuse.Value) string {
	switch {
	case !v.Readable:
		return "(read-protected)"
	case allZero(v.Bytes) && !v.Secret:
		return "(empty)"
	}
	return "(secret key, not shown)"
}
