package release_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fuseline/release"
)

var update = flag.Bool("update", false, "rewrite testdata/manifest-golden.json (made by our own Marshal)")

// goldenManifest is a fixed manifest with every kind of entry.
func goldenManifest() *release.Manifest {
	sum := func(s string) release.Digest { return sha256.Sum256([]byte(s)) }
	return &release.Manifest{
		Format: 1, Product: "Fuseline Demo", Chip: "esp32s3", Version: "v1.4.0-rc.1+build.7", SecureVersion: 3,
		Created: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC),
		Files: []release.File{
			{Role: release.RoleBootloader, Offset: 0x0, Path: "bootloader.bin", Size: 20480, SHA256: sum("bootloader")},
			{Role: release.RolePartitionTable, Offset: 0x8000, Path: "partition-table.bin", Size: 3072, SHA256: sum("pt")},
			{Role: release.RoleOTAData, Offset: 0xd000, Path: "otadata.bin", Size: 8192, SHA256: sum("otadata")},
			{Role: release.RoleFactory, Offset: 0x10000, Path: "app/factory.bin", Size: 1048576, SHA256: sum("factory")},
			{Role: release.AppOTA(0), Offset: 0x110000, Path: "app/ota_0.bin", Size: 1048576, SHA256: sum("ota0")},
			{Role: "data/nvs_keys", Offset: 0x210000, Path: "nvs-keys.bin", Size: 4096, SHA256: sum("nvs")},
			{Role: release.RoleSubdevice, Device: "motor", Offset: 0x0, Path: "motor/fw.bin", Size: 65536, SHA256: sum("motor")},
			{Role: release.RoleSubdevice, Device: "radio.1", Offset: 0x8000, Path: "radio.bin", Size: 100, SHA256: sum("radio")},
		},
	}
}

func TestManifestGolden(t *testing.T) {
	t.Parallel()
	golden := filepath.Join("testdata", "manifest-golden.json")
	b, err := goldenManifest().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(golden, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("Marshal differs from %s:\n got %s\nwant %s", golden, b, want)
	}
	m, err := release.ParseManifest(want)
	if err != nil {
		t.Fatal(err)
	}
	again, err := m.Marshal()
	if err != nil || !bytes.Equal(again, want) {
		t.Fatalf("round trip: %v\n%s", err, again)
	}
	if got := m.Devices(); strings.Join(got, ",") != "motor,radio.1" {
		t.Fatalf("Devices = %q", got)
	}
	if got := len(m.BoardFiles()); got != 6 {
		t.Fatalf("BoardFiles = %d", got)
	}
	// The canonical form is also what encoding/json would re-read as equal.
	var generic map[string]any
	if err := json.Unmarshal(want, &generic); err != nil || generic["product"] != "Fuseline Demo" {
		t.Fatalf("generic JSON: %v %v", err, generic)
	}
}

