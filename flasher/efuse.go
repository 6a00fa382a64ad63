package flasher

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"time"

	"fuseline/esp/chip"
	"fuseline/esp/efuse"
	"fuseline/esp/loader"
)

// ReadEfuses reads every block's read registers into an efuse.Image (what
// the host sees: read-protected blocks read as zero). Every word is read
// until two reads in a row agree (ReadRegStable): a corrupted answer must
// not pass as the board's state.
func (s *Session) ReadEfuses(ctx context.Context) (*efuse.Image, error) {
	if err := s.needRegs(); err != nil {
		return nil, fmt.Errorf("flasher: read eFuses: %w", err)
	}
	c := s.info.Chip
	img, err := efuse.NewImage(c.ID)
	if err != nil {
		return nil, fmt.Errorf("flasher: read eFuses: %w", err)
	}
	total := 0
	for _, b := range img.Blocks {
		total += len(b)
	}
	done := 0
	for b := range img.Blocks {
		base, err := s.blockReadAddr(b)
		if err != nil {
			return nil, err
		}
		for w := range img.Blocks[b] {
			v, err := s.ReadRegStable(ctx, base+uint32(4*w))
			if err != nil {
				return nil, fmt.Errorf("flasher: read eFuse BLOCK%d word %d: %w", b, w, err)
			}
			img.Blocks[b][w] = v
			done++
		}
		s.emit(Event{Phase: PhaseEfuse, Region: fmt.Sprintf("read BLOCK%d", b), Done: int64(done), Total: int64(total)})
	}
	return img, nil
}

// stableReads bounds the reads of one word in ReadRegStable; a line that
// spoils this many in a row is not fit to read eFuses over.
const stableReads = 8

// ReadRegStable reads a register until two reads in a row return the same
// value, and returns ErrReadUnstable (wrapped) when none agree within
// stableReads reads. It is for registers that do not change between reads
// (eFuse read registers): READ_REG answers carry no checksum, and a bit
// flipped on the line would otherwise be taken as the chip's. Once a word's
// reads have disagreed the line is known to be noisy there, and three in a
// row must agree: a request whose address the line changed reads another
// register, often an unmapped one that reads 0, so two spoilt reads can
// agree on 0.
//
// An answer whose status byte the line spoilt (a failure code the loader
// does not give for a register read) counts as one that disagrees; a lost
// link, a timeout or a refusal (secure download mode, a lockdown just
// burned) ends the read at once.
func (s *Session) ReadRegStable(ctx context.Context, addr uint32) (uint32, error) {
	var prev uint32
	run, need := 0, 2 // run: reads in a row equal to prev
	for n := 1; n <= stableReads; n++ {
		v, err := s.ReadReg(ctx, addr)
		if err != nil {
			ce, ok := errors.AsType[*CommandError](err)
			if !ok || ce.Status == 0 || retryable(err) {
				return 0, err
			}
			s.log.Debug("flasher: register read answered with a spoilt status", "addr", addr, "read", n, "err", err)
			run, need = 0, 3
			continue
		}
		switch {
		case run > 0 && v == prev:
			run++
		case run > 0:
			s.log.Debug("flasher: register reads disagree", "addr", addr, "read", n)
			run, need = 1, 3
		default:
			run = 1
		}
		prev = v
		if run >= need {
			return v, nil
		}
	}
	return 0, fmt.Errorf("flasher: read register 0x%08x: %w (%d reads, never enough in a row equal)", addr, ErrReadUnstable, stableReads)
}

func (s *Session) blockReadAddr(b int) (uint32, error) {
	c := s.info.Chip
	switch {
	case c.Efuse != nil && b >= 0 && b < len(c.Efuse.BlockRead):
		return c.Efuse.BlockRead[b], nil
	case c.ClassicEfuse != nil && b >= 0 && b < len(c.ClassicEfuse.BlockRead):
		return c.ClassicEfuse.BlockRead[b], nil
	}
	return 0, fmt.Errorf("flasher: %s has no eFuse BLOCK%d", c.Name, b)
}

// BlockProgram is one block to program: the data words as the block holds
// them and, for Reed-Solomon blocks (S3/C3 BLOCK1…10), the CHECK_VALUE words
// (efuse.CheckWords over the 8-word, zero-padded data).
type BlockProgram struct {
	Block int
	Words []uint32
	Check [3]uint32
	// Secret hides the data from errors (key blocks): a failure reports
	// how many bits are missing, not which.
	Secret bool
	// Lockdown says the program burns a field that closes the loader
	// (efuse.ClosesLoader): the loader then stops answering register access
	// at the reload, and a lost link is the expected outcome
	// (ErrLinkClosedByLockdown).
	Lockdown bool
}

