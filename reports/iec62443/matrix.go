// Package iec62443 is Fuseline's requirement matrix for IEC 62443-4-2: for
// each requirement Fuseline helps a product meet, how it is met, which fields
// of the evidence record (reports/evidence, schema fuseline.evidence/v2)
// prove it for a device, which evidence checks must have verified, and which
// specs test it (design.md, "Who uses it": the auditor's control-to-
// requirement matrix).
//
// A check counts toward a requirement only when it was observed on a real
// board or computed on the host (evidence.Observed, evidence.Computed). A
// check a model answered (the virtual board, QEMU: evidence.Modelled) is
// never proof for a shipped device, and neither is a board-side check of a
// v1 record, which did not say how it was established (CountingRule).
//
// The standard's text is copyrighted: the matrix cites requirement IDs only,
// and every description here is Fuseline's own wording. Validate ties the
// matrix to the evidence schema, so a renamed field fails the tests instead
// of leaving the matrix pointing at nothing.
package iec62443

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"fuseline/reports/evidence"
)

// Standard names the standard the matrix maps to.
const Standard = "IEC 62443-4-2"

// Requirement is one row of the matrix.
type Requirement struct {
	ID    string `json:"id"`    // requirement ID as the standard numbers it ("CR 1.1", "EDR 3.10")
	Topic string `json:"topic"` // our short label
	// HowMet says, in our words, what Fuseline does toward the requirement.
	HowMet string `json:"how_met"`
	// EvidenceFields are paths in the evidence record (evidence.HasField) that
	// show it was done for a device.
	EvidenceFields []string `json:"evidence_fields"`
	// Checks are the evidence check kinds that must have verified on a
	// device for the requirement to count as met there.
	Checks []string `json:"checks"`
	// Artifacts is evidence outside the record (signature, proof, log).
	Artifacts []string `json:"artifacts"`
	// Specs name the specs that test it by their Ginkgo full text (the
	// containers' and the It's texts, as junit-specs.xml names them); the
	// specs suite fails when one is not a spec (specs/matrix_test.go).
	Specs []string `json:"specs"`
	// Limits says what the product integrator must still do.
	Limits string `json:"limits"`
}

// Matrix is the whole table.
type Matrix struct {
	Standard       string `json:"standard"`
	EvidenceSchema string `json:"evidence_schema"`
	Note           string `json:"note"`
	// Counting says which checks count as proof (CountingRule).
	Counting     string        `json:"counting"`
	Requirements []Requirement `json:"requirements"`
}

// CountingRule is how Met counts a check, as the matrix states it.
const CountingRule = "A check counts toward a requirement only when it verified and was observed on a real board " +
	"(its serial answers, its UART, the fixture's SPI probe) or computed on the station. A check answered by a model " +
	"(Fuseline's virtual board or QEMU: \"modelled\") is not proof for a shipped device, nor is a board-side check of a " +
	evidence.SchemaV1 + " record, which did not record how it was established."

