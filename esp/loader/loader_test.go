package loader

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEncodeRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"sync", Request{Op: OpSync, Data: SyncPayload()}, "00 08 24 00 00 00 00 00 07 07 12 20" + strings.Repeat("55", 32)},
		{"read_reg magic", Request{Op: OpReadReg, Data: EncodeReadReg(0x40001000)}, "00 0a 04 00 00 00 00 00 00 10 00 40"},
		{"flash_data checksum", DataRequest(OpFlashData, 3, []byte{1, 2}), "00 03 12 00 ec 00 00 00 02 00 00 00 03 00 00 00 00 00 00 00 00 00 00 00 01 02"},
		{"get_security_info", Request{Op: OpGetSecurityInfo}, "00 14 00 00 00 00 00 00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := EncodeRequest(tc.req)
			want := unhex(t, tc.want)
			if !bytes.Equal(got, want) {
				t.Fatalf("EncodeRequest = % x\nwant            % x", got, want)
			}
			back, err := DecodeRequest(got)
			if err != nil {
				t.Fatal(err)
			}
			if back.Op != tc.req.Op || back.Checksum != tc.req.Checksum || !bytes.Equal(back.Data, tc.req.Data) {
				t.Fatalf("round trip: %+v, want %+v", back, tc.req)
			}
		})
	}
}

func TestDecodeResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    Response
		wantErr string
	}{
		// ESP32 READ_REG reply from a real esptool trace (§1.7).
		{"read_reg esp32", "01 0a 04 00 83 1d f0 00 00 00 00 00", Response{Op: OpReadReg, Value: 0x00F01D83, Data: []byte{0, 0, 0, 0}}, ""},
		{"rom sync", "01 08 04 00 07 07 12 20 00 00 00 00", Response{Op: OpSync, Value: SyncValue, Data: []byte{0, 0, 0, 0}}, ""},
		{"stub sync", "01 08 02 00 00 00 00 00 00 00", Response{Op: OpSync, Data: []byte{0, 0}}, ""},
		{"short", "01 08 02", Response{}, "offset 3"},
		{"request direction", "00 08 00 00 00 00 00 00", Response{}, "offset 0"},
		{"size mismatch", "01 08 05 00 00 00 00 00 00 00", Response{}, "offset 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeResponse(unhex(t, tc.in))
			if tc.wantErr != "" {
				var fe *FormatError
				if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want FormatError with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Op != tc.want.Op || got.Value != tc.want.Value || !bytes.Equal(got.Data, tc.want.Data) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if !bytes.Equal(EncodeResponse(got), unhex(t, tc.in)) {
				t.Fatal("EncodeResponse does not reproduce the input")
			}
		})
	}
}

func TestDecodeRequestErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, off string }{
		{"short", "00 08", "offset 2"},
		{"direction", "01 08 00 00 00 00 00 00", "offset 0"},
		{"size", "00 08 04 00 00 00 00 00 01", "offset 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeRequest(unhex(t, tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.off) || !strings.HasPrefix(err.Error(), "loader: ") {
				t.Fatalf("err = %v, want loader error at %s", err, tc.off)
			}
		})
	}
}

