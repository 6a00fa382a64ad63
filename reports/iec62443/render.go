package iec62443

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
)

// WriteJSON writes the matrix as indented JSON.
func (m Matrix) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return fmt.Errorf("iec62443: write json: %w", err)
	}
	return nil
}

// WriteMarkdown writes the matrix as Markdown: a summary table, then one
// section per requirement.
func (m Matrix) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s requirement matrix — Fuseline\n\n", m.Standard)
	fmt.Fprintf(&b, "Evidence schema: `%s`. %s\n\n", m.EvidenceSchema, m.Note)
	if m.Counting != "" {
		fmt.Fprintf(&b, "**What counts:** %s\n\n", m.Counting)
	}
	b.WriteString("| Requirement | Topic (our wording) | Checks that must verify | Specs |\n|---|---|---|---|\n")
	for _, r := range m.Requirements {
		fmt.Fprintf(&b, "| %s | %s | %s | %d |\n", r.ID, mdCell(r.Topic), mdCell(codeList(r.Checks)), len(r.Specs))
	}
	for _, r := range m.Requirements {
		fmt.Fprintf(&b, "\n## %s — %s\n\n%s\n\n", r.ID, r.Topic, r.HowMet)
		fmt.Fprintf(&b, "- **Evidence fields:** %s\n", codeList(r.EvidenceFields))
		fmt.Fprintf(&b, "- **Checks that must verify:** %s\n", codeList(r.Checks))
		if len(r.Artifacts) > 0 {
			fmt.Fprintf(&b, "- **Other evidence:** %s\n", strings.Join(r.Artifacts, "; "))
		}
		b.WriteString("- **Tested by:**\n")
		for _, s := range r.Specs {
			fmt.Fprintf(&b, "  - %s\n", s)
		}
		if r.Limits != "" {
			fmt.Fprintf(&b, "- **Left to the integrator:** %s\n", r.Limits)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func codeList(s []string) string {
	if len(s) == 0 {
		return "—"
	}
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = "`" + v + "`"
	}
	return strings.Join(out, ", ")
}

func mdCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

var htmlTmpl = template.Must(template.New("matrix").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{{.Standard}} requirement matrix — Fuseline</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #bbb;padding:.4em;vertical-align:top;text-align:left}
th{background:#eee}code{font-size:.9em}ul{margin:.2em 0;padding-left:1.2em}.note{color:#555}
</style></head><body>
<h1>{{.Standard}} requirement matrix — Fuseline</h1>
<p class="note">Evidence schema <code>{{.EvidenceSchema}}</code>. {{.Note}}</p>
{{if .Counting}}<p class="counting"><b>What counts:</b> {{.Counting}}</p>{{end}}
<table>
<thead><tr><th>Requirement</th><th>How Fuseline meets it</th><th>Evidence fields</th><th>Checks that must verify</th><th>Tested by</th></tr></thead>
<tbody>
{{- range .Requirements}}
<tr id="{{.ID}}"><td><b>{{.ID}}</b><br>{{.Topic}}</td>
<td>{{.HowMet}}{{if .Artifacts}}<p>Other evidence: {{range $i, $a := .Artifacts}}{{if $i}}; {{end}}{{$a}}{{end}}</p>{{end}}{{if .Limits}}<p class="note">Left to the integrator: {{.Limits}}</p>{{end}}</td>
<td><ul>{{range .EvidenceFields}}<li><code>{{.}}</code></li>{{end}}</ul></td>
<td>{{if .Checks}}<ul>{{range .Checks}}<li><code>{{.}}</code></li>{{end}}</ul>{{else}}—{{end}}</td>
<td><ul>{{range .Specs}}<li>{{.}}</li>{{end}}</ul></td></tr>
{{- end}}
</tbody></table>
</body></html>
`))

// WriteHTML writes the matrix as a standalone HTML page.
func (m Matrix) WriteHTML(w io.Writer) error {
	if err := htmlTmpl.Execute(w, m); err != nil {
		return fmt.Errorf("iec62443: write html: %w", err)
	}
	return nil
}
