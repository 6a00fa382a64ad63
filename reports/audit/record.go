package audit

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/tlog"
)

// Event names what happened. The constants are the events the issue lists;
// other names are allowed if they match [a-z0-9._-]{1,32} (they are also the
// syslog MSGID).
type Event string

// Events of a run. EventRunStart and EventResult are run boundaries: the log
// is fsynced there (SyncRunBoundary), and EventResult also signs a
// checkpoint.
const (
	EventRunStart       Event = "run.start"       // a board's run began
	EventIntake         Event = "intake"          // release intake result (manifest, hashes, signatures)
	EventEfuseIntent    Event = "efuse.intent"    // an eFuse burn is about to start: written and fsynced before the irreversible step
	EventEfuseBurn      Event = "efuse.burn"      // one eFuse field or key block burned and read back
	EventEfuseStray     Event = "efuse.stray"     // eFuse bits the board shows that no step of the run's plan burns
	EventRegionWritten  Event = "region.write"    // one flash region written
	EventRegionVerified Event = "region.verify"   // one flash region verified (MD5, signatures)
	EventLock           Event = "lock"            // lockdown eFuses burned
	EventResult         Event = "result"          // the run's verdict; ends the run
	EventOperatorSignIn Event = "operator.signin" // an operator signed in at the station
	EventConfigChange   Event = "config.change"   // a recipe or station configuration changed
	EventLogRecovered   Event = "log.recover"     // the log itself: a torn tail was set aside (written by Open)
)

// Result is the outcome of the event.
type Result string

// Results.
const (
	ResultOK      Result = "ok"
	ResultFail    Result = "fail"    // a check failed
	ResultRefused Result = "refused" // the station refused the board (conflicting state)
	ResultAborted Result = "aborted" // stopped before it finished (operator stop, lost link)
	ResultInfo    Result = "info"    // nothing to pass or fail (sign-in, config change)
)

func (r Result) valid() bool {
	switch r {
	case ResultOK, ResultFail, ResultRefused, ResultAborted, ResultInfo:
		return true
	}
	return false
}

// Details holds extra facts of an event as short strings (eFuse field name,
// region offset, image digest). It refuses anything that looks like a
// secret; see Details.Validate.
type Details map[string]string

// Entry is what a caller records. The log fills in sequence number, station,
// time (if zero), event ID (if empty) and the chain hash.
type Entry struct {
	Time     time.Time // zero: Config.Now(); kept with microsecond precision, UTC
	Operator string    // who; "station" for automatic events. Required.
	Device   string    // the board's MAC, aa:bb:cc:dd:ee:ff; empty for station events
	Run      string    // the run's ID; empty outside a run
	Event    Event     // required
	ID       string    // unique event ID; empty: the log makes one
	Result   Result    // required
	Details  Details
}

// Record is one line of the log. Its JSON form, exactly as Marshal writes
// it (field order as below, no spaces), is the record's canonical bytes:
// the Merkle leaf is tlog.RecordHash of those bytes, and the next record's
// Prev is that leaf hash.
type Record struct {
	Seq      int64     `json:"seq"` // 0-based index in the log
	Time     time.Time `json:"time"`
	Station  string    `json:"station"`
	Operator string    `json:"operator"`
	Device   string    `json:"device,omitempty"`
	Run      string    `json:"run,omitempty"`
	Event    Event     `json:"event"`
	ID       string    `json:"id"`
	Result   Result    `json:"result"`
	Details  Details   `json:"details,omitempty"`
	// Prev is the leaf hash of record Seq-1; all zero for record 0.
	Prev tlog.Hash `json:"prev"`
}

// FieldError says which field of an entry or record is not acceptable. It
// never quotes the value of a Details entry (it may be a secret).
type FieldError struct {
	Field  string // "operator", "details[flash_key]", …
	Reason string
	Err    error // ErrSecret when the field looks like key material, else nil
}

func (e *FieldError) Error() string {
	if e.Err != nil {
		return "audit: " + e.Field + ": " + e.Reason + ": " + e.Err.Error()
	}
	return "audit: " + e.Field + ": " + e.Reason
}

