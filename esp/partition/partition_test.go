package partition

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// singleApp is the §6.1 example: nvs 0x9000/0x6000, phy_init 0xF000/0x1000,
// factory 0x10000/1 MiB.
func singleApp() Table {
	return Table{Entries: []Entry{
		{Label: "nvs", Type: TypeData, SubType: SubNVS, Offset: 0x9000, Size: 0x6000},
		{Label: "phy_init", Type: TypeData, SubType: SubPHY, Offset: 0xF000, Size: 0x1000},
		{Label: "factory", Type: TypeApp, SubType: SubFactory, Offset: 0x10000, Size: 0x100000},
	}}
}

func TestExampleBinary(t *testing.T) {
	t.Parallel()
	b := readFile(t, "singleapp.bin")
	// The §6.1 listing, row by row.
	want := []string{
		"aa50010200900000006000006e767300", "00000000000000000000000000000000",
		"aa50010100f00000001000007068795f", "696e6974000000000000000000000000",
		"aa500000000001000000100066616374", "6f727900000000000000000000000000",
		"ebebffffffffffffffffffffffffffff", "f4ad4f4538564b5d7435b62c75b69524",
	}
	for i, w := range want {
		if got := hex.EncodeToString(b[16*i : 16*i+16]); got != w {
			t.Fatalf("row 0x%04x = %s, want %s", 16*i, got, w)
		}
	}
	if len(b) != MaxLen || !bytes.Equal(b[0x80:], bytes.Repeat([]byte{0xFF}, MaxLen-0x80)) {
		t.Fatal("not padded with 0xFF to 0xC00")
	}
	tbl, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tbl, singleApp()) {
		t.Fatalf("parsed %+v", tbl)
	}
	out, err := singleApp().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, b) {
		t.Fatalf("MarshalBinary differs from §6.1:\n%x", out[:0x80])
	}
}

