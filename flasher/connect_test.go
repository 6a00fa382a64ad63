package flasher_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"fuseline/esp/chip"
	"fuseline/esp/loader"
	"fuseline/flasher"
	ft "fuseline/flasher/flashertest"
)

func TestConnectS3ROM(t *testing.T) {
	t.Parallel()
	var events []flasher.Event
	cfg := flasher.Config{Progress: func(e flasher.Event) { events = append(events, e) }}
	run(t, cfg, true, nil, func(ctx context.Context, s *flasher.Session) {
		info := s.Info()
		if info.Chip.ID != chip.ESP32S3 || info.Stub || info.SecureDownload || !info.HasSecurityInfo {
			t.Fatalf("info %+v", info)
		}
		if info.MACString() != "7c:df:a1:00:11:22" || !info.MACKnown {
			t.Fatalf("MAC %s", info.MACString())
		}
		if info.Revision != 2 {
			t.Fatalf("revision %d, want 2 (v0.2)", info.Revision)
		}
		if !strings.Contains(info.Banner, "waiting for download") {
			t.Fatalf("banner %q", info.Banner)
		}
		if info.Baud != 115200 {
			t.Fatalf("baud %d", info.Baud)
		}
	})
	phases := map[string]bool{}
	for _, e := range events {
		phases[e.Phase] = true
	}
	for _, p := range []string{flasher.PhaseReset, flasher.PhaseSync, flasher.PhaseDetect} {
		if !phases[p] {
			t.Errorf("no %s event", p)
		}
	}
}

