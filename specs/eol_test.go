package specs

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"fuseline/esp/chip"
	"fuseline/esp/efuse"
	"fuseline/provisioning"
	"fuseline/provisioning/recipe"
	"fuseline/provisioning/workspace"
	"fuseline/reports/evidence"
)

// eolWant is the final state the recipes of these specs ask of a blank
// board: one Secure Boot key, anti-rollback floor 1, full lockdown; on S3/C3
// digest slots 1 and 2 revoked and secure download mode, on classic ESP32
// (one digest block, no revocation, no secure download mode) UART download
// disabled.
type eolWant struct {
	// fields is the final eFuse state, field by field (SECURE_VERSION as
	// the version it counts).
	fields map[string]uint64
	// wrDisSet are the WR_DIS bits the flow must set, wrDisClear the ones
	// it must leave clear, each with what it locks.
	wrDisSet, wrDisClear map[int]string
	// flashKey holds the flash-encryption key, digest the Secure Boot v2
	// digest of recipe key 0.
	flashKey, digest string
	// burned is the exact list of burn steps a blank board needs; nil when
	// the spec does not pin it.
	burned []string
}

func wantFor(c chip.ID) eolWant {
	if c == chip.ESP32 {
		// esp-security-facts §3.6, §5.3 and the [ESP32] notes of §6, as
		// provisioning's plan burns them for chip.ESP32.
		return eolWant{
			fields: map[string]uint64{
				"FLASH_CRYPT_CNT":    0x7F, // §6.3: release mode, every bit set, permanent
				"FLASH_CRYPT_CONFIG": 0xF,  // §5.3: every key range gets the address tweak
				"CODING_SCHEME":      0,    // BLOCK1 holds the whole 256-bit key
				"ABS_DONE_1":         1,    // §6.7: Secure Boot v2 on
				"ABS_DONE_0":         0,    // Secure Boot v1 never
				"JTAG_DISABLE":       1,    // §6.5
				"DISABLE_DL_ENCRYPT": 1, "DISABLE_DL_DECRYPT": 1, "DISABLE_DL_CACHE": 1,
				"DIS_CACHE":         0,      // frozen at 0 by WR_DIS bit 3
				"UART_DOWNLOAD_DIS": 1,      // §6.10: the download lockdown (ESP32 has no secure download mode)
				"SECURE_VERSION":    1,      // BLOCK3 word 4 (§3.9), the floor
				"RD_DIS":            1 << 0, // BLOCK1 (the flash key) hidden, nothing else
			},
			wrDisSet: map[int]string{
				0: "RD_DIS (§6.9)",
				3: "MAC and DIS_CACHE (write_protect_efuse MAC, §6.5)",
				7: "BLOCK1, the flash key",
				8: "BLOCK2, the Secure Boot digest",
			},
			wrDisClear: map[int]string{9: "BLOCK3 would freeze SECURE_VERSION"},
			flashKey:   "BLOCK1", digest: "BLOCK2",
			// No SOFT_DIS_JTAG and no revocation exist on ESP32: sb-lockdown
			// and revoke have nothing to burn.
			burned: []string{provisioning.StepFlashKey, provisioning.StepEncryptionOn, provisioning.StepFELockdown,
				provisioning.StepSBDigests, provisioning.StepSBEnable, provisioning.StepRdDisLock,
				provisioning.StepSecureVersion, provisioning.StepDownload},
		}
	}
	m := map[string]uint64{
		"SPI_BOOT_CRYPT_CNT": 7, "SECURE_BOOT_EN": 1, "ENABLE_SECURITY_DOWNLOAD": 1, "DIS_DOWNLOAD_MODE": 0,
		"DIS_PAD_JTAG": 1, "DIS_USB_JTAG": 1, "SOFT_DIS_JTAG": 7, "DIS_DIRECT_BOOT": 1,
		"DIS_DOWNLOAD_MANUAL_ENCRYPT": 1, "DIS_DOWNLOAD_ICACHE": 1,
		"SECURE_BOOT_KEY_REVOKE0": 0, "SECURE_BOOT_KEY_REVOKE1": 1, "SECURE_BOOT_KEY_REVOKE2": 1,
		"SECURE_BOOT_AGGRESSIVE_REVOKE": 0, "SECURE_VERSION": 1,
		"KEY_PURPOSE_0": uint64(efuse.PurposeXTSAES128Key), "KEY_PURPOSE_1": uint64(efuse.PurposeSecureBootDigest0),
		"RD_DIS": 1 << 0, // BLOCK_KEY0 (the flash key) hidden, nothing else
	}
	if c == chip.ESP32S3 {
		m["DIS_DOWNLOAD_DCACHE"] = 1
	}
	return eolWant{
		fields: m,
		wrDisSet: map[int]string{
			0: "RD_DIS", 2: "DIS_ICACHE row (§6.5)", 8: "KEY_PURPOSE_0", 9: "KEY_PURPOSE_1",
			23: "BLOCK_KEY0, the flash key", 24: "BLOCK_KEY1, the Secure Boot digest",
		},
		wrDisClear: map[int]string{18: "would freeze SECURE_VERSION"},
		flashKey:   "BLOCK_KEY0", digest: "BLOCK_KEY1",
	}
}

