package provisioning

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"fuseline/esp/chip"
	"fuseline/esp/efuse"
)

const s3Recipe = `chip: esp32s3
release: {path: build}
secure_boot: {keys: [k1], revoke: [1, 2]}
flash_encryption: {scheme: xts-aes-128}
`

// applyPlan burns every step of p into phys, as the flow does step by step.
func applyPlan(t *testing.T, phys *efuse.Image, p *Plan) {
	t.Helper()
	for _, s := range p.Steps {
		if s.Burn == nil {
			continue
		}
		if err := efuse.Apply(phys, s.Burn); err != nil {
			t.Fatalf("apply %s: %v", s.Name, err)
		}
	}
}

func TestPlanBlankS3MatchesWorkedExample(t *testing.T) {
	t.Parallel()
	r := testRecipe(t, s3Recipe, 1)
	key := fixedKey(chip.XTSAES128)
	kb := keyBlocks(t, chip.XTSAES128, key)
	phys := blank(t, chip.ESP32S3)
	p, err := NewPlan(PlanInput{Recipe: r, State: view(t, phys), FlashKey: kb, MinSecureVersion: 0})
	if err != nil {
		t.Fatalf("NewPlan: %v", err)
	}
	if !slices.Equal(p.Assignment.FlashKey, []int{4}) || !slices.Equal(p.Assignment.Digests, []int{5}) {
		t.Fatalf("assignment = %+v, want flash key BLOCK_KEY0, digest BLOCK_KEY1", p.Assignment)
	}
	var names []string
	for _, s := range p.Steps {
		names = append(names, s.Name)
	}
	want := []string{StepFlashKey, StepEncryptionOn, StepFELockdown, StepSBDigests, StepSBEnable, StepSBLockdown, StepRdDisLock, StepRevoke, StepSecureVersion, StepDownload}
	if !slices.Equal(names, want) {
		t.Fatalf("steps = %v, want %v (§6 order)", names, want)
	}
	if p.Step(StepSecureVersion).Irreversible() {
		t.Error("floor 0 on a blank board needs no SECURE_VERSION burn")
	}
	if !p.Step(StepDownload).Lockdown {
		t.Error("the download lockdown step is not marked")
	}
	applyPlan(t, phys, p)
	// §3.10 worked example: 01800305 001F0C01 94DC0000 00700000 00000022 00000000,
	// minus SECURE_BOOT_AGGRESSIVE_REVOKE (word 3 bit 21), which this flow
	// does not burn (§6 risks: only after a verified boot, or not at all).
	golden := []uint32{0x01800305, 0x001F0C01, 0x94DC0000, 0x00700000 &^ (1 << 21), 0x00000022, 0x00000000}
	if !slices.Equal(phys.Blocks[0], golden) {
		t.Errorf("BLOCK0 = %08x\nwant    %08x", phys.Blocks[0], golden)
	}
	var got [32]byte
	b, _ := phys.GetBytes("BLOCK_KEY0")
	copy(got[:], b)
	if got != kb[0] {
		t.Error("BLOCK_KEY0 does not hold the device key")
	}
	b, _ = phys.GetBytes("BLOCK_KEY1")
	if d := testDigest(t, 0); string(b) != string(d[:]) {
		t.Error("BLOCK_KEY1 does not hold the key1 digest")
	}
	if !view(t, phys).Equal(p.Final) {
		t.Error("the plan's predicted final state differs from the burned one")
	}
	// The same recipe against the final state: nothing to burn.
	again, err := NewPlan(PlanInput{Recipe: r, State: view(t, phys), Assignment: &p.Assignment, KeyIsOurs: true, MinSecureVersion: 0})
	if err != nil {
		t.Fatalf("re-plan: %v", err)
	}
	if !again.Done() {
		t.Errorf("re-plan of a finished board burns %v", again.Irreversible())
	}
}