func TestChecksum(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   []byte
		want uint32
	}{
		{nil, 0xEF},
		{[]byte{1, 2}, 0xEC},
		{[]byte{0xEF}, 0},
		{bytes.Repeat([]byte{0xFF}, 0x400), 0xEF},
		{bytes.Repeat([]byte{0xFF}, 0x401), 0x10},
	} {
		t.Run(fmt.Sprintf("% x", tc.in[:min(4, len(tc.in))]), func(t *testing.T) {
			t.Parallel()
			if got := Checksum(tc.in); got != tc.want {
				t.Fatalf("Checksum = 0x%x, want 0x%x", got, tc.want)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		data         string
		n            int
		result       string
		status, code byte
		wantErr      bool
		statusErr    error
	}{
		{"rom ok", "00 00 00 00", 0, "", 0, 0, false, nil},
		{"stub ok", "00 00", 0, "", 0, 0, false, nil},
		{"rom checksum", "01 07 00 00", 0, "", 1, 7, false, ErrCodeBadChecksum},
		{"rom stale tail ignored", "00 00 c3 5a", 0, "", 0, 0, false, nil},
		{"stub checksum", "c1 00", 0, "", 0xC1, 0, false, StubBadDataChecksum},
		{"stub md5", "00112233445566778899aabbccddeeff 00 00", 16, "00112233445566778899aabbccddeeff", 0, 0, false, nil},
		{"rom secinfo", "04000000 00 01020304050607 09000000 00000000 00000000", 20, "04000000 00 01020304050607 09000000 00000000", 0, 0, false, nil},
		{"rom refuses secinfo", "01 05 00 00", 20, "", 1, 5, false, ErrCodeBadMessage},
		{"stub refuses", "c3 00", 20, "", 0xC3, 0, false, StubInvalidCommand},
		{"success but short", "00 00 00 00", 16, "", 0, 0, true, nil},
		{"one byte", "00", 0, "", 0, 0, true, nil},
		{"empty", "", 4, "", 0, 0, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, st, code, err := ParseStatus(unhex(t, tc.data), tc.n)
			if tc.wantErr {
				var fe *FormatError
				if !errors.As(err, &fe) {
					t.Fatalf("err = %v, want FormatError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st != tc.status || code != tc.code || !bytes.Equal(res, unhex(t, tc.result)) {
				t.Fatalf("got % x status %02x code %02x", res, st, code)
			}
			serr := StatusErr(st, code)
			if tc.statusErr == nil && serr != nil || tc.statusErr != nil && !errors.Is(serr, tc.statusErr) {
				t.Fatalf("StatusErr = %v, want %v", serr, tc.statusErr)
			}
		})
	}
}

func TestErrorNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{ErrCodeBadChecksum, "loader: ROM error 0x07 (checksum mismatch)"},
		{ErrCodeInvalidParameter, "loader: ROM error 0x64 (invalid parameter (encrypted write refused or unaligned))"},
		{ROMCode(0x99), "loader: ROM error 0x99 (unknown ROM error)"},
		{StubBadDataChecksum, "loader: stub error 0xc1 (bad data checksum)"},
		{StubCmdNotImplemented, "loader: stub error 0xff (command not implemented)"},
		{StubCode(0x42), "loader: stub error 0x42 (unknown stub status)"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			t.Parallel()
			if tc.err.Error() != tc.want {
				t.Fatalf("got %q", tc.err.Error())
			}
		})
	}
	if !IsChecksumError(1, 7) || !IsChecksumError(0xC1, 0) || IsChecksumError(1, 5) || IsChecksumError(0, 0) {
		t.Fatal("IsChecksumError wrong")
	}
	if !bytes.Equal(ROMStatus(true, ErrCodeBadChecksum), []byte{1, 7, 0, 0}) || !bytes.Equal(ROMStatus(false, 0), []byte{0, 0, 0, 0}) ||
		!bytes.Equal(StubStatus(StubBadDataChecksum), []byte{0xC1, 0}) {
		t.Fatal("status builders wrong")
	}
}

func TestOps(t *testing.T) {
	t.Parallel()
	if OpFlashBegin.String() != "FLASH_BEGIN" || Op(0x42).String() != "OP_0x42" || OpRunUserCode.String() != "RUN_USER_CODE" {
		t.Fatal("names")
	}
	for op, want := range map[Op][3]bool{ // HasChecksum, InROM, AllowedInSDM
		OpFlashData:       {true, true, true},
		OpMemData:         {true, true, false},
		OpFlashDeflData:   {true, true, false},
		OpReadReg:         {false, true, false},
		OpGetSecurityInfo: {false, true, true},
		0x0C:              {false, false, false},
		OpEraseFlash:      {false, false, false},
	} {
		got := [3]bool{op.HasChecksum(), op.InROM(), op.AllowedInSDM()}
		if got != want {
			t.Errorf("%v: got %v, want %v", op, got, want)
		}
	}
	if !IsUnsupported(OpReadReg, Response{Op: OpSync, Data: []byte{1, 5, 0, 0}}) ||
		IsUnsupported(OpReadReg, Response{Op: OpReadReg, Data: []byte{1, 5, 0, 0}}) {
		t.Fatal("IsUnsupported")
	}
}

