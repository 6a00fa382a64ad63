package flasher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"time"

	"fuseline/esp/chip"
	"fuseline/esp/loader"
)

// Sync timing (§2.1, §1.9).
const (
	bannerQuiet    = 50 * time.Millisecond // the banner is over after this much silence
	bannerMax      = 2 * time.Second
	syncFollowUp   = 100 * time.Millisecond // wait for each of the 7 follow-up replies
	syncBackoff    = 50 * time.Millisecond  // first gap between tries, doubled per try
	syncBackoffMax = 400 * time.Millisecond
	baudSettle     = 50 * time.Millisecond
)

// Connect resets the board into download mode with r (nil: no reset),
// syncs with the loader, identifies the chip (GET_SECURITY_INFO, else the
// magic register), reads MAC and revision, uploads cfg.Stub if given and
// switches to cfg.Baud. The link must be at cfg.InitialBaud (115200).
//
// ctx bounds the whole connection; the Session keeps no reference to it.
func Connect(ctx context.Context, link io.ReadWriter, r Resetter, cfg Config) (*Session, error) {
	s := &Session{cfg: cfg, w: newWire(link), link: link, rst: r, log: cfg.Log}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.info.Baud = cmpInt(cfg.InitialBaud, 115200)
	s.info.Revision = -1
	if err := s.connect(ctx); err != nil {
		return nil, err
	}
	if err := s.detect(ctx); err != nil {
		return nil, err
	}
	if len(cfg.Stub) > 0 && !s.info.Stub {
		if s.info.SecureDownload {
			return nil, fmt.Errorf("flasher: cannot upload the stub: %w", ErrSecureDownload)
		}
		if err := s.LoadStub(ctx, cfg.Stub); err != nil {
			return nil, err
		}
	}
	if cfg.Baud > 0 && cfg.Baud != s.info.Baud {
		if err := s.ChangeBaud(ctx, cfg.Baud); err != nil {
			if errors.Is(err, ErrLinkLost) || ctx.Err() != nil {
				return nil, err
			}
			s.log.Warn("flasher: baud change failed; staying at the current rate", "baud", s.info.Baud, "want", cfg.Baud, "err", err)
		}
	}
	return s, nil
}

