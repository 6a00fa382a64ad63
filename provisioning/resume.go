package provisioning

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"fuseline/esp/chip"
	"fuseline/esp/efuse"
	"fuseline/esp/loader"
	"fuseline/provisioning/journal"
	"fuseline/provisioning/recipe"
	"fuseline/reports/evidence"
)

// journalState is what a device's journal says about earlier runs.
type journalState struct {
	started, complete bool
	recipe            string // recipe SHA-256 of the last run.start
	assign            *Assignment
	keyDigest         string
	// keyBurnBegun: a flash-key burn began; the key may be (partly) in the
	// eFuses, so no other key may ever be drawn for this device.
	keyBurnBegun bool
	// flashVerified: flash was written and verified with the current key.
	flashVerified bool
	before        *evidence.EfuseSnapshot
	haveBefore    bool
	after         *evidence.EfuseSnapshot
	// destroyed: the device key was destroyed on purpose (DestroyKey).
	destroyed *keyDestroyedData
	// pending are the burn steps an earlier run began (step.begin) that no
	// run has ended ok, by step name: the run that stopped in them may have
	// burned some or all of their bits, and the audit log has only its
	// intent. This run removes the steps it settles or takes over.
	pending map[string]pendingBurn
}

// pendingBurn is a burn step an earlier run began and did not see finish.
type pendingBurn struct {
	Run    string   // the run that began it
	Fields []string // the fields it was to burn
}

// isBurnStep reports whether a journal step name is an eFuse burn step.
func isBurnStep(name string) bool {
	for _, b := range burnOrder {
		if b.name == name {
			return true
		}
	}
	return false
}

// replay reads a journal's records into its state.
func replay(recs []journal.Record) journalState {
	var s journalState
	for _, r := range recs {
		switch r.Kind {
		case recRunStart:
			s.started, s.complete = true, false
			var d runStartData
			if json.Unmarshal(r.Data, &d) == nil {
				s.recipe = d.Recipe
			}
		case recAssign:
			var a Assignment
			if json.Unmarshal(r.Data, &a) == nil {
				s.assign = &a
			}
		case recKey:
			var d keyData
			if json.Unmarshal(r.Data, &d) == nil {
				if d.Digest != s.keyDigest {
					s.flashVerified = false
				}
				s.keyDigest = d.Digest
			}
		case recBefore:
			var e evidence.EfuseSnapshot
			if json.Unmarshal(r.Data, &e) == nil && !s.haveBefore {
				s.before, s.haveBefore = &e, true
			}
		case recAfter:
			var e evidence.EfuseSnapshot
			if json.Unmarshal(r.Data, &e) == nil {
				s.after = &e
			}
		case recBegin:
			if r.Step == StepFlashKey {
				s.keyBurnBegun = true
			}
			if isBurnStep(r.Step) {
				var d burnData
				_ = json.Unmarshal(r.Data, &d)
				if s.pending == nil {
					s.pending = map[string]pendingBurn{}
				}
				// A step begun again keeps the fields of every attempt.
				fields := s.pending[r.Step].Fields
				for _, f := range d.Fields {
					if !slices.Contains(fields, f) {
						fields = append(fields, f)
					}
				}
				s.pending[r.Step] = pendingBurn{Run: r.Run, Fields: fields}
			}
			if strings.HasPrefix(r.Step, "flash:") {
				s.flashVerified = false
			}
		case recEnd:
			if r.Result == ResultOK {
				delete(s.pending, r.Step)
			}
			if r.Step == "verify" && r.Result == ResultOK {
				var d verifyData
				if json.Unmarshal(r.Data, &d) == nil && d.KeyDigest == s.keyDigest && d.KeyDigest != "" {
					s.flashVerified = true
				}
			}
		case recRunEnd:
			s.complete = r.Result == evidence.PASS
		case recKeyDestroyed:
			var d keyDestroyedData
			_ = json.Unmarshal(r.Data, &d)
			d.Time = r.Time
			s.destroyed = &d
		}
	}
	return s
}

