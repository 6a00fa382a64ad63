package flasher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"fuseline/esp/slip"
)

// errCorrupt marks a frame that arrived damaged (bad SLIP escape, too
// long). Callers keep reading: the next frame starts cleanly.
var errCorrupt = errors.New("flasher: corrupted frame")

type readDeadliner interface{ SetReadDeadline(time.Time) error }
type writeDeadliner interface{ SetWriteDeadline(time.Time) error }

// serialWriteTimeout bounds one write, as esptool's serial write timeout.
const serialWriteTimeout = 10 * time.Second

// wire moves SLIP frames over the link. With a read deadline it reads
// directly; without one a pump goroutine reads frames into a channel so
// that waits can still time out.
type wire struct {
	rw io.ReadWriter
	rd readDeadliner  // nil: pump mode
	wd writeDeadliner // nil: writes are not bounded

	mu  sync.Mutex // orders deadline updates against cancellation
	gen uint64

	sr *slip.Reader

	pumpOnce sync.Once
	frames   chan frameResult

	corrupt int // damaged frames seen, for the log
	lost    error
}

type frameResult struct {
	frame []byte
	junk  []byte
	err   error
}

func newWire(rw io.ReadWriter) *wire {
	w := &wire{rw: rw, sr: slip.NewReader(rw)}
	if d, ok := rw.(readDeadliner); ok {
		w.rd = d
	}
	if d, ok := rw.(writeDeadliner); ok {
		w.wd = d
	}
	return w
}

func (w *wire) startPump() {
	w.pumpOnce.Do(func() {
		w.frames = make(chan frameResult, 16)
		go func() {
			for {
				f, err := w.sr.ReadFrame()
				junk := append([]byte(nil), w.sr.Junk()...)
				w.frames <- frameResult{f, junk, err}
				if err != nil && !errors.Is(err, slip.ErrBadEscape) && !errors.Is(err, slip.ErrFrameTooLong) && !isTimeout(err) {
					close(w.frames)
					return
				}
			}
		}()
	})
}

// timeoutErr is the error for a wait that ran out: the context's when its
// deadline is what ended it (its timer may not have fired yet), else
// ErrTimeout.
func timeoutErr(ctx context.Context) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return ErrTimeout
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// classify maps a read or write error of the link.
func (w *wire) classify(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, slip.ErrBadEscape), errors.Is(err, slip.ErrFrameTooLong):
		w.corrupt++
		return fmt.Errorf("%w: %w", errCorrupt, err)
	case isTimeout(err):
		return timeoutErr(ctx)
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	w.lost = fmt.Errorf("%w: %w", ErrLinkLost, err)
	return w.lost
}

// next returns the next frame within timeout (and ctx), together with the
// bytes skipped outside frames before it (or before the timeout).
func (w *wire) next(ctx context.Context, timeout time.Duration) (frame, junk []byte, err error) {
	if w.lost != nil {
		return nil, nil, w.lost
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, context.Cause(ctx)
	}
	if w.rd == nil {
		return w.nextPump(ctx, timeout)
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	w.mu.Lock()
	w.gen++
	gen := w.gen
	if ctx.Err() != nil {
		deadline = time.Now()
	}
	w.rd.SetReadDeadline(deadline)
	w.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		if w.gen == gen {
			w.rd.SetReadDeadline(time.Now())
		}
		w.mu.Unlock()
	})
	f, rerr := w.sr.ReadFrame()
	stop()
	junk = append([]byte(nil), w.sr.Junk()...)
	return f, junk, w.classify(ctx, rerr)
}

func (w *wire) nextPump(ctx context.Context, timeout time.Duration) ([]byte, []byte, error) {
	w.startPump()
	t := time.NewTimer(timeout)
	defer t.Stop()
	var junk []byte
	for {
		select {
		case r, ok := <-w.frames:
			if !ok {
				if w.lost == nil {
					w.lost = fmt.Errorf("%w: reader stopped", ErrLinkLost)
				}
				return nil, junk, w.lost
			}
			junk = append(junk, r.junk...)
			if r.err != nil && isTimeout(r.err) {
				continue // the link's own read timeout; keep waiting for ours
			}
			return r.frame, junk, w.classify(ctx, r.err)
		case <-t.C:
			return nil, junk, timeoutErr(ctx)
		case <-ctx.Done():
			return nil, junk, context.Cause(ctx)
		}
	}
}

// send writes one framed packet.
func (w *wire) send(ctx context.Context, payload []byte) error {
	return w.sendRaw(ctx, slip.Encode(payload))
}

func (w *wire) sendRaw(ctx context.Context, b []byte) error {
	if w.lost != nil {
		return w.lost
	}
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	if w.wd != nil {
		w.mu.Lock()
		w.gen++
		gen := w.gen
		w.wd.SetWriteDeadline(time.Now().Add(serialWriteTimeout))
		w.mu.Unlock()
		stop := context.AfterFunc(ctx, func() {
			w.mu.Lock()
			if w.gen == gen {
				w.wd.SetWriteDeadline(time.Now())
			}
			w.mu.Unlock()
		})
		defer stop()
	}
	for len(b) > 0 {
		n, err := w.rw.Write(b)
		if err != nil {
			if isTimeout(err) && ctx.Err() == nil {
				w.lost = fmt.Errorf("%w: write blocked for %v", ErrLinkLost, serialWriteTimeout)
				return w.lost
			}
			return w.classify(ctx, err)
		}
		if n == 0 {
			return w.classify(ctx, io.ErrShortWrite)
		}
		b = b[n:]
	}
	return nil
}

// drain reads and discards input until the link has been quiet for quiet,
// or max has passed, and returns the text seen outside frames.
func (w *wire) drain(ctx context.Context, quiet, max time.Duration) ([]byte, error) {
	end := time.Now().Add(max)
	var text []byte
	for {
		left := time.Until(end)
		if left <= 0 {
			return text, nil
		}
		_, junk, err := w.next(ctx, min(quiet, left))
		text = append(text, junk...)
		if len(text) > 8192 {
			text = text[len(text)-8192:]
		}
		switch {
		case err == nil, errors.Is(err, errCorrupt):
		case errors.Is(err, ErrTimeout):
			return text, nil
		default:
			return text, err
		}
	}
}
