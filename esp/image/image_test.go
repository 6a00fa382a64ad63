package image

import (
	"bytes"
	"compress/zlib"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fuseline/esp/chip"
)

var update = flag.Bool("update", false, "rewrite the goldens this package's own code made (testdata/synth-*.bin, synth-digests.txt)")

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if i := strings.Index(line, ":"); i >= 0 {
			line = line[i+1:]
		}
		b.WriteString(strings.Join(strings.Fields(line), ""))
	}
	out, err := hex.DecodeString(b.String())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// workedExample is docs/esp-serial-and-images.md §5.2 as printed there
// (accepted by esptool 4.9.1 image_info per the doc's review log).
const workedExample = `
0000: e9 01 02 2f 00 50 37 40 ee 00 00 00 09 00 00 00
0010: 00 63 00 00 00 00 00 01 00 80 c8 3f 04 00 00 00
0020: 01 02 03 04 00 00 00 00 00 00 00 00 00 00 00 eb
0030: 6f 13 87 4d ec d5 ec a4 96 15 b9 ee b5 9f a5 fb
0040: b5 a8 67 9b 92 bb 27 8e 1b 87 d9 ff 7e 4a 04 86`

func TestWorkedExampleParses(t *testing.T) {
	t.Parallel()
	b := unhex(t, workedExample)
	file, err := os.ReadFile("testdata/worked-5.2.bin")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(file, b) {
		t.Fatal("testdata/worked-5.2.bin differs from the §5.2 listing")
	}
	img, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	h := img.Header
	if h.FlashMode != DIO || h.FlashSize != Size4MB || h.FlashFreq != Freq80M || h.EntryAddr != 0x40375000 ||
		h.WPPin != 0xEE || h.ChipID != chip.ESP32S3 || h.MinRevFull != 0 || h.MaxRevFull != 99 || !h.HashAppended {
		t.Fatalf("header = %+v", h)
	}
	if len(img.Segments) != 1 || img.Segments[0].LoadAddr != 0x3FC88000 || !bytes.Equal(img.Segments[0].Data, []byte{1, 2, 3, 4}) ||
		img.Segments[0].DataOffset() != 0x20 {
		t.Fatalf("segments = %+v", img.Segments)
	}
	if img.Checksum != 0xEB || img.ChecksumOffset != 0x2F || img.Length != 0x50 || len(img.Trailer) != 0 {
		t.Fatalf("checksum 0x%02x at 0x%x, length 0x%x", img.Checksum, img.ChecksumOffset, img.Length)
	}
	if want := sha256.Sum256(b[:0x30]); img.SHA256 != want {
		t.Fatalf("sha = %x", img.SHA256)
	}
	if img.App != nil || img.Bootloader != nil {
		t.Fatal("a 4-byte segment cannot hold a descriptor")
	}
	if err := Validate(img, chip.S3(), 0); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := img.SignedRegion(); ok {
		t.Fatal("no signature sector in an unsigned image")
	}
}