func TestSecurityInfo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want SecurityInfo
		str  string
	}{
		{"s3 blank", "00000000 00 00000000000000 09000000 00000000",
			SecurityInfo{HasChipID: true, ChipID: 9}, "0"},
		{"c3 locked", "05010000 07 04090a00000000 05000000 03000000",
			SecurityInfo{Flags: FlagSecureBootEn | FlagSecureDownloadEnable | FlagDisUSB, FlashCryptCnt: 7,
				KeyPurposes: [7]uint8{4, 9, 10}, HasChipID: true, ChipID: 5, EcoVersion: 3},
			"SECURE_BOOT_EN|SECURE_DOWNLOAD_ENABLE|DIS_USB"},
		{"s2 short", "40000000 01 00000000000000", SecurityInfo{Flags: FlagSoftDisJTAG, FlashCryptCnt: 1}, "SOFT_DIS_JTAG"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := unhex(t, tc.in)
			got, err := ParseSecurityInfo(in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if got.Flags.String() != tc.str {
				t.Fatalf("flags %q, want %q", got.Flags, tc.str)
			}
			if !bytes.Equal(got.Encode(), in) {
				t.Fatalf("Encode = % x", got.Encode())
			}
		})
	}
	s := SecurityInfo{FlashCryptCnt: 3}
	if s.FlashEncryption() || !(SecurityInfo{FlashCryptCnt: 7}).FlashEncryption() || !(SecurityInfo{FlashCryptCnt: 1}).FlashEncryption() {
		t.Fatal("FlashEncryption parity")
	}
	if _, err := ParseSecurityInfo(make([]byte, 16)); err == nil {
		t.Fatal("16 bytes accepted")
	}
	if SecurityFlags(1<<12).String() != "BIT12" {
		t.Fatal("unknown bit name")
	}
}