// snapshot turns a read view into an evidence snapshot: every BLOCK0 field
// (and ESP32's SECURE_VERSION) by value, every key block by digest. A flash
// key that reads as zero once read-protected is digested from the data
// burned when burned is set and the key is known.
func (x *run) snapshot(img *efuse.Image, burned bool) (evidence.EfuseSnapshot, error) {
	fields := map[string]uint64{}
	for _, f := range efuse.Fields(img.Chip) {
		if f.Hidden || f.Width > 64 || evidence.KeyField(f.Name) {
			continue
		}
		if f.Block != 0 && f.Name != "SECURE_VERSION" {
			continue
		}
		if v, err := img.Get(f.Name); err == nil {
			fields[f.Name] = v
		}
	}
	var keys []evidence.KeyMaterial
	var blocks []int
	if img.Chip == chip.ESP32 {
		blocks = []int{1, 2, 3}
	} else {
		blocks = []int{4, 5, 6, 7, 8, 9}
	}
	sum, err := efuse.Summarize(img)
	if err != nil {
		return evidence.EfuseSnapshot{}, fmt.Errorf("provisioning: snapshot: %w", err)
	}
	slotPurpose := map[int]efuse.Purpose{}
	for _, k := range sum.Keys {
		slotPurpose[k.Block] = k.Purpose
	}
	for _, b := range blocks {
		name := x.keyBlockName(b)
		data, err := img.GetBytes(name)
		if err != nil {
			return evidence.EfuseSnapshot{}, fmt.Errorf("provisioning: snapshot: %w", err)
		}
		readable, _ := img.Readable(name)
		writable, _ := img.Writable(name)
		purpose := "USER"
		if img.Chip != chip.ESP32 {
			purpose = efuse.Purpose(get(img, fmt.Sprintf("KEY_PURPOSE_%d", b-4))).String()
		} else if b == 1 {
			purpose = "FLASH_ENCRYPTION"
		} else if b == 2 {
			purpose = "SECURE_BOOT_V2"
		}
		km := evidence.KeyMaterial{Block: name, Purpose: purpose, ReadProtected: !readable, WriteProtected: !writable, Data: data, Source: evidence.SourceReadback}
		if burned && !readable && x.kb != nil && x.plan != nil {
			fe := fePurposes(img.Chip, x.r.FlashEncryption.Scheme)
			for i, fb := range x.plan.Assignment.FlashKey {
				// The key's data is hidden; what the read shows of it, its
				// purpose, must be this key's, or the evidence would name a
				// key the board does not use. The eFuse table says what a
				// block's purpose is (USER on ESP32, whose BLOCK1 has no
				// purpose field, and which fePurposes expects there).
				ours := i < len(fe) && slotPurpose[b] == fe[i]
				if fb == b && i < len(x.kb) && ours {
					km.Data, km.Source = x.kb[i][:], evidence.SourceBurned
				}
			}
		}
		keys = append(keys, km)
	}
	return evidence.NewEfuseSnapshot(fields, keys)
}

// securitySnapshot is what GET_SECURITY_INFO tells of a locked board.
func (x *run) securitySnapshot(si loader.SecurityInfo) (evidence.EfuseSnapshot, error) {
	f := si.Flags
	b := func(fl loader.SecurityFlags) uint64 {
		if f&fl != 0 {
			return 1
		}
		return 0
	}
	fields := map[string]uint64{
		"SECURE_BOOT_EN":           b(loader.FlagSecureBootEn),
		"ENABLE_SECURITY_DOWNLOAD": b(loader.FlagSecureDownloadEnable),
		"SECURE_BOOT_KEY_REVOKE0":  b(loader.FlagSecureBootKeyRevoke0),
		"SECURE_BOOT_KEY_REVOKE1":  b(loader.FlagSecureBootKeyRevoke1),
		"SECURE_BOOT_KEY_REVOKE2":  b(loader.FlagSecureBootKeyRevoke2),
		"DIS_PAD_JTAG":             b(loader.FlagHardDisJTAG),
		"DIS_DOWNLOAD_ICACHE":      b(loader.FlagDisDownloadIcache),
		"SPI_BOOT_CRYPT_CNT":       uint64(si.FlashCryptCnt),
	}
	if _, err := efuse.FieldByName(x.r.Chip.ID, "DIS_DOWNLOAD_DCACHE"); err == nil { // S3 only
		fields["DIS_DOWNLOAD_DCACHE"] = b(loader.FlagDisDownloadDcache)
	}
	for n := range 6 {
		fields[fmt.Sprintf("KEY_PURPOSE_%d", n)] = uint64(si.KeyPurposes[n])
	}
	return evidence.NewEfuseSnapshot(fields, nil)
}

