package partition

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Names as gen_esp32part.py spells them, in its order (the first name of a
// value is the one written).
var (
	typeNames = []keyword{
		{"bootloader", int64(TypeBootloader)},
		{"partition_table", int64(TypePartitionTable)},
		{"app", int64(TypeApp)},
		{"data", int64(TypeData)},
	}
	subTypeNames = map[Type][]keyword{
		TypeBootloader:     {{"primary", 0x00}, {"ota", 0x01}, {"recovery", 0x02}},
		TypePartitionTable: {{"primary", 0x00}, {"ota", 0x01}},
		TypeApp: append([]keyword{{"factory", 0x00}, {"test", 0x20}},
			append(otaNames(), keyword{"tee_0", 0x30}, keyword{"tee_1", 0x31})...),
		TypeData: {{"ota", 0x00}, {"phy", 0x01}, {"nvs", 0x02}, {"coredump", 0x03}, {"nvs_keys", 0x04},
			{"efuse", 0x05}, {"undefined", 0x06}, {"esphttpd", 0x80}, {"fat", 0x81}, {"spiffs", 0x82},
			{"littlefs", 0x83}, {"tee_ota", 0x90}},
	}
)

type keyword struct {
	name string
	v    int64
}

func otaNames() []keyword {
	k := make([]keyword, 16)
	for i := range k {
		k[i] = keyword{fmt.Sprintf("ota_%d", i), int64(SubOTA0) + int64(i)}
	}
	return k
}

func nameOf(kw []keyword, v int64) string {
	for _, k := range kw {
		if k.v == v {
			return k.name
		}
	}
	return strconv.FormatInt(v, 10)
}

func lookup(kw []keyword, s string) (int64, bool) {
	s = strings.ToLower(s)
	for _, k := range kw {
		if k.name == s {
			return k.v, true
		}
	}
	return 0, false
}

// String is the gen_esp32part keyword ("app") or the decimal value.
func (t Type) String() string { return nameOf(typeNames, int64(t)) }

// SubTypeName is the gen_esp32part keyword for sub under typ ("ota_0",
// "nvs") or the decimal value.
func SubTypeName(typ Type, sub SubType) string { return nameOf(subTypeNames[typ], int64(sub)) }

// flagNames in gen_esp32part's order.
var flagNames = []struct {
	name string
	f    Flags
}{{"encrypted", Encrypted}, {"readonly", ReadOnly}}

// String is the CSV flags column: known flags joined by ':'.
func (f Flags) String() string {
	var s []string
	for _, n := range flagNames {
		if f&n.f != 0 {
			s = append(s, n.name)
		}
	}
	return strings.Join(s, ":")
}

// CSVOptions are what gen_esp32part takes from the build configuration.
// The zero value is an S3/C3 project with the table at 0x8000.
type CSVOptions struct {
	// TableOffset is where the table is flashed; the first partition
	// without an offset goes after its sector. 0 means DefaultOffset.
	TableOffset uint32
	// BootloaderOffset places a bootloader/primary entry (0x0 on S3 and
	// C3, 0x1000 on ESP32); its size runs up to the table.
	BootloaderOffset uint32
	// RecoveryBootloaderOffset places a bootloader/recovery entry; 0 means
	// none was configured and such an entry is an error.
	RecoveryBootloaderOffset uint32
}

func (o CSVOptions) tableOffset() uint32 {
	if o.TableOffset == 0 {
		return DefaultOffset
	}
	return o.TableOffset
}

// maxCSV bounds what ParseCSV reads; a real table is a few hundred bytes.
const maxCSV = 1 << 20

// MaxFile bounds a partition table file as given: the binary is MaxLen
// bytes, a CSV at most maxCSV.
const MaxFile = max(MaxLen, maxCSV)

// ParseCSV reads a partition CSV as gen_esp32part does, with the zero
// CSVOptions.
func ParseCSV(r io.Reader) (Table, error) { return ParseCSVWith(r, CSVOptions{}) }

// ParseCSVWith reads a partition CSV as gen_esp32part does: one partition
// per line "Name, Type, SubType, Offset, Size, Flags", '#' comment lines,
// types and subtypes by name or number, numbers in Python int() syntax
// with k/K and m/M suffixes (×1024, ×1024²), flags joined by ':'. An empty
// offset goes after the previous partition, aligned for its type (app
// 0x10000, others 0x1000); a negative size -N means "up to address N".
// The table is not validated beyond that; call Table.Validate. Environment
// variables ($NAME) are not expanded: a line holding one is an error.
// Format errors are *FormatError with the line and its byte offset.
func ParseCSVWith(r io.Reader, o CSVOptions) (Table, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxCSV+1))
	if err != nil {
		return Table{}, fmt.Errorf("partition: reading CSV: %w", err)
	}
	if len(raw) > maxCSV {
		return Table{}, &FormatError{Offset: maxCSV, Want: "a CSV of at most 1 MiB", Got: "more"}
	}
	base := 0
	if bytes.HasPrefix(raw, []byte("\xEF\xBB\xBF")) {
		base = 3
	}
	if i := invalidUTF8(raw); i >= 0 {
		return Table{}, &FormatError{Offset: i, Want: "UTF-8 text", Got: fmt.Sprintf("byte 0x%02X", raw[i])}
	}
	var rows []csvRow
	lineNo := 0
	for start := base; start < len(raw); {
		end := start
		for end < len(raw) && raw[end] != '\n' && raw[end] != '\r' {
			end++
		}
		next := end + 1
		if end+1 < len(raw) && raw[end] == '\r' && raw[end+1] == '\n' {
			next = end + 2
		}
		lineNo++
		line := strings.TrimSpace(string(raw[start:end]))
		if line != "" && !strings.HasPrefix(line, "#") {
			row, err := parseCSVLine(line, o)
			if err != nil {
				err.Offset, err.Line = start, lineNo
				return Table{}, err
			}
			row.line, row.offset = lineNo, start
			rows = append(rows, row)
		}
		start = next
	}
	return fixUp(rows, o)
}

