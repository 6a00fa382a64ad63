package audit

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/tlog"
)

// The canonical record encoding is exactly what encoding/json writes for a
// valid Record with HTML escaping off (the fuzz test holds the two side by
// side). It is written and read by hand because verification reads every
// record of the log: reflection-based JSON made it 10× slower.

// appendRecord appends the canonical bytes of r, which must be valid: its
// strings are then printable UTF-8, so only '"' and '\' need escapes.
func appendRecord(b []byte, r *Record) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, r.Seq, 10)
	b = append(b, `,"time":"`...)
	b = r.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","station":`...)
	b = appendString(b, r.Station)
	b = append(b, `,"operator":`...)
	b = appendString(b, r.Operator)
	if r.Device != "" {
		b = append(b, `,"device":`...)
		b = appendString(b, r.Device)
	}
	if r.Run != "" {
		b = append(b, `,"run":`...)
		b = appendString(b, r.Run)
	}
	b = append(b, `,"event":`...)
	b = appendString(b, string(r.Event))
	b = append(b, `,"id":`...)
	b = appendString(b, r.ID)
	b = append(b, `,"result":`...)
	b = appendString(b, string(r.Result))
	if len(r.Details) > 0 {
		b = append(b, `,"details":{`...)
		keys := make([]string, 0, len(r.Details))
		for k := range r.Details {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, r.Details[k])
		}
		b = append(b, '}')
	}
	b = append(b, `,"prev":"`...)
	b = base64.StdEncoding.AppendEncode(b, r.Prev[:])
	return append(b, `"}`...)
}

func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// parser reads the canonical form and nothing else.
type parser struct {
	b []byte
	i int
}

func (p *parser) fail(want string) error {
	return &FormatError{Offset: p.i, Want: want, Got: excerpt(p.b, p.i)}
}

func (p *parser) lit(s string) error {
	if !bytes.HasPrefix(p.b[p.i:], []byte(s)) {
		return p.fail(strconv.Quote(s))
	}
	p.i += len(s)
	return nil
}

func (p *parser) opt(s string) bool {
	if bytes.HasPrefix(p.b[p.i:], []byte(s)) {
		p.i += len(s)
		return true
	}
	return false
}

// str reads a JSON string with only the escapes \" and \\ (the only ones
// the canonical form has), as valid UTF-8.
func (p *parser) str() (string, error) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return "", p.fail("a string")
	}
	p.i++
	start := p.i
	// Fast path: no escape before the closing quote (the usual case).
	// Control characters are left to Validate, which refuses them in
	// every field.
	if j := bytes.IndexByte(p.b[start:], '"'); j >= 0 && bytes.IndexByte(p.b[start:start+j], '\\') < 0 {
		s := p.b[start : start+j]
		if !utf8.Valid(s) {
			return "", &FormatError{Offset: start, Want: "UTF-8", Got: "invalid bytes in a string"}
		}
		p.i = start + j + 1
		return string(s), nil
	}
	var buf []byte // only if there are escapes
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			if buf != nil {
				s = append(buf, s...)
			}
			if !utf8.Valid(s) {
				return "", &FormatError{Offset: start, Want: "UTF-8", Got: "invalid bytes in a string"}
			}
			p.i++
			return string(s), nil
		case c == '\\':
			if p.i+1 >= len(p.b) || (p.b[p.i+1] != '"' && p.b[p.i+1] != '\\') {
				return "", p.fail(`the escape \" or \\ (the canonical form has no other)`)
			}
			buf = append(buf, p.b[start:p.i]...)
			buf = append(buf, p.b[p.i+1])
			p.i += 2
			start = p.i
		case c < 0x20:
			return "", p.fail("no control character in a string")
		default:
			p.i++
		}
	}
	return "", p.fail(`'"' ending the string`)
}

