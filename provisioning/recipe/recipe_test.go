package recipe

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"fuseline/esp/chip"
)

func TestParseValid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file  string
		check func(t *testing.T, r *Recipe)
	}{
		{"full-s3.yaml", func(t *testing.T, r *Recipe) {
			if r.Name != "thermostat-s3" || r.Chip.ID != chip.ESP32S3 {
				t.Errorf("name/chip = %q/%v", r.Name, r.Chip.ID)
			}
			if r.FlashEncryption.Scheme != chip.XTSAES256 || r.WriteMode != ChipEncrypted {
				t.Errorf("scheme/mode = %v/%v", r.FlashEncryption.Scheme, r.WriteMode)
			}
			if len(r.SecureBoot.Keys) != 2 || len(r.SecureBoot.Revoke) != 1 || r.SecureBoot.Revoke[0] != 2 {
				t.Errorf("secure boot = %+v", r.SecureBoot)
			}
			if r.AntiRollback.Floor != 2 || r.Verify.BootTimeout != 20*time.Second || !r.Escrow.Enabled {
				t.Errorf("floor/timeout/escrow = %d/%v/%v", r.AntiRollback.Floor, r.Verify.BootTimeout, r.Escrow.Enabled)
			}
			if r.SecureBoot.Keys[1].Line != 9 || r.SecureBoot.Keys[1].Field != "secure_boot.keys[1]" {
				t.Errorf("key ref = %+v", r.SecureBoot.Keys[1])
			}
		}},
		{"minimal-c3.yaml", func(t *testing.T, r *Recipe) {
			// Defaults: strict lockdown, secure download, host-encrypted, every verification but the probe.
			want := Lockdown{JTAG: true, DirectBoot: true, DownloadCaches: true, ManualEncryption: true, Download: DownloadSecure}
			if r.Lockdown != want {
				t.Errorf("lockdown = %+v, want %+v", r.Lockdown, want)
			}
			if r.WriteMode != HostEncrypted || r.Release.Format != FormatAuto || r.FlashEncryption.Mode != "release" {
				t.Errorf("defaults: %v %v %q", r.WriteMode, r.Release.Format, r.FlashEncryption.Mode)
			}
			if !r.Verify.MD5 || !r.Verify.DecryptAndVerify || r.Verify.SPIProbe || !r.Verify.BootCheck || r.Verify.BootTimeout != DefaultBootTimeout {
				t.Errorf("verify defaults: %+v", r.Verify)
			}
		}},
		{"esp32.yaml", func(t *testing.T, r *Recipe) {
			if r.Chip.ID != chip.ESP32 || r.FlashEncryption.Scheme != chip.AES256Classic || r.Lockdown.Download != DownloadDisabled {
				t.Errorf("esp32: %v %v %v", r.Chip.ID, r.FlashEncryption.Scheme, r.Lockdown.Download)
			}
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			r, err := Parse(tc.file, b)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tc.check(t, r)
			mustRoundTrip(t, r)
		})
	}
}

