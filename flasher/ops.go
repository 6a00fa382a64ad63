package flasher

import (
	"context"
	"crypto/md5"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"fuseline/esp/chip"
	"fuseline/esp/loader"
)

// ReadFlash reads n bytes from offset. With the stub it uses READ_FLASH
// (acknowledged frames and an MD5 trailer, checked); with the ROM,
// READ_FLASH_SLOW in 64-byte steps.
func (s *Session) ReadFlash(ctx context.Context, offset uint32, n int) ([]byte, error) {
	if err := s.needRegs(); err != nil {
		return nil, err
	}
	if err := s.prepareFlash(ctx); err != nil {
		return nil, err
	}
	if n < 0 || uint64(offset)+uint64(n) > uint64(s.info.FlashSize) {
		return nil, fmt.Errorf("%w: read 0x%x (+0x%x) is past the end of the %d-byte flash", ErrBadRegion, offset, n, s.info.FlashSize)
	}
	if s.info.Stub {
		return s.readFlashStub(ctx, offset, n)
	}
	out := make([]byte, 0, n)
	t0 := time.Now()
	for len(out) < n {
		k := min(loader.ReadFlashSlowMax, n-len(out))
		req := loader.Request{Op: loader.OpReadFlashSlow, Data: loader.Region{Offset: offset + uint32(len(out)), Size: uint32(k)}.Encode()}
		_, res, err := s.command(ctx, req, loader.ReadFlashSlowMax, DefaultTimeout)
		if err != nil {
			return out, fmt.Errorf("flasher: read flash at 0x%x: %w", offset+uint32(len(out)), err)
		}
		out = append(out, res[:k]...)
		s.emit(Event{Phase: PhaseRead, Done: int64(len(out)), Total: int64(n), Rate: rate(len(out), t0)})
	}
	return out, nil
}

const (
	readPacket   = 0x1000
	readInFlight = 64
)

func (s *Session) readFlashStub(ctx context.Context, offset uint32, n int) ([]byte, error) {
	req := loader.Request{Op: loader.OpReadFlash, Data: loader.ReadFlash{Offset: offset, Length: uint32(n), PacketSize: readPacket, MaxInFlight: readInFlight}.Encode()}
	if err := s.simple(ctx, loader.OpReadFlash, req.Data, DefaultTimeout); err != nil {
		return nil, fmt.Errorf("flasher: read flash at 0x%x: %w", offset, err)
	}
	out := make([]byte, 0, n)
	t0 := time.Now()
	for len(out) < n {
		f, _, err := s.w.next(ctx, DefaultTimeout)
		if err != nil {
			return out, fmt.Errorf("flasher: read flash at 0x%x: waiting for data: %w", offset+uint32(len(out)), err)
		}
		if len(out)+len(f) > n || len(f) < readPacket && len(out)+len(f) < n {
			return out, fmt.Errorf("flasher: read flash at 0x%x: got a %d-byte frame, want %d", offset+uint32(len(out)), len(f), min(readPacket, n-len(out)))
		}
		out = append(out, f...)
		if err := s.w.send(ctx, loader.EncodeReadFlashAck(uint32(len(out)))); err != nil {
			return out, fmt.Errorf("flasher: read flash: acknowledging: %w", err)
		}
		s.emit(Event{Phase: PhaseRead, Done: int64(len(out)), Total: int64(n), Rate: rate(len(out), t0)})
	}
	f, _, err := s.w.next(ctx, DefaultTimeout)
	if err != nil {
		return out, fmt.Errorf("flasher: read flash: waiting for the MD5: %w", err)
	}
	if len(f) != md5.Size {
		return out, fmt.Errorf("flasher: read flash: MD5 frame is %d bytes, want 16", len(f))
	}
	if sum := md5.Sum(out); string(sum[:]) != string(f) {
		return out, fmt.Errorf("flasher: read flash at 0x%x (+0x%x): data MD5 %x, stub says %x: %w", offset, n, sum, f, ErrVerify)
	}
	return out, nil
}

