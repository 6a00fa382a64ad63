package release

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"fuseline/esp/chip"
)

// File names inside a release directory.
const (
	ManifestName  = "manifest.json"
	SignatureName = "manifest.json.p7s"
)

// Limits on what the parser accepts. A manifest is metadata: it is read
// whole before anything is authenticated, so its size is bounded.
const (
	MaxManifestSize = 1 << 20 // bytes of manifest.json
	MaxFiles        = 256     // entries in Files
	ManifestFormat  = 1       // the only Format this package reads and writes
)

// Manifest is the signed description of a release. Its JSON form is
// canonical (see Marshal) because the signature covers its exact bytes.
// The field order here is the canonical key order; keep it sorted.
type Manifest struct {
	Chip          string    `json:"chip"`           // esptool chip name: esp32s3, esp32c3, esp32
	Created       time.Time `json:"created"`        // UTC, whole seconds
	Files         []File    `json:"files"`          // in flashing order
	Format        int       `json:"format"`         // ManifestFormat
	Product       string    `json:"product"`        // the product this release is for; the anti-rollback key
	SecureVersion uint32    `json:"secure_version"` // the app's anti-rollback secure_version
	Version       string    `json:"version"`        // semantic version, optional leading "v": 1.4.0, v2.0.0-rc.1
}

// File is one image of a release. Main-board files have an empty Device and
// Offset is their flash offset; sub-device files name their Device and
// Offset is the address on that device (0 where it has no meaning).
// The field order is the canonical key order; keep it sorted.
type File struct {
	Device string `json:"device,omitempty"` // sub-device name; only for RoleSubdevice
	Offset uint32 `json:"offset"`           // flash offset on the target device
	Path   string `json:"path"`             // slash-separated, relative to the release directory
	Role   Role   `json:"role"`
	SHA256 Digest `json:"sha256"`
	Size   int64  `json:"size"` // bytes
}

// Region names where the file goes, for messages: "flash 0x10000" or
// "sub-device motor @0x0".
func (f File) Region() string {
	if f.Device != "" {
		return fmt.Sprintf("sub-device %s @0x%x", f.Device, f.Offset)
	}
	return fmt.Sprintf("flash 0x%x", f.Offset)
}

// Role says what a file is for. App roles carry their partition slot.
type Role string

// The roles a manifest file can have. App slots are RoleFactory, RoleTest
// and AppOTA(n); data partitions are RoleData or "data/LABEL".
const (
	RoleBootloader     Role = "bootloader"
	RolePartitionTable Role = "partition-table"
	RoleOTAData        Role = "otadata"
	RoleFactory        Role = "app/factory"
	RoleTest           Role = "app/test"
	RoleData           Role = "data"
	RoleSubdevice      Role = "subdevice"
)

// roleSyntax is shown in errors.
const roleSyntax = "bootloader|partition-table|otadata|app/factory|app/test|app/ota_N|data|data/LABEL|subdevice"

// AppOTA returns the role of OTA app slot n (0..15).
func AppOTA(n int) Role { return Role("app/ota_" + strconv.Itoa(n)) }