// Any change of the bytes, even one JSON considers equal, is caught before
// a signature is checked, with the offset of the first difference.
func TestManifestNotCanonical(t *testing.T) {
	t.Parallel()
	canon, err := goldenManifest().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s := string(canon)
	indented := func() string {
		var b bytes.Buffer
		json.Indent(&b, canon, "", "  ")
		return b.String()
	}
	cases := []struct {
		name   string
		in     string
		offset int    // -1: do not check
		field  string // "" : do not check
		got    string // substring of the error
	}{
		{"pretty printed", indented(), 1, "", `want canonical JSON`},
		{"trailing newline", s + "\n", len(s), "", `want canonical JSON end of input, got "\n"`},
		{"space after colon", strings.Replace(s, `"chip":`, `"chip": `, 1), len(`{"chip":`), "", ""},
		{"keys reordered", `{"format":1,` + strings.Replace(s[1:], `,"format":1`, "", 1), 2, "", `got "format`},
		{"escaped letter", strings.Replace(s, `"Fuseline Demo"`, `"Fuseline \u0044emo"`, 1), strings.Index(s, `Demo"`), "", ""},
		{"escaped slash", strings.Replace(s, `"motor/fw.bin"`, `"motor\/fw.bin"`, 1), strings.Index(s, `/fw.bin`), "", ""},
		{"number with fraction", strings.Replace(s, `"format":1`, `"format":1.0`, 1), -1, "format", "JSON number"},
		{"number with exponent", strings.Replace(s, `"size":100`, `"size":1e2`, 1), strings.Index(s, `"size":100`) + len(`"size":`), "files[7].size", "JSON number 1e2"},
		{"leading zero", strings.Replace(s, `"secure_version":3`, `"secure_version":03`, 1), -1, "", "JSON"},
		{"duplicate key", strings.Replace(s, `"format":1`, `"format":1,"format":1`, 1), strings.Index(s, `"format":1`) + len(`"format":1,`), "format", "duplicate key"},
		{"unknown key", strings.Replace(s, `"format":1`, `"format":1,"note":"x"`, 1), strings.Index(s, `"format":1`) + len(`"format":1,`), "note", "unknown key"},
		{"unknown file key", strings.Replace(s, `"offset":0,"path":"bootloader.bin"`, `"offset":0,"p":1,"path":"bootloader.bin"`, 1), -1, "files[0].p", "unknown key"},
		{"empty device written out", strings.Replace(s, `{"offset":0,"path":"bootloader.bin"`, `{"device":"","offset":0,"path":"bootloader.bin"`, 1), strings.Index(s, `{"offset":0,"path":"bootloader.bin"`) + 2, "", `got "device`},
		{"uppercase hex", strings.Replace(s, sha("bootloader"), strings.ToUpper(sha("bootloader")), 1), strings.Index(s, sha("bootloader")) - 1, "files[0].sha256", "64 lowercase hex digits"},
		{"time with offset", strings.Replace(s, `2026-11-21T10:00:00Z`, `2026-11-21T11:00:00+01:00`, 1), strings.Index(s, `"2026`), "created", "UTC"},
		{"time with fraction", strings.Replace(s, `2026-11-21T10:00:00Z`, `2026-11-21T10:00:00.5Z`, 1), strings.Index(s, `"2026`), "created", "UTC"},
		{"not an object", `[1,2]`, 0, "", "a JSON object"},
		{"truncated", s[:len(s)/2], -1, "", "JSON"},
		{"empty", ``, 0, "", ""},
		{"invalid UTF-8", strings.Replace(s, "Demo", "D\xffmo", 1), strings.Index(s, "Demo") + 1, "", "UTF-8"},
		{"trailing garbage", s + "x", len(s), "", "end of input"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := release.ParseManifest([]byte(tc.in))
			fe, ok := errors.AsType[*release.FormatError](err)
			if !ok {
				t.Fatalf("err = %v, want *FormatError", err)
			}
			t.Logf("%v", err)
			if tc.offset >= 0 && fe.Offset != tc.offset {
				t.Errorf("offset = %d, want %d", fe.Offset, tc.offset)
			}
			if tc.field != "" && fe.Field != tc.field {
				t.Errorf("field = %q, want %q", fe.Field, tc.field)
			}
			if !strings.Contains(err.Error(), tc.got) {
				t.Errorf("error %q does not contain %q", err, tc.got)
			}
			if fe.Offset < 0 || fe.Offset > len(tc.in) {
				t.Errorf("offset %d outside input of %d bytes", fe.Offset, len(tc.in))
			}
		})
	}
}

func sha(s string) string { d := release.Digest(sha256.Sum256([]byte(s))); return d.String() }

// Valid JSON with a bad value: the error names the field and its offset.
func TestManifestValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		edit  func(m *release.Manifest)
		field string
		want  string
	}{
		{"format", func(m *release.Manifest) { m.Format = 2 }, "format", "want 1, got 2"},
		{"empty product", func(m *release.Manifest) { m.Product = "" }, "product", "empty"},
		{"control char in product", func(m *release.Manifest) { m.Product = "a\nb" }, "product", "control"},
		{"line separator", func(m *release.Manifest) { m.Product = "a\u2028b" }, "product", "non-printing"},
		{"chip alias", func(m *release.Manifest) { m.Chip = "ESP32-S3" }, "chip", "esp32s3|esp32c3|esp32"},
		{"unknown chip", func(m *release.Manifest) { m.Chip = "esp32h2" }, "chip", `"esp32h2"`},
		{"version", func(m *release.Manifest) { m.Version = "1.2" }, "version", "semantic version"},
		{"no files", func(m *release.Manifest) { m.Files = nil }, "files", "1 to 256 files"},
		{"bad role", func(m *release.Manifest) { m.Files[1].Role = "boot" }, "files[1].role", `"boot"`},
		{"role twice", func(m *release.Manifest) { m.Files[4].Role = release.RoleFactory }, "files[4].role", "app/factory again (first at files[3])"},
		{"unaligned", func(m *release.Manifest) { m.Files[3].Offset = 0x10001 }, "files[3].offset", "multiple of 0x1000"},
		{"overlap", func(m *release.Manifest) { m.Files[4].Offset = 0x100000 }, "files[4].offset", "overlaps files[3]"},
		{"subdevice regions are per device", func(m *release.Manifest) { m.Files[7].Offset = 0x0 }, "", ""},
		{"subdevice overlap", func(m *release.Manifest) { m.Files[7].Device = "motor" }, "files[7].offset", "overlaps files[6]"},
		{"device on board file", func(m *release.Manifest) { m.Files[0].Device = "x" }, "files[0].device", "only role subdevice"},
		{"subdevice without device", func(m *release.Manifest) { m.Files[6].Device = "" }, "files[6].device", "sub-device name"},
		{"path escapes", func(m *release.Manifest) { m.Files[0].Path = "../boot.bin" }, "files[0].path", "relative"},
		{"absolute path", func(m *release.Manifest) { m.Files[0].Path = "/boot.bin" }, "files[0].path", "relative"},
		{"backslash", func(m *release.Manifest) { m.Files[0].Path = `a\b` }, "files[0].path", "relative"},
		{"manifest as image", func(m *release.Manifest) { m.Files[0].Path = "manifest.json" }, "files[0].path", "relative"},
		{"same path", func(m *release.Manifest) { m.Files[1].Path = "bootloader.bin" }, "files[1].path", "again"},
		{"zero size", func(m *release.Manifest) { m.Files[0].Size = 0 }, "files[0].size", "1 byte"},
		{"past 4 GiB", func(m *release.Manifest) { m.Files[5].Size = 1 << 32 }, "files[5].size", "4 GiB"},
		{"table at 0xb000", func(m *release.Manifest) { m.Files[1].Offset = 0xb000 }, "", ""},
		{"bootloader off the ROM's offset", func(m *release.Manifest) { m.Chip = "esp32" }, "files[0].offset", "0x1000 (the ESP32 ROM loads the bootloader from there)"},
		{"table before the bootloader", func(m *release.Manifest) { m.Chip, m.Files[0].Offset, m.Files[1].Offset = "esp32", 0x1000, 0x0 },
			"files[1].offset", "a partition table after the bootloader at 0x1000, got 0x0"},
		{"table inside the bootloader", func(m *release.Manifest) { m.Files[1].Offset = 0x4000 }, "files[1].offset", "overlaps files[0]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := goldenManifest()
			tc.edit(m)
			err := m.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			fe, ok := errors.AsType[*release.FormatError](err)
			if !ok || fe.Field != tc.field || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want field %s containing %q", err, tc.field, tc.want)
			}
			// Marshal refuses too, and ParseManifest of a hand-made
			// canonical encoding reports the field's offset.
			if _, err := m.Marshal(); err == nil {
				t.Fatal("Marshal accepted an invalid manifest")
			}
		})
	}
}

