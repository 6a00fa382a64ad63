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

// lotFiles is a lot of n real boards (checks observed or computed).
func lotFiles(t testing.TB, n int) []evidence.File {
	t.Helper()
	return lotFilesOn(t, n, evidence.TargetBoard)
}

func lotFilesOn(t testing.TB, n int, target string) []evidence.File {
	t.Helper()
	b, err := evidencetest.NewStation(1).Bundle(evidencetest.Lot(evidencetest.LotOptions{N: n, Target: target}), evidencetest.BundleOptions{})
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

// A lot provisioned on the virtual board shows the requirements that rest
// on the board met only by a model: not satisfied by observation, reason
// "other", each saying "modelled: not proof for a shipped device"; the
// host-side requirement (CR 1.1, the operator) stays satisfied. A real
// board's lot whose boot log was modelled does not count the boot for
// CR 3.4 either.
func TestModelledIsNotProof(t *testing.T) {
	t.Parallel()
	type finding struct {
		Title  string `json:"title"`
		Target struct {
			Description string                         `json:"description"`
			Status      struct{ State, Reason string } `json:"status"`
		} `json:"target"`
	}
	var doc struct {
		AR struct {
			Results []struct {
				Observations []struct {
					Description string                         `json:"description"`
					Props       []struct{ Name, Value string } `json:"props"`
				} `json:"observations"`
				Findings []finding `json:"findings"`
			} `json:"results"`
		} `json:"assessment-results"`
	}
	findings := func(files []evidence.File) map[string]finding {
		t.Helper()
		b := export(t, files)
		if err := oscal.Validate(b); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		out := map[string]finding{}
		for _, f := range doc.AR.Results[0].Findings {
			out[strings.SplitN(f.Title, " — ", 2)[0]] = f
		}
		return out
	}

	got := findings(lotFilesOn(t, 3, evidence.TargetVirtual))
	for _, id := range []string{"CR 1.2", "CR 2.1", "CR 3.4", "CR 4.1"} {
		f := got[id]
		if f.Target.Status.State != "not-satisfied" || f.Target.Status.Reason != "other" ||
			!strings.Contains(f.Target.Description, "Not satisfied by observation") ||
			!strings.Contains(f.Target.Description, "modelled: not proof for a shipped device") {
			t.Errorf("virtual lot, %s: %+v", id, f.Target)
		}
	}
	if f := got["CR 1.1"]; f.Target.Status.State != "satisfied" {
		t.Errorf("virtual lot, CR 1.1 (host-side): %+v", f.Target)
	}
	obs := doc.AR.Results[0].Observations[0]
	props := map[string]string{}
	for _, p := range obs.Props {
		props[p.Name] = p.Value
	}
	if props["target"] != evidence.TargetVirtual || props["checks-modelled"] == "" || props["checks-observed"] != "" ||
		!strings.Contains(obs.Description, "modelled: not proof for a shipped device") {
		t.Errorf("virtual observation: %q %v", obs.Description, props)
	}

	files := lotFilesOn(t, 3, evidence.TargetBoard)
	r := *files[0].Record
	r.Checks = append([]evidence.Check(nil), r.Checks...)
	for i := range r.Checks {
		if r.Checks[i].Kind() == evidence.CheckBootLog {
			r.Checks[i].Established = evidence.Modelled
		}
	}
	files[0].Record = &r
	got = findings(files)
	if f := got["CR 3.4"]; f.Target.Status.State != "not-satisfied" || !strings.Contains(f.Target.Description, "boot-log: modelled: not proof for a shipped device") {
		t.Errorf("modelled boot on a board lot, CR 3.4: %+v", f.Target)
	}
	if f := got["CR 4.1"]; f.Target.Status.State != "satisfied" {
		t.Errorf("board lot, CR 4.1: %+v", f.Target)
	}
}

// CR 1.1 follows the evidence: a lot whose operator was taken as given
// (operator-auth not verified, as the station records it until it
// authenticates operators) does not satisfy it.
func TestOperatorNotAuthenticated(t *testing.T) {
	t.Parallel()
	files := lotFilesOn(t, 2, evidence.TargetBoard)
	for i := range files {
		r := *files[i].Record
		r.Checks = append([]evidence.Check(nil), r.Checks...)
		for j := range r.Checks {
			if r.Checks[j].Kind() == evidence.CheckOperator {
				r.Checks[j].Verified, r.Checks[j].Because = false, "the operator name was taken as given (--operator), not authenticated"
			}
		}
		files[i].Record = &r
	}
	var doc struct {
		AR struct {
			Results []struct {
				Findings []struct {
					Title  string `json:"title"`
					Target struct {
						Description string                         `json:"description"`
						Status      struct{ State, Reason string } `json:"status"`
					} `json:"target"`
				} `json:"findings"`
			} `json:"results"`
		} `json:"assessment-results"`
	}
	b := export(t, files)
	if err := oscal.Validate(b); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range doc.AR.Results[0].Findings {
		id := strings.SplitN(f.Title, " — ", 2)[0]
		switch id {
		case "CR 1.1":
			found = true
			if f.Target.Status.State != "not-satisfied" || !strings.Contains(f.Target.Description, "operator-auth") {
				t.Errorf("CR 1.1 with the operator taken as given: %+v", f.Target)
			}
		case "CR 4.1":
			if f.Target.Status.State != "satisfied" {
				t.Errorf("CR 4.1: %+v", f.Target)
			}
		}
	}
	if !found {
		t.Fatal("no CR 1.1 finding")
	}
}
