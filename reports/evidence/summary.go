package evidence

import (
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// WriteSummary renders r as one screen of text for an operator or auditor:
// identity, verdict, release, timing, images, eFuse changes, key blocks,
// steps, and every check that did not verify, with its reason.
func WriteSummary(w io.Writer, r *Record) error {
	var b strings.Builder
	// Every string from the record is escaped (the evidence file is outside
	// input: a control character in a lot or a serial must not reach the
	// terminal raw, nor a newline forge a line); pre-rendered text is raw.
	p := func(format string, a ...any) {
		for i, v := range a {
			if t, ok := v.(raw); ok {
				a[i] = string(t)
			} else if rv := reflect.ValueOf(v); rv.Kind() == reflect.String {
				a[i] = safe(rv.String())
			}
		}
		fmt.Fprintf(&b, format, a...)
	}

	p("Evidence  %s  (%s)\n", r.ID, r.Schema)
	rev := r.Device.Revision
	if rev == "" {
		rev = "rev ?"
	}
	p("Device    %s  %s %s", r.Device.MAC, r.Device.Chip, rev)
	if r.Device.SerialNo != "" {
		p("  serial %s", r.Device.SerialNo)
	}
	if r.Device.FlashID != "" {
		p("  flash %s", r.Device.FlashID)
	}
	p("\n")
	switch r.Result.Verdict {
	case PASS:
		p("Result    PASS\n")
	default:
		code := ""
		if r.Result.Code != "" {
			code = " [" + r.Result.Code + "]"
		}
		p("Result    %s%s: %s\n", r.Result.Verdict, code, oneLine(r.Result.Reason))
	}
	op := r.Operator.ID
	if r.Operator.Name != "" {
		op += " (" + r.Operator.Name + ")"
	}
	st := r.Station.ID
	if r.Station.Slot != "" {
		st += " " + r.Station.Slot
	}
	if r.Station.Target != "" {
		st += " [" + r.Station.Target + "]"
	}
	p("Station   %s  operator %s  lot %s\n", st, op, orDash(r.Lot))
	if !r.Station.LoaderStub.IsZero() {
		p("Loader    flasher stub sha256 %s\n", short(r.Station.LoaderStub.String()))
	}
	p("Recipe    %s  sha256 %s\n", orDash(r.Recipe.Name), short(r.Recipe.SHA256.String()))
	p("Release   %s %s  secure_version %d  manifest %s\n", orDash(r.Release.Product), orDash(r.Release.Version),
		r.Release.SecureVersion, short(r.Release.ManifestSHA256.String()))
	p("Timing    %s → %s  %s", r.Timing.Start.Format(time.RFC3339), r.Timing.End.Format(time.RFC3339), roundDur(r.Timing.Duration))
	if r.Timing.Baud > 0 {
		p("  %d baud", r.Timing.Baud)
	}
	if r.Timing.BytesOnWire > 0 {
		p("  %s on the wire", size(r.Timing.BytesOnWire))
	}
	p("\n")

	if len(r.Images) > 0 {
		p("Images   ")
		for i, im := range r.Images {
			sep := " "
			if i > 0 {
				sep = "          "
			}
			p("%s%-16s 0x%06x %9s  %-14s sha256 %s", sep, im.Role, im.Offset, size(im.Size), im.WriteMode, short(im.PlaintextSHA256.String()))
			if len(im.SignatureKeyDigests) > 0 {
				p("  signed (%d)", len(im.SignatureKeyDigests))
			}
			p("\n")
		}
	}

	ch := Changes(r.Efuse.Before, r.Efuse.After)
	if len(ch) == 0 {
		p("eFuse     no field changed\n")
	} else {
		var parts []string
		for _, c := range ch {
			parts = append(parts, fmt.Sprintf("%s %s→%s", safe(c.Name), fieldValue(c.Before, c.InBefore), fieldValue(c.After, c.InAfter)))
		}
		p("eFuse     %s\n", raw(wrap(strings.Join(parts, ", "), 88, "          ")))
	}
	for _, k := range r.Efuse.After.KeyBlocks {
		if k.Empty {
			continue
		}
		var flags []string
		if k.ReadProtected {
			flags = append(flags, "read-protected")
		}
		if k.WriteProtected {
			flags = append(flags, "write-protected")
		}
		p("Key       %-11s %-22s sha256 %s  %s\n", k.Block, k.Purpose, short(k.Digest.String()), strings.Join(flags, " "))
	}

	var steps []string
	for _, s := range r.Steps {
		e := fmt.Sprintf("%s %s %s", safe(s.Name), safe(s.Result), roundDur(s.Duration))
		if s.Result == StepSkipped {
			e = safe(s.Name) + " skipped"
		}
		steps = append(steps, e)
	}
	p("Steps     %s\n", raw(wrap(strings.Join(steps, " · "), 88, "          ")))
	// Steps that did not run OK, grouped by their reason so a stop early in
	// the run does not push the rest off the screen.
	for _, g := range groupBy(r.Steps, func(s Step) bool { return s.Result != StepOK },
		func(s Step) string { return safe(s.Result + ": " + oneLine(s.Error)) }, func(s Step) string { return safe(s.Name) }) {
		p("          %s\n", raw(wrap(strings.Join(g.names, ", ")+" "+g.key, 88, "            ")))
	}

	verified, notv := 0, []Check{}
	for _, c := range r.Checks {
		if c.Verified {
			verified++
		} else {
			notv = append(notv, c)
		}
	}
	p("Checks    %d verified, %d not verified; %s\n", verified, len(notv), r.EstablishedCounts())
	for _, g := range groupBy(notv, func(Check) bool { return true },
		func(c Check) string { return safe(oneLine(c.Status())) }, func(c Check) string { return safe(c.Name) }) {
		p("          %s\n", raw(wrap(strings.Join(g.names, ", ")+": "+g.key, 88, "            ")))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// EstablishedCounts says how the record's checks were established:
// "3 computed, 5 modelled" (Establishment, so a v1 record's too).
func (r *Record) EstablishedCounts() string {
	n := map[string]int{}
	for _, c := range r.Checks {
		n[r.Establishment(c)]++
	}
	var parts []string
	for _, how := range []string{Observed, Computed, Modelled, Unrecorded} {
		if n[how] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[how], how))
		}
	}
	if len(parts) == 0 {
		return "none recorded"
	}
	return strings.Join(parts, ", ")
}

