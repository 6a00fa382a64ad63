package flasher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"fuseline/esp/chip"
	"fuseline/esp/loader"
)

// Config is how Connect talks to one board. The zero value works: 7
// attempts of 5 SYNC tries at 115200 baud, chip detected, no stub, no baud
// change. Connect never modifies it.
type Config struct {
	// Chip is the expected chip ("esp32s3"); "" accepts any supported chip.
	Chip string
	// Baud is the rate to switch to after connecting; 0 keeps the initial
	// rate. If the switch fails the session stays at the current rate.
	Baud int
	// InitialBaud is the link's rate at connect time; 0 means 115200.
	InitialBaud int
	// Attempts is the number of reset+sync attempts; 0 means 7.
	Attempts int
	// SyncTries is the number of SYNC tries per attempt; 0 means 5.
	SyncTries int
	// Stub is the content of an esptool stub JSON file
	// (stub_flasher/<chip>.json) to upload after connecting; nil: stay
	// with the ROM loader.
	Stub []byte
	// FlashSize in bytes; 0 means detect it from the JEDEC ID (required in
	// secure download mode, where registers cannot be read).
	FlashSize int
	// StubBlockSize overrides the stub's flash block (0x4000); 0x800 for an
	// S3 over USB-OTG (§1.8).
	StubBlockSize int
	// BlockTries is how often a data block is sent before giving up; 0: 3.
	BlockTries int
	// NoCompress disables FLASH_DEFL_* (compression is used whenever the
	// loader allows it and it shrinks the data).
	NoCompress bool
	// Progress receives progress events; nil: none. It is called on the
	// flasher's goroutine and must not block for long.
	Progress func(Event)
	// Log receives debug and warning records; nil: discard.
	Log *slog.Logger
}

// Event is one progress report.
type Event struct {
	Phase  string // one of the Phase constants
	Region string // region name for write/verify/read/erase
	Done   int64  // bytes (or steps) done
	Total  int64
	Rate   float64 // bytes per second of payload so far, 0 if unknown
}

// Phases of Event.
const (
	PhaseReset  = "reset"
	PhaseSync   = "sync"
	PhaseDetect = "detect"
	PhaseStub   = "stub"
	PhaseBaud   = "baud"
	PhaseErase  = "erase"
	PhaseWrite  = "write"
	PhaseVerify = "verify"
	PhaseRead   = "read"
	PhaseEfuse  = "efuse"
)

// Info is what Connect learned about the board.
type Info struct {
	Chip chip.Chip
	// Revision is major*100+minor; -1 when it could not be read (SDM).
	Revision int
	MAC      [6]byte
	// MACKnown is false in secure download mode.
	MACKnown bool
	// Security is the GET_SECURITY_INFO answer when HasSecurityInfo.
	Security        loader.SecurityInfo
	HasSecurityInfo bool
	SecureDownload  bool
	// Stub reports the flasher stub is running (uploaded or found running).
	Stub bool
	Baud int
	// FlashID is the JEDEC ID (mfr | type<<8 | capacity<<16), 0 if unknown.
	FlashID   uint32
	FlashSize int
	// Banner is the boot text read after the reset that worked.
	Banner string
	// Model is what the loader said it is when asked (Session.AskModel):
	// loader.ModelVirtual for Fuseline's virtual board; "" for silicon,
	// or when not asked.
	Model string
}

// BelowMinRevision reports a known revision under chip.Chip.MinRevision
// (C3 before v0.3 lacks Secure Boot v2; ESP32 before v3.0 is unsupported).
func (i Info) BelowMinRevision() bool {
	return i.Revision >= 0 && i.Revision < i.Chip.MinRevision
}