var dataLabel = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,16}$`)

// Valid reports whether r is one of the roles above.
func (r Role) Valid() bool {
	switch r {
	case RoleBootloader, RolePartitionTable, RoleOTAData, RoleFactory, RoleTest, RoleData, RoleSubdevice:
		return true
	}
	if n, ok := strings.CutPrefix(string(r), "app/ota_"); ok {
		v, err := strconv.Atoi(n)
		return err == nil && v >= 0 && v <= 15 && strconv.Itoa(v) == n
	}
	if l, ok := strings.CutPrefix(string(r), "data/"); ok {
		return dataLabel.MatchString(l)
	}
	return false
}

// IsApp reports whether r is an app slot (its image carries an app
// descriptor and, with Secure Boot, a signature block).
func (r Role) IsApp() bool { return strings.HasPrefix(string(r), "app/") }

// Digest is a SHA-256 value, lowercase hex in JSON.
type Digest [32]byte

func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// short is the first 16 hex digits, for one-line messages.
func (d Digest) short() string { return hex.EncodeToString(d[:8]) + "…" }

// MarshalText implements encoding.TextMarshaler.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText accepts exactly 64 lowercase hex digits.
func (d *Digest) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("sha256 must be 64 hex digits, got %d characters", len(b))
	}
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("sha256 must be lowercase hex, got %q", c)
		}
	}
	_, err := hex.Decode(d[:], b)
	return err
}

// FormatError reports a manifest that cannot be accepted: bad JSON, a bad
// field value, or JSON that is not in canonical form. Offset is the byte
// offset in manifest.json; Field the JSON path where known ("files[2].role").
type FormatError struct {
	Offset int
	Field  string
	Want   string
	Got    string
}

func (e *FormatError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "release: %s byte %d", ManifestName, e.Offset)
	if e.Field != "" {
		fmt.Fprintf(&b, " (%s)", e.Field)
	}
	fmt.Fprintf(&b, ": want %s, got %s", e.Want, e.Got)
	return b.String()
}

// Marshal returns the canonical JSON form of m, the exact bytes that are
// signed. Canonical form: UTF-8; no insignificant whitespace (no newline at
// the end either); object keys in byte order; integers in shortest decimal
// form; strings with only `"` and `\` escaped (Validate refuses control
// characters, U+2028 and U+2029, so no other escape can appear); "created"
// as RFC 3339 in UTC with whole seconds ("2026-11-21T10:00:00Z"); "device"
// omitted when empty. This is the RFC 8785 (JCS) form for the values a
// manifest can hold.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m.canonical()
}

