package provisioning

import (
	"time"
)

// EventKind says what an Event reports.
type EventKind string

// Event kinds.
const (
	EventBegin    EventKind = "begin"    // a phase or step starts
	EventProgress EventKind = "progress" // bytes (or items) done of a total
	EventEnd      EventKind = "end"      // a phase or step ended; Result says how
	EventInfo     EventKind = "info"     // a fact worth showing (device identified, plan made)
)

// Step results in events and evidence.
const (
	ResultOK      = "ok"
	ResultFailed  = "failed"
	ResultSkipped = "skipped"
)

// Event is one progress report of a run, sent to Config.Progress on the
// run's goroutine (style.md practice 10): a phase or step beginning or
// ending, or progress inside it. It marshals to one JSON object for
// --json output and never carries key material.
type Event struct {
	Slot    string    `json:"slot,omitempty"`
	Time    time.Time `json:"time"`
	Phase   Phase     `json:"phase"`
	Step    string    `json:"step,omitempty"`
	Kind    EventKind `json:"kind"`
	Region  string    `json:"region,omitempty"`
	Done    int64     `json:"done,omitempty"`
	Total   int64     `json:"total,omitempty"`
	Rate    float64   `json:"rate,omitempty"` // bytes per second over the region so far
	Result  string    `json:"result,omitempty"`
	Message string    `json:"message,omitempty"`
}

// PhaseTime is how long one phase of a run took.
type PhaseTime struct {
	Phase    Phase         `json:"phase"`
	Duration time.Duration `json:"duration"`
}
