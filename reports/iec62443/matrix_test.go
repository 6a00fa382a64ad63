package iec62443_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"fuseline/reports/evidence"
	"fuseline/reports/evidence/evidencetest"
	"fuseline/reports/iec62443"
)

// TestMatrixMatchesSchema is what keeps the matrix from rotting: every
// evidence field it names must exist in the evidence schema (by reflection
// over the JSON tags) and every check kind must be one the record defines.
func TestMatrixMatchesSchema(t *testing.T) {
	t.Parallel()
	m := iec62443.Fuseline()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, r := range m.Requirements {
		t.Run(r.ID, func(t *testing.T) {
			t.Parallel()
			for _, f := range r.EvidenceFields {
				if !evidence.HasField(f) {
					t.Errorf("evidence field %q does not exist", f)
				}
			}
		})
	}
}

// TestValidateCatchesRot proves Validate can fail: a matrix pointing at a
// renamed field, an unknown check, a duplicate or a bad ID is rejected.
func TestValidateCatchesRot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(m *iec62443.Matrix)
		want   string
	}{
		{"renamed field", func(m *iec62443.Matrix) { m.Requirements[0].EvidenceFields[0] = "operator.login" }, `"operator.login"`},
		{"field in a digest", func(m *iec62443.Matrix) {
			m.Requirements[1].EvidenceFields = append(m.Requirements[1].EvidenceFields, "efuse.after.key_blocks.digest.bytes")
		}, "key_blocks.digest.bytes"},
		{"unknown check", func(m *iec62443.Matrix) { m.Requirements[5].Checks = append(m.Requirements[5].Checks, "vibes") }, `"vibes"`},
		{"duplicate", func(m *iec62443.Matrix) { m.Requirements = append(m.Requirements, m.Requirements[0]) }, "twice"},
		{"bad id", func(m *iec62443.Matrix) { m.Requirements[0].ID = "CR1.1" }, `"CR1.1"`},
		{"no spec", func(m *iec62443.Matrix) { m.Requirements[2].Specs = nil }, "no spec"},
		{"schema", func(m *iec62443.Matrix) { m.EvidenceSchema = "fuseline.evidence/v0" }, "evidence/v0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := iec62443.Fuseline()
			tc.change(&m)
			err := m.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %s", err, tc.want)
			}
		})
	}
	// Fuseline returns a fresh value each time: the edits above did not leak.
	if err := iec62443.Fuseline().Validate(); err != nil {
		t.Error(err)
	}
}

func TestMatrixCoversIssueRequirements(t *testing.T) {
	t.Parallel()
	m := iec62443.Fuseline()
	for _, id := range []string{"CR 1.1", "CR 1.2", "CR 2.1", "CR 2.8", "CR 2.9", "CR 3.4", "CR 4.1", "EDR 3.10"} {
		if _, ok := m.Requirement(id); !ok {
			t.Errorf("%s missing", id)
		}
	}
	if got := iec62443.ControlID("EDR 3.10"); got != "edr-3.10" {
		t.Errorf("ControlID = %q", got)
	}
}

func TestRender(t *testing.T) {
	t.Parallel()
	m := iec62443.Fuseline()
	var md, html, js bytes.Buffer
	if err := m.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteHTML(&html); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, r := range m.Requirements {
		for name, out := range map[string]string{"md": md.String(), "html": html.String(), "json": js.String()} {
			if !strings.Contains(out, r.ID) {
				t.Errorf("%s output lacks %s", name, r.ID)
			}
			if !strings.Contains(out, r.EvidenceFields[0]) {
				t.Errorf("%s output lacks %s's field %s", name, r.ID, r.EvidenceFields[0])
			}
		}
	}
	for name, out := range map[string]string{"md": md.String(), "html": html.String()} {
		if !strings.Contains(out, "not proof for a shipped device") {
			t.Errorf("%s output does not say what counts as proof", name)
		}
	}
	if !strings.HasPrefix(html.String(), "<!DOCTYPE html>") || strings.Contains(html.String(), "ZgotmplZ") {
		t.Error("html output is not a clean page")
	}
	var back iec62443.Matrix
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || !reflect.DeepEqual(back, m) {
		t.Errorf("json does not round-trip: %v", err)
	}
}