func TestCSVToBinaryAndBack(t *testing.T) {
	t.Parallel()
	tbl, err := ParseCSV(bytes.NewReader(readFile(t, "singleapp.csv")))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tbl, singleApp()) {
		t.Fatalf("parsed %+v", tbl)
	}
	bin, err := tbl.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bin, readFile(t, "singleapp.bin")) {
		t.Fatal("CSV → binary differs from the §6.1 bytes")
	}
	if got, want := tbl.CSV(), string(readFile(t, "singleapp.gen.csv")); got != want {
		t.Fatalf("CSV():\n%s\nwant:\n%s", got, want)
	}
	again, err := ParseCSV(strings.NewReader(tbl.CSV()))
	if err != nil || !reflect.DeepEqual(again, tbl) {
		t.Fatalf("CSV round trip: %v %+v", err, again)
	}
	if err := tbl.Validate(ValidateOptions{FlashSize: 4 << 20}); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultTableIsTwoOTA(t *testing.T) {
	t.Parallel()
	tbl, err := ParseCSV(bytes.NewReader(readFile(t, "two_ota.csv")))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tbl, DefaultTable()) {
		t.Fatalf("two_ota.csv gives\n%s\nDefaultTable is\n%s", tbl.CSV(), DefaultTable().CSV())
	}
	if err := tbl.Validate(ValidateOptions{FlashSize: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := tbl.Validate(ValidateOptions{FlashSize: 2 << 20}); err == nil {
		t.Fatal("a 3 MiB layout fitted 2 MiB flash")
	}
	if n := tbl.OTACount(); n != 2 {
		t.Fatalf("OTACount = %d", n)
	}
	if e, ok := tbl.Find(TypeData, SubOTAData); !ok || e.Label != "otadata" || e.Offset != 0xD000 {
		t.Fatalf("Find otadata = %+v %v", e, ok)
	}
	if e, ok := tbl.FindLabel("ota_1"); !ok || e.Offset != 0x210000 {
		t.Fatalf("FindLabel = %+v %v", e, ok)
	}
	if _, ok := tbl.Find(TypeData, SubSPIFFS); ok {
		t.Fatal("found a partition that is not there")
	}
	if slot, ok := tbl.Entries[5].IsOTA(); !ok || slot != 1 {
		t.Fatalf("ota_1 IsOTA = %d %v", slot, ok)
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	good := readFile(t, "singleapp.bin")
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	full := bytes.Repeat(good[:32], MaxLen/32) // 96 entries, no room for the end marker
	tests := []struct {
		name   string
		in     []byte
		offset int
		want   string
	}{
		{"empty", nil, 0, "end marker"},
		{"bad magic", mut(func(b []byte) []byte { b[0x20] = 0xAB; return b }), 0x20, "entry magic"},
		{"md5 mismatch", mut(func(b []byte) []byte { b[0x0C] = 'N'; return b }), 0x70, "MD5"},
		{"cut before end marker", good[:0x80], 0x80, "end marker"},
		{"cut inside entry", good[:0x30], 0x20, "end marker"},
		{"entry after MD5", mut(func(b []byte) []byte { copy(b[0x80:], b[:0x20]); return b }), 0x80, "after the MD5"},
		{"no end marker in region", full, 0xC00, "end marker"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(tc.in)
			fe, ok := errors.AsType[*FormatError](err)
			if !ok || fe.Offset != tc.offset || !strings.Contains(fe.Want, tc.want) {
				t.Fatalf("err = %v, want a FormatError at 0x%x about %q", err, tc.offset, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "partition: at offset 0x") {
				t.Fatalf("message %q", err)
			}
		})
	}
}

func TestNoMD5AndLimits(t *testing.T) {
	t.Parallel()
	tbl := singleApp()
	tbl.NoMD5 = true
	b, err := tbl.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[0x60:0x80], bytes.Repeat([]byte{0xFF}, 32)) {
		t.Fatal("NoMD5 still wrote an MD5 entry")
	}
	got, err := Parse(b)
	if err != nil || !reflect.DeepEqual(got, tbl) {
		t.Fatalf("%v %+v", err, got)
	}
	// The region holds 94 entries with MD5, 95 without, and an end marker.
	for _, tc := range []struct {
		n     int
		noMD5 bool
		ok    bool
	}{{94, false, true}, {95, false, false}, {95, true, true}, {96, true, false}} {
		big := Table{Entries: make([]Entry, tc.n), NoMD5: tc.noMD5}
		b, err := big.MarshalBinary()
		if (err == nil) != tc.ok {
			t.Fatalf("%d entries, noMD5 %v: err %v", tc.n, tc.noMD5, err)
		}
		if err == nil {
			if back, err := Parse(b); err != nil || len(back.Entries) != tc.n {
				t.Fatalf("%d entries did not parse back: %v", tc.n, err)
			}
		}
	}
	// A 16-byte label fills the field without NUL.
	long := Table{Entries: []Entry{{Label: "sixteen_chars_xx", Type: TypeData, SubType: SubNVS, Offset: 0x9000, Size: 0x6000}}}
	b, err = long.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if back, err := Parse(b); err != nil || back.Entries[0].Label != "sixteen_chars_xx" {
		t.Fatalf("%v %+v", err, back)
	}
	long.Entries[0].Label += "y"
	if _, err := long.MarshalBinary(); err == nil {
		t.Fatal("17-byte label accepted")
	}
	// MD5 covers exactly the entries before it.
	sum := md5.Sum(readFile(t, "singleapp.bin")[:0x60])
	if hex.EncodeToString(sum[:4]) != "f4ad4f45" {
		t.Fatalf("md5 %x", sum)
	}
}

func TestParseCSV(t *testing.T) {
	t.Parallel()
	app := func(label string, sub SubType, off, size uint32) Entry {
		return Entry{Label: label, Type: TypeApp, SubType: sub, Offset: off, Size: size}
	}
	data := func(label string, sub SubType, off, size uint32) Entry {
		return Entry{Label: label, Type: TypeData, SubType: sub, Offset: off, Size: size}
	}
	tests := []struct {
		name string
		csv  string
		opts CSVOptions
		want []Entry
	}{
		{"numbers", "a,data,nvs,0x9000,24k\nb,data,fat,61440,0x1_000\nc,data,spiffs,,1M",
			CSVOptions{}, []Entry{data("a", SubNVS, 0x9000, 0x6000), data("b", SubFAT, 0xF000, 0x1000), data("c", SubSPIFFS, 0x10000, 1<<20)}},
		{"app aligned to 64 KiB", "n,data,nvs,,0x5000\nf,app,factory,,1M",
			CSVOptions{}, []Entry{data("n", SubNVS, 0x9000, 0x5000), app("f", SubFactory, 0x10000, 1<<20)}},
		{"keywords any case", "n,DATA,NVS,,0x5000\no,App,OTA_3,,64K",
			CSVOptions{}, []Entry{data("n", SubNVS, 0x9000, 0x5000), app("o", SubOTA0+3, 0x10000, 0x10000)}},
		{"numeric and custom types", "c,0x40,7,,0x1000\nd,1,0x81,,8K",
			CSVOptions{}, []Entry{{Label: "c", Type: 0x40, SubType: 7, Offset: 0x9000, Size: 0x1000}, data("d", SubFAT, 0xA000, 0x2000)}},
		{"empty data subtype is undefined", "u,data,,,0x1000",
			CSVOptions{}, []Entry{data("u", SubUndefined, 0x9000, 0x1000)}},
		{"negative size runs to an address", "s,data,spiffs,0x10000,-0x400000",
			CSVOptions{}, []Entry{data("s", SubSPIFFS, 0x10000, 0x3F0000)}},
		{"flags", "k,data,nvs_keys,,0x1000,encrypted\nr,data,nvs,,0x1000,readonly:encrypted",
			CSVOptions{}, []Entry{{Label: "k", Type: TypeData, SubType: SubNVSKeys, Offset: 0x9000, Size: 0x1000, Flags: Encrypted},
				{Label: "r", Type: TypeData, SubType: SubNVS, Offset: 0xA000, Size: 0x1000, Flags: Encrypted | ReadOnly}}},
		{"comments, blank lines, CRLF, BOM, extra fields", "\xEF\xBB\xBF# c\r\n\r\n  n , data , nvs , , 0x5000 , , extra \r\n#x,app,factory,,1M\r\n",
			CSVOptions{}, []Entry{data("n", SubNVS, 0x9000, 0x5000)}},
		{"table elsewhere", "n,data,nvs,,0x5000", CSVOptions{TableOffset: 0xA000}, []Entry{data("n", SubNVS, 0xB000, 0x5000)}},
		{"bootloader and table entries", "bootloader,bootloader,primary,,\npt,partition_table,primary,,\nn,data,nvs,,0x5000\nbo,bootloader,ota,,",
			CSVOptions{BootloaderOffset: 0x1000},
			[]Entry{{Label: "bootloader", Type: TypeBootloader, SubType: SubPrimary, Offset: 0x1000, Size: 0x7000},
				{Label: "pt", Type: TypePartitionTable, SubType: SubPrimary, Offset: 0x8000, Size: 0x1000},
				data("n", SubNVS, 0x9000, 0x5000),
				{Label: "bo", Type: TypeBootloader, SubType: SubOTA, Offset: 0xE000, Size: 0x7000}}},
		{"empty", "# nothing\n", CSVOptions{}, []Entry{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseCSVWith(strings.NewReader(tc.csv), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Entries, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got.Entries, tc.want)
			}
			again, err := ParseCSVWith(strings.NewReader(got.CSV()), tc.opts)
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("CSV() round trip: %v\n%s", err, got.CSV())
			}
		})
	}
}

func TestParseCSVErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		csv    string
		line   int
		offset int
		want   string
	}{
		{"empty type", "n,,nvs,,0x1000", 1, 0, "a type"},
		{"unknown type", "\nn,dta,nvs,,0x1000", 2, 1, "a type"},
		{"type too big", "n,256,0,,0x1000", 1, 0, "a type"},
		{"unknown subtype", "n,data,nvss,,0x1000", 1, 0, "data subtype"},
		{"app without subtype", "f,app,,,1M", 1, 0, "subtype for an app"},
		{"no size", "n,data,nvs,,", 1, 0, "a size"},
		{"octal-looking decimal", "n,data,nvs,010,0x1000", 1, 0, "an offset"},
		{"bad size", "n,data,nvs,,12x", 1, 0, "a size"},
		{"unknown flag", "n,data,nvs,,0x3000,secret", 1, 0, "flags"},
		{"long name", "a_name_of_17_byte,data,nvs,,0x3000", 1, 0, "16 bytes"},
		{"env var", "n,data,nvs,$OFFSET,0x3000", 1, 0, "environment"},
		{"below the table", "n,data,nvs,0x8000,0x3000", 1, 0, "after the partition table"},
		{"overlap", "a,data,nvs,,0x3000\nb,data,phy,0xA000,0x1000", 2, 19, "previous partition"},
		{"past 4 GiB", "a,data,nvs,0xFFFFF000,0x2000", 1, 0, "4 GiB"},
		{"recovery without offset", "r,bootloader,recovery,,", 1, 0, "recovery"},
		{"not UTF-8", "n,data,nvs,,0x3000\xff", 0, 18, "UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseCSV(strings.NewReader(tc.csv))
			fe, ok := errors.AsType[*FormatError](err)
			if !ok || fe.Line != tc.line || fe.Offset != tc.offset || !strings.Contains(fe.Want, tc.want) {
				t.Fatalf("err = %v, want line %d offset %d about %q", err, tc.line, tc.offset, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	base := func(extra ...Entry) Table {
		tb := DefaultTable()
		tb.Entries = append(tb.Entries, extra...)
		return tb
	}
	tests := []struct {
		name string
		tbl  Table
		opts ValidateOptions
		want []string // substrings, one per expected error; none: valid
	}{
		{"default", base(), ValidateOptions{FlashSize: 4 << 20}, nil},
		{"app offset", base(Entry{Label: "x", Type: TypeApp, SubType: SubTest, Offset: 0x318000, Size: 0x10000}), ValidateOptions{}, []string{"not aligned to 0x10000"}},
		{"data offset", base(Entry{Label: "x", Type: TypeData, SubType: SubFAT, Offset: 0x310800, Size: 0x1000}), ValidateOptions{}, []string{"not aligned to 0x1000"}},
		{"app size", base(Entry{Label: "x", Type: TypeApp, SubType: SubTest, Offset: 0x310000, Size: 0x10800}), ValidateOptions{}, []string{"multiple of 0x1000"}},
		{"readonly otadata", func() Table { tb := base(); tb.Entries[1].Flags = ReadOnly; return tb }(), ValidateOptions{}, []string{"always read-write"}},
		{"small rw nvs", func() Table { tb := base(); tb.Entries[0].Size = 0x2000; return tb }(), ValidateOptions{}, []string{"must be readonly"}},
		{"small ro nvs", func() Table { tb := base(); tb.Entries[0].Size = 0x2000; tb.Entries[0].Flags = ReadOnly; return tb }(), ValidateOptions{}, nil},
		{"otadata size", func() Table { tb := base(); tb.Entries[1].Size = 0x1000; return tb }(), ValidateOptions{}, []string{"must be 0x2000"}},
		{"two otadata", base(Entry{Label: "o2", Type: TypeData, SubType: SubOTAData, Offset: 0x310000, Size: 0x2000}), ValidateOptions{}, []string{"2 otadata"}},
		{"duplicate label", base(Entry{Label: "nvs", Type: TypeData, SubType: SubFAT, Offset: 0x310000, Size: 0x1000}), ValidateOptions{}, []string{"unique"}},
		{"overlap", base(Entry{Label: "x", Type: TypeData, SubType: SubFAT, Offset: 0x200000, Size: 0x1000}), ValidateOptions{}, []string{"overlaps \"ota_0\""}},
		{"inside a big one after a small one", Table{Entries: []Entry{
			{Label: "big", Type: TypeData, SubType: SubFAT, Offset: 0x10000, Size: 0x100000},
			{Label: "small", Type: TypeData, SubType: SubFAT, Offset: 0x20000, Size: 0x1000},
			{Label: "late", Type: TypeData, SubType: SubFAT, Offset: 0x40000, Size: 0x1000}}}, ValidateOptions{},
			[]string{"\"small\"", "\"late\""}},
		{"below the table", base(Entry{Label: "x", Type: TypeData, SubType: SubFAT, Offset: 0x8000, Size: 0x1000}), ValidateOptions{}, []string{"below 0x9000"}},
		{"past flash", base(), ValidateOptions{FlashSize: 2 << 20}, []string{"past the end", "past the end"}},
		{"table elsewhere", base(), ValidateOptions{TableOffset: 0xC000}, []string{"0x9000 is below 0xd000"}},
		{"too many entries", Table{Entries: make([]Entry, 95)}, ValidateOptions{}, []string{"do not fit"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.tbl.Validate(tc.opts)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("valid, want errors")
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Fatalf("%q lacks %q", msg, w)
				}
				msg = strings.Replace(msg, w, "", 1)
			}
			if _, ok := errors.AsType[*ValidationError](err); !ok {
				t.Fatalf("%v holds no *ValidationError", err)
			}
		})
	}
}

func TestEncrypted(t *testing.T) {
	t.Parallel()
	tbl := DefaultTable()
	tests := []struct {
		e    Entry
		want bool
	}{
		{Entry{Type: TypeApp, SubType: SubFactory}, true},
		{Entry{Type: TypeApp, SubType: SubOTA0 + 1}, true},
		{Entry{Type: TypeApp, SubType: SubTest}, true},
		{Entry{Type: TypeData, SubType: SubOTAData}, true},
		{Entry{Type: TypeData, SubType: SubNVSKeys}, true},
		{Entry{Type: TypeBootloader, SubType: SubOTA}, true},
		{Entry{Type: TypePartitionTable, SubType: SubOTA}, true},
		{Entry{Type: TypeData, SubType: SubNVS}, false},
		{Entry{Type: TypeData, SubType: SubPHY}, false},
		{Entry{Type: TypeData, SubType: SubSPIFFS, Flags: Encrypted}, true},
		{Entry{Type: 0x40, SubType: 0}, false},
		{Entry{Type: 0x40, SubType: 0, Flags: Encrypted | ReadOnly}, true},
	}
	for _, tc := range tests {
		if got := tbl.Encrypted(tc.e); got != tc.want {
			t.Errorf("Encrypted(%s/%s flags %v) = %v", tc.e.Type, SubTypeName(tc.e.Type, tc.e.SubType), tc.e.Flags, got)
		}
	}
	var enc []string
	for _, e := range tbl.Entries {
		if tbl.Encrypted(e) {
			enc = append(enc, e.Label)
		}
	}
	if got := strings.Join(enc, ","); got != "otadata,factory,ota_0,ota_1" {
		t.Fatalf("encrypted in the default table: %s", got)
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ got, want string }{
		{TypeApp.String(), "app"}, {Type(0x40).String(), "64"},
		{SubTypeName(TypeApp, SubOTA0+15), "ota_15"}, {SubTypeName(TypeApp, SubTEE1), "tee_1"},
		{SubTypeName(TypeData, SubOTAData), "ota"}, {SubTypeName(TypeData, SubLittleFS), "littlefs"},
		{SubTypeName(TypeBootloader, SubRecovery), "recovery"}, {SubTypeName(0x40, 3), "3"},
		{(Encrypted | ReadOnly).String(), "encrypted:readonly"}, {Flags(4).String(), ""},
		{sizeString(0x6000), "24K"}, {sizeString(0x100000), "1M"}, {sizeString(0x1234), "0x1234"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q want %q", tc.got, tc.want)
		}
	}
}

func seedFiles(f *testing.F, pattern string) {
	files, _ := filepath.Glob(filepath.Join("testdata", pattern))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzParse(f *testing.F) {
	seedFiles(f, "*.bin")
	f.Fuzz(func(t *testing.T, b []byte) {
		tbl, err := Parse(b)
		if err != nil {
			fe, ok := errors.AsType[*FormatError](err)
			if !ok || fe.Offset < 0 || fe.Offset > len(b) || fe.Line != 0 {
				t.Fatalf("error %v does not name an offset in the input", err)
			}
			return
		}
		_ = tbl.Validate(ValidateOptions{FlashSize: 4 << 20})
		out, err := tbl.MarshalBinary()
		if err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		again, err := Parse(out)
		if err != nil || !reflect.DeepEqual(normal(again), normal(tbl)) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, again, tbl)
		}
		for _, e := range tbl.Entries {
			tbl.Encrypted(e)
		}
	})
}

func FuzzParseCSV(f *testing.F) {
	seedFiles(f, "*.csv")
	f.Add([]byte("bootloader,bootloader,primary,,\npt,partition_table,primary,,\nn,data,nvs,,-0x10000,readonly"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tbl, err := ParseCSV(bytes.NewReader(b))
		if err != nil {
			fe, ok := errors.AsType[*FormatError](err)
			if !ok || fe.Offset < 0 || fe.Offset > len(b) {
				t.Fatalf("error %v does not name an offset in the input", err)
			}
			return
		}
		again, err := ParseCSV(strings.NewReader(tbl.CSV()))
		if err != nil || !reflect.DeepEqual(normal(again), normal(tbl)) {
			t.Fatalf("CSV round trip: %v\n%s", err, tbl.CSV())
		}
		if out, err := tbl.MarshalBinary(); err == nil {
			bin, err := Parse(out)
			if err != nil || !reflect.DeepEqual(normal(bin), normal(tbl)) {
				t.Fatalf("binary round trip: %v", err)
			}
		}
	})
}

// normal makes an empty table compare equal to a nil one.
func normal(t Table) Table {
	if len(t.Entries) == 0 {
		t.Entries = nil
	}
	return t
}
