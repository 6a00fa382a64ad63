package efuse

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"fuseline/esp/chip"
)

// MaxInput bounds an eFuse file given to Parse: a raw image is a few
// hundred bytes, an espefuse dump a few KiB of text.
const MaxInput = 64 << 10

// FormatError reports input that is not an eFuse dump or image: what was
// wanted at byte Offset (and, for text, on Line, counted from 1) and what was
// found.
type FormatError struct {
	Offset int
	Line   int // 0 for binary input
	Want   string
	Got    string
}

func (e *FormatError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("efuse: line %d (offset %d): want %s, got %s", e.Line, e.Offset, e.Want, e.Got)
	}
	return fmt.Sprintf("efuse: offset %d: want %s, got %s", e.Offset, e.Want, e.Got)
}

// Parse reads either espefuse dump text or a raw image (see ParseRaw),
// telling them apart by content: text that has a block line is a dump.
func Parse(id chip.ID, b []byte) (*Image, error) {
	if LooksLikeDump(b) {
		return ParseDump(id, b)
	}
	return ParseRaw(id, b)
}

// LooksLikeDump reports whether b is text containing at least one
// "… [n] label: words" block line.
func LooksLikeDump(b []byte) bool {
	if !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if _, ok := splitDumpLine(line); ok {
			return true
		}
	}
	return false
}

type dumpLine struct {
	name   string
	num    int
	words  string
	wordAt int // byte offset of words within the line
}

// splitDumpLine recognises espefuse's block line,
// "NAME (ALIAS) [N ] dump: 0000000 …" (also "read_regs:" and other labels).
func splitDumpLine(line string) (dumpLine, bool) {
	open := strings.IndexByte(line, '(')
	lb := strings.LastIndexByte(line, '[')
	if open <= 0 || lb < open {
		return dumpLine{}, false
	}
	rb := strings.IndexByte(line[lb:], ']')
	if rb < 0 {
		return dumpLine{}, false
	}
	rb += lb
	num, err := strconv.Atoi(strings.TrimSpace(line[lb+1 : rb]))
	if err != nil || num < 0 {
		return dumpLine{}, false
	}
	colon := strings.IndexByte(line[rb:], ':')
	if colon < 0 {
		return dumpLine{}, false
	}
	colon += rb
	label := strings.TrimSpace(line[rb+1 : colon])
	if label == "" || strings.ContainsAny(label, " \t") {
		return dumpLine{}, false
	}
	name := strings.TrimSpace(line[:open])
	if name == "" || strings.ContainsAny(name, " \t") {
		return dumpLine{}, false
	}
	return dumpLine{name: name, num: num, words: line[colon+1:], wordAt: colon + 1}, true
}

// ParseDump reads `espefuse dump` output (v4 and v5 print the same block
// lines; see testdata): one line per block with its words in hex, word 0
// first. Other lines (banner, "=== Run …") are skipped. Every block of the
// chip must appear once with its number of words; ESP32 BLOCK1…3 may show 6
// words (3/4 coding), the missing words reading as zero.
func ParseDump(id chip.ID, text []byte) (*Image, error) {
	img, err := NewImage(id)
	if err != nil {
		return nil, err
	}
	blocks := Blocks(id)
	seen := make([]bool, len(blocks))
	off := 0
	for lineNo, line := range strings.SplitAfter(string(text), "\n") {
		lineOff := off
		off += len(line)
		line = strings.TrimRight(line, "\r\n")
		dl, ok := splitDumpLine(line)
		if !ok {
			continue
		}
		fe := func(at int, want, got string) error {
			return &FormatError{Offset: lineOff + at, Line: lineNo + 1, Want: want, Got: got}
		}
		if dl.num >= len(blocks) {
			return nil, fe(0, fmt.Sprintf("a block number below %d for %v", len(blocks), id), fmt.Sprintf("[%d]", dl.num))
		}
		b := blocks[dl.num]
		if !blockNamed(b, dl.name) {
			return nil, fe(0, fmt.Sprintf("block %d named %s", b.Num, b.Name), quote(dl.name))
		}
		if seen[dl.num] {
			return nil, fe(0, "each block once", fmt.Sprintf("BLOCK%d again", dl.num))
		}
		seen[dl.num] = true
		fields := strings.Fields(dl.words)
		want := b.Words
		if id == chip.ESP32 && dl.num > 0 && len(fields) == 6 {
			want = 6 // 3/4 coding: 24 data bytes
		}
		if len(fields) != want {
			return nil, fe(dl.wordAt, fmt.Sprintf("%d words for %s", b.Words, b.Name), fmt.Sprintf("%d", len(fields)))
		}
		pos := dl.wordAt
		for i, w := range fields {
			at := pos + strings.Index(dl.words[pos-dl.wordAt:], w)
			pos = at + len(w)
			if len(w) != 8 {
				return nil, fe(at, "8 hex digits", quote(w))
			}
			v, err := strconv.ParseUint(w, 16, 32)
			if err != nil {
				return nil, fe(at, "8 hex digits", quote(w))
			}
			img.Blocks[dl.num][i] = uint32(v)
		}
	}
	for i, ok := range seen {
		if !ok {
			return nil, &FormatError{Offset: len(text), Want: fmt.Sprintf("a line for %s (BLOCK%d)", blocks[i].Name, i), Got: "end of input"}
		}
	}
	return img, nil
}

func blockNamed(b Block, name string) bool {
	if strings.EqualFold(name, b.Name) || strings.EqualFold(name, fmt.Sprintf("BLOCK%d", b.Num)) {
		return true
	}
	for _, a := range b.Alias {
		if strings.EqualFold(name, a) {
			return true
		}
	}
	return false
}

func quote(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return strconv.Quote(s)
}

