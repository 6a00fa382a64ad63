package provisioning_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"fuseline/esp/chip"
	"fuseline/esp/efuse"
	"fuseline/fixtures/virtual"
	"fuseline/provisioning"
	"fuseline/provisioning/sim"
	"fuseline/provisioning/workspace"
	"fuseline/reports/audit"
	"fuseline/reports/evidence"
)

// errPowerOff is what the host's port returns while the board is without
// power: a USB-powered board's serial port vanishes with it.
var errPowerOff = errors.New("test: the board has no power")

// cutBoard is a virtual board whose fault spec cuts the power at a loader
// command (virtual.FaultSpec.PowerCutBefore/After). The virtual board then
// stays silent until the next reset, and the flasher would wait out its
// retries (about 9 s per command); here the host's reads fail at once
// instead, as the port of a USB-powered board does, until a reset brings the
// power back.
type cutBoard struct {
	*sim.Board
	at int // the command the cut happens at

	// afterCut, if set, runs when the host resets the board after the cut,
	// before the reset: a station that dies there never sees the board again.
	afterCut func()

	mu       sync.Mutex
	fired    bool // the cut happened
	off      bool // and no reset since
	deadline time.Time
}

func newCutBoard(t *testing.T, dir string, f virtual.FaultSpec) *cutBoard {
	t.Helper()
	b, err := sim.New(virtual.Config{Chip: chip.S3(), StateDir: dir, Faults: f})
	if err != nil {
		t.Fatal(err)
	}
	return &cutBoard{Board: b, at: max(f.PowerCutBefore, f.PowerCutAfter)}
}

func (c *cutBoard) powerOff() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.fired && c.at > 0 && c.V.Commands() >= c.at {
		c.fired, c.off = true, true
	}
	return c.off
}

func (c *cutBoard) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return nil
}

// Read reads in short slices so that a power cut is noticed within one.
func (c *cutBoard) Read(p []byte) (int, error) {
	for {
		if c.powerOff() {
			return 0, errPowerOff
		}
		c.mu.Lock()
		dl := c.deadline
		c.mu.Unlock()
		slice := time.Now().Add(5 * time.Millisecond)
		if !dl.IsZero() && dl.Before(slice) {
			slice = dl
		}
		_ = c.Board.SetReadDeadline(slice)
		n, err := c.Board.Read(p)
		if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		if !dl.IsZero() && !time.Now().Before(dl) {
			return 0, err
		}
	}
}

func (c *cutBoard) Write(p []byte) (int, error) {
	if c.powerOff() {
		return 0, errPowerOff
	}
	return c.Board.Write(p)
}

func (c *cutBoard) Reset(ctx context.Context, m chip.BootMode) error {
	if c.powerOff() && c.afterCut != nil {
		c.afterCut()
		return ctx.Err()
	}
	c.mu.Lock()
	c.off = false // a reset ends the cut
	c.mu.Unlock()
	return c.Board.Reset(ctx, m)
}

// burnSpans runs an uninterrupted reference run and returns, for every burn
// step, the loader command counts at its begin and end.
func burnSpans(t *testing.T) map[string][2]int {
	t.Helper()
	e := setup(t, chip.S3(), workspace.Options{})
	cfg := e.cfg()
	cfg.Rand = fixedRand(9)
	spans := map[string][2]int{}
	cfg.Progress = func(ev provisioning.Event) {
		if ev.Phase != provisioning.PhaseBurnKeys && ev.Phase != provisioning.PhaseLock {
			return
		}
		sp := spans[ev.Step]
		switch ev.Kind {
		case provisioning.EventBegin:
			sp[0] = e.b.V.Commands()
		case provisioning.EventEnd:
			if ev.Step != provisioning.StepDownload {
				sp[1] = e.b.V.Commands()
			}
		}
		spans[ev.Step] = sp
	}
	// The download lockdown's reload cuts the loader off; its span ends at
	// the reconnect's reset.
	b := &resetSpy{Board: e.b, reset: func() {
		if sp := spans[provisioning.StepDownload]; sp[0] > 0 && sp[1] == 0 {
			spans[provisioning.StepDownload] = [2]int{sp[0], e.b.V.Commands()}
		}
	}}
	if res, err := provisioning.Run(ctxT(t), b, cfg); err != nil || res.Verdict != evidence.PASS {
		t.Fatalf("reference run: %v", err)
	}
	return spans
}