var _ = DescribeTableSubtree("a blank board", func(c chip.Chip, mode recipe.WriteMode) {
	Describe("end of line", Ordered, Label("eol"), func() {
		var s *station
		var res *provisioning.Result
		want := wantFor(c.ID)
		BeforeAll(func(ctx SpecContext) {
			s = newStation(ctx, c, mode, workspace.Options{})
		})

		It("authenticates every image at intake", func() {
			Expect(s.rel.Images).To(HaveLen(3))
			for _, im := range s.rel.Images {
				Expect(im.Encrypt).To(BeTrue(), im.File)
			}
			verified := 0
			for _, ck := range s.rel.Checks {
				if ck.Verified {
					verified++
				}
			}
			Expect(verified).To(BeNumerically(">=", 3), "secure-boot and secure-version checks")
		})

		It("plans without touching the board (--dry-run)", func(ctx SpecContext) {
			before := s.board.V.Efuse()
			cfg := s.config()
			cfg.DryRun = true
			r, err := provisioning.Run(ctx, s.board, cfg)
			Expect(err).NotTo(HaveOccurred())
			Expect(r.Plan.Efuse.Irreversible()).To(ContainElements(provisioning.StepFlashKey, provisioning.StepDownload))
			var out bytes.Buffer
			Expect(provisioning.WritePlan(&out, r.Plan)).To(Succeed())
			Expect(out.String()).To(ContainSubstring("IRREVERSIBLE"))
			Expect(s.board.V.Efuse().Equal(before)).To(BeTrue())
		})

		It("provisions the board: PASS", func(ctx SpecContext) {
			var err error
			res, err = s.run(ctx)
			Expect(err).NotTo(HaveOccurred())
			Expect(res.Verdict).To(Equal(evidence.PASS))
			Expect(res.Burned).To(ContainElements(provisioning.StepFlashKey, provisioning.StepSBEnable, provisioning.StepDownload))
			if want.burned != nil {
				Expect(res.Burned).To(Equal(want.burned))
			}
		})

		It("leaves the eFuses as the recipe says, field by field", func() {
			phys := s.board.V.Efuse()
			for f, w := range want.fields {
				if f == "SECURE_VERSION" {
					v, err := phys.SecureVersion()
					Expect(err).NotTo(HaveOccurred())
					Expect(v).To(Equal(int(w)), f)
					continue
				}
				v, err := phys.Get(f)
				Expect(err).NotTo(HaveOccurred())
				Expect(v).To(Equal(w), f)
			}
			wr, err := phys.Get("WR_DIS")
			Expect(err).NotTo(HaveOccurred())
			for bit, what := range want.wrDisSet {
				Expect(wr&(1<<bit)).NotTo(BeZero(), fmt.Sprintf("WR_DIS bit %d (%s)", bit, what))
			}
			for bit, what := range want.wrDisClear {
				Expect(wr&(1<<bit)).To(BeZero(), fmt.Sprintf("WR_DIS bit %d: %s", bit, what))
			}
			digest, err := os.ReadFile("testdata/key1.digest.bin")
			Expect(err).NotTo(HaveOccurred())
			d, err := phys.GetBytes(want.digest)
			Expect(err).NotTo(HaveOccurred())
			Expect(d).To(Equal(digest), want.digest)
			// What the host reads: the flash key as zeros, the digest as it
			// is (write-protected, never read-protected).
			view := s.board.V.ReadEfuse()
			k, err := view.GetBytes(want.flashKey)
			Expect(err).NotTo(HaveOccurred())
			Expect(k).To(Equal(make([]byte, 32)), "the flash key reads as zero")
			Expect(view.Readable(want.flashKey)).To(BeFalse(), want.flashKey+" read-protected")
			Expect(view.Writable(want.flashKey)).To(BeFalse(), want.flashKey+" write-protected")
			vd, err := view.GetBytes(want.digest)
			Expect(err).NotTo(HaveOccurred())
			Expect(vd).To(Equal(digest), "the digest reads back")
			Expect(view.Readable(want.digest)).To(BeTrue(), want.digest+" never read-protected")
			Expect(view.Writable(want.digest)).To(BeFalse(), want.digest+" write-protected")
		})

		It("leaves ciphertext in flash that decrypts to the release", func() {
			cipher := s.deviceKey()
			for _, im := range s.rel.Images {
				raw := s.board.V.FlashBytes(int(im.Offset), len(im.Data))
				Expect(raw).NotTo(Equal(im.Data), im.File+" is plaintext in flash")
				pt := make([]byte, len(raw))
				Expect(cipher.Decrypt(pt, raw, im.Offset)).To(Succeed())
				Expect(pt).To(Equal(im.Data), im.File)
			}
		})

		It("boots to the app banner", func(ctx SpecContext) {
			log := s.bootToBanner(ctx)
			Expect(log).To(ContainSubstring("Signature verified successfully"))
			Expect(log).To(ContainSubstring("flash encryption is enabled"))
		})

		It("wrote evidence that parses and has every verification", func() {
			b, err := os.ReadFile(res.EvidencePath)
			Expect(err).NotTo(HaveOccurred())
			rec, err := evidence.Parse(b)
			Expect(err).NotTo(HaveOccurred())
			Expect(rec.Result.Verdict).To(Equal(evidence.PASS))
			kinds, names := map[string]bool{}, map[string]bool{}
			for _, ck := range rec.Checks {
				if ck.Verified {
					kinds[ck.Kind()] = true
					names[ck.Name] = true
				}
			}
			for _, k := range []string{evidence.CheckSecureBoot, evidence.CheckSecureVersion, evidence.CheckEfuseReadback,
				evidence.CheckKeyReadProtected, evidence.CheckFlashMD5, evidence.CheckDecryptedSignature, evidence.CheckSPIProbe,
				evidence.CheckBootLog, evidence.CheckLockdown} {
				Expect(kinds).To(HaveKey(k))
			}
			// The download lockdown was confirmed on the board: secure
			// download mode reported, or (download disabled) the loader gone.
			Expect(names).To(HaveKey(evidence.CheckLockdown + ":download"))

			// The final eFuses as recorded: fields by value, key blocks by
			// digest only.
			after := rec.Efuse.After
			for f, w := range want.fields {
				if f == "SECURE_VERSION" {
					w = efuse.SecureVersionBits(int(w))
				}
				Expect(after.Fields).To(HaveKeyWithValue(f, w), "evidence field "+f)
			}
			phys := s.board.V.Efuse()
			key, err := phys.GetBytes(want.flashKey)
			Expect(err).NotTo(HaveOccurred())
			digest, err := os.ReadFile("testdata/key1.digest.bin")
			Expect(err).NotTo(HaveOccurred())
			blocks := map[string]evidence.KeyBlock{}
			for _, kb := range after.KeyBlocks {
				blocks[kb.Block] = kb
			}
			Expect(blocks).To(HaveKey(want.flashKey))
			fk := blocks[want.flashKey]
			Expect(fk.ReadProtected && fk.WriteProtected).To(BeTrue(), "flash key protections in the evidence")
			Expect(fk.Source).To(Equal(evidence.SourceBurned))
			Expect(fk.Digest).To(Equal(evidence.DigestKey(key)))
			Expect(blocks).To(HaveKey(want.digest))
			sb := blocks[want.digest]
			Expect(sb.ReadProtected).To(BeFalse())
			Expect(sb.WriteProtected).To(BeTrue())
			Expect(sb.Digest).To(Equal(evidence.DigestKey(digest)))
			// Keys only as digests: neither the block nor the key file
			// (the block reversed) appears anywhere in the record.
			Expect(string(b)).NotTo(ContainSubstring("XTS_AES_128_KEY\": \""))
			rev := slices.Clone(key)
			slices.Reverse(rev)
			for _, k := range [][]byte{key, rev} {
				Expect(strings.ToLower(string(b))).NotTo(ContainSubstring(hex.EncodeToString(k)))
			}
			Expect(res.EvidencePath + ".sig").To(BeAnExistingFile())
			Expect(res.EvidencePath + ".proof").To(BeAnExistingFile())
		})

		It("burns nothing on a second run: reports it done and verified, or unreachable once download is disabled", func(ctx SpecContext) {
			before := s.board.V.Efuse()
			r, err := s.run(ctx)
			Expect(r.Burned).To(BeEmpty())
			Expect(s.board.V.Efuse().Equal(before)).To(BeTrue())
			if s.r.Lockdown.Download == recipe.DownloadDisabled {
				// Classic ESP32 has no secure download mode: UART_DOWNLOAD_DIS
				// ended the ROM loader for good, so a second run cannot reach
				// the board (a link failure; no board identified, so no
				// evidence), and the board still boots its release.
				Expect(err).To(MatchError(provisioning.ErrLink))
				Expect(r.Verdict).To(Equal(evidence.FAIL))
				Expect(r.Code).To(Equal("link-lost"))
				Expect(r.AlreadyProvisioned).To(BeFalse())
				Expect(r.EvidencePath).To(BeEmpty())
				s.bootToBanner(ctx)
				return
			}
			Expect(err).NotTo(HaveOccurred())
			Expect(r.Verdict).To(Equal(evidence.PASS))
			Expect(r.AlreadyProvisioned).To(BeTrue())
		})
	})
},
	Entry("ESP32-S3, host-encrypted", Label("esp32s3", "irreversible"), chip.S3(), recipe.HostEncrypted),
	Entry("ESP32-S3, chip-encrypted", Label("esp32s3", "irreversible"), chip.S3(), recipe.ChipEncrypted),
	Entry("ESP32-C3, host-encrypted", Label("esp32c3", "irreversible"), chip.C3(), recipe.HostEncrypted),
	Entry("ESP32-C3, chip-encrypted", Label("esp32c3", "irreversible"), chip.C3(), recipe.ChipEncrypted),
	// Host-encrypted only: the recipe refuses chip-encrypted writes on
	// ESP32 without the flasher stub.
	Entry("ESP32, host-encrypted", Label("esp32", "irreversible"), chip.ESP32V3(), recipe.HostEncrypted),
)

var _ = context.Background