// ProgramFrom converts a step of an efuse.Plan.
func ProgramFrom(p efuse.Program, words int) BlockProgram {
	return BlockProgram{Block: p.Block, Words: slices.Clone(p.Data[:words]), Check: p.Check, Secret: p.Secret}
}

// EfuseBurnError is a block that did not program after every attempt.
type EfuseBurnError struct {
	Block    int
	Attempts int
	// Missing holds, per word, the requested bits that read back as 0
	// (nil when Secret: see MissingCount).
	Missing      []uint32
	MissingCount int
	// ErrorRegs are the controller's error registers at the last attempt:
	// BLOCK0 RD_REPEAT_ERR0…4, or for other blocks {error count, FAIL}.
	ErrorRegs []uint32
	Err       error // the last command error, if the burn ended on one
}

func (e *EfuseBurnError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "flasher: eFuse BLOCK%d not programmed after %d attempts", e.Block, e.Attempts)
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
		return b.String()
	}
	if e.Missing != nil {
		var parts []string
		for w, m := range e.Missing {
			if m != 0 {
				parts = append(parts, fmt.Sprintf("word %d bits 0x%08x", w, m))
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(&b, ": not set: %s", strings.Join(parts, ", "))
		}
	} else if e.MissingCount > 0 {
		fmt.Fprintf(&b, ": %d requested bits not set", e.MissingCount)
	}
	if slices.ContainsFunc(e.ErrorRegs, func(v uint32) bool { return v != 0 }) {
		fmt.Fprintf(&b, "; controller error registers %08x", e.ErrorRegs)
	}
	return b.String()
}

func (e *EfuseBurnError) Unwrap() error { return e.Err }

// eFuse controller timing (§1.3).
const (
	efuseIdleTimeout = 250 * time.Millisecond
	efuseAttempts    = 3
	efuseReloads     = 6 // one reload and five more
	efuseReloadDelay = 1000
)

// BurnBlocks programs blocks through the eFuse controller registers the
// way espefuse does (esp-security-facts §1.3 for S3/C3, §1.4 for ESP32),
// highest block first, each up to 3 attempts, checking the error registers
// after every reload and the read-back after each attempt.
func (s *Session) BurnBlocks(ctx context.Context, progs []BlockProgram) error {
	if err := s.needRegs(); err != nil {
		return fmt.Errorf("flasher: burn eFuses: %w", err)
	}
	c := s.info.Chip
	blank, err := efuse.NewImage(c.ID)
	if err != nil {
		return fmt.Errorf("flasher: burn eFuses: %w", err)
	}
	order := slices.Clone(progs)
	slices.SortStableFunc(order, func(a, b BlockProgram) int { return b.Block - a.Block })
	for _, p := range order {
		if p.Block < 0 || p.Block >= len(blank.Blocks) {
			return fmt.Errorf("flasher: burn eFuses: %s has no BLOCK%d", c.Name, p.Block)
		}
		if n := len(blank.Blocks[p.Block]); len(p.Words) > n {
			return fmt.Errorf("flasher: burn eFuses: BLOCK%d has %d words, program has %d", p.Block, n, len(p.Words))
		}
	}
	for i, p := range order {
		s.emit(Event{Phase: PhaseEfuse, Region: fmt.Sprintf("burn BLOCK%d", p.Block), Done: int64(i), Total: int64(len(order))})
		err := s.burnBlock(ctx, p, len(blank.Blocks[p.Block]))
		if err != nil && p.Lockdown && lockedOut(err) {
			return fmt.Errorf("flasher: burn BLOCK%d: %w (%w)", p.Block, ErrLinkClosedByLockdown, err)
		}
		if err != nil {
			return err
		}
	}
	s.emit(Event{Phase: PhaseEfuse, Region: "burn", Done: int64(len(order)), Total: int64(len(order))})
	return nil
}

// lockedOut reports an error that a just-burned lockdown explains. Two ROM
// behaviours are known at that reload: the S3/C3 ROM makes a software
// reset instead of answering it (no answer, its reset banner: ErrChipReset
// with ErrLinkLost, or a plain timeout when the banner is lost), and a
// loader that answers it but refuses the next register access ("invalid
// command", ErrUnsupported or status 0x05).
func lockedOut(err error) bool {
	return errors.Is(err, ErrLinkLost) || errors.Is(err, ErrTimeout) || errors.Is(err, ErrUnsupported) ||
		errors.Is(err, loader.ErrCodeBadMessage)
}

