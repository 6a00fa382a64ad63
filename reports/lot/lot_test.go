package lot_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"fuseline/reports/evidence"
	"fuseline/reports/evidence/evidencetest"
	"fuseline/reports/lot"
)

// retested is a lot of 10 in which board 3 (a FAIL) is run again and passes.
func retested() []*evidence.Record {
	o := evidencetest.LotOptions{N: 10}
	recs := evidencetest.Lot(o)
	again := evidencetest.Board(o, 0) // a PASS record…
	bad := recs[3]
	again.Device = bad.Device // …for board 3's device, later
	again.Timing.Start = again.Timing.Start.Add(2 * time.Hour)
	again.Timing.End = again.Timing.End.Add(2 * time.Hour)
	again.ID = evidence.NewID(again.Device.MAC, again.Timing.Start)
	return append(recs, again)
}

func TestBuild(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		recs     []*evidence.Record
		want     lot.Totals
		failures map[string]int
	}{
		{"lot of 10", evidencetest.Lot(evidencetest.LotOptions{N: 10}),
			lot.Totals{Records: 10, Pass: 7, Fail: 2, Refuse: 1, Devices: 10, DevicesPass: 7, FirstPass: 7, Yield: 0.7, FirstPassYield: 0.7, NotVerified: 2, Modelled: 7},
			map[string]int{"verify-md5": 1, "link-lost": 1, "efuse-conflict": 1}},
		{"lot of 10 real boards", evidencetest.Lot(evidencetest.LotOptions{N: 10, Target: evidence.TargetBoard}),
			lot.Totals{Records: 10, Pass: 7, Fail: 2, Refuse: 1, Devices: 10, DevicesPass: 7, FirstPass: 7, Yield: 0.7, FirstPassYield: 0.7, NotVerified: 2},
			map[string]int{"verify-md5": 1, "link-lost": 1, "efuse-conflict": 1}},
		{"lot of 25", evidencetest.Lot(evidencetest.LotOptions{N: 25}),
			lot.Totals{Records: 25, Pass: 18, Fail: 5, Refuse: 2, Devices: 25, DevicesPass: 18, FirstPass: 18, Yield: 0.72, FirstPassYield: 0.72, NotVerified: 6, Modelled: 18},
			map[string]int{"verify-md5": 3, "link-lost": 2, "efuse-conflict": 2}},
		{"retested", retested(),
			lot.Totals{Records: 11, Pass: 8, Fail: 2, Refuse: 1, Devices: 10, DevicesPass: 8, FirstPass: 7, Retested: 1, Yield: 0.8, FirstPassYield: 0.7, NotVerified: 2, Modelled: 8},
			map[string]int{"verify-md5": 1, "link-lost": 1, "efuse-conflict": 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := lot.Build(tc.recs, lot.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if r.Totals != tc.want {
				t.Errorf("totals\n got %+v\nwant %+v", r.Totals, tc.want)
			}
			got := map[string]int{}
			for _, g := range r.Failures {
				got[g.Code] = g.Count
			}
			if len(got) != len(tc.failures) {
				t.Errorf("failures %v, want %v", got, tc.failures)
			}
			for k, v := range tc.failures {
				if got[k] != v {
					t.Errorf("failures[%s] = %d, want %d", k, got[k], v)
				}
			}
			for i := 1; i < len(r.Failures); i++ {
				if r.Failures[i].Count > r.Failures[i-1].Count {
					t.Error("failures not sorted by count")
				}
			}
			if len(r.Devices) != len(tc.recs) || r.Devices[0].N != 1 {
				t.Errorf("device list has %d rows", len(r.Devices))
			}
			if r.Time.Min > r.Time.Median || r.Time.Median > r.Time.P90 || r.Time.P90 > r.Time.Max || r.Time.MeanPass <= 0 {
				t.Errorf("time stats out of order: %+v", r.Time)
			}
		})
	}
	if _, err := lot.Build(nil, lot.Options{}); err == nil {
		t.Error("an empty lot built a report")
	}
}

func TestHTML(t *testing.T) {
	t.Parallel()
	recs := evidencetest.Lot(evidencetest.LotOptions{N: 12})
	recs[3].Result.Reason = `MD5 <script>alert("x")</script> & more`
	r, err := lot.Build(recs, lot.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"<!DOCTYPE html>", "<svg", "Time per board", `id="records">12<`, `id="pass">9<`, `id="yield">75.0 %<`, "verify-md5", "efuse-conflict", "&lt;script&gt;"} {
		if !strings.Contains(out, want) {
			t.Errorf("html lacks %q", want)
		}
	}
	for _, rec := range recs {
		if !strings.Contains(out, rec.Device.MAC) {
			t.Errorf("html lacks device %s", rec.Device.MAC)
		}
	}
	if strings.Contains(out, "<script>") || strings.Contains(out, "<?xml") {
		t.Error("unescaped script or an XML prolog inside the page")
	}
}