// EstablishedText is how an auditor reads an establishment: what it
// proves for a shipped device.
func EstablishedText(how string) string {
	switch how {
	case Observed:
		return "observed on the board"
	case Computed:
		return "computed on the host"
	case Modelled:
		return "modelled: not proof for a shipped device"
	case Unrecorded:
		return "not recorded (" + SchemaV1 + "): not proof by observation"
	}
	return how
}

// WriteChecks lists every check of r, one block each: name, outcome and
// how it was established, then what it compared and, when it did not
// verify, why. `fuseline report device` prints it after the summary.
func WriteChecks(w io.Writer, r *Record) error {
	var b strings.Builder
	width := 0
	for _, c := range r.Checks {
		width = max(width, len(safe(c.Name)))
	}
	fmt.Fprintf(&b, "Checks (%d): outcome, how established\n", len(r.Checks))
	for _, c := range r.Checks {
		// Record text is escaped, as in WriteSummary.
		how := safe(EstablishedText(r.Establishment(c)))
		c.Name, c.What, c.Because = safe(c.Name), safe(oneLine(c.What)), safe(oneLine(c.Because))
		outcome := "verified"
		if !c.Verified {
			outcome = "NOT verified"
		}
		fmt.Fprintf(&b, "  %-*s  %-12s  %s\n", width, c.Name, outcome, how)
		if c.What != "" {
			fmt.Fprintf(&b, "  %*s  %s\n", width, "", wrap(oneLine(c.What), 88, "  "+strings.Repeat(" ", width)+"  "))
		}
		if !c.Verified {
			fmt.Fprintf(&b, "  %*s  %s\n", width, "", wrap("because "+oneLine(c.Because), 88, "  "+strings.Repeat(" ", width)+"  "))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// raw is text WriteSummary rendered itself, printed as it is.
type raw string

// safe escapes what must not reach a terminal from a record: control
// characters (a newline too), other non-printable runes and invalid UTF-8
// become \xNN or \uNNNN.
func safe(s string) string {
	ok := true
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsPrint(r):
			b.WriteString(s[i : i+n])
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += n
	}
	return b.String()
}

type group struct {
	key   string
	names []string
}

// groupBy collects the names of the items that keep, by key, in first-seen
// order.
func groupBy[T any](items []T, keep func(T) bool, key, name func(T) string) []group {
	var out []group
	idx := map[string]int{}
	for _, it := range items {
		if !keep(it) {
			continue
		}
		k := key(it)
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, group{key: k})
		}
		out[i].names = append(out[i].names, name(it))
	}
	return out
}

// roundDur shows a duration to the millisecond; the record keeps it exact.
func roundDur(d Duration) time.Duration { return time.Duration(d).Round(time.Millisecond) }

func fieldValue(v uint64, present bool) string {
	if !present {
		return "?"
	}
	if v > 9 {
		return fmt.Sprintf("0x%x", v)
	}
	return fmt.Sprint(v)
}

func short(hex string) string {
	if len(hex) > 16 {
		return hex[:16] + "…"
	}
	return hex
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// wrap breaks s at spaces so no line exceeds width, indenting continuation
// lines.
func wrap(s string, width int, indent string) string {
	var b strings.Builder
	line := 0
	for i, word := range strings.Split(s, " ") {
		if i > 0 {
			if line+1+len(word) > width {
				b.WriteString("\n" + indent)
				line = 0
			} else {
				b.WriteByte(' ')
				line++
			}
		}
		b.WriteString(word)
		line += len(word)
	}
	return b.String()
}