func TestPayloads(t *testing.T) {
	t.Parallel()
	t.Run("begin", func(t *testing.T) {
		t.Parallel()
		for _, p := range []Begin{
			{Size: 0x2000, Blocks: 8, BlockSize: 0x400, Offset: 0x10000, Long: true},
			{Size: 0x2000, Blocks: 8, BlockSize: 0x400, Offset: 0x10000},
			{Size: 16, Blocks: 1, BlockSize: 0x400, Offset: 0, Encrypted: true, Long: true},
		} {
			b := p.Encode()
			if want := map[bool]int{true: 20, false: 16}[p.Long]; len(b) != want {
				t.Fatalf("%+v: %d bytes", p, len(b))
			}
			back, err := ParseBegin(b)
			if err != nil || back != p {
				t.Fatalf("round trip %+v -> %+v, %v", p, back, err)
			}
		}
		// Exact bytes: ROM-mode FLASH_BEGIN for 0x1234 bytes at 0x10000, encrypted.
		got := Begin{Size: 0x1234, Blocks: 5, BlockSize: 0x400, Offset: 0x10000, Encrypted: true}.Encode()
		if want := unhex(t, "34120000 05000000 00040000 00000100 01000000"); !bytes.Equal(got, want) {
			t.Fatalf("% x", got)
		}
		if _, err := ParseBegin(make([]byte, 12)); err == nil {
			t.Fatal("12 bytes accepted")
		}
	})
	t.Run("data", func(t *testing.T) {
		t.Parallel()
		p, c := Data{Seq: 7, Bytes: []byte{0xC0, 0xDB, 1, 2}}.Encode()
		d, err := ParseData(p)
		if err != nil || d.Seq != 7 || d.Len != 4 || !bytes.Equal(d.Bytes, []byte{0xC0, 0xDB, 1, 2}) || c != Checksum(d.Bytes) {
			t.Fatalf("%+v %v", d, err)
		}
		if _, err := ParseData(p[:15]); err == nil {
			t.Fatal("short header accepted")
		}
	})
	t.Run("write_reg", func(t *testing.T) {
		t.Parallel()
		recs := []RegWrite{{0x600071CC, 0x5AA5, 0xFFFFFFFF, 0}, {0x60000080, 0, 0, 1000}}
		b := EncodeWriteReg(recs...)
		want := unhex(t, "cc710060 a55a0000 ffffffff 00000000 80000060 00000000 00000000 e8030000")
		if !bytes.Equal(b, want) {
			t.Fatalf("% x", b)
		}
		back, err := ParseWriteReg(b)
		if err != nil || !reflect.DeepEqual(back, recs) {
			t.Fatalf("%v %v", back, err)
		}
		if _, err := ParseWriteReg(b[:17]); err == nil {
			t.Fatal("17 bytes accepted")
		}
		if got := (RegWrite{Value: 0x0F, Mask: 0x3C}).Apply(0xF0); got != 0xCC {
			t.Fatalf("Apply = %x", got)
		}
	})
	t.Run("others", func(t *testing.T) {
		t.Parallel()
		if sp, err := ParseSPIParams(DefaultSPIParams(4 << 20).Encode()); err != nil || sp.TotalSize != 4<<20 || sp.StatusMask != 0xFFFF {
			t.Fatal("spi params", sp, err)
		}
		if len(EncodeSPIAttach(0, true)) != 8 || len(EncodeSPIAttach(0, false)) != 4 {
			t.Fatal("spi attach lengths")
		}
		if pins, err := ParseSPIAttach(EncodeSPIAttach(0x123, false)); err != nil || pins != 0x123 {
			t.Fatal("spi attach")
		}
		if cb, err := ParseChangeBaud(ChangeBaud{921600, 0}.Encode()); err != nil || cb.New != 921600 {
			t.Fatal("baud")
		}
		if r, err := ParseRegion(Region{0x1000, 0x2000}.EncodeMD5()); err != nil || r.Size != 0x2000 || len(Region{}.EncodeMD5()) != 16 {
			t.Fatal("md5 region")
		}
		if rf, err := ParseReadFlash(ReadFlash{0, 0x100, 0x1000, 64}.Encode()); err != nil || rf.MaxInFlight != 64 {
			t.Fatal("read flash")
		}
		if me, err := ParseMemEnd(MemEnd{NoEntry: false, Entry: 0x40380000}.Encode()); err != nil || me.Entry != 0x40380000 || me.NoEntry {
			t.Fatal("mem end")
		}
		if f, err := ParseFlashEnd(EncodeFlashEnd(EndRunUser)); err != nil || f != 1 {
			t.Fatal("flash end")
		}
		if a, err := ParseReadFlashAck(EncodeReadFlashAck(0x2000)); err != nil || a != 0x2000 {
			t.Fatal("ack")
		}
	})
	t.Run("md5", func(t *testing.T) {
		t.Parallel()
		var sum [16]byte
		for i := range sum {
			sum[i] = byte(0xA0 + i)
		}
		for _, rom := range []bool{true, false} {
			b := EncodeMD5Result(sum, rom)
			got, err := ParseMD5Result(b)
			if err != nil || got != sum {
				t.Fatalf("rom=%v: %x %v", rom, got, err)
			}
		}
		if string(EncodeMD5Result(sum, true)) != "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf" {
			t.Fatal("ROM MD5 must be lowercase hex")
		}
		if got, err := ParseMD5Result([]byte("A0A1A2A3A4A5A6A7A8A9AAABACADAEAF")); err != nil || got != sum {
			t.Fatal("upper-case hex rejected")
		}
		if _, err := ParseMD5Result([]byte(strings.Repeat("zz", 16))); err == nil {
			t.Fatal("bad hex accepted")
		}
	})
}

