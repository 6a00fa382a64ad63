package specs

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"fuseline/esp/chip"
	"fuseline/fixtures/virtual"
	"fuseline/provisioning"
	"fuseline/provisioning/recipe"
	"fuseline/provisioning/sim"
	"fuseline/provisioning/workspace"
	"fuseline/reports/audit"
	"fuseline/reports/evidence"
)

// What a provisioned board leaves for an auditor: its evidence record, the
// station's audit log, and the offline check of both. The IEC 62443 matrix
// (reports/iec62443) names these specs by their full text.
var _ = Describe("the records of a provisioned ESP32-S3", Ordered, Label("esp32s3", "records"), func() {
	var (
		s   *station
		res *provisioning.Result
		rec *evidence.Record
	)
	BeforeAll(func(ctx SpecContext) {
		s = newStation(ctx, chip.S3(), recipe.HostEncrypted, workspace.Options{})
		var err error
		res, err = s.run(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(res.Verdict).To(Equal(evidence.PASS))
		b, err := os.ReadFile(res.EvidencePath)
		Expect(err).NotTo(HaveOccurred())
		rec, err = evidence.Parse(b)
		Expect(err).NotTo(HaveOccurred())
	})

	// runRecords are the audit-log records of the evidence's run.
	runRecords := func() []*audit.Record {
		GinkgoHelper()
		b, err := os.ReadFile(s.log.Layout().Log)
		Expect(err).NotTo(HaveOccurred())
		var out []*audit.Record
		for line := range bytes.Lines(b) {
			r, err := audit.ParseRecord(bytes.TrimSuffix(line, []byte("\n")))
			Expect(err).NotTo(HaveOccurred())
			if r.Run == rec.ID {
				out = append(out, r)
			}
		}
		return out
	}

	It("names the operator in the evidence and in every audit record of the run", func() {
		Expect(rec.Operator.ID).To(Equal("qa"))
		recs := runRecords()
		Expect(len(recs)).To(BeNumerically(">", 10), "burns, writes and verifies of the run")
		for _, r := range recs {
			Expect(r.Operator).To(Equal("qa"), "record %d (%s)", r.Seq, r.Event)
		}
	})

	It("records the factory MAC the board's eFuses hold", func() {
		mac, err := s.board.V.Efuse().MAC()
		Expect(err).NotTo(HaveOccurred())
		want := fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5])
		Expect(rec.Device.MAC).To(Equal(want))
		Expect(rec.Device.Chip).To(Equal(chip.S3().Name))
		Expect(rec.Device.Revision).NotTo(BeEmpty())
		for _, r := range runRecords() {
			Expect(r.Device).To(Equal(want), "record %d (%s)", r.Seq, r.Event)
		}
	})

	It("records every step with its timing and result", func() {
		Expect(len(rec.Steps)).To(BeNumerically(">=", 8))
		names := map[string]bool{}
		for _, st := range rec.Steps {
			phase, _, _ := strings.Cut(st.Name, ":")
			names[phase] = true
			Expect(st.End.Before(st.Start)).To(BeFalse(), st.Name)
			// The record keeps times to the microsecond, durations exact.
			Expect(time.Duration(st.Duration)).To(BeNumerically("~", st.End.Sub(st.Start), time.Microsecond), st.Name)
			Expect(st.Result).To(BeElementOf(evidence.StepOK, evidence.StepFailed, evidence.StepSkipped), st.Name)
			if st.Result != evidence.StepOK {
				Expect(st.Error).NotTo(BeEmpty(), st.Name+": a step not ok says why")
			}
			Expect(st.Start.Before(rec.Timing.Start)).To(BeFalse(), st.Name)
			Expect(st.End.After(rec.Timing.End)).To(BeFalse(), st.Name)
		}
		for _, want := range []string{string(provisioning.PhaseConnect), string(provisioning.PhaseFlash), string(provisioning.PhaseVerify), string(provisioning.PhaseLock)} {
			Expect(names).To(HaveKey(want))
		}
	})

	It("holds the run in the audit log, pinned by a checkpoint the station signed", func(ctx SpecContext) {
		cps, err := audit.ReadCheckpoints(s.log.Layout().Checkpoints)
		Expect(err).NotTo(HaveOccurred())
		rep, err := audit.VerifyFile(ctx, s.log.Layout().Log, audit.VerifyOptions{Checkpoints: cps, Verifier: s.log.Verifier()})
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Problems).To(BeEmpty())
		Expect(rep.Covered).To(Equal(rep.Records), "every record pinned")
		events := map[audit.Event]bool{}
		for _, r := range runRecords() {
			events[r.Event] = true
		}
		Expect(events).To(HaveKey(audit.EventRunStart))
		Expect(events).To(HaveKey(audit.EventEfuseBurn))
		Expect(events).To(HaveKey(audit.EventResult))
	})

	Describe("offline, an auditor's check", func() {
		// bundle is the station's data directory as an auditor receives
		// it, with the release images the evidence names.
		bundle := func() (evidence.Bundle, string) {
			GinkgoHelper()
			b, err := evidence.ReadBundleFS(os.DirFS(s.data), 0)
			Expect(err).NotTo(HaveOccurred())
			for _, im := range s.rel.Images {
				b[evidence.BundleImagesDir+"/"+path.Base(im.File)] = im.Data
			}
			return b, evidence.BundleEvidenceDir + "/" + rec.FileName()
		}
		key := func(b evidence.Bundle) *evidence.StationKey {
			GinkgoHelper()
			pub, err := os.ReadFile(s.log.Layout().PublicKey)
			Expect(err).NotTo(HaveOccurred())
			k, err := evidence.ParseStationKey(pub)
			Expect(err).NotTo(HaveOccurred())
			return k
		}
		// refused checks that the check fails naming file.
		refused := func(ctx SpecContext, b evidence.Bundle, file string) error {
			GinkgoHelper()
			_, err := evidence.VerifyBundle(ctx, b, evidence.VerifyOptions{Key: key(b)})
			Expect(err).To(HaveOccurred())
			fe, ok := errors.AsType[*evidence.FileError](err)
			Expect(ok).To(BeTrue(), "%v is not a *FileError", err)
			Expect(fe.File).To(Equal(file), err.Error())
			return err
		}

		It("verifies the station's data directory with the station's public key", func(ctx SpecContext) {
			b, _ := bundle()
			rep, err := evidence.VerifyBundle(ctx, b, evidence.VerifyOptions{Key: key(b)})
			Expect(err).NotTo(HaveOccurred())
			Expect(rep.Devices).To(HaveLen(1))
			Expect(rep.Devices[0].MAC).To(Equal(rec.Device.MAC))
			Expect(rep.ImagesChecked).To(HaveLen(len(s.rel.Images)))
			Expect(rep.AuditLog).NotTo(BeNil())
			Expect(rep.AuditLog.Results).To(Equal(1))
		})

		It("refuses evidence signed by another station", func(ctx SpecContext) {
			b, ev := bundle()
			_, other, err := ed25519.GenerateKey(rand.Reader)
			Expect(err).NotTo(HaveOccurred())
			b[ev+evidence.SignatureSuffix], err = evidence.SignBytes(b[ev], other)
			Expect(err).NotTo(HaveOccurred())
			Expect(refused(ctx, b, ev)).To(MatchError(ContainSubstring("does not verify with the station key")))
		})

		It("catches a tampered evidence file", func(ctx SpecContext) {
			b, ev := bundle()
			b[ev] = bytes.Replace(b[ev], []byte(`"verdict": "PASS"`), []byte(`"verdict": "FAIL"`), 1)
			refused(ctx, b, ev)
		})

		It("catches a wrong image hash", func(ctx SpecContext) {
			b, _ := bundle()
			names := slices.Sorted(maps.Keys(b))
			i := slices.IndexFunc(names, func(n string) bool { return strings.HasPrefix(n, evidence.BundleImagesDir+"/app") })
			Expect(i).NotTo(BeNumerically("<", 0))
			app := bytes.Clone(b[names[i]])
			app[len(app)/2] ^= 0x01
			b[names[i]] = app
			refused(ctx, b, names[i])
		})

		It("names a board whose evidence was removed", func(ctx SpecContext) {
			// A second board through the same station, then its evidence,
			// signature and proof deleted: its result record remains.
			b2, err := sim.New(virtual.Config{Chip: chip.S3(), MAC: [6]byte{0x7c, 0xdf, 0xa1, 0x00, 0x00, 0x09}})
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(b2.Close)
			cfg := s.config()
			cfg.Probe = b2
			r2, err := provisioning.Run(ctx, b2, cfg)
			Expect(err).NotTo(HaveOccurred())
			b, _ := bundle()
			_, err = evidence.VerifyBundle(ctx, b, evidence.VerifyOptions{Key: key(b)})
			Expect(err).NotTo(HaveOccurred(), "both boards verify")
			gone := evidence.BundleEvidenceDir + "/" + path.Base(r2.EvidencePath)
			for _, suffix := range []string{"", evidence.SignatureSuffix, evidence.ProofSuffix} {
				Expect(b).To(HaveKey(gone + suffix))
				delete(b, gone+suffix)
			}
			err = refused(ctx, b, evidence.BundleAuditLogFile)
			Expect(err).To(MatchError(evidence.ErrIncomplete))
			Expect(err.Error()).To(ContainSubstring("device " + r2.MAC))
		})
	})
})
