package provisioning_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fuseline/esp/chip"
	"fuseline/esp/efuse"
	"fuseline/esp/loader"
	"fuseline/esp/slip"
	"fuseline/provisioning"
	"fuseline/provisioning/sim"
	"fuseline/provisioning/workspace"
	"fuseline/reports/audit"
	"fuseline/reports/evidence"
)

// misreadBoard redirects the host's READ_REG requests for one address to
// another while on is set: a line whose noise keeps turning the same
// request into a read of another register (a READ_REG request carries no
// checksum either), so repeated reads agree on the wrong value.
type misreadBoard struct {
	*sim.Board
	from, to uint32
	on       atomic.Bool
}

func (m *misreadBoard) Write(p []byte) (int, error) {
	if !m.on.Load() {
		return m.Board.Write(p)
	}
	f, err := slip.NewReader(bytes.NewReader(p)).ReadFrame()
	if err != nil {
		return m.Board.Write(p)
	}
	req, err := loader.DecodeRequest(f)
	if err != nil || req.Op != loader.OpReadReg {
		return m.Board.Write(p)
	}
	if a, err := loader.ParseReadReg(req.Data); err != nil || a != m.from {
		return m.Board.Write(p)
	}
	req.Data = loader.EncodeReadReg(m.to)
	if _, err := m.Board.Write(slip.Encode(loader.EncodeRequest(req))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// A first run whose eFuse read was spoilt (BLOCK_KEY2 read as written while
// it is blank) stops after the key burn; the journal holds that "before".
// The re-run reads BLOCK_KEY2 blank: eFuse bits never clear, so it must not
// pass with evidence that says a key block was written before and is blank
// after (issue 19 item 4); it fails as a link error instead.
func TestRunEfuseReadContradictingJournal(t *testing.T) {
	t.Parallel()
	e := setup(t, chip.S3(), workspace.Options{})
	c := chip.S3()
	b := &misreadBoard{Board: e.b, from: c.Efuse.BlockRead[6], to: c.Efuse.BlockRead[1]} // BLOCK_KEY2 word 0 ← a MAC word
	b.on.Store(true)
	cfg := e.cfg()
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	cfg.Progress = func(ev provisioning.Event) {
		if ev.Step == provisioning.StepFlashKey && ev.Kind == provisioning.EventEnd {
			cancel() // the station stops here
		}
	}
	if _, err := provisioning.Run(ctx, b, cfg); err == nil {
		t.Fatal("the first run went on after the stop")
	}
	b.on.Store(false)
	cfg = e.cfg()
	cfg.Now = func() time.Time { return time.Now().Add(time.Second) }
	res, err := provisioning.Run(ctxT(t), b, cfg)
	if res.Record != nil {
		after := map[string]evidence.KeyBlock{}
		for _, k := range res.Record.Efuse.After.KeyBlocks {
			after[k.Block] = k
		}
		for _, k := range res.Record.Efuse.Before.KeyBlocks {
			if a, ok := after[k.Block]; ok && !k.Empty && a.Empty {
				t.Errorf("evidence (%s): %s written before, blank after", res.Verdict, k.Block)
			}
		}
	}
	if !errors.Is(err, provisioning.ErrLink) || res.Verdict == evidence.PASS {
		t.Fatalf("re-run: %v, verdict %s; want a link error", err, res.Verdict)
	}
}

// Within a run: the read-back before the last burn finds BLOCK0 bits the
// run burned (SPI_BOOT_CRYPT_CNT) clear, because every read of that word is
// turned into a read of a blank one. eFuse bits never clear: the run reads
// again and then fails as a link error, not as a board that failed its
// burns.
func TestRunEfuseReadClearsBurnedBits(t *testing.T) {
	t.Parallel()
	e := setup(t, chip.S3(), workspace.Options{})
	c := chip.S3()
	f, err := efuse.FieldByName(chip.ESP32S3, "SPI_BOOT_CRYPT_CNT")
	if err != nil {
		t.Fatal(err)
	}
	b := &misreadBoard{Board: e.b, from: c.Efuse.BlockRead[0] + uint32(4*f.Word), to: c.Efuse.BlockRead[9]}
	cfg := e.cfg()
	cfg.Progress = func(ev provisioning.Event) {
		if ev.Phase == provisioning.PhaseReadback && ev.Kind == provisioning.EventBegin {
			b.on.Store(true)
		}
	}
	res, err := provisioning.Run(ctxT(t), b, cfg)
	if !errors.Is(err, provisioning.ErrLink) || errors.Is(err, provisioning.ErrVerify) || !strings.Contains(err.Error(), "BLOCK0") {
		t.Fatalf("run: %v, verdict %s; want a link error naming BLOCK0", err, res.Verdict)
	}
	if v, _ := e.b.V.Efuse().Get("ENABLE_SECURITY_DOWNLOAD"); v != 0 {
		t.Error("the lockdown was burned after a read-back that could not be trusted")
	}
}

// A WRITE_REG the line changed can burn bits no step means (issue 19 under
// line noise: FLASH_PAGE_SIZE=2, a second XTS key purpose). The final
// read-back holds the board to the run's before state and the plan's burns:
// a bit outside them fails the run (FAIL [verify], the field named, no
// lockdown) and is recorded in the audit log as stray, whether it appeared
// during this run or during an earlier, interrupted one.
func TestRunStrayEfuseBitsNotPass(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		field  string
		value  uint64
		resume bool
	}{
		{"during the run", "FLASH_PAGE_SIZE", 2, false},
		{"during an interrupted run", "KEY_PURPOSE_2", 4, true},
		{"data in a key block no step burns", "BLOCK_KEY3", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, chip.S3(), workspace.Options{})
			stray := func() {
				var b efuse.Batch
				if tc.value == 0 {
					b.SetBytes(tc.field, bytes.Repeat([]byte{0x5A}, 32))
				} else {
					b.Set(tc.field, tc.value)
				}
				if _, err := e.b.V.BurnEfuses(b); err != nil {
					t.Error(err)
				}
			}
			cfg := e.cfg()
			if tc.resume {
				ctx, cancel := context.WithCancel(ctxT(t))
				defer cancel()
				cfg.Progress = func(ev provisioning.Event) {
					if ev.Step == provisioning.StepFlashKey && ev.Kind == provisioning.EventEnd {
						cancel()
					}
				}
				if _, err := provisioning.Run(ctx, e.b, cfg); err == nil {
					t.Fatal("the first run went on after the stop")
				}
				stray()
				cfg = e.cfg()
				cfg.Now = func() time.Time { return time.Now().Add(time.Second) }
			} else {
				cfg.Progress = func(ev provisioning.Event) {
					if ev.Step == provisioning.StepFlashKey && ev.Kind == provisioning.EventEnd {
						stray()
					}
				}
			}
			res, err := provisioning.Run(ctxT(t), e.b, cfg)
			if !errors.Is(err, provisioning.ErrVerify) || res.Verdict == evidence.PASS || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("run: %v, verdict %s; want FAIL [verify] naming %s", err, res.Verdict, tc.field)
			}
			if v, _ := e.b.V.Efuse().Get("ENABLE_SECURITY_DOWNLOAD"); v != 0 {
				t.Error("the lockdown was burned on a board with stray bits")
			}
			var found bool
			for _, r := range auditRecords(t, e.data) {
				if r.Event == audit.EventEfuseStray && r.Result == audit.ResultFail && strings.Contains(r.Details["fields"], tc.field) {
					found = true
				}
			}
			if !found {
				t.Errorf("no %s audit record naming %s", audit.EventEfuseStray, tc.field)
			}
		})
	}
}