const base = `chip: esp32s3
release:
  path: build
secure_boot:
  keys: [key1.pub.pem]
flash_encryption:
  scheme: xts-aes-128
`

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		yaml string
		want []string // each must appear in one error line
	}{
		{"unknown top-level key", base + "chipp: esp32s3\n", []string{"r.yaml:8:1: chipp: unknown field"}},
		{"unknown nested key", base + "lockdown:\n  jtagg: true\n", []string{"r.yaml:9:3: lockdown.jtagg: unknown field (known here: direct_boot, download, download_caches, jtag, manual_encryption)"}},
		{"bad chip", strings.Replace(base, "esp32s3", "esp8266", 1), []string{`r.yaml:1:7: chip: "esp8266" is not a supported chip`}},
		{"bad scheme for chip", strings.Replace(strings.Replace(base, "esp32s3", "esp32c3", 1), "xts-aes-128", "xts-aes-256", 1), []string{"r.yaml:7:11: flash_encryption.scheme: ESP32-C3 does not support xts-aes-256"}},
		{"unknown scheme", strings.Replace(base, "xts-aes-128", "aes", 1), []string{`r.yaml:7:11: flash_encryption.scheme: "aes" is not one of xts-aes-128, xts-aes-256, aes-256-classic`}},
		{"bool as string", base + "lockdown:\n  jtag: yes\n", []string{`r.yaml:9:9: lockdown.jtag: want true or false, got the string "yes"`}},
		{"download mode", base + "lockdown: {download: maybe}\n", []string{`r.yaml:8:22: lockdown.download: "maybe" is not one of secure, disabled, enabled`}},
		{"write mode", base + "write_mode: fast\n", []string{`r.yaml:8:13: write_mode: "fast" is not one of host-encrypted, chip-encrypted`}},
		{"too many keys", strings.Replace(base, "[key1.pub.pem]", "[a, b, c, d]", 1), []string{"r.yaml:5:9: secure_boot.keys: want 1 to 3 public keys, got 4"}},
		{"no keys", strings.Replace(base, "[key1.pub.pem]", "[]", 1), []string{"r.yaml:5:9: secure_boot.keys: want 1 to 3 public keys, got 0"}},
		{"revoke used slot", base + "  revoke: [0]\n", nil}, // indentation puts revoke under flash_encryption
		{"revoke used slot 2", strings.Replace(base, "[key1.pub.pem]", "[a, b]\n  revoke: [1, 2]", 1), []string{"secure_boot.revoke[0]: slot 1 holds key 1 of this recipe"}},
		{"revoke bad slot", strings.Replace(base, "[key1.pub.pem]", "[a]\n  revoke: [3]", 1), []string{"secure_boot.revoke[0]: digest slots are 0…2, got 3"}},
		{"revoke twice", strings.Replace(base, "[key1.pub.pem]", "[a]\n  revoke: [2, 2]", 1), []string{"r.yaml:6:15: secure_boot.revoke[1]: slot 2 is listed twice"}},
		{"revoke leaves a slot open", strings.Replace(base, "[key1.pub.pem]", "[a]\n  revoke: [2]", 1), []string{"r.yaml:6:11: secure_boot.revoke: leaves unused slot 1 open; every unused slot is revoked by default"}},
		{"revoke nothing without the opt-out", strings.Replace(base, "[key1.pub.pem]", "[a]\n  revoke: []", 1), []string{"secure_boot.revoke: leaves unused slot 1, 2 open"}},
		{"opt-out is a bool", strings.Replace(base, "[key1.pub.pem]", "[a]\n  keep_unused_slots_open: yes", 1), []string{`r.yaml:6:27: secure_boot.keep_unused_slots_open: want true or false, got the string "yes"`}},
		{"esp32 revoke", "chip: esp32\nrelease: {path: b}\nsecure_boot: {keys: [k], revoke: [1]}\nflash_encryption: {scheme: aes-256-classic}\nlockdown: {download: disabled}\n", []string{"r.yaml:3:34: secure_boot.revoke: ESP32 has no key revocation"}},
		{"esp32 keep slots open", "chip: esp32\nrelease: {path: b}\nsecure_boot: {keys: [k], keep_unused_slots_open: true}\nflash_encryption: {scheme: aes-256-classic}\nlockdown: {download: disabled}\n", []string{"r.yaml:3:50: secure_boot.keep_unused_slots_open: ESP32 has 1 digest slot and no key revocation"}},
		{"floor too high", base + "anti_rollback: {floor: 17}\n", []string{"r.yaml:8:24: anti_rollback.floor: 17 is above the 16 versions"}},
		{"floor negative", base + "anti_rollback: {floor: -1}\n", []string{"anti_rollback.floor: a secure version cannot be negative"}},
		{"floor string", base + "anti_rollback: {floor: two}\n", []string{`r.yaml:8:24: anti_rollback.floor: want a whole number, got the string "two"`}},
		{"missing chip", strings.Replace(base, "chip: esp32s3\n", "", 1), []string{"chip: missing: which chip the recipe is for is required"}},
		{"missing release path", strings.Replace(base, "  path: build\n", "  format: signed\n  trust: [ca.pem]\n", 1), []string{"release.path: missing"}},
		{"signed without trust", strings.Replace(base, "  path: build\n", "  path: build\n  format: signed\n", 1), []string{"release.trust: missing: a signed release needs at least one trust anchor"}},
		{"esp-idf with trust", strings.Replace(base, "  path: build\n", "  path: build\n  format: esp-idf\n  trust: [ca.pem]\n", 1), []string{"release: trust, crls and signers apply to signed releases"}},
		{"missing scheme", strings.Replace(base, "  scheme: xts-aes-128\n", "  mode: release\n", 1), []string{"flash_encryption.scheme: missing"}},
		{"development mode", base + "  mode: development\n", []string{`r.yaml:8:9: flash_encryption.mode: "development" is not supported`}},
		{"duplicate key", base + "chip: esp32c3\n", []string{"r.yaml:8:1: chip: given twice (first on line 1)"}},
		{"escrow without recipient", base + "escrow: {enabled: true}\n", []string{"escrow.recipient: missing"}},
		{"escrow bad recipient", base + "escrow: {enabled: true, recipient: age1nope}\n", []string{"r.yaml:8:36: escrow.recipient: not an age X25519 recipient"}},
		{"boot timeout", base + "verify: {boot_timeout: 5}\n", []string{"verify.boot_timeout: want a string, got the number 5"}},
		{"boot timeout range", base + "verify: {boot_timeout: 1h}\n", []string{`verify.boot_timeout: want a duration from 1s to 10m such as 10s, got "1h"`}},
		{"version", "version: 2\n" + base, []string{"r.yaml:1:10: version: format version 2 is not supported"}},
		{"section is a list", base + "lockdown: [jtag]\n", []string{"r.yaml:8:11: lockdown: want a mapping"}},
		{"key list is a string", strings.Replace(base, "[key1.pub.pem]", "key1.pub.pem", 1), []string{"r.yaml:5:9: secure_boot.keys: want a list"}},
		{"anchor", base + "verify: &v {md5: true}\n", []string{"verify: YAML anchors and aliases are not allowed"}},
		{"syntax", base + "lockdown: {jtag: true\n", []string{"r.yaml:8: YAML syntax: did not find expected ',' or '}'"}},
		{"two documents", base + "---\nchip: esp32\n", []string{"r.yaml:8: more than one YAML document"}},
		{"empty", "", []string{"r.yaml: empty recipe"}},
		{"esp32 secure download", "chip: esp32\nrelease: {path: b}\nsecure_boot: {keys: [k]}\nflash_encryption: {scheme: aes-256-classic}\n", []string{"r.yaml:1:7: lockdown.download: ESP32 has no secure download mode"}},
		{"esp32 two keys", "chip: esp32\nrelease: {path: b}\nsecure_boot: {keys: [k, l]}\nflash_encryption: {scheme: aes-256-classic}\nlockdown: {download: enabled}\n", []string{"r.yaml:3:25: secure_boot.keys: ESP32 holds one Secure Boot v2 key digest"}},
		{"subdevices is a list", base + "subdevices: [motor]\n", []string{"r.yaml:8:13: subdevices: want a mapping of sub-device names"}},
		{"subdevice bad name", base + "subdevices:\n  Motor: {link: virtual:m, chip: esp32c3}\n", []string{`r.yaml:9:3: subdevices.Motor: "Motor" is not a sub-device name`}},
		{"subdevice unknown key", base + "subdevices:\n  motor: {link: virtual:m, chip: esp32c3, baud: 9600}\n", []string{"r.yaml:9:43: subdevices.motor.baud: unknown field (known here: chip, link)"}},
		{"subdevice bad link", base + "subdevices:\n  motor: {link: serial:/dev/ttyUSB1, chip: esp32c3}\n", []string{`r.yaml:9:17: subdevices.motor.link: "serial:/dev/ttyUSB1" is not a link`}},
		{"subdevice bad port", base + "subdevices:\n  motor: {link: \"tcp://host:99999\", chip: esp32c3}\n", []string{`r.yaml:9:17: subdevices.motor.link: "tcp://host:99999": want tcp://HOST:PORT`}},
		{"subdevice no host", base + "subdevices:\n  motor: {link: \"tcp://:4000\", chip: esp32c3}\n", []string{`subdevices.motor.link: "tcp://:4000": want tcp://HOST:PORT`}},
		{"subdevice bad virtual name", base + "subdevices:\n  motor: {link: virtual:../x, chip: esp32c3}\n", []string{`r.yaml:9:17: subdevices.motor.link: "virtual:../x": want virtual:NAME`}},
		{"subdevice bad chip", base + "subdevices:\n  motor: {link: virtual:m, chip: esp8266}\n", []string{`r.yaml:9:34: subdevices.motor.chip: "esp8266" is not a supported chip`}},
		{"subdevice missing link and chip", base + "subdevices:\n  motor: {}\n", []string{"subdevices.motor.link: missing", "subdevices.motor.chip: missing"}},
		{"subdevice not a mapping", base + "subdevices:\n  motor: virtual:m\n", []string{`r.yaml:9:10: subdevices.motor: want a mapping (link: …, chip: …), got the string "virtual:m"`}},
		{"subdevice twice", base + "subdevices:\n  motor: {link: virtual:m, chip: esp32c3}\n  motor: {link: virtual:n, chip: esp32c3}\n", []string{"r.yaml:10:3: subdevices.motor: given twice (first on line 9)"}},
		{"several errors at once", base + "write_mode: x\nlockdown: {jtag: 1}\n", []string{"r.yaml:8:13: write_mode", "r.yaml:9:18: lockdown.jtag"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := Parse("r.yaml", []byte(tc.yaml))
			if tc.want == nil {
				// "revoke: [0]" indented under flash_encryption is an unknown field there.
				if err == nil || !strings.Contains(err.Error(), "flash_encryption.revoke: unknown field") {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", r)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain %q", err, w)
				}
			}
			// Every joined error is an *Error naming the file.
			var list []error
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				list = j.Unwrap()
			} else {
				list = []error{err}
			}
			for _, e := range list {
				re, ok := errors.AsType[*Error](e)
				if !ok || re.File != "r.yaml" {
					t.Errorf("%v is not a *Error for r.yaml", e)
				}
			}
		})
	}
}