// afterDisagrees lists the fields in which after, the final eFuse state
// the evidence will record, differs from what the board reports now in
// GET_SECURITY_INFO: the evidence's final state must be this board's as
// last observed, not a plan's or an earlier run's journal. Fields the
// security info does not report are not compared.
func (x *run) afterDisagrees(after *evidence.EfuseSnapshot, si loader.SecurityInfo) ([]string, error) {
	seen, err := x.securitySnapshot(si)
	if err != nil {
		return nil, err
	}
	var bad []string
	for _, name := range slices.Sorted(maps.Keys(seen.Fields)) {
		if v, ok := after.Fields[name]; ok && v != seen.Fields[name] {
			bad = append(bad, fmt.Sprintf("%s (evidence %d, board %d)", name, v, seen.Fields[name]))
		}
	}
	return bad, nil
}

// checkAfter records whether after agrees with the security info si and
// fails the run (ErrVerify) where it does not.
func (x *run) checkAfter(after *evidence.EfuseSnapshot, si loader.SecurityInfo) error {
	bad, err := x.afterDisagrees(after, si)
	if err != nil {
		return err
	}
	x.check(evidence.CheckLockdown+":evidence-after", "the final eFuse state in the evidence agrees with what the board reports in GET_SECURITY_INFO after the last burn",
		len(bad) == 0, "differs: "+strings.Join(bad, ", "))
	if len(bad) > 0 {
		return fmt.Errorf("%w: the board's security info differs from the eFuse state read back before the lockdown: %s", ErrVerify, strings.Join(bad, ", "))
	}
	return nil
}

