package flasher_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"fuseline/esp/chip"
	"fuseline/esp/image"
	"fuseline/esp/loader"
	"fuseline/esp/slip"
	"fuseline/flasher"
	ft "fuseline/flasher/flashertest"
)

const mib4 = 4 << 20

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

func padFF(b []byte, n int) []byte {
	out := bytes.Repeat([]byte{0xFF}, n)
	copy(out, b)
	return out
}

// romFlashPrep: SPI_ATTACH (8 bytes to the ROM) and SPI_SET_PARAMS.
func romFlashPrep(t *testing.T) []ft.Step {
	return []ft.Step{
		ft.OK(unhex(t, "00 0d 08 00 00000000 00000000 00000000"), true),
		ft.OK(unhex(t, "00 0b 18 00 00000000 00000000 00004000 00000100 00100000 00010000 ffff0000"), true),
	}
}

func md5ROM(data []byte) []byte {
	s := md5.Sum(data)
	return []byte(hex.EncodeToString(s[:]))
}

func md5Stub(data []byte) []byte {
	s := md5.Sum(data)
	return s[:]
}

// Plain ROM write, byte for byte: FLASH_BEGIN (20 bytes on S3), two 0x400
// FLASH_DATA blocks (the last 0xFF-padded), MD5 as 32 hex characters.
func TestWriteRegionROMPlain(t *testing.T) {
	t.Parallel()
	data := pattern(0x500)
	steps := append(romFlashPrep(t),
		ft.OK(unhex(t, "00 02 14 00 00000000 00050000 02000000 00040000 00000100 00000000"), true),
		ft.OK(ft.DataReq(loader.OpFlashData, 0, data[:0x400]), true),
		ft.OK(ft.DataReq(loader.OpFlashData, 1, padFF(data[0x400:], 0x400)), true),
		ft.Step{Want: unhex(t, "00 13 10 00 00000000 00000100 00050000 00000000 00000000"),
			Reply: [][]byte{ft.ROM(loader.OpSPIFlashMD5, 0, md5ROM(data))}},
	)
	var events []flasher.Event
	cfg := flasher.Config{FlashSize: mib4, NoCompress: true, Progress: func(e flasher.Event) { events = append(events, e) }}
	run(t, cfg, true, steps, func(ctx context.Context, s *flasher.Session) {
		res, err := s.WriteRegion(ctx, flasher.Region{Name: "app", Offset: 0x10000, Data: data})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Verified || res.Compressed || res.Size != 0x500 || res.WireBytes != 0x500 || res.NotVerified != "" {
			t.Fatalf("result %+v", res)
		}
	})
	var writes []int64
	for _, e := range events {
		if e.Phase == flasher.PhaseWrite && e.Region == "app" {
			writes = append(writes, e.Done)
		}
	}
	if fmt.Sprint(writes) != "[1024 1280]" {
		t.Fatalf("write progress %v", writes)
	}
}

func deflate(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w, _ := zlib.NewWriterLevel(&buf, zlib.BestCompression)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// Compressed ROM write: FLASH_DEFL_BEGIN with the size rounded up to the
// block, block count of compressed packets, last one unpadded, no END.
func TestWriteRegionROMCompressed(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("fuseline "), 1000)[:9000] // 9000 bytes, compresses well
	z := deflate(t, data)
	if len(z) > 0x400 {
		t.Fatalf("test data compresses to %d bytes", len(z))
	}
	steps := append(romFlashPrep(t),
		ft.OK(ft.Req(loader.OpFlashDeflBegin, loader.Begin{Size: 0x2400, Blocks: 1, BlockSize: 0x400, Offset: 0x20000, Long: true}.Encode()), true),
		ft.OK(ft.DataReq(loader.OpFlashDeflData, 0, z), true),
		ft.Step{Want: ft.Req(loader.OpSPIFlashMD5, loader.Region{Offset: 0x20000, Size: 9000}.EncodeMD5()),
			Reply: [][]byte{ft.ROM(loader.OpSPIFlashMD5, 0, md5ROM(data))}},
	)
	run(t, flasher.Config{FlashSize: mib4}, true, steps, func(ctx context.Context, s *flasher.Session) {
		res, err := s.WriteRegion(ctx, flasher.Region{Offset: 0x20000, Data: data})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Compressed || res.WireBytes != len(z) || !res.Verified {
			t.Fatalf("result %+v", res)
		}
	})
}

