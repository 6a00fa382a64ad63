package efuse

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"fuseline/esp/chip"
)

func mustImage(t testing.TB, id chip.ID) *Image {
	t.Helper()
	img, err := NewImage(id)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func read32(t testing.TB, name string) [32]byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 32 {
		t.Fatalf("%s: %d bytes, want 32", name, len(b))
	}
	return [32]byte(b)
}

func reversed32(b [32]byte) [32]byte {
	var r [32]byte
	for i := range b {
		r[31-i] = b[i]
	}
	return r
}

// burn plans b against what the board reads and applies it to the physical
// image, as the station and the virtual board together would.
func burn(t testing.TB, phys *Image, b Batch) *Plan {
	t.Helper()
	p, err := Burn(phys, b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func block0Words(p *Plan) []uint32 {
	var w [8]uint32
	for _, pr := range p.Programs {
		if pr.Block == 0 {
			for i := range w {
				w[i] |= pr.Data[i]
			}
		}
	}
	return w[:6]
}

// §3.5: burn_key BLOCK_KEY0 (key file 00…1F) XTS_AES_128_KEY.
func TestBurnKeyTrace(t *testing.T) {
	t.Parallel()
	for _, id := range []chip.ID{chip.ESP32S3, chip.ESP32C3} {
		t.Run(id.String(), func(t *testing.T) {
			t.Parallel()
			var file [32]byte
			for i := range file {
				file[i] = byte(i)
			}
			img := mustImage(t, id)
			var b Batch
			b.BurnKey(KeyBurn{Block: 4, Data: reversed32(file), Purpose: PurposeXTSAES128Key, ReadProtect: true, WriteProtect: true})
			p, err := NewPlan(img, b)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Programs) != 3 {
				t.Fatalf("programs %v, want BLOCK4, BLOCK0 pass 1, BLOCK0 pass 2", p.Programs)
			}
			k := p.Programs[0]
			wantData := [8]uint32{0x1C1D1E1F, 0x18191A1B, 0x14151617, 0x10111213, 0x0C0D0E0F, 0x08090A0B, 0x04050607, 0x00010203}
			wantCheck := [3]uint32{0xAE7C7C06, 0x79D61C6D, 0xF2E11075}
			if k.Block != 4 || k.Data != wantData || k.Check != wantCheck || k.Coding != chip.CodingRS {
				t.Errorf("key program = %+v, want data %08x check %08x", k, wantData, wantCheck)
			}
			if !k.Secret || strings.Contains(k.String(), "1c1d1e1f") {
				t.Errorf("key program not redacted: %s", k)
			}
			if got, want := block0Words(p), []uint32{0x00800100, 0x00000001, 0x04000000, 0, 0, 0}; !slices.Equal(got, want) {
				t.Errorf("BLOCK0 words %08x, want %08x", got, want)
			}
			// Postponement: the purpose goes first, WR_DIS and RD_DIS last.
			if p1, p2 := p.Programs[1], p.Programs[2]; p1.Pass != 1 || p2.Pass != 2 ||
				!slices.Equal(p1.Fields, []string{"KEY_PURPOSE_0"}) || !slices.Equal(p2.Fields, []string{"WR_DIS", "RD_DIS"}) {
				t.Errorf("BLOCK0 passes = %v / %v", p.Programs[1], p.Programs[2])
			}
			if err := Apply(img, p); err != nil {
				t.Fatal(err)
			}
			view, _ := img.ReadView()
			if got, _ := view.GetBytes("BLOCK_KEY0"); !allZero(got) {
				t.Errorf("read view of BLOCK_KEY0 = %x, want zero (RD_DIS)", got)
			}
			if got, _ := img.GetBytes("BLOCK_KEY0"); [32]byte(got) != reversed32(file) {
				t.Errorf("physical BLOCK_KEY0 = %x", got)
			}
		})
	}
}

// §3.10: the ten production steps on a blank S3 end in the golden BLOCK0.
func TestGoldenBlock0(t *testing.T) {
	t.Parallel()
	phys := mustImage(t, chip.ESP32S3)
	key := reversed32(read32(t, "key256.bin"))
	digest := read32(t, "key1.digest.bin")
	steps := []func(*Batch){
		func(b *Batch) {
			b.BurnKey(KeyBurn{Block: 4, Data: key, Purpose: PurposeXTSAES128Key, ReadProtect: true, WriteProtect: true})
		},
		func(b *Batch) { b.Set("SPI_BOOT_CRYPT_CNT", 7) },
		func(b *Batch) {
			for _, n := range []string{"DIS_DOWNLOAD_ICACHE", "DIS_DOWNLOAD_DCACHE", "DIS_PAD_JTAG", "DIS_USB_JTAG", "DIS_DIRECT_BOOT", "DIS_DOWNLOAD_MANUAL_ENCRYPT"} {
				b.Set(n, 1)
			}
		},
		func(b *Batch) { b.WriteProtect("DIS_ICACHE") },
		func(b *Batch) {
			b.BurnKey(KeyBurn{Block: 5, Data: digest, Purpose: PurposeSecureBootDigest0, WriteProtect: true})
		},
		func(b *Batch) { b.Set("SECURE_BOOT_EN", 1) },
		func(b *Batch) { b.Set("SOFT_DIS_JTAG", 7); b.Set("SECURE_BOOT_AGGRESSIVE_REVOKE", 1) },
		func(b *Batch) { b.WriteProtect("RD_DIS") },
		func(b *Batch) { b.Set("SECURE_BOOT_KEY_REVOKE1", 1); b.Set("SECURE_BOOT_KEY_REVOKE2", 1) },
		func(b *Batch) { b.Set("ENABLE_SECURITY_DOWNLOAD", 1) },
	}
	for _, step := range steps {
		var b Batch
		step(&b)
		burn(t, phys, b)
	}
	view, _ := phys.ReadView()
	want := []uint32{0x01800305, 0x001F0C01, 0x94DC0000, 0x00700000, 0x00000022, 0x00000000}
	if !slices.Equal(view.Blocks[0], want) {
		t.Errorf("BLOCK0 = %08x, want %08x", view.Blocks[0], want)
	}
	if got, _ := view.GetBytes("BLOCK_KEY0"); !allZero(got) {
		t.Errorf("BLOCK_KEY0 reads %x, want zero", got)
	}
	if got, _ := view.GetBytes("BLOCK_KEY1"); [32]byte(got) != digest {
		t.Errorf("BLOCK_KEY1 = %x, want the digest", got)
	}
}

// vectors/efuse: the four espefuse steps on blank S3 and C3 images end in
// exactly the words espefuse dumped.
func TestVectorBurnSequence(t *testing.T) {
	t.Parallel()
	for _, id := range []chip.ID{chip.ESP32S3, chip.ESP32C3} {
		t.Run(id.String(), func(t *testing.T) {
			t.Parallel()
			phys := provision(t, id)
			view, err := phys.ReadView()
			if err != nil {
				t.Fatal(err)
			}
			want := parseDumpFile(t, id, id.String()+".provisioned.dump.txt")
			if !view.Equal(want) {
				got, _ := view.Dump()
				exp, _ := want.Dump()
				t.Errorf("read view after the four steps:\n%s\nwant (espefuse dump):\n%s", got, exp)
			}
			if got, _ := phys.GetBytes("BLOCK_KEY0"); [32]byte(got) != reversed32(read32(t, "key256.bin")) {
				t.Error("physical BLOCK_KEY0 does not hold the reversed key")
			}
		})
	}
}

// provision runs the four vector steps on a blank physical image.
func provision(t testing.TB, id chip.ID) *Image {
	t.Helper()
	phys := mustImage(t, id)
	var b1, b2, b3, b4 Batch
	b1.BurnKey(KeyBurn{Block: 4, Data: reversed32(read32(t, "key256.bin")), Purpose: PurposeXTSAES128Key, ReadProtect: true, WriteProtect: true})
	b2.BurnKey(KeyBurn{Block: 5, Data: read32(t, "key1.digest.bin"), Purpose: PurposeSecureBootDigest0, WriteProtect: true})
	b3.BurnKey(KeyBurn{Block: 6, Data: read32(t, "key2.digest.bin"), Purpose: PurposeSecureBootDigest1, WriteProtect: true})
	b4.Set("SPI_BOOT_CRYPT_CNT", 7)
	b4.Set("SECURE_BOOT_EN", 1)
	b4.Set("SECURE_VERSION", 3)
	for _, b := range []Batch{b1, b2, b3, b4} {
		burn(t, phys, b)
	}
	return phys
}

func parseDumpFile(t testing.TB, id chip.ID, name string) *Image {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	img, err := ParseDump(id, b)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// §1.3: raising SPI_BOOT_CRYPT_CNT from 1 to 3 programs word 2 = 0x000C0000
// (the full requested value, bit 18 included).
func TestFullValueProgrammed(t *testing.T) {
	t.Parallel()
	phys := mustImage(t, chip.ESP32S3)
	var b Batch
	b.Set("SPI_BOOT_CRYPT_CNT", 1)
	burn(t, phys, b)
	b = Batch{}
	b.Set("SPI_BOOT_CRYPT_CNT", 3)
	p := burn(t, phys, b)
	if len(p.Programs) != 1 || p.Programs[0].Data[2] != 0x000C0000 || p.Programs[0].Pass != 2 {
		t.Errorf("programs %v, want one BLOCK0 pass-2 program with word 2 = 000c0000", p.Programs)
	}
}

func TestPlanOrder(t *testing.T) {
	t.Parallel()
	img := mustImage(t, chip.ESP32S3)
	var b Batch
	b.Set("ENABLE_SECURITY_DOWNLOAD", 1)
	b.Set("DIS_PAD_JTAG", 1)
	b.SetBytes("BLOCK_USR_DATA", make([]byte, 31)) // wrong length first: refused
	if _, err := NewPlan(img, b); !errors.Is(err, ErrRange) {
		t.Fatalf("31-byte BLOCK_USR_DATA: err %v, want ErrRange", err)
	}
	b.Requests = b.Requests[:2]
	usr := make([]byte, 32)
	usr[0] = 1
	b.SetBytes("BLOCK_USR_DATA", usr)
	b.BurnKey(KeyBurn{Block: 5, Data: [32]byte{9}, Purpose: PurposeSecureBootDigest0, WriteProtect: true})
	p, err := NewPlan(img, b)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, pr := range p.Programs {
		got = append(got, pr.String()[:strings.Index(pr.String(), " data")])
	}
	want := []string{
		"BLOCK5 [BLOCK_KEY1]",
		"BLOCK3 [BLOCK_USR_DATA]",
		"BLOCK0 pass 1 [DIS_PAD_JTAG KEY_PURPOSE_1]",
		"BLOCK0 pass 2 [WR_DIS ENABLE_SECURITY_DOWNLOAD]",
	}
	if !slices.Equal(got, want) {
		t.Errorf("order:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if p.Programs[0].Secret {
		t.Error("a Secure Boot digest is not secret")
	}
}

// Refusals: each names the field and wraps the rule's sentinel.
func TestRefusals(t *testing.T) {
	t.Parallel()
	digest := [32]byte{1, 2, 3}
	cases := []struct {
		name  string
		chip  chip.ID
		setup []func(*Batch) // burned first, one batch each
		req   func(*Batch)
		field string
		err   error
	}{
		{"bit clear", chip.ESP32S3,
			[]func(*Batch){func(b *Batch) { b.Set("SPI_BOOT_CRYPT_CNT", 7) }},
			func(b *Batch) { b.Set("SPI_BOOT_CRYPT_CNT", 1) }, "SPI_BOOT_CRYPT_CNT", ErrBitClear},
		{"purpose bits", chip.ESP32C3,
			[]func(*Batch){func(b *Batch) { b.Set("KEY_PURPOSE_3", 4) }},
			func(b *Batch) { b.Set("KEY_PURPOSE_3", 9) }, "KEY_PURPOSE_3", ErrBitClear},
		{"write-protected by WR_DIS bit 2", chip.ESP32S3,
			[]func(*Batch){func(b *Batch) { b.WriteProtect("DIS_ICACHE") }},
			func(b *Batch) { b.Set("DIS_PAD_JTAG", 1) }, "DIS_PAD_JTAG", ErrWriteProtected},
		{"bit 18 also freezes SECURE_VERSION", chip.ESP32S3,
			[]func(*Batch){func(b *Batch) { b.Set("SECURE_VERSION", 1) }, func(b *Batch) { b.WriteProtect("DIS_DOWNLOAD_MODE") }},
			func(b *Batch) { b.Set("SECURE_VERSION", 3) }, "SECURE_VERSION", ErrWriteProtected},
		{"bit 18 on C3", chip.ESP32C3,
			[]func(*Batch){func(b *Batch) { b.WriteProtect("ENABLE_SECURITY_DOWNLOAD") }},
			func(b *Batch) { b.Set("SECURE_VERSION", 1) }, "SECURE_VERSION", ErrWriteProtected},
		{"write-protected key block", chip.ESP32S3,
			[]func(*Batch){func(b *Batch) { b.WriteProtect("BLOCK_KEY3") }},
			func(b *Batch) {
				b.BurnKey(KeyBurn{Block: 7, Data: digest, Purpose: PurposeSecureBootDigest2})
			}, "BLOCK_KEY3", ErrWriteProtected},
		{"RS block re-burn with other data", chip.ESP32S3,
			[]func(*Batch){func(b *Batch) { b.SetBytes("BLOCK_USR_DATA", digest[:]) }},
			func(b *Batch) { d := digest; d[31] = 0x80; b.SetBytes("BLOCK_USR_DATA", d[:]) }, "BLOCK_USR_DATA", ErrCodedRewrite},
		{"RS block: another field of a written block", chip.ESP32C3,
			[]func(*Batch){func(b *Batch) { b.SetBytes("BLOCK_USR_DATA", digest[:]) }},
			func(b *Batch) { b.SetBytes("CUSTOM_MAC", []byte{1, 2, 3, 4, 5, 6}) }, "CUSTOM_MAC", ErrCodedRewrite},
		{"key block re-burn", chip.ESP32C3,
			[]func(*Batch){func(b *Batch) {
				b.BurnKey(KeyBurn{Block: 5, Data: digest, Purpose: PurposeSecureBootDigest0})
			}},
			func(b *Batch) {
				d := digest
				d[0] = 0xFF
				b.BurnKey(KeyBurn{Block: 5, Data: d, Purpose: PurposeSecureBootDigest0})
			}, "BLOCK_KEY1", ErrCodedRewrite},
		{"read-protected block", chip.ESP32S3,
			[]func(*Batch){func(b *Batch) { b.ReadProtect("BLOCK_KEY2") }},
			func(b *Batch) {
				b.BurnKey(KeyBurn{Block: 6, Data: digest, Purpose: PurposeHMACUp, ReadProtect: true})
			}, "BLOCK_KEY2", ErrReadProtected},
		{"XTS in KEY_PURPOSE_5 (S3)", chip.ESP32S3, nil,
			func(b *Batch) { b.BurnKey(KeyBurn{Block: 9, Data: digest, Purpose: PurposeXTSAES128Key}) }, "KEY_PURPOSE_5", ErrForbidden},
		{"XTS 256 in KEY_PURPOSE_5 (S3)", chip.ESP32S3, nil,
			func(b *Batch) { b.BurnKey(KeyBurn{Block: 9, Data: digest, Purpose: PurposeXTSAES256Key2}) }, "KEY_PURPOSE_5", ErrForbidden},
		{"XTS in KEY_PURPOSE_5 (C3)", chip.ESP32C3, nil,
			func(b *Batch) { b.BurnKey(KeyBurn{Block: 9, Data: digest, Purpose: PurposeXTSAES128Key}) }, "KEY_PURPOSE_5", ErrForbidden},
		{"no XTS-AES-256 on C3", chip.ESP32C3, nil,
			func(b *Batch) { b.BurnKey(KeyBurn{Block: 4, Data: digest, Purpose: PurposeXTSAES256Key1}) }, "KEY_PURPOSE_0", ErrForbidden},
		{"slot has another purpose", chip.ESP32S3,
			[]func(*Batch){func(b *Batch) { b.Set("KEY_PURPOSE_2", uint64(PurposeReserved)) }},
			func(b *Batch) { b.BurnKey(KeyBurn{Block: 6, Data: digest, Purpose: PurposeSecureBootDigest0}) }, "KEY_PURPOSE_2", ErrConflict},
		{"purpose write-protected", chip.ESP32S3,
			[]func(*Batch){func(b *Batch) { b.WriteProtect("KEY_PURPOSE_4") }},
			func(b *Batch) { b.BurnKey(KeyBurn{Block: 8, Data: digest, Purpose: PurposeHMACUp}) }, "KEY_PURPOSE_4", ErrWriteProtected},
		{"two values for one field", chip.ESP32S3, nil,
			func(b *Batch) { b.Set("FLASH_TPUW", 1); b.Set("FLASH_TPUW", 2) }, "FLASH_TPUW", ErrConflict},
		{"USB JTAG with USB-Serial-JTAG (S3)", chip.ESP32S3,
			[]func(*Batch){func(b *Batch) { b.Set("DIS_USB_SERIAL_JTAG", 1) }},
			func(b *Batch) { b.Set("DIS_USB_JTAG", 1) }, "DIS_USB_JTAG", ErrForbidden},
		{"value too wide", chip.ESP32S3, nil,
			func(b *Batch) { b.Set("SPI_BOOT_CRYPT_CNT", 8) }, "SPI_BOOT_CRYPT_CNT", ErrRange},
		{"no such field", chip.ESP32C3, nil,
			func(b *Batch) { b.Set("DIS_USB_OTG", 1) }, "DIS_USB_OTG", ErrUnknownField},
		{"RD_DIS has no RD_DIS bit", chip.ESP32S3, nil,
			func(b *Batch) { b.ReadProtect("BLOCK_USR_DATA") }, "BLOCK_USR_DATA", ErrRange},
		{"ESP32 WR_DIS locks itself", chip.ESP32,
			[]func(*Batch){func(b *Batch) { b.WriteProtect("WR_DIS") }},
			func(b *Batch) { b.WriteProtect("ABS_DONE_1") }, "WR_DIS", ErrWriteProtected},
		{"ESP32 3/4 group re-burn", chip.ESP32,
			[]func(*Batch){
				func(b *Batch) { b.Set("CODING_SCHEME", 1) },
				func(b *Batch) { b.Set("SECURE_VERSION", 1) }},
			func(b *Batch) { b.Set("SECURE_VERSION", 3) }, "SECURE_VERSION", ErrCodedRewrite},
		{"ESP32 3/4 holds 24 bytes", chip.ESP32,
			[]func(*Batch){func(b *Batch) { b.Set("CODING_SCHEME", 1) }},
			func(b *Batch) { b.BurnKey(KeyBurn{Block: 1, Data: [32]byte{31: 1}}) }, "BLOCK1", ErrRange},
		{"ESP32 has no purposes", chip.ESP32, nil,
			func(b *Batch) { b.BurnKey(KeyBurn{Block: 2, Data: digest, Purpose: PurposeSecureBootDigest0}) }, "BLOCK2", ErrForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			phys := mustImage(t, tc.chip)
			for _, s := range tc.setup {
				var b Batch
				s(&b)
				burn(t, phys, b)
			}
			view, _ := phys.ReadView()
			before := phys.Clone()
			var b Batch
			tc.req(&b)
			p, err := NewPlan(view, b)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v (plan %v), want %v", err, p, tc.err)
			}
			be, ok := errors.AsType[*BurnError](err)
			if !ok || be.Field != tc.field {
				t.Fatalf("err = %#v, want a *BurnError naming %s", err, tc.field)
			}
			if !strings.Contains(err.Error(), tc.field) || !strings.HasPrefix(err.Error(), "efuse: ") {
				t.Errorf("message %q does not name %s", err, tc.field)
			}
			if !phys.Equal(before) {
				t.Error("a refused plan changed the image")
			}
		})
	}
}

// Requests equal to what is burned are dropped; RS blocks with the same data
// are skipped.
func TestUnchangedDropped(t *testing.T) {
	t.Parallel()
	phys := provision(t, chip.ESP32S3)
	view, _ := phys.ReadView()
	var b Batch
	b.Set("SPI_BOOT_CRYPT_CNT", 7)
	b.Set("SECURE_VERSION", 3)
	b.BurnKey(KeyBurn{Block: 5, Data: read32(t, "key1.digest.bin"), Purpose: PurposeSecureBootDigest0, WriteProtect: true})
	b.WriteProtect("BLOCK_KEY1")
	p, err := NewPlan(view, b)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Empty() {
		t.Errorf("programs %v, want none", p.Programs)
	}
	want := []string{"WR_DIS", "SPI_BOOT_CRYPT_CNT", "SECURE_VERSION", "BLOCK_KEY1"} // KEY_PURPOSE_1 already right: not even requested
	slices.Sort(want)
	got := slices.Sorted(slices.Values(p.Unchanged))
	if !slices.Equal(got, want) {
		t.Errorf("unchanged %v, want %v", got, want)
	}
}

// The controller model: bad check words are refused, write-protected data
// is masked as the hardware does.
func TestProgram(t *testing.T) {
	t.Parallel()
	img := mustImage(t, chip.ESP32S3)
	data := [8]uint32{1, 2, 3, 4, 5, 6, 7, 8}
	if err := img.Program(3, data, [3]uint32{1, 2, 3}); !errors.Is(err, ErrCoding) {
		t.Errorf("bad check words: %v, want ErrCoding", err)
	}
	if err := img.Set("WR_DIS", 1<<22); err != nil {
		t.Fatal(err)
	}
	if err := img.Program(3, data, CheckWords(data)); err != nil {
		t.Fatal(err)
	}
	if !allZeroWords(img.Blocks[3]) {
		t.Error("write-protected BLOCK3 was programmed")
	}
	// BLOCK0: WR_DIS bit 18 masks all of word 4 except bits 30 and 31.
	if err := img.Set("WR_DIS", 1<<18); err != nil {
		t.Fatal(err)
	}
	if err := img.Program(0, [8]uint32{4: 0xFFFFFFFF}, [3]uint32{}); err != nil {
		t.Fatal(err)
	}
	if img.Blocks[0][4] != 0xC0000000 {
		t.Errorf("word 4 = %08x, want c0000000", img.Blocks[0][4])
	}
	// BLOCK1 has 6 words; RS covers the two zero words too.
	d1 := [8]uint32{0x11111111, 0, 0, 0, 0, 0x66666666}
	if err := img.Program(1, d1, CheckWords(d1)); err != nil {
		t.Fatal(err)
	}
	if img.Blocks[1][0] != 0x11111111 || img.Blocks[1][5] != 0x66666666 {
		t.Errorf("BLOCK1 = %08x", img.Blocks[1])
	}
	if err := img.Program(11, data, CheckWords(data)); !errors.Is(err, ErrRange) {
		t.Errorf("BLOCK11: %v", err)
	}
}

// Classic ESP32: §2.4 worked example through burn_key flash_encryption under
// 3/4 coding, plus the production fields.
func TestESP32Flow(t *testing.T) {
	t.Parallel()
	phys := mustImage(t, chip.ESP32)
	var b Batch
	b.Set("CODING_SCHEME", 1)
	burn(t, phys, b)

	var key [32]byte
	for i := range 24 {
		key[i] = byte(23 - i) // file 00…17, reversed
	}
	b = Batch{}
	b.BurnKey(KeyBurn{Block: 1, Data: key, ReadProtect: true, WriteProtect: true})
	b.Set("FLASH_CRYPT_CONFIG", 0xF)
	b.Set("FLASH_CRYPT_CNT", 0x7F)
	b.Set("ABS_DONE_1", 1)
	b.Set("DISABLE_DL_ENCRYPT", 1)
	b.Set("UART_DOWNLOAD_DIS", 1)
	p := burn(t, phys, b)
	want := [8]uint32{0x14151617, 0x36011213, 0x0E0F1011, 0x37010C0D, 0x08090A0B, 0x2C010607, 0x02030405, 0x13010001}
	if p.Programs[0].Block != 1 || p.Programs[0].Data != want || p.Programs[0].Coding != chip.Coding34 || !p.Programs[0].Secret {
		t.Errorf("BLOCK1 program = %v, want data %08x", p.Programs[0], want)
	}
	var pass2 []string
	for _, pr := range p.Programs {
		if pr.Block == 0 && pr.Pass == 2 {
			pass2 = pr.Fields
		}
	}
	if !slices.Equal(pass2, []string{"WR_DIS", "RD_DIS", "FLASH_CRYPT_CNT", "UART_DOWNLOAD_DIS", "ABS_DONE_1"}) {
		t.Errorf("postponed = %v", pass2)
	}
	if got, _ := phys.GetBytes("BLOCK1"); [32]byte(got) != key {
		t.Errorf("physical BLOCK1 = %x", got)
	}
	view, _ := phys.ReadView()
	if !allZeroWords(view.Blocks[1]) {
		t.Error("BLOCK1 readable despite RD_DIS bit 0")
	}
	if on, perm, _ := view.FlashEncryption(); !on || !perm {
		t.Errorf("flash encryption on=%v permanent=%v", on, perm)
	}
	// RD_DIS bit 3 hides the BLOCK0 key/coding group.
	b = Batch{}
	b.ReadProtect("FLASH_CRYPT_CONFIG")
	burn(t, phys, b)
	view, _ = phys.ReadView()
	if v, _ := view.Get("FLASH_CRYPT_CONFIG"); v != 0 {
		t.Errorf("FLASH_CRYPT_CONFIG reads %x with RD_DIS bit 3", v)
	}
	if v, _ := phys.Get("FLASH_CRYPT_CONFIG"); v != 0xF {
		t.Errorf("physical FLASH_CRYPT_CONFIG = %x", v)
	}
	if v, _ := view.Get("FLASH_CRYPT_CNT"); v != 0x7F {
		t.Errorf("FLASH_CRYPT_CNT reads %x", v)
	}
}