func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, reason string) *FieldError { return &FieldError{Field: field, Reason: reason} }

// ErrSecret is wrapped by the FieldError for a Details key or value that
// looks like key material.
var ErrSecret = errors.New("looks like a secret; the audit log never holds key material")

// FormatError says where a log line is not a canonical record.
type FormatError struct {
	Offset int // byte offset in the line
	Want   string
	Got    string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("audit: record at byte %d: want %s, got %s", e.Offset, e.Want, e.Got)
}

// Marshal returns the canonical bytes of r (no newline). It checks r first.
func (r *Record) Marshal() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return marshal(r)
}

func marshal(r *Record) ([]byte, error) { return appendRecord(make([]byte, 0, 384), r), nil }

// ParseRecord parses one log line (without its newline). It accepts only
// the canonical form: the bytes must be exactly what Marshal writes for the
// record they decode to, and the record must pass Validate. Errors are
// *FormatError (with the byte offset) or *FieldError.
func ParseRecord(line []byte) (*Record, error) {
	r, err := parseCanonical(line)
	if err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	// parseCanonical accepts only what appendRecord writes (FuzzParseRecord
	// re-encodes every accepted input and compares with encoding/json), so
	// there is no need to re-encode here: verification reads every record.
	return r, nil
}

func excerpt(b []byte, at int) string {
	if at >= len(b) {
		return "end of line"
	}
	end := min(at+12, len(b))
	return fmt.Sprintf("%q", b[at:end])
}

// Validate checks every field: lengths, character sets, the MAC format,
// microsecond UTC time, the result set, and Details (see Details.Validate).
func (r *Record) Validate() error {
	if r.Seq < 0 {
		return fieldErr("seq", "negative")
	}
	if r.Time.IsZero() {
		return fieldErr("time", "missing")
	}
	if r.Time.Location() != time.UTC {
		return fieldErr("time", "not UTC")
	}
	if r.Time.Nanosecond()%1000 != 0 {
		return fieldErr("time", "finer than a microsecond (syslog carries six fractional digits)")
	}
	if y := r.Time.Year(); y < 1970 || y > 9999 {
		return fieldErr("time", fmt.Sprintf("year %d out of range", y))
	}
	if err := checkStation(r.Station); err != nil {
		return err
	}
	if err := checkText("operator", r.Operator, 128, true); err != nil {
		return err
	}
	if r.Device != "" && !isMAC(r.Device) {
		return fieldErr("device", "not a MAC in the form aa:bb:cc:dd:ee:ff (lower case)")
	}
	if r.Run != "" {
		if err := checkToken("run", r.Run, 64); err != nil {
			return err
		}
	}
	if err := checkEvent(r.Event); err != nil {
		return err
	}
	if err := checkToken("id", r.ID, 64); err != nil {
		return err
	}
	if !r.Result.valid() {
		return fieldErr("result", "not one of ok, fail, refused, aborted, info")
	}
	if r.Details != nil && len(r.Details) == 0 {
		// Marshal drops an empty map, so it would not round-trip.
		return fieldErr("details", "empty map; use nil")
	}
	return r.Details.Validate()
}

const (
	maxDetails     = 32
	maxDetailValue = 256
)

// isSecretWord reports whether a key-name word means "this is a secret".
func isSecretWord(w string) bool {
	switch w {
	case "key", "keys", "secret", "password", "passwd", "passphrase", "pwd", "pin", "private",
		"priv", "privkey", "token", "seed", "plaintext", "credential", "credentials", "cred", "skey", "psk":
		return true
	}
	return false
}

// isQualifier reports whether w, ending a key name that mentions a secret
// word, makes the value a fact about the secret (which block, its digest)
// rather than the secret.
func isQualifier(w string) bool {
	switch w {
	case "digest", "hash", "sha256", "fingerprint", "id", "name", "purpose", "block", "blocks", "slot",
		"bits", "scheme", "type", "count", "revoked", "state", "source", "protected":
		return true
	}
	return false
}