// resetSpy calls reset before every reset of the board.
type resetSpy struct {
	*sim.Board
	reset func()
}

func (r *resetSpy) Reset(ctx context.Context, m chip.BootMode) error {
	r.reset()
	return r.Board.Reset(ctx, m)
}

// changedFields lists the eFuse fields that differ between two physical
// images: what a run burned.
func changedFields(t *testing.T, from, to *efuse.Image) []string {
	t.Helper()
	var out []string
	for _, f := range efuse.Fields(from.Chip) {
		if f.Hidden {
			continue
		}
		if f.Width > 64 {
			a, err1 := from.GetBytes(f.Name)
			b, err2 := to.GetBytes(f.Name)
			if err1 != nil || err2 != nil {
				t.Fatalf("%s: %v %v", f.Name, err1, err2)
			}
			if !bytes.Equal(a, b) {
				out = append(out, f.Name)
			}
			continue
		}
		a, _ := from.Get(f.Name)
		b, _ := to.Get(f.Name)
		if a != b {
			out = append(out, f.Name)
		}
	}
	return out
}

// TestRunPowerCutAuditsEveryBurn cuts the power inside burn steps (the
// burn done, its read-back or reply lost; or half-way through the step),
// then runs again: every eFuse field the final board shows changed must
// have an audit record of the intent to burn it and one of its completion,
// the completion of a burn the interrupted run did attributed to that run.
func TestRunPowerCutAuditsEveryBurn(t *testing.T) {
	if testing.Short() {
		t.Skip("two runs per power cut")
	}
	t.Parallel()
	spans := burnSpans(t)
	type cut struct {
		step  string
		after bool
		at    func(sp [2]int) int
	}
	isLast := func(c cut) bool { return c.after && c.at(spans[c.step]) == spans[c.step][1] }
	last := func(sp [2]int) int { return sp[1] } // the step's last command
	mid := func(sp [2]int) int { return (sp[0] + sp[1]) / 2 }
	cuts := []cut{
		{provisioning.StepFlashKey, true, last},
		{provisioning.StepFlashKey, false, mid},
		{provisioning.StepEncryptionOn, true, last},
		{provisioning.StepFELockdown, false, last},
		{provisioning.StepSBEnable, true, last}, // issue 19, item 3
		{provisioning.StepRevoke, true, mid},
		// After the download lockdown's last command the station dies
		// instead of reconnecting.
		{provisioning.StepDownload, true, last},
	}
	for _, c := range cuts {
		sp := spans[c.step]
		if sp[0] == 0 || sp[1] <= sp[0] {
			t.Fatalf("no commands seen for step %s: %v", c.step, sp)
		}
		k := c.at(sp)
		f := virtual.FaultSpec{PowerCutBefore: k}
		if c.after {
			f = virtual.FaultSpec{PowerCutAfter: k}
		}
		t.Run(fmt.Sprintf("%s/%s", c.step, f), func(t *testing.T) {
			t.Parallel()
			e := setup(t, chip.S3(), workspace.Options{})
			blank := e.b.V.Efuse()
			dir := filepath.Join(filepath.Dir(e.data), "board")
			e.b.Close()
			b1 := newCutBoard(t, dir, f)
			cfg := e.cfg()
			cfg.Rand, cfg.Probe = fixedRand(9), b1
			ctx, cancel := context.WithCancel(ctxT(t))
			defer cancel()
			b1.afterCut = cancel // the station dies with the board
			res1, err := provisioning.Run(ctx, b1, cfg)
			b1.Close()
			if err == nil {
				t.Fatalf("the run passed through a power cut at %s", f)
			}
			b2, err := sim.New(virtual.Config{Chip: chip.S3(), StateDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			defer b2.Close()
			cfg = e.cfg()
			cfg.Probe = b2
			// Run IDs have a resolution of a second: the re-run starts in the next.
			cfg.Now = func() time.Time { return time.Now().Add(time.Second) }
			res2, err := provisioning.Run(ctxT(t), b2, cfg)
			if err != nil || res2.Verdict != evidence.PASS {
				t.Fatalf("re-run after the cut: %v", err)
			}
			recs := auditRecords(t, e.data)
			intent, done := map[string]bool{}, map[string]bool{}
			doneBy := map[string]string{} // step → run of its completion
			for _, r := range recs {
				if r.Device != res1.MAC {
					continue
				}
				fields := strings.Split(r.Details["fields"], ",")
				switch {
				case r.Event == audit.EventEfuseIntent:
					for _, f := range fields {
						intent[f] = true
					}
				case (r.Event == audit.EventEfuseBurn || r.Event == audit.EventLock) && r.Result == audit.ResultOK:
					for _, f := range fields {
						done[f] = true
					}
					doneBy[r.Details["step"]] = r.Run
				}
			}
			changed := changedFields(t, blank, b2.V.Efuse())
			if len(changed) == 0 {
				t.Fatal("nothing burned")
			}
			for _, f := range changed {
				if !intent[f] {
					t.Errorf("%s is burned on the board; the audit log has no intent to burn it", f)
				}
				if !done[f] {
					t.Errorf("%s is burned on the board; the audit log has no record of its burn", f)
				}
			}
			// A burn of the interrupted run is that run's, not the re-run's.
			// A cut after a step's last command leaves it burned by the
			// first run, which did not see it finish.
			if isLast(c) && slices.Contains(res2.Burned, c.step) {
				t.Errorf("the re-run burned %s; the cut was after its last command", c.step)
			}
			want := res1.Record.ID
			if slices.Contains(res2.Burned, c.step) {
				want = res2.Record.ID
			}
			if got := doneBy[c.step]; got != want {
				t.Errorf("the burn of %s is recorded for run %q, want %q (first run %s, re-run %s)", c.step, got, want, res1.Record.ID, res2.Record.ID)
			}
		})
	}
}

// TestRunPowerCutInLockdownIsLinkFault cuts the power at each command of
// the download lockdown's burn. The burn's lost link looks like the one the
// lockdown itself causes; when the reconnect finds the loader open and
// ENABLE_SECURITY_DOWNLOAD still 0, the burn never happened: the run is a
// link fault (exit 3), not a board failure (issue 19 item 5, where
// powercut-before=1308 gave FAIL [verify] "secure download mode is not on"),
// and a re-run passes.
func TestRunPowerCutInLockdownIsLinkFault(t *testing.T) {
	if testing.Short() {
		t.Skip("two runs per power cut")
	}
	t.Parallel()
	sp := burnSpans(t)[provisioning.StepDownload]
	if sp[0] == 0 || sp[1] <= sp[0] {
		t.Fatalf("download lockdown span %v", sp)
	}
	for k := sp[0] + 1; k <= sp[1]; k += 2 {
		f := virtual.FaultSpec{PowerCutBefore: k}
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			e := setup(t, chip.S3(), workspace.Options{})
			dir := filepath.Join(filepath.Dir(e.data), "board")
			e.b.Close()
			b1 := newCutBoard(t, dir, f)
			cfg := e.cfg()
			cfg.Rand, cfg.Probe = fixedRand(9), b1
			res1, err := provisioning.Run(ctxT(t), b1, cfg)
			sdm, _ := b1.V.Efuse().Get("ENABLE_SECURITY_DOWNLOAD")
			b1.Close()
			switch {
			case err == nil:
				// The cut came after the program: the reconnect found the
				// board locked, as the lockdown's own lost link.
				if sdm != 1 || res1.Verdict != evidence.PASS {
					t.Fatalf("passed with ENABLE_SECURITY_DOWNLOAD = %d, verdict %s", sdm, res1.Verdict)
				}
				return
			case errors.Is(err, provisioning.ErrVerify) || !errors.Is(err, provisioning.ErrLink) || res1.Code != "link-lost":
				t.Fatalf("a power cut in the lockdown burn (ENABLE_SECURITY_DOWNLOAD = %d) is reported as %s: %v; want a link fault", sdm, res1.Code, err)
			}
			b2, err := sim.New(virtual.Config{Chip: chip.S3(), StateDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			defer b2.Close()
			cfg = e.cfg()
			cfg.Probe = b2
			cfg.Now = func() time.Time { return time.Now().Add(time.Second) }
			res2, err := provisioning.Run(ctxT(t), b2, cfg)
			if err != nil || res2.Verdict != evidence.PASS {
				t.Fatalf("re-run after the cut: %v", err)
			}
		})
	}
}