// Fuseline returns the matrix for this version of Fuseline. Each call
// returns a fresh value.
func Fuseline() Matrix {
	return Matrix{
		Standard:       Standard,
		EvidenceSchema: evidence.Schema,
		Counting:       CountingRule,
		Note: "Requirement IDs only; descriptions are Fuseline's own wording, not the standard's text. " +
			"Component-level support that a product built with Fuseline inherits; the product's own security " +
			"level assessment remains the integrator's.",
		Requirements: []Requirement{
			{
				ID:    "CR 1.1",
				Topic: "who operated the station",
				HowMet: "The station writes the operator's name, as given to it (--operator), into every evidence " +
					"record and every audit-log entry of the run, so each irreversible action names who ran it. " +
					"It does not yet authenticate operators: the operator-auth check is recorded as not verified, " +
					"and this requirement is not met on a device until the station authenticates its operator.",
				EvidenceFields: []string{"operator.id", "operator.name", "station.id", "timing.start", "steps.start"},
				Checks:         []string{evidence.CheckOperator},
				Artifacts:      []string{"audit-log entries with the operator ID", "evidence signature"},
				Specs: []string{
					"the records of a provisioned ESP32-S3 names the operator in the evidence and in every audit record of the run",
				},
				Limits: "Until the station authenticates operators against the plant's identity system (accounts, passwords " +
					"or badges and their life cycle), the name recorded is the one typed at the station.",
			},
			{
				ID:    "CR 1.2",
				Topic: "device and station identity",
				HowMet: "Each device is identified by the factory MAC and chip revision the ROM reports, and is " +
					"bound to the key digests burned into its eFuses; the station is identified by its Ed25519 " +
					"key, which signs its audit checkpoints and each evidence record (a record it could not sign " +
					"is left without a signature, which report verify refuses).",
				EvidenceFields: []string{"device.mac", "device.chip", "device.revision", "device.serial_no",
					"station.id", "station.key_name", "efuse.after.key_blocks.block", "efuse.after.key_blocks.digest"},
				Checks:    []string{evidence.CheckEfuseReadback},
				Artifacts: []string{"evidence signature (station Ed25519 key)", "signed audit checkpoint"},
				Specs: []string{
					"the records of a provisioned ESP32-S3 records the factory MAC the board's eFuses hold",
					"the records of a provisioned ESP32-S3 offline, an auditor's check refuses evidence signed by another station",
				},
				Limits: "Device identity certificates (for example for a cloud service) are not issued by Fuseline.",
			},
			{
				ID:    "CR 2.1",
				Topic: "only authorised actions",
				HowMet: "A board receives only the burns and writes of the plan derived from a recipe pinned by its " +
					"hash; a board whose state conflicts with the recipe is refused, never altered. At lock, " +
					"the recipe's lockdown (secure download mode or download disabled, JTAG disabled) leaves the " +
					"device without the debug and download paths that would bypass its own authorisation; the " +
					"evidence records the fields as burned.",
				EvidenceFields: []string{"recipe.name", "recipe.sha256", "result.verdict", "result.code", "result.reason",
					"efuse.after.fields.ENABLE_SECURITY_DOWNLOAD", "efuse.after.fields.DIS_PAD_JTAG"},
				Checks:    []string{evidence.CheckLockdown},
				Artifacts: []string{"recipe file matching recipe.sha256", "dry-run plan"},
				Specs: []string{
					"refused before any burn refuses a board that already holds a foreign digest, and burns nothing",
					"a blank board ESP32-S3, host-encrypted end of line leaves the eFuses as the recipe says, field by field",
				},
				Limits: "Authorisation inside the product firmware (users, roles) is the product's.",
			},
			{
				ID:    "CR 2.8",
				Topic: "events worth auditing are recorded",
				HowMet: "Every step of a run is recorded in the evidence with start, end, duration, result and the " +
					"error or the reason for a skip, and every step that changes the board (eFuse burns, flash and " +
					"sub-device writes) is journalled before and after it runs; checks that could not be done are " +
					"recorded as not verified with the reason; the run's start, its burns and writes and its result " +
					"(with the evidence file's hash) are entries of the station's audit log.",
				EvidenceFields: []string{"steps.name", "steps.start", "steps.end", "steps.duration", "steps.result",
					"steps.error", "checks.name", "checks.verified", "checks.because", "operator.id", "timing.start", "timing.end"},
				Artifacts: []string{"audit-log inclusion proof", "signed audit checkpoint"},
				Specs: []string{
					"the records of a provisioned ESP32-S3 records every step with its timing and result",
					"the records of a provisioned ESP32-S3 offline, an auditor's check catches a tampered evidence file",
				},
				Limits: "Which product-level events to audit in the field is the product's.",
			},
			{
				ID:    "CR 2.9",
				Topic: "room for the audit trail",
				HowMet: "The station's audit log is an append-only Merkle tree on the station's disk with signed " +
					"checkpoints, forwarded over syslog/TLS so the plant's SIEM keeps the long-term copy; a run " +
					"stops before it burns or writes anything when the log cannot take its start record, and no " +
					"eFuse is burned before the log has durably taken the intent to burn it, so no board is " +
					"changed without its trail.",
				EvidenceFields: []string{"steps.name", "steps.result", "station.id"},
				Artifacts:      []string{"audit log and its checkpoints", "SIEM copy"},
				Specs: []string{
					"the records of a provisioned ESP32-S3 holds the run in the audit log, pinned by a checkpoint the station signed",
					"the records of a provisioned ESP32-S3 offline, an auditor's check names a board whose evidence was removed",
				},
				Limits: "Sizing the station disk and SIEM retention is the plant's.",
			},
			{
				ID:    "CR 3.4",
				Topic: "integrity of firmware and records",
				HowMet: "Before any board is touched every Secure Boot v2 signature is checked, and for a signed " +
					"release its manifest signature and every image hash (an ESP-IDF build directory has no " +
					"manifest: those checks are recorded as not verified); after writing, flash MD5 is compared " +
					"with the expected ciphertext and the decrypted images are re-verified unless the recipe " +
					"turns that off (then recorded as not verified); Secure Boot is enabled so the device itself " +
					"refuses unsigned code; evidence is signed and logged so changes to it are detectable.",
				EvidenceFields: []string{"release.manifest_sha256", "images.plaintext_sha256", "images.written_sha256",
					"images.signature_key_digests", "efuse.after.fields.SECURE_BOOT_EN", "checks.verified"},
				Checks: []string{evidence.CheckManifestSignature, evidence.CheckImageHash, evidence.CheckSecureBoot,
					evidence.CheckFlashMD5, evidence.CheckDecryptedSignature, evidence.CheckBootLog},
				Artifacts: []string{"evidence signature", "audit-log inclusion proof", "release images (hash-checked by report verify)"},
				Specs: []string{
					"refused before any burn a release the recipe does not accept a tampered image",
					"a blank board ESP32-S3, host-encrypted end of line leaves ciphertext in flash that decrypts to the release",
					"a blank board ESP32-S3, host-encrypted end of line wrote evidence that parses and has every verification",
					"the records of a provisioned ESP32-S3 offline, an auditor's check catches a wrong image hash",
				},
				Limits: "Protecting the release signing key (HSM, who may sign) is the product owner's.",
			},
			{
				ID:    "CR 4.1",
				Topic: "confidentiality of firmware and keys",
				HowMet: "Flash encryption with a per-device key made from crypto/rand on the station, burned " +
					"read-protected and never written to logs, reports or errors; records carry only the key " +
					"block's SHA-256. Until the run passes the key is kept, sealed with the station's sealing " +
					"key, in the journal so an interrupted run can resume; on a pass the station removes it and " +
					"clears it from memory (after sealing it to the recipe's age recipient when the recipe asks " +
					"for escrow).",
				EvidenceFields: []string{"images.encrypted", "images.write_mode", "efuse.after.key_blocks.purpose",
					"efuse.after.key_blocks.read_protected", "efuse.after.key_blocks.digest",
					"efuse.after.fields.SPI_BOOT_CRYPT_CNT", "efuse.after.fields.FLASH_CRYPT_CNT"},
				Checks:    []string{evidence.CheckKeyReadProtected, evidence.CheckFlashMD5},
				Artifacts: []string{"evidence record (key digests only)"},
				Specs: []string{
					"a blank board ESP32-S3, host-encrypted end of line leaves the eFuses as the recipe says, field by field",
					"a blank board ESP32-S3, host-encrypted end of line wrote evidence that parses and has every verification",
				},
				Limits: "Confidentiality of data the product handles at run time is the product's.",
			},
			{
				ID:    "EDR 3.10",
				Topic: "secure firmware updates",
				HowMet: "The device accepts only images signed by a Secure Boot v2 key whose digest was burned, " +
					"and refuses a secure_version below its eFuse floor; the station raises that floor to the " +
					"recipe's anti-rollback floor (a release with an app below it is refused at intake, a board " +
					"already above the release is refused) and leaves SECURE_VERSION writable so the counter can " +
					"rise with later updates.",
				EvidenceFields: []string{"release.version", "release.secure_version", "efuse.after.fields.SECURE_VERSION",
					"images.signature_key_digests", "efuse.after.key_blocks.purpose"},
				Checks: []string{evidence.CheckSecureVersion, evidence.CheckSecureBoot},
				Specs: []string{
					"refused before any burn a release the recipe does not accept secure_version below the floor",
					"refused before any burn a release the recipe does not accept an image signed by a key not in the recipe",
					"a blank board ESP32-S3, host-encrypted end of line leaves the eFuses as the recipe says, field by field",
				},
				Limits: "The update channel itself (OTA server, transport security) is the product's.",
			},
		},
	}
}