// Incompressible data falls back to plain FLASH_BEGIN/DATA.
func TestWriteRegionFallsBackToPlain(t *testing.T) {
	t.Parallel()
	data := make([]byte, 64)
	for i := range data {
		data[i] = byte(i*151 + i*i*13)
	}
	if len(deflate(t, data)) < len(data) {
		t.Fatal("the test's data compresses, so it cannot show the fallback; choose data that does not")
	}
	steps := append(romFlashPrep(t),
		ft.OK(ft.Req(loader.OpFlashBegin, loader.Begin{Size: 64, Blocks: 1, BlockSize: 0x400, Offset: 0x30000, Long: true}.Encode()), true),
		ft.OK(ft.DataReq(loader.OpFlashData, 0, padFF(data, 0x400)), true),
		ft.Step{Want: ft.Req(loader.OpSPIFlashMD5, loader.Region{Offset: 0x30000, Size: 64}.EncodeMD5()),
			Reply: [][]byte{ft.ROM(loader.OpSPIFlashMD5, 0, md5ROM(data))}},
	)
	run(t, flasher.Config{FlashSize: mib4}, true, steps, func(ctx context.Context, s *flasher.Session) {
		res, err := s.WriteRegion(ctx, flasher.Region{Offset: 0x30000, Data: data})
		if err != nil || res.Compressed {
			t.Fatalf("%+v %v", res, err)
		}
	})
}

// Stub write: 16-byte FLASH_DEFL_BEGIN with the exact size, 0x4000 blocks,
// FLASH_DEFL_END(1), MD5 as 16 raw bytes.
func TestWriteRegionStubCompressed(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat(pattern(256), 200) // 51200 bytes
	z := deflate(t, data)
	steps := []ft.Step{
		ft.OK(ft.Req(loader.OpSPISetParams, loader.DefaultSPIParams(mib4).Encode()), false),
		ft.OK(unhex(t, fmt.Sprintf("00 10 10 00 00000000 00c80000 01000000 00400000 00000100")), false),
		ft.OK(ft.DataReq(loader.OpFlashDeflData, 0, z), false),
		ft.OK(ft.Req(loader.OpFlashDeflEnd, []byte{1, 0, 0, 0}), false),
		{Want: ft.Req(loader.OpSPIFlashMD5, loader.Region{Offset: 0x10000, Size: uint32(len(data))}.EncodeMD5()),
			Reply: [][]byte{ft.Stub(loader.OpSPIFlashMD5, 0, md5Stub(data))}},
	}
	run(t, flasher.Config{FlashSize: mib4}, false, steps, func(ctx context.Context, s *flasher.Session) {
		res, err := s.WriteRegion(ctx, flasher.Region{Offset: 0x10000, Data: data})
		if err != nil || !res.Compressed || !res.Verified {
			t.Fatalf("%+v %v", res, err)
		}
	})
}

// Stub plain write ends with the FLASH_END(1) barrier; data is padded to 4.
func TestWriteRegionStubPlain(t *testing.T) {
	t.Parallel()
	data := pattern(0x4003)
	padded := padFF(data, 0x4004)
	steps := []ft.Step{
		ft.OK(ft.Req(loader.OpSPISetParams, loader.DefaultSPIParams(mib4).Encode()), false),
		ft.OK(ft.Req(loader.OpFlashBegin, loader.Begin{Size: 0x4004, Blocks: 2, BlockSize: 0x4000, Offset: 0}.Encode()), false),
		ft.OK(ft.DataReq(loader.OpFlashData, 0, padded[:0x4000]), false),
		ft.OK(ft.DataReq(loader.OpFlashData, 1, padFF(padded[0x4000:], 0x4000)), false),
		ft.OK(ft.Req(loader.OpFlashEnd, []byte{1, 0, 0, 0}), false),
		{Want: ft.Req(loader.OpSPIFlashMD5, loader.Region{Offset: 0, Size: 0x4004}.EncodeMD5()),
			Reply: [][]byte{ft.Stub(loader.OpSPIFlashMD5, 0, md5Stub(padded))}},
	}
	run(t, flasher.Config{FlashSize: mib4, NoCompress: true}, false, steps, func(ctx context.Context, s *flasher.Session) {
		res, err := s.WriteRegion(ctx, flasher.Region{Offset: 0, Data: data})
		if err != nil || res.Size != 0x4004 || !res.Verified {
			t.Fatalf("%+v %v", res, err)
		}
	})
}

