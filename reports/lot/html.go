package lot

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"time"
)

var pageTmpl = template.Must(template.New("lot").Funcs(template.FuncMap{
	"pct":  pct,
	"secs": secs,
	"ts":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"lc": func(s string) string {
		return map[string]string{"PASS": "pass", "FAIL": "fail", "REFUSED": "refused"}[s]
	},
	"join": joinList,
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{{.R.Title}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:72em;color:#222}
h1{margin-bottom:.2em}.meta{color:#555;margin-top:0}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left}
th{background:#f0f0f0}td.num{text-align:right}.pass{color:#2e8b57}.fail{color:#c0392b}.refused{color:#e67e22}
.totals td:first-child{font-weight:600}.chart svg{max-width:100%;height:auto}.modelled{color:#8e44ad}
</style></head><body>
<h1>{{.R.Title}}</h1>
<p class="meta">Lots {{join .R.Lots}} · stations {{join .R.Stations}} · releases {{join .R.Releases}} · {{ts .R.First}} to {{ts .R.Last}}.
Built from {{.R.Totals.Records}} evidence records; signatures are not checked here (use <code>fuseline report verify</code>).</p>

<h2>Totals</h2>
<table class="totals">
<tr><td>Boards (records)</td><td class="num" id="records">{{.R.Totals.Records}}</td></tr>
<tr><td>Devices (distinct MACs)</td><td class="num" id="devices">{{.R.Totals.Devices}}</td></tr>
<tr><td class="pass">PASS</td><td class="num" id="pass">{{.R.Totals.Pass}}</td></tr>
<tr><td class="fail">FAIL</td><td class="num" id="fail">{{.R.Totals.Fail}}</td></tr>
<tr><td class="refused">REFUSED</td><td class="num" id="refused">{{.R.Totals.Refuse}}</td></tr>
<tr><td>Yield (devices whose last run passed)</td><td class="num" id="yield">{{pct .R.Totals.Yield}}</td></tr>
<tr><td>First-pass yield</td><td class="num">{{pct .R.Totals.FirstPassYield}}</td></tr>
<tr><td>Retested devices</td><td class="num">{{.R.Totals.Retested}}</td></tr>
<tr><td>Checks not verified on PASS boards</td><td class="num">{{.R.Totals.NotVerified}}</td></tr>
<tr><td>PASS boards with modelled checks (not proof for a shipped device)</td><td class="num" id="modelled">{{.R.Totals.Modelled}}</td></tr>
</table>
{{if .R.Totals.Modelled}}<p class="modelled" id="modelled-note">{{.R.Totals.Modelled}} PASS record(s) hold checks that a model answered
(Fuseline's virtual board or an emulator) or that do not say how they were established: those checks are modelled,
not observed on a board, and are not proof for a shipped device.</p>{{end}}

<h2>Failures by reason</h2>
{{if .R.Failures}}<table>
<thead><tr><th>Reason code</th><th>Verdict</th><th>Boards</th><th>Example</th><th>Devices</th></tr></thead>
<tbody>{{range .R.Failures}}
<tr><td><code>{{.Code}}</code></td><td class="{{lc .Verdict}}">{{.Verdict}}</td><td class="num">{{.Count}}</td><td>{{.Example}}</td><td>{{join .MACs}}</td></tr>{{end}}
</tbody></table>{{else}}<p>No failures.</p>{{end}}

<h2>Time per board</h2>
<table>
<tr><th>mean</th><th>median</th><th>90th percentile</th><th>min</th><th>max</th><th>mean of PASS</th><th>PASS boards per hour</th></tr>
<tr><td class="num">{{secs .R.Time.Mean}}</td><td class="num">{{secs .R.Time.Median}}</td><td class="num">{{secs .R.Time.P90}}</td>
<td class="num">{{secs .R.Time.Min}}</td><td class="num">{{secs .R.Time.Max}}</td><td class="num">{{secs .R.Time.MeanPass}}</td>
<td class="num">{{printf "%.1f" .R.Time.BoardsPerHour}}</td></tr>
</table>
<div class="chart">{{.Chart}}</div>

<h2>Devices</h2>
<p class="meta">Checks established: observed on the board, computed on the station, or modelled (a virtual board or emulator answered: not proof for a shipped device).</p>
<table>
<thead><tr><th>#</th><th>MAC</th><th>Chip</th><th>Verdict</th><th>Reason</th><th>Time</th><th>Not verified</th><th>Target</th><th>Checks established</th><th>Operator</th><th>Station</th><th>Start (UTC)</th></tr></thead>
<tbody>{{range .R.Devices}}
<tr id="{{.ID}}"><td class="num">{{.N}}</td><td><code>{{.MAC}}</code></td><td>{{.Chip}}</td><td class="{{lc .Verdict}}">{{.Verdict}}</td>
<td>{{if .Code}}<code>{{.Code}}</code> {{end}}{{.Reason}}</td><td class="num">{{secs .Duration}}</td><td class="num">{{.NotVerified}}</td>
<td>{{.Target}}</td><td class="established{{if .ModelledOnly}} modelled{{end}}">{{.EstablishedText}}</td>
<td>{{.Operator}}</td><td>{{.Station}}</td><td>{{ts .Start}}</td></tr>{{end}}
</tbody></table>
</body></html>
`))

// WriteHTML writes the report as one standalone HTML page with the chart
// inline as SVG.
func (r *Report) WriteHTML(w io.Writer) error {
	svg, err := r.ChartSVG()
	if err != nil {
		return err
	}
	// Drop the XML prolog so the SVG can sit inside HTML.
	if i := bytes.Index(svg, []byte("<svg")); i > 0 {
		svg = svg[i:]
	}
	data := struct {
		R     *Report
		Chart template.HTML
	}{r, template.HTML(svg)} // our own plotter output, not user text
	if err := pageTmpl.Execute(w, data); err != nil {
		return fmt.Errorf("lot: write html: %w", err)
	}
	return nil
}
