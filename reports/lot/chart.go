package lot

import (
	"bytes"
	"fmt"
	"image/color"

	"fuseline/reports/evidence"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Chart size: fits the width of an A4 page within margins.
const (
	chartW = 18 * vg.Centimeter
	chartH = 7 * vg.Centimeter
)

// verdictColor is the colour of a verdict in the chart and tables.
func verdictColor(v string) color.RGBA {
	switch v {
	case evidence.PASS:
		return color.RGBA{R: 0x2e, G: 0x8b, B: 0x57, A: 0xff}
	case evidence.FAIL:
		return color.RGBA{R: 0xc0, G: 0x39, B: 0x2b, A: 0xff}
	}
	return color.RGBA{R: 0xe6, G: 0x7e, B: 0x22, A: 0xff}
}

// chart draws time per board: one bar per record in run order, coloured by
// verdict, with the mean as a line.
func (r *Report) chart() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Time per board"
	p.X.Label.Text = "board, in run order"
	p.Y.Label.Text = "seconds"
	p.Y.Min = 0
	n := len(r.Devices)
	// Bar width: the plot area is about chartW less the axes; leave a gap.
	w := vg.Length(float64(chartW-3*vg.Centimeter) / float64(n) * 0.7)
	w = max(w, vg.Points(0.5))
	for _, verdict := range []string{evidence.PASS, evidence.FAIL, evidence.REFUSED} {
		vals := make(plotter.Values, n)
		seen := false
		for i, d := range r.Devices {
			if d.Verdict == verdict {
				vals[i] = d.Duration.Seconds()
				seen = true
			}
		}
		if !seen {
			continue
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return nil, fmt.Errorf("lot: chart: %w", err)
		}
		bars.XMin = 1
		bars.Color = verdictColor(verdict)
		bars.LineStyle.Width = 0
		p.Add(bars)
		p.Legend.Add(verdict, bars)
	}
	meanLine, err := plotter.NewLine(plotter.XYs{{X: 0.5, Y: r.Time.Mean.Seconds()}, {X: float64(n) + 0.5, Y: r.Time.Mean.Seconds()}})
	if err != nil {
		return nil, fmt.Errorf("lot: chart: %w", err)
	}
	meanLine.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	meanLine.LineStyle.Color = color.Gray{Y: 0x55}
	p.Add(meanLine)
	p.Legend.Add(fmt.Sprintf("mean %.1f s", r.Time.Mean.Seconds()), meanLine)
	p.Legend.Top = true
	p.X.Min, p.X.Max = 0.5, float64(n)+0.5
	// Headroom above the tallest bar for the legend.
	p.Y.Max = r.Time.Max.Seconds() * 1.45
	return p, nil
}

// ChartSVG renders the time-per-board chart as SVG.
func (r *Report) ChartSVG() ([]byte, error) { return r.render("svg") }

// ChartPNG renders the time-per-board chart as PNG (for the PDF).
func (r *Report) ChartPNG() ([]byte, error) { return r.render("png") }

func (r *Report) render(format string) ([]byte, error) {
	p, err := r.chart()
	if err != nil {
		return nil, err
	}
	wt, err := p.WriterTo(chartW, chartH, format)
	if err != nil {
		return nil, fmt.Errorf("lot: chart %s: %w", format, err)
	}
	var b bytes.Buffer
	if _, err := wt.WriteTo(&b); err != nil {
		return nil, fmt.Errorf("lot: chart %s: %w", format, err)
	}
	return b.Bytes(), nil
}