func FuzzDecode(f *testing.F) {
	f.Add(EncodeRequest(Request{Op: OpSync, Data: SyncPayload()}))
	f.Add(EncodeRequest(DataRequest(OpFlashData, 1, []byte{1, 2, 3, 4})))
	f.Add(EncodeResponse(Response{Op: OpSync, Value: SyncValue, Data: []byte{0, 0, 0, 0}}))
	f.Add(EncodeResponse(Response{Op: OpGetSecurityInfo, Data: append(SecurityInfo{HasChipID: true, ChipID: 9}.Encode(), 0, 0)}))
	f.Add(EncodeResponse(Response{Op: OpModelKind, Data: append([]byte("FSLN\x01\x00\x00\x00"), 0, 0, 0, 0)}))
	files, _ := filepath.Glob("testdata/*.bin")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkErr := func(err error) {
			var fe *FormatError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), "offset") {
				t.Fatalf("error %v is not a FormatError naming an offset", err)
			}
		}
		if req, err := DecodeRequest(b); err != nil {
			checkErr(err)
		} else {
			if !bytes.Equal(EncodeRequest(req), b) {
				t.Fatal("request does not round-trip")
			}
			parsePayload(t, req.Op, req.Data, checkErr)
		}
		if resp, err := DecodeResponse(b); err != nil {
			checkErr(err)
		} else {
			if !bytes.Equal(EncodeResponse(resp), b) {
				t.Fatal("response does not round-trip")
			}
			for _, n := range []int{0, 16, 20, 32, 64} {
				if _, _, _, err := ParseStatus(resp.Data, n); err != nil {
					checkErr(err)
				}
			}
			if r, _, _, err := ParseStatus(resp.Data, ModelKindLen); err == nil {
				if k, err := ParseModelKind(r); err == nil {
					if enc, err := EncodeModelKind(k); err != nil || !bytes.Equal(enc, r) {
						t.Fatal("model kind does not round-trip")
					}
				} else {
					checkErr(err)
				}
			}
			if si, err := ParseSecurityInfo(resp.Data); err == nil {
				if !bytes.Equal(si.Encode(), resp.Data) {
					t.Fatal("security info does not round-trip")
				}
			} else {
				checkErr(err)
			}
		}
	})
}

// parsePayload runs the payload parser the virtual board would use for op.
func parsePayload(t *testing.T, op Op, d []byte, checkErr func(error)) {
	var err error
	switch op {
	case OpFlashBegin, OpFlashDeflBegin, OpMemBegin:
		var p Begin
		if p, err = ParseBegin(d); err == nil {
			if q, err := ParseBegin(p.Encode()); err != nil || q != p {
				t.Fatal("BEGIN does not round-trip")
			}
		}
	case OpFlashData, OpFlashDeflData, OpMemData:
		var p Data
		if p, err = ParseData(d); err == nil {
			enc, _ := (Data{Seq: p.Seq, Bytes: p.Bytes}).Encode()
			if q, err := ParseData(enc); err != nil || q.Seq != p.Seq || !bytes.Equal(q.Bytes, p.Bytes) || q.Len != uint32(len(p.Bytes)) {
				t.Fatal("DATA does not round-trip")
			}
		}
	case OpWriteReg:
		var recs []RegWrite
		if recs, err = ParseWriteReg(d); err == nil && !bytes.Equal(EncodeWriteReg(recs...), d) {
			t.Fatal("WRITE_REG does not round-trip")
		}
	case OpSPISetParams:
		var p SPIParams
		if p, err = ParseSPIParams(d); err == nil && !bytes.Equal(p.Encode(), d) {
			t.Fatal("SPI_SET_PARAMS does not round-trip")
		}
	case OpMemEnd:
		_, err = ParseMemEnd(d)
	case OpReadFlash:
		_, err = ParseReadFlash(d)
	case OpChangeBaudrate:
		_, err = ParseChangeBaud(d)
	case OpSPIAttach:
		_, err = ParseSPIAttach(d)
	case OpReadReg:
		_, err = ParseReadReg(d)
	case OpSPIFlashMD5, OpEraseRegion, OpReadFlashSlow:
		_, err = ParseRegion(d)
	}
	if err != nil {
		checkErr(err)
	}
}

func TestResetBanner(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		text string
		want bool
	}{
		{"ESP-ROM:esp32s3-20210327\r\nBuild:Mar 27 2021\r\nrst:0x3 (RTC_SW_SYS_RST),boot:0x0 (DOWNLOAD(USB/UART0))\r\nSaved PC:0x40041a76\r\nwaiting for download\r\n", true},
		{"ets Jul 29 2019 12:21:46\r\n\r\nrst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n", true},
		{"\x00\xff noise rst:", false},
		{"I (123) boot: rst:0x is not a banner without the boot field", false},
		{"", false},
	} {
		if got := ResetBanner([]byte(tc.text)); got != tc.want {
			t.Errorf("ResetBanner(%q) = %v", tc.text, got)
		}
	}
}