func TestPlanChips(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		yaml   string
		keys   int
		scheme chip.Encryption
		check  func(t *testing.T, p *Plan, fin *efuse.Image)
	}{
		{"c3", strings.Replace(s3Recipe, "esp32s3", "esp32c3", 1), 1, chip.XTSAES128, func(t *testing.T, p *Plan, fin *efuse.Image) {
			if v, _ := fin.Get("DIS_DOWNLOAD_ICACHE"); v != 1 {
				t.Error("DIS_DOWNLOAD_ICACHE not burned")
			}
		}},
		{"s3 xts-256 two keys floor 3 download disabled", `chip: esp32s3
release: {path: b}
secure_boot: {keys: [a, b], revoke: [2]}
flash_encryption: {scheme: xts-aes-256}
anti_rollback: {floor: 3}
lockdown: {download: disabled, jtag: false}
`, 2, chip.XTSAES256, func(t *testing.T, p *Plan, fin *efuse.Image) {
			if !slices.Equal(p.Assignment.FlashKey, []int{4, 5}) || !slices.Equal(p.Assignment.Digests, []int{6, 7}) {
				t.Errorf("assignment %+v", p.Assignment)
			}
			ps, _ := fin.KeyPurposes()
			if ps[0] != efuse.PurposeXTSAES256Key1 || ps[1] != efuse.PurposeXTSAES256Key2 || ps[2] != efuse.PurposeSecureBootDigest0 || ps[3] != efuse.PurposeSecureBootDigest1 {
				t.Errorf("purposes %v", ps)
			}
			if v, _ := fin.SecureVersion(); v != 3 {
				t.Errorf("secure version %d, want 3", v)
			}
			for f, want := range map[string]uint64{"DIS_DOWNLOAD_MODE": 1, "ENABLE_SECURITY_DOWNLOAD": 0, "DIS_PAD_JTAG": 0, "SOFT_DIS_JTAG": 0, "SECURE_BOOT_KEY_REVOKE2": 1, "SECURE_BOOT_KEY_REVOKE1": 0} {
				if v, _ := fin.Get(f); v != want {
					t.Errorf("%s = %d, want %d", f, v, want)
				}
			}
		}},
		{"esp32", `chip: esp32
release: {path: b}
secure_boot: {keys: [a]}
flash_encryption: {scheme: aes-256-classic}
anti_rollback: {floor: 2}
lockdown: {download: disabled}
`, 1, chip.AES256Classic, func(t *testing.T, p *Plan, fin *efuse.Image) {
			for f, want := range map[string]uint64{"FLASH_CRYPT_CNT": 0x7F, "ABS_DONE_1": 1, "JTAG_DISABLE": 1, "DISABLE_DL_ENCRYPT": 1,
				"DISABLE_DL_DECRYPT": 1, "DISABLE_DL_CACHE": 1, "UART_DOWNLOAD_DIS": 1, "SECURE_VERSION": 3} {
				if v, err := fin.Get(f); err != nil || v != want {
					t.Errorf("%s = %d (%v), want %d", f, v, err, want)
				}
			}
			if r, _ := fin.Readable("BLOCK1"); r {
				t.Error("BLOCK1 (flash key) is readable")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := testRecipe(t, tc.yaml, tc.keys)
			kb := keyBlocks(t, tc.scheme, fixedKey(tc.scheme))
			phys := blank(t, r.Chip.ID)
			p, err := NewPlan(PlanInput{Recipe: r, State: view(t, phys), FlashKey: kb, MinSecureVersion: 5})
			if err != nil {
				t.Fatalf("NewPlan: %v", err)
			}
			applyPlan(t, phys, p)
			fin := view(t, phys)
			if !fin.Equal(p.Final) {
				t.Error("predicted final state differs")
			}
			tc.check(t, p, fin)
			again, err := NewPlan(PlanInput{Recipe: r, State: fin, Assignment: &p.Assignment, KeyIsOurs: true, MinSecureVersion: 5})
			if err != nil || !again.Done() {
				t.Errorf("re-plan: err %v, burns %v", err, again.Irreversible())
			}
		})
	}
}

