package main

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"fuseline/esp/efuse"
	"fuseline/fixtures/virtual"
	"fuseline/provisioning/sim"
	"fuseline/reports/evidence"
)

// smoke is one campaign shared by the fast tests: the workspace and the
// reference run cost a few seconds.
var smoke struct {
	once sync.Once
	c    *campaign
	dir  string
}

func smokeCampaign(t *testing.T) *campaign {
	t.Helper()
	smoke.once.Do(func() {
		dir, err := os.MkdirTemp("", "fuseline-oracle-")
		if err != nil {
			t.Fatal(err)
		}
		smoke.dir = dir
		smoke.c = newCampaign(t, dir)
	})
	if smoke.c == nil {
		t.Fatal("campaign set-up failed")
	}
	return smoke.c
}

func TestMain(m *testing.M) {
	code := m.Run()
	if smoke.dir != "" {
		os.RemoveAll(smoke.dir)
	}
	os.Exit(code)
}

// TestFaultOracle is the campaign in small: a handful of faulted boards,
// each resumed and judged like in make soak, must come out provisioned,
// booting, with every PASS, audit record and evidence claim holding.
func TestFaultOracle(t *testing.T) {
	c := smokeCampaign(t)
	tests := []soakCase{
		{kind: "none", name: "no fault", faults: "seed=1"},
		{kind: kindEfuse, name: "efuse-error=0", faults: "efuse-error=0"},
		// In the app's write: the loader's timeouts run out (about 10 s).
		{kind: kindCutBefore, name: "powercut-before=500", faults: "powercut-before=500"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bc, f := c.runCase(t.Context(), tc, t.TempDir())
			if !f.ok() || f.bricked || len(f.falsePass)+len(f.auditMissing)+len(f.evidenceBad)+len(f.other) > 0 {
				t.Errorf("%s", describe(bc, f, ""))
			}
			if !bc.passed() {
				t.Errorf("no run passed: %+v", bc.runs)
			}
		})
	}
}

// passedBoard is a board provisioned without faults, for the tests that
// damage it.
func passedBoard(t *testing.T, c *campaign) *boardCase {
	t.Helper()
	bc, f := c.runCase(t.Context(), soakCase{kind: "none", name: "no fault", faults: "seed=1"}, t.TempDir())
	if !f.ok() || !bc.passed() {
		t.Fatalf("the clean board did not pass: %s", describe(bc, f, ""))
	}
	return bc
}