// locked handles a board found in secure download mode: its registers are
// out of reach, so what GET_SECURITY_INFO reports is checked against the
// recipe, then the boot. A run that stopped right after burning the
// download lockdown is completed here; a finished board is reported as
// such, with nothing burned.
func (x *run) locked(ctx context.Context) error {
	if x.r.Lockdown.Download != recipe.DownloadSecure {
		return conflict("ENABLE_SECURITY_DOWNLOAD", "the board is in secure download mode, the recipe does not ask for it")
	}
	err := x.step(PhaseReadback, "security-info", func() error {
		si := x.info.Security
		var bad []string
		want := func(ok bool, what string) {
			if !ok {
				bad = append(bad, what)
			}
		}
		f := si.Flags
		want(f&loader.FlagSecureBootEn != 0, "SECURE_BOOT_EN")
		want(f&loader.FlagSecureDownloadEnable != 0, "ENABLE_SECURITY_DOWNLOAD")
		want(si.FlashCryptCnt == 7, fmt.Sprintf("SPI_BOOT_CRYPT_CNT = 7 (is %d)", si.FlashCryptCnt))
		purposes := fePurposes(x.r.Chip.ID, x.r.FlashEncryption.Scheme)
		have := map[efuse.Purpose]bool{}
		for n := range 6 {
			have[efuse.Purpose(si.KeyPurposes[n])] = true
		}
		for _, p := range purposes {
			want(have[p], "a key block with purpose "+p.String())
		}
		revoked := []loader.SecurityFlags{loader.FlagSecureBootKeyRevoke0, loader.FlagSecureBootKeyRevoke1, loader.FlagSecureBootKeyRevoke2}
		for i := range x.r.SecureBoot.Keys {
			want(have[efuse.PurposeSecureBootDigest0+efuse.Purpose(i)], fmt.Sprintf("a key block with purpose SECURE_BOOT_DIGEST%d", i))
			want(f&revoked[i] == 0, fmt.Sprintf("SECURE_BOOT_KEY_REVOKE%d clear", i))
		}
		for _, s := range x.r.SecureBoot.Revoke {
			want(f&revoked[s] != 0, fmt.Sprintf("SECURE_BOOT_KEY_REVOKE%d", s))
		}
		if x.r.Lockdown.JTAG {
			want(f&loader.FlagHardDisJTAG != 0, "DIS_PAD_JTAG")
			want(f&loader.FlagSoftDisJTAG != 0, "SOFT_DIS_JTAG")
		}
		if x.r.Lockdown.DownloadCaches {
			want(f&loader.FlagDisDownloadIcache != 0, "DIS_DOWNLOAD_ICACHE")
			if _, err := efuse.FieldByName(x.r.Chip.ID, "DIS_DOWNLOAD_DCACHE"); err == nil {
				want(f&loader.FlagDisDownloadDcache != 0, "DIS_DOWNLOAD_DCACHE")
			}
		}
		x.check(evidence.CheckLockdown+":security-info", "GET_SECURITY_INFO (secure download mode) reports the recipe's encryption, Secure Boot, key purposes, revocations and lockdown",
			len(bad) == 0, "missing: "+strings.Join(bad, ", "))
		x.check(evidence.CheckFlashMD5, "flash MD5 against the expected ciphertext", false, "the board is in secure download mode, which refuses SPI_FLASH_MD5; the boot check stands in")
		if x.js.after != nil {
			// The earlier run's read-back, before its lockdown: it stands
			// as the final state only where the board still agrees.
			x.after = x.js.after
			x.after.Fields["ENABLE_SECURITY_DOWNLOAD"] = 1
			if err := x.checkAfter(x.after, si); err != nil {
				return err
			}
		} else {
			s, err := x.securitySnapshot(si)
			if err != nil {
				return err
			}
			x.after = &s
		}
		if x.before == nil {
			b := *x.after
			x.before = &b
		}
		if len(bad) > 0 {
			return conflict("security info", "the locked board does not match the recipe: missing %s", strings.Join(bad, ", "))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if x.js.started && !x.js.complete {
		x.res.Resumed = true
		if _, ok := x.js.pending[StepDownload]; ok {
			// The interrupted run burned it and lost the board before it saw
			// the result: its burn goes on record now.
			x.settle(StepDownload, "GET_SECURITY_INFO reports secure download mode")
		} else {
			_ = x.journalRec(recEnd, StepDownload, ResultOK, "", nil) // confirmed by the security info
		}
	} else {
		x.res.AlreadyProvisioned = true
	}
	return x.bootCheck(ctx)
}

// alreadyDone handles a board whose eFuses already hold everything the
// recipe asks and whose key this station no longer holds: verified by its
// eFuses and its boot, nothing burned or written.
func (x *run) alreadyDone(ctx context.Context) error {
	x.res.AlreadyProvisioned = true
	for _, s := range x.plan.Steps {
		x.settle(s.Name, "eFuse read-back")
	}
	err := x.step(PhaseReadback, "", func() error {
		x.check(evidence.CheckLockdown, "eFuse read-back holds every burn of the recipe", true, "")
		hidden := true
		for _, b := range x.plan.Assignment.FlashKey {
			r, _ := x.img.Readable(x.keyBlockName(b))
			hidden = hidden && !r
		}
		x.check(evidence.CheckKeyReadProtected, "the flash-encryption key block(s) read as zero with RD_DIS set", hidden, "a key block is readable")
		x.check(evidence.CheckFlashMD5, "flash MD5 against the expected ciphertext", false, "the device key was zeroised after provisioning, so the expected ciphertext cannot be computed; the boot check stands in")
		s, err := x.snapshot(x.img, false)
		if err != nil {
			return err
		}
		x.after = &s
		return nil
	})
	if err != nil {
		return err
	}
	return x.bootCheck(ctx)
}