func TestMet(t *testing.T) {
	t.Parallel()
	m := iec62443.Fuseline()
	cr11, _ := m.Requirement("CR 1.1")
	cr34, _ := m.Requirement("CR 3.4")
	cr41, _ := m.Requirement("CR 4.1")
	onBoard := evidencetest.LotOptions{Target: evidence.TargetBoard}
	pass := evidencetest.Board(onBoard, 0)
	noProbe := evidencetest.Board(onBoard, 2) // PASS, SPI probe not verified
	fail := evidencetest.Board(onBoard, 3)
	virtualPass := evidencetest.Board(evidencetest.LotOptions{Target: evidence.TargetVirtual}, 0)
	v1Board, v1Virtual := asV1(pass), asV1(virtualPass)
	for _, tc := range []struct {
		name    string
		req     iec62443.Requirement
		rec     *evidence.Record
		ok      bool
		why     string
		byModel bool // MetByModel
	}{
		{"pass", cr34, pass, true, "", true},
		{"optional check not verified", cr34, noProbe, true, "", true},
		{"failed device", cr34, fail, false, "FAIL", false},
		{"check missing", cr41, dropChecks(pass, evidence.CheckKeyReadProtected), false, "no such check", false},
		{"check not verified", cr34, unverify(pass, "flash-md5:app@0x10000"), false, "not verified, because", false},
		// A boot a model printed proves nothing about a shipped device.
		{"modelled boot", cr34, establish(pass, evidence.CheckBootLog, evidence.Modelled), false,
			"boot-log: modelled: not proof for a shipped device", true},
		{"virtual board", cr34, virtualPass, false, "modelled: not proof for a shipped device", true},
		{"virtual board, host-side requirement", cr11, virtualPass, true, "", true},
		{"v1 record on a board target", cr34, v1Board, false, "not recorded (fuseline.evidence/v1)", true},
		{"v1 record on a virtual target", cr41, v1Virtual, false, "modelled: not proof for a shipped device", true},
		{"v1 record, host-side requirement", cr11, v1Board, true, "", true},
		// The station takes --operator as given: until it authenticates
		// the operator, CR 1.1 is not met, by a model or otherwise.
		{"operator taken as given", cr11, unverify(pass, evidence.CheckOperator), false, "operator-auth: not verified", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ok, why := tc.req.Met(tc.rec)
			if ok != tc.ok || !strings.Contains(why, tc.why) {
				t.Errorf("Met = %v, %q", ok, why)
			}
			if got := tc.req.MetByModel(tc.rec); got != tc.byModel {
				t.Errorf("MetByModel = %v, want %v", got, tc.byModel)
			}
		})
	}
}

// The boot log is one of CR 3.4's checks, so only an observed boot counts.
func TestCR34NeedsTheBoot(t *testing.T) {
	t.Parallel()
	cr34, _ := iec62443.Fuseline().Requirement("CR 3.4")
	if !slices.Contains(cr34.Checks, evidence.CheckBootLog) {
		t.Fatalf("CR 3.4 checks %v lack %s", cr34.Checks, evidence.CheckBootLog)
	}
}

func establish(r *evidence.Record, kind, how string) *evidence.Record {
	c := *r
	c.Checks = append([]evidence.Check(nil), r.Checks...)
	for i := range c.Checks {
		if c.Checks[i].Kind() == kind {
			c.Checks[i].Established = how
		}
	}
	return &c
}

// asV1 is r as a v1 station wrote it: no establishment.
func asV1(r *evidence.Record) *evidence.Record {
	c := *r
	c.Schema = evidence.SchemaV1
	c.Checks = append([]evidence.Check(nil), r.Checks...)
	for i := range c.Checks {
		c.Checks[i].Established = ""
	}
	return &c
}

func dropChecks(r *evidence.Record, kind string) *evidence.Record {
	c := *r
	c.Checks = nil
	for _, ck := range r.Checks {
		if ck.Kind() != kind {
			c.Checks = append(c.Checks, ck)
		}
	}
	return &c
}

func unverify(r *evidence.Record, name string) *evidence.Record {
	c := *r
	c.Checks = append([]evidence.Check(nil), r.Checks...)
	for i := range c.Checks {
		if c.Checks[i].Name == name {
			c.Checks[i].Verified, c.Checks[i].Because = false, "MD5 differs"
		}
	}
	return &c
}

// CR 1.1's text says what the station does: it records the operator's name
// as given and does not authenticate it, so the requirement is met only by
// evidence whose operator-auth check verified.
func TestCR11SaysWhatIsTrue(t *testing.T) {
	t.Parallel()
	cr11, _ := iec62443.Fuseline().Requirement("CR 1.1")
	for _, want := range []string{"as given", "does not yet authenticate", "not met on a device until the station authenticates"} {
		if !strings.Contains(cr11.HowMet, want) {
			t.Errorf("CR 1.1 how_met lacks %q: %s", want, cr11.HowMet)
		}
	}
	if strings.Contains(cr11.HowMet, "it has authenticated") {
		t.Errorf("CR 1.1 claims authentication: %s", cr11.HowMet)
	}
	if !slices.Contains(cr11.Checks, evidence.CheckOperator) {
		t.Errorf("CR 1.1 checks %v lack %s", cr11.Checks, evidence.CheckOperator)
	}
}
