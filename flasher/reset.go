package flasher

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"periph.io/x/conn/v3/gpio"

	"fuseline/esp/chip"
)

// Resetter puts the board into a boot mode: BootDownload enters the ROM
// loader, BootSPI runs the application from flash. The virtual board, a
// serial port's DTR/RTS lines and fixture GPIO lines all implement it.
type Resetter interface {
	Reset(ctx context.Context, m chip.BootMode) error
}

// DTRRTS is a port whose modem lines drive the classic auto-reset circuit
// (go.bug.st/serial ports, the virtual board's Port). true = asserted =
// line at 0 V.
type DTRRTS interface {
	SetDTR(bool) error
	SetRTS(bool) error
}

// DTRRTSPair is an optional extension that sets both lines in one step
// (TIOCMSET), which UnixTightReset needs to avoid passing through an
// unwanted state. Ports without it get two sequential writes.
type DTRRTSPair interface {
	SetDTRRTS(dtr, rts bool) error
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Reset timings (§3.3).
const (
	resetHold        = 100 * time.Millisecond
	DefaultBootDelay = 50 * time.Millisecond  // D in §3.3
	ExtraBootDelay   = 550 * time.Millisecond // esptool's second try
)

type lineStep struct {
	dtr, rts *bool
	wait     time.Duration
}

func set(dtr, rts *bool) lineStep   { return lineStep{dtr: dtr, rts: rts} }
func wait(d time.Duration) lineStep { return lineStep{wait: d} }

func pb(v bool) *bool { return &v }

func runLines(ctx context.Context, p DTRRTS, pair bool, steps []lineStep) error {
	for _, s := range steps {
		if s.wait > 0 {
			if err := sleep(ctx, s.wait); err != nil {
				return err
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		if pp, ok := p.(DTRRTSPair); ok && pair && s.dtr != nil && s.rts != nil {
			if err := pp.SetDTRRTS(*s.dtr, *s.rts); err != nil {
				return fmt.Errorf("flasher: reset: set DTR=%v RTS=%v: %w", *s.dtr, *s.rts, err)
			}
			continue
		}
		if s.dtr != nil {
			if err := p.SetDTR(*s.dtr); err != nil {
				return fmt.Errorf("flasher: reset: set DTR=%v: %w", *s.dtr, err)
			}
		}
		if s.rts != nil {
			if err := p.SetRTS(*s.rts); err != nil {
				return fmt.Errorf("flasher: reset: set RTS=%v: %w", *s.rts, err)
			}
		}
	}
	return nil
}

// hardReset is the RTS pulse that restarts the chip with the strap
// released (§3.3 HardReset).
func hardReset(ctx context.Context, p DTRRTS, hold time.Duration) error {
	return runLines(ctx, p, false, []lineStep{set(pb(false), nil), set(nil, pb(true)), wait(hold), set(nil, pb(false))})
}

// ClassicReset is esptool's ClassicReset over DTR/RTS through the
// two-transistor auto-reset circuit (§3.2, §3.3).
type ClassicReset struct {
	Port DTRRTS
	// Delay is D, how long IO0 stays low after EN is released; 0 means
	// DefaultBootDelay (50 ms).
	Delay time.Duration
}

// Reset implements Resetter.
func (r ClassicReset) Reset(ctx context.Context, m chip.BootMode) error {
	if m != chip.BootDownload {
		return hardReset(ctx, r.Port, resetHold)
	}
	d := cmp0(r.Delay, DefaultBootDelay)
	return runLines(ctx, r.Port, false, []lineStep{
		set(pb(false), nil), set(nil, pb(true)), wait(resetHold),
		set(pb(true), nil), set(nil, pb(false)), wait(d), set(pb(false), nil),
	})
}

// UnixTightReset is esptool's UnixTightReset: DTR and RTS change together
// (when the port implements DTRRTSPair), so the circuit never sees a
// half-changed pair.
type UnixTightReset struct {
	Port  DTRRTS
	Delay time.Duration // 0: DefaultBootDelay
}

// Reset implements Resetter.
func (r UnixTightReset) Reset(ctx context.Context, m chip.BootMode) error {
	if m != chip.BootDownload {
		return hardReset(ctx, r.Port, resetHold)
	}
	d := cmp0(r.Delay, DefaultBootDelay)
	return runLines(ctx, r.Port, true, []lineStep{
		set(pb(false), pb(false)), set(pb(true), pb(true)), set(pb(false), pb(true)), wait(resetHold),
		set(pb(true), pb(false)), wait(d), set(pb(false), pb(false)), set(pb(false), nil),
	})
}

// USBJTAGReset drives the built-in USB-Serial/JTAG peripheral of S3/C3
// (USB PID 0x1001), which interprets the DTR/RTS pattern itself (§3.3).
type USBJTAGReset struct{ Port DTRRTS }

// Reset implements Resetter.
func (r USBJTAGReset) Reset(ctx context.Context, m chip.BootMode) error {
	if m != chip.BootDownload {
		return hardReset(ctx, r.Port, resetHold)
	}
	return runLines(ctx, r.Port, false, []lineStep{
		set(nil, pb(false)), set(pb(false), nil), wait(resetHold),
		set(pb(true), nil), set(nil, pb(false)), wait(resetHold),
		set(nil, pb(true)), set(pb(false), nil), set(nil, pb(true)), wait(resetHold),
		set(pb(false), nil), set(nil, pb(false)),
	})
}

// GPIOReset drives EN (CHIP_PU) and the boot strap (GPIO0 on ESP32/S3,
// GPIO9 on C3) from fixture GPIO lines, the reliable way on a line. Both
// are active-low on the chip: Low on EN holds the chip in reset, Low on
// BOOT at EN's rising edge selects download mode.
type GPIOReset struct {
	EN, BOOT gpio.PinOut
	// Hold is how long EN stays low; 0 means 100 ms.
	Hold time.Duration
	// Delay is how long BOOT stays low after EN rises; 0 means 50 ms.
	Delay time.Duration
}

// Reset implements Resetter.
func (r GPIOReset) Reset(ctx context.Context, m chip.BootMode) error {
	strap := gpio.High
	if m == chip.BootDownload {
		strap = gpio.Low
	}
	out := func(p gpio.PinOut, l gpio.Level, name string) error {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		if err := p.Out(l); err != nil {
			return fmt.Errorf("flasher: reset: drive %s (%s) %v: %w", name, p, l, err)
		}
		return nil
	}
	if err := out(r.BOOT, strap, "BOOT"); err != nil {
		return err
	}
	if err := out(r.EN, gpio.Low, "EN"); err != nil {
		return err
	}
	if err := sleep(ctx, cmp0(r.Hold, resetHold)); err != nil {
		return err
	}
	if err := out(r.EN, gpio.High, "EN"); err != nil {
		return err
	}
	if m != chip.BootDownload {
		return nil
	}
	if err := sleep(ctx, cmp0(r.Delay, DefaultBootDelay)); err != nil {
		return err
	}
	return out(r.BOOT, gpio.High, "BOOT")
}

// NoReset does nothing: the board is already in the wanted mode (held in
// download mode by a jumper, or reset by hand).
type NoReset struct{}

// Reset implements Resetter.
func (NoReset) Reset(ctx context.Context, m chip.BootMode) error { return ctx.Err() }

// CustomReset runs a reset sequence in esptool's custom-reset-sequence
// syntax (`D0|R1|W0.1|D1|R0|W0.5|D0`): D<0|1> sets DTR, R<0|1> sets RTS,
// U<0|1>,<0|1> sets DTR and RTS together, W<seconds> waits. It is used for
// download mode; BootSPI uses the RTS pulse.
type CustomReset struct {
	Port  DTRRTS
	steps []lineStep
	src   string
}

// ParseCustomReset parses a custom sequence for port.
func ParseCustomReset(seq string, port DTRRTS) (*CustomReset, error) {
	c := &CustomReset{Port: port, src: seq}
	for i, cmd := range strings.Split(seq, "|") {
		cmd = strings.TrimSpace(cmd)
		bad := func(why string) error {
			return fmt.Errorf("flasher: custom reset %q: command %d %q: %s", seq, i+1, cmd, why)
		}
		if len(cmd) < 2 {
			return nil, bad("want D0, R1, U0,1 or W0.1")
		}
		arg := cmd[1:]
		bit := func(s string) (*bool, error) {
			switch s {
			case "0":
				return pb(false), nil
			case "1":
				return pb(true), nil
			}
			return nil, bad("value must be 0 or 1")
		}
		switch cmd[0] {
		case 'D', 'R':
			b, err := bit(arg)
			if err != nil {
				return nil, err
			}
			if cmd[0] == 'D' {
				c.steps = append(c.steps, set(b, nil))
			} else {
				c.steps = append(c.steps, set(nil, b))
			}
		case 'U':
			parts := strings.Split(arg, ",")
			if len(parts) != 2 {
				return nil, bad("want U<dtr>,<rts>")
			}
			d, err := bit(parts[0])
			if err != nil {
				return nil, err
			}
			r, err := bit(parts[1])
			if err != nil {
				return nil, err
			}
			c.steps = append(c.steps, set(d, r))
		case 'W':
			s, err := strconv.ParseFloat(arg, 64)
			if err != nil || s < 0 || s > 60 {
				return nil, bad("wait must be 0–60 seconds")
			}
			c.steps = append(c.steps, wait(time.Duration(s*float64(time.Second))))
		default:
			return nil, bad("unknown command (want D, R, U or W)")
		}
	}
	return c, nil
}

// String returns the sequence as parsed.
func (c *CustomReset) String() string { return c.src }

// Reset implements Resetter.
func (c *CustomReset) Reset(ctx context.Context, m chip.BootMode) error {
	if m != chip.BootDownload {
		return hardReset(ctx, c.Port, resetHold)
	}
	return runLines(ctx, c.Port, true, c.steps)
}

// ResetCycle tries its strategies in turn, one per call, like esptool's
// connection attempts (UnixTight 50 ms, UnixTight 550 ms, Classic 50 ms,
// Classic 550 ms on POSIX). BootSPI always uses the first strategy. Use one
// ResetCycle per board; it is not safe for concurrent use.
type ResetCycle struct {
	Strategies []Resetter
	n          int
}

// DefaultResets returns esptool's POSIX cycle for a DTR/RTS port.
func DefaultResets(p DTRRTS) *ResetCycle {
	return &ResetCycle{Strategies: []Resetter{
		UnixTightReset{Port: p}, UnixTightReset{Port: p, Delay: ExtraBootDelay},
		ClassicReset{Port: p}, ClassicReset{Port: p, Delay: ExtraBootDelay},
	}}
}

// Reset implements Resetter.
func (c *ResetCycle) Reset(ctx context.Context, m chip.BootMode) error {
	if len(c.Strategies) == 0 {
		return fmt.Errorf("flasher: reset cycle has no strategies")
	}
	if m != chip.BootDownload {
		return c.Strategies[0].Reset(ctx, m)
	}
	r := c.Strategies[c.n%len(c.Strategies)]
	c.n++
	return r.Reset(ctx, m)
}

func cmp0(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