func TestParseSubdevices(t *testing.T) {
	t.Parallel()
	y := base + `subdevices:
  radio: {link: "tcp://127.0.0.1:4000", chip: esp32}
  motor:
    link: virtual:motor-board
    chip: esp32c3
`
	r, err := Parse("r.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Subdevices) != 2 {
		t.Fatalf("subdevices %+v", r.Subdevices)
	}
	radio, ok := r.Subdevice("radio")
	if addr, tcp := radio.TCP(); !ok || !tcp || addr != "127.0.0.1:4000" || radio.Chip.ID != chip.ESP32 || radio.Line != 9 {
		t.Errorf("radio = %+v", radio)
	}
	motor, ok := r.Subdevice("motor")
	if name, virt := motor.Virtual(); !ok || !virt || name != "motor-board" || motor.Chip.ID != chip.ESP32C3 {
		t.Errorf("motor = %+v", motor)
	}
	if _, ok := r.Subdevice("pump"); ok {
		t.Error("found a sub-device the recipe does not name")
	}
	mustRoundTrip(t, r)
	// An empty section is no sub-devices.
	r, err = Parse("r.yaml", []byte(base+"subdevices:\n"))
	if err != nil || len(r.Subdevices) != 0 {
		t.Fatalf("empty section: %v %+v", err, r)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	r, err := Load(filepath.Join("testdata", "full-s3.yaml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want, err := os.ReadFile(filepath.Join("testdata", "key1.digest.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.SecureBoot.Digests) != 2 || !bytes.Equal(r.SecureBoot.Digests[0][:], want) {
		t.Fatalf("digest of key1 = %x, want %x (espsecure)", r.SecureBoot.Digests, want)
	}
	if r.SecureBoot.Digests[0] == r.SecureBoot.Digests[1] {
		t.Fatal("two keys, one digest")
	}
	b, _ := os.ReadFile(filepath.Join("testdata", "full-s3.yaml"))
	if r.Source.SHA256 != sum(b) {
		t.Fatal("recipe hash is not the SHA-256 of the file")
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key, _ := os.ReadFile(filepath.Join("testdata", "key1.pub.pem"))
	write("k.pem", string(key))
	write("junk.pem", "not a key")
	for _, tc := range []struct{ name, yaml, want string }{
		{"missing key file", strings.Replace(base, "key1.pub.pem", "nope.pem", 1), "r.yaml:5:10: secure_boot.keys[0]: cannot read nope.pem"},
		{"not a key", strings.Replace(base, "key1.pub.pem", "junk.pem", 1), "r.yaml:5:10: secure_boot.keys[0]: junk.pem is not an RSA-3072 public key"},
		{"same key twice", strings.Replace(base, "key1.pub.pem", "k.pem, k.pem", 1), "secure_boot.keys[1]: k.pem is the same key as secure_boot.keys[0]"},
		{"bad trust anchor", strings.Replace(strings.Replace(base, "key1.pub.pem", "k.pem", 1), "  path: build\n", "  path: build\n  format: signed\n  trust: [junk.pem]\n", 1), "release.trust[0]: junk.pem: release: no certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := write(strings.ReplaceAll(tc.name, " ", "-")+".yaml", tc.yaml)
			_, err := Load(p)
			if err == nil {
				t.Fatal("Load accepted it")
			}
			got := strings.ReplaceAll(err.Error(), p, "r.yaml")
			if !strings.Contains(got, tc.want) {
				t.Errorf("error %q does not contain %q", got, tc.want)
			}
		})
	}
	if _, err := Load(filepath.Join(dir, "absent.yaml")); err == nil || !strings.Contains(err.Error(), "cannot read the recipe") {
		t.Errorf("missing recipe: %v", err)
	}
}

// mustRoundTrip checks that Marshal writes what Parse reads back the same.
func mustRoundTrip(t *testing.T, r *Recipe) {
	t.Helper()
	b, err := r.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	r2, err := Parse(r.Source.File, b)
	if err != nil {
		t.Fatalf("Parse(Marshal(r)): %v\n%s", err, b)
	}
	b2, err := r2.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatalf("round trip differs:\n%s\n---\n%s", b, b2)
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"full-s3.yaml", "minimal-c3.yaml", "esp32.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(base + "lockdown: {jtag: 1}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte(base + "subdevices:\n  motor: {link: \"tcp://h:1\", chip: esp32c3}\n  radio: {link: virtual:r, chip: esp32s3}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse("f.yaml", b)
		if err != nil {
			var list []error
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				list = j.Unwrap()
			} else {
				list = []error{err}
			}
			for _, e := range list {
				re, ok := errors.AsType[*Error](e)
				if !ok || re.File != "f.yaml" || re.Line < 0 {
					t.Fatalf("error %v is not a *Error naming the file", e)
				}
			}
			return
		}
		mustRoundTrip(t, r)
	})
}

