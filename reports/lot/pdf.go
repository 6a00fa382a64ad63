package lot

import (
	"bytes"
	"fmt"
	"io"
	"strconv"

	"codeberg.org/go-pdf/fpdf"

	"fuseline/reports/evidence"
)

// WritePDF writes the report as an A4 PDF: totals, failures by reason, time
// per board with the chart (PNG), and the device list. The output is byte
// for byte the same for the same records: the creation and modification
// dates are the lot's last end time, and the catalog is sorted.
func (r *Report) WritePDF(w io.Writer) error {
	png, err := r.ChartPNG()
	if err != nil {
		return err
	}
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetCreationDate(r.Last)
	pdf.SetModificationDate(r.Last)
	pdf.SetCatalogSort(true)
	pdf.SetCreator("fuseline report lot", true)
	pdf.SetTitle(r.Title, true)
	pdf.SetMargins(12, 12, 12)
	pdf.SetAutoPageBreak(true, 14)
	pdf.AliasNbPages("{nb}")
	tr := pdf.UnicodeTranslatorFromDescriptor("") // cp1252 for the core fonts
	pdf.SetFooterFunc(func() {
		pdf.SetY(-10)
		pdf.SetFont("Helvetica", "", 8)
		pdf.SetTextColor(110, 110, 110)
		pdf.CellFormat(0, 4, tr(r.Title+" — page "+strconv.Itoa(pdf.PageNo())+" of {nb}"), "", 0, "C", false, 0, "")
	})
	pdf.AddPage()
	pageW, _ := pdf.GetPageSize()
	left, _, right, _ := pdf.GetMargins()
	bodyW := pageW - left - right

	pdf.SetFont("Helvetica", "B", 16)
	pdf.MultiCell(bodyW, 8, tr(r.Title), "", "L", false)
	pdf.SetFont("Helvetica", "", 9)
	pdf.SetTextColor(90, 90, 90)
	pdf.MultiCell(bodyW, 4.5, tr(fmt.Sprintf("Lots %s · stations %s · releases %s · %s to %s. Built from %d evidence records; signatures are not checked here (use fuseline report verify).",
		joinList(r.Lots), joinList(r.Stations), joinList(r.Releases), r.First.UTC().Format("2006-01-02 15:04:05Z"),
		r.Last.UTC().Format("2006-01-02 15:04:05Z"), r.Totals.Records)), "", "L", false)
	pdf.SetTextColor(0, 0, 0)

	heading := func(s string) {
		pdf.Ln(3)
		pdf.SetFont("Helvetica", "B", 12)
		pdf.CellFormat(bodyW, 7, tr(s), "", 1, "L", false, 0, "")
		pdf.SetFont("Helvetica", "", 9)
	}
	kv := func(k, v string) {
		pdf.CellFormat(70, 5.5, tr(k), "1", 0, "L", false, 0, "")
		pdf.CellFormat(30, 5.5, tr(v), "1", 1, "R", false, 0, "")
	}

	heading("Totals")
	t := r.Totals
	kv("Boards (records)", strconv.Itoa(t.Records))
	kv("Devices (distinct MACs)", strconv.Itoa(t.Devices))
	kv("PASS", strconv.Itoa(t.Pass))
	kv("FAIL", strconv.Itoa(t.Fail))
	kv("REFUSED", strconv.Itoa(t.Refuse))
	kv("Yield (devices whose last run passed)", pct(t.Yield))
	kv("First-pass yield", pct(t.FirstPassYield))
	kv("Retested devices", strconv.Itoa(t.Retested))
	kv("Checks not verified on PASS boards", strconv.Itoa(t.NotVerified))
	kv("PASS boards with modelled checks", strconv.Itoa(t.Modelled))
	if t.Modelled > 0 {
		pdf.SetTextColor(110, 40, 140)
		pdf.MultiCell(bodyW, 4.5, tr(fmt.Sprintf("%d PASS record(s) hold checks that a model answered (Fuseline's virtual board or an emulator) "+
			"or that do not say how they were established: those checks are modelled, not observed on a board, and are not proof for a shipped device.", t.Modelled)), "", "L", false)
		pdf.SetTextColor(0, 0, 0)
	}

	heading("Failures by reason")
	if len(r.Failures) == 0 {
		pdf.CellFormat(bodyW, 5.5, "No failures.", "", 1, "L", false, 0, "")
	} else {
		cols := []float64{32, 18, 14, bodyW - 64}
		header(pdf, tr, cols, "Reason code", "Verdict", "Boards", "Example")
		for _, g := range r.Failures {
			row(pdf, tr, cols, []string{"L", "L", "R", "L"}, g.Code, g.Verdict, strconv.Itoa(g.Count), g.Example)
		}
	}

	heading("Time per board")
	tm := r.Time
	cols := []float64{bodyW / 7, bodyW / 7, bodyW / 7, bodyW / 7, bodyW / 7, bodyW / 7, bodyW / 7}
	header(pdf, tr, cols, "mean", "median", "90th pct", "min", "max", "mean PASS", "PASS/hour")
	row(pdf, tr, cols, []string{"R", "R", "R", "R", "R", "R", "R"}, secs(tm.Mean), secs(tm.Median), secs(tm.P90),
		secs(tm.Min), secs(tm.Max), secs(tm.MeanPass), fmt.Sprintf("%.1f", tm.BoardsPerHour))
	pdf.Ln(2)
	pdf.RegisterImageOptionsReader("chart", fpdf.ImageOptions{ImageType: "PNG"}, bytes.NewReader(png))
	imgH := bodyW * float64(chartH) / float64(chartW)
	if _, y := pdf.GetXY(); y+imgH > 297-14 {
		pdf.AddPage()
	}
	pdf.ImageOptions("chart", left, pdf.GetY(), bodyW, imgH, true, fpdf.ImageOptions{ImageType: "PNG"}, 0, "")

	heading("Devices")
	pdf.SetFont("Helvetica", "", 8)
	pdf.MultiCell(bodyW, 4, tr("Checks: how they were established, observed on the board / computed on the station / modelled "+
		"(a virtual board or emulator answered: not proof for a shipped device)."), "", "L", false)
	dcols := []float64{8, 27, 21, 15, 12, 14, 22, 24, bodyW - 143}
	header(pdf, tr, dcols, "#", "MAC", "Chip", "Verdict", "Time", "Operator", "Station", "Checks o/c/m", "Reason")
	for _, d := range r.Devices {
		reason := d.Reason
		if d.Code != "" {
			reason = d.Code + ": " + reason
		}
		if d.NotVerified > 0 && d.Verdict == "PASS" {
			reason = fmt.Sprintf("%d check(s) not verified", d.NotVerified)
		}
		how := fmt.Sprintf("%d/%d/%d", d.Established[evidence.Observed], d.Established[evidence.Computed],
			d.Established[evidence.Modelled]+d.Established[evidence.Unrecorded])
		if d.Target != "" {
			how += " " + d.Target
		}
		row(pdf, tr, dcols, []string{"R", "L", "L", "L", "R", "L", "L", "L", "L"},
			strconv.Itoa(d.N), d.MAC, d.Chip, d.Verdict, secs(d.Duration), d.Operator, d.Station, how, reason)
	}
	if err := pdf.Output(w); err != nil {
		return fmt.Errorf("lot: write pdf: %w", err)
	}
	return nil
}

func header(pdf *fpdf.Fpdf, tr func(string) string, cols []float64, names ...string) {
	size, _ := pdf.GetFontSize()
	pdf.SetFont("Helvetica", "B", size)
	pdf.SetFillColor(235, 235, 235)
	for i, n := range names {
		pdf.CellFormat(cols[i], 5.5, tr(n), "1", 0, "L", true, 0, "")
	}
	pdf.Ln(-1)
	pdf.SetFont("Helvetica", "", size)
}

// row writes one table row, cutting each cell's text to fit its column.
func row(pdf *fpdf.Fpdf, tr func(string) string, cols []float64, align []string, cells ...string) {
	for i, c := range cells {
		pdf.CellFormat(cols[i], 5.5, fit(pdf, tr(c), cols[i]-2), "1", 0, align[i], false, 0, "")
	}
	pdf.Ln(-1)
}

func fit(pdf *fpdf.Fpdf, s string, w float64) string {
	if pdf.GetStringWidth(s) <= w {
		return s
	}
	const ell = "..."
	for len(s) > 0 && pdf.GetStringWidth(s+ell) > w {
		s = s[:len(s)-1]
	}
	return s + ell
}