// MACString formats the MAC as aa:bb:cc:dd:ee:ff.
func (i Info) MACString() string {
	m := i.MAC
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// Session is a connection to one board's loader. It is not safe for
// concurrent use; use one Session per board.
type Session struct {
	cfg  Config
	w    *wire
	link io.ReadWriter
	rst  Resetter
	log  *slog.Logger

	info       Info
	attached   bool // SPI_ATTACH sent to the ROM
	paramsSent bool // SPI_SET_PARAMS sent to the current loader
	ended      bool
	sawOHAI    bool
}

// Info returns what is known about the board.
func (s *Session) Info() Info { return s.info }

// Chip returns the detected chip.
func (s *Session) Chip() chip.Chip { return s.info.Chip }

func (s *Session) emit(e Event) {
	if s.cfg.Progress != nil {
		s.cfg.Progress(e)
	}
}

func (s *Session) rom() bool { return !s.info.Stub }

func (s *Session) alive() error {
	if s.ended {
		return ErrSessionEnded
	}
	return nil
}

func (s *Session) needRegs() error {
	if err := s.alive(); err != nil {
		return err
	}
	if s.info.SecureDownload {
		return ErrSecureDownload
	}
	return nil
}

// Timeouts (§1.9).
const (
	DefaultTimeout    = 3 * time.Second
	syncTimeout       = 100 * time.Millisecond
	memEndROMTimeout  = 200 * time.Millisecond
	eraseChipTimeout  = 120 * time.Second
	maxTimeout        = 240 * time.Second
	md5SecondsPerMB   = 8
	eraseSecondsPerMB = 40
	unsupportedDrain  = 200 * time.Millisecond
	maxFramesPerReply = 100
)

// timeoutPerMB scales like esptool's timeout_per_mb: seconds per 1e6
// bytes, at least DefaultTimeout, at most maxTimeout.
func timeoutPerMB(secondsPerMB float64, size int) time.Duration {
	d := time.Duration(secondsPerMB * float64(size) / 1e6 * float64(time.Second))
	return min(max(d, DefaultTimeout), maxTimeout)
}

// ohai is the frame a freshly started stub sends.
const ohai = "OHAI"

// awaitResponse reads frames until a response to op arrives (skipping
// stale and damaged frames, at most 100) or timeout passes.
func (s *Session) awaitResponse(ctx context.Context, op loader.Op, timeout time.Duration) (loader.Response, error) {
	deadline := time.Now().Add(timeout)
	var text []byte // bytes outside frames: a reset banner says the chip restarted
	for i := 0; i < maxFramesPerReply; i++ {
		left := time.Until(deadline)
		if left <= 0 {
			return loader.Response{}, s.noAnswer(ctx, op, text, timeoutErr(ctx))
		}
		f, junk, err := s.w.next(ctx, left)
		text = append(text, junk...)
		if errors.Is(err, errCorrupt) {
			s.log.Debug("flasher: damaged frame skipped", "op", op, "err", err)
			continue
		}
		if err != nil {
			return loader.Response{}, s.noAnswer(ctx, op, text, err)
		}
		if string(f) == ohai {
			s.sawOHAI = true
			continue
		}
		resp, err := loader.DecodeResponse(f)
		if err != nil {
			s.log.Debug("flasher: non-response frame skipped", "op", op, "len", len(f), "err", err)
			continue
		}
		if resp.Op == op {
			return resp, nil
		}
		if loader.IsUnsupported(op, resp) {
			// The ROM may repeat the refusal 8 times (stale SYNC opcode).
			if _, err := s.w.drain(ctx, unsupportedDrain, unsupportedDrain); err != nil {
				return loader.Response{}, err
			}
			return resp, &CommandError{Op: op, Status: resp.Data[0], Code: resp.Data[1], Err: ErrUnsupported}
		}
	}
	return loader.Response{}, fmt.Errorf("%w: no %v answer in %d frames", ErrTimeout, op, maxFramesPerReply)
}

// noAnswer is the error for a command whose answer never came: a chip
// that printed its ROM reset banner meanwhile has restarted (ErrChipReset,
// as ErrLinkLost: not worth a retry; the S3/C3 ROM does this when a reload
// loads DIS_DOWNLOAD_MODE or ENABLE_SECURITY_DOWNLOAD), else err.
func (s *Session) noAnswer(ctx context.Context, op loader.Op, text []byte, err error) error {
	if ctx.Err() == nil && errors.Is(err, ErrTimeout) && loader.ResetBanner(text) {
		s.log.Debug("flasher: the chip reset instead of answering", "op", op)
		return fmt.Errorf("%w: %w", ErrLinkLost, ErrChipReset)
	}
	return err
}

// exchange sends one request and waits for its response.
func (s *Session) exchange(ctx context.Context, req loader.Request, timeout time.Duration) (loader.Response, error) {
	if err := s.w.send(ctx, loader.EncodeRequest(req)); err != nil {
		return loader.Response{}, &CommandError{Op: req.Op, Err: err}
	}
	resp, err := s.awaitResponse(ctx, req.Op, timeout)
	if err != nil {
		var ce *CommandError
		if errors.As(err, &ce) {
			return resp, err
		}
		return resp, &CommandError{Op: req.Op, Err: err}
	}
	return resp, nil
}

// idempotent opcodes may simply be sent again when the answer is lost or
// damaged (a noisy line): repeating them changes nothing on the chip.
func idempotent(op loader.Op) bool {
	switch op {
	case loader.OpReadReg, loader.OpWriteReg, loader.OpSPIAttach, loader.OpSPISetParams,
		loader.OpSPIFlashMD5, loader.OpGetSecurityInfo, loader.OpReadFlashSlow,
		loader.OpFlashBegin, loader.OpFlashDeflBegin, loader.OpMemBegin, loader.OpEraseRegion:
		return true
	}
	return false
}

// retryable reports a failure a noisy line explains: no answer, a damaged
// answer, or a request the loader could not parse.
func retryable(err error) bool {
	ce, ok := errors.AsType[*CommandError](err)
	if !ok {
		return false
	}
	return errors.Is(err, ErrTimeout) || errors.Is(err, ErrUnsupported) ||
		errors.As(err, new(*loader.FormatError)) ||
		ce.Status == 1 && loader.ROMCode(ce.Code) == loader.ErrCodeBadMessage
}

// command runs a request and checks its status; result holds the
// resultLen result bytes. Idempotent commands are tried up to
// Config.BlockTries times when the line loses or damages the exchange.
func (s *Session) command(ctx context.Context, req loader.Request, resultLen int, timeout time.Duration) (value uint32, result []byte, err error) {
	tries := 1
	if idempotent(req.Op) && !s.info.SecureDownload {
		tries = cmpInt(s.cfg.BlockTries, 3)
	}
	for t := 1; ; t++ {
		value, result, err = s.commandOnce(ctx, req, resultLen, timeout)
		if err == nil || t >= tries || !retryable(err) {
			return value, result, err
		}
		s.log.Debug("flasher: retrying command", "op", req.Op, "try", t+1, "err", err)
		if _, derr := s.w.drain(ctx, 50*time.Millisecond, 500*time.Millisecond); derr != nil {
			return 0, nil, derr
		}
	}
}

func (s *Session) commandOnce(ctx context.Context, req loader.Request, resultLen int, timeout time.Duration) (value uint32, result []byte, err error) {
	resp, err := s.exchange(ctx, req, timeout)
	if err != nil {
		return 0, nil, err
	}
	result, status, code, perr := loader.ParseStatus(resp.Data, resultLen)
	if perr != nil {
		return 0, nil, &CommandError{Op: req.Op, Err: perr}
	}
	if status != 0 {
		return resp.Value, nil, &CommandError{Op: req.Op, Status: status, Code: code, Err: loader.StatusErr(status, code)}
	}
	return resp.Value, result, nil
}

func (s *Session) simple(ctx context.Context, op loader.Op, data []byte, timeout time.Duration) error {
	_, _, err := s.command(ctx, loader.Request{Op: op, Data: data}, 0, timeout)
	return err
}

// ReadReg reads a 32-bit register or memory word (READ_REG).
func (s *Session) ReadReg(ctx context.Context, addr uint32) (uint32, error) {
	if err := s.needRegs(); err != nil {
		return 0, err
	}
	v, _, err := s.command(ctx, loader.Request{Op: loader.OpReadReg, Data: loader.EncodeReadReg(addr)}, 0, DefaultTimeout)
	if err != nil {
		return 0, fmt.Errorf("flasher: read register 0x%08x: %w", addr, err)
	}
	return v, nil
}

// WriteReg writes a whole 32-bit register (mask 0xFFFFFFFF, no delay).
func (s *Session) WriteReg(ctx context.Context, addr, value uint32) error {
	return s.WriteRegs(ctx, loader.RegWrite{Addr: addr, Value: value, Mask: 0xFFFFFFFF})
}

// WriteRegDelay writes value under mask and then lets the loader wait
// delayAfterUS microseconds, with esptool's extra record: a masked-out
// write to the UART date register carrying the delay (§1.7).
func (s *Session) WriteRegDelay(ctx context.Context, addr, value, mask, delayAfterUS uint32) error {
	recs := []loader.RegWrite{{Addr: addr, Value: value, Mask: mask}}
	if delayAfterUS > 0 {
		recs = append(recs, loader.RegWrite{Addr: s.info.Chip.UARTDateReg, DelayUS: delayAfterUS})
	}
	return s.WriteRegs(ctx, recs...)
}

// WriteRegs sends several WRITE_REG records in one command; the loader
// applies them in order, each after its own delay.
func (s *Session) WriteRegs(ctx context.Context, recs ...loader.RegWrite) error {
	return s.writeRegs(ctx, false, recs...)
}

// writeRegs is WriteRegs; once sends the command a single time even where
// a lost answer would be worth a retry: the reload that loads a lockdown
// eFuse is answered by no loader (the S3/C3 ROM resets instead, and at a
// raised baud rate its banner arrives as noise), so a retry only waits.
func (s *Session) writeRegs(ctx context.Context, once bool, recs ...loader.RegWrite) error {
	if err := s.needRegs(); err != nil {
		return err
	}
	if len(recs) == 0 {
		return nil
	}
	var delay time.Duration
	for _, r := range recs {
		delay += time.Duration(r.DelayUS) * time.Microsecond
	}
	req := loader.Request{Op: loader.OpWriteReg, Data: loader.EncodeWriteReg(recs...)}
	var err error
	if once {
		_, _, err = s.commandOnce(ctx, req, 0, DefaultTimeout+delay)
	} else {
		_, _, err = s.command(ctx, req, 0, DefaultTimeout+delay)
	}
	if err != nil {
		return fmt.Errorf("flasher: write register 0x%08x (%d records): %w", recs[0].Addr, len(recs), err)
	}
	return nil
}
