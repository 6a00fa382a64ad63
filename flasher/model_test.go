package flasher_test

import (
	"context"
	"errors"
	"testing"

	"fuseline/esp/chip"
	"fuseline/esp/loader"
	"fuseline/fixtures/virtual"
	"fuseline/flasher"
	ft "fuseline/flasher/flashertest"
)

// A real board's loader refuses the model question as silicon refuses any
// opcode it does not know; the answer means "no model", is no error, and
// the session goes on as before (the next command is answered).
func TestAskModelSilicon(t *testing.T) {
	t.Parallel()
	ask := ft.Req(loader.OpModelKind, nil)
	// The ROM's refusal: status 1 / 0x05 with the opcode of its last
	// answer (READ_REG, the last identity read), §1.10.
	staleReadReg := loader.EncodeResponse(loader.Response{Op: loader.OpReadReg, Data: loader.ROMStatus(true, loader.ErrCodeBadMessage)})
	stubRefusal := loader.EncodeResponse(loader.Response{Op: loader.OpModelKind, Data: loader.StubStatus(loader.StubInvalidCommand)})
	for _, tc := range []struct {
		name  string
		rom   bool
		reply []byte
	}{
		{"ROM invalid command (stale opcode)", true, staleReadReg},
		{"ROM invalid command (opcode echoed)", true, ft.ROMFail(loader.OpModelKind, loader.ErrCodeBadMessage)},
		{"stub invalid command", false, stubRefusal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			more := []ft.Step{
				{Name: "model question", Want: ask, Reply: [][]byte{tc.reply}},
				ft.ReadReg(0x60008800, 0x1234, tc.rom),
			}
			run(t, flasher.Config{}, tc.rom, more, func(ctx context.Context, s *flasher.Session) {
				kind, err := s.AskModel(ctx)
				if err != nil || kind != "" {
					t.Fatalf("AskModel = %q, %v; want no model, no error", kind, err)
				}
				if v, err := s.ReadReg(ctx, 0x60008800); err != nil || v != 0x1234 {
					t.Fatalf("the session did not go on: %#x, %v", v, err)
				}
				if s.Info().Model != "" {
					t.Fatalf("Info.Model = %q", s.Info().Model)
				}
			})
		})
	}
}

// A ROM in Secure Download Mode refuses the question like any forbidden
// opcode (stale GET_SECURITY_INFO opcode): no model, and the session stays.
func TestAskModelSecureDownload(t *testing.T) {
	t.Parallel()
	stale := loader.EncodeResponse(loader.Response{Op: loader.OpGetSecurityInfo, Data: loader.ROMStatus(true, loader.ErrCodeBadMessage)})
	pb := ft.NewPlayback(
		ft.Step{Reset: true, Mode: chip.BootDownload, Raw: []byte(s3Banner)},
		ft.Step{Want: ft.SyncReq(), Reply: ft.SyncReplies(true)},
		ft.Step{Want: ft.Req(loader.OpGetSecurityInfo, nil), Reply: [][]byte{ft.ROM(loader.OpGetSecurityInfo, 0,
			secInfo(chip.ESP32C3, loader.FlagSecureDownloadEnable|loader.FlagSecureBootEn))}},
		ft.Step{Want: ft.Req(loader.OpModelKind, nil), Reply: [][]byte{stale}},
	)
	s, err := flasher.Connect(t.Context(), pb, pb, flasher.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if kind, err := s.AskModel(t.Context()); err != nil || kind != "" {
		t.Fatalf("AskModel = %q, %v", kind, err)
	}
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
}

// A model whose answer is lost is asked again; one that never answers is
// an error, never taken for silicon.
func TestAskModelLost(t *testing.T) {
	t.Parallel()
	ask := ft.Req(loader.OpModelKind, nil)
	kind, _ := loader.EncodeModelKind(loader.ModelVirtual)
	run(t, flasher.Config{}, true, []ft.Step{{Want: ask}, {Want: ask, Reply: [][]byte{ft.ROM(loader.OpModelKind, 0, kind)}}},
		func(ctx context.Context, s *flasher.Session) {
			if k, err := s.AskModel(ctx); err != nil || k != loader.ModelVirtual {
				t.Fatalf("AskModel = %q, %v", k, err)
			}
		})
	run(t, flasher.Config{BlockTries: 2}, true, []ft.Step{{Want: ask}, {Want: ask}},
		func(ctx context.Context, s *flasher.Session) {
			if k, err := s.AskModel(ctx); !errors.Is(err, flasher.ErrTimeout) || k != "" {
				t.Fatalf("AskModel = %q, %v; want ErrTimeout", k, err)
			}
		})
}

// The virtual board says what it is, from its ROM, its stub and in Secure
// Download Mode alike.
func TestAskModelVirtual(t *testing.T) {
	t.Parallel()
	b, p := newBoard(t, virtual.Config{Chip: chip.S3()})
	s, err := flasher.Connect(ctxT(t), p, b, flasher.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if k, err := s.AskModel(ctxT(t)); err != nil || k != loader.ModelVirtual || s.Info().Model != loader.ModelVirtual {
		t.Fatalf("ROM: AskModel = %q, %v", k, err)
	}
	if err := s.LoadStub(ctxT(t), fakeStubJSON()); err != nil {
		t.Fatal(err)
	}
	if k, err := s.AskModel(ctxT(t)); err != nil || k != loader.ModelVirtual {
		t.Fatalf("stub: AskModel = %q, %v", k, err)
	}
}
