package provisioning

import (
	"context"
	"fmt"

	"fuseline/esp/loader"
	"fuseline/flasher"
	"fuseline/reports/evidence"
)

// TargetKind is an optional Board extension: a board that knows what it is
// says so. Fuseline's virtual board opened in-process (provisioning/sim)
// says evidence.TargetVirtual; a station that launched an emulator behind
// its link may wrap the link in a Board that says evidence.TargetQEMU.
type TargetKind interface {
	TargetKind() string
}

// TargetOf is the target a run on b records before the link has been
// asked (LinkTarget): what b says through TargetKind, else
// evidence.TargetBoard. A link (a serial port, socket:// or tcp://,
// rfc2217://) can lead to silicon or to a model alike; its spelling says
// nothing of which.
func TargetOf(b Board) string {
	if k, ok := b.(TargetKind); ok {
		if t := k.TargetKind(); t != "" {
			return t
		}
	}
	return evidence.TargetBoard
}

// ResolveTarget is the target a run starts with: the board's own kind when
// it declares one (a virtual board is never recorded as a real one, which
// would turn its modelled checks into observations), else want (the
// station's word for what is behind a link), else evidence.TargetBoard.
// want must be "" or a known target, and must agree with a declared kind.
// Once connected the run asks the link itself (LinkTarget), whose word on
// a model overrides the station's.
func ResolveTarget(want string, b Board) (string, error) {
	switch want {
	case "", evidence.TargetBoard, evidence.TargetVirtual, evidence.TargetQEMU:
	default:
		return "", fmt.Errorf("provisioning: target %q is none of %s, %s, %s", want, evidence.TargetBoard, evidence.TargetVirtual, evidence.TargetQEMU)
	}
	if k, ok := b.(TargetKind); ok && k.TargetKind() != "" {
		if got := k.TargetKind(); want != "" && want != got {
			return "", fmt.Errorf("provisioning: target %q given for a board that is %q", want, got)
		}
		return k.TargetKind(), nil
	}
	if want == "" {
		return evidence.TargetBoard, nil
	}
	return want, nil
}

// LinkTarget is the target a run records once the link has answered the
// model question (flasher.Session.AskModel): a link that says it is a
// model is recorded as that model whatever the station said (a station
// that calls Fuseline's virtual board a real board would otherwise record
// its modelled checks as observed); a link that says nothing keeps
// current, the station's word. overridden reports that the link's word
// replaced a different one.
func LinkTarget(current, model string) (target string, overridden bool) {
	if model == loader.ModelVirtual && current != evidence.TargetVirtual {
		return evidence.TargetVirtual, true
	}
	return current, false
}

// learnTarget asks the run's link, once, what is behind it and records
// the answer as the run's target (LinkTarget). The checks recorded before
// it (intake's) are established again against the new target.
func (x *run) learnTarget(ctx context.Context, s *flasher.Session) error {
	if x.linkAsked {
		return nil
	}
	model, err := s.AskModel(ctx)
	if err != nil {
		return fmt.Errorf("%w: asking the link what is behind it: %w", ErrLink, err)
	}
	x.linkAsked = true
	t, overridden := LinkTarget(x.target, model)
	if !overridden {
		return nil
	}
	msg := fmt.Sprintf("the link says it is Fuseline's %s board: target %q, its board-side checks are modelled", model, t)
	if x.cfg.Target != "" {
		msg = fmt.Sprintf("the link says it is Fuseline's %s board: recorded as target %q, not the station's %q; its board-side checks are modelled", model, t, x.cfg.Target)
		x.log.Warn(msg)
	}
	x.emit(Event{Phase: PhaseConnect, Kind: EventInfo, Message: msg})
	x.target = t
	for i := range x.checks {
		x.checks[i].Established = evidence.Establish(x.checks[i].Kind(), t)
	}
	return nil
}