// Chip-encrypted ROM write: encrypted word 1, plain (the ROM refuses
// compressed encrypted writes), data padded to 16, no MD5.
func TestWriteRegionChipEncrypted(t *testing.T) {
	t.Parallel()
	data := pattern(40)
	steps := append(romFlashPrep(t),
		ft.OK(unhex(t, "00 02 14 00 00000000 30000000 01000000 00040000 00000100 01000000"), true),
		ft.OK(ft.DataReq(loader.OpFlashData, 0, padFF(data, 0x400)), true),
	)
	run(t, flasher.Config{FlashSize: mib4}, true, steps, func(ctx context.Context, s *flasher.Session) {
		res, err := s.WriteRegion(ctx, flasher.Region{Offset: 0x10000, Data: data, ChipEncrypt: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Verified || !strings.Contains(res.NotVerified, "ciphertext") || res.Size != 48 {
			t.Fatalf("%+v", res)
		}
	})
}

func TestWriteRegionPrechecks(t *testing.T) {
	t.Parallel()
	synth := func(c chip.Chip) []byte {
		b, err := image.Synth(image.SynthOptions{Chip: c, Kind: image.Bootloader, Size: 64, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	c3img, s3img := synth(chip.C3()), synth(chip.S3())
	fat := append([]byte(nil), c3img[:64]...)
	fat[1] = 0x3C // a FAT boot sector: E9 xx xx, not an image
	tests := []struct {
		name    string
		r       flasher.Region
		wantErr func(error) bool
	}{
		{"empty", flasher.Region{Offset: 0x10000}, func(e error) bool { return errors.Is(e, flasher.ErrBadRegion) }},
		{"unaligned", flasher.Region{Offset: 0x10010, Data: pattern(16)}, func(e error) bool { return errors.Is(e, flasher.ErrBadRegion) }},
		{"past end", flasher.Region{Offset: mib4 - 0x1000, Data: pattern(0x1004)}, func(e error) bool {
			return errors.Is(e, flasher.ErrBadRegion) && strings.Contains(e.Error(), "past the end")
		}},
		{"wrong chip bootloader", flasher.Region{Name: "bootloader", Offset: 0, Data: c3img}, func(e error) bool {
			cm, ok := errors.AsType[*flasher.ChipMismatchError](e)
			return ok && cm.Got == chip.ESP32C3 && cm.Want == chip.ESP32S3
		}},
		{"wrong chip app", flasher.Region{Name: "app", Offset: 0x110000, Data: c3img}, func(e error) bool {
			_, ok := errors.AsType[*flasher.ChipMismatchError](e)
			return ok
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var steps []ft.Step
			if tc.name == "past end" {
				steps = romFlashPrep(t)
			}
			run(t, flasher.Config{FlashSize: mib4}, true, steps, func(ctx context.Context, s *flasher.Session) {
				_, err := s.WriteRegion(ctx, tc.r)
				if err == nil || !tc.wantErr(err) {
					t.Fatalf("err = %v", err)
				}
			})
		})
	}
	// Same-chip images and non-image data at those offsets pass the check.
	for _, d := range [][]byte{s3img, fat} {
		if len(d) > 0x400 || len(d)%4 != 0 {
			t.Fatalf("test data of %d bytes does not fit the one-block script", len(d))
		}
		steps := append(romFlashPrep(t),
			ft.OK(ft.Req(loader.OpFlashBegin, loader.Begin{Size: uint32(len(d)), Blocks: 1, BlockSize: 0x400, Offset: 0, Long: true}.Encode()), true),
			ft.OK(ft.DataReq(loader.OpFlashData, 0, padFF(d, 0x400)), true),
			ft.Step{Want: ft.Req(loader.OpSPIFlashMD5, loader.Region{Offset: 0, Size: uint32(len(d))}.EncodeMD5()), Reply: [][]byte{ft.ROM(loader.OpSPIFlashMD5, 0, md5ROM(d))}},
		)
		run(t, flasher.Config{FlashSize: mib4, NoCompress: true}, true, steps, func(ctx context.Context, s *flasher.Session) {
			if _, err := s.WriteRegion(ctx, flasher.Region{Offset: 0, Data: d}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A block whose checksum the ROM rejects is sent again; so is one whose
// reply never came. If the retry of a lost-reply block hits a sequence
// error, the block was taken: the MD5 decides.
func TestWriteRegionRetries(t *testing.T) {
	t.Parallel()
	data := pattern(0x400)
	blk := ft.DataReq(loader.OpFlashData, 0, data)
	begin := ft.OK(ft.Req(loader.OpFlashBegin, loader.Begin{Size: 0x400, Blocks: 1, BlockSize: 0x400, Offset: 0x10000, Long: true}.Encode()), true)
	md5ok := ft.Step{Want: ft.Req(loader.OpSPIFlashMD5, loader.Region{Offset: 0x10000, Size: 0x400}.EncodeMD5()), Reply: [][]byte{ft.ROM(loader.OpSPIFlashMD5, 0, md5ROM(data))}}
	md5bad := ft.Step{Want: md5ok.Want, Reply: [][]byte{ft.ROM(loader.OpSPIFlashMD5, 0, md5ROM(pattern(10)))}}
	tests := []struct {
		name    string
		steps   []ft.Step
		retries int
		check   func(error) bool
	}{
		{"checksum then ok", []ft.Step{{Want: blk, Reply: [][]byte{ft.ROMFail(loader.OpFlashData, loader.ErrCodeBadChecksum)}}, ft.OK(blk, true), md5ok}, 1, nil},
		{"lost reply then ok", []ft.Step{{Want: blk}, ft.OK(blk, true), md5ok}, 1, nil},
		{"damaged reply then ok", []ft.Step{{Want: blk, Raw: []byte{0xC0, 0x01, 0xDB, 0x07, 0xC0}}, ft.OK(blk, true), md5ok}, 1, nil},
		{"lost reply then seq error", []ft.Step{{Want: blk}, {Want: blk, Reply: [][]byte{ft.ROMFail(loader.OpFlashData, loader.ErrCodeBadMessage)}}, md5ok}, 1, nil},
		{"lost reply, seq error, bad md5", []ft.Step{{Want: blk}, {Want: blk, Reply: [][]byte{ft.ROMFail(loader.OpFlashData, loader.ErrCodeBadMessage)}}, md5bad}, 1,
			func(e error) bool { return errors.Is(e, flasher.ErrVerify) }},
		{"three checksum errors", []ft.Step{
			{Want: blk, Reply: [][]byte{ft.ROMFail(loader.OpFlashData, loader.ErrCodeBadChecksum)}},
			{Want: blk, Reply: [][]byte{ft.ROMFail(loader.OpFlashData, loader.ErrCodeBadChecksum)}},
			{Want: blk, Reply: [][]byte{ft.ROMFail(loader.OpFlashData, loader.ErrCodeBadChecksum)}}}, 2,
			func(e error) bool { return errors.Is(e, loader.ErrCodeBadChecksum) && mustCE(e).BadChecksum() }},
		{"verify error not retried", []ft.Step{{Want: blk, Reply: [][]byte{ft.ROMFail(loader.OpFlashData, loader.ErrCodeFlashWriteVerify)}}}, 0,
			func(e error) bool { return errors.Is(e, loader.ErrCodeFlashWriteVerify) }},
		{"link lost not retried", []ft.Step{{Want: blk, EOF: true}}, 0,
			func(e error) bool { return errors.Is(e, flasher.ErrLinkLost) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			steps := append(append(romFlashPrep(t), begin), tc.steps...)
			run(t, flasher.Config{FlashSize: mib4, NoCompress: true}, true, steps, func(ctx context.Context, s *flasher.Session) {
				res, err := s.WriteRegion(ctx, flasher.Region{Offset: 0x10000, Data: data})
				if tc.check == nil && err != nil || tc.check != nil && (err == nil || !tc.check(err)) {
					t.Fatalf("err = %v", err)
				}
				if res != nil && res.Retries != tc.retries {
					t.Fatalf("retries %d, want %d", res.Retries, tc.retries)
				}
			})
		})
	}
}

func mustCE(err error) *flasher.CommandError {
	ce, _ := errors.AsType[*flasher.CommandError](err)
	if ce == nil {
		return &flasher.CommandError{}
	}
	return ce
}

// How every kind of answer to a command maps to an error.
func TestCommandErrors(t *testing.T) {
	t.Parallel()
	req := ft.Req(loader.OpReadReg, loader.EncodeReadReg(0x60007000))
	stale := loader.EncodeResponse(loader.Response{Op: loader.OpSync, Data: []byte{1, 5, 0, 0}})
	tests := []struct {
		name         string
		step         ft.Step
		status, code byte
		is           error
		codeName     string
		ok           bool
	}{
		{"rom bad message", ft.Step{Want: req, Reply: [][]byte{ft.ROMFail(loader.OpReadReg, loader.ErrCodeBadMessage)}}, 1, 5, loader.ErrCodeBadMessage, "malformed or unsupported message", false},
		{"rom checksum", ft.Step{Want: req, Reply: [][]byte{ft.ROMFail(loader.OpReadReg, loader.ErrCodeBadChecksum)}}, 1, 7, loader.ErrCodeBadChecksum, "checksum mismatch", false},
		{"rom 0x64", ft.Step{Want: req, Reply: [][]byte{ft.ROMFail(loader.OpReadReg, loader.ErrCodeInvalidParameter)}}, 1, 0x64, loader.ErrCodeInvalidParameter, "invalid parameter (encrypted write refused or unaligned)", false},
		{"stub spi", ft.Step{Want: req, Reply: [][]byte{ft.StubFail(loader.OpReadReg, loader.StubFailedSPIOp)}}, 0xC4, 0, loader.StubFailedSPIOp, "SPI operation failed", false},
		{"stub not impl", ft.Step{Want: req, Reply: [][]byte{ft.StubFail(loader.OpReadReg, loader.StubCmdNotImplemented)}}, 0xFF, 0, loader.StubCmdNotImplemented, "command not implemented", false},
		{"unsupported stale opcode", ft.Step{Want: req, Reply: [][]byte{stale, stale, stale}}, 1, 5, flasher.ErrUnsupported, "malformed or unsupported message", false},
		{"silence", ft.Step{Want: req}, 0, 0, flasher.ErrTimeout, "", false},
		{"eof", ft.Step{Want: req, EOF: true}, 0, 0, flasher.ErrLinkLost, "", false},
		{"write fails", ft.Step{Want: req, Err: errors.New("usb gone")}, 0, 0, flasher.ErrLinkLost, "", false},
		{"status too short", ft.Step{Want: req, Reply: [][]byte{loader.EncodeResponse(loader.Response{Op: loader.OpReadReg, Data: []byte{0}})}}, 0, 0, nil, "", false},
		{"noise, stale and damaged frames skipped", ft.Step{Want: req, Reply: [][]byte{
			ft.ROM(loader.OpSync, loader.SyncValue, nil), {1, 2, 3}, ft.ROM(loader.OpReadReg, 42, nil)},
			Raw: nil}, 0, 0, nil, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			run(t, flasher.Config{BlockTries: 1}, true, []ft.Step{tc.step}, func(ctx context.Context, s *flasher.Session) {
				v, err := s.ReadReg(ctx, 0x60007000)
				if tc.ok {
					if err != nil || v != 42 {
						t.Fatalf("v=%d err=%v", v, err)
					}
					return
				}
				ce := mustCommandError(t, err)
				if ce.Op != loader.OpReadReg || ce.Status != tc.status || ce.Code != tc.code || ce.CodeName() != tc.codeName {
					t.Fatalf("%+v (%q)", ce, ce.CodeName())
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Fatalf("err %v is not %v", err, tc.is)
				}
				if !strings.HasPrefix(err.Error(), "flasher: ") || !strings.Contains(err.Error(), "0x60007000") {
					t.Fatalf("message %q", err)
				}
			})
		})
	}
}

// Idempotent commands are sent again when the answer is lost, damaged or
// the request was garbled on the way (ROM 0x05); other failures are final.
func TestCommandRetries(t *testing.T) {
	t.Parallel()
	req := ft.Req(loader.OpReadReg, loader.EncodeReadReg(0x60007000))
	good := ft.Step{Want: req, Reply: [][]byte{ft.ROM(loader.OpReadReg, 9, nil)}}
	for _, tc := range []struct {
		name  string
		steps []ft.Step
		ok    bool
	}{
		{"lost then ok", []ft.Step{{Want: req}, good}, true},
		{"damaged then ok", []ft.Step{{Want: req, Reply: [][]byte{loader.EncodeResponse(loader.Response{Op: loader.OpReadReg, Data: []byte{0}})}}, good}, true},
		{"garbled request then ok", []ft.Step{{Want: req, Reply: [][]byte{ft.ROMFail(loader.OpReadReg, loader.ErrCodeBadMessage)}}, good}, true},
		{"three losses", []ft.Step{{Want: req}, {Want: req}, {Want: req}}, false},
		{"stub failure is final", []ft.Step{{Want: req, Reply: [][]byte{ft.StubFail(loader.OpReadReg, loader.StubFailedSPIOp)}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			run(t, flasher.Config{}, true, tc.steps, func(ctx context.Context, s *flasher.Session) {
				v, err := s.ReadReg(ctx, 0x60007000)
				if tc.ok != (err == nil) || tc.ok && v != 9 {
					t.Fatalf("v=%d err=%v", v, err)
				}
			})
		})
	}
}

// A damaged frame (bad escape) before the real answer is skipped.
func TestResyncAfterDamagedFrame(t *testing.T) {
	t.Parallel()
	req := ft.Req(loader.OpReadReg, loader.EncodeReadReg(0x60007000))
	raw := append([]byte{0xC0, 0x01, 0x0A, 0xDB, 0x42, 0x00, 0xC0, 'x', 'y'}, slip.Encode(ft.ROM(loader.OpReadReg, 7, nil))...)
	run(t, flasher.Config{}, true, []ft.Step{{Want: req, Raw: raw}}, func(ctx context.Context, s *flasher.Session) {
		if v, err := s.ReadReg(ctx, 0x60007000); err != nil || v != 7 {
			t.Fatalf("v=%d err=%v", v, err)
		}
	})
}

func TestWriteRegDelay(t *testing.T) {
	t.Parallel()
	steps := []ft.Step{ft.WriteReg(true,
		loader.RegWrite{Addr: 0x600071D4, Value: 1, Mask: 0xFFFFFFFF},
		loader.RegWrite{Addr: 0x60000080, Value: 0, Mask: 0, DelayUS: 1000})}
	run(t, flasher.Config{}, true, steps, func(ctx context.Context, s *flasher.Session) {
		if err := s.WriteRegDelay(ctx, 0x600071D4, 1, 0xFFFFFFFF, 1000); err != nil {
			t.Fatal(err)
		}
	})
}

// JEDEC ID through the SPI user-command registers (§2.5), then the size.
func TestFlashID(t *testing.T) {
	t.Parallel()
	const b = 0x60002000
	full := func(a, v uint32) loader.RegWrite { return loader.RegWrite{Addr: a, Value: v, Mask: 0xFFFFFFFF} }
	steps := []ft.Step{
		ft.OK(ft.Req(loader.OpSPIAttach, make([]byte, 8)), true),
		ft.ReadReg(b+0x18, 0x11, true),
		ft.ReadReg(b+0x20, 0x22, true),
		ft.WriteReg(true, full(b+0x28, 23), full(b+0x18, 1<<31|1<<28), full(b+0x20, 0x7000009F), full(b+0x58, 0), full(b, 1<<18)),
		ft.ReadReg(b, 1<<18, true),
		ft.ReadReg(b, 0, true),
		ft.ReadReg(b+0x58, 0x00164020, true),
		ft.WriteReg(true, full(b+0x18, 0x11), full(b+0x20, 0x22)),
	}
	run(t, flasher.Config{}, true, steps, func(ctx context.Context, s *flasher.Session) {
		id, err := s.FlashID(ctx)
		if err != nil || id != 0x00164020 {
			t.Fatalf("id %06x err %v", id, err)
		}
	})
	for id, want := range map[uint32]int{0x00164020: 4 << 20, 0x001840EF: 16 << 20, 0x0015401F: 0, 0x0000471F: 4 << 20, 0x0000461F: 2 << 20, 0x00FF40EF: 0} {
		if got := flasher.FlashSizeFromID(id); got != want {
			t.Errorf("FlashSizeFromID(%06x) = %d, want %d", id, got, want)
		}
	}
}

func TestReadFlashROM(t *testing.T) {
	t.Parallel()
	flash := pattern(100)
	steps := append(romFlashPrep(t),
		ft.Step{Want: unhex(t, "00 0e 08 00 00000000 00100000 40000000"), Reply: [][]byte{ft.ROM(loader.OpReadFlashSlow, 0, flash[:64])}},
		ft.Step{Want: ft.Req(loader.OpReadFlashSlow, loader.Region{Offset: 0x1040, Size: 36}.Encode()),
			Reply: [][]byte{ft.ROM(loader.OpReadFlashSlow, 0, append(append([]byte(nil), flash[64:]...), make([]byte, 28)...))}},
	)
	run(t, flasher.Config{FlashSize: mib4}, true, steps, func(ctx context.Context, s *flasher.Session) {
		got, err := s.ReadFlash(ctx, 0x1000, 100)
		if err != nil || !bytes.Equal(got, flash) {
			t.Fatalf("% x %v", got, err)
		}
	})
}

func TestReadFlashStub(t *testing.T) {
	t.Parallel()
	flash := pattern(0x1800)
	sum := md5.Sum(flash)
	req := ft.Req(loader.OpReadFlash, unhex(t, "00000100 00180000 00100000 40000000"))
	for _, tc := range []struct {
		name string
		md5  []byte
		want error
	}{{"ok", sum[:], nil}, {"bad md5", make([]byte, 16), flasher.ErrVerify}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			steps := []ft.Step{
				ft.OK(ft.Req(loader.OpSPISetParams, loader.DefaultSPIParams(mib4).Encode()), false),
				{Want: req, Reply: [][]byte{ft.Stub(loader.OpReadFlash, 0, nil), flash[:0x1000]}},
				{Want: loader.EncodeReadFlashAck(0x1000), Reply: [][]byte{flash[0x1000:]}},
				{Want: loader.EncodeReadFlashAck(0x1800), Reply: [][]byte{tc.md5}},
			}
			run(t, flasher.Config{FlashSize: mib4}, false, steps, func(ctx context.Context, s *flasher.Session) {
				got, err := s.ReadFlash(ctx, 0x10000, 0x1800)
				if tc.want != nil {
					if !errors.Is(err, tc.want) {
						t.Fatalf("err = %v", err)
					}
					return
				}
				if err != nil || !bytes.Equal(got, flash) {
					t.Fatalf("err %v", err)
				}
			})
		})
	}
}

func TestErase(t *testing.T) {
	t.Parallel()
	t.Run("stub region", func(t *testing.T) {
		t.Parallel()
		steps := []ft.Step{
			ft.OK(ft.Req(loader.OpSPISetParams, loader.DefaultSPIParams(mib4).Encode()), false),
			ft.OK(unhex(t, "00 d1 08 00 00000000 00d00000 00200000"), false),
			ft.OK(ft.Req(loader.OpEraseFlash, nil), false),
		}
		run(t, flasher.Config{FlashSize: mib4}, false, steps, func(ctx context.Context, s *flasher.Session) {
			if err := s.EraseRegion(ctx, 0xd000, 0x2000); err != nil {
				t.Fatal(err)
			}
			if err := s.EraseFlash(ctx); err != nil {
				t.Fatal(err)
			}
			if err := s.EraseRegion(ctx, 0xd000, 0x100); !errors.Is(err, flasher.ErrBadRegion) {
				t.Fatalf("unaligned size: %v", err)
			}
			if err := s.EraseRegion(ctx, 0x3ff000, 0x2000); !errors.Is(err, flasher.ErrBadRegion) {
				t.Fatalf("past end: %v", err)
			}
		})
	})
	t.Run("rom region", func(t *testing.T) {
		t.Parallel()
		steps := append(romFlashPrep(t),
			ft.OK(ft.Req(loader.OpFlashBegin, loader.Begin{Size: 0x2000, Blocks: 8, BlockSize: 0x400, Offset: 0xd000, Long: true}.Encode()), true))
		run(t, flasher.Config{FlashSize: mib4}, true, steps, func(ctx context.Context, s *flasher.Session) {
			if err := s.EraseRegion(ctx, 0xd000, 0x2000); err != nil {
				t.Fatal(err)
			}
		})
	})
}

func TestLoadStub(t *testing.T) {
	t.Parallel()
	text := pattern(0x1900) // two MEM_DATA blocks
	data := pattern(16)
	js := fmt.Sprintf(`{"entry": 1077411840, "text": %q, "text_start": 1077411840, "data": %q, "data_start": 1070104576, "bss_start": 1070137344}`,
		base64.StdEncoding.EncodeToString(text), base64.StdEncoding.EncodeToString(data))
	steps := []ft.Step{
		ft.OK(unhex(t, "00 05 10 00 00000000 00190000 02000000 00180000 00003840"), true),
		ft.OK(ft.DataReq(loader.OpMemData, 0, text[:0x1800]), true),
		ft.OK(ft.DataReq(loader.OpMemData, 1, text[0x1800:]), true),
		ft.OK(ft.Req(loader.OpMemBegin, loader.Begin{Size: 16, Blocks: 1, BlockSize: 0x1800, Offset: 1070104576}.Encode()), true),
		ft.OK(ft.DataReq(loader.OpMemData, 0, data), true),
		{Want: unhex(t, "00 06 08 00 00000000 00000000 00003840"), Reply: [][]byte{ft.ROM(loader.OpMemEnd, 0, nil), []byte("OHAI")}},
		// With the stub: FLASH_BEGIN is 16 bytes, blocks 0x4000, no attach.
		ft.OK(ft.Req(loader.OpSPISetParams, loader.DefaultSPIParams(mib4).Encode()), false),
		ft.OK(ft.Req(loader.OpEraseRegion, loader.Region{Offset: 0, Size: 0x1000}.Encode()), false),
	}
	run(t, flasher.Config{FlashSize: mib4}, true, steps, func(ctx context.Context, s *flasher.Session) {
		if err := s.LoadStub(ctx, []byte(js)); err != nil {
			t.Fatal(err)
		}
		if !s.Info().Stub {
			t.Fatal("not in stub mode")
		}
		if err := s.EraseRegion(ctx, 0, 0x1000); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := flasher.ParseStub([]byte(`{"entry": 0}`)); err == nil {
		t.Fatal("empty stub accepted")
	}
}

// The stub's OHAI may arrive while the host still waits for MEM_END's
// answer, or the answer may be lost: both work.
func TestLoadStubLostMemEnd(t *testing.T) {
	t.Parallel()
	js := fmt.Sprintf(`{"entry": 1077411840, "text": %q, "text_start": 1077411840}`, base64.StdEncoding.EncodeToString(pattern(8)))
	steps := []ft.Step{
		ft.OK(ft.Req(loader.OpMemBegin, loader.Begin{Size: 8, Blocks: 1, BlockSize: 0x1800, Offset: 1077411840}.Encode()), true),
		ft.OK(ft.DataReq(loader.OpMemData, 0, pattern(8)), true),
		{Want: ft.Req(loader.OpMemEnd, loader.MemEnd{Entry: 1077411840}.Encode()), Reply: [][]byte{[]byte("OHAI")}},
	}
	run(t, flasher.Config{}, true, steps, func(ctx context.Context, s *flasher.Session) {
		if err := s.LoadStub(ctx, []byte(js)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestChangeBaud(t *testing.T) {
	t.Parallel()
	t.Run("rom", func(t *testing.T) {
		t.Parallel()
		steps := []ft.Step{
			{Baud: 921600}, {Baud: 115200},
			ft.OK(unhex(t, "00 0f 08 00 00000000 00100e00 00000000"), true),
			{Baud: 921600},
			{Want: ft.SyncReq(), Reply: ft.SyncReplies(true)},
		}
		run(t, flasher.Config{Baud: 921600}, true, steps, func(ctx context.Context, s *flasher.Session) {
			if s.Info().Baud != 921600 {
				t.Fatalf("baud %d", s.Info().Baud)
			}
		})
	})
	t.Run("stub sends the current rate", func(t *testing.T) {
		t.Parallel()
		steps := []ft.Step{
			{Baud: 460800}, {Baud: 115200},
			ft.OK(ft.Req(loader.OpChangeBaudrate, loader.ChangeBaud{New: 460800, Old: 115200}.Encode()), false),
			{Baud: 460800},
			{Want: ft.SyncReq(), Reply: ft.SyncReplies(false)},
		}
		run(t, flasher.Config{}, false, steps, func(ctx context.Context, s *flasher.Session) {
			if err := s.ChangeBaud(ctx, 460800); err != nil || s.Info().Baud != 460800 {
				t.Fatal(err, s.Info().Baud)
			}
		})
	})
	t.Run("refused stays at current rate", func(t *testing.T) {
		t.Parallel()
		steps := []ft.Step{
			{Baud: 921600}, {Baud: 115200},
			{Want: ft.Req(loader.OpChangeBaudrate, loader.ChangeBaud{New: 921600}.Encode()), Reply: [][]byte{ft.ROMFail(loader.OpChangeBaudrate, loader.ErrCodeBadMessage)}},
			ft.ReadReg(0x60007000, 5, true),
		}
		run(t, flasher.Config{Baud: 921600}, true, steps, func(ctx context.Context, s *flasher.Session) {
			if s.Info().Baud != 115200 {
				t.Fatalf("baud %d", s.Info().Baud)
			}
			if v, err := s.ReadReg(ctx, 0x60007000); err != nil || v != 5 {
				t.Fatal("session unusable after a refused baud change", err)
			}
		})
	})
	t.Run("port refuses the rate", func(t *testing.T) {
		t.Parallel()
		steps := []ft.Step{{Baud: 3000000, Err: errors.New("unsupported rate")}}
		run(t, flasher.Config{}, true, steps, func(ctx context.Context, s *flasher.Session) {
			if err := s.ChangeBaud(ctx, 3000000); err == nil || s.Info().Baud != 115200 {
				t.Fatal("accepted", err)
			}
		})
	})
}

func TestHardReset(t *testing.T) {
	t.Parallel()
	steps := []ft.Step{
		ft.WriteReg(true, loader.RegWrite{Addr: 0x6000812C, Value: 0, Mask: 1}),
		{Reset: true, Mode: chip.BootSPI},
	}
	run(t, flasher.Config{}, true, steps, func(ctx context.Context, s *flasher.Session) {
		if err := s.HardReset(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReadReg(ctx, 0); !errors.Is(err, flasher.ErrSessionEnded) {
			t.Fatalf("after reset: %v", err)
		}
	})
}