// ControlID is the OSCAL control-id token for a requirement ID:
// "CR 1.1" → "cr-1.1".
func ControlID(id string) string {
	return strings.ToLower(strings.ReplaceAll(id, " ", "-"))
}

// Requirement returns the requirement with the given ID.
func (m Matrix) Requirement(id string) (Requirement, bool) {
	i := slices.IndexFunc(m.Requirements, func(r Requirement) bool { return r.ID == id })
	if i < 0 {
		return Requirement{}, false
	}
	return m.Requirements[i], true
}

var idPattern = regexp.MustCompile(`^(CR|EDR|NDR|HDR|SAR) [1-7]\.[0-9]+$`)

// Validate checks the matrix against the evidence schema: every evidence
// field exists, every check kind is known, IDs are well-formed and unique,
// and every row says how it is met and what tests it.
func (m Matrix) Validate() error {
	var errs []error
	if m.EvidenceSchema != evidence.Schema {
		errs = append(errs, fmt.Errorf("iec62443: matrix is for %s, the evidence schema is %s", m.EvidenceSchema, evidence.Schema))
	}
	seen := map[string]bool{}
	for _, r := range m.Requirements {
		if !idPattern.MatchString(r.ID) {
			errs = append(errs, fmt.Errorf("iec62443: %q is not a requirement ID", r.ID))
		}
		if seen[r.ID] {
			errs = append(errs, fmt.Errorf("iec62443: %s listed twice", r.ID))
		}
		seen[r.ID] = true
		if strings.TrimSpace(r.HowMet) == "" || strings.TrimSpace(r.Topic) == "" {
			errs = append(errs, fmt.Errorf("iec62443: %s: topic and how_met are required", r.ID))
		}
		if len(r.EvidenceFields) == 0 {
			errs = append(errs, fmt.Errorf("iec62443: %s names no evidence field", r.ID))
		}
		for _, f := range r.EvidenceFields {
			if !evidence.HasField(f) {
				errs = append(errs, fmt.Errorf("iec62443: %s: evidence field %q is not in %s", r.ID, f, evidence.Schema))
			}
		}
		for _, c := range r.Checks {
			if !slices.Contains(evidence.CheckKinds(), c) {
				errs = append(errs, fmt.Errorf("iec62443: %s: check kind %q is not one of evidence.CheckKinds", r.ID, c))
			}
		}
		if len(r.Specs) == 0 {
			errs = append(errs, fmt.Errorf("iec62443: %s names no spec", r.ID))
		}
	}
	return errors.Join(errs...)
}

