package flasher

import (
	"context"
	"encoding/binary"
	"fmt"

	"fuseline/esp/chip"
	"fuseline/esp/loader"
)

// SPI user-command register bits (§2.5).
const (
	spiUsrCommand = 1 << 31
	spiUsrAddr    = 1 << 30
	spiUsrDummy   = 1 << 29
	spiUsrMISO    = 1 << 28
	spiUsrMOSI    = 1 << 27
	spiCmdUsr     = 1 << 18
)

// SPICommand runs one SPI flash transaction through the SPI1 user-command
// registers, as esptool's run_spiflash_command does (§2.5): opcode, an
// optional address of addrBits bits, dummy cycles, up to 64 bytes out and
// up to 32 bits in. It returns the received bits (first byte in bits 0–7).
func (s *Session) SPICommand(ctx context.Context, opcode byte, tx []byte, rxBits int, addr uint32, addrBits, dummy int) (uint32, error) {
	if err := s.needRegs(); err != nil {
		return 0, err
	}
	if len(tx) > 64 || rxBits > 32 || rxBits < 0 || addrBits < 0 || addrBits > 32 || dummy < 0 || dummy > 256 {
		return 0, fmt.Errorf("flasher: SPI command 0x%02x: %d bytes out / %d bits in / %d address bits / %d dummy cycles out of range", opcode, len(tx), rxBits, addrBits, dummy)
	}
	r := s.info.Chip.SPI
	oldUser, err := s.ReadReg(ctx, r.User)
	if err != nil {
		return 0, err
	}
	oldUser2, err := s.ReadReg(ctx, r.User2)
	if err != nil {
		return 0, err
	}
	var recs []loader.RegWrite
	w := func(addr, v uint32) { recs = append(recs, loader.RegWrite{Addr: addr, Value: v, Mask: 0xFFFFFFFF}) }
	if len(tx) > 0 {
		w(r.MOSIDLen, uint32(len(tx)*8-1))
	}
	if rxBits > 0 {
		w(r.MISODLen, uint32(rxBits-1))
	}
	var user1 uint32
	if addrBits > 0 {
		user1 |= uint32(addrBits-1) << 26
	}
	if dummy > 0 {
		user1 |= uint32(dummy - 1)
	}
	if user1 != 0 {
		w(r.User1, user1)
	}
	user := uint32(spiUsrCommand)
	if rxBits > 0 {
		user |= spiUsrMISO
	}
	if len(tx) > 0 {
		user |= spiUsrMOSI
	}
	if addrBits > 0 {
		user |= spiUsrAddr
	}
	if dummy > 0 {
		user |= spiUsrDummy
	}
	w(r.User, user)
	w(r.User2, 0x70000000|uint32(opcode))
	if addrBits > 0 {
		a := addr
		if s.info.Chip.ID == chip.ESP32 && addrBits < 32 {
			a = addr << (32 - addrBits) // ESP32 wants the address left-aligned
		}
		w(r.Addr, a)
	}
	if len(tx) == 0 {
		w(r.W0, 0)
	} else {
		padded := make([]byte, (len(tx)+3)&^3)
		copy(padded, tx)
		for i := 0; i < len(padded); i += 4 {
			w(r.W0+uint32(i), binary.LittleEndian.Uint32(padded[i:]))
		}
	}
	w(r.Cmd, spiCmdUsr)
	if err := s.WriteRegs(ctx, recs...); err != nil {
		return 0, fmt.Errorf("flasher: SPI command 0x%02x: %w", opcode, err)
	}
	done := false
	for i := 0; i < 10; i++ {
		v, err := s.ReadReg(ctx, r.Cmd)
		if err != nil {
			return 0, err
		}
		if v&spiCmdUsr == 0 {
			done = true
			break
		}
	}
	if !done {
		return 0, fmt.Errorf("flasher: SPI command 0x%02x did not complete (CMD bit 18 still set after 10 polls)", opcode)
	}
	res, err := s.ReadReg(ctx, r.W0)
	if err != nil {
		return 0, err
	}
	if err := s.WriteRegs(ctx,
		loader.RegWrite{Addr: r.User, Value: oldUser, Mask: 0xFFFFFFFF},
		loader.RegWrite{Addr: r.User2, Value: oldUser2, Mask: 0xFFFFFFFF}); err != nil {
		return 0, err
	}
	if rxBits < 32 {
		res &= 1<<rxBits - 1
	}
	return res, nil
}

