package flasher_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"fuseline/esp/chip"
	"fuseline/esp/loader"
	"fuseline/flasher"
	ft "fuseline/flasher/flashertest"
)

const s3Banner = "ESP-ROM:esp32s3-20210327\r\nBuild:Mar 27 2021\r\nrst:0x1 (POWERON),boot:0x0 (DOWNLOAD(USB/UART0))\r\nwaiting for download\r\n"

// Identity used by the S3 scripts: MAC 7c:df:a1:00:11:22, revision v0.2.
const (
	s3MACLo = 0xa1001122
	s3MACHi = 0x00007cdf
)

func secInfo(id chip.ID, flags loader.SecurityFlags) []byte {
	return loader.SecurityInfo{Flags: flags, HasChipID: true, ChipID: uint32(id), EcoVersion: 0}.Encode()
}

// connectSteps is what Connect does with an S3 ROM: reset, banner, one
// SYNC swallowed by auto-baud, one answered, security info, identity reads
// (each read twice: ReadRegStable takes a value two reads agree on).
func connectSteps(rom bool) []ft.Step {
	reply := ft.ROM
	if !rom {
		reply = ft.Stub
	}
	return []ft.Step{
		{Reset: true, Mode: chip.BootDownload, Raw: []byte(s3Banner)},
		{Name: "first SYNC (eaten by auto-baud)", Want: ft.SyncReq()},
		{Want: ft.SyncReq(), Reply: ft.SyncReplies(rom)},
		{Want: ft.Req(loader.OpGetSecurityInfo, nil), Reply: [][]byte{reply(loader.OpGetSecurityInfo, 0, secInfo(chip.ESP32S3, 0))}},
		ft.ReadReg(0x60007044, s3MACLo, rom),
		ft.ReadReg(0x60007044, s3MACLo, rom),
		ft.ReadReg(0x60007048, s3MACHi, rom),
		ft.ReadReg(0x60007048, s3MACHi, rom),
		ft.ReadReg(0x60007050, 2<<18, rom),
		ft.ReadReg(0x60007050, 2<<18, rom),
		ft.ReadReg(0x60007058, 0, rom),
		ft.ReadReg(0x60007058, 0, rom),
		ft.ReadReg(0x6000706C, 0, rom),
		ft.ReadReg(0x6000706C, 0, rom),
	}
}

// run connects over a Playback holding connect steps + more, runs fn and
// checks that the whole script was used.
func run(t *testing.T, cfg flasher.Config, rom bool, more []ft.Step, fn func(ctx context.Context, s *flasher.Session)) {
	t.Helper()
	steps := append(connectSteps(rom), more...)
	pb := ft.NewPlayback(steps...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := flasher.Connect(ctx, pb, pb, cfg)
	if err != nil {
		t.Fatalf("Connect: %v (script: %v)", err, pb.Close())
	}
	fn(ctx, s)
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustCommandError(t *testing.T, err error) *flasher.CommandError {
	t.Helper()
	ce, ok := errors.AsType[*flasher.CommandError](err)
	if !ok {
		t.Fatalf("err = %v, want *CommandError", err)
	}
	return ce
}