func (s *Session) burnBlock(ctx context.Context, p BlockProgram, words int) error {
	want := make([]uint32, words)
	copy(want, p.Words)
	var last *EfuseBurnError
	for attempt := 1; attempt <= efuseAttempts; attempt++ {
		var errRegs []uint32
		var failed bool
		var err error
		if s.info.Chip.Efuse != nil {
			errRegs, failed, err = s.burnS3C3(ctx, p.Block, want, p.Check, p.Lockdown)
		} else {
			errRegs, failed, err = s.burnClassic(ctx, p.Block, want, p.Lockdown)
		}
		if err != nil {
			return &EfuseBurnError{Block: p.Block, Attempts: attempt, Err: err}
		}
		last = &EfuseBurnError{Block: p.Block, Attempts: attempt, ErrorRegs: errRegs}
		if failed {
			s.log.Warn("flasher: eFuse programming error reported", "block", p.Block, "attempt", attempt)
			continue
		}
		base, err := s.blockReadAddr(p.Block)
		if err != nil {
			return err
		}
		missing := make([]uint32, words)
		count := 0
		for w := range want {
			if want[w] == 0 {
				continue // nothing requested in this word: nothing can be missing
			}
			// A corrupted read-back would either hide a missing bit or
			// program the block once more for nothing.
			got, err := s.ReadRegStable(ctx, base+uint32(4*w))
			if err != nil {
				return &EfuseBurnError{Block: p.Block, Attempts: attempt, Err: err}
			}
			missing[w] = want[w] &^ got
			count += bits.OnesCount32(missing[w])
		}
		if count == 0 {
			return nil
		}
		last.MissingCount = count
		if !p.Secret {
			last.Missing = missing
		}
	}
	return last
}

// waitIdle polls CMD until (CMD & mask) == 0 twice in a row (the second
// read works around a read-path erratum, §1.3).
func (s *Session) waitIdle(ctx context.Context, cmd, mask uint32) error {
	deadline := time.Now().Add(efuseIdleTimeout)
	idle := 0
	for {
		v, err := s.ReadReg(ctx, cmd)
		if err != nil {
			return err
		}
		if v&mask == 0 {
			if idle++; idle == 2 {
				return nil
			}
			continue
		}
		idle = 0
		if time.Now().After(deadline) {
			return fmt.Errorf("flasher: eFuse controller busy (CMD=0x%08x) for %v", v, efuseIdleTimeout)
		}
	}
}

func full(addr, v uint32) loader.RegWrite {
	return loader.RegWrite{Addr: addr, Value: v, Mask: 0xFFFFFFFF}
}

// field is a bit field of a register and the value to put in it (not
// shifted).
type field struct{ addr, mask, value uint32 }

// setFields sets bit fields of registers, leaving their other bits alone,
// in one WRITE_REG. The flasher stubs apply a record's mask themselves
// (handle_write_reg reads, merges and writes), so the records carry the
// masks; with the ROM, whose handling of the mask is only documented for
// the C3, each register is read first and written whole, as esptool's
// update_reg does.
func (s *Session) setFields(ctx context.Context, fields ...field) error {
	var recs []loader.RegWrite
	for _, f := range fields {
		v := f.value << bits.TrailingZeros32(f.mask) & f.mask
		i := slices.IndexFunc(recs, func(r loader.RegWrite) bool { return r.Addr == f.addr })
		if i < 0 {
			recs = append(recs, loader.RegWrite{Addr: f.addr})
			i = len(recs) - 1
		}
		recs[i].Value = recs[i].Value&^f.mask | v
		recs[i].Mask |= f.mask
	}
	if !s.info.Stub {
		for i := range recs {
			cur, err := s.ReadReg(ctx, recs[i].Addr)
			if err != nil {
				return err
			}
			recs[i].Value = cur&^recs[i].Mask | recs[i].Value
			recs[i].Mask = 0xFFFFFFFF
		}
	}
	return s.WriteRegs(ctx, recs...)
}

