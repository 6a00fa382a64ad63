// Package oscal exports a lot's evidence as an OSCAL assessment-results
// document (OSCAL 1.1.3, via github.com/defenseunicorns/go-oscal), so an
// auditor's GRC tooling can read what Fuseline proved for each device
// against the IEC 62443-4-2 requirements of reports/iec62443 (design.md,
// "Layout": reports/, OSCAL export).
//
// The document holds one result for the lot: every requirement of the matrix
// as a reviewed control, one inventory item per device, one observation per
// evidence record (pointing at the evidence file by SHA-256 in back-matter),
// and one finding per requirement, satisfied when every PASS device shows it
// met (iec62443.Requirement.Met: by checks observed on a real board or
// computed on the host; what only a virtual board or emulator answered is
// "not satisfied by observation"). Each observation says how its record's
// checks were established. UUIDs are version 5, derived from the evidence,
// so the same evidence always exports the same bytes.
package oscal

import (
	"bytes"
	"cmp"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"fuseline/reports/evidence"
	"fuseline/reports/iec62443"

	types "github.com/defenseunicorns/go-oscal/src/types/oscal-1-1-3"
)

// Version is the OSCAL version of the documents this package writes.
const Version = types.Version

// NS is the namespace of Fuseline's own OSCAL property names.
const NS = "urn:fuseline:oscal"

// namespace is the UUID namespace of Fuseline's version 5 UUIDs.
func namespace() [16]byte {
	return [16]byte{0x6b, 0x1f, 0x3a, 0x52, 0x0e, 0x7c, 0x4d, 0x19, 0x9a, 0x41, 0x5f, 0x0c, 0x2b, 0x77, 0xd3, 0x10}
}

// Options configures an export. The zero value is usable.
type Options struct {
	Title string // "": "Fuseline assessment results — " + lot names
	// Matrix is the requirement matrix to assess against; nil: iec62443.Fuseline().
	Matrix *iec62443.Matrix
	// Tool names the producing software in the metadata; "": "fuseline".
	Tool string
}

