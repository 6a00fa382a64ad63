package evidence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// MaxRecordSize bounds the bytes Parse accepts; a real record is a few KiB.
const MaxRecordSize = 4 << 20

// FormatError is why bytes are not a valid evidence record.
type FormatError struct {
	// Offset is the byte offset in the input where decoding failed, or -1
	// when the JSON decoded and a value is invalid.
	Offset int64
	// Field is the JSON path of the invalid value ("steps[2].error"); empty
	// for syntax errors.
	Field string
	Err   error
}

func (e *FormatError) Error() string {
	switch {
	case e.Field != "" && e.Offset >= 0:
		return fmt.Sprintf("evidence: %s at byte %d: %v", e.Field, e.Offset, e.Err)
	case e.Field != "":
		return fmt.Sprintf("evidence: %s: %v", e.Field, e.Err)
	default:
		return fmt.Sprintf("evidence: at byte %d: %v", e.Offset, e.Err)
	}
}

func (e *FormatError) Unwrap() error { return e.Err }

// Parse decodes one evidence record and validates it. Unknown fields, a
// schema other than Schema or SchemaV1, trailing data and invalid values
// are errors (*FormatError). Parse does not require the canonical form;
// Canonical does.
func Parse(b []byte) (*Record, error) {
	if len(b) > MaxRecordSize {
		return nil, &FormatError{Offset: MaxRecordSize, Err: fmt.Errorf("record is %d bytes, limit %d", len(b), MaxRecordSize)}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Record
	if err := dec.Decode(&r); err != nil {
		return nil, decodeError(err, dec.InputOffset())
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &FormatError{Offset: dec.InputOffset(), Err: errors.New("data after the record")}
	}
	normalize(&r)
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

func decodeError(err error, off int64) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return &FormatError{Offset: syn.Offset, Err: err}
	case errors.As(err, &typ):
		return &FormatError{Offset: typ.Offset, Field: typ.Field, Err: err}
	case errors.Is(err, io.EOF):
		return &FormatError{Offset: 0, Err: errors.New("empty input")}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &FormatError{Offset: off, Err: errors.New("truncated record")}
	}
	// Unknown fields and UnmarshalText errors carry no offset of their own.
	return &FormatError{Offset: off, Err: err}
}

// Marshal returns the canonical bytes of r (see the package doc). It
// validates r first and does not modify it.
func Marshal(r *Record) ([]byte, error) {
	c := *r
	c.Images = cloneSlice(r.Images)
	c.Steps = cloneSlice(r.Steps)
	c.Checks = cloneSlice(r.Checks)
	c.Efuse.Before.KeyBlocks = cloneSlice(r.Efuse.Before.KeyBlocks)
	c.Efuse.After.KeyBlocks = cloneSlice(r.Efuse.After.KeyBlocks)
	for i := range c.Images {
		c.Images[i].SignatureKeyDigests = cloneSlice(c.Images[i].SignatureKeyDigests)
	}
	normalize(&c)
	if err := c.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("evidence: marshal record %s: %w", r.ID, err)
	}
	return append(b, '\n'), nil
}

// Canonical reports whether b is exactly the canonical form of the record it
// holds, so that what a reader sees is what was signed (no duplicate keys,
// no case variants of names, no reformatting).
func Canonical(b []byte) (*Record, error) {
	r, err := Parse(b)
	if err != nil {
		return nil, err
	}
	c, err := Marshal(r)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(b, c) {
		off := 0
		for off < len(b) && off < len(c) && b[off] == c[off] {
			off++
		}
		return nil, &FormatError{Offset: int64(off), Err: errors.New("not in canonical form (reformatted, reordered or duplicated keys)")}
	}
	return r, nil
}

func cloneSlice[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append([]T(nil), s...)
}