// TestRevokeDefault: every unused digest slot is revoked unless the recipe
// says keep_unused_slots_open, and what stays open is stated (OpenSlots),
// on each chip from its own slot count.
func TestRevokeDefault(t *testing.T) {
	t.Parallel()
	s3 := func(sb string) string {
		return "chip: esp32s3\nrelease: {path: b}\nsecure_boot: " + sb + "\nflash_encryption: {scheme: xts-aes-128}\n"
	}
	for _, tc := range []struct {
		name         string
		yaml         string
		revoke, open []int
	}{
		{"one key", s3("{keys: [a]}"), []int{1, 2}, nil},
		{"two keys", s3("{keys: [a, b]}"), []int{2}, nil},
		{"three keys", s3("{keys: [a, b, c]}"), nil, nil},
		{"all unused listed", s3("{keys: [a], revoke: [2, 1]}"), []int{1, 2}, nil},
		{"opt-out", s3("{keys: [a], keep_unused_slots_open: true}"), nil, []int{1, 2}},
		{"opt-out, one revoked", s3("{keys: [a], revoke: [2], keep_unused_slots_open: true}"), []int{2}, []int{1}},
		{"opt-out false", s3("{keys: [a], keep_unused_slots_open: false}"), []int{1, 2}, nil},
		{"c3", "chip: esp32c3\nrelease: {path: b}\nsecure_boot: {keys: [a]}\nflash_encryption: {scheme: xts-aes-128}\n", []int{1, 2}, nil},
		{"esp32: one slot, no revocation", "chip: esp32\nrelease: {path: b}\nsecure_boot: {keys: [a]}\nflash_encryption: {scheme: aes-256-classic}\nlockdown: {download: disabled}\n", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := Parse("r.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(r.SecureBoot.Revoke, tc.revoke) || !slices.Equal(r.OpenSlots(), tc.open) {
				t.Errorf("revoke %v, open %v; want %v, %v", r.SecureBoot.Revoke, r.OpenSlots(), tc.revoke, tc.open)
			}
			mustRoundTrip(t, r)
			b, err := r.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			r2, err := Parse("r2.yaml", b)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(r2.OpenSlots(), tc.open) || r2.SecureBoot.KeepUnusedSlotsOpen != r.SecureBoot.KeepUnusedSlotsOpen {
				t.Errorf("written and read back: open %v, want %v", r2.OpenSlots(), tc.open)
			}
		})
	}
}
