// Package flashertest holds fakes for testing code that uses package
// flasher without a board: Playback, a scripted SLIP exchange in the style
// of periph's conntest.Playback (Close fails if scripted steps were not
// used; a mismatch is an error IsErr recognises), helpers that build ROM
// and stub packets, and Lines, a fake DTR/RTS port that records what a
// reset strategy did and when.
//
// Scripts prove the bytes on the wire (docs/esp-serial-and-images.md §1);
// behaviour (retries, refusals, eFuse rules) belongs in tests against the
// virtual board.
package flashertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"fuseline/esp/chip"
	"fuseline/esp/loader"
	"fuseline/esp/slip"
)

// Step is one exchange of a script. Exactly one of Want, Reset or Baud
// says what the host must do; a step with none of them is unsolicited
// output, queued as soon as the previous step has matched.
type Step struct {
	// Name labels the step in errors.
	Name string
	// Want is the unframed packet the host must send, byte for byte.
	Want []byte
	// Match, if set, replaces the byte comparison for Want (Want is still
	// shown in errors); it returns nil when the packet is acceptable.
	Match func(got []byte) error
	// Reset expects a Reset(ctx, Mode) call.
	Reset bool
	Mode  chip.BootMode
	// Baud expects a SetBaud(Baud) call.
	Baud int
	// Reply holds unframed packets sent back (framed by Playback) once the
	// step matched.
	Reply [][]byte
	// Raw bytes are sent as they are after Reply (banner text, noise,
	// broken frames).
	Raw []byte
	// Err is returned by the matching call instead of success (nothing is
	// queued).
	Err error
	// EOF ends the link once everything queued has been read.
	EOF bool
}

func (s Step) String() string {
	if s.Name != "" {
		return s.Name
	}
	switch {
	case s.Reset:
		return fmt.Sprintf("reset(%v)", s.Mode)
	case s.Baud != 0:
		return fmt.Sprintf("baud(%d)", s.Baud)
	case s.Want != nil:
		if r, err := loader.DecodeRequest(s.Want); err == nil {
			return r.Op.String()
		}
		return fmt.Sprintf("% x", s.Want[:min(8, len(s.Want))])
	}
	return "unsolicited output"
}

// ErrScriptEnd: the host did something after the last step.
var ErrScriptEnd = errors.New("flashertest: script ended")

// MismatchError: the host's action differs from the script.
type MismatchError struct {
	Step  int
	Name  string
	Want  string
	Got   string
	Cause error
}

func (e *MismatchError) Error() string {
	s := fmt.Sprintf("flashertest: step %d (%s): want %s, got %s", e.Step, e.Name, e.Want, e.Got)
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Unwrap lets errors.Is(err, ErrScriptEnd) work.
func (e *MismatchError) Unwrap() error { return e.Cause }

// IsErr reports an error made by Playback (a mismatch or the script's end),
// as opposed to an error the script injected with Step.Err.
func IsErr(err error) bool {
	var m *MismatchError
	return errors.As(err, &m) || errors.Is(err, ErrScriptEnd)
}

// Playback is a scripted link: io.ReadWriter, SetReadDeadline, SetBaud
// and a flasher.Resetter. A read with nothing queued returns
// os.ErrDeadlineExceeded at once (a silent chip); the deadline itself is
// not waited for, so scripts run without sleeping.
type Playback struct {
	Steps []Step

	mu      sync.Mutex
	pos     int
	started bool
	out     bytes.Buffer
	eof     bool
	err     error
	dec     frameDecoder
	// Bauds records SetBaud calls.
	Bauds []int
}

// NewPlayback returns a Playback for steps.
func NewPlayback(steps ...Step) *Playback { return &Playback{Steps: steps} }

// start queues leading unsolicited steps. Callers hold mu.
func (p *Playback) start() {
	if !p.started {
		p.started = true
		p.advance()
	}
}

// advance queues every unsolicited step at pos.
func (p *Playback) advance() {
	for p.pos < len(p.Steps) {
		s := p.Steps[p.pos]
		if s.Want != nil || s.Match != nil || s.Reset || s.Baud != 0 {
			return
		}
		p.queue(s)
		p.pos++
	}
}

func (p *Playback) queue(s Step) {
	for _, r := range s.Reply {
		p.out.Write(slip.Encode(r))
	}
	p.out.Write(s.Raw)
	if s.EOF {
		p.eof = true
	}
}

func (p *Playback) fail(e *MismatchError) error {
	if p.err == nil {
		p.err = e
	}
	return e
}

// expect matches the next step against what the host did.
func (p *Playback) expect(kind string, got string, ok func(Step) (bool, error)) error {
	p.start()
	if p.err != nil {
		return p.err
	}
	if p.pos >= len(p.Steps) {
		return p.fail(&MismatchError{Step: p.pos, Name: "end", Want: "nothing more", Got: kind + " " + got, Cause: ErrScriptEnd})
	}
	s := p.Steps[p.pos]
	match, cause := ok(s)
	if !match {
		return p.fail(&MismatchError{Step: p.pos, Name: s.String(), Want: describe(s), Got: kind + " " + got, Cause: cause})
	}
	p.pos++
	if s.Err != nil {
		p.advance()
		return s.Err
	}
	p.queue(s)
	p.advance()
	return nil
}

func describe(s Step) string {
	switch {
	case s.Reset:
		return fmt.Sprintf("reset %v", s.Mode)
	case s.Baud != 0:
		return fmt.Sprintf("baud %d", s.Baud)
	case s.Want != nil:
		return fmt.Sprintf("packet % x", s.Want)
	}
	return "no host action"
}

// Write feeds SLIP bytes from the host; each complete frame must match the
// next step.
func (p *Playback) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, c := range b {
		frame, done, err := p.dec.feed(c)
		if err != nil {
			return i, p.fail(&MismatchError{Step: p.pos, Name: "framing", Want: "a valid SLIP frame", Got: fmt.Sprintf("byte 0x%02x", c), Cause: err})
		}
		if !done {
			continue
		}
		err = p.expect("packet", fmt.Sprintf("% x", frame), func(s Step) (bool, error) {
			if s.Match != nil {
				err := s.Match(frame)
				return err == nil, err
			}
			return s.Want != nil && bytes.Equal(s.Want, frame), nil
		})
		if err != nil {
			return i + 1, err
		}
	}
	return len(b), nil
}