func TestManifestFieldOffset(t *testing.T) {
	t.Parallel()
	canon, _ := goldenManifest().Marshal()
	in := strings.Replace(string(canon), `"role":"otadata"`, `"role":"ota"`, 1)
	_, err := release.ParseManifest([]byte(in))
	fe, ok := errors.AsType[*release.FormatError](err)
	if !ok || fe.Field != "files[2].role" || fe.Offset != strings.Index(in, `"ota"`) {
		t.Fatalf("err = %v (%+v), want files[2].role at %d", err, fe, strings.Index(in, `"ota"`))
	}
	in = strings.Replace(string(canon), `"size":100`, `"size":-100`, 1)
	_, err = release.ParseManifest([]byte(in))
	if fe, ok = errors.AsType[*release.FormatError](err); !ok || fe.Field != "files[7].size" || fe.Offset != strings.Index(in, `-100`) {
		t.Fatalf("err = %v, want files[7].size at %d", err, strings.Index(in, `-100`))
	}
	in = strings.Replace(string(canon), `"offset":32768,"path":"radio.bin"`, `"offset":"0x8000","path":"radio.bin"`, 1)
	_, err = release.ParseManifest([]byte(in))
	if fe, ok = errors.AsType[*release.FormatError](err); !ok || fe.Field != "files[7].offset" || fe.Offset != strings.Index(in, `"0x8000"`) {
		t.Fatalf("err = %v, want files[7].offset at %d", err, strings.Index(in, `"0x8000"`))
	}
}

func TestRoleValid(t *testing.T) {
	t.Parallel()
	for r, want := range map[release.Role]bool{
		"bootloader": true, "partition-table": true, "otadata": true, "app/factory": true, "app/test": true,
		"app/ota_0": true, "app/ota_15": true, "app/ota_16": false, "app/ota_01": false, "app/ota_": false,
		"data": true, "data/nvs": true, "data/": false, "data/a b": false, "data/12345678901234567": false,
		"subdevice": true, "app": false, "": false, "Bootloader": false, "app/ota_-1": false,
	} {
		if got := r.Valid(); got != want {
			t.Errorf("Role(%q).Valid() = %v, want %v", r, got, want)
		}
	}
	if !release.AppOTA(3).IsApp() || release.RoleBootloader.IsApp() {
		t.Error("IsApp")
	}
}

func TestCompareVersions(t *testing.T) {
	t.Parallel()
	// Each is older than the next (semver.org §11 example, plus "v").
	order := []string{"0.9.9", "1.0.0-alpha", "1.0.0-alpha.1", "v1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
		"1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "1.10.0", "2.0.0", "18446744073709551615.0.0"}
	for i := range order {
		for j := range order {
			got, err := release.CompareVersions(order[i], order[j])
			want := map[bool]int{true: -1, false: 1}[i < j]
			if i == j {
				want = 0
			}
			if err != nil || got != want {
				t.Errorf("CompareVersions(%s, %s) = %d, %v; want %d", order[i], order[j], got, err, want)
			}
		}
	}
	if c, err := release.CompareVersions("1.0.0+a", "v1.0.0+b"); err != nil || c != 0 {
		t.Errorf("build metadata must not count: %d %v", c, err)
	}
	for _, bad := range []string{"1", "1.2", "1.2.3.4", "01.2.3", "1.2.3-", "1.2.3-01", "1.2.3+", "1.2.3-a..b", "x.y.z", "", "1.2.3-ä"} {
		if _, err := release.CompareVersions(bad, "1.0.0"); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
