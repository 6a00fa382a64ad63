package flasher_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"fuseline/esp/chip"
	"fuseline/flasher"
	ft "fuseline/flasher/flashertest"
)

// Each strategy's line changes and waits, in esptool's custom-reset syntax
// (§3.3), measured on the fake clock.
func TestResetSequences(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		make func(l *ft.PairLines) flasher.Resetter
		mode chip.BootMode
		want string
	}{
		{"classic", func(l *ft.PairLines) flasher.Resetter { return flasher.ClassicReset{Port: &l.Lines} }, chip.BootDownload,
			"D0|R1|W0.1|D1|R0|W0.05|D0"},
		{"classic extra delay", func(l *ft.PairLines) flasher.Resetter {
			return flasher.ClassicReset{Port: &l.Lines, Delay: flasher.ExtraBootDelay}
		}, chip.BootDownload, "D0|R1|W0.1|D1|R0|W0.55|D0"},
		{"unix tight", func(l *ft.PairLines) flasher.Resetter { return flasher.UnixTightReset{Port: l} }, chip.BootDownload,
			"U0,0|U1,1|U0,1|W0.1|U1,0|W0.05|U0,0|D0"},
		{"unix tight without pair support", func(l *ft.PairLines) flasher.Resetter { return flasher.UnixTightReset{Port: &l.Lines} }, chip.BootDownload,
			"D0|R0|D1|R1|D0|R1|W0.1|D1|R0|W0.05|D0|R0|D0"},
		{"usb-serial-jtag", func(l *ft.PairLines) flasher.Resetter { return flasher.USBJTAGReset{Port: &l.Lines} }, chip.BootDownload,
			"R0|D0|W0.1|D1|R0|W0.1|R1|D0|R1|W0.1|D0|R0"},
		{"hard reset", func(l *ft.PairLines) flasher.Resetter { return flasher.ClassicReset{Port: &l.Lines} }, chip.BootSPI,
			"D0|R1|W0.1|R0"},
		{"custom", func(l *ft.PairLines) flasher.Resetter {
			c, err := flasher.ParseCustomReset("D0|R1|W0.1|D1|R0|W0.5|D0", l)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}, chip.BootDownload, "D0|R1|W0.1|D1|R0|W0.5|D0"},
		{"custom pair", func(l *ft.PairLines) flasher.Resetter {
			c, _ := flasher.ParseCustomReset("U0,1|W0.2|U1,0|W0.03|U0,0", l)
			return c
		}, chip.BootDownload, "U0,1|W0.2|U1,0|W0.03|U0,0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				l := &ft.PairLines{}
				if err := tc.make(l).Reset(t.Context(), tc.mode); err != nil {
					t.Fatal(err)
				}
				if got := l.Sequence(); got != tc.want {
					t.Fatalf("sequence\n got %s\nwant %s", got, tc.want)
				}
			})
		})
	}
}

func TestResetCycle(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := &ft.PairLines{}
		c := flasher.DefaultResets(l)
		var waits []string
		for i := 0; i < 5; i++ {
			l.Events = nil
			if err := c.Reset(t.Context(), chip.BootDownload); err != nil {
				t.Fatal(err)
			}
			seq := l.Sequence()
			waits = append(waits, seq[strings.LastIndex(seq, "W"):])
		}
		want := []string{"W0.05|U0,0|D0", "W0.55|U0,0|D0", "W0.05|D0", "W0.55|D0", "W0.05|U0,0|D0"}
		if strings.Join(waits, " ") != strings.Join(want, " ") {
			t.Fatalf("cycle %q", waits)
		}
	})
}

func TestResetCancelled(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
		defer cancel()
		l := &ft.Lines{}
		start := time.Now()
		err := flasher.ClassicReset{Port: l}.Reset(ctx, chip.BootDownload)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 30*time.Millisecond {
			t.Fatalf("err %v after %v", err, time.Since(start))
		}
	})
}

func TestResetLineError(t *testing.T) {
	t.Parallel()
	l := &ft.Lines{FailAfter: 2}
	err := flasher.ClassicReset{Port: l}.Reset(t.Context(), chip.BootDownload)
	if err == nil || !strings.Contains(err.Error(), "RTS") {
		t.Fatalf("err = %v", err)
	}
}

// pinLog records the levels a gpiotest.Pin was driven to, with fake times.
type pinLog struct {
	gpiotest.Pin
	log *[]string
}

func (p *pinLog) Out(l gpio.Level) error {
	*p.log = append(*p.log, p.N+"="+l.String()+"@"+time.Now().Format("05.000"))
	return p.Pin.Out(l)
}

func TestGPIOReset(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode chip.BootMode
		want string
	}{
		{chip.BootDownload, "BOOT=Low@00.000 EN=Low@00.000 EN=High@00.100 BOOT=High@00.150"},
		{chip.BootSPI, "BOOT=High@00.000 EN=Low@00.000 EN=High@00.100"},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var log []string
				en := &pinLog{Pin: gpiotest.Pin{N: "EN", Num: 5, L: gpio.High}, log: &log}
				boot := &pinLog{Pin: gpiotest.Pin{N: "BOOT", Num: 6, L: gpio.High}, log: &log}
				// Measure from the bubble's start: 2000-01-01 00:00:00 UTC.
				if err := (flasher.GPIOReset{EN: en, BOOT: boot}).Reset(t.Context(), tc.mode); err != nil {
					t.Fatal(err)
				}
				if got := strings.Join(log, " "); got != tc.want {
					t.Fatalf("got  %s\nwant %s", got, tc.want)
				}
				if en.Read() != gpio.High || boot.Read() != gpio.High {
					t.Fatal("lines not released")
				}
			})
		})
	}
}

func TestParseCustomReset(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, err string
	}{
		{"D0|R1|W0.1|D1|R0|W0.5|D0", ""},
		{" U0,1 | W0 | U1,1 ", ""},
		{"D2", "value must be 0 or 1"},
		{"X1", "unknown command"},
		{"W-1", "wait"},
		{"Wabc", "wait"},
		{"U1", "U<dtr>,<rts>"},
		{"", "want D0"},
		{"D0||R1", "want D0"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			c, err := flasher.ParseCustomReset(tc.in, &ft.Lines{})
			if tc.err == "" {
				if err != nil || c.String() != tc.in {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "flasher: custom reset") {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestNoReset(t *testing.T) {
	t.Parallel()
	if err := (flasher.NoReset{}).Reset(t.Context(), chip.BootDownload); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := (flasher.NoReset{}).Reset(ctx, chip.BootSPI); err == nil {
		t.Fatal("cancelled context ignored")
	}
}
