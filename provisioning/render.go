package provisioning

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WritePlan renders a run plan for an operator or --dry-run: the key-block
// assignment, every burn step with each eFuse field that changes (from →
// to), marked IRREVERSIBLE, and the flash regions in between. Key material
// never appears: flash-key blocks show only as empty, set or read-protected.
func WritePlan(w io.Writer, p *RunPlan) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Plan for %s %s, recipe %s, release %s\n", p.Chip, p.Device, p.Recipe, p.Release)
	e := p.Efuse
	names := func(blocks []int) string {
		var s []string
		for _, blk := range blocks {
			if e.ChipName == "esp32" {
				s = append(s, fmt.Sprintf("BLOCK%d", blk))
			} else {
				s = append(s, fmt.Sprintf("BLOCK_KEY%d", blk-4))
			}
		}
		return strings.Join(s, ", ")
	}
	fmt.Fprintf(&b, "Key blocks: flash-encryption key → %s; Secure Boot digests → %s\n", names(e.Assignment.FlashKey), names(e.Assignment.Digests))
	var slots []string
	var open []string
	for _, d := range e.DigestSlots {
		what := d.State
		if d.State == SlotKey {
			what = fmt.Sprintf("key %d", d.Slot)
		}
		if d.State == SlotOpen {
			what = "left open"
			open = append(open, fmt.Sprint(d.Slot))
		}
		slots = append(slots, fmt.Sprintf("%d %s", d.Slot, what))
	}
	if len(slots) > 0 {
		fmt.Fprintf(&b, "Secure Boot digest slots: %s\n", strings.Join(slots, "; "))
	}
	if len(open) > 0 {
		fmt.Fprintf(&b, "WARNING: unused digest slot %s stays open (secure_boot.keep_unused_slots_open: true): code running on the chip could burn a key digest of its own there\n", strings.Join(open, ", "))
	}
	n := 0
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	burnSteps := func(phase Phase) {
		for _, s := range e.Steps {
			if s.Phase != phase {
				continue
			}
			n++
			if s.Skip != "" {
				fmt.Fprintf(tw, "%2d. %s\t%s\t(%s)\n", n, s.Phase, s.Name, s.Skip)
				continue
			}
			if s.Done() {
				fmt.Fprintf(tw, "%2d. %s\t%s\t(already on the board)\n", n, s.Phase, s.Name)
				continue
			}
			mark := "IRREVERSIBLE"
			if s.Lockdown {
				mark += ", ends register access"
			}
			if len(s.Repair) > 0 {
				mark += fmt.Sprintf(", re-programs %d half-programmed block(s) with the same data", len(s.Repair))
			}
			fmt.Fprintf(tw, "%2d. %s\t%s\t%s\n", n, s.Phase, s.Name, mark)
			for _, c := range s.Changes {
				fmt.Fprintf(tw, "      %s\t%s\t→ %s\n", c.Field, c.From, c.To)
			}
		}
	}
	burnSteps(PhaseBurnKeys)
	for _, r := range p.Regions {
		n++
		what := "skip (written and verified by an earlier run)"
		if p.Flash {
			what = fmt.Sprintf("write %d bytes, %s", r.Size, r.Mode)
		}
		fmt.Fprintf(tw, "%2d. %s\t%s @0x%x\t%s (%s)\n", n, PhaseFlash, r.Role, r.Offset, what, r.File)
	}
	n++
	fmt.Fprintf(tw, "%2d. %s\tflash MD5, decrypt and check signatures\t\n", n, PhaseVerify)
	for _, sd := range p.Subdevices {
		n++
		fmt.Fprintf(tw, "%2d. %s\tsub-device %s @0x%x\twrite %d bytes to the %s on %s, MD5-verified (%s)\n", n, PhaseFlash, sd.Device, sd.Offset, sd.Size, sd.Chip, sd.Link, sd.File)
	}
	burnSteps(PhaseLock)
	if err := tw.Flush(); err != nil {
		return err
	}
	if irr := e.Irreversible(); len(irr) > 0 {
		fmt.Fprintf(&b, "%d irreversible eFuse steps: %s\n", len(irr), strings.Join(irr, ", "))
	} else {
		b.WriteString("No eFuse needs burning.\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
