package evidence_test

import (
	"strings"
	"testing"

	"fuseline/reports/evidence"
	"fuseline/reports/evidence/evidencetest"
)

// TestWriteSummaryEscapes: an evidence file is outside input; control
// characters in its text fields reach the terminal escaped, and a newline
// in a field cannot forge a line of the summary.
func TestWriteSummaryEscapes(t *testing.T) {
	t.Parallel()
	r := evidencetest.Board(evidencetest.LotOptions{}, 3)
	r.Lot = "L\x1b[2J\x1b]0;pwned\x07"
	r.Device.SerialNo = "S1\nResult    PASS"
	r.Operator.ID = "op\u009b31m"
	r.Recipe.Name = "re\rcipe\xff"
	r.Steps[0].Name = "step\x1b[31m"
	r.Checks[0].Name = "check\x00"
	r.Checks[0].Verified = false
	r.Checks[1].What = "what\x1b[1A"
	r.Checks[1].Because = "because\x1b[1A"
	r.Checks[1].Verified = false
	r.Checks[2].Established = "est\x1b[1A"
	var b strings.Builder
	if err := evidence.WriteSummary(&b, r); err != nil {
		t.Fatal(err)
	}
	if err := evidence.WriteChecks(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for i, c := range []byte(out) {
		if c < 0x20 && c != '\n' || c == 0x7f {
			t.Fatalf("control byte 0x%02x at %d reaches the terminal:\n%q", c, i, out)
		}
	}
	if strings.Contains(out, "\u009b") || strings.Contains(out, "\xff") {
		t.Fatalf("C1 control or invalid UTF-8 reaches the terminal:\n%q", out)
	}
	if n := strings.Count("\n"+out, "\nResult "); n != 1 {
		t.Fatalf("%d Result lines: a field's newline forged a line:\n%s", n, out)
	}
	for _, want := range []string{`L\x1b[2J\x1b]0;pwned\x07`, `S1\x0aResult    PASS`, `op\u009b31m`, `re\x0dcipe\xff`} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %s:\n%s", want, out)
		}
	}
}