// The ESP32 ROM has no GET_SECURITY_INFO: it answers with a stale SYNC
// opcode and error 0x05, eight times (§1.10); the host falls back to the
// magic register. MAC words from a real ESP32 trace (§2.4).
func TestConnectESP32(t *testing.T) {
	t.Parallel()
	stale := loader.EncodeResponse(loader.Response{Op: loader.OpSync, Value: loader.SyncValue, Data: []byte{1, 5, 0, 0}})
	refusals := make([][]byte, 8)
	for i := range refusals {
		refusals[i] = stale
	}
	steps := []ft.Step{
		{Reset: true, Mode: chip.BootDownload, Raw: []byte("ets Jul 29 2019 12:21:46\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))\r\nwaiting for download\r\n")},
		{Want: ft.SyncReq(), Reply: ft.SyncReplies(true)},
		{Want: ft.Req(loader.OpGetSecurityInfo, nil), Reply: refusals},
		{Want: []byte{0x00, 0x0a, 0x04, 0x00, 0, 0, 0, 0, 0x00, 0x10, 0x00, 0x40},
			Reply: [][]byte{{0x01, 0x0a, 0x04, 0x00, 0x83, 0x1d, 0xf0, 0x00, 0, 0, 0, 0}}}, // trace bytes (§1.7)
		ft.ReadReg(0x3FF5A004, 0xA44EBE40, true),
		ft.ReadReg(0x3FF5A004, 0xA44EBE40, true),
		ft.ReadReg(0x3FF5A008, 0x008630AE, true),
		ft.ReadReg(0x3FF5A008, 0x008630AE, true),
		ft.ReadReg(0x3FF5A00C, 1<<15, true),
		ft.ReadReg(0x3FF5A00C, 1<<15, true),
		ft.ReadReg(0x3FF5A014, 1<<20, true),
		ft.ReadReg(0x3FF5A014, 1<<20, true),
		ft.ReadReg(0x3FF6607C, 1<<31, true),
		ft.ReadReg(0x3FF6607C, 1<<31, true),
	}
	// Then a write: the ESP32 ROM takes a 16-byte FLASH_BEGIN, its
	// bootloader lives at 0x1000, and it cannot encrypt on the way in.
	boot := make([]byte, 64)
	boot[0], boot[1] = 0xE9, 2 // chip_id 0 = ESP32
	steps = append(steps,
		ft.OK(ft.Req(loader.OpSPIAttach, make([]byte, 8)), true),
		ft.OK(ft.Req(loader.OpSPISetParams, loader.DefaultSPIParams(mib4).Encode()), true),
		ft.OK([]byte{0x00, 0x02, 0x10, 0x00, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 0, 0, 0, 0, 4, 0, 0, 0, 0x10, 0, 0}, true),
		ft.OK(ft.DataReq(loader.OpFlashData, 0, padFF(boot, 0x400)), true),
		ft.Step{Want: ft.Req(loader.OpSPIFlashMD5, loader.Region{Offset: 0x1000, Size: 64}.EncodeMD5()), Reply: [][]byte{ft.ROM(loader.OpSPIFlashMD5, 0, md5ROM(boot))}},
	)
	pb := ft.NewPlayback(steps...)
	s, err := flasher.Connect(t.Context(), pb, pb, flasher.Config{Chip: "esp32", FlashSize: mib4, NoCompress: true})
	if err != nil {
		t.Fatal(err, pb.Close())
	}
	info := s.Info()
	if info.Chip.ID != chip.ESP32 || info.HasSecurityInfo || info.MACString() != "30:ae:a4:4e:be:40" || info.Revision != 300 {
		t.Fatalf("info %+v mac %s", info, info.MACString())
	}
	if _, err := s.WriteRegion(t.Context(), flasher.Region{Name: "bootloader", Offset: 0x1000, Data: boot}); err != nil {
		t.Fatal(err)
	}
	s3boot := append([]byte(nil), boot...)
	s3boot[12] = byte(chip.ESP32S3)
	if _, err := s.WriteRegion(t.Context(), flasher.Region{Name: "bootloader", Offset: 0x1000, Data: s3boot}); err == nil {
		t.Fatal("S3 bootloader accepted on an ESP32")
	}
	if _, err := s.WriteRegion(t.Context(), flasher.Region{Offset: 0x10000, Data: boot[2:34], ChipEncrypt: true}); !errors.Is(err, flasher.ErrBadRegion) {
		t.Fatalf("encrypted write on the ESP32 ROM: %v", err)
	}
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConnectSecureDownload(t *testing.T) {
	t.Parallel()
	steps := []ft.Step{
		{Reset: true, Mode: chip.BootDownload},
		{Want: ft.SyncReq(), Reply: ft.SyncReplies(true)},
		{Want: ft.Req(loader.OpGetSecurityInfo, nil), Reply: [][]byte{ft.ROM(loader.OpGetSecurityInfo, 0,
			secInfo(chip.ESP32C3, loader.FlagSecureDownloadEnable|loader.FlagSecureBootEn))}},
	}
	pb := ft.NewPlayback(steps...)
	s, err := flasher.Connect(t.Context(), pb, pb, flasher.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
	info := s.Info()
	if !info.SecureDownload || info.Chip.ID != chip.ESP32C3 || info.MACKnown || info.Revision != -1 {
		t.Fatalf("info %+v", info)
	}
	ctx := t.Context()
	for name, err := range map[string]error{
		"ReadReg": func() error { _, err := s.ReadReg(ctx, 0x60008844); return err }(),
		"MD5":     func() error { _, err := s.FlashMD5(ctx, 0, 16); return err }(),
		"Efuse":   func() error { _, err := s.ReadEfuses(ctx); return err }(),
		"Stub":    s.LoadStub(ctx, []byte(`{}`)),
		"Encrypt": func() error {
			_, err := s.WriteRegion(ctx, flasher.Region{Offset: 0x10000, Data: make([]byte, 32), ChipEncrypt: true})
			return err
		}(),
		"FlashSize": func() error {
			_, err := s.WriteRegion(ctx, flasher.Region{Offset: 0x10000, Data: make([]byte, 32)})
			return err
		}(),
	} {
		if !errors.Is(err, flasher.ErrSecureDownload) {
			t.Errorf("%s: err = %v, want ErrSecureDownload", name, err)
		}
	}
}

func TestConnectWrongChip(t *testing.T) {
	t.Parallel()
	pb := ft.NewPlayback(connectSteps(true)[:4]...)
	_, err := flasher.Connect(t.Context(), pb, pb, flasher.Config{Chip: "esp32c3"})
	cm, ok := errors.AsType[*flasher.ChipMismatchError](err)
	if !ok || cm.Want != chip.ESP32C3 || cm.Got != chip.ESP32S3 {
		t.Fatalf("err = %v", err)
	}
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
}

// A board that never answers: the error says so after every attempt, with
// a hint from the banner; the retries take the documented fake time.
func TestConnectNoSync(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, banner, hint string
	}{
		{"silent", "", "nothing received"},
		{"tx broken", s3Banner, "TX"},
		{"flash boot", "rst:0x1 (POWERON),boot:0x8 (SPI_FAST_FLASH_BOOT)\r\n", "strap 0x8"},
		{"garbage", "\x00\x13\x99", "unrecognised"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var steps []ft.Step
				for a := 0; a < 2; a++ {
					steps = append(steps, ft.Step{Reset: true, Mode: chip.BootDownload, Raw: []byte(tc.banner)})
					for i := 0; i < 3; i++ {
						steps = append(steps, ft.Step{Want: ft.SyncReq()})
					}
				}
				pb := ft.NewPlayback(steps...)
				start := time.Now()
				_, err := flasher.Connect(t.Context(), pb, pb, flasher.Config{Attempts: 2, SyncTries: 3})
				if !errors.Is(err, flasher.ErrNoSync) || !strings.Contains(err.Error(), "2 attempts of 3 tries") || !strings.Contains(err.Error(), tc.hint) {
					t.Fatalf("err = %v", err)
				}
				// Playback answers reads at once, so only the backoff
				// sleeps take time: 50+100+200 ms per attempt.
				if el := time.Since(start); el != 2*350*time.Millisecond {
					t.Fatalf("took %v of fake time, want 700ms", el)
				}
				if err := pb.Close(); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// A ROM that says its download modes are disabled is not retried: one
// reset, no SYNC, an error that says why (a locked board would otherwise
// cost every attempt's backoff).
func TestConnectDownloadDisabled(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		banner := "rst:0x1 (POWERON_RESET),boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))\r\nDownload boot modes disabled\r\n"
		pb := ft.NewPlayback(ft.Step{Reset: true, Mode: chip.BootDownload, Raw: []byte(banner)})
		start := time.Now()
		_, err := flasher.Connect(t.Context(), pb, pb, flasher.Config{})
		if !errors.Is(err, flasher.ErrDownloadDisabled) || !errors.Is(err, flasher.ErrNoSync) || !strings.Contains(err.Error(), "download boot modes are disabled") {
			t.Fatalf("err = %v", err)
		}
		if el := time.Since(start); el > time.Second {
			t.Fatalf("took %v of fake time: it retried", el)
		}
		if err := pb.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestConnectCancelled(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 120*time.Millisecond)
		defer cancel()
		pb := ft.NewPlayback(ft.Step{Reset: true, Mode: chip.BootDownload}, ft.Step{Want: ft.SyncReq()}, ft.Step{Want: ft.SyncReq()})
		_, err := flasher.Connect(ctx, pb, pb, flasher.Config{})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestConnectResetFails(t *testing.T) {
	t.Parallel()
	boom := errors.New("line refused")
	pb := ft.NewPlayback(ft.Step{Reset: true, Mode: chip.BootDownload, Err: boom})
	_, err := flasher.Connect(t.Context(), pb, pb, flasher.Config{})
	if !errors.Is(err, boom) || ft.IsErr(err) {
		t.Fatalf("err = %v", err)
	}
}

// A stub already running answers SYNC with value 0: the session uses the
// stub formats from the start.
func TestConnectStubRunning(t *testing.T) {
	t.Parallel()
	run(t, flasher.Config{}, false, nil, func(ctx context.Context, s *flasher.Session) {
		if !s.Info().Stub {
			t.Fatal("stub not detected")
		}
	})
}

func TestLinkLostDuringConnect(t *testing.T) {
	t.Parallel()
	pb := ft.NewPlayback(ft.Step{Reset: true, Mode: chip.BootDownload}, ft.Step{Want: ft.SyncReq(), EOF: true})
	_, err := flasher.Connect(t.Context(), pb, pb, flasher.Config{})
	if !errors.Is(err, flasher.ErrLinkLost) {
		t.Fatalf("err = %v", err)
	}
}

// In secure download mode a plain write still works (no compression, no
// MD5): the result says why it was not verified.
func TestSecureDownloadPlainWrite(t *testing.T) {
	t.Parallel()
	data := pattern(32)
	steps := []ft.Step{
		{Reset: true, Mode: chip.BootDownload},
		{Want: ft.SyncReq(), Reply: ft.SyncReplies(true)},
		{Want: ft.Req(loader.OpGetSecurityInfo, nil), Reply: [][]byte{ft.ROM(loader.OpGetSecurityInfo, 0, secInfo(chip.ESP32S3, loader.FlagSecureDownloadEnable))}},
		ft.OK(ft.Req(loader.OpSPIAttach, make([]byte, 8)), true),
		ft.OK(ft.Req(loader.OpSPISetParams, loader.DefaultSPIParams(mib4).Encode()), true),
		ft.OK(ft.Req(loader.OpFlashBegin, loader.Begin{Size: 32, Blocks: 1, BlockSize: 0x400, Offset: 0x10000, Long: true}.Encode()), true),
		ft.OK(ft.DataReq(loader.OpFlashData, 0, padFF(data, 0x400)), true),
	}
	pb := ft.NewPlayback(steps...)
	s, err := flasher.Connect(t.Context(), pb, pb, flasher.Config{FlashSize: mib4})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.WriteRegion(t.Context(), flasher.Region{Offset: 0x10000, Data: data})
	if err != nil || res.Verified || res.Compressed || !strings.Contains(res.NotVerified, "secure download") {
		t.Fatalf("%+v %v", res, err)
	}
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
}
