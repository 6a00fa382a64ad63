package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fuseline/reports/audit"
)

// auditDataDir writes a station data directory with 3 runs (24 records,
// checkpoints at 8, 16, 24) for devices 24:0a:c4:00:00:0{0,1,2}.
func auditDataDir(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	l, err := audit.Open(ctx, audit.Config{Dir: dir, Station: "st-01"})
	if err != nil {
		t.Fatal(err)
	}
	for run := range 3 {
		dev := fmt.Sprintf("24:0a:c4:00:00:%02x", run)
		for _, ev := range []audit.Event{audit.EventRunStart, audit.EventIntake, audit.EventEfuseBurn, audit.EventEfuseBurn,
			audit.EventRegionWritten, audit.EventRegionVerified, audit.EventLock, audit.EventResult} {
			if _, err := l.Append(ctx, audit.Entry{Operator: "alice", Device: dev, Run: fmt.Sprint("r-", run), Event: ev, Result: audit.ResultOK}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestAuditVerifyCheckpointsGone: with checkpoints/ removed and the last
// records cut, the log is not "intact": the station always writes
// checkpoints. --no-checkpoints (a log that never had any) accepts it and
// still names the run the cut left without a result.
func TestAuditVerifyCheckpointsGone(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	copyDir(t, auditDataDir(t), dir)
	if err := os.RemoveAll(filepath.Join(dir, "checkpoints")); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "audit.log")
	b, _ := os.ReadFile(log)
	lines := strings.SplitAfter(string(b), "\n")
	os.WriteFile(log, []byte(strings.Join(lines[:20], "")), 0o640)
	code, out, errOut := runAudit(t, "verify", "--data", dir)
	if code != ExitFail || !strings.Contains(out, "checkpoint-missing") || strings.Contains(out, "intact") {
		t.Fatalf("checkpoints gone, tail cut: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runAudit(t, "verify", "--data", dir, "--no-checkpoints")
	if code != ExitOK || !strings.Contains(out, "run r-2") || !strings.Contains(out, "no result") {
		t.Fatalf("--no-checkpoints: exit %d\n%s%s", code, out, errOut)
	}
	// Only the newest checkpoint removed, the log whole: run r-2's result
	// has no checkpoint.
	dir2 := t.TempDir()
	copyDir(t, auditDataDir(t), dir2)
	os.Remove(filepath.Join(dir2, "checkpoints", "00000000000000000024.note"))
	code, out, errOut = runAudit(t, "verify", "--data", dir2)
	if code != ExitFail || !strings.Contains(out, "record 23 ends a run") {
		t.Fatalf("newest checkpoint removed: exit %d\n%s%s", code, out, errOut)
	}
}

func runAudit(t *testing.T, args ...string) (code int, out, errOut string) {
	t.Helper()
	var o, e bytes.Buffer
	code = Run(context.Background(), append([]string{"audit"}, args...), Stdio{In: strings.NewReader(""), Out: &o, Err: &e})
	return code, o.String(), e.String()
}

func TestAuditVerify(t *testing.T) {
	t.Parallel()
	dir := auditDataDir(t)
	log := filepath.Join(dir, "audit.log")

	code, out, errOut := runAudit(t, "verify", "--data", dir)
	if code != ExitOK || !strings.Contains(out, "intact: 24 records") || !strings.Contains(out, "3 checkpoint(s)") {
		t.Fatalf("intact log: exit %d\n%s%s", code, out, errOut)
	}

	// Tamper with a copy: edit record 5.
	tampered := t.TempDir()
	copyDir(t, dir, tampered)
	tlog := filepath.Join(tampered, "audit.log")
	b, _ := os.ReadFile(tlog)
	lines := strings.SplitAfter(string(b), "\n")
	lines[5] = strings.Replace(lines[5], `"alice"`, `"mallory"`, 1)
	os.WriteFile(tlog, []byte(strings.Join(lines, "")), 0o640)
	code, out, errOut = runAudit(t, "verify", tlog)
	if code != ExitFail || !strings.Contains(out, "line 6 (record 5): edited") || !strings.Contains(errOut, "problem") {
		t.Fatalf("tampered log: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runAudit(t, "verify", tlog, "--json")
	var rep audit.Report
	if code != ExitFail || json.Unmarshal([]byte(out), &rep) != nil || rep.Problems[0].Kind != audit.ProblemEdited || rep.Problems[0].Record != 5 {
		t.Fatalf("--json: exit %d\n%s", code, out)
	}

	// The wrong key: every checkpoint fails its signature.
	other := auditDataDir(t)
	code, out, _ = runAudit(t, "verify", log, "--key", filepath.Join(other, "station.pub"))
	if code != ExitFail || !strings.Contains(out, "signature") {
		t.Fatalf("wrong key: exit %d\n%s", code, out)
	}
	// One given checkpoint instead of the directory's.
	code, out, _ = runAudit(t, "verify", log, "--checkpoint", filepath.Join(dir, "checkpoints", "00000000000000000016.note"))
	if code != ExitOK || !strings.Contains(out, "records 0..15 covered") || !strings.Contains(out, "records 16..23 come after") {
		t.Fatalf("--checkpoint: exit %d\n%s", code, out)
	}

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"missing log", []string{"verify", filepath.Join(dir, "nope.log")}},
		{"missing key file", []string{"verify", log, "--key", filepath.Join(dir, "nope.pub")}},
		{"two logs", []string{"verify", log, log}},
	} {
		if code, _, _ := runAudit(t, tc.args...); code != ExitUsage {
			t.Errorf("%s: exit %d, want %d", tc.name, code, ExitUsage)
		}
	}
}

func TestAuditProve(t *testing.T) {
	t.Parallel()
	dir := auditDataDir(t)
	log := filepath.Join(dir, "audit.log")

	code, out, errOut := runAudit(t, "prove", log, "--device", "24-0A-C4-00-00-01", "--json")
	if code != ExitOK {
		t.Fatalf("prove: exit %d\n%s%s", code, out, errOut)
	}
	var p audit.Proofs
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatal(err)
	}
	v, _ := audit.ReadVerifier(filepath.Join(dir, "station.pub"))
	if err := p.Check(v); err != nil || len(p.Records) != 8 || p.TreeSize != 24 || p.Records[0].Index != 8 {
		t.Fatalf("proofs: %v, %d records, size %d", err, len(p.Records), p.TreeSize)
	}

	code, out, _ = runAudit(t, "prove", "--data", dir, "--device", "24:0a:c4:00:00:02")
	if code != ExitOK || !strings.Contains(out, "8 record(s) proven") || !strings.Contains(out, "proof[0]") {
		t.Fatalf("text prove: exit %d\n%s", code, out)
	}
	if code, out, _ := runAudit(t, "prove", log, "--device", "24:0a:c4:00:00:09"); code != ExitFail {
		t.Fatalf("unknown device: exit %d\n%s", code, out)
	}
	if code, _, _ := runAudit(t, "prove", log); code != ExitUsage {
		t.Fatalf("no --device: exit %d", code)
	}
	if code, _, _ := runAudit(t, "prove", log, "--device", "nonsense"); code != ExitUsage {
		t.Fatalf("bad MAC: exit %d", code)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}