// EraseRegion erases [offset, offset+size), both multiples of 4 KiB. The
// stub uses ERASE_REGION; the ROM erases in FLASH_BEGIN.
func (s *Session) EraseRegion(ctx context.Context, offset, size uint32) error {
	if err := s.alive(); err != nil {
		return err
	}
	if offset%loader.SectorSize != 0 || size%loader.SectorSize != 0 || size == 0 {
		return fmt.Errorf("%w: erase 0x%x (+0x%x): offset and size must be non-zero multiples of 0x1000", ErrBadRegion, offset, size)
	}
	if err := s.prepareFlash(ctx); err != nil {
		return err
	}
	if uint64(offset)+uint64(size) > uint64(s.info.FlashSize) {
		return fmt.Errorf("%w: erase 0x%x (+0x%x) is past the end of the %d-byte flash", ErrBadRegion, offset, size, s.info.FlashSize)
	}
	s.emit(Event{Phase: PhaseErase, Total: int64(size)})
	var err error
	if s.info.Stub {
		err = s.simple(ctx, loader.OpEraseRegion, loader.Region{Offset: offset, Size: size}.Encode(), timeoutPerMB(eraseSecondsPerMB, int(size)))
	} else {
		err = s.romErase(ctx, offset, size)
	}
	if err != nil {
		return fmt.Errorf("flasher: erase 0x%x (+0x%x): %w", offset, size, err)
	}
	s.emit(Event{Phase: PhaseErase, Done: int64(size), Total: int64(size)})
	return nil
}

// romErase erases with FLASH_BEGIN and sends no data (§1.7 ERASE_REGION).
// The timeout is 40 s/MB without the 240 s cap: a whole 16 MiB chip takes longer.
func (s *Session) romErase(ctx context.Context, offset, size uint32) error {
	bs := uint32(loader.ROMFlashBlock)
	b := loader.Begin{Size: size, Blocks: (size + bs - 1) / bs, BlockSize: bs, Offset: offset, Long: s.beginLong(false)}
	timeout := max(DefaultTimeout, time.Duration(eraseSecondsPerMB*float64(size)/1e6*float64(time.Second)))
	return s.simple(ctx, loader.OpFlashBegin, b.Encode(), timeout)
}

// EraseFlash erases the whole chip (stub ERASE_FLASH; ROM: FLASH_BEGIN
// over the flash size).
func (s *Session) EraseFlash(ctx context.Context) error {
	if err := s.alive(); err != nil {
		return err
	}
	if err := s.prepareFlash(ctx); err != nil {
		return err
	}
	if !s.info.Stub {
		return s.EraseRegion(ctx, 0, uint32(s.info.FlashSize))
	}
	s.emit(Event{Phase: PhaseErase, Total: int64(s.info.FlashSize)})
	if err := s.simple(ctx, loader.OpEraseFlash, nil, eraseChipTimeout); err != nil {
		return fmt.Errorf("flasher: erase flash: %w", err)
	}
	s.emit(Event{Phase: PhaseErase, Done: int64(s.info.FlashSize), Total: int64(s.info.FlashSize)})
	return nil
}

// StubImage is an esptool stub JSON file (§2.3). encoding/json decodes the
// base64 text/data fields.
type StubImage struct {
	Entry     uint32 `json:"entry"`
	Text      []byte `json:"text"`
	TextStart uint32 `json:"text_start"`
	Data      []byte `json:"data"`
	DataStart uint32 `json:"data_start"`
	BssStart  uint32 `json:"bss_start"`
}

// ParseStub decodes a stub JSON file.
func ParseStub(b []byte) (*StubImage, error) {
	var st StubImage
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("flasher: stub JSON: %w", err)
	}
	if len(st.Text) == 0 || st.Entry == 0 {
		return nil, fmt.Errorf("flasher: stub JSON: no text segment or entry point")
	}
	return &st, nil
}

const ohaiTimeout = 3 * time.Second