// AssessmentResults builds the document for the evidence files of a lot.
func AssessmentResults(files []evidence.File, o Options) (*types.OscalCompleteSchema, error) {
	if len(files) == 0 {
		return nil, errors.New("oscal: no evidence files to export")
	}
	m := iec62443.Fuseline()
	if o.Matrix != nil {
		m = *o.Matrix
	}
	if o.Tool == "" {
		o.Tool = "fuseline"
	}
	files = slices.Clone(files)
	slices.SortStableFunc(files, func(a, b evidence.File) int {
		return cmp.Or(a.Record.Timing.Start.Compare(b.Record.Timing.Start), cmp.Compare(a.Path, b.Path))
	})

	// The document's identity: the SHA-256 of every evidence file.
	h := sha256.New()
	for _, f := range files {
		d := sha256.Sum256(f.Data)
		h.Write(d[:])
	}
	docKey := hex.EncodeToString(h.Sum(nil))
	id := func(kind, name string) string { return uuid5(docKey + "/" + kind + "/" + name) }

	lots, operators := map[string]bool{}, map[string]bool{}
	first, last := files[0].Record.Timing.Start, files[0].Record.Timing.End
	for _, f := range files {
		r := f.Record
		lots[cmp.Or(r.Lot, "(none)")] = true
		operators[r.Operator.ID] = true
		if r.Timing.Start.Before(first) {
			first = r.Timing.Start
		}
		if r.Timing.End.After(last) {
			last = r.Timing.End
		}
	}
	lotNames := strings.Join(slices.Sorted(maps.Keys(lots)), ", ")
	title := cmp.Or(o.Title, "Fuseline assessment results — "+lotNames)

	// Back-matter: the matrix (the plan this assessment follows) and every evidence file.
	mj, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("oscal: matrix: %w", err)
	}
	matrixRes := id("resource", "matrix")
	resources := []types.Resource{{
		UUID:        matrixRes,
		Title:       m.Standard + " requirement matrix (Fuseline)",
		Description: "The requirements assessed, how Fuseline meets each, and which evidence fields prove it. " + m.Note,
		Base64:      &types.Base64{Filename: "iec62443-matrix.json", MediaType: "application/json", Value: base64.StdEncoding.EncodeToString(mj)},
	}}
	evidenceRes := map[string]string{}
	for _, f := range files {
		u := id("resource", f.Path)
		evidenceRes[f.Path] = u
		d := sha256.Sum256(f.Data)
		resources = append(resources, types.Resource{
			UUID:        u,
			Title:       "Evidence " + f.Record.ID,
			Description: "Signed evidence record " + f.Path + " (" + f.Record.Schema + "); verify with fuseline report verify.",
			Rlinks: &[]types.ResourceLink{{
				Href: f.Path, MediaType: "application/json",
				Hashes: &[]types.Hash{{Algorithm: "SHA-256", Value: hex.EncodeToString(d[:])}},
			}},
		})
	}

	// Parties: the operators.
	var parties []types.Party
	var partyIDs []string
	for _, op := range slices.Sorted(maps.Keys(operators)) {
		u := id("party", op)
		partyIDs = append(partyIDs, u)
		parties = append(parties, types.Party{UUID: u, Type: "person", Name: op,
			Props: &[]types.Property{{Name: "operator-id", Ns: NS, Value: op}}})
	}

	// Inventory: one item per device.
	var items []types.InventoryItem
	deviceItem := map[string]string{}
	for _, f := range files {
		d := f.Record.Device
		if _, ok := deviceItem[d.MAC]; ok {
			continue
		}
		u := id("device", d.MAC)
		deviceItem[d.MAC] = u
		props := []types.Property{
			{Name: "asset-type", Value: "hardware"},
			{Name: "mac-address", Value: d.MAC},
			{Name: "model", Value: d.Chip},
		}
		if d.Revision != "" {
			props = append(props, types.Property{Name: "version", Value: d.Revision})
		}
		if d.SerialNo != "" {
			props = append(props, types.Property{Name: "serial-number", Value: d.SerialNo})
		}
		items = append(items, types.InventoryItem{UUID: u, Description: d.Chip + " " + d.MAC, Props: &props})
	}

	// Observations: one per evidence record.
	var obs []types.Observation
	obsOf := map[string]string{} // evidence path -> observation uuid
	for _, f := range files {
		r := f.Record
		u := id("observation", f.Path)
		obsOf[f.Path] = u
		verified, notv := 0, 0
		how := map[string]int{}
		for _, c := range r.Checks {
			if c.Verified {
				verified++
			} else {
				notv++
			}
			how[r.Establishment(c)]++
		}
		desc := fmt.Sprintf("%s on %s %s at %s (target %s) by %s: %d checks verified, %d not verified; %s.",
			r.Result.Verdict, r.Device.Chip, r.Device.MAC, r.Station.ID, cmp.Or(r.Station.Target, "unnamed"), r.Operator.ID, verified, notv, establishedText(how))
		if r.Result.Verdict != evidence.PASS {
			desc += " Reason: " + r.Result.Reason
		}
		props := []types.Property{{Name: "verdict", Ns: NS, Value: r.Result.Verdict}}
		if r.Result.Code != "" {
			props = append(props, types.Property{Name: "reason-code", Ns: NS, Value: r.Result.Code})
		}
		props = append(props, types.Property{Name: "evidence-id", Ns: NS, Value: r.ID})
		if r.Station.Target != "" {
			props = append(props, types.Property{Name: "target", Ns: NS, Value: r.Station.Target})
		}
		for _, k := range establishments {
			if how[k] > 0 {
				props = append(props, types.Property{Name: "checks-" + k, Ns: NS, Value: fmt.Sprint(how[k])})
			}
		}
		obs = append(obs, types.Observation{
			UUID:        u,
			Title:       "Provisioning evidence " + r.ID,
			Description: desc,
			Methods:     []string{"TEST"},
			Types:       &[]string{"finding"},
			Collected:   r.Timing.End.UTC(),
			Props:       &props,
			Subjects:    &[]types.SubjectReference{{SubjectUuid: deviceItem[r.Device.MAC], Type: "inventory-item", Title: r.Device.MAC}},
			RelevantEvidence: &[]types.RelevantEvidence{{
				Href:        "#" + evidenceRes[f.Path],
				Description: "Evidence file " + f.Path,
			}},
		})
	}

	// Findings: one per requirement.
	var findings []types.Finding
	var selected []types.AssessedControlsSelectControlById
	for _, req := range m.Requirements {
		cid := iec62443.ControlID(req.ID)
		selected = append(selected, types.AssessedControlsSelectControlById{ControlId: cid})
		state, reason, why := satisfied(req, files)
		var related []types.RelatedObservation
		for _, f := range files {
			related = append(related, types.RelatedObservation{ObservationUuid: obsOf[f.Path]})
		}
		findings = append(findings, types.Finding{
			UUID:        id("finding", req.ID),
			Title:       req.ID + " — " + req.Topic,
			Description: req.HowMet,
			Props:       &[]types.Property{{Name: "requirement", Ns: NS, Value: req.ID}},
			Target: types.FindingTarget{
				Type:        "objective-id",
				TargetId:    cid + "_obj",
				Title:       req.ID,
				Description: why,
				Status:      types.ObjectiveStatus{State: state, Reason: reason},
			},
			RelatedObservations: &related,
		})
	}

	start, end := first.UTC(), last.UTC()
	doc := &types.OscalCompleteSchema{AssessmentResults: &types.AssessmentResults{
		UUID: id("assessment-results", lotNames),
		Metadata: types.Metadata{
			Title:              title,
			LastModified:       end,
			Version:            "1",
			OscalVersion:       Version,
			Props:              &[]types.Property{{Name: "tool", Ns: NS, Value: o.Tool}, {Name: "evidence-schema", Ns: NS, Value: evidence.Schema}},
			Roles:              &[]types.Role{{ID: "operator", Title: "Line operator"}},
			Parties:            &parties,
			ResponsibleParties: &[]types.ResponsibleParty{{RoleId: "operator", PartyUuids: partyIDs}},
		},
		ImportAp: types.ImportAp{
			Href:    "#" + matrixRes,
			Remarks: "There is no separate assessment plan: the plan is Fuseline's " + m.Standard + " requirement matrix, attached in back-matter.",
		},
		Results: []types.Result{{
			UUID:        id("result", lotNames),
			Title:       "End-of-line provisioning of " + lotNames,
			Description: fmt.Sprintf("%d evidence records of %d devices, %s to %s, assessed against %s.", len(files), len(deviceItem), start.Format(time.RFC3339), end.Format(time.RFC3339), m.Standard),
			Start:       start,
			End:         &end,
			ReviewedControls: types.ReviewedControls{
				Description:       "The " + m.Standard + " requirements Fuseline supports.",
				ControlSelections: []types.AssessedControls{{IncludeControls: &selected}},
			},
			LocalDefinitions: &types.LocalDefinitions{InventoryItems: &items},
			Observations:     &obs,
			Findings:         &findings,
		}},
		BackMatter: &types.BackMatter{Resources: &resources},
	}}
	return doc, nil
}