// Met reports whether rec shows the requirement met on that device: the
// device passed and every check kind the requirement names was recorded,
// verified, and observed on the board or computed on the host (a modelled
// check, or a board-side check of a v1 record, is no proof for a shipped
// device: CountingRule). why says what is missing when not.
func (r Requirement) Met(rec *evidence.Record) (ok bool, why string) {
	return r.met(rec, false)
}

// MetByModel reports whether rec would show the requirement met if checks
// a model answered counted: when Met is false and MetByModel true, the
// requirement is not met on that device only for want of observation.
func (r Requirement) MetByModel(rec *evidence.Record) bool {
	ok, _ := r.met(rec, true)
	return ok
}

func (r Requirement) met(rec *evidence.Record, anyHow bool) (ok bool, why string) {
	if rec.Result.Verdict != evidence.PASS {
		return false, "device " + rec.Result.Verdict + ": " + rec.Result.Reason
	}
	for _, kind := range r.Checks {
		found := false
		for _, c := range rec.Checks {
			if c.Kind() != kind {
				continue
			}
			found = true
			if !c.Verified {
				return false, c.Name + ": " + c.Status()
			}
			if !anyHow && !Counts(rec, c) {
				return false, c.Name + ": " + evidence.EstablishedText(rec.Establishment(c))
			}
		}
		if !found {
			return false, kind + ": no such check recorded"
		}
	}
	return true, ""
}

// Counts reports whether check c of rec can be proof for a shipped device
// by how it was established: observed on a real board or computed on the
// host. Whether it verified is the caller's to ask.
func Counts(rec *evidence.Record, c evidence.Check) bool {
	how := rec.Establishment(c)
	return how == evidence.Observed || how == evidence.Computed
}
