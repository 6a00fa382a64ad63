package specs

import (
	"bytes"
	"context"
	"fmt"
	"os"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"fuseline/esp/chip"
	"fuseline/esp/efuse"
	"fuseline/provisioning"
	"fuseline/provisioning/recipe"
	"fuseline/provisioning/workspace"
	"fuseline/reports/evidence"
)

// wantFields is the final BLOCK0 state the recipes of these specs ask for
// (one Secure Boot key, slots 1 and 2 revoked, floor 1, full lockdown,
// secure download mode), field by field.
func wantFields(c chip.ID) map[string]uint64 {
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
	return m
}

var _ = DescribeTableSubtree("a blank board", func(c chip.Chip, mode recipe.WriteMode) {
	Describe("end of line", Ordered, Label("eol"), func() {
		var s *station
		var res *provisioning.Result
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
		})

		It("leaves the eFuses as the recipe says, field by field", func() {
			phys := s.board.V.Efuse()
			for f, want := range wantFields(c.ID) {
				if f == "SECURE_VERSION" {
					v, err := phys.SecureVersion()
					Expect(err).NotTo(HaveOccurred())
					Expect(v).To(Equal(int(want)), f)
					continue
				}
				v, err := phys.Get(f)
				Expect(err).NotTo(HaveOccurred())
				Expect(v).To(Equal(want), f)
			}
			wr, _ := phys.Get("WR_DIS")
			for _, bit := range []int{0, 2, 8, 9, 23, 24} {
				Expect(wr&(1<<bit)).NotTo(BeZero(), fmt.Sprintf("WR_DIS bit %d", bit))
			}
			Expect(wr&(1<<18)).To(BeZero(), "WR_DIS bit 18 would freeze SECURE_VERSION")
			d, err := phys.GetBytes("BLOCK_KEY1")
			Expect(err).NotTo(HaveOccurred())
			want, _ := os.ReadFile("testdata/key1.digest.bin")
			Expect(d).To(Equal(want))
			view := s.board.V.ReadEfuse()
			k0, _ := view.GetBytes("BLOCK_KEY0")
			Expect(k0).To(Equal(make([]byte, 32)), "the flash key reads as zero")
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
			kinds := map[string]bool{}
			for _, ck := range rec.Checks {
				if ck.Verified {
					kinds[ck.Kind()] = true
				}
			}
			for _, k := range []string{evidence.CheckSecureBoot, evidence.CheckSecureVersion, evidence.CheckEfuseReadback,
				evidence.CheckKeyReadProtected, evidence.CheckFlashMD5, evidence.CheckDecryptedSignature, evidence.CheckSPIProbe,
				evidence.CheckBootLog, evidence.CheckLockdown} {
				Expect(kinds).To(HaveKey(k))
			}
			Expect(string(b)).NotTo(ContainSubstring("XTS_AES_128_KEY\": \"")) // keys only as digests
			Expect(res.EvidencePath + ".sig").To(BeAnExistingFile())
			Expect(res.EvidencePath + ".proof").To(BeAnExistingFile())
		})

		It("reports a second run as done, verified, with no burns", func(ctx SpecContext) {
			before := s.board.V.Efuse()
			r, err := s.run(ctx)
			Expect(err).NotTo(HaveOccurred())
			Expect(r.Verdict).To(Equal(evidence.PASS))
			Expect(r.AlreadyProvisioned).To(BeTrue())
			Expect(r.Burned).To(BeEmpty())
			Expect(s.board.V.Efuse().Equal(before)).To(BeTrue())
		})
	})
},
	Entry("ESP32-S3, host-encrypted", Label("esp32s3", "irreversible"), chip.S3(), recipe.HostEncrypted),
	Entry("ESP32-S3, chip-encrypted", Label("esp32s3", "irreversible"), chip.S3(), recipe.ChipEncrypted),
	Entry("ESP32-C3, host-encrypted", Label("esp32c3", "irreversible"), chip.C3(), recipe.HostEncrypted),
	Entry("ESP32-C3, chip-encrypted", Label("esp32c3", "irreversible"), chip.C3(), recipe.ChipEncrypted),
)

var _ = context.Background