// isDigestWord reports whether a key name ending in w may hold a long hex
// string.
func isDigestWord(w string) bool {
	switch w {
	case "digest", "hash", "sha256", "md5", "fingerprint", "root", "leaf":
		return true
	}
	return false
}

// Validate checks Details: at most 32 entries; keys are 1..32 characters of
// [a-z0-9_.]; values are at most 256 printable characters. It refuses (with
// a FieldError wrapping ErrSecret, which never quotes the value):
//   - a key naming a secret (a word such as key, secret, password, pin,
//     private, token, seed, plaintext) unless its last word says what fact
//     about the secret it holds (…_digest, …_block, …_purpose, …_id, …);
//   - a value holding a PEM block or a note private key;
//   - a value with a run of 32 or more hex digits, or of 40 or more base64
//     characters (std or URL alphabet) mixing upper case, lower case and
//     digits, unless the key's last word is digest, hash, sha256, md5,
//     fingerprint, root or leaf: a 128- or 256-bit key in hex, or a 256-bit
//     key in base64, is such a run. (A 128-bit key in base64, 22 characters,
//     is too short to tell from a word; no field should carry base64 anyway.)
func (d Details) Validate() error {
	if len(d) > maxDetails {
		return fieldErr("details", fmt.Sprintf("%d entries, at most %d", len(d), maxDetails))
	}
	for k, v := range d {
		if k == "" || len(k) > 32 {
			return fieldErr("details", "key must have 1 to 32 characters")
		}
		for i := 0; i < len(k); i++ {
			if c := k[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
				return fieldErr("details", fmt.Sprintf("key %q: byte %d is not [a-z0-9_.]", k, i))
			}
		}
		last := lastWord(k)
		if !isQualifier(last) {
			for rest := k; rest != ""; {
				w := rest
				if i := strings.IndexAny(rest, "_."); i >= 0 {
					w, rest = rest[:i], rest[i+1:]
				} else {
					rest = ""
				}
				if isSecretWord(w) {
					return &FieldError{"details[" + k + "]", fmt.Sprintf("key name %q (name the fact instead: %s_digest, %s_block, …)", w, k, k), ErrSecret}
				}
			}
		}
		field := func() string { return "details[" + k + "]" }
		if len(v) > maxDetailValue {
			return fieldErr(field(), fmt.Sprintf("value has %d bytes, at most %d", len(v), maxDetailValue))
		}
		if err := checkPrintable(v); err != nil {
			return fieldErr(field(), "value "+err.Error())
		}
		if strings.Contains(v, "-----BEGIN") || strings.Contains(v, "PRIVATE KEY") || strings.Contains(v, "PRIVATE+KEY") {
			return &FieldError{field(), "value holds a PEM block or private key", ErrSecret}
		}
		if looksLikeKey(v) && !isDigestWord(last) {
			return &FieldError{field(), "value holds 32+ hex digits or a 40+ character base64 run and the key name does not end in _digest, _hash, _sha256, _md5", ErrSecret}
		}
	}
	return nil
}

// looksLikeKey reports whether s holds a run of 32+ hex digits or a run of
// 40+ base64 characters mixing upper case, lower case and digits: a 128- or
// 256-bit key in the usual encodings.
func looksLikeKey(s string) bool { return hexRun(s) >= 32 || base64Run(s) >= 40 }

// base64Run returns the length of the longest run of [A-Za-z0-9+/_-] (std
// and URL base64) in s that has an upper-case letter, a lower-case letter
// and a digit.
func base64Run(s string) int {
	best, start := 0, 0
	var up, low, dig bool
	for i := 0; i <= len(s); i++ {
		var c byte
		if i < len(s) {
			c = s[i]
		}
		switch {
		case i < len(s) && c >= 'A' && c <= 'Z':
			up = true
		case i < len(s) && c >= 'a' && c <= 'z':
			low = true
		case i < len(s) && c >= '0' && c <= '9':
			dig = true
		case i < len(s) && (c == '+' || c == '/' || c == '-' || c == '_'):
		default:
			if up && low && dig {
				best = max(best, i-start)
			}
			start, up, low, dig = i+1, false, false, false
		}
	}
	return best
}