// establishments are the ways a check is established, in the order the
// document lists them.
var establishments = []string{evidence.Observed, evidence.Computed, evidence.Modelled, evidence.Unrecorded}

// establishedText is "3 observed on the board, 9 computed on the host".
func establishedText(how map[string]int) string {
	var parts []string
	for _, k := range establishments {
		if how[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", how[k], evidence.EstablishedText(k)))
		}
	}
	if len(parts) == 0 {
		return "no checks"
	}
	return "checks " + strings.Join(parts, ", ")
}

// satisfied assesses a requirement over a lot: met when at least one device
// passed and every PASS device shows it met by checks observed on the board
// or computed on the host. A requirement that modelled checks alone would
// show met is not satisfied, with reason "other" (not failed: not proven
// for a shipped device). Failed and refused devices are not shipped, so
// they do not count against it, but they are reported.
func satisfied(req iec62443.Requirement, files []evidence.File) (state, reason, why string) {
	pass, notPassed, byModel := 0, 0, 0
	var missing []string
	for _, f := range files {
		r := f.Record
		if r.Result.Verdict != evidence.PASS {
			notPassed++
			continue
		}
		pass++
		if ok, w := req.Met(r); !ok {
			missing = append(missing, r.Device.MAC+" ("+w+")")
			if req.MetByModel(r) {
				byModel++
			}
		}
	}
	switch {
	case pass == 0:
		return "not-satisfied", "fail", "No device in the lot passed, so no shipped device shows this requirement met."
	case len(missing) > 0 && byModel == len(missing):
		return "not-satisfied", "other", fmt.Sprintf("Not satisfied by observation: %d of %d PASS devices show it met only by checks a model answered "+
			"(virtual board or emulator) or that do not say how they were established, which are not proof for a shipped device: %s.",
			len(missing), pass, strings.Join(missing, "; "))
	case len(missing) > 0:
		return "not-satisfied", "fail", fmt.Sprintf("%d of %d PASS devices do not show it met: %s.", len(missing), pass, strings.Join(missing, "; "))
	}
	why = fmt.Sprintf("Met on all %d PASS devices", pass)
	if len(req.Checks) > 0 {
		why += " (checks " + strings.Join(req.Checks, ", ") + " verified on each, observed on the board or computed on the host)"
	}
	why += "."
	if notPassed > 0 {
		why += fmt.Sprintf(" %d devices failed or were refused and are not shipped.", notPassed)
	}
	return "satisfied", "pass", why
}

// Marshal writes the document as indented JSON.
func Marshal(doc *types.OscalCompleteSchema) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("oscal: marshal: %w", err)
	}
	return b.Bytes(), nil
}

// uuid5 is an RFC 4122 version 5 UUID of name in Fuseline's namespace.
func uuid5(name string) string {
	h := sha1.New()
	ns := namespace()
	h.Write(ns[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	x := hex.EncodeToString(u[:])
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
}