// normalize puts times in UTC and turns nil lists and maps into empty ones,
// so the canonical form is one byte string per record.
func normalize(r *Record) {
	if r.Images == nil {
		r.Images = []Image{}
	}
	for i := range r.Images {
		if r.Images[i].SignatureKeyDigests == nil {
			r.Images[i].SignatureKeyDigests = []Digest{}
		}
	}
	for _, s := range []*EfuseSnapshot{&r.Efuse.Before, &r.Efuse.After} {
		if s.Fields == nil {
			s.Fields = map[string]uint64{}
		}
		if s.KeyBlocks == nil {
			s.KeyBlocks = []KeyBlock{}
		}
	}
	if r.Steps == nil {
		r.Steps = []Step{}
	}
	for i := range r.Steps {
		r.Steps[i].Start = r.Steps[i].Start.UTC()
		r.Steps[i].End = r.Steps[i].End.UTC()
	}
	if r.Checks == nil {
		r.Checks = []Check{}
	}
	r.Timing.Start = r.Timing.Start.UTC()
	r.Timing.End = r.Timing.End.UTC()
}

var (
	macPattern   = regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)
	tokenPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._\-]*$`)
)

// Validate checks the rules a record must keep: the schema, identities, no
// key fields, a reason for every failure, skip and unverified check, and a
// verdict that agrees with the steps.
func (r *Record) Validate() error {
	bad := func(field, format string, a ...any) error {
		return &FormatError{Offset: -1, Field: field, Err: fmt.Errorf(format, a...)}
	}
	if r.Schema != Schema && r.Schema != SchemaV1 {
		return bad("schema", "is %q, want %q (or the older %q)", r.Schema, Schema, SchemaV1)
	}
	if !tokenPattern.MatchString(r.ID) {
		return bad("id", "%q is not a token (letters, digits, . _ -)", r.ID)
	}
	if !macPattern.MatchString(r.Device.MAC) {
		return bad("device.mac", "%q is not aa:bb:cc:dd:ee:ff (lower case)", r.Device.MAC)
	}
	if strings.TrimSpace(r.Device.Chip) == "" {
		return bad("device.chip", "is empty")
	}
	if strings.TrimSpace(r.Station.ID) == "" {
		return bad("station.id", "is empty")
	}
	if strings.TrimSpace(r.Operator.ID) == "" {
		return bad("operator.id", "is empty")
	}
	for i, im := range r.Images {
		p := fmt.Sprintf("images[%d]", i)
		if strings.TrimSpace(im.Role) == "" {
			return bad(p+".role", "is empty")
		}
		if im.Size < 0 {
			return bad(p+".size", "is negative")
		}
		switch im.WriteMode {
		case "plain", "host-encrypted", "chip-encrypted":
		default:
			return bad(p+".write_mode", "is %q, want plain, host-encrypted or chip-encrypted", im.WriteMode)
		}
		if (im.WriteMode == "plain") == im.Encrypted {
			return bad(p+".encrypted", "is %v with write_mode %s", im.Encrypted, im.WriteMode)
		}
		if !im.Encrypted && im.WrittenSHA256 != im.PlaintextSHA256 {
			return bad(p+".written_sha256", "differs from plaintext_sha256 for an unencrypted image")
		}
	}
	for _, s := range []struct {
		name string
		snap *EfuseSnapshot
	}{{"efuse.before", &r.Efuse.Before}, {"efuse.after", &r.Efuse.After}} {
		for name := range s.snap.Fields {
			if err := checkFieldName(name); err != nil {
				return &FormatError{Offset: -1, Field: s.name + ".fields", Err: err}
			}
		}
		seen := map[string]bool{}
		for i, k := range s.snap.KeyBlocks {
			p := fmt.Sprintf("%s.key_blocks[%d]", s.name, i)
			if k.Block == "" {
				return bad(p+".block", "is empty")
			}
			if seen[k.Block] {
				return bad(p+".block", "%s appears twice", k.Block)
			}
			seen[k.Block] = true
			if k.Source != SourceReadback && k.Source != SourceBurned {
				return bad(p+".source", "is %q, want %q or %q", k.Source, SourceReadback, SourceBurned)
			}
		}
	}
	failed := false
	for i, s := range r.Steps {
		p := fmt.Sprintf("steps[%d]", i)
		if strings.TrimSpace(s.Name) == "" {
			return bad(p+".name", "is empty")
		}
		if s.End.Before(s.Start) {
			return bad(p+".end", "is before start")
		}
		if s.Duration < 0 {
			return bad(p+".duration", "is negative")
		}
		switch s.Result {
		case StepOK:
		case StepFailed, StepSkipped:
			if strings.TrimSpace(s.Error) == "" {
				return bad(p+".error", "is empty for a %s step: say why", s.Result)
			}
			failed = failed || s.Result == StepFailed
		default:
			return bad(p+".result", "is %q, want ok, failed or skipped", s.Result)
		}
	}
	for i, c := range r.Checks {
		p := fmt.Sprintf("checks[%d]", i)
		if strings.TrimSpace(c.Kind()) == "" {
			return bad(p+".name", "is empty")
		}
		if !c.Verified && strings.TrimSpace(c.Because) == "" {
			return bad(p+".because", "is empty for a check that was not verified: say why")
		}
		if err := r.validEstablished(c); err != nil {
			return bad(p+".established", "%v", err)
		}
	}
	switch r.Result.Verdict {
	case PASS:
		if failed {
			return bad("result.verdict", "is PASS but a step failed")
		}
	case FAIL, REFUSED:
		if strings.TrimSpace(r.Result.Reason) == "" {
			return bad("result.reason", "is empty for %s", r.Result.Verdict)
		}
	default:
		return bad("result.verdict", "is %q, want PASS, FAIL or REFUSED", r.Result.Verdict)
	}
	for i, s := range r.Steps {
		if !jsonTime(s.Start) || !jsonTime(s.End) {
			return bad(fmt.Sprintf("steps[%d].start", i), "is outside years 0001-9999 in UTC")
		}
	}
	if r.Timing.Start.IsZero() || r.Timing.End.IsZero() {
		return bad("timing", "start and end are required")
	}
	if !jsonTime(r.Timing.Start) || !jsonTime(r.Timing.End) {
		return bad("timing.start", "is outside years 0001-9999 in UTC")
	}
	if r.Timing.End.Before(r.Timing.Start) {
		return bad("timing.end", "is before timing.start")
	}
	if r.Timing.Duration < 0 {
		return bad("timing.duration", "is negative")
	}
	return nil
}

// validEstablished checks a check's establishment against the schema and
// the target: v1 records have none; v2 records say observed, computed or
// modelled, and a record of a virtual or QEMU target cannot say observed
// (a model's answer is never an observation of silicon).
func (r *Record) validEstablished(c Check) error {
	if r.Schema == SchemaV1 {
		if c.Established != "" {
			return fmt.Errorf("is %q in a %s record, which has no establishment", c.Established, SchemaV1)
		}
		return nil
	}
	switch c.Established {
	case Observed, Computed, Modelled:
	case "":
		return fmt.Errorf("is empty: say how the check was established (%s, %s or %s)", Observed, Computed, Modelled)
	default:
		return fmt.Errorf("is %q, want %s, %s or %s", c.Established, Observed, Computed, Modelled)
	}
	if c.Established == Observed && r.Station.Target != TargetBoard {
		return fmt.Errorf("is %s on target %q: only a real board (%s) is observed", Observed, r.Station.Target, TargetBoard)
	}
	return nil
}

// jsonTime reports whether t, in UTC, is a time encoding/json can write.
func jsonTime(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 1 && y <= 9999 || t.IsZero()
}

// FileName is the evidence file name for r: ID + ".json".
func (r *Record) FileName() string { return r.ID + ".json" }

// NewID returns a record ID from the MAC and the run's start time:
// "3c6105a1b2c3-20261121T101500Z".
func NewID(mac string, start time.Time) string {
	return strings.ReplaceAll(mac, ":", "") + "-" + start.UTC().Format("20060102T150405Z")
}