// FlashID reads the JEDEC ID (RDID 0x9F): mfr | type<<8 | capacity<<16.
func (s *Session) FlashID(ctx context.Context) (uint32, error) {
	if err := s.attach(ctx); err != nil {
		return 0, err
	}
	id, err := s.SPICommand(ctx, 0x9F, nil, 24, 0, 0, 0)
	if err != nil {
		return 0, fmt.Errorf("flasher: read flash ID: %w", err)
	}
	s.info.FlashID = id
	return id, nil
}

// FlashSizeFromID decodes the JEDEC capacity byte (§2.5); 0 if unknown.
func FlashSizeFromID(id uint32) int {
	capb := byte(id >> 16)
	if byte(id) == 0x1F { // Adesto: size code in the type byte
		if c := int(byte(id>>8) & 0x1F); c >= 4 && c <= 9 {
			return 512 << 10 << (c - 4)
		}
		return 0
	}
	switch capb {
	case 0x12, 0x32:
		return 256 << 10
	case 0x13, 0x33:
		return 512 << 10
	case 0x14, 0x34:
		return 1 << 20
	case 0x15, 0x35:
		return 2 << 20
	case 0x16, 0x36:
		return 4 << 20
	case 0x17, 0x37:
		return 8 << 20
	case 0x18, 0x38:
		return 16 << 20
	case 0x19, 0x39:
		return 32 << 20
	case 0x1A, 0x3A, 0x20:
		return 64 << 20
	case 0x1B, 0x21:
		return 128 << 20
	case 0x1C, 0x22:
		return 256 << 20
	}
	return 0
}

// attach sends SPI_ATTACH to the ROM once (the stub needs none).
func (s *Session) attach(ctx context.Context) error {
	if err := s.alive(); err != nil {
		return err
	}
	if s.attached || s.info.Stub {
		return nil
	}
	if err := s.simple(ctx, loader.OpSPIAttach, loader.EncodeSPIAttach(0, true), DefaultTimeout); err != nil {
		return fmt.Errorf("flasher: attach SPI flash: %w", err)
	}
	s.attached = true
	return nil
}

// SetFlashSize tells the loader the flash size (SPI_SET_PARAMS).
func (s *Session) SetFlashSize(ctx context.Context, size int) error {
	if err := s.attach(ctx); err != nil {
		return err
	}
	if err := s.simple(ctx, loader.OpSPISetParams, loader.DefaultSPIParams(uint32(size)).Encode(), DefaultTimeout); err != nil {
		return fmt.Errorf("flasher: set flash size %d: %w", size, err)
	}
	s.info.FlashSize = size
	return nil
}

// prepareFlash attaches and sets the flash size once per loader.
func (s *Session) prepareFlash(ctx context.Context) error {
	if s.info.FlashSize > 0 && (s.attached || s.info.Stub) && s.paramsSent {
		return nil
	}
	size := s.cfg.FlashSize
	if size == 0 {
		size = s.info.FlashSize // detected before (e.g. by the ROM, before the stub)
	}
	if size == 0 && s.info.SecureDownload {
		return fmt.Errorf("flasher: flash size unknown in secure download mode (registers cannot be read): set Config.FlashSize: %w", ErrSecureDownload)
	}
	if err := s.attach(ctx); err != nil {
		return err
	}
	if size == 0 {
		id, err := s.FlashID(ctx)
		if err != nil {
			return err
		}
		if size = FlashSizeFromID(id); size == 0 {
			return fmt.Errorf("flasher: unknown flash size for JEDEC ID 0x%06x: set Config.FlashSize", id)
		}
	}
	if err := s.SetFlashSize(ctx, size); err != nil {
		return err
	}
	s.paramsSent = true
	return nil
}
