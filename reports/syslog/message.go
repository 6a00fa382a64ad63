package syslog

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Facility is the RFC 5424 §6.2.1 facility code.
type Facility uint8

// Facilities used here; any value 0..23 is valid.
const (
	FacilityAuth     Facility = 4
	FacilityAuthPriv Facility = 10
	FacilityLogAudit Facility = 13 // "log audit", what the audit log uses
	FacilityLocal0   Facility = 16
)

// Severity is the RFC 5424 §6.2.1 severity code.
type Severity uint8

// Severities, most severe first.
const (
	SeverityEmergency Severity = iota
	SeverityAlert
	SeverityCritical
	SeverityError
	SeverityWarning
	SeverityNotice
	SeverityInfo
	SeverityDebug
)

// Param is one structured-data parameter (PARAM-NAME="PARAM-VALUE").
type Param struct {
	Name, Value string
}

// Element is one structured-data element, [ID Name="Value" …]. IDs that are
// not IANA-registered must have the form name@<private enterprise number>.
type Element struct {
	ID     string
	Params []Param
}

// Message is one RFC 5424 syslog message. Empty header fields are sent as
// the NILVALUE "-".
type Message struct {
	Facility Facility
	Severity Severity
	// Time is sent in UTC with exactly six fractional digits; zero is "-".
	Time     time.Time
	Hostname string // ≤ 255 printable US-ASCII characters
	AppName  string // ≤ 48
	ProcID   string // ≤ 128
	MsgID    string // ≤ 32
	Data     []Element
	// Msg is free text (UTF-8). It may contain newlines: octet counting
	// frames it.
	Msg string
}

// MetaID is the IANA-registered SD-ID whose sequenceId parameter carries
// the spool sequence number (RFC 5424 §7.3.1).
const MetaID = "meta"

// timeLayout has exactly six fractional digits: rsyslog mangles nine
// (docs/dependencies.md §3).
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// FieldError says which part of a Message is not valid RFC 5424.
type FieldError struct {
	Field  string // "hostname", "sd-id", "param-name", …
	Reason string
}

func (e *FieldError) Error() string {
	return "syslog: message " + e.Field + ": " + e.Reason
}

// AppendFormat appends the RFC 5424 form of m (without framing) to b.
func (m *Message) AppendFormat(b []byte) ([]byte, error) {
	if m.Facility > 23 {
		return b, &FieldError{"facility", fmt.Sprintf("%d is above 23", m.Facility)}
	}
	if m.Severity > 7 {
		return b, &FieldError{"severity", fmt.Sprintf("%d is above 7", m.Severity)}
	}
	b = append(b, '<')
	b = strconv.AppendUint(b, uint64(m.Facility)*8+uint64(m.Severity), 10)
	b = append(b, ">1 "...)
	if m.Time.IsZero() {
		b = append(b, '-')
	} else {
		b = m.Time.UTC().AppendFormat(b, timeLayout)
	}
	var err error
	for _, h := range []struct {
		name, v string
		max     int
	}{{"hostname", m.Hostname, 255}, {"app-name", m.AppName, 48}, {"procid", m.ProcID, 128}, {"msgid", m.MsgID, 32}} {
		b = append(b, ' ')
		if b, err = appendHeaderField(b, h.name, h.v, h.max); err != nil {
			return b, err
		}
	}
	b = append(b, ' ')
	if len(m.Data) == 0 {
		b = append(b, '-')
	}
	for _, e := range m.Data {
		if err := checkName("sd-id", e.ID); err != nil {
			return b, err
		}
		b = append(b, '[')
		b = append(b, e.ID...)
		for _, p := range e.Params {
			if err := checkName("param-name", p.Name); err != nil {
				return b, err
			}
			if !utf8.ValidString(p.Value) {
				return b, &FieldError{"param-value", "not valid UTF-8 in " + e.ID + " " + p.Name}
			}
			b = append(b, ' ')
			b = append(b, p.Name...)
			b = append(b, '=', '"')
			for i := 0; i < len(p.Value); i++ {
				// §6.3.3: '"', '\' and ']' must be escaped.
				switch c := p.Value[i]; c {
				case '"', '\\', ']':
					b = append(b, '\\', c)
				default:
					b = append(b, c)
				}
			}
			b = append(b, '"')
		}
		b = append(b, ']')
	}
	if m.Msg != "" {
		if !utf8.ValidString(m.Msg) {
			return b, &FieldError{"msg", "not valid UTF-8"}
		}
		b = append(b, ' ')
		b = append(b, m.Msg...)
	}
	return b, nil
}

// Format returns the RFC 5424 form of m, without framing.
func (m *Message) Format() ([]byte, error) { return m.AppendFormat(nil) }

// AppendFrame appends msg framed by octet counting (RFC 5425 §4.3):
// MSG-LEN SP SYSLOG-MSG.
func AppendFrame(b, msg []byte) []byte {
	b = strconv.AppendInt(b, int64(len(msg)), 10)
	b = append(b, ' ')
	return append(b, msg...)
}

func appendHeaderField(b []byte, name, v string, max int) ([]byte, error) {
	if v == "" {
		return append(b, '-'), nil
	}
	if len(v) > max {
		return b, &FieldError{name, fmt.Sprintf("%d characters, at most %d allowed", len(v), max)}
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 33 || v[i] > 126 {
			return b, &FieldError{name, fmt.Sprintf("byte %d is 0x%02x, only printable US-ASCII is allowed", i, v[i])}
		}
	}
	return append(b, v...), nil
}

// checkName checks an SD-NAME (§6.3.2): 1..32 printable US-ASCII characters
// except '=', ' ', ']' and '"'.
func checkName(field, v string) error {
	if v == "" || len(v) > 32 {
		return &FieldError{field, fmt.Sprintf("%q must have 1 to 32 characters", v)}
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 33 || c > 126 || c == '=' || c == ']' || c == '"' {
			return &FieldError{field, fmt.Sprintf("%q has a forbidden character at byte %d", v, i)}
		}
	}
	return nil
}