// withBoard opens a board's state, lets fn change it, and saves it.
func withBoard(t *testing.T, c *campaign, state string, fn func(b *sim.Board)) {
	t.Helper()
	b, err := sim.New(virtual.Config{Chip: c.r.Chip, StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	fn(b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// The oracle can fail: a board whose flash was erased after its PASS is
// bricked, its PASS is false, and its evidence's written images are not
// on it.
func TestFaultOracleFlashErasedAfterPass(t *testing.T) {
	t.Parallel()
	c := smokeCampaign(t)
	bc := passedBoard(t, c)
	withBoard(t, c, bc.state, func(b *sim.Board) {
		for off := uint32(0); off < 0x20000; off += 0x1000 {
			if err := b.V.WriteFlashSector(off, nil); err != nil {
				t.Fatal(err)
			}
		}
	})
	f := c.judge(t.Context(), bc)
	if f.ok() || f.booting || !f.bricked {
		t.Errorf("erased flash: ok %v, booting %v, bricked %v (%v)", f.ok(), f.booting, f.bricked, f.notes)
	}
	if len(f.falsePass) == 0 {
		t.Error("erased flash after a PASS: no false PASS counted")
	}
	if !strings.Contains(strings.Join(f.evidenceBad, "\n"), "written_sha256 is not what the flash holds") {
		t.Errorf("erased flash: evidence findings %q", f.evidenceBad)
	}
}

// The oracle can fail: a board with eFuses burned that no station
// recorded (its records are in another data directory), and a burn no
// step of the reference run makes.
func TestFaultOracleUnrecordedBurns(t *testing.T) {
	t.Parallel()
	c := smokeCampaign(t)
	bc := passedBoard(t, c)
	f := c.judge(t.Context(), &boardCase{state: bc.state, datas: []string{t.TempDir()}})
	got := strings.Join(f.auditMissing, "\n")
	for _, st := range c.ref.steps {
		if !strings.Contains(got, "step "+st.name+" are burned on the board, no efuse.intent record") ||
			!strings.Contains(got, "step "+st.name+" are burned on the board, no efuse.burn/lock ok record") {
			t.Errorf("no audit finding for step %s: %q", st.name, got)
		}
	}
	// An extra burn is not explained by any step (and is not the reference
	// board either).
	withBoard(t, c, bc.state, func(b *sim.Board) {
		phys := b.V.Efuse()
		for _, fd := range efuse.Fields(phys.Chip) {
			v, _ := phys.Get(fd.Name)
			if w, _ := phys.Writable(fd.Name); fd.Block != 0 || fd.Hidden || fd.Width != 1 || v != 0 || !w {
				continue
			}
			if _, err := b.V.BurnEfuses(efuse.Batch{Requests: []efuse.Request{{Op: efuse.OpSet, Field: fd.Name, Value: 1}}}); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Fatal("no writable BLOCK0 bit left on the provisioned board")
	})
	f = c.judge(t.Context(), bc)
	if f.provisioned || !strings.Contains(strings.Join(f.auditMissing, "\n"), "that no step of an uninterrupted run burns") {
		t.Errorf("extra burn: provisioned %v, audit findings %q", f.provisioned, f.auditMissing)
	}
}

// The oracle can fail: evidence claims the board does not show.
func TestFaultOracleEvidenceClaims(t *testing.T) {
	t.Parallel()
	c := smokeCampaign(t)
	bc := passedBoard(t, c)
	b, err := sim.New(virtual.Config{Chip: c.r.Chip, StateDir: bc.state})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	recs, bad := readEvidence(filepath.Join(bc.datas[0], "evidence"))
	if len(bad) > 0 || len(recs) != 1 || recs[0].rec.Result.Verdict != evidence.PASS {
		t.Fatalf("evidence of the clean board: %d records, %v", len(recs), bad)
	}
	phys := b.V.Efuse()
	if got := c.contradictions(recs[0].rec, phys, b); len(got) > 0 {
		t.Fatalf("the clean board's evidence contradicts it: %v", got)
	}
	tests := []struct {
		name   string
		change func(r *evidence.Record)
		want   string
	}{
		{"after field", func(r *evidence.Record) { r.Efuse.After.Fields["SECURE_BOOT_EN"] = 0 }, "after SECURE_BOOT_EN=0x0, the board has 0x1"},
		{"before bit the board lacks", func(r *evidence.Record) { r.Efuse.Before.Fields["DIS_USB_OTG"] = 1 }, "before DIS_USB_OTG=0x1, the board has 0x0"},
		{"key digest", func(r *evidence.Record) {
			r.Efuse.After.KeyBlocks[0].Digest = evidence.DigestKey([]byte("another key"))
		}, "is not the block on the board"},
		{"key block empty before, impossible", func(r *evidence.Record) {
			r.Efuse.Before.KeyBlocks[1].Empty, r.Efuse.Before.KeyBlocks[1].Digest = false, evidence.DigestKey([]byte("noise"))
		}, "before BLOCK_KEY1 digest"},
		{"MAC", func(r *evidence.Record) { r.Device.MAC = "7c:df:a1:00:00:09" }, "device MAC"},
		{"written image", func(r *evidence.Record) { r.Images[2].WrittenSHA256 = r.Images[2].PlaintextSHA256 }, "written_sha256 is not what the flash holds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, _ := evidence.Marshal(recs[0].rec)
			r, err := evidence.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			tc.change(r)
			got := strings.Join(c.contradictions(r, phys, b), "\n")
			if !strings.Contains(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// The oracle can fail: a run that began (run.start) and returned without a
// result record, and an exit 0 without a PASS result, are found.
func TestFaultOracleResultRecords(t *testing.T) {
	t.Parallel()
	c := smokeCampaign(t)
	bc := passedBoard(t, c)
	recs, err := readAudit(filepath.Join(bc.datas[0], "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	last := len(recs) - 1
	if recs[last].Event != "result" || bc.runs[0].to != len(recs) {
		t.Fatalf("the clean run's records end with %s, invocation covers %d..%d of %d", recs[last].Event, bc.runs[0].from, bc.runs[0].to, len(recs))
	}
	bc.runs[0].to = last // as if the run had not recorded its result
	f := c.judge(t.Context(), bc)
	if got := strings.Join(f.auditMissing, "\n"); !strings.Contains(got, "has no result record") {
		t.Errorf("result record cut off: audit findings %q", got)
	}
	if got := strings.Join(f.falsePass, "\n"); !strings.Contains(got, "exited 0 without a PASS result record") {
		t.Errorf("result record cut off: false PASS findings %q", got)
	}
}