// TestPlanResume: a run stopped after any step, or in the middle of a key
// block program, re-plans from the board and ends in the same state with
// the same values.
func TestPlanResume(t *testing.T) {
	t.Parallel()
	r := testRecipe(t, s3Recipe, 1)
	kb := keyBlocks(t, chip.XTSAES128, fixedKey(chip.XTSAES128))
	full := blank(t, chip.ESP32S3)
	p0, err := NewPlan(PlanInput{Recipe: r, State: view(t, full), FlashKey: kb, MinSecureVersion: 0})
	if err != nil {
		t.Fatal(err)
	}
	applyPlan(t, full, p0)
	for k := 0; k <= len(p0.Steps); k++ {
		for _, half := range []bool{false, true} {
			if half && (k >= len(p0.Steps) || len(p0.Steps[k].Burn.Programs) == 0) {
				continue
			}
			t.Run(fmt.Sprintf("after %d steps, half %v", k, half), func(t *testing.T) {
				t.Parallel()
				phys := blank(t, chip.ESP32S3)
				applyPlan(t, phys, &Plan{Steps: p0.Steps[:k]})
				if half {
					// The power went during the first program of step k:
					// some of its bits are set, not all.
					pr := p0.Steps[k].Burn.Programs[0]
					for w := range pr.Data {
						pr.Data[w] &= 0x0F0F0F0F
					}
					if pr.Block == 0 {
						_ = phys.Program(0, pr.Data, pr.Check)
					} else {
						for w := range phys.Blocks[pr.Block] {
							phys.Blocks[pr.Block][w] |= pr.Data[w]
						}
					}
				}
				p, err := NewPlan(PlanInput{Recipe: r, State: view(t, phys), Assignment: &p0.Assignment, FlashKey: kb, KeyIsOurs: true, MinSecureVersion: 0})
				if err != nil {
					t.Fatalf("re-plan: %v", err)
				}
				for i, s := range p.Steps {
					if i < k && s.Irreversible() {
						t.Errorf("step %s was done but is planned again: %v", s.Name, s.Burn.Programs)
					}
				}
				if half && p0.Steps[k].Burn.Programs[0].Block != 0 && !slices.Equal(p.Steps[k].Repair, []int{p0.Steps[k].Burn.Programs[0].Block}) {
					t.Errorf("half-programmed block not repaired: %v", p.Steps[k].Repair)
				}
				applyPlan(t, phys, p)
				if !phys.Equal(full) {
					t.Errorf("resumed board differs from an uninterrupted one:\n%v\n%v", phys.Blocks[0], full.Blocks[0])
				}
			})
		}
	}
}

func loadDump(t *testing.T) *efuse.Image {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "esp32s3.provisioned.dump.txt"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := efuse.ParseDump(chip.ESP32S3, b)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestPlanConflicts(t *testing.T) {
	t.Parallel()
	kb := keyBlocks(t, chip.XTSAES128, fixedKey(chip.XTSAES128))
	set := func(kv ...any) func(t *testing.T) *efuse.Image {
		return func(t *testing.T) *efuse.Image {
			img := blank(t, chip.ESP32S3)
			for i := 0; i < len(kv); i += 2 {
				if err := img.Set(kv[i].(string), uint64(kv[i+1].(int))); err != nil {
					t.Fatal(err)
				}
			}
			return img
		}
	}
	for _, tc := range []struct {
		name  string
		yaml  string
		keys  int
		state func(t *testing.T) *efuse.Image
		minSV int
		field string
	}{
		{"espefuse-provisioned board, other digest in slot 0", strings.Replace(s3Recipe, "[k1]", "[k2]", 1), 1, func(t *testing.T) *efuse.Image {
			// recipe key 0 is key1 here; the board's slot 0 holds key1 → use key2 as recipe key by swapping digests below
			return loadDump(t)
		}, -1, "BLOCK_KEY1"},
		{"espefuse-provisioned board, our digests, unknown flash key", strings.Replace(s3Recipe, "[k1], revoke: [1, 2]", "[k1, k2], revoke: [2]", 1), 2, loadDump, 3, "BLOCK_KEY0"},
		{"secure version above the release", s3Recipe, 1, set("SECURE_VERSION", 0b111), 2, "SECURE_VERSION"},
		{"encryption already on", s3Recipe, 1, set("SPI_BOOT_CRYPT_CNT", 1), 0, "SPI_BOOT_CRYPT_CNT"},
		{"write-protected lockdown field", s3Recipe, 1, set("WR_DIS", 1<<2), 0, "DIS_DOWNLOAD_ICACHE"},
		{"revoked slot the recipe needs", s3Recipe, 1, set("SECURE_BOOT_KEY_REVOKE0", 1), 0, "SECURE_BOOT_KEY_REVOKE0"},
		{"foreign digest in an unused slot", s3Recipe, 1, func(t *testing.T) *efuse.Image {
			img := set("KEY_PURPOSE_3", int(efuse.PurposeSecureBootDigest2))(t)
			if err := img.SetBytes("BLOCK_KEY3", []byte(strings.Repeat("x", 32))); err != nil {
				t.Fatal(err)
			}
			return img
		}, 0, "BLOCK_KEY3"},
		{"no free key blocks", s3Recipe, 1, func(t *testing.T) *efuse.Image {
			img := blank(t, chip.ESP32S3)
			for n := range 6 {
				if err := img.SetBytes(fmt.Sprintf("BLOCK_KEY%d", n), []byte(strings.Repeat("u", 32))); err != nil {
					t.Fatal(err)
				}
			}
			return img
		}, 0, "BLOCK_KEY0…5"},
		{"S3 USB-Serial-JTAG already off", s3Recipe, 1, set("DIS_USB_SERIAL_JTAG", 1), 0, "DIS_USB_JTAG"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := testRecipe(t, tc.yaml, tc.keys)
			if tc.name == "espefuse-provisioned board, other digest in slot 0" {
				r.SecureBoot.Digests[0] = testDigest(t, 1) // slot 0 of the board holds key1: foreign to a key2 recipe
			}
			_, err := NewPlan(PlanInput{Recipe: r, State: tc.state(t), FlashKey: kb, MinSecureVersion: tc.minSV})
			if !errors.Is(err, ErrConflict) {
				t.Fatalf("err = %v, want ErrConflict", err)
			}
			ce, ok := errors.AsType[*ConflictError](err)
			if !ok || ce.Field != tc.field {
				t.Fatalf("conflict %+v, want field %s", ce, tc.field)
			}
			if strings.Contains(err.Error(), fmt.Sprintf("%x", kb[0][:8])) {
				t.Fatal("the error shows the key")
			}
		})
	}
}