// hexRun returns the length of the longest run of hex digits in s.
func hexRun(s string) int {
	best, cur := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' {
			cur++
			best = max(best, cur)
		} else {
			cur = 0
		}
	}
	return best
}

// lastWord returns the part of a details key after its last '_' or '.'.
func lastWord(k string) string {
	if i := strings.LastIndexAny(k, "_."); i >= 0 {
		return k[i+1:]
	}
	return k
}

func checkPrintable(s string) error {
	ascii := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			ascii = false
			break
		}
	}
	if ascii {
		return nil
	}
	if !utf8.ValidString(s) {
		return errors.New("is not UTF-8")
	}
	for i, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("has a non-printable character at byte %d", i)
		}
	}
	return nil
}

// CheckText is the one rule for a short free-text value a person types
// (an operator name, a lot, a serial number, a recipe name): at most max
// bytes, printable (no control characters to reach a terminal or a log
// raw), and not shaped like a key. An empty value passes. The error names
// field.
func CheckText(field, v string, max int) error { return checkText(field, v, max, false) }

// checkText checks a free-text field (operator names may have spaces).
func checkText(field, v string, max int, required bool) error {
	if v == "" {
		if required {
			return fieldErr(field, "missing")
		}
		return nil
	}
	if len(v) > max {
		return fieldErr(field, fmt.Sprintf("%d bytes, at most %d", len(v), max))
	}
	if err := checkPrintable(v); err != nil {
		return fieldErr(field, err.Error())
	}
	if looksLikeKey(v) {
		return &FieldError{field, "holds 32+ hex digits or a long base64 run", ErrSecret}
	}
	return nil
}

// checkToken checks an identifier: 1..max of [A-Za-z0-9._:-], fewer than
// 32 hex digits in a row.
func checkToken(field, v string, max int) error {
	if v == "" || len(v) > max {
		return fieldErr(field, fmt.Sprintf("must have 1 to %d characters", max))
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return fieldErr(field, fmt.Sprintf("byte %d is not [A-Za-z0-9._:-]", i))
		}
	}
	if looksLikeKey(v) {
		return &FieldError{field, "holds 32+ hex digits or a long base64 run", ErrSecret}
	}
	return nil
}

// checkStation: station names are also syslog HOSTNAMEs and part of the
// checkpoint origin and key name.
func checkStation(v string) error {
	if v == "" || len(v) > 64 {
		return fieldErr("station", "must have 1 to 64 characters")
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fieldErr("station", fmt.Sprintf("%q: byte %d is not [A-Za-z0-9._-]", v, i))
		}
	}
	return nil
}

func checkEvent(e Event) error {
	if e == "" || len(e) > 32 {
		return fieldErr("event", "must have 1 to 32 characters")
	}
	for i := 0; i < len(e); i++ {
		if c := e[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fieldErr("event", fmt.Sprintf("byte %d is not [a-z0-9._-]", i))
		}
	}
	return nil
}

func isMAC(s string) bool {
	if len(s) != 17 {
		return false
	}
	for i := 0; i < 17; i++ {
		c := s[i]
		if i%3 == 2 {
			if c != ':' {
				return false
			}
		} else if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// NormalizeMAC turns a MAC in any usual spelling (upper case, '-' or no
// separators) into the log's form aa:bb:cc:dd:ee:ff.
func NormalizeMAC(s string) (string, error) {
	var hex []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
			hex = append(hex, c)
		case c >= 'A' && c <= 'F':
			hex = append(hex, c+'a'-'A')
		case c == ':' || c == '-' || c == '.':
		default:
			return "", fieldErr("device", fmt.Sprintf("byte %d is not a hex digit or separator; want a MAC address", i))
		}
	}
	if len(hex) != 12 {
		return "", fieldErr("device", fmt.Sprintf("%d hex digits; want a MAC address (12)", len(hex)))
	}
	out := make([]byte, 0, 17)
	for i := 0; i < 12; i += 2 {
		if i > 0 {
			out = append(out, ':')
		}
		out = append(out, hex[i], hex[i+1])
	}
	return string(out), nil
}
