package provisioning_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fuseline/esp/chip"
	"fuseline/provisioning"
	"fuseline/provisioning/journal"
	"fuseline/provisioning/keyseal"
	"fuseline/provisioning/workspace"
	"fuseline/reports/audit"
	"fuseline/reports/evidence"
)

// cutAfterKeyBurn runs until the flash key is burned and stops, leaving an
// abandoned board whose journal holds its (sealed) key; it returns the key.
func cutAfterKeyBurn(t *testing.T, e *env) []byte {
	t.Helper()
	key := make([]byte, chip.XTSAES128.KeyLen())
	fixedRand(91).Read(key)
	cfg := e.cfg()
	cfg.Rand = fixedRand(91)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	cfg.Progress = func(ev provisioning.Event) {
		if ev.Step == provisioning.StepFlashKey && ev.Kind == provisioning.EventEnd {
			cancel()
		}
	}
	if _, err := provisioning.Run(ctx, e.b, cfg); err == nil {
		t.Fatal("the run went on after the cut")
	}
	return key
}

func keyFile(t *testing.T, e *env) string {
	t.Helper()
	kf, _ := filepath.Glob(filepath.Join(e.data, "journal", "*.key"))
	if len(kf) != 1 {
		t.Fatalf("key files %v, want one", kf)
	}
	return kf[0]
}

// TestRunResumesUnsealedKey: a board abandoned by an earlier version (its
// key stored raw) is resumed and passes; the raw file is sealed on load.
func TestRunResumesUnsealedKey(t *testing.T) {
	t.Parallel()
	e := setup(t, chip.S3(), workspace.Options{})
	key := cutAfterKeyBurn(t, e)
	kf := keyFile(t, e)
	if err := os.WriteFile(kf, key, 0o600); err != nil { // as before sealing
		t.Fatal(err)
	}
	// A dry run reads it and changes nothing.
	cfg := e.cfg()
	cfg.DryRun = true
	if _, err := provisioning.Run(ctxT(t), e.b, cfg); err != nil {
		t.Fatalf("dry run with a raw key file: %v", err)
	}
	if b, _ := os.ReadFile(kf); string(b) != string(key) {
		t.Fatal("a dry run rewrote the key file")
	}
	res, err := provisioning.Run(ctxT(t), e.b, e.cfg())
	if err != nil || res.Verdict != evidence.PASS || !res.Resumed {
		t.Fatalf("resume with a raw key file: %v %+v", err, res)
	}
}

// TestDestroyKey: an abandoned board is listed with its age and sealed key;
// destroying the key writes an audit record, removes the file, and a later
// run on the board is refused with that reason and burns nothing.
func TestDestroyKey(t *testing.T) {
	t.Parallel()
	e := setup(t, chip.S3(), workspace.Options{})
	cutAfterKeyBurn(t, e)
	keyFile(t, e)
	now := time.Now().Add(time.Hour)
	list, err := provisioning.Abandoned(e.data, now)
	if err != nil || len(list) != 1 {
		t.Fatalf("abandoned %+v %v", list, err)
	}
	b := list[0]
	if !b.KeyHeld || !b.KeySealed || b.KeyDestroyed || b.Run == "" || b.LastStep == "" || b.Age < 59*time.Minute || len(b.MAC) != 17 {
		t.Fatalf("listed %+v", b)
	}
	if err := provisioning.DestroyKey(ctxT(t), e.log, e.data, "not-a-mac", "qa"); err == nil {
		t.Fatal("a bad MAC was accepted")
	}
	if err := provisioning.DestroyKey(ctxT(t), e.log, e.data, "02:00:00:00:00:99", "qa"); !errors.Is(err, provisioning.ErrNoKey) {
		t.Fatalf("no key held: %v", err)
	}
	size := e.log.Size()
	if err := provisioning.DestroyKey(ctxT(t), e.log, e.data, strings.ToUpper(b.MAC), "qa-lead"); err != nil {
		t.Fatal(err)
	}
	if kf, _ := filepath.Glob(filepath.Join(e.data, "journal", "*.key")); len(kf) != 0 {
		t.Fatalf("key file left: %v", kf)
	}
	if e.log.Size() != size+1 {
		t.Fatalf("audit records %d → %d, want one more", size, e.log.Size())
	}
	recs := auditRecords(t, e.data)
	last := recs[len(recs)-1]
	if last.Event != provisioning.AuditKeyDestroyed || last.Operator != "qa-lead" || last.Device != b.MAC || last.Run != b.Run {
		t.Fatalf("audit record %+v", last)
	}
	list, _ = provisioning.Abandoned(e.data, now)
	if len(list) != 1 || list[0].KeyHeld || !list[0].KeyDestroyed {
		t.Fatalf("after destroy: %+v", list)
	}
	phys := e.b.V.Efuse()
	res, err := provisioning.Run(ctxT(t), e.b, e.cfg())
	if !errors.Is(err, provisioning.ErrConflict) || !strings.Contains(err.Error(), "can no longer be resumed") || !strings.Contains(err.Error(), "qa-lead") {
		t.Fatalf("run after destroy: %v", err)
	}
	if res.Verdict == evidence.PASS || !phys.Equal(e.b.V.Efuse()) {
		t.Fatal("a board whose key was destroyed was worked on")
	}
	if _, err := journal.Load(filepath.Join(e.data, "journal"), journal.DeviceName(b.MAC)); err != nil {
		t.Fatal(err)
	}
	if err := provisioning.DestroyKey(ctxT(t), e.log, e.data, b.MAC, "qa-lead"); !errors.Is(err, provisioning.ErrNoKey) {
		t.Fatalf("second destroy: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.data, keyseal.FileName)); err != nil {
		t.Fatalf("sealing key: %v", err)
	}
}

func auditRecords(t *testing.T, data string) []*audit.Record {
	t.Helper()
	b, err := os.ReadFile(audit.NewLayout(data).Log)
	if err != nil {
		t.Fatal(err)
	}
	var out []*audit.Record
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		r, err := audit.ParseRecord([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}