func TestChart(t *testing.T) {
	t.Parallel()
	r, err := lot.Build(evidencetest.Lot(evidencetest.LotOptions{N: 40}), lot.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svg, err := r.ChartSVG()
	if err != nil || !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("REFUSED")) {
		t.Errorf("svg: %v", err)
	}
	png, err := r.ChartPNG()
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("png: %v", err)
	}
}

func TestPDF(t *testing.T) {
	t.Parallel()
	recs := evidencetest.Lot(evidencetest.LotOptions{N: 60}) // spans pages
	r, err := lot.Build(recs, lot.Options{Title: "Lot LOT-TEST-01"})
	if err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	if err := r.WritePDF(&a); err != nil {
		t.Fatal(err)
	}
	// Built again from a shuffled copy: the same bytes.
	shuffled := append([]*evidence.Record(nil), recs[30:]...)
	shuffled = append(shuffled, recs[:30]...)
	r2, err := lot.Build(shuffled, lot.Options{Title: "Lot LOT-TEST-01"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.WritePDF(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(a.Bytes(), []byte("%PDF-")) {
		t.Fatal("not a PDF")
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("PDF is not deterministic")
	}

	pdftotext, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Skip("pdftotext not on PATH (Debian poppler-utils): PDF text not checked")
	}
	path := filepath.Join(t.TempDir(), "lot.pdf")
	if err := os.WriteFile(path, a.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), pdftotext, "-layout", path, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	text := string(out)
	for _, want := range []string{"Lot LOT-TEST-01", "Boards (records)", "60", "Yield", "70.0 %", "Failures by reason", "verify-md5", "link-lost", "efuse-conflict", "Time per board", "page 2 of"} {
		if !strings.Contains(text, want) {
			t.Errorf("pdf text lacks %q", want)
		}
	}
	for _, line := range []string{"PASS\\s+42", "FAIL\\s+12", "REFUSED\\s+6"} {
		if !matchLine(text, line) {
			t.Errorf("pdf text lacks a totals line %q", line)
		}
	}
	for _, rec := range recs {
		if !strings.Contains(text, rec.Device.MAC) {
			t.Errorf("pdf text lacks device %s", rec.Device.MAC)
		}
	}
}

func matchLine(text, pattern string) bool {
	return regexp.MustCompile(`(?m)^\s*` + pattern + `\s*$`).MatchString(text)
}

// The report says how each record's checks were established and warns when
// PASS records rest on a model (virtual board, emulator), in HTML and PDF.
func TestEstablishedShown(t *testing.T) {
	t.Parallel()
	for _, target := range []string{evidence.TargetVirtual, evidence.TargetBoard} {
		recs := evidencetest.Lot(evidencetest.LotOptions{N: 4, Target: target})
		r, err := lot.Build(recs, lot.Options{Title: "Lot " + target})
		if err != nil {
			t.Fatal(err)
		}
		pass := r.Devices[0]
		wantRow := map[string]string{evidence.TargetVirtual: "computed, ", evidence.TargetBoard: " observed, "}[target]
		if pass.Target != target || !strings.Contains(pass.EstablishedText(), wantRow) || pass.ModelledOnly() != (target == evidence.TargetVirtual) {
			t.Errorf("%s: row %q %q modelled %v", target, pass.Target, pass.EstablishedText(), pass.ModelledOnly())
		}
		var h bytes.Buffer
		if err := r.WriteHTML(&h); err != nil {
			t.Fatal(err)
		}
		html := h.String()
		if strings.Contains(html, `id="modelled-note"`) != (target == evidence.TargetVirtual) ||
			!strings.Contains(html, pass.EstablishedText()) || !strings.Contains(html, "<th>Checks established</th>") {
			t.Errorf("%s: html establishment note/column wrong", target)
		}
		if target == evidence.TargetVirtual && !strings.Contains(html, "not proof for a shipped device") {
			t.Errorf("virtual lot: html does not say modelled checks are not proof")
		}
		var p bytes.Buffer
		if err := r.WritePDF(&p); err != nil {
			t.Fatal(err)
		}
		pdftotext, err := exec.LookPath("pdftotext")
		if err != nil {
			continue
		}
		path := filepath.Join(t.TempDir(), "lot.pdf")
		if err := os.WriteFile(path, p.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.CommandContext(t.Context(), pdftotext, "-layout", path, "-").Output()
		if err != nil {
			t.Fatalf("pdftotext: %v", err)
		}
		text := strings.Join(strings.Fields(string(out)), " ")
		cell := fmt.Sprintf("%d/%d/%d %s", pass.Established[evidence.Observed], pass.Established[evidence.Computed], pass.Established[evidence.Modelled], target)
		if !strings.Contains(text, "PASS boards with modelled checks") || !strings.Contains(text, cell) {
			t.Errorf("%s: pdf text lacks the establishment (%q):\n%s", target, cell, text)
		}
		if note := strings.Contains(text, "PASS record(s) hold checks that a model answered"); note != (target == evidence.TargetVirtual) {
			t.Errorf("%s: pdf modelled note present %v", target, note)
		}
	}
}