// burnS3C3 runs one attempt of the §1.3 sequence with the same register
// writes and checks, but as few round trips as the loader allows: WRITE_REG
// carries several records, so the timing setup is one write (setFields), a
// CONF+CMD pair is one command, clearing the program
// registers rides with the next command, and CMD is polled only where an
// operation can be running (after PGM and after each READ; writing the
// data registers starts nothing). On a line every round trip costs the USB
// adapter's latency, a millisecond or more each way.
func (s *Session) burnS3C3(ctx context.Context, block int, want []uint32, check [3]uint32, lockdown bool) (errRegs []uint32, failed bool, err error) {
	r := s.info.Chip.Efuse
	idle := func() error { return s.waitIdle(ctx, r.Cmd, 0x3) }
	// 1. Timing for a 40 MHz crystal (espefuse's read-modify-writes).
	if err := s.setFields(ctx, field{r.DacConf, 0xFF << 9, 0xFF}, field{r.DacConf, 0xFF, 0x28},
		field{r.WrTimConf1, 0xFFFF << 8, 0x3000}, field{r.WrTimConf2, 0xFFFF, 0x190}); err != nil {
		return nil, false, err
	}
	// 2. Wait idle: nothing may be running when the data is loaded.
	if err := idle(); err != nil {
		return nil, false, err
	}
	// 3–4. Clear, then load the 8 data words (zero-padded) and, for RS
	// blocks, the 3 check words.
	recs := clearPgm(r)
	for i := 0; i < 8; i++ {
		var v uint32
		if i < len(want) {
			v = want[i]
		}
		recs = append(recs, full(r.PgmData0+uint32(4*i), v))
	}
	if block > 0 {
		for i, v := range check {
			recs = append(recs, full(r.CheckValue0+uint32(4*i), v))
		}
	}
	recs = append(recs, full(r.Conf, chip.EfuseOpProgram))
	if err := s.loadChecked(ctx, recs); err != nil {
		return nil, false, err
	}
	// 5. Program.
	if err := s.WriteRegs(ctx, full(r.Cmd, chip.EfuseCmdPgm|uint32(block)<<2)); err != nil {
		return nil, false, err
	}
	if err := idle(); err != nil {
		return nil, false, err
	}
	// 6–9. Clear the program registers (no key material stays in them) with
	// the first reload; reload and check the error registers six times,
	// stopping at the first error.
	recs = clearPgm(r)
	for i := 0; i < efuseReloads; i++ {
		recs = append(recs, full(r.Conf, chip.EfuseOpRead), full(r.Cmd, chip.EfuseCmdRead),
			loader.RegWrite{Addr: s.info.Chip.UARTDateReg, DelayUS: efuseReloadDelay})
		// The first reload loads what was just burned: after a lockdown
		// burn no loader answers it.
		if err := s.writeRegs(ctx, lockdown && i == 0, recs...); err != nil {
			return nil, false, err
		}
		recs = nil
		if err := idle(); err != nil {
			return nil, false, err
		}
		errRegs, failed, err = s.efuseErrors(ctx, block)
		if err != nil || failed {
			return errRegs, failed, err
		}
	}
	return errRegs, false, nil
}

// pgmLoads bounds the loads of the program registers before a burn gives
// up on the line.
const pgmLoads = 3

// loadChecked writes the registers a program command reads (the data, the
// check words, CONF) and reads each back (ReadRegStable) before the
// trigger: WRITE_REG carries no checksum, and a value or address the line
// changed would otherwise be burned for good — other bits, or the same
// bits in another block. A mismatch loads everything again; one that
// stays after pgmLoads loads fails with nothing programmed
// (ErrWriteNotTaken).
func (s *Session) loadChecked(ctx context.Context, recs []loader.RegWrite) error {
	// What each register holds after the writes (a register written twice,
	// cleared then loaded, holds the last).
	var final []loader.RegWrite
	for _, w := range recs {
		i := slices.IndexFunc(final, func(f loader.RegWrite) bool { return f.Addr == w.Addr })
		if i < 0 {
			final = append(final, loader.RegWrite{Addr: w.Addr})
			i = len(final) - 1
		}
		final[i].Value = w.Apply(final[i].Value)
		final[i].Mask |= w.Mask
	}
	var bad string
	for load := 1; load <= pgmLoads; load++ {
		if err := s.WriteRegs(ctx, recs...); err != nil {
			return err
		}
		bad = ""
		for _, w := range final {
			got, err := s.ReadRegStable(ctx, w.Addr)
			if err != nil {
				return err
			}
			if got&w.Mask != w.Value&w.Mask {
				// The value is not named: it may be key material.
				bad = fmt.Sprintf("register 0x%08x", w.Addr)
				break
			}
		}
		if bad == "" {
			return nil
		}
		s.log.Warn("flasher: an eFuse program register did not read back as written; loading again", "load", load, "reg", bad)
	}
	return fmt.Errorf("flasher: %w: %s did not read back as written after %d loads; nothing programmed", ErrWriteNotTaken, bad, pgmLoads)
}

