package oscal_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"fuseline/reports/evidence"
	"fuseline/reports/evidence/evidencetest"
	"fuseline/reports/oscal"
)

func lotFiles(t testing.TB, n int) []evidence.File {
	t.Helper()
	b, err := evidencetest.NewStation(1).Bundle(evidencetest.Lot(evidencetest.LotOptions{N: n}), evidencetest.BundleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var files []evidence.File
	for _, p := range b.EvidenceFiles() {
		r, err := evidence.Parse(b[p])
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, evidence.File{Path: p, Data: b[p], Record: r})
	}
	return files
}

func export(t *testing.T, files []evidence.File) []byte {
	t.Helper()
	doc, err := oscal.AssessmentResults(files, oscal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := oscal.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAssessmentResultsValidates(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 3, 12} {
		files := lotFiles(t, n)
		b := export(t, files)
		if err := oscal.Validate(b); err != nil {
			t.Fatalf("lot of %d: %v", n, err)
		}
		// Same evidence, same bytes (UUIDs are derived, not random).
		if again := export(t, files); !bytes.Equal(again, b) {
			t.Errorf("lot of %d: export is not deterministic", n)
		}
	}
}

func TestAssessmentResultsContent(t *testing.T) {
	t.Parallel()
	files := lotFiles(t, 10)
	var doc struct {
		AR struct {
			Metadata struct {
				OscalVersion string `json:"oscal-version"`
			} `json:"metadata"`
			Results []struct {
				Reviewed struct {
					Sel []struct {
						Include []struct {
							ID string `json:"control-id"`
						} `json:"include-controls"`
					} `json:"control-selections"`
				} `json:"reviewed-controls"`
				Observations []struct {
					Props []struct{ Name, Value string } `json:"props"`
				} `json:"observations"`
				Findings []struct {
					Target struct {
						Status struct{ State string } `json:"status"`
					} `json:"target"`
					Title string `json:"title"`
				} `json:"findings"`
				Local struct {
					Items []json.RawMessage `json:"inventory-items"`
				} `json:"local-definitions"`
			} `json:"results"`
			BackMatter struct {
				Resources []struct {
					Rlinks []struct {
						Href   string                   `json:"href"`
						Hashes []struct{ Value string } `json:"hashes"`
					} `json:"rlinks"`
				} `json:"resources"`
			} `json:"back-matter"`
		} `json:"assessment-results"`
	}
	if err := json.Unmarshal(export(t, files), &doc); err != nil {
		t.Fatal(err)
	}
	ar := doc.AR
	if ar.Metadata.OscalVersion != "1.1.3" || len(ar.Results) != 1 {
		t.Fatalf("metadata %+v, %d results", ar.Metadata, len(ar.Results))
	}
	res := ar.Results[0]
	var ids []string
	for _, s := range res.Reviewed.Sel {
		for _, c := range s.Include {
			ids = append(ids, c.ID)
		}
	}
	if got := strings.Join(ids, " "); got != "cr-1.1 cr-1.2 cr-2.1 cr-2.8 cr-2.9 cr-3.4 cr-4.1 edr-3.10" {
		t.Errorf("controls %s", got)
	}
	if len(res.Observations) != 10 || len(res.Local.Items) != 10 || len(res.Findings) != 8 {
		t.Errorf("%d observations, %d devices, %d findings", len(res.Observations), len(res.Local.Items), len(res.Findings))
	}
	for _, f := range res.Findings {
		if f.Target.Status.State != "satisfied" {
			t.Errorf("%s: %s", f.Title, f.Target.Status.State)
		}
	}
	hashes := map[string]string{}
	for _, r := range ar.BackMatter.Resources {
		for _, l := range r.Rlinks {
			hashes[l.Href] = l.Hashes[0].Value
		}
	}
	for _, f := range files {
		if hashes[f.Path] != evidence.SHA256(f.Data).String() {
			t.Errorf("%s: back-matter hash %q", f.Path, hashes[f.Path])
		}
	}
}

// TestFindingNotSatisfied: a PASS device without a required check makes
// the requirement not satisfied, and the document still validates.
func TestFindingNotSatisfied(t *testing.T) {
	t.Parallel()
	files := lotFiles(t, 3)
	r := *files[0].Record
	r.Checks = nil
	for _, c := range files[0].Record.Checks {
		if c.Kind() != evidence.CheckKeyReadProtected {
			r.Checks = append(r.Checks, c)
		}
	}
	files[0].Record = &r
	b := export(t, files)
	if err := oscal.Validate(b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"state": "not-satisfied"`)) || !bytes.Contains(b, []byte("key-read-protected: no such check recorded")) {
		t.Error("CR 4.1 not reported as not satisfied")
	}
}

// TestValidateRejects proves Validate can fail, naming where.
func TestValidateRejects(t *testing.T) {
	t.Parallel()
	good := export(t, lotFiles(t, 2))
	for _, tc := range []struct{ name, from, to string }{
		{"bad uuid", `"uuid": "`, `"uuid": "x`},
		{"bad state", `"state": "satisfied"`, `"state": "mostly"`},
		{"method with spaces", `"TEST"`, `" TEST "`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bad := bytes.Replace(good, []byte(tc.from), []byte(tc.to), 1)
			if bytes.Equal(bad, good) {
				t.Fatalf("edit %q did not apply", tc.from)
			}
			err := oscal.Validate(bad)
			if _, ok := errors.AsType[*oscal.ValidationError](err); !ok {
				t.Fatalf("error %v, want *ValidationError", err)
			}
			if !strings.Contains(err.Error(), "/assessment-results") {
				t.Errorf("error %q names no location", err)
			}
		})
	}
	if err := oscal.Validate([]byte(`{"nothing": 1}`)); err == nil {
		t.Error("a non-OSCAL document validated")
	}
	if _, err := oscal.AssessmentResults(nil, oscal.Options{}); err == nil {
		t.Error("an empty lot exported")
	}
}
