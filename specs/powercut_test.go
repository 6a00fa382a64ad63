package specs

import (
	"context"
	"fmt"
	"os"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"fuseline/esp/chip"
	"fuseline/esp/efuse"
	"fuseline/fixtures/virtual"
	"fuseline/provisioning"
	"fuseline/provisioning/recipe"
	"fuseline/provisioning/sim"
	"fuseline/provisioning/workspace"
	"fuseline/reports/evidence"
)

// reference is the final physical eFuse image of an uninterrupted run (the
// device key comes from keyRand, so it is the same for every run), and how
// many loader commands that run sent.
type reference struct {
	once     sync.Once
	efuse    *efuse.Image
	commands int
}

var refs sync.Map // "chip/mode" → *reference

func referenceFor(c chip.Chip, m recipe.WriteMode) *reference {
	v, _ := refs.LoadOrStore(c.Arg()+"/"+string(m), &reference{})
	ref := v.(*reference)
	ref.once.Do(func() {
		ctx := context.Background()
		s := newStation(ctx, c, m, workspace.Options{})
		cb := &countingBoard{Board: s.board}
		res, err := provisioning.Run(ctx, cb, s.config())
		Expect(err).NotTo(HaveOccurred())
		Expect(res.Verdict).To(Equal(evidence.PASS))
		ref.efuse, ref.commands = s.board.V.Efuse(), cb.frames/2
	})
	return ref
}

// countingBoard counts the SLIP frame delimiters the host sends.
type countingBoard struct {
	*sim.Board
	mu     sync.Mutex
	frames int
}

func (c *countingBoard) Write(p []byte) (int, error) {
	c.mu.Lock()
	for _, b := range p {
		if b == 0xC0 {
			c.frames++
		}
	}
	c.mu.Unlock()
	return c.Board.Write(p)
}

// cutAt says where a power cut happens: at the begin or end event of a
// phase/step of the flow.
type cutAt struct {
	phase provisioning.Phase
	step  string
	kind  provisioning.EventKind
}

func (c cutAt) String() string {
	s := string(c.phase)
	if c.step != "" {
		s += " " + c.step
	}
	if c.kind == provisioning.EventBegin {
		return "before " + s
	}
	return "after " + s
}

// resumes checks that a re-run after the first run stopped (power cut,
// then power cycle) passes, ends in the reference eFuses, and burns nothing
// the first run had burned.
func resumes(ctx context.Context, s *station, first *provisioning.Result, ref *reference) {
	GinkgoHelper()
	s.powerCycle(virtual.Config{})
	res, err := s.run(ctx)
	Expect(err).NotTo(HaveOccurred(), "re-run after the cut")
	Expect(res.Verdict).To(Equal(evidence.PASS))
	Expect(s.board.V.Efuse().Equal(ref.efuse)).To(BeTrue(), "final eFuses differ from an uninterrupted run")
	if first != nil {
		for _, b := range first.Burned {
			Expect(res.Burned).NotTo(ContainElement(b), "burned twice: "+b)
		}
	}
	s.bootToBanner(ctx)
}