// Read returns queued bytes, io.EOF after an EOF step, and otherwise
// os.ErrDeadlineExceeded.
func (p *Playback) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.start()
	if p.out.Len() > 0 {
		return p.out.Read(b)
	}
	if p.eof {
		return 0, io.EOF
	}
	return 0, os.ErrDeadlineExceeded
}

// SetReadDeadline is accepted and ignored: reads never block.
func (p *Playback) SetReadDeadline(time.Time) error { return nil }

// SetBaud must match a Baud step.
func (p *Playback) SetBaud(baud int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Bauds = append(p.Bauds, baud)
	return p.expect("baud", fmt.Sprint(baud), func(s Step) (bool, error) { return s.Baud == baud, nil })
}

// Reset must match a Reset step.
func (p *Playback) Reset(ctx context.Context, m chip.BootMode) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.expect("reset", m.String(), func(s Step) (bool, error) { return s.Reset && s.Mode == m, nil })
}

// Close reports the first mismatch, or an error if steps were left unused.
func (p *Playback) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	if p.pos < len(p.Steps) {
		return fmt.Errorf("flashertest: %d of %d steps unused, next is step %d (%s)", len(p.Steps)-p.pos, len(p.Steps), p.pos, p.Steps[p.pos])
	}
	if p.dec.inFrame && len(p.dec.buf) > 0 {
		return fmt.Errorf("flashertest: host left a partial frame (% x)", p.dec.buf)
	}
	return nil
}

// Pending returns how many steps are left.
func (p *Playback) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.Steps) - p.pos
}

// frameDecoder is an incremental SLIP decoder for the host's writes.
type frameDecoder struct {
	inFrame bool
	esc     bool
	buf     []byte
}

func (d *frameDecoder) feed(c byte) ([]byte, bool, error) {
	if !d.inFrame {
		if c != slip.End {
			return nil, false, fmt.Errorf("data outside a frame")
		}
		d.inFrame = true
		return nil, false, nil
	}
	switch {
	case d.esc:
		d.esc = false
		switch c {
		case slip.EscEnd:
			d.buf = append(d.buf, slip.End)
		case slip.EscEsc:
			d.buf = append(d.buf, slip.Esc)
		default:
			return nil, false, slip.ErrBadEscape
		}
	case c == slip.Esc:
		d.esc = true
	case c == slip.End:
		if len(d.buf) == 0 {
			return nil, false, nil // empty frame or back-to-back delimiters
		}
		f := d.buf
		d.buf = nil
		d.inFrame = false
		return f, true, nil
	default:
		d.buf = append(d.buf, c)
	}
	return nil, false, nil
}