// TestSynthWorkedExample rebuilds §5.2 byte for byte from its parameters.
func TestSynthWorkedExample(t *testing.T) {
	t.Parallel()
	got, err := Synth(SynthOptions{
		Chip:     chip.S3(),
		Segments: []Segment{{LoadAddr: 0x3FC88000, Data: []byte{1, 2, 3, 4}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := unhex(t, workedExample); !bytes.Equal(got, want) {
		t.Fatalf("synth:\n%x\nwant:\n%x", got, want)
	}
	// And with everything spelled out instead of defaulted.
	got2, err := Synth(SynthOptions{
		Chip:      chip.S3(),
		EntryAddr: 0x40375000,
		Flash:     &FlashParams{Mode: DIO, Size: Size4MB, Freq: Freq80M},
		Rev:       &RevWindow{MinRev: 0, MinRevFull: 0, MaxRevFull: 99},
		Segments:  []Segment{{LoadAddr: 0x3FC88000, Data: []byte{1, 2, 3, 4}}},
	})
	if err != nil || !bytes.Equal(got, got2) {
		t.Fatalf("explicit options differ: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	good := unhex(t, workedExample)
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name   string
		in     []byte
		offset int
		want   string
	}{
		{"empty", nil, 0, "24-byte image header"},
		{"short header", good[:23], 0, "24-byte image header"},
		{"magic", mut(func(b []byte) []byte { b[0] = 0xEA; return b }), 0, "magic 0xE9"},
		{"segment count", mut(func(b []byte) []byte { b[1] = 17; return b }), 1, "segment count"},
		{"hash_appended", mut(func(b []byte) []byte { b[23] = 2; return b }), 23, "hash_appended"},
		{"missing segment header", good[:28], 24, "segment 0 header"},
		{"unaligned length", mut(func(b []byte) []byte { b[0x1C] = 5; return b }), 0x1C, "multiple of 4"},
		{"16 MiB segment", mut(func(b []byte) []byte { copy(b[0x1C:], []byte{0, 0, 0, 1}); return b }), 0x1C, "< 16 MiB"},
		{"segment past end", mut(func(b []byte) []byte { b[0x1C] = 0x80; return b }), 0x1C, "segment 0 data"},
		{"second segment header cut", mut(func(b []byte) []byte { b[1] = 2; return b[:0x2A] }), 0x24, "segment 1 header"},
		{"second segment declared", mut(func(b []byte) []byte { b[1] = 2; return b }), 0x30, "SHA-256"},
		{"no checksum", good[:0x2F], 0x24, "checksum byte"},
		{"bad checksum", mut(func(b []byte) []byte { b[0x2F] ^= 1; return b }), 0x2F, "checksum 0xEB"},
		{"bad data", mut(func(b []byte) []byte { b[0x20] ^= 1; return b }), 0x2F, "checksum 0xEA"},
		{"no hash", good[:0x40], 0x30, "appended SHA-256"},
		{"bad hash", mut(func(b []byte) []byte { b[0x4F] ^= 1; return b }), 0x30, "SHA-256"},
		{"header change breaks hash", mut(func(b []byte) []byte { b[2] = byte(QIO); return b }), 0x30, "SHA-256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(tc.in)
			fe, ok := errors.AsType[*FormatError](err)
			if !ok {
				t.Fatalf("err = %v, want *FormatError", err)
			}
			if fe.Offset != tc.offset || !strings.Contains(fe.Want, tc.want) {
				t.Fatalf("err = %v (offset 0x%x), want offset 0x%x and %q", err, fe.Offset, tc.offset, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "image: at offset 0x") {
				t.Fatalf("message %q does not start with the package and offset", err)
			}
		})
	}
}

func TestParseUnverifiedShowsBadChecksum(t *testing.T) {
	t.Parallel()
	b := unhex(t, workedExample)
	b[0x2F] = 0x00
	img, err := ParseUnverified(b)
	if err != nil {
		t.Fatal(err)
	}
	if img.Checksum != 0x00 || img.ComputedChecksum() != 0xEB {
		t.Fatalf("stored 0x%02x computed 0x%02x", img.Checksum, img.ComputedChecksum())
	}
	if err := img.Verify(); err == nil {
		t.Fatal("Verify accepted a bad checksum")
	}
}

func TestNoHashImage(t *testing.T) {
	t.Parallel()
	b, err := Synth(SynthOptions{Chip: chip.C3(), NoHash: true, Segments: []Segment{{LoadAddr: 0x3FC80000, Data: make([]byte, 12)}}})
	if err != nil {
		t.Fatal(err)
	}
	// 24 + 8 + 12 = 44 → checksum at 47, length 48.
	if len(b) != 48 || b[23] != 0 || b[47] != 0xEF {
		t.Fatalf("len %d, hash byte %d, checksum 0x%02x", len(b), b[23], b[47])
	}
	img, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if img.Length != 48 || img.Header.HashAppended || img.ComputedSHA256() != [32]byte{} {
		t.Fatalf("image = %+v", img)
	}
}

// synthCase is one Synth configuration checked by several tests.
type synthCase struct {
	name string
	opts SynthOptions
}

func synthCases() []synthCase {
	var cs []synthCase
	for _, c := range chip.All() {
		cs = append(cs,
			synthCase{c.Arg() + "-app", SynthOptions{Chip: c, Version: "1.2.0", SecureVersion: 3, ProjectName: "blink", Size: 100_000, Seed: 7}},
			synthCase{c.Arg() + "-bootloader", SynthOptions{Chip: c, Kind: Bootloader, Version: "4", SecureVersion: 2, Seed: 7}},
		)
	}
	return cs
}

func TestSynthParsesAndValidates(t *testing.T) {
	t.Parallel()
	for _, tc := range synthCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := tc.opts.Chip
			b, err := Synth(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			img, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			w := DefaultRevWindow(c)
			for _, rev := range []int{int(w.MinRevFull), int(w.MaxRevFull)} {
				if err := Validate(img, c, rev); err != nil {
					t.Fatalf("rev %d: %v", rev, err)
				}
			}
			if img.Length != len(b) || img.Length%16 != 0 || !img.Header.HashAppended {
				t.Fatalf("length %d of %d", img.Length, len(b))
			}
			if img.Header.ChipID != c.ID || img.Header.EntryAddr != c.EntryAddr {
				t.Fatalf("header = %+v", img.Header)
			}
			again, err := img.MarshalBinary()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("MarshalBinary differs from the synthesized bytes (err %v)", err)
			}
			switch tc.opts.Kind {
			case App:
				if img.App == nil || img.Bootloader != nil {
					t.Fatal("no app descriptor")
				}
				d := img.App
				if d.Magic != AppDescMagic || d.SecureVersion != 3 || d.Version != "1.2.0" || d.ProjectName != "blink" ||
					d.IDFVersion != "v5.3.1" || d.Date != "Jan  1 2025" || d.Time != "00:00:00" || d.ELFSHA256 == [32]byte{} {
					t.Fatalf("app desc = %+v", d)
				}
				if img.Segments[0].DataOffset() != AppDescOffset || img.Segments[0].LoadAddr%MMUPageSize != 0x20 {
					t.Fatalf("first segment at 0x%x load 0x%08x", img.Segments[0].DataOffset(), img.Segments[0].LoadAddr)
				}
				flash := 0
				for _, s := range img.Segments {
					if flashMapped(c, s.LoadAddr) {
						flash++
					}
				}
				if flash != 2 {
					t.Fatalf("%d flash-mapped segments, want DROM and IROM", flash)
				}
			case Bootloader:
				if img.Bootloader == nil || img.App != nil {
					t.Fatal("no bootloader descriptor")
				}
				d := img.Bootloader
				if d.Version != 4 || d.SecureVersion != 2 || d.DateTime != "Jan  1 2025 00:00:00" || d.IDFVersion != "v5.3.1" {
					t.Fatalf("bootloader desc = %+v", d)
				}
				if room := int(c.PartitionTableOffset - c.BootloaderOffset); len(b) > room {
					t.Fatalf("bootloader %d bytes, room %d", len(b), room)
				}
				for _, s := range img.Segments {
					if flashMapped(c, s.LoadAddr) {
						t.Fatalf("bootloader segment at flash address 0x%08x", s.LoadAddr)
					}
				}
			}
		})
	}
}

func TestSynthDeterministic(t *testing.T) {
	t.Parallel()
	o := SynthOptions{Chip: chip.S3(), Size: 50_000, Seed: 1}
	a, err := Synth(o)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Synth(o)
	if !bytes.Equal(a, b) {
		t.Fatal("same options, different bytes")
	}
	o.Seed = 2
	c, _ := Synth(o)
	if bytes.Equal(a, c) {
		t.Fatal("different seeds, same bytes")
	}
	// Other chips with the same seed must not share filler either.
	o.Seed, o.Chip = 1, chip.C3()
	d, _ := Synth(o)
	if bytes.Equal(a[0x200:0x400], d[0x200:0x400]) {
		t.Fatal("S3 and C3 share filler")
	}
}

// TestSynthGolden pins Synth's output across releases: demo evidence and
// recorded MD5s depend on it. Regenerate with -update after a deliberate change.
func TestSynthGolden(t *testing.T) {
	t.Parallel()
	var lines []string
	for _, tc := range synthCases() {
		b, err := Synth(tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, fmt.Sprintf("%s %x", tc.name, sha256.Sum256(b)))
	}
	got := strings.Join(lines, "\n") + "\n"
	const path = "testdata/synth-digests.txt"
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("Synth output changed:\n%s\nwant:\n%s", got, want)
	}
}

// TestSynthCompressesLikeFirmware: the chip-encrypted write mode's benefit
// is measured on these images, so their zlib ratio must resemble real apps.
func TestSynthCompressesLikeFirmware(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		o    SynthOptions
		lo   float64
		hi   float64
	}{
		{"1MiB-app", SynthOptions{Chip: chip.S3(), Size: 1 << 20}, 1.8, 2.3},
		{"default-app", SynthOptions{Chip: chip.C3()}, 1.8, 2.5},
		{"bootloader", SynthOptions{Chip: chip.ESP32V3(), Kind: Bootloader}, 1.4, 2.2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := Synth(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			var z bytes.Buffer
			w, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
			w.Write(b)
			w.Close()
			r := float64(len(b)) / float64(z.Len())
			t.Logf("%d bytes → %d compressed, ratio %.2f", len(b), z.Len(), r)
			if r < tc.lo || r > tc.hi {
				t.Fatalf("zlib ratio %.2f outside [%.1f, %.1f]", r, tc.lo, tc.hi)
			}
		})
	}
}

func TestSynthErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		o    SynthOptions
		want string
	}{
		{"no chip", SynthOptions{}, "no chip"},
		{"negative size", SynthOptions{Chip: chip.S3(), Size: -1}, "size"},
		{"huge", SynthOptions{Chip: chip.S3(), Size: MaxSynthSize + 1}, "size"},
		{"bootloader version", SynthOptions{Chip: chip.S3(), Kind: Bootloader, Version: "1.2.0"}, "whole number"},
		{"bootloader secure version", SynthOptions{Chip: chip.S3(), Kind: Bootloader, SecureVersion: 256}, "byte 3"},
		{"bootloader too big", SynthOptions{Chip: chip.ESP32V3(), Kind: Bootloader, Size: 0x7000}, "does not fit"},
		{"long version", SynthOptions{Chip: chip.S3(), Version: strings.Repeat("v", 33)}, "version"},
		{"NUL in project", SynthOptions{Chip: chip.S3(), ProjectName: "a\x00b"}, "NUL"},
		{"unaligned raw segment", SynthOptions{Chip: chip.S3(), Segments: []Segment{{Data: []byte{1}}}}, "multiple of 4"},
		{"kind", SynthOptions{Chip: chip.S3(), Kind: 9}, "kind"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Synth(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "image: ") {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// A 32-byte version fills the field without a NUL and still reads back.
	b, err := Synth(SynthOptions{Chip: chip.S3(), Version: strings.Repeat("9", 32), Size: 1024})
	if err != nil {
		t.Fatal(err)
	}
	img, err := Parse(b)
	if err != nil || img.App.Version != strings.Repeat("9", 32) {
		t.Fatalf("full-width version: %v %+v", err, img)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	s3, c3, e32 := chip.S3(), chip.C3(), chip.ESP32V3()
	raw := func(c chip.Chip, rw RevWindow, seg Segment) *Image {
		b, err := Synth(SynthOptions{Chip: c, Rev: &rw, Segments: []Segment{seg}})
		if err != nil {
			t.Fatal(err)
		}
		img, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	ram := Segment{LoadAddr: 0x3FC88000, Data: make([]byte, 4)}
	tests := []struct {
		name   string
		img    *Image
		chip   chip.Chip
		rev    int
		offset int // -1: valid
	}{
		{"in window", raw(s3, RevWindow{0, 0, 99}, ram), s3, 2, -1},
		{"wrong chip", raw(s3, RevWindow{0, 0, 99}, ram), c3, 3, 12},
		{"below min_rev_full", raw(c3, RevWindow{3, 3, 199}, ram), c3, 2, 15},
		{"above max_rev_full", raw(s3, RevWindow{0, 0, 99}, ram), s3, 100, 17},
		{"max rev at edge", raw(c3, RevWindow{3, 3, 199}, ram), c3, 199, -1},
		{"legacy, no max field, major ok", raw(e32, RevWindow{3, 0, 0}, ram), e32, 300, -1},
		{"legacy, no max field, major low", raw(e32, RevWindow{3, 0, 0}, ram), e32, 201, 14},
		{"legacy C3 compares the minor", raw(c3, RevWindow{3, 0, 0}, ram), c3, 103, -1},
		{"legacy C3 minor too low", raw(c3, RevWindow{3, 0, 0}, ram), c3, 102, 14},
		{"0xFFFF with only legacy byte", raw(e32, RevWindow{3, 0, 0xFFFF}, ram), e32, 200, 14},
		{"0xFFFF with full fields", raw(e32, RevWindow{0, 300, 0xFFFF}, ram), e32, 301, -1},
		{"0xFFFF with full fields, low", raw(e32, RevWindow{0, 300, 0xFFFF}, ram), e32, 100, 15},
		{"misaligned IROM segment", raw(s3, RevWindow{0, 0, 99}, Segment{LoadAddr: 0x42000000, Data: make([]byte, 4)}), s3, 0, 24},
		{"aligned DROM segment", raw(s3, RevWindow{0, 0, 99}, Segment{LoadAddr: 0x3C010020, Data: make([]byte, 4)}), s3, 0, -1},
		{"ESP32 IROM window", raw(e32, RevWindow{3, 300, 399}, Segment{LoadAddr: 0x400D0000, Data: make([]byte, 4)}), e32, 300, 24},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := Validate(tc.img, tc.chip, tc.rev)
			if tc.offset < 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			fe, ok := errors.AsType[*FormatError](err)
			if !ok || fe.Offset != tc.offset {
				t.Fatalf("err = %v, want a FormatError at 0x%x", err, tc.offset)
			}
		})
	}
}

// signatureSector returns the 4 KiB signature sector of the espsecure
// vector signed with two keys.
func signatureSector(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/signed-key1-key2.bin")
	if err != nil {
		t.Fatal(err)
	}
	return b[len(b)-SignatureSectorLen:]
}

func TestSignedRegion(t *testing.T) {
	t.Parallel()
	plain, err := Synth(SynthOptions{Chip: chip.S3(), Kind: Bootloader, Size: 5000})
	if err != nil {
		t.Fatal(err)
	}
	sector := signatureSector(t)
	pad := roundUp(len(plain), SignatureSectorLen) - len(plain)
	signed := append(append(bytes.Clone(plain), bytes.Repeat([]byte{0xFF}, pad)...), sector...)

	img, err := Parse(signed)
	if err != nil {
		t.Fatal(err)
	}
	if img.Length != len(plain) || len(img.Trailer) != pad+SignatureSectorLen {
		t.Fatalf("length %d trailer %d", img.Length, len(img.Trailer))
	}
	end, sec, ok := img.SignedRegion()
	if !ok || end != len(plain)+pad || !bytes.Equal(sec, sector) {
		t.Fatalf("SignedRegion = %d, %v", end, ok)
	}
	if n := SignatureBlocks(sec); n != 2 {
		t.Fatalf("%d signature blocks, want 2", n)
	}
	if n := SignatureBlocks(bytes.Repeat([]byte{0xFF}, SignatureSectorLen)); n != 0 {
		t.Fatalf("%d blocks in an erased sector", n)
	}
	// A flash dump: the sector followed by erased flash still finds it.
	dump := append(bytes.Clone(signed), bytes.Repeat([]byte{0xFF}, 3*SignatureSectorLen)...)
	img2, err := Parse(dump)
	if err != nil {
		t.Fatal(err)
	}
	if end2, sec2, ok := img2.SignedRegion(); !ok || end2 != end || !bytes.Equal(sec2, sector) {
		t.Fatal("SignedRegion moved with trailing erased flash")
	}
	// Too short for a sector.
	img3, err := Parse(signed[:len(signed)-1])
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := img3.SignedRegion(); ok {
		t.Fatal("a truncated sector was reported")
	}
}

func TestAppDescRoundTrip(t *testing.T) {
	t.Parallel()
	d := AppDesc{SecureVersion: 0x01020304, Version: "v1", ProjectName: "p", Time: "t", Date: "d", IDFVersion: "i",
		MinEfuseBlkRevFull: 1, MaxEfuseBlkRevFull: 199, MMUPageSize: 16}
	d.ELFSHA256[31] = 9
	b, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// secure_version at struct offset 4 (image offset 0x24), magic bytes 32 54 cd ab.
	if !bytes.Equal(b[:8], []byte{0x32, 0x54, 0xCD, 0xAB, 4, 3, 2, 1}) || b[0x10] != 'v' || b[144+31] != 9 {
		t.Fatalf("layout: % x", b[:0x20])
	}
	got, err := ParseAppDesc(b)
	if err != nil {
		t.Fatal(err)
	}
	d.Magic = AppDescMagic
	if *got != d {
		t.Fatalf("got %+v\nwant %+v", *got, d)
	}
	if _, err := ParseAppDesc(b[:255]); err == nil {
		t.Fatal("short descriptor accepted")
	}
	bd := BootloaderDesc{SecureVersion: 1, Version: 7, IDFVersion: "v5.2", DateTime: "Apr 25 2023 00:13:32"}
	bb, err := bd.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	gotb, err := ParseBootloaderDesc(bb)
	bd.Magic = BootloaderDescMagic
	if err != nil || *gotb != bd || bb[0] != 0x50 || bb[4] != 7 {
		t.Fatalf("bootloader desc %+v, %v", gotb, err)
	}
}

// TestTestdataSeeds keeps the fuzz seeds in testdata valid, and rewrites the
// ones made by this package with -update.
func TestTestdataSeeds(t *testing.T) {
	t.Parallel()
	seeds := map[string]SynthOptions{
		"synth-s3-bootloader-1k.bin": {Chip: chip.S3(), Kind: Bootloader, Size: 1024, Seed: 3},
		"synth-c3-app-2k.bin":        {Chip: chip.C3(), Size: 2048, Seed: 3, Version: "0.9.1", SecureVersion: 1},
	}
	for name, o := range seeds {
		b, err := Synth(o)
		if err != nil {
			t.Fatal(err)
		}
		checkSeed(t, name, b)
		if o.Kind == Bootloader {
			// The same image signed: 0xFF padding to 4 KiB and the signature
			// sector of the espsecure vector (its signatures cover other
			// content; only the layout matters here).
			pad := roundUp(len(b), SignatureSectorLen) - len(b)
			signed := append(append(b, bytes.Repeat([]byte{0xFF}, pad)...), signatureSector(t)...)
			checkSeed(t, strings.Replace(name, "synth-", "signed-", 1), signed)
		}
	}
}

func checkSeed(t *testing.T, name string, b []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(file, b) {
		t.Fatalf("%s is stale; run go test -update", path)
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.bin")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(unhex(f, workedExample))
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := Parse(b)
		if err != nil {
			fe, ok := errors.AsType[*FormatError](err)
			if !ok {
				t.Fatalf("error %v is not a *FormatError", err)
			}
			if fe.Offset < 0 || fe.Offset > len(b) {
				t.Fatalf("offset 0x%x outside the %d-byte input", fe.Offset, len(b))
			}
			return
		}
		if img.Length > len(b) || img.Length+len(img.Trailer) != len(b) {
			t.Fatalf("length %d + trailer %d != %d", img.Length, len(img.Trailer), len(b))
		}
		img.SignedRegion()
		for _, c := range chip.All() {
			_ = Validate(img, c, c.MinRevision)
		}
		out, err := img.MarshalBinary()
		if err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if again.Header != img.Header || len(again.Segments) != len(img.Segments) || again.Length != len(out) {
			t.Fatalf("round trip changed the header or segment count")
		}
		for i := range img.Segments {
			if again.Segments[i].LoadAddr != img.Segments[i].LoadAddr || !bytes.Equal(again.Segments[i].Data, img.Segments[i].Data) {
				t.Fatalf("round trip changed segment %d", i)
			}
		}
		if (img.App == nil) != (again.App == nil) || (img.App != nil && *img.App != *again.App) {
			t.Fatal("round trip changed the app descriptor")
		}
		if (img.Bootloader == nil) != (again.Bootloader == nil) || (img.Bootloader != nil && *img.Bootloader != *again.Bootloader) {
			t.Fatal("round trip changed the bootloader descriptor")
		}
		// With zero padding (what every producer writes) the bytes are the same.
		pad := b[lastEnd(img):img.ChecksumOffset]
		if bytes.Count(pad, []byte{0}) == len(pad) && !bytes.Equal(out, b[:img.Length]) {
			t.Fatal("re-marshalled bytes differ from a zero-padded input")
		}
	})
}

func lastEnd(img *Image) int {
	if len(img.Segments) == 0 {
		return HeaderLen
	}
	s := img.Segments[len(img.Segments)-1]
	return s.DataOffset() + len(s.Data)
}

func TestSetFlashParams(t *testing.T) {
	t.Parallel()
	b := unhex(t, workedExample)
	trailer := []byte{0xFF, 0xFF, 0xFF, 0xFF}
	out, err := SetFlashParams(append(bytes.Clone(b), trailer...), FlashParams{Mode: QIO, Size: Size16MB, Freq: Freq40M})
	if err != nil {
		t.Fatal(err)
	}
	img, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if h := img.Header; h.FlashMode != QIO || h.FlashSize != Size16MB || h.FlashFreq != Freq40M {
		t.Fatalf("header %+v", h)
	}
	if !bytes.Equal(out[4:0x30], b[4:0x30]) || !bytes.Equal(img.Trailer, trailer) || out[3] != 0x40 {
		t.Fatal("more than bytes 2-3 and the hash changed")
	}
	if _, err := SetFlashParams(b[:0x40], DefaultFlash()); err == nil {
		t.Fatal("patched a truncated image")
	}
}

// FuzzParseHead: ParseHead never panics, its errors name an offset inside
// the input, and where Parse accepts an image ParseHead of its first
// HeadLen bytes agrees with it on the header and the app descriptor.
func FuzzParseHead(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.bin")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHead(b)
		if err != nil {
			fe, ok := errors.AsType[*FormatError](err)
			if !ok || fe.Offset < 0 || fe.Offset > len(b) {
				t.Fatalf("error %v: not a *FormatError with an offset inside the input", err)
			}
		}
		img, perr := Parse(b)
		if perr != nil {
			return
		}
		if err != nil {
			t.Fatalf("Parse accepts what ParseHead refuses: %v", err)
		}
		h2, err := ParseHead(b[:min(len(b), HeadLen)])
		if err != nil {
			t.Fatal(err)
		}
		if h.Header != img.Header || h2.Header != img.Header {
			t.Fatalf("header differs from Parse")
		}
		if (h2.App == nil) != (img.App == nil) || h2.App != nil && *h2.App != *img.App {
			t.Fatalf("app descriptor %v, Parse found %v", h2.App, img.App)
		}
	})
}

func TestParseHead(t *testing.T) {
	t.Parallel()
	app, err := Synth(SynthOptions{Chip: chip.C3(), Version: "1.2.0", SecureVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	boot, err := Synth(SynthOptions{Chip: chip.S3(), Kind: Bootloader})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want string // Head.String, or the error's text
	}{
		{"app head", app[:HeadLen], "esp32c3 app 1.2.0 (secure_version 1)"},
		{"whole app", app, "esp32c3 app 1.2.0 (secure_version 1)"},
		{"app head cut short", app[:HeadLen-1], "esp32c3 image"},
		{"bootloader", boot[:HeadLen], "esp32s3 image"},
		{"not an image", []byte("not an ESP image at all, no"), "magic 0xE9"},
		{"too short", app[:10], "24-byte image header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHead(tc.b)
			got := ""
			if err != nil {
				got = err.Error()
			} else {
				got = h.String()
			}
			if !strings.Contains(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