func (m *Manifest) canonical() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("release: encoding manifest: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// ParseManifest parses manifest.json. It accepts only the canonical form
// (Marshal(ParseManifest(b)) == b), so a reformatted manifest, whose
// signature could never verify, is reported here with the offset of the
// first byte that differs. Every error is a *FormatError.
func ParseManifest(b []byte) (*Manifest, error) {
	if len(b) > MaxManifestSize {
		return nil, &FormatError{Offset: MaxManifestSize, Want: fmt.Sprintf("at most %d bytes", MaxManifestSize), Got: fmt.Sprintf("%d bytes", len(b))}
	}
	if !utf8.Valid(b) {
		off := 0
		for off < len(b) {
			r, n := utf8.DecodeRune(b[off:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			off += n
		}
		return nil, &FormatError{Offset: off, Want: "UTF-8", Got: fmt.Sprintf("byte 0x%02x", b[off])}
	}
	idx, err := index(b)
	if err != nil {
		return nil, err
	}
	m, err := decodeWire(b, idx)
	if err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		if fe, ok := errors.AsType[*FormatError](err); ok {
			if off, ok := idx[fe.Field]; ok {
				fe.Offset = off
			}
		}
		return nil, err
	}
	c, err := m.canonical()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(c, b) {
		i := 0
		for i < len(c) && i < len(b) && c[i] == b[i] {
			i++
		}
		return nil, &FormatError{Offset: i, Want: "canonical JSON " + excerpt(c, i), Got: excerpt(b, i)}
	}
	return m, nil
}

// excerpt quotes up to 12 bytes of b from i, or says "end of input".
func excerpt(b []byte, i int) string {
	if i >= len(b) {
		return "end of input"
	}
	end := min(len(b), i+12)
	for end > i && !utf8.Valid(b[i:end]) {
		end--
	}
	return strconv.Quote(string(b[i:end]))
}

// wireManifest and wireFile are the JSON shapes with every leaf as it is
// written, so conversion errors can name the field and its offset.
type wireManifest struct {
	Chip          string     `json:"chip"`
	Created       string     `json:"created"`
	Files         []wireFile `json:"files"`
	Format        int        `json:"format"`
	Product       string     `json:"product"`
	SecureVersion uint32     `json:"secure_version"`
	Version       string     `json:"version"`
}

type wireFile struct {
	Device string `json:"device"`
	Offset uint32 `json:"offset"`
	Path   string `json:"path"`
	Role   string `json:"role"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

func decodeWire(b []byte, idx map[string]int) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var w wireManifest
	if err := dec.Decode(&w); err != nil {
		off := 0
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			// Offset is where the decoder stopped, just past the value.
			off = max(0, int(te.Offset)-1)
			field := innermost(idx, off)
			return nil, &FormatError{Offset: idx[field], Field: field, Want: te.Type.String(), Got: "JSON " + te.Value}
		}
		return nil, &FormatError{Offset: off, Want: "a manifest object", Got: strings.TrimPrefix(err.Error(), "json: ")}
	}
	m := &Manifest{Chip: w.Chip, Format: w.Format, Product: w.Product, SecureVersion: w.SecureVersion, Version: w.Version}
	t, err := time.Parse(time.RFC3339, w.Created)
	if err != nil {
		return nil, &FormatError{Offset: idx["created"], Field: "created", Want: "RFC 3339 time (2026-11-21T10:00:00Z)", Got: strconv.Quote(w.Created)}
	}
	m.Created = t
	if w.Files != nil {
		m.Files = make([]File, len(w.Files))
	}
	for i, wf := range w.Files {
		f := File{Device: wf.Device, Offset: wf.Offset, Path: wf.Path, Role: Role(wf.Role), Size: wf.Size}
		if err := f.SHA256.UnmarshalText([]byte(wf.SHA256)); err != nil {
			p := fmt.Sprintf("files[%d].sha256", i)
			return nil, &FormatError{Offset: idx[p], Field: p, Want: "64 lowercase hex digits", Got: strconv.Quote(wf.SHA256)}
		}
		m.Files[i] = f
	}
	return m, nil
}

// innermost returns the path of the value starting closest before off.
func innermost(idx map[string]int, off int) string {
	best, bestOff := "", -1
	for p, o := range idx {
		if o <= off && (o > bestOff || o == bestOff && len(p) > len(best)) {
			best, bestOff = p, o
		}
	}
	return best
}

// Known keys, for the index walk.
var (
	manifestKeys = []string{"chip", "created", "files", "format", "product", "secure_version", "version"}
	fileKeys     = []string{"device", "offset", "path", "role", "sha256", "size"}
)

// index walks the JSON tokens of b, refusing unknown and duplicate keys and
// anything but an object at the top, and records the byte offset where each
// value starts, by path ("files[1].role").
func index(b []byte) (map[string]int, error) {
	idx := map[string]int{}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	start := func() int {
		off := int(dec.InputOffset())
		for off < len(b) && (b[off] == ' ' || b[off] == '\t' || b[off] == '\n' || b[off] == '\r' || b[off] == ',' || b[off] == ':') {
			off++
		}
		return off
	}
	synErr := func(err error, off int) error {
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			return &FormatError{Offset: max(0, int(se.Offset)-1), Want: "JSON", Got: se.Error()}
		}
		return &FormatError{Offset: off, Want: "JSON", Got: "end of input"}
	}
	off := start()
	tok, err := dec.Token()
	if err != nil {
		return nil, synErr(err, off)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, &FormatError{Offset: off, Want: "a JSON object", Got: fmt.Sprintf("%v", tok)}
	}
	// walkObject reads keys and values until '}', with prefix as the path.
	var walkValue func(path string, keys []string) error
	walkObject := func(prefix string, keys []string) error {
		seen := map[string]bool{}
		for {
			off := start()
			tok, err := dec.Token()
			if err != nil {
				return synErr(err, off)
			}
			if d, ok := tok.(json.Delim); ok && d == '}' {
				return nil
			}
			k, _ := tok.(string)
			p := prefix + k
			if !slices.Contains(keys, k) {
				return &FormatError{Offset: off, Field: p, Want: "one of " + strings.Join(keys, ", "), Got: fmt.Sprintf("unknown key %q", k)}
			}
			if seen[k] {
				return &FormatError{Offset: off, Field: p, Want: "each key once", Got: fmt.Sprintf("duplicate key %q", k)}
			}
			seen[k] = true
			var sub []string
			if prefix == "" && k == "files" {
				sub = fileKeys
			}
			if err := walkValue(p, sub); err != nil {
				return err
			}
		}
	}
	walkValue = func(p string, keys []string) error {
		off := start()
		idx[p] = off
		tok, err := dec.Token()
		if err != nil {
			return synErr(err, off)
		}
		d, ok := tok.(json.Delim)
		if !ok {
			return nil
		}
		switch d {
		case '{':
			if keys == nil {
				return &FormatError{Offset: off, Field: p, Want: "a scalar", Got: "an object"}
			}
			return walkObject(p+".", keys)
		case '[':
			if keys == nil {
				return &FormatError{Offset: off, Field: p, Want: "a scalar", Got: "an array"}
			}
			for i := 0; ; i++ {
				off := start()
				if !dec.More() {
					if _, err := dec.Token(); err != nil {
						return synErr(err, off)
					}
					return nil
				}
				if i >= MaxFiles {
					return &FormatError{Offset: off, Field: p, Want: fmt.Sprintf("at most %d files", MaxFiles), Got: "more"}
				}
				ep := fmt.Sprintf("%s[%d]", p, i)
				idx[ep] = off
				tok, err := dec.Token()
				if err != nil {
					return synErr(err, off)
				}
				if d, ok := tok.(json.Delim); !ok || d != '{' {
					return &FormatError{Offset: off, Field: ep, Want: "a file object", Got: fmt.Sprintf("%v", tok)}
				}
				if err := walkObject(ep+".", keys); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walkObject("", manifestKeys); err != nil {
		return nil, err
	}
	if off := start(); off < len(b) {
		return nil, &FormatError{Offset: off, Want: "end of input", Got: excerpt(b, off)}
	}
	return idx, nil
}

var deviceName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,31}$`)

// sectorSize is the flash erase unit; every main-board region starts on one.
const sectorSize = 0x1000

// Validate checks every field of m. Errors are *FormatError with Field set
// (ParseManifest fills in Offset).
func (m *Manifest) Validate() error {
	bad := func(field, want, got string) error {
		return &FormatError{Field: field, Want: want, Got: got}
	}
	if m.Format != ManifestFormat {
		return bad("format", strconv.Itoa(ManifestFormat), strconv.Itoa(m.Format))
	}
	if err := checkText(m.Product, 128); err != "" {
		return bad("product", "a product name", err)
	}
	c, err := chip.ByName(m.Chip)
	if err != nil || c.Arg() != m.Chip {
		return bad("chip", "esp32s3|esp32c3|esp32", strconv.Quote(m.Chip))
	}
	if _, err := parseSemver(m.Version); err != nil {
		return bad("version", "a semantic version (1.2.3, v1.2.3-rc.1)", strconv.Quote(m.Version))
	}
	if m.Created.IsZero() || m.Created.Location() != time.UTC || m.Created.Nanosecond() != 0 {
		return bad("created", "UTC time in whole seconds (2026-11-21T10:00:00Z)", m.Created.Format(time.RFC3339Nano))
	}
	if len(m.Files) == 0 || len(m.Files) > MaxFiles {
		return bad("files", fmt.Sprintf("1 to %d files", MaxFiles), strconv.Itoa(len(m.Files)))
	}
	paths := map[string]int{}
	roles := map[Role]int{}
	boot := -1
	for i, f := range m.Files {
		p := fmt.Sprintf("files[%d].", i)
		if !f.Role.Valid() {
			return bad(p+"role", roleSyntax, strconv.Quote(string(f.Role)))
		}
		if f.Role != RoleSubdevice && f.Role != RoleData {
			if j, dup := roles[f.Role]; dup {
				return bad(p+"role", "each role once", fmt.Sprintf("%s again (first at files[%d])", f.Role, j))
			}
			roles[f.Role] = i
		}
		if f.Role == RoleSubdevice {
			if !deviceName.MatchString(f.Device) {
				return bad(p+"device", "a sub-device name ([a-z0-9._-], up to 32)", strconv.Quote(f.Device))
			}
		} else {
			if f.Device != "" {
				return bad(p+"device", "no device (only role subdevice names one)", strconv.Quote(f.Device))
			}
			if f.Offset%sectorSize != 0 {
				return bad(p+"offset", "a multiple of 0x1000 (flash sector)", fmt.Sprintf("0x%x", f.Offset))
			}
		}
		// The ROM loads the bootloader from one place only.
		if f.Role == RoleBootloader {
			if f.Offset != c.BootloaderOffset {
				return bad(p+"offset", fmt.Sprintf("0x%x (the %s ROM loads the bootloader from there)", c.BootloaderOffset, c.Name), fmt.Sprintf("0x%x", f.Offset))
			}
			boot = i
		}
		if err := checkPath(f.Path); err != "" {
			return bad(p+"path", "a relative slash-separated file name inside the release", err)
		}
		if j, dup := paths[f.Path]; dup {
			return bad(p+"path", "each path once", fmt.Sprintf("%q again (first at files[%d])", f.Path, j))
		}
		paths[f.Path] = i
		if f.Size <= 0 || uint64(f.Offset)+uint64(f.Size) > 1<<32 {
			return bad(p+"size", "1 byte to the end of a 4 GiB address space", strconv.FormatInt(f.Size, 10))
		}
	}
	// The bootloader reads the table at the offset it was built with,
	// which lies past its own image.
	if t, ok := roles[RolePartitionTable]; ok && boot >= 0 && m.Files[t].Offset <= m.Files[boot].Offset {
		return bad(fmt.Sprintf("files[%d].offset", t), fmt.Sprintf("a partition table after the bootloader at 0x%x", m.Files[boot].Offset), fmt.Sprintf("0x%x", m.Files[t].Offset))
	}
	// Regions on one device must not overlap: two images in one place means
	// one of them is not what the signer meant to ship.
	for i, a := range m.Files {
		for j := range i {
			b := m.Files[j]
			if a.Device == b.Device && int64(a.Offset) < int64(b.Offset)+b.Size && int64(b.Offset) < int64(a.Offset)+a.Size {
				return bad(fmt.Sprintf("files[%d].offset", i), "a region that does not overlap another",
					fmt.Sprintf("%s overlaps files[%d] (%s, %d bytes)", a.Region(), j, b.Region(), b.Size))
			}
		}
	}
	return nil
}

// checkText returns why s is not an acceptable name, or "".
func checkText(s string, maxLen int) string {
	switch {
	case s == "":
		return "empty"
	case len(s) > maxLen:
		return fmt.Sprintf("%d bytes (max %d)", len(s), maxLen)
	case strings.TrimSpace(s) != s:
		return fmt.Sprintf("%q (leading or trailing space)", s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Sprintf("%q (control or non-printing character)", s)
		}
	}
	return ""
}

func checkPath(p string) string {
	if e := checkText(p, 255); e != "" {
		return e
	}
	if strings.ContainsAny(p, `\:`) || !fsValidPath(p) || p == ManifestName || p == SignatureName {
		return strconv.Quote(p)
	}
	return ""
}

// fsValidPath is io/fs.ValidPath without importing io/fs here: no empty,
// ".", ".." elements, no leading or trailing slash.
func fsValidPath(p string) bool {
	if p == "." || path.Clean(p) != p || strings.HasPrefix(p, "/") {
		return false
	}
	for e := range strings.SplitSeq(p, "/") {
		if e == "." || e == ".." || e == "" {
			return false
		}
	}
	return true
}

// BoardFiles returns the files for the main board, in manifest order.
func (m *Manifest) BoardFiles() []File {
	var out []File
	for _, f := range m.Files {
		if f.Device == "" {
			out = append(out, f)
		}
	}
	return out
}

// Devices returns the sub-device names the manifest routes files to, in
// order of first appearance.
func (m *Manifest) Devices() []string {
	var out []string
	for _, f := range m.Files {
		if f.Device != "" && !slices.Contains(out, f.Device) {
			out = append(out, f.Device)
		}
	}
	return out
}