type csvRow struct {
	e         Entry
	off, size int64
	hasOff    bool
	line      int
	offset    int
}

func invalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

// fieldErr is a FormatError whose position parseCSVLine's caller fills in.
func fieldErr(want, gotf string, a ...any) *FormatError {
	return &FormatError{Want: want, Got: fmt.Sprintf(gotf, a...)}
}

func parseCSVLine(line string, o CSVOptions) (csvRow, *FormatError) {
	if i := envVar(line); i >= 0 {
		return csvRow{}, fieldErr("no environment variables (fuseline does not expand them)", "%q", line[i:])
	}
	// Missing trailing fields are empty, extra ones ignored, as in gen_esp32part.
	fields := strings.Split(line+",,,,", ",")
	for i := range fields {
		fields[i] = strings.TrimSpace(fields[i])
	}
	var row csvRow
	row.e.Label = fields[0]
	if err := checkLabel(row.e.Label); err != nil {
		return csvRow{}, fieldErr("a name of at most 16 bytes without NUL", "%q", row.e.Label)
	}

	if fields[1] == "" {
		return csvRow{}, fieldErr("a type (app, data, bootloader, partition_table or a number)", "an empty field")
	}
	t, ok := parseInt(fields[1], typeNames)
	if !ok || t < 0 || t > 0xFF {
		return csvRow{}, fieldErr("a type (app, data, bootloader, partition_table or 0..255)", "%q", fields[1])
	}
	row.e.Type = Type(t)

	switch sub := fields[2]; {
	case sub == "" && row.e.Type == TypeApp:
		return csvRow{}, fieldErr("a subtype for an app partition", "an empty field")
	case sub == "":
		row.e.SubType = SubUndefined
	default:
		v, ok := parseInt(sub, subTypeNames[row.e.Type])
		if !ok || v < 0 || v > 0xFF {
			return csvRow{}, fieldErr(fmt.Sprintf("a %s subtype name or 0..255", row.e.Type), "%q", sub)
		}
		row.e.SubType = SubType(v)
	}

	tableOff := int64(o.tableOffset())
	switch {
	case row.e.Type == TypeBootloader && row.e.SubType == SubPrimary:
		row.off, row.hasOff = int64(o.BootloaderOffset), true
	case row.e.Type == TypeBootloader && row.e.SubType == SubRecovery:
		if o.RecoveryBootloaderOffset == 0 {
			return csvRow{}, fieldErr("a recovery bootloader offset in the options", "none configured")
		}
		row.off, row.hasOff = int64(o.RecoveryBootloaderOffset), true
	case row.e.Type == TypePartitionTable && row.e.SubType == SubPrimary:
		row.off, row.hasOff = tableOff, true
	case fields[3] != "":
		v, ok := parseInt(fields[3], nil)
		if !ok {
			return csvRow{}, fieldErr("an offset", "%q", fields[3])
		}
		row.off, row.hasOff = v, true
	}

	switch {
	case row.e.Type == TypeBootloader:
		row.size = tableOff - int64(o.BootloaderOffset)
	case row.e.Type == TypePartitionTable:
		row.size = SectorLen
	case fields[4] == "":
		return csvRow{}, fieldErr("a size", "an empty field")
	default:
		v, ok := parseInt(fields[4], nil)
		if !ok {
			return csvRow{}, fieldErr("a size", "%q", fields[4])
		}
		row.size = v
	}

	for _, f := range strings.Split(fields[5], ":") {
		switch f {
		case "":
		case "encrypted":
			row.e.Flags |= Encrypted
		case "readonly":
			row.e.Flags |= ReadOnly
		default:
			return csvRow{}, fieldErr("flags encrypted and/or readonly, joined by ':'", "%q", f)
		}
	}
	return row, nil
}