func parseCanonical(line []byte) (*Record, error) {
	p := &parser{b: line}
	var r Record
	var err error
	if err := p.lit(`{"seq":`); err != nil {
		return nil, err
	}
	start := p.i
	for p.i < len(line) && line[p.i] >= '0' && line[p.i] <= '9' {
		p.i++
	}
	digits := string(line[start:p.i])
	if digits == "" || (len(digits) > 1 && digits[0] == '0') {
		p.i = start
		return nil, p.fail("a decimal seq without leading zeros")
	}
	if r.Seq, err = strconv.ParseInt(digits, 10, 64); err != nil {
		p.i = start
		return nil, p.fail("a seq that fits 63 bits")
	}
	if err := p.lit(`,"time":`); err != nil {
		return nil, err
	}
	start = p.i
	ts, err := p.str()
	if err != nil {
		return nil, err
	}
	var ok bool
	if r.Time, ok = parseTime(ts); !ok {
		p.i = start
		return nil, p.fail("an RFC 3339 time in UTC in canonical form (Z, no trailing zeros)")
	}
	fields := []struct {
		key      string
		optional bool
		dst      *string
	}{
		{`,"station":`, false, &r.Station},
		{`,"operator":`, false, &r.Operator},
		{`,"device":`, true, &r.Device},
		{`,"run":`, true, &r.Run},
		{`,"event":`, false, (*string)(&r.Event)},
		{`,"id":`, false, &r.ID},
		{`,"result":`, false, (*string)(&r.Result)},
	}
	for _, f := range fields {
		if f.optional {
			if !p.opt(f.key) {
				continue
			}
		} else if err := p.lit(f.key); err != nil {
			return nil, err
		}
		if *f.dst, err = p.str(); err != nil {
			return nil, err
		}
		if f.optional && *f.dst == "" {
			return nil, p.fail("an omitted field instead of an empty one")
		}
	}
	if p.opt(`,"details":{`) {
		r.Details = Details{}
		last := ""
		for first := true; ; first = false {
			if p.opt("}") {
				if first {
					return nil, p.fail("details with at least one entry (an empty map is omitted)")
				}
				break
			}
			if !first {
				if err := p.lit(","); err != nil {
					return nil, err
				}
			}
			at := p.i
			k, err := p.str()
			if err != nil {
				return nil, err
			}
			if !first && k <= last {
				p.i = at
				return nil, p.fail(fmt.Sprintf("details keys in ascending order, after %q", last))
			}
			last = k
			if err := p.lit(":"); err != nil {
				return nil, err
			}
			if r.Details[k], err = p.str(); err != nil {
				return nil, err
			}
		}
	}
	if err := p.lit(`,"prev":`); err != nil {
		return nil, err
	}
	start = p.i
	prev, err := p.str()
	if err != nil {
		return nil, err
	}
	// Decode panics if dst is short for src: check the length first.
	var h [tlog.HashSize + 1]byte
	var again [44]byte
	n, err := 0, error(nil)
	if len(prev) == len(again) {
		n, err = base64.StdEncoding.Decode(h[:], []byte(prev))
	}
	if n == tlog.HashSize {
		base64.StdEncoding.Encode(again[:], h[:n])
	}
	if err != nil || n != tlog.HashSize || string(again[:]) != prev {
		p.i = start
		return nil, p.fail("prev: a 32-byte hash in base64")
	}
	copy(r.Prev[:], h[:n])
	if err := p.lit("}"); err != nil {
		return nil, err
	}
	if p.i != len(line) {
		return nil, p.fail("end of line")
	}
	return &r, nil
}

// parseTime parses what time.Time.Format(time.RFC3339Nano) writes for a UTC
// time with a four-digit year, "2006-01-02T15:04:05[.fraction]Z" with no
// trailing zero in the fraction, and nothing else (time.Parse plus Format
// cost more than the rest of a record).
func parseTime(s string) (time.Time, bool) {
	if len(s) < 20 || len(s) > 30 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[len(s)-1] != 'Z' {
		return time.Time{}, false
	}
	num := func(i, n int) (int, bool) {
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 2)
	day, ok3 := num(8, 2)
	hour, ok4 := num(11, 2)
	minute, ok5 := num(14, 2)
	sec, ok6 := num(17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	nsec := 0
	if len(s) > 20 {
		frac := s[19 : len(s)-1]
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 || frac[len(frac)-1] == '0' {
			return time.Time{}, false
		}
		v, ok := num(20, len(frac)-1)
		if !ok {
			return time.Time{}, false
		}
		for range 10 - len(frac) {
			v *= 10
		}
		nsec = v
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if t.Day() != day { // 31 April and the like normalise into the next month
		return time.Time{}, false
	}
	return t, true
}