// LoadStub uploads an esptool stub (the JSON file's bytes) to RAM with
// MEM_BEGIN/MEM_DATA/MEM_END, waits for its "OHAI" and switches the
// session to the stub's formats and block sizes.
func (s *Session) LoadStub(ctx context.Context, stubJSON []byte) error {
	if err := s.needRegs(); err != nil {
		return fmt.Errorf("flasher: load stub: %w", err)
	}
	if s.info.Stub {
		return nil
	}
	st, err := ParseStub(stubJSON)
	if err != nil {
		return err
	}
	total := int64(len(st.Text) + len(st.Data))
	var done int64
	stW := &writeState{res: &WriteResult{}}
	for _, seg := range []struct {
		name string
		addr uint32
		b    []byte
	}{{"text", st.TextStart, st.Text}, {"data", st.DataStart, st.Data}} {
		if len(seg.b) == 0 {
			continue
		}
		n := (len(seg.b) + loader.RAMBlock - 1) / loader.RAMBlock
		b := loader.Begin{Size: uint32(len(seg.b)), Blocks: uint32(n), BlockSize: loader.RAMBlock, Offset: seg.addr}
		if err := s.simple(ctx, loader.OpMemBegin, b.Encode(), DefaultTimeout); err != nil {
			return fmt.Errorf("flasher: load stub %s at 0x%08x: %w", seg.name, seg.addr, err)
		}
		for i := 0; i < n; i++ {
			blk := seg.b[i*loader.RAMBlock : min((i+1)*loader.RAMBlock, len(seg.b))]
			if err := s.sendBlock(ctx, loader.OpMemData, uint32(i), blk, DefaultTimeout, stW); err != nil {
				return fmt.Errorf("flasher: load stub %s block %d: %w", seg.name, i, err)
			}
			done += int64(len(blk))
			s.emit(Event{Phase: PhaseStub, Done: done, Total: total})
		}
	}
	if stW.uncertain {
		return fmt.Errorf("flasher: load stub: a RAM block's outcome is unknown: %w", ErrVerify)
	}
	s.sawOHAI = false
	end := loader.MemEnd{NoEntry: st.Entry == 0, Entry: st.Entry}
	// The ROM's MEM_END reply may be lost as it jumps to the stub; esptool
	// waits 0.2 s and ignores errors (§1.7).
	if err := s.simple(ctx, loader.OpMemEnd, end.Encode(), memEndROMTimeout); err != nil {
		if errors.Is(err, ErrLinkLost) || ctx.Err() != nil {
			return fmt.Errorf("flasher: load stub: %w", err)
		}
		s.log.Debug("flasher: MEM_END reply missing (ignored)", "err", err)
	}
	deadline := time.Now().Add(ohaiTimeout)
	for !s.sawOHAI {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("flasher: load stub: no OHAI from the stub within %v: %w", ohaiTimeout, ErrTimeout)
		}
		f, _, err := s.w.next(ctx, left)
		if err != nil && !errors.Is(err, errCorrupt) {
			return fmt.Errorf("flasher: load stub: waiting for OHAI: %w", err)
		}
		if string(f) == ohai {
			s.sawOHAI = true
		}
	}
	s.info.Stub = true
	s.paramsSent = false // the stub needs SPI_SET_PARAMS of its own
	return nil
}

// rtcCntlOption1S3 is the S3 RTC_CNTL_OPTION1 register; bit 0 forces
// download boot and esptool clears it before a hard reset (§2.4).
const rtcCntlOption1S3 = 0x6000812C

// HardReset leaves the loader and boots the application: through the
// Resetter into BootSPI (the RTS pulse or the EN line), or, with no
// Resetter, with the ROM's FLASH_BEGIN(0) + FLASH_END(run) idiom. The
// session ends either way.
func (s *Session) HardReset(ctx context.Context) error {
	if err := s.alive(); err != nil {
		return err
	}
	if s.info.Chip.ID == chip.ESP32S3 && !s.info.SecureDownload {
		if err := s.WriteRegs(ctx, loader.RegWrite{Addr: rtcCntlOption1S3, Value: 0, Mask: 1}); err != nil {
			s.log.Warn("flasher: clearing force-download-boot failed", "err", err)
		}
	}
	if s.rst != nil {
		s.ended = true
		if err := s.rst.Reset(ctx, chip.BootSPI); err != nil {
			return fmt.Errorf("flasher: hard reset: %w", err)
		}
		return nil
	}
	b := loader.Begin{Long: s.beginLong(false), BlockSize: loader.ROMFlashBlock}
	if err := s.simple(ctx, loader.OpFlashBegin, b.Encode(), DefaultTimeout); err != nil {
		return fmt.Errorf("flasher: run app: %w", err)
	}
	s.ended = true
	if err := s.simple(ctx, loader.OpFlashEnd, loader.EncodeFlashEnd(loader.EndRunUser), DefaultTimeout); err != nil && !errors.Is(err, ErrTimeout) {
		return fmt.Errorf("flasher: run app: %w", err)
	}
	return nil
}