// Dump renders the image the way `espefuse dump` prints it: one line per
// block, "NAME (ALIASES) [N ] dump: words", word 0 first.
func (img *Image) Dump() (string, error) {
	if err := img.Validate(); err != nil {
		return "", err
	}
	var sb strings.Builder
	for _, b := range Blocks(img.Chip) {
		alias := strings.Join(b.Alias, " ")
		if len(alias) > 16 {
			alias = alias[:16]
		}
		fmt.Fprintf(&sb, "%-15s (%-16s) [%-2d] dump:", b.Name, alias, b.Num)
		for _, w := range img.Blocks[b.Num] {
			fmt.Fprintf(&sb, " %08x", w)
		}
		sb.WriteByte('\n')
	}
	return sb.String(), nil
}

// RawSize is the length of a raw image of the chip (0 for unknown chips):
// S3/C3 336 bytes, ESP32 124.
func RawSize(id chip.ID) int {
	n := 0
	for _, b := range Blocks(id) {
		n += 4 * b.Words
	}
	return n
}

// MarshalBinary renders the raw image layout: every block's words in block
// order, each word little-endian, nothing else (S3/C3: BLOCK0 and BLOCK1 with
// 6 words, BLOCK2…10 with 8, 336 bytes; ESP32: 7+8+8+8 words, 124 bytes).
// It is the layout of `espefuse dump --format joint` (v5).
func (img *Image) MarshalBinary() ([]byte, error) {
	if err := img.Validate(); err != nil {
		return nil, err
	}
	out := make([]byte, 0, RawSize(img.Chip))
	for _, blk := range img.Blocks {
		for _, w := range blk {
			out = binary.LittleEndian.AppendUint32(out, w)
		}
	}
	return out, nil
}

// ParseRaw reads the raw image layout of MarshalBinary. For ESP32 it also
// takes the 100-byte form espefuse writes under 3/4 coding (BLOCK1…3 with 6
// words each), which requires CODING_SCHEME = 1 in the BLOCK0 it carries.
func ParseRaw(id chip.ID, b []byte) (*Image, error) {
	img, err := NewImage(id)
	if err != nil {
		return nil, err
	}
	size := RawSize(id)
	words := func(blk int) int { return len(img.Blocks[blk]) }
	if id == chip.ESP32 && len(b) == size-3*8 {
		cs := (binary.LittleEndian.Uint32(b[24:]) & 3)
		if cs != 1 {
			return nil, &FormatError{Offset: 24, Want: "CODING_SCHEME 1 (3/4) for a 100-byte ESP32 image", Got: fmt.Sprintf("%d", cs)}
		}
		words = func(blk int) int {
			if blk == 0 {
				return 7
			}
			return 6
		}
	} else if len(b) != size {
		return nil, &FormatError{Offset: min(len(b), size), Want: fmt.Sprintf("%d bytes of %v eFuse words", size, id), Got: fmt.Sprintf("%d bytes", len(b))}
	}
	off := 0
	for blk := range img.Blocks {
		for w := range words(blk) {
			img.Blocks[blk][w] = binary.LittleEndian.Uint32(b[off:])
			off += 4
		}
	}
	return img, nil
}

// SummaryField is one entry of `espefuse summary --format json`.
type SummaryField struct {
	Name        string          `json:"name"`
	Block       int             `json:"block"`
	Word        *int            `json:"word"` // nil for values espefuse computes
	Pos         *int            `json:"pos"`
	BitLen      int             `json:"bit_len"`
	Type        string          `json:"efuse_type"`
	Category    string          `json:"category"`
	Description string          `json:"description"`
	Readable    bool            `json:"readable"`
	Writeable   bool            `json:"writeable"`
	Value       json.RawMessage `json:"value"`
}

// Uint returns the value when espefuse printed it as a number or a bool.
func (s SummaryField) Uint() (uint64, bool) {
	var b bool
	if json.Unmarshal(s.Value, &b) == nil {
		if b {
			return 1, true
		}
		return 0, true
	}
	var n uint64
	if json.Unmarshal(s.Value, &n) == nil {
		return n, true
	}
	return 0, false
}

// Text returns the value when espefuse printed it as a string.
func (s SummaryField) Text() (string, bool) {
	var t string
	if json.Unmarshal(s.Value, &t) == nil {
		return t, true
	}
	return "", false
}

// Bytes decodes a byte value: "78 49 fc …" (block byte order) or a MAC
// "aa:bb:…" with an optional " (OK)" note. Read-protected values ("?? ??")
// give ok = false.
func (s SummaryField) Bytes() ([]byte, bool) {
	t, ok := s.Text()
	if !ok {
		return nil, false
	}
	if i := strings.IndexByte(t, '('); i >= 0 {
		t = t[:i]
	}
	t = strings.TrimSpace(strings.ReplaceAll(t, ":", " "))
	var out []byte
	for _, h := range strings.Fields(t) {
		v, err := strconv.ParseUint(h, 16, 8)
		if err != nil || len(h) != 2 {
			return nil, false
		}
		out = append(out, byte(v))
	}
	return out, len(out) > 0
}

// ParseSummaryJSON reads `espefuse summary --format json` into name → entry.
func ParseSummaryJSON(b []byte) (map[string]SummaryField, error) {
	var m map[string]SummaryField
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		off := int(dec.InputOffset())
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			off = int(se.Offset)
		} else if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			off = int(te.Offset)
		}
		return nil, &FormatError{Offset: off, Want: "espefuse summary JSON (an object of fields)", Got: err.Error()}
	}
	if m == nil {
		return nil, &FormatError{Offset: 0, Want: "a JSON object", Got: "null"}
	}
	for k, v := range m {
		if v.Name == "" {
			v.Name = k
			m[k] = v
		}
	}
	return m, nil
}
