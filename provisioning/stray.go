package provisioning

import (
	"fmt"
	"slices"

	"fuseline/esp/efuse"
)

// strayBits names what the final read shows set that neither the run's
// "before" state (the journal's, for a resumed board) nor any step of the
// plan sets: BLOCK0 fields and SECURE_VERSION by name with the bits in
// excess, and key blocks that were empty and are neither empty nor the data
// the plan burns. The loader's WRITE_REG carries no checksum, so a write the
// line changed can burn bits no step meant; such a board is not the
// recipe's, whatever the planned fields read.
//
// The expected state is the plan compiled against the "before" snapshot
// with this run's block assignment and key, so it covers the steps an
// earlier run of the board completed as well as this run's.
func (x *run) strayBits(final *efuse.Image) ([]string, error) {
	if x.before == nil || x.plan == nil {
		return nil, nil
	}
	start, err := efuse.NewImage(final.Chip)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(x.before.Fields))
	for n := range x.before.Fields {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := start.Set(n, x.before.Fields[n]); err != nil {
			return nil, fmt.Errorf("provisioning: before-state field %s: %w", n, err)
		}
	}
	p, err := NewPlan(PlanInput{Recipe: x.r, State: start, Assignment: &x.plan.Assignment, KeyIsOurs: true, FlashKey: x.kb, MinSecureVersion: -1})
	if err != nil {
		return nil, fmt.Errorf("provisioning: the plan from the run's before state: %w", err)
	}
	want := p.Final
	if want == nil {
		return nil, fmt.Errorf("provisioning: the plan from the run's before state predicts no final state")
	}
	var stray []string
	for _, n := range names {
		got, err := final.Get(n)
		if err != nil {
			continue
		}
		planned, _ := want.Get(n)
		if extra := got &^ (x.before.Fields[n] | planned); extra != 0 {
			stray = append(stray, fmt.Sprintf("%s (bits 0x%x)", n, extra))
		}
	}
	for _, kb := range x.before.KeyBlocks {
		if !kb.Empty {
			continue
		}
		got, err := final.GetBytes(kb.Block)
		if err != nil {
			continue
		}
		planned, _ := want.GetBytes(kb.Block)
		for i := range got {
			var w byte
			if i < len(planned) {
				w = planned[i]
			}
			if got[i]&^w != 0 {
				stray = append(stray, kb.Block)
				break
			}
		}
	}
	return stray, nil
}