// fixUp places partitions without an offset and resolves negative sizes,
// in file order, as gen_esp32part's from_csv does.
func fixUp(rows []csvRow, o CSVOptions) (Table, error) {
	lastEnd := int64(o.tableOffset()) + SectorLen
	t := Table{Entries: make([]Entry, 0, len(rows))}
	for i, r := range rows {
		ferr := func(want, gotf string, a ...any) error {
			return &FormatError{Offset: r.offset, Line: r.line, Want: want, Got: fmt.Sprintf(gotf, a...)}
		}
		if !r.e.isPrimary() {
			if r.hasOff && r.off < lastEnd {
				what := fmt.Sprintf("the previous partition's end 0x%x", lastEnd)
				if i == 0 {
					what = fmt.Sprintf("0x%x, after the partition table's sector", lastEnd)
				}
				return Table{}, ferr("an offset at or above "+what, "0x%x", r.off)
			}
			if !r.hasOff {
				align := int64(Alignment(r.e.Type))
				r.off = (lastEnd + align - 1) / align * align
			}
			if r.size < 0 {
				r.size = -r.size - r.off
			}
			lastEnd = r.off + r.size
		}
		if r.off < 0 || r.size < 0 || r.off+r.size > 1<<32 {
			return Table{}, ferr("offset and size within the 4 GiB address space", "offset 0x%x size 0x%x", r.off, r.size)
		}
		r.e.Offset, r.e.Size = uint32(r.off), uint32(r.size)
		t.Entries = append(t.Entries, r.e)
	}
	return t, nil
}

// envVar returns the index of a $NAME in s, or -1.
func envVar(s string) int {
	for i := 0; i+1 < len(s); i++ {
		c := s[i+1]
		if s[i] == '$' && (c == '_' || c == '{' || (c|0x20 >= 'a' && c|0x20 <= 'z')) {
			return i
		}
	}
	return -1
}

// parseInt reads a number as gen_esp32part's parse_int does: Python
// int(v, 0) after taking off k/m suffixes (case-insensitive, each one
// multiplying), else a keyword.
func parseInt(v string, kw []keyword) (int64, bool) {
	mult := int64(1)
	s := v
suffixes:
	for len(s) > 0 {
		switch s[len(s)-1] {
		case 'k', 'K':
			mult <<= 10
		case 'm', 'M':
			mult <<= 20
		default:
			break suffixes
		}
		if mult > 1<<40 {
			return 0, false
		}
		s = s[:len(s)-1]
	}
	if n, ok := pyInt(strings.TrimSpace(s)); ok {
		if n > (1<<62)/mult || n < -(1<<62)/mult {
			return 0, false
		}
		return n * mult, true
	}
	if k, ok := lookup(kw, s); ok && mult == 1 {
		return k, true
	}
	return 0, false
}

// pyInt is Python's int(s, 0): optional sign, 0x/0o/0b prefixes, '_'
// between digits, and no leading zeros on a non-zero decimal.
func pyInt(s string) (int64, bool) {
	body := strings.TrimLeft(s, "+-")
	if len(s)-len(body) > 1 || body == "" {
		return 0, false
	}
	if len(body) > 1 && body[0] == '0' && (body[1] >= '0' && body[1] <= '9' || body[1] == '_') {
		if strings.Trim(body, "0_") != "" {
			return 0, false // Python rejects "010"
		}
		s = strings.Replace(s, body, "0", 1)
	}
	n, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// CSV writes the table as gen_esp32part's to_csv does: its two header
// comment lines, then "name,type,subtype,offset,size,flags" per entry, with
// names for known types and subtypes, offsets in hex and sizes in M or K
// when they divide evenly. Like gen_esp32part it does not quote: a label
// read from a binary table that holds ',' or a line break, or starts with
// '#', does not survive the trip through CSV; unknown flag bits are dropped.
func (t Table) CSV() string {
	var b strings.Builder
	b.WriteString("# ESP-IDF Partition Table\n# Name, Type, SubType, Offset, Size, Flags\n")
	for _, e := range t.Entries {
		fmt.Fprintf(&b, "%s,%s,%s,0x%x,%s,%s\n", e.Label, e.Type, SubTypeName(e.Type, e.SubType), e.Offset, sizeString(e.Size), e.Flags)
	}
	return b.String()
}

func sizeString(n uint32) string {
	switch {
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprintf("0x%x", n)
}
