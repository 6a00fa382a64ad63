package provisioning

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"fuseline/esp/chip"
	"fuseline/flasher"
)

// Board is one board in a fixture as the flow sees it: the serial link to
// its UART and a way to reset it into a boot mode (style.md practice 3). The
// virtual board (through provisioning/sim) and every real fixture satisfy it.
//
// Optional extras, found by type assertion: SetReadDeadline(time.Time) error
// and SetBaud(int) error on the link (the flasher and the boot check use
// them), and DeviceID.
type Board interface {
	io.ReadWriter
	flasher.Resetter
}

// DeviceID is an optional Board extension: the fixture knows the board's
// factory MAC without asking the chip (a USB-Serial-JTAG port's serial
// number is the MAC; a line may scan a label). The flow uses it when the
// chip no longer tells (secure download mode).
type DeviceID interface {
	DeviceMAC() (mac [6]byte, ok bool)
}

// Probe is the fixture's SPI flash probe: it reads the raw flash without
// going through the chip (ciphertext where the chip encrypts).
type Probe interface {
	ReadFlash(ctx context.Context, offset uint32, n int) ([]byte, error)
}

// link wraps a Board to count the bytes that cross it, keeping the optional
// methods the flasher looks for.
type link struct {
	b       Board
	tx, rx  atomic.Int64
	writes  atomic.Int64
	baud    atomic.Int64
	txTime  atomic.Int64 // nanoseconds the sent bytes need on the wire at the rate they were sent
	initial int
}

func (l *link) Read(p []byte) (int, error) {
	n, err := l.b.Read(p)
	l.rx.Add(int64(n))
	return n, err
}

func (l *link) Write(p []byte) (int, error) {
	n, err := l.b.Write(p)
	l.tx.Add(int64(n))
	l.writes.Add(1)
	baud := l.baud.Load()
	if baud <= 0 {
		baud = int64(l.initial)
	}
	l.txTime.Add(int64(n) * 10 * int64(time.Second) / baud)
	return n, err
}

func (l *link) Reset(ctx context.Context, m chip.BootMode) error {
	l.baud.Store(int64(l.initial)) // the chip's UART restarts at its ROM rate
	return l.b.Reset(ctx, m)
}

func (l *link) setBaud(b int) error {
	s, ok := l.b.(interface{ SetBaud(int) error })
	if !ok {
		return errors.New("provisioning: the link cannot change its baud rate")
	}
	if err := s.SetBaud(b); err != nil {
		return err
	}
	l.baud.Store(int64(b))
	return nil
}

// deadlineLink adds SetReadDeadline and SetBaud when the board has them.
type deadlineLink struct{ *link }

func (l deadlineLink) SetReadDeadline(t time.Time) error {
	return l.b.(interface{ SetReadDeadline(time.Time) error }).SetReadDeadline(t)
}

func (l deadlineLink) SetBaud(b int) error { return l.setBaud(b) }

type baudLink struct{ *link }

func (l baudLink) SetBaud(b int) error { return l.setBaud(b) }

// wrap returns the counting link as a Board with the same optional methods
// as b.
func wrap(b Board, initial int) (*link, Board) {
	l := &link{b: b, initial: initial}
	l.baud.Store(int64(initial))
	_, dl := b.(interface{ SetReadDeadline(time.Time) error })
	_, bd := b.(interface{ SetBaud(int) error })
	switch {
	case dl && bd:
		return l, deadlineLink{l}
	case bd:
		return l, baudLink{l}
	}
	return l, l
}

// readUART reads what the board prints until done reports true on the text
// so far, the timeout passes, or ctx ends. It returns the text read.
func readUART(ctx context.Context, b Board, timeout time.Duration, done func(string) bool) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out bytes.Buffer
	dl, hasDL := b.(interface{ SetReadDeadline(time.Time) error })
	if hasDL {
		// A deadline the flasher left behind must not cut the log short.
		_ = dl.SetReadDeadline(time.Time{})
		stop := context.AfterFunc(ctx, func() { _ = dl.SetReadDeadline(time.Now()) })
		defer func() {
			stop()
			_ = dl.SetReadDeadline(time.Time{})
		}()
		buf := make([]byte, 4096)
		for {
			n, err := b.Read(buf)
			out.Write(buf[:n])
			if done(out.String()) {
				return out.String(), nil
			}
			if err != nil {
				if ctx.Err() != nil {
					return out.String(), ctx.Err()
				}
				if errors.Is(err, os.ErrDeadlineExceeded) {
					_ = dl.SetReadDeadline(time.Time{})
					continue
				}
				return out.String(), err
			}
		}
	}
	// No deadline: read in a goroutine and give up on it at the timeout.
	type chunk struct {
		b   []byte
		err error
	}
	ch := make(chan chunk, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := b.Read(buf)
			c := chunk{b: append([]byte(nil), buf[:n]...), err: err}
			select {
			case ch <- c:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return out.String(), ctx.Err()
		case c := <-ch:
			out.Write(c.b)
			if done(out.String()) {
				return out.String(), nil
			}
			if c.err != nil {
				return out.String(), c.err
			}
		}
	}
}

// bootVerdict reads an ESP-IDF boot log: ok once the app's project name and
// version are printed and app_main is called; failed on the ROM's and the
// bootloader's refusals. It matches ESP-IDF's own log wording.
func bootVerdict(log, project, version string) (ok, failed bool, why string) {
	for _, bad := range []string{"invalid header", "secure boot check fail", "Secure boot signature verification failed",
		"No bootable app partitions", "Failed to verify app image", "Checksum failure"} {
		if strings.Contains(log, bad) {
			return false, true, bad
		}
	}
	hasProject := strings.Contains(log, "Project name:") && strings.Contains(log, project)
	hasVersion := strings.Contains(log, "App version:") && strings.Contains(log, version)
	if hasProject && hasVersion && strings.Contains(log, "Calling app_main()") {
		return true, false, ""
	}
	return false, false, ""
}