func TestPlanAlreadyProvisionedWithoutJournal(t *testing.T) {
	t.Parallel()
	r := testRecipe(t, s3Recipe, 1)
	kb := keyBlocks(t, chip.XTSAES128, fixedKey(chip.XTSAES128))
	phys := blank(t, chip.ESP32S3)
	p0, err := NewPlan(PlanInput{Recipe: r, State: view(t, phys), FlashKey: kb, MinSecureVersion: 0})
	if err != nil {
		t.Fatal(err)
	}
	applyPlan(t, phys, p0)
	p, err := NewPlan(PlanInput{Recipe: r, State: view(t, phys), MinSecureVersion: 0})
	if err != nil {
		t.Fatalf("a board finished with this recipe is refused: %v", err)
	}
	if !p.Done() || !slices.Equal(p.Assignment.FlashKey, []int{4}) {
		t.Fatalf("done %v, assignment %+v", p.Done(), p.Assignment)
	}
	// Half-finished by someone else: refused.
	phys = blank(t, chip.ESP32S3)
	applyPlan(t, phys, &Plan{Steps: p0.Steps[:2]})
	if _, err := NewPlan(PlanInput{Recipe: r, State: view(t, phys), MinSecureVersion: 0}); !errors.Is(err, ErrConflict) {
		t.Fatalf("half-provisioned board without journal: %v", err)
	}
}

func TestPlanChangesHideTheKey(t *testing.T) {
	t.Parallel()
	r := testRecipe(t, s3Recipe, 1)
	kb := keyBlocks(t, chip.XTSAES128, fixedKey(chip.XTSAES128))
	p, err := NewPlan(PlanInput{Recipe: r, State: blank(t, chip.ESP32S3), FlashKey: kb, MinSecureVersion: 0})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Change{}
	for _, c := range p.Step(StepFlashKey).Changes {
		got[c.Field] = c
	}
	if c := got["BLOCK_KEY0"]; c.From != "(empty)" || c.To != "(read-protected)" {
		t.Errorf("BLOCK_KEY0 change %+v", c)
	}
	if c := got["KEY_PURPOSE_0"]; c.From != "0 (USER)" && !strings.HasPrefix(c.To, "4") {
		t.Errorf("KEY_PURPOSE_0 change %+v", c)
	}
	for _, s := range p.Steps {
		for _, c := range s.Changes {
			for _, k := range kb {
				if strings.Contains(strings.ReplaceAll(c.To+c.From, " ", ""), fmt.Sprintf("%x", k[:4])) {
					t.Fatalf("step %s shows key bytes: %+v", s.Name, c)
				}
			}
		}
	}
}