// clearPgm returns the writes that zero PGM_DATA0…7.
func clearPgm(r *chip.EfuseRegs) []loader.RegWrite {
	recs := make([]loader.RegWrite, 8)
	for i := range recs {
		recs[i] = full(r.PgmData0+uint32(4*i), 0)
	}
	return recs
}

// efuseErrors reads the error registers of one block (§1.3 error rule).
func (s *Session) efuseErrors(ctx context.Context, block int) ([]uint32, bool, error) {
	r := s.info.Chip.Efuse
	if block == 0 {
		addrs := []uint32{r.RepeatErr0, r.RepeatErr0 + 4, r.RepeatErr0 + 8, r.RepeatErr0 + 12, r.RepeatErr4[0]}
		out := make([]uint32, len(addrs))
		failed := false
		for i, a := range addrs {
			v, err := s.ReadReg(ctx, a)
			if err != nil {
				return nil, false, err
			}
			out[i] = v
			failed = failed || v != 0
		}
		return out, failed, nil
	}
	count, fail, err := s.rsErrors(ctx, block)
	if err != nil {
		return nil, false, err
	}
	return []uint32{count, fail}, count != 0 || fail != 0, nil
}

// rsErrors returns a block's error count and FAIL bit from RD_RS_ERR0/1:
// one nibble per block from BLOCK1, count in bits 0–2, FAIL in bit 3 —
// on the C3 one nibble higher (chip.EfuseRegs.RSFailShifted), and none for
// BLOCK10 there.
func (s *Session) rsErrors(ctx context.Context, block int) (count, fail uint32, err error) {
	r := s.info.Chip.Efuse
	nibble := func(idx int) (uint32, error) {
		addr := r.RSErr0
		if idx >= 8 {
			addr = r.RSErr1
		}
		v, err := s.ReadReg(ctx, addr)
		if err != nil {
			return 0, err
		}
		return v >> (4 * (idx % 8)) & 0xF, nil
	}
	idx := block - 1
	n, err := nibble(idx)
	if err != nil {
		return 0, 0, err
	}
	count = n & 7
	switch {
	case !r.RSFailShifted:
		fail = n >> 3 & 1
	case block < 10:
		f, err := nibble(idx + 1)
		if err != nil {
			return 0, 0, err
		}
		fail = f >> 3 & 1
	}
	return count, fail, nil
}

func (s *Session) burnClassic(ctx context.Context, block int, want []uint32, lockdown bool) (errRegs []uint32, failed bool, err error) {
	r := s.info.Chip.ClassicEfuse
	recs := make([]loader.RegWrite, len(want))
	for i, v := range want {
		recs[i] = full(r.BlockWrite[block]+uint32(4*i), v)
	}
	if err := s.loadChecked(ctx, recs); err != nil {
		return nil, false, err
	}
	// 40 MHz timing: DAC_CLK_DIV 80, CLK_SEL0 160, CLK_SEL1 255 (§1.2).
	if err := s.setFields(ctx, field{r.DacConf, 0xFF, 80}, field{r.Clk, 0xFF, 160}, field{r.Clk, 0xFF00, 255}); err != nil {
		return nil, false, err
	}
	if err := s.WriteRegs(ctx, full(r.Conf, chip.EfuseOpProgram), full(r.Cmd, chip.EfuseCmdPgm)); err != nil {
		return nil, false, err
	}
	var dec uint32
	if err := s.waitIdle(ctx, r.Cmd, 0xFFFFFFFF); err != nil {
		return nil, false, err
	}
	for i := 0; i < efuseReloads; i++ {
		// Idle here: the program, or the last reload, was waited for.
		if err := s.writeRegs(ctx, lockdown && i == 0, full(r.Conf, chip.EfuseOpRead), full(r.Cmd, chip.EfuseCmdRead)); err != nil {
			return nil, false, err
		}
		if err := s.waitIdle(ctx, r.Cmd, 0xFFFFFFFF); err != nil {
			return nil, false, err
		}
		v, err := s.ReadReg(ctx, r.DecStatus)
		if err != nil {
			return nil, false, err
		}
		if dec = v & 0xFFF; dec != 0 {
			return []uint32{dec}, true, nil
		}
	}
	return []uint32{dec}, false, nil
}
