package flashertest

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// LineEvent is one modem-line change seen by Lines.
type LineEvent struct {
	At   time.Time
	Line string // "DTR", "RTS" or "DTR+RTS"
	DTR  bool   // value for DTR (and for DTR+RTS)
	RTS  bool
}

func (e LineEvent) String() string {
	b := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	switch e.Line {
	case "DTR":
		return fmt.Sprintf("D%d", b(e.DTR))
	case "RTS":
		return fmt.Sprintf("R%d", b(e.RTS))
	}
	return fmt.Sprintf("U%d,%d", b(e.DTR), b(e.RTS))
}

// Lines is a fake DTR/RTS port that records every change with its time
// (use testing/synctest to get exact fake times). FailAfter > 0 makes the
// FailAfter-th change and later ones fail.
type Lines struct {
	mu        sync.Mutex
	Events    []LineEvent
	DTR, RTS  bool
	FailAfter int
}

func (l *Lines) record(e LineEvent) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.FailAfter > 0 && len(l.Events)+1 >= l.FailAfter {
		return fmt.Errorf("flashertest: line change %d refused", len(l.Events)+1)
	}
	e.At = time.Now()
	l.Events = append(l.Events, e)
	return nil
}

// SetDTR implements flasher.DTRRTS.
func (l *Lines) SetDTR(v bool) error {
	if err := l.record(LineEvent{Line: "DTR", DTR: v}); err != nil {
		return err
	}
	l.mu.Lock()
	l.DTR = v
	l.mu.Unlock()
	return nil
}

// SetRTS implements flasher.DTRRTS.
func (l *Lines) SetRTS(v bool) error {
	if err := l.record(LineEvent{Line: "RTS", RTS: v}); err != nil {
		return err
	}
	l.mu.Lock()
	l.RTS = v
	l.mu.Unlock()
	return nil
}

// Sequence renders the events in esptool's custom-reset syntax, with
// waits between changes ("D0|R1|W0.1|D1|R0|W0.05|D0").
func (l *Lines) Sequence() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var parts []string
	for i, e := range l.Events {
		if i > 0 {
			if d := e.At.Sub(l.Events[i-1].At); d > 0 {
				parts = append(parts, fmt.Sprintf("W%g", d.Seconds()))
			}
		}
		parts = append(parts, e.String())
	}
	return strings.Join(parts, "|")
}

// PairLines is Lines that also sets both lines at once (flasher.DTRRTSPair).
type PairLines struct{ Lines }

// SetDTRRTS implements flasher.DTRRTSPair.
func (l *PairLines) SetDTRRTS(dtr, rts bool) error {
	if err := l.record(LineEvent{Line: "DTR+RTS", DTR: dtr, RTS: rts}); err != nil {
		return err
	}
	l.mu.Lock()
	l.DTR, l.RTS = dtr, rts
	l.mu.Unlock()
	return nil
}
