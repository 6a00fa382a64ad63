// Package slip frames packets for the Espressif serial bootloader with SLIP
// (RFC 1055 as Espressif uses it): every packet is 0xC0, the escaped payload,
// 0xC0; inside, 0xC0 becomes 0xDB 0xDC and 0xDB becomes 0xDB 0xDD.
//
// It follows docs/esp-serial-and-images.md §1.1. The ROM loader, the flasher
// stub and the virtual board all frame with this package.
package slip

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Special bytes of the framing.
const (
	End    byte = 0xC0 // frame delimiter
	Esc    byte = 0xDB // escape introducer
	EscEnd byte = 0xDC // Esc EscEnd stands for End
	EscEsc byte = 0xDD // Esc EscEsc stands for Esc
)

// ErrBadEscape reports an escape byte followed by something other than
// EscEnd or EscEsc (esptool: "Invalid SLIP escape").
var ErrBadEscape = errors.New("slip: invalid escape sequence")

// ErrFrameTooLong reports a frame longer than the reader's limit.
var ErrFrameTooLong = errors.New("slip: frame too long")

// Encode returns payload escaped and wrapped in End bytes.
func Encode(payload []byte) []byte {
	return AppendEncode(make([]byte, 0, len(payload)+len(payload)/16+2), payload)
}

// AppendEncode appends the framed payload to dst and returns the result.
func AppendEncode(dst, payload []byte) []byte {
	dst = append(dst, End)
	for _, b := range payload {
		switch b {
		case End:
			dst = append(dst, Esc, EscEnd)
		case Esc:
			dst = append(dst, Esc, EscEsc)
		default:
			dst = append(dst, b)
		}
	}
	return append(dst, End)
}

// Decode unescapes one frame's body (the bytes between two End bytes, without
// them). It is the inverse of Encode for a single frame.
func Decode(body []byte) ([]byte, error) {
	out := make([]byte, 0, len(body))
	for i := 0; i < len(body); i++ {
		b := body[i]
		switch b {
		case End:
			return nil, fmt.Errorf("slip: unescaped 0xC0 at offset %d", i)
		case Esc:
			if i+1 >= len(body) {
				return nil, fmt.Errorf("%w: escape at end of frame (offset %d)", ErrBadEscape, i)
			}
			i++
			switch body[i] {
			case EscEnd:
				out = append(out, End)
			case EscEsc:
				out = append(out, Esc)
			default:
				return nil, fmt.Errorf("%w: 0xdb 0x%02x at offset %d", ErrBadEscape, body[i], i-1)
			}
		default:
			out = append(out, b)
		}
	}
	return out, nil
}

// DefaultMaxFrame bounds a frame when Reader.Max is zero: the largest
// packet any loader sends or accepts is a 0x4000 stub block plus headers,
// so 64 KiB leaves a wide margin.
const DefaultMaxFrame = 64 << 10

// Reader reads SLIP frames from a byte stream.
//
// Bytes outside a frame (a boot banner, line noise) are skipped; the
// Skipped method returns how many were skipped in the last ReadFrame, and
// Junk returns them (bounded) so a caller can look for "waiting for
// download" or a crash message. Empty frames (End End) are skipped, as the
// ROM does. A Reader is not safe for concurrent use.
type Reader struct {
	r *bufio.Reader
	// Max is the longest accepted frame payload; 0 means DefaultMaxFrame.
	Max int

	inFrame bool   // an End was seen and the frame has not finished yet
	esc     bool   // the previous byte of the current frame was Esc
	buf     []byte // unescaped bytes of the current frame so far
	junk    []byte // bytes skipped outside frames since the last frame
	skipped int
	badAt   int // payload offset of a bad escape, -1 if none
}

// maxJunk bounds how much out-of-frame text a Reader keeps.
const maxJunk = 4096

// NewReader returns a Reader reading from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 4096), badAt: -1}
}

// ReadFrame returns the next non-empty frame's payload, unescaped.
//
// A read error (a deadline, EOF) is returned as is; the partial frame is
// kept, so calling ReadFrame again after a timeout continues the same frame.
// An EOF in the middle of a frame is io.ErrUnexpectedEOF. A frame with a bad
// escape is consumed to its end and reported as ErrBadEscape, so the next
// call starts cleanly at the following frame. The returned slice is owned by
// the caller.
func (r *Reader) ReadFrame() ([]byte, error) {
	max := r.Max
	if max <= 0 {
		max = DefaultMaxFrame
	}
	if !r.inFrame {
		r.junk = r.junk[:0]
		r.skipped = 0
	}
	for {
		b, err := r.r.ReadByte()
		if err != nil {
			if err == io.EOF && r.inFrame && (len(r.buf) > 0 || r.esc || r.badAt >= 0) {
				r.reset()
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if !r.inFrame {
			if b == End {
				r.inFrame = true
				continue
			}
			r.skipped++
			if len(r.junk) < maxJunk {
				r.junk = append(r.junk, b)
			}
			continue
		}
		if b == End {
			if r.esc && r.badAt < 0 {
				r.badAt = len(r.buf)
			}
			if r.badAt >= 0 {
				at := r.badAt
				r.reset()
				// The End that closed the bad frame may also open the next
				// one: ESP loaders send 0xC0 payload 0xC0 with no shared
				// delimiter, so treat it as a close only.
				return nil, fmt.Errorf("%w at payload offset %d", ErrBadEscape, at)
			}
			if len(r.buf) == 0 {
				// Empty frame, or the closing End of a frame followed by the
				// opening End of the next: stay in frame.
				continue
			}
			out := r.buf
			r.buf = nil
			r.inFrame = false
			r.esc = false
			return out, nil
		}
		if r.badAt >= 0 {
			continue // discard the rest of a bad frame
		}
		if r.esc {
			r.esc = false
			switch b {
			case EscEnd:
				b = End
			case EscEsc:
				b = Esc
			default:
				r.badAt = len(r.buf)
				continue
			}
		} else if b == Esc {
			r.esc = true
			continue
		}
		if len(r.buf) >= max {
			r.reset()
			return nil, fmt.Errorf("%w: more than %d bytes", ErrFrameTooLong, max)
		}
		r.buf = append(r.buf, b)
	}
}

func (r *Reader) reset() {
	r.inFrame = false
	r.esc = false
	r.buf = nil
	r.badAt = -1
}

// Skipped reports how many bytes outside any frame the last ReadFrame
// discarded before its frame started.
func (r *Reader) Skipped() int { return r.skipped }

// Junk returns (up to 4 KiB of) the bytes the last ReadFrame skipped
// outside frames. The slice is valid until the next ReadFrame.
func (r *Reader) Junk() []byte { return r.junk }

// Buffered reports how many bytes have been read from the underlying reader
// but not yet consumed.
func (r *Reader) Buffered() int { return r.r.Buffered() }

// Discard drops any partial frame and any buffered bytes, as a host does
// after a baud-rate change or before a new sync attempt.
func (r *Reader) Discard() {
	r.reset()
	r.r.Discard(r.r.Buffered())
}
