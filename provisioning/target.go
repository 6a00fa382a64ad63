package provisioning

import (
	"fmt"

	"fuseline/reports/evidence"
)

// TargetKind is an optional Board extension: a board that knows what it is
// says so. Fuseline's virtual board opened in-process (provisioning/sim)
// says evidence.TargetVirtual; a station that launched an emulator behind
// its link may wrap the link in a Board that says evidence.TargetQEMU.
type TargetKind interface {
	TargetKind() string
}

// TargetOf is the target a run on b records when the station says nothing
// else: what b says through TargetKind, else evidence.TargetBoard. A link
// (a serial port, socket:// or tcp://, rfc2217://) can lead to silicon or
// to a model alike and cannot tell which; the station records a real board
// unless it knows better (Config.Target), never from how the link was
// spelled.
func TargetOf(b Board) string {
	if k, ok := b.(TargetKind); ok {
		if t := k.TargetKind(); t != "" {
			return t
		}
	}
	return evidence.TargetBoard
}

// ResolveTarget is the target a run records: the board's own kind when it
// declares one (a virtual board is never recorded as a real one, which
// would turn its modelled checks into observations), else want (the
// station's word for what is behind a link), else evidence.TargetBoard.
// want must be "" or a known target, and must agree with a declared kind.
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