var stepCuts = func() []TableEntry {
	steps := []struct {
		phase provisioning.Phase
		step  string
	}{
		{provisioning.PhaseConnect, ""}, {provisioning.PhaseRead, ""}, {provisioning.PhasePlan, ""},
		{provisioning.PhaseBurnKeys, provisioning.StepFlashKey}, {provisioning.PhaseBurnKeys, provisioning.StepEncryptionOn},
		{provisioning.PhaseFlash, "bootloader@0x0"}, {provisioning.PhaseFlash, "partition-table@0x8000"}, {provisioning.PhaseFlash, "app/factory@0x10000"},
		{provisioning.PhaseVerify, ""},
		{provisioning.PhaseLock, provisioning.StepFELockdown}, {provisioning.PhaseLock, provisioning.StepSBDigests},
		{provisioning.PhaseLock, provisioning.StepSBEnable}, {provisioning.PhaseLock, provisioning.StepSBLockdown},
		{provisioning.PhaseLock, provisioning.StepRdDisLock}, {provisioning.PhaseLock, provisioning.StepRevoke},
		{provisioning.PhaseLock, provisioning.StepSecureVersion}, {provisioning.PhaseReadback, ""},
		{provisioning.PhaseLock, provisioning.StepDownload}, {provisioning.PhaseBoot, ""},
	}
	var out []TableEntry
	for _, st := range steps {
		for _, k := range []provisioning.EventKind{provisioning.EventBegin, provisioning.EventEnd} {
			c := cutAt{st.phase, st.step, k}
			out = append(out, Entry(c.String(), Label("esp32s3"), chip.S3(), recipe.HostEncrypted, c))
		}
	}
	// The chip-encrypted C3 at the steps where the write mode matters.
	for _, st := range []cutAt{
		{provisioning.PhaseBurnKeys, provisioning.StepFlashKey, provisioning.EventEnd},
		{provisioning.PhaseFlash, "app/factory@0x10000", provisioning.EventBegin},
		{provisioning.PhaseFlash, "app/factory@0x10000", provisioning.EventEnd},
		{provisioning.PhaseLock, provisioning.StepFELockdown, provisioning.EventEnd},
		{provisioning.PhaseLock, provisioning.StepDownload, provisioning.EventEnd},
	} {
		out = append(out, Entry("ESP32-C3 chip-encrypted, "+st.String(), Label("esp32c3"), chip.C3(), recipe.ChipEncrypted, st))
	}
	return out
}()

var _ = Describe("a power cut", Label("powercut"), func() {
	DescribeTable("at a step boundary, then a re-run", func(ctx SpecContext, c chip.Chip, m recipe.WriteMode, at cutAt) {
		ref := referenceFor(c, m)
		s := newStation(ctx, c, m, workspace.Options{})
		cfg := s.config()
		runCtx, cut := context.WithCancel(ctx)
		defer cut()
		reached := false
		cfg.Progress = func(e provisioning.Event) {
			if !reached && e.Phase == at.phase && e.Step == at.step && e.Kind == at.kind {
				reached = true
				cut() // the power goes: the run stops where it is
			}
		}
		first, _ := provisioning.Run(runCtx, s.board, cfg)
		Expect(reached).To(BeTrue(), "the run never reached "+at.String())
		resumes(ctx, s, first, ref)
	}, stepCuts)

	DescribeTable("at a loader command, then a re-run", Label("slow"), func(ctx SpecContext, c chip.Chip, m recipe.WriteMode, fraction float64, after bool) {
		if !slowWanted(os.Getenv, GinkgoLabelFilter()) {
			Skip("a cut mid-command waits out the loader's timeouts (about 12 s each); run with FUSELINE_SOAK=1 (make soak) or -ginkgo.label-filter=slow")
		}
		ref := referenceFor(c, m)
		s := newStation(ctx, c, m, workspace.Options{})
		k := max(1, int(fraction*float64(ref.commands)))
		f := virtual.FaultSpec{PowerCutBefore: k}
		if after {
			f = virtual.FaultSpec{PowerCutAfter: k}
		}
		s.powerCycle(virtual.Config{Faults: f})
		first, err := s.run(ctx)
		if err == nil {
			// The cut fell after the last command the run needed.
			Expect(first.Verdict).To(Equal(evidence.PASS))
		}
		resumes(ctx, s, first, ref)
	}, func() []TableEntry {
		var out []TableEntry
		for _, fr := range []float64{0.02, 0.1, 0.3, 0.6, 0.85, 0.97} {
			for _, after := range []bool{false, true} {
				what := "before"
				if after {
					what = "after"
				}
				out = append(out, Entry(fmt.Sprintf("ESP32-S3, %s command %.0f%% through the run", what, 100*fr), Label("esp32s3"), chip.S3(), recipe.HostEncrypted, fr, after))
			}
		}
		return out
	}())
})