// TestPlanUnusedDigestSlots: a recipe that says nothing about revocation
// revokes every unused digest slot (ESP-IDF's host workflow, §6.9); only
// keep_unused_slots_open leaves them open, and then the plan says so (the
// step's reason, the slot table, a warning) instead of "already on the
// board". ESP32 has one slot and nothing to revoke.
func TestPlanUnusedDigestSlots(t *testing.T) {
	t.Parallel()
	const s3 = "chip: esp32s3\nrelease: {path: build}\nflash_encryption: {scheme: xts-aes-128}\n"
	for _, tc := range []struct {
		name    string
		yaml    string
		keys    int
		id      chip.ID
		revoked []string // SECURE_BOOT_KEY_REVOKEn fields the plan burns
		slots   []string // DigestSlots states
		plan    []string // lines the rendered plan holds
		skip    string   // the revoke step's reason
	}{
		{"default revokes every unused slot", s3 + "secure_boot: {keys: [k1]}\n", 1, chip.ESP32S3,
			[]string{"SECURE_BOOT_KEY_REVOKE1", "SECURE_BOOT_KEY_REVOKE2"}, []string{SlotKey, SlotRevoked, SlotRevoked},
			[]string{"Secure Boot digest slots: 0 key 0; 1 revoked; 2 revoked", "SECURE_BOOT_KEY_REVOKE1", "SECURE_BOOT_KEY_REVOKE2"}, ""},
		{"two keys", s3 + "secure_boot: {keys: [k1, k2]}\n", 2, chip.ESP32S3,
			[]string{"SECURE_BOOT_KEY_REVOKE2"}, []string{SlotKey, SlotKey, SlotRevoked}, nil, ""},
		{"opt-out", s3 + "secure_boot: {keys: [k1], keep_unused_slots_open: true}\n", 1, chip.ESP32S3,
			nil, []string{SlotKey, SlotOpen, SlotOpen},
			[]string{"Secure Boot digest slots: 0 key 0; 1 left open; 2 left open",
				"WARNING: unused digest slot 1, 2 stays open (secure_boot.keep_unused_slots_open: true)",
				"(nothing to burn: the recipe keeps unused digest slot 1, 2 open (secure_boot.keep_unused_slots_open: true))"},
			"nothing to burn: the recipe keeps unused digest slot 1, 2 open (secure_boot.keep_unused_slots_open: true)"},
		{"opt-out, one revoked", s3 + "secure_boot: {keys: [k1], revoke: [2], keep_unused_slots_open: true}\n", 1, chip.ESP32S3,
			[]string{"SECURE_BOOT_KEY_REVOKE2"}, []string{SlotKey, SlotOpen, SlotRevoked},
			[]string{"WARNING: unused digest slot 1 stays open"}, ""},
		{"c3", strings.Replace(s3, "esp32s3", "esp32c3", 1) + "secure_boot: {keys: [k1]}\n", 1, chip.ESP32C3,
			[]string{"SECURE_BOOT_KEY_REVOKE1", "SECURE_BOOT_KEY_REVOKE2"}, []string{SlotKey, SlotRevoked, SlotRevoked}, nil, ""},
		{"esp32", "chip: esp32\nrelease: {path: b}\nsecure_boot: {keys: [k1]}\nflash_encryption: {scheme: aes-256-classic}\nlockdown: {download: disabled}\n", 1, chip.ESP32,
			nil, []string{SlotKey},
			[]string{"Secure Boot digest slots: 0 key 0\n", "(nothing to burn: ESP32 has 1 digest slot and no key revocation)"},
			"nothing to burn: ESP32 has 1 digest slot and no key revocation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := testRecipe(t, tc.yaml, tc.keys)
			scheme := r.FlashEncryption.Scheme
			p, err := NewPlan(PlanInput{Recipe: r, State: view(t, blank(t, tc.id)), FlashKey: keyBlocks(t, scheme, fixedKey(scheme)), MinSecureVersion: -1})
			if err != nil {
				t.Fatal(err)
			}
			s := p.Step(StepRevoke)
			var burned []string
			for _, c := range s.Changes {
				burned = append(burned, c.Field)
			}
			if !slices.Equal(burned, tc.revoked) {
				t.Errorf("revoke burns %v, want %v", burned, tc.revoked)
			}
			if s.Skip != tc.skip {
				t.Errorf("revoke step reason %q, want %q", s.Skip, tc.skip)
			}
			var states []string
			for _, d := range p.DigestSlots {
				states = append(states, d.State)
			}
			if !slices.Equal(states, tc.slots) {
				t.Errorf("digest slots %v, want %v", states, tc.slots)
			}
			var out strings.Builder
			if err := WritePlan(&out, &RunPlan{Chip: r.Chip.Arg(), Efuse: p}); err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.plan {
				if !strings.Contains(out.String(), want) {
					t.Errorf("plan lacks %q:\n%s", want, out.String())
				}
			}
			if strings.Contains(out.String(), "already on the board") {
				t.Errorf("a blank board's plan says a step is already on the board:\n%s", out.String())
			}
		})
	}
}
