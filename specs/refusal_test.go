package specs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"fuseline/esp/chip"
	"fuseline/esp/efuse"
	"fuseline/esp/image"
	"fuseline/esp/secureboot"
	"fuseline/fixtures/virtual"
	"fuseline/provisioning"
	"fuseline/provisioning/recipe"
	"fuseline/provisioning/sim"
	"fuseline/provisioning/workspace"
	"fuseline/reports/evidence"
)

// rewrite replaces a file of the workspace's release.
func rewrite(ws *workspace.Workspace, name string, f func([]byte) []byte) {
	GinkgoHelper()
	p := filepath.Join(ws.ReleaseDir, name)
	b, err := os.ReadFile(p)
	Expect(err).NotTo(HaveOccurred())
	Expect(os.WriteFile(p, f(b), 0o644)).To(Succeed())
}

var _ = Describe("refused before any burn", Label("refusal"), func() {
	DescribeTable("a release the recipe does not accept", func(ctx SpecContext, o workspace.Options, change func(ws *workspace.Workspace), file, reason string) {
		o.Dir, o.Chip = GinkgoT().TempDir(), chip.S3()
		o.Keys = testKeys()
		if o.SignWith == nil {
			o.SignWith = []int{0}
		}
		ws, err := workspace.Create(ctx, o)
		Expect(err).NotTo(HaveOccurred())
		if change != nil {
			change(ws)
		}
		r, err := recipe.Load(ws.RecipePath)
		Expect(err).NotTo(HaveOccurred())
		_, err = provisioning.Intake(ctx, r, provisioning.IntakeOptions{})
		Expect(err).To(MatchError(provisioning.ErrIntake))
		ie, ok := errors.AsType[*provisioning.IntakeError](err)
		Expect(ok).To(BeTrue())
		Expect(ie.File).To(Equal(file))
		Expect(ie.Reason).To(ContainSubstring(reason))
	},
		Entry("a tampered image", workspace.Options{}, func(ws *workspace.Workspace) {
			rewrite(ws, "app.bin", func(b []byte) []byte {
				// One byte of the signed content flipped inside the image,
				// checksum and hash recomputed: only the signature tells.
				img, err := image.Parse(b)
				Expect(err).NotTo(HaveOccurred())
				b[img.Segments[len(img.Segments)-1].DataOffset()+64] ^= 0x80
				u, _ := image.ParseUnverified(b)
				b[u.ChecksumOffset] = u.ComputedChecksum()
				u, _ = image.ParseUnverified(b)
				h := u.ComputedSHA256()
				copy(b[u.ChecksumOffset+1:], h[:])
				return b
			})
		}, "app.bin", "tampered"),
		Entry("an unsigned image", workspace.Options{}, func(ws *workspace.Workspace) {
			rewrite(ws, "app.bin", func(b []byte) []byte {
				content, _, err := secureboot.Split(b)
				Expect(err).NotTo(HaveOccurred())
				return content
			})
		}, "app.bin", "not signed"),
		Entry("an image signed by a key not in the recipe", workspace.Options{SignWith: []int{1}}, func(ws *workspace.Workspace) {
			b, _ := os.ReadFile(ws.RecipePath)
			s := strings.Replace(string(b), ", keys/sb1.pub.pem]", "]", 1)
			s = strings.Replace(s, "revoke: [2]", "revoke: [1, 2]", 1) // slot 1 is unused now
			Expect(os.WriteFile(ws.RecipePath, []byte(s), 0o644)).To(Succeed())
		}, "bootloader/bootloader.bin", "signed by a key that is not in the recipe"),
		Entry("secure_version below the floor", workspace.Options{SecureVersion: 1, Recipe: workspace.RecipeOptions{Floor: 3}}, nil, "app.bin", "below the recipe's anti-rollback floor 3"),
		Entry("an image for another chip", workspace.Options{}, func(ws *workspace.Workspace) {
			app, err := image.Synth(image.SynthOptions{Chip: chip.C3(), Version: "1.0.0"})
			Expect(err).NotTo(HaveOccurred())
			signed, err := secureboot.Sign(app, ws.Keys[0])
			Expect(err).NotTo(HaveOccurred())
			rewrite(ws, "app.bin", func([]byte) []byte { return signed })
		}, "app.bin", "built for esp32c3"),
	)

	DescribeTable("a recipe with errors names file, line and field", func(ctx SpecContext, edit func(string) string, want string) {
		ws, err := workspace.Create(ctx, workspace.Options{Dir: GinkgoT().TempDir(), Chip: chip.S3(), Keys: testKeys()[:1]})
		Expect(err).NotTo(HaveOccurred())
		b, _ := os.ReadFile(ws.RecipePath)
		Expect(os.WriteFile(ws.RecipePath, []byte(edit(string(b))), 0o644)).To(Succeed())
		_, err = recipe.Load(ws.RecipePath)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring(ws.RecipePath + ":"))
		Expect(err.Error()).To(ContainSubstring(want))
	},
		Entry("an unknown key", func(s string) string { return strings.Replace(s, "direct_boot:", "direct_bot:", 1) }, "lockdown.direct_bot: unknown field"),
		Entry("a bad value", func(s string) string { return strings.Replace(s, "download: secure", "download: sometimes", 1) }, `lockdown.download: "sometimes" is not one of`),
		Entry("a scheme the chip lacks", func(s string) string {
			return strings.Replace(strings.Replace(s, "chip: esp32s3", "chip: esp32c3", 1), "scheme: xts-aes-128", "scheme: xts-aes-256", 1)
		}, "flash_encryption.scheme: ESP32-C3 does not support xts-aes-256"),
		Entry("a missing key file", func(s string) string { return strings.Replace(s, "keys/sb0.pub.pem", "keys/none.pem", 1) }, "secure_boot.keys[0]: cannot read keys/none.pem"),
	)

	It("refuses a board that already holds a foreign digest, and burns nothing", Label("esp32s3"), func(ctx SpecContext) {
		s := newStation(ctx, chip.S3(), recipe.HostEncrypted, workspace.Options{})
		foreign, err := efuse.NewImage(chip.ESP32S3)
		Expect(err).NotTo(HaveOccurred())
		Expect(foreign.Set("KEY_PURPOSE_2", uint64(efuse.PurposeSecureBootDigest0))).To(Succeed())
		other, _ := os.ReadFile("testdata/key2.digest.bin")
		Expect(foreign.SetBytes("BLOCK_KEY2", other)).To(Succeed())
		Expect(foreign.SetBytes("MAC", []byte{0x33, 0x22, 0x11, 0xa1, 0xdf, 0x7c})).To(Succeed())
		s.board.Close()
		b, err := sim.New(virtual.Config{Chip: chip.S3(), Efuse: foreign})
		Expect(err).NotTo(HaveOccurred())
		s.board = b
		before, flash := b.V.Efuse(), b.V.FlashBytes(0, 0x20000)
		res, err := s.run(ctx)
		Expect(err).To(MatchError(provisioning.ErrConflict))
		ce, _ := errors.AsType[*provisioning.ConflictError](err)
		Expect(ce.Field).To(Equal("BLOCK_KEY2"))
		Expect(res.Verdict).To(Equal(evidence.REFUSED))
		Expect(res.Burned).To(BeEmpty())
		Expect(b.V.Efuse().Equal(before)).To(BeTrue(), "eFuses changed")
		Expect(b.V.FlashBytes(0, 0x20000)).To(Equal(flash), "flash changed")
		Expect(res.EvidencePath).To(BeAnExistingFile())
	})
})