func cmpInt(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func (s *Session) connect(ctx context.Context) error {
	attempts := cmpInt(s.cfg.Attempts, 7)
	tries := cmpInt(s.cfg.SyncTries, 5)
	var banner []byte
	for a := 1; a <= attempts; a++ {
		if s.rst != nil {
			s.emit(Event{Phase: PhaseReset, Done: int64(a), Total: int64(attempts)})
			if err := s.rst.Reset(ctx, chip.BootDownload); err != nil {
				return fmt.Errorf("flasher: reset into download mode (attempt %d): %w", a, err)
			}
		}
		text, err := s.w.drain(ctx, bannerQuiet, bannerMax)
		if err != nil {
			return fmt.Errorf("flasher: reading the boot banner: %w", err)
		}
		if len(text) > 0 {
			banner = text
		}
		if bytes.Contains(text, romDownloadDisabled) {
			// No reset or SYNC can change that: stop now instead of
			// waiting out every attempt (a locked board on a line).
			return fmt.Errorf("%w%s: %w", ErrNoSync, syncHint(banner), ErrDownloadDisabled)
		}
		for t := 1; t <= tries; t++ {
			s.emit(Event{Phase: PhaseSync, Done: int64((a-1)*tries + t), Total: int64(attempts * tries)})
			ok, err := s.syncOnce(ctx)
			if err != nil {
				return fmt.Errorf("flasher: sync (attempt %d, try %d): %w", a, t, err)
			}
			if ok {
				s.info.Banner = string(banner)
				return nil
			}
			backoff := min(syncBackoff<<(t-1), syncBackoffMax)
			if err := sleep(ctx, backoff); err != nil {
				return err
			}
		}
		s.log.Debug("flasher: no sync", "attempt", a, "banner", string(banner))
	}
	return fmt.Errorf("%w after %d attempts of %d tries%s", ErrNoSync, attempts, tries, syncHint(banner))
}

// syncHint explains a failed sync from the last boot banner (§2.1 step 4).
// romDownloadDisabled is what the ROM prints instead of "waiting for
// download" when eFuses disable every download mode (§4).
var romDownloadDisabled = []byte("Download boot modes disabled")

func syncHint(banner []byte) string {
	// esptool's and espflash's banner pattern.
	m := regexp.MustCompile(`(?s)boot:(0x[0-9a-fA-F]+)(.*waiting for download)?`).FindSubmatch(banner)
	switch {
	case len(banner) == 0:
		return ": nothing received after reset (check power, the port, and the EN/reset line)"
	case bytes.Contains(banner, romDownloadDisabled):
		return ": the ROM says download boot modes are disabled (an eFuse turned the loader off: a locked board)"
	case m == nil:
		return fmt.Sprintf(": only unrecognised text received (%d bytes; wrong baud rate or not an ESP ROM)", len(banner))
	case len(m[2]) > 0:
		return ": the boot banner says the chip is waiting for download, so the host-to-chip (TX) line is likely broken"
	}
	return fmt.Sprintf(": the chip booted with strap %s, not in download mode (check the BOOT/IO0 line or the reset strategy)", m[1])
}

// syncOnce sends one SYNC and collects its replies. A fatal error is
// returned only for a lost link or cancellation.
func (s *Session) syncOnce(ctx context.Context) (bool, error) {
	req := loader.Request{Op: loader.OpSync, Data: loader.SyncPayload()}
	if err := s.w.send(ctx, loader.EncodeRequest(req)); err != nil {
		return false, err
	}
	first, err := s.awaitResponse(ctx, loader.OpSync, syncTimeout)
	if err != nil {
		if errors.Is(err, ErrTimeout) || errors.Is(err, ErrUnsupported) {
			return false, nil
		}
		return false, err
	}
	if _, st, _, perr := loader.ParseStatus(first.Data, 0); perr != nil || st != 0 {
		return false, nil
	}
	allZero := first.Value == 0
	for i := 1; i < loader.SyncReplies; i++ {
		r, err := s.awaitResponse(ctx, loader.OpSync, syncFollowUp)
		if err != nil {
			if errors.Is(err, ErrTimeout) {
				break // fewer than 8 replies: harmless, stale ones are skipped later
			}
			return false, err
		}
		allZero = allZero && r.Value == 0
	}
	if allZero {
		// A stub answers SYNC with value 0 (§1.7).
		s.info.Stub = true
	}
	return true, nil
}

func (s *Session) detect(ctx context.Context) error {
	s.emit(Event{Phase: PhaseDetect})
	// Retried only when the answer is lost or damaged: a refusal is the
	// ESP32's genuine "not implemented".
	var res []byte
	var err error
	for t := 0; t < cmpInt(s.cfg.BlockTries, 3); t++ {
		_, res, err = s.commandOnce(ctx, loader.Request{Op: loader.OpGetSecurityInfo}, loader.SecurityInfoLen, DefaultTimeout)
		if !errors.Is(err, ErrTimeout) && !errors.As(err, new(*loader.FormatError)) {
			break
		}
	}
	var c chip.Chip
	switch {
	case err == nil:
		si, perr := loader.ParseSecurityInfo(res)
		if perr != nil {
			return fmt.Errorf("flasher: GET_SECURITY_INFO: %w", perr)
		}
		s.info.Security, s.info.HasSecurityInfo = si, true
		s.info.SecureDownload = si.SecureDownload()
		if c, err = chip.ByID(chip.ID(si.ChipID)); err != nil {
			return fmt.Errorf("flasher: detect: %w", err)
		}
	case errors.Is(err, ErrLinkLost) || ctx.Err() != nil:
		return fmt.Errorf("flasher: detect: %w", err)
	default:
		// ESP32: no GET_SECURITY_INFO; fall back to the magic register.
		s.log.Debug("flasher: GET_SECURITY_INFO failed, reading the magic register", "err", err)
		v, _, rerr := s.command(ctx, loader.Request{Op: loader.OpReadReg, Data: loader.EncodeReadReg(chip.MagicAddr)}, 0, DefaultTimeout)
		if rerr != nil {
			return fmt.Errorf("flasher: detect: GET_SECURITY_INFO failed (%v) and READ_REG 0x%08x failed: %w", err, chip.MagicAddr, rerr)
		}
		if c, err = chip.ByMagic(v); err != nil {
			return fmt.Errorf("flasher: detect: %w", err)
		}
	}
	s.info.Chip = c
	if s.cfg.Chip != "" {
		want, err := chip.ByName(s.cfg.Chip)
		if err != nil {
			return fmt.Errorf("flasher: Config.Chip: %w", err)
		}
		if want.ID != c.ID {
			return &ChipMismatchError{What: "board", Want: want.ID, Got: c.ID}
		}
	}
	if s.info.SecureDownload {
		s.log.Info("flasher: chip is in secure download mode", "chip", c.Name)
		return nil
	}
	if err := s.readIdentity(ctx); err != nil {
		return err
	}
	if s.info.BelowMinRevision() {
		// Reported, not refused: reading an old chip is still useful; the
		// provisioning flow decides (Info.BelowMinRevision).
		s.log.Warn("flasher: chip revision below the supported minimum", "chip", c.Name,
			"revision", s.info.Revision, "min", c.MinRevision)
	}
	return nil
}

func bitsOf(v uint32, lo, width int) int { return int(v>>lo) & (1<<width - 1) }

// readIdentity reads the MAC and the revision eFuses (§2.4).
func (s *Session) readIdentity(ctx context.Context) error {
	c := s.info.Chip
	read := func(addrs ...uint32) ([]uint32, error) {
		out := make([]uint32, len(addrs))
		for i, a := range addrs {
			// The MAC names the device in the journal and the evidence: a
			// value the line changed must not become its identity.
			v, err := s.ReadRegStable(ctx, a)
			if err != nil {
				return nil, fmt.Errorf("flasher: reading identity eFuses: %w", err)
			}
			out[i] = v
		}
		return out, nil
	}
	var lo, hi uint32
	switch {
	case c.Efuse != nil:
		b1 := c.Efuse.BlockRead[1]
		v, err := read(b1, b1+4, b1+0x0C, b1+0x14, c.Efuse.BlockRead[2]+0x10)
		if err != nil {
			return err
		}
		lo, hi = v[0], v[1]
		w3, w5, blk2w4 := v[2], v[3], v[4]
		minor := bitsOf(w5, 23, 1)<<3 | bitsOf(w3, 18, 3)
		major := bitsOf(w5, 24, 2)
		if c.ID == chip.ESP32S3 && minor&7 == 0 && bitsOf(blk2w4, 0, 2) == 1 && bitsOf(w3, 24, 3) == 1 {
			minor, major = 0, 0 // S3 ECO0 quirk (§2.4)
		}
		s.info.Revision = major*100 + minor
	case c.ClassicEfuse != nil:
		b0 := c.ClassicEfuse.BlockRead[0]
		v, err := read(b0+4, b0+8, b0+0x0C, b0+0x14, c.ClassicEfuse.APBCtlDate)
		if err != nil {
			return err
		}
		lo, hi = v[0], v[1]
		bits := bitsOf(v[2], 15, 1) | bitsOf(v[3], 20, 1)<<1 | bitsOf(v[4], 31, 1)<<2
		major := map[int]int{0: 0, 1: 1, 3: 2, 7: 3}[bits]
		s.info.Revision = major*100 + bitsOf(v[3], 24, 2)
	default:
		return fmt.Errorf("flasher: %s has no eFuse map", c.Name)
	}
	s.info.MAC = [6]byte{byte(hi >> 8), byte(hi), byte(lo >> 24), byte(lo >> 16), byte(lo >> 8), byte(lo)}
	s.info.MACKnown = true
	return nil
}

// ChangeBaud switches the loader and the link to baud. The link must
// implement SetBaud(int) error. The link is probed at the new rate first;
// if the loader refuses, the session stays at the current rate. After the
// switch a SYNC checks the link; if it fails the link is returned to the
// old rate and ErrLinkLost is reported (the chip may now be at the new rate).
func (s *Session) ChangeBaud(ctx context.Context, baud int) error {
	if err := s.alive(); err != nil {
		return err
	}
	sb, ok := s.link.(interface{ SetBaud(int) error })
	if !ok {
		return fmt.Errorf("flasher: change baud to %d: the link cannot change its rate (no SetBaud)", baud)
	}
	old := s.info.Baud
	if err := sb.SetBaud(baud); err != nil {
		return fmt.Errorf("flasher: change baud to %d: the link refuses it: %w", baud, err)
	}
	if err := sb.SetBaud(old); err != nil {
		return fmt.Errorf("flasher: change baud: restoring %d on the link: %w", old, err)
	}
	s.emit(Event{Phase: PhaseBaud, Done: 0, Total: int64(baud)})
	cb := loader.ChangeBaud{New: uint32(baud)}
	if s.info.Stub {
		cb.Old = uint32(old)
	}
	if err := s.simple(ctx, loader.OpChangeBaudrate, cb.Encode(), DefaultTimeout); err != nil {
		return fmt.Errorf("flasher: change baud to %d (staying at %d): %w", baud, old, err)
	}
	if err := sb.SetBaud(baud); err != nil {
		return fmt.Errorf("%w: chip switched to %d but the link did not: %w", ErrLinkLost, baud, err)
	}
	if err := sleep(ctx, baudSettle); err != nil {
		return err
	}
	if _, err := s.w.drain(ctx, 10*time.Millisecond, baudSettle); err != nil {
		return err
	}
	s.info.Baud = baud
	for t := 0; t < 3; t++ {
		ok, err := s.syncOnce(ctx)
		if err != nil {
			return err
		}
		if ok {
			s.emit(Event{Phase: PhaseBaud, Done: int64(baud), Total: int64(baud)})
			return nil
		}
	}
	s.info.Baud = old
	sb.SetBaud(old)
	return fmt.Errorf("%w: no SYNC answer at %d baud after the switch", ErrLinkLost, baud)
}
