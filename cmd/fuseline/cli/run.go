package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"fuseline/esp/chip"
	"fuseline/fixtures"
	"fuseline/fixtures/virtual"
	"fuseline/internal/inputfile"
	"fuseline/provisioning"
	"fuseline/provisioning/journal"
	"fuseline/provisioning/recipe"
	"fuseline/provisioning/sim"
	"fuseline/reports/audit"
	"fuseline/reports/evidence"
)

// runOptions are the flags of `fuseline run` (and the parts `demo` shares).
type runOptions struct {
	recipePath, target, boardState, faults, macText string
	targetKind                                      string
	reset                                           string
	data, station, slot, operator, lot, serial      string
	stubPath                                        string
	baud                                            int
	dryRun, yes, jsonOut, throttle, timing          bool
	stubModel                                       virtual.StubModel
	siem                                            siemOptions
}

// stubModelUsage is --stub-model's help, shared by run, demo and sim.
const stubModelUsage = "the flasher stub the virtual board behaves as once one is uploaded: legacy (esptool-legacy-flasher-stub) or blank-skipping (esp-flasher-stub 1.1.0 and later: no erase on blank flash)"

// virtualConfig is a virtual board of chip c as the run's flags ask for
// (main board, sub-devices and demo alike).
func (o runOptions) virtualConfig(c chip.Chip) virtual.Config {
	return virtual.Config{Chip: c, Throttle: o.throttle, Timing: o.timing, StubModel: o.stubModel}
}

// newRunCmd is `fuseline run`: provision one board end to end.
func newRunCmd(stdio Stdio) *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run --recipe RECIPE.yaml [--target virtual|PORT]",
		Short: "Provision one board: intake, burn keys, flash, verify, lock, evidence",
		Long: `Provision one board with a recipe, end to end (design.md "What one board goes
through"): authenticate the release, connect, read the eFuses, plan, burn the
per-device flash-encryption key, write the images (host- or chip-encrypted),
re-verify, burn the lockdown eFuses in the order of esp-security-facts.md §6,
read back, check the boot, and write the evidence record.

Before the first irreversible eFuse burn the plan is shown and you are asked
to confirm; --yes confirms in advance (automation). --dry-run prints the plan
(every eFuse that would change, from → to) and stops.

Every step is journaled in DATA/journal. After a crash or a pulled cable run
the same command again: the run resumes from the board's eFuses and never
burns a different value. Evidence goes to DATA/evidence, audit records to
DATA/audit.log.

Targets: "virtual" (an in-process virtual board of the recipe's chip:
esp32s3, esp32c3 or esp32 v3; --board-state keeps it between runs), a
serial port (/dev/ttyUSB0, usb-serial:SERIAL, usb:VID:PID,
usb-location:PATH; reset by --reset), rfc2217://HOST:PORT, or
socket://HOST:PORT / tcp://HOST:PORT (e.g. a board served by "fuseline sim"; it must be
in download mode, and the boot check cannot reset it).

The evidence says how each check was established: observed (a real board's
answers and UART), computed (on this host) or modelled (a virtual board or
an emulator answered). Over a port the station asks the link what is
behind it: a "fuseline sim" says it is the virtual board and is recorded as
virtual whatever --target-kind says; a real board's ROM refuses the
question and the run is recorded as a real board unless --target-kind says
qemu or virtual (give it for QEMU, which cannot say so itself).

Sub-devices: a signed release's sub-device images go, after the main board is
verified and before the lockdown, to the link the recipe's subdevices section
names: tcp://HOST:PORT, or virtual:NAME (an in-process virtual board, kept in
BOARD-STATE/subdevices/NAME when --board-state is given).

Exit codes: 0 pass, 1 board failed or refused (also a refused release),
2 usage or recipe error, 3 link or fixture error.`,
		Example: `  fuseline run --recipe recipe.yaml --target virtual --board-state ./board1 --dry-run
  fuseline run --recipe recipe.yaml --target virtual --board-state ./board1 --yes --operator alice`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runOne(cmd.Context(), stdio, o)
		},
	}
	f := cmd.Flags()
	addRunFlags(cmd, &o)
	f.StringVar(&o.recipePath, "recipe", "", "the recipe (YAML) (required)")
	f.StringVar(&o.target, "target", "virtual", "virtual, or the board's port: /dev/ttyUSB0, usb-serial:SERIAL, usb:VID:PID, usb-location:1-1.2, socket://HOST:PORT (tcp://), rfc2217://HOST:PORT")
	f.StringVar(&o.targetKind, "target-kind", "", "what is behind a --target port, for the evidence: board (a real board: its checks are observed; the default), virtual or qemu (their checks are modelled); a fuseline sim says it is virtual itself, whatever this says")
	f.StringVar(&o.reset, "reset", "default-reset", "how to reset a board on a port: default-reset, classic, unix-tight, usb-reset, no-reset, or a custom sequence like D0|R1|W0.1|D1|R0|W0.05|D0")
	f.StringVar(&o.boardState, "board-state", "", "virtual target: directory that keeps the board's eFuses and flash (default: a new board in memory)")
	f.StringVar(&o.faults, "faults", "", "virtual target: faults to inject (see fuseline sim --help)")
	f.StringVar(&o.macText, "mac", "", "virtual target: factory MAC of a new board")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the plan and stop; nothing is written")
	f.BoolVar(&o.yes, "yes", false, "approve the irreversible steps in advance (no prompt)")
	return cmd
}

// addRunFlags adds the flags run and demo share.
func addRunFlags(cmd *cobra.Command, o *runOptions) {
	f := cmd.Flags()
	f.StringVar(&o.data, "data", audit.DefaultDir, "station data directory (journal, evidence, audit log)")
	f.StringVar(&o.station, "station", "station", "station name (evidence and audit log)")
	f.StringVar(&o.slot, "slot", "slot0", "fixture slot name")
	f.StringVar(&o.operator, "operator", "", "operator ID (default: $USER)")
	f.StringVar(&o.lot, "lot", "", "lot or work order")
	f.StringVar(&o.serial, "serial", "", "product serial number for the evidence")
	f.StringVar(&o.stubPath, "stub", "", "esptool flasher-stub JSON to upload (compressed chip-encrypted writes need it)")
	f.IntVar(&o.baud, "baud", provisioning.DefaultBaud, "link baud rate after connecting")
	f.BoolVar(&o.jsonOut, "json", false, "print events and the result as JSON lines")
	f.BoolVar(&o.throttle, "throttle", false, "virtual target: pace bytes at the baud rate, as a real wire")
	f.BoolVar(&o.timing, "timing", false, "virtual target: datasheet flash erase/program times")
	f.TextVar(&o.stubModel, "stub-model", o.stubModel, "virtual target: "+stubModelUsage)
	addSIEMFlags(cmd, &o.siem)
}

// loadRecipeAndRelease loads the recipe (exit 2 on errors) and runs intake
// (exit 1 on a refused release). With a station log (nil on a dry run) it
// first records an operator sign-in or a recipe change, and a refused
// release.
func loadRecipeAndRelease(ctx context.Context, o runOptions, path string, log *audit.Log) (*recipe.Recipe, *provisioning.Release, error) {
	if path == "" {
		return nil, nil, usageErr("--recipe is required")
	}
	r, err := recipe.LoadContext(ctx, path)
	if err == nil {
		err = r.CheckReleaseDir()
	}
	if err != nil {
		return nil, nil, &ExitError{Code: ExitUsage, Err: err}
	}
	op := operatorOf(o)
	if log != nil {
		s := provisioning.Session{Station: o.station, Operator: op, RecipeName: r.Name, RecipeSHA: r.SHA256Hex()}
		if err := provisioning.BeginSession(ctx, log, o.data, s); err != nil {
			return nil, nil, failErr(err)
		}
	}
	rel, err := provisioning.Intake(ctx, r, provisioning.IntakeOptions{StateDir: filepath.Join(o.data, "release-state")})
	if err != nil {
		if errors.Is(err, inputfile.ErrNotRegular) || errors.Is(err, inputfile.ErrTooLarge) {
			// A FIFO or a device named as a build file: an input mistake.
			return nil, nil, &ExitError{Code: ExitUsage, Err: err}
		}
		if errors.Is(err, provisioning.ErrIntake) {
			if log != nil {
				if aerr := provisioning.AuditIntakeRefused(ctx, log, op, r.SHA256Hex(), err); aerr != nil {
					return nil, nil, failErr(errors.Join(err, aerr))
				}
			}
			return nil, nil, failErr(err)
		}
		return nil, nil, linkErr(err)
	}
	return r, rel, nil
}

// operatorOf is the operator a run records: --operator, else $USER.
func operatorOf(o runOptions) string {
	if o.operator != "" {
		return o.operator
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "operator"
}

// openStationLog opens the station's audit log in o.data, forwarding to the
// SIEM when --siem is given. A dry run writes nothing: nil log. The close
// function signs the final checkpoint and hands it to the forwarder before
// stopping it.
func openStationLog(ctx context.Context, o runOptions) (*audit.Log, func(), error) {
	if o.dryRun {
		return nil, func() {}, nil
	}
	if err := os.MkdirAll(o.data, 0o755); err != nil {
		return nil, nil, usageErr("--data: %v", err)
	}
	fwd, stopSIEM, err := openSIEM(ctx, o.siem, o.data)
	if err != nil {
		return nil, nil, err
	}
	log, err := audit.Open(ctx, audit.Config{Dir: o.data, Station: o.station, Forward: fwd})
	if err != nil {
		stopSIEM()
		return nil, nil, failErr(fmt.Errorf("run: audit log: %w", err))
	}
	return log, func() {
		log.Close(context.WithoutCancel(ctx))
		stopSIEM()
	}, nil
}

// checkRunFlags refuses, before anything is written, flag values that
// would reach a file name, the terminal, the evidence or the audit log in
// a form they must not have: a slot that is not a plain name, control
// characters in --operator, --lot or --serial (the one rule for typed text
// is audit.CheckText), a baud rate that is not a rate.
func checkRunFlags(o runOptions) error {
	if err := journal.CheckName(o.slot); err != nil {
		return usageErr("--slot: %v", strings.TrimPrefix(err.Error(), "journal: "))
	}
	for _, t := range []struct{ flag, v string }{{"--operator", operatorOf(o)}, {"--lot", o.lot}, {"--serial", o.serial}} {
		if err := audit.CheckText(t.flag, t.v, 128); err != nil {
			if fe, ok := errors.AsType[*audit.FieldError](err); ok {
				// Not the value: it may be garbage, or shaped like a key.
				return usageErr("%s: %s", t.flag, fe.Reason)
			}
			return usageErr("%s: %v", t.flag, err)
		}
	}
	if o.baud <= 0 {
		return usageErr("--baud %d: want a positive rate such as %d", o.baud, provisioning.DefaultBaud)
	}
	return nil
}

func runOne(ctx context.Context, stdio Stdio, o runOptions) error {
	if err := checkRunFlags(o); err != nil {
		return err
	}
	if o.target == "" {
		o.target = "virtual"
	}
	if o.target != "virtual" {
		// Check the flag before anything is written to the station's log.
		if _, err := fixtures.ParseSpec(o.target); err != nil {
			return usageErr("--target: %v", err)
		}
	} else if o.targetKind != "" && o.targetKind != evidence.TargetVirtual {
		return usageErr("--target-kind %s: --target virtual is the virtual board", o.targetKind)
	}
	if _, err := provisioning.ResolveTarget(o.targetKind, nil); err != nil {
		return usageErr("--target-kind: %v", err)
	}
	log, closeLog, err := openStationLog(ctx, o)
	if err != nil {
		return err
	}
	defer closeLog()
	r, rel, err := loadRecipeAndRelease(ctx, o, o.recipePath, log)
	if err != nil {
		return err
	}
	board, closeBoard, err := openTarget(ctx, r.Chip, rel.TableOffset, o)
	if err != nil {
		return err
	}
	defer closeBoard()
	res, err := provision(ctx, stdio, o, r, rel, board, log)
	if res != nil && res.Plan != nil && o.dryRun && err == nil {
		if o.jsonOut {
			return writeJSON(stdio.Out, res.Plan)
		}
		return provisioning.WritePlan(stdio.Out, res.Plan)
	}
	return err
}

// openTarget opens the board a run talks to. A virtual board runs a
// bootloader built with tableOffset as its CONFIG_PARTITION_TABLE_OFFSET
// (the release's: a real board's bootloader has it compiled in).
func openTarget(ctx context.Context, c chip.Chip, tableOffset uint32, o runOptions) (provisioning.Board, func(), error) {
	if o.target == "virtual" {
		if err := virtualModels(c); err != nil {
			return nil, nil, usageErr("--target virtual: the recipe is for %s: %v", c.Arg(), err)
		}
		cfg := o.virtualConfig(c)
		cfg.StateDir = o.boardState
		cfg.PartitionTableOffset = tableOffset
		var err error
		if cfg.Faults, err = virtual.ParseFaults(o.faults); err != nil {
			return nil, nil, usageErr("--faults: %v", err)
		}
		if o.macText != "" {
			hw, err := net.ParseMAC(o.macText)
			if err != nil || len(hw) != 6 {
				return nil, nil, usageErr("--mac %q: want aa:bb:cc:dd:ee:ff", o.macText)
			}
			copy(cfg.MAC[:], hw)
		}
		b, err := sim.New(cfg)
		if err != nil {
			return nil, nil, linkErr(err)
		}
		return b, func() { b.Close() }, nil
	}
	// Anything else names a link: a serial port (path, usb-serial:…, usb:VID:PID,
	// usb-location:…), socket://HOST:PORT (tcp:// is the same), rfc2217://….
	spec := o.target
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second) // opening only
	defer cancel()
	link, err := (&fixtures.Opener{}).Open(ctx, spec)
	if err != nil {
		var se *fixtures.SpecError
		if errors.As(err, &se) {
			return nil, nil, usageErr("--target: %v", err)
		}
		return nil, nil, linkErr(fmt.Errorf("run: %w", err))
	}
	r, err := fixtures.Resetter(o.reset, link, fixtures.Pins{})
	if err != nil {
		link.Close()
		return nil, nil, usageErr("--reset: %v", err)
	}
	return &fixtures.Board{Link: link, Resetter: r}, func() { link.Close() }, nil
}

// virtualModels reports whether the virtual board models chip c (it needs
// a model of the chip's eFuse controller); the error names the chips it
// does model.
func virtualModels(c chip.Chip) error {
	if c.Efuse != nil || c.ClassicEfuse != nil {
		return nil
	}
	var names []string
	for _, m := range chip.All() {
		if m.Efuse != nil || m.ClassicEfuse != nil {
			names = append(names, m.Arg())
		}
	}
	return fmt.Errorf("the virtual board models %s, not %s", strings.Join(names, ", "), c.Arg())
}

// provision runs the flow with the CLI's progress, prompt and result
// rendering, mapping errors to exit codes.
func provision(ctx context.Context, stdio Stdio, o runOptions, r *recipe.Recipe, rel *provisioning.Release, board provisioning.Board, log *audit.Log) (*provisioning.Result, error) {
	if err := os.MkdirAll(o.data, 0o755); err != nil {
		return nil, usageErr("--data: %v", err)
	}
	op := operatorOf(o)
	var stub []byte
	if o.stubPath != "" {
		var err error
		if stub, err = readInputContext(ctx, "--stub", o.stubPath, maxStubFile); err != nil {
			return nil, err
		}
	}
	// What is behind the link is the board's own word (an in-process
	// virtual board) or the station's (--target-kind), never the spelling
	// of the port (provisioning.ResolveTarget).
	cfg := provisioning.Config{Recipe: r, Release: rel, DataDir: o.data, Station: o.station, Slot: o.slot, Operator: op,
		Target: o.targetKind, Lot: o.lot, SerialNo: o.serial, Software: "fuseline", Baud: o.baud, Stub: stub, DryRun: o.dryRun}
	if p, ok := board.(provisioning.Probe); ok {
		cfg.Probe = p
	}
	cfg.DialSubdevice = dialSubdevice(o)
	if log != nil {
		cfg.Audit = log
	}
	pr := newProgress(stdio.Out, o.jsonOut)
	cfg.Progress = pr.event
	if !o.yes && !o.dryRun {
		cfg.Approve = func(ctx context.Context, p *provisioning.RunPlan) error {
			pr.pause()
			defer pr.resume()
			return prompt(stdio, p)
		}
	}
	res, err := provisioning.Run(ctx, board, cfg)
	pr.done()
	if o.dryRun && err == nil {
		return res, nil
	}
	if o.jsonOut {
		_ = writeJSON(stdio.Out, res)
	} else if res.Record != nil {
		fmt.Fprintln(stdio.Out)
		_ = evidence.WriteSummary(stdio.Out, res.Record)
		fmt.Fprintf(stdio.Out, "Evidence: %s\n", res.EvidencePath)
		if res.EscrowPath != "" {
			fmt.Fprintf(stdio.Out, "Escrowed key: %s\n", res.EscrowPath)
		}
	}
	if err == nil {
		return res, nil
	}
	switch {
	case errors.Is(err, provisioning.ErrLink):
		return res, linkErr(err)
	case errors.Is(err, provisioning.ErrConflict), errors.Is(err, provisioning.ErrVerify), errors.Is(err, provisioning.ErrNotApproved),
		errors.Is(err, provisioning.ErrJournal), errors.Is(err, provisioning.ErrIntake):
		return res, failErr(err)
	case errors.Is(err, context.Canceled):
		return res, failErr(fmt.Errorf("run: stopped: %w (run again to resume)", err))
	}
	return res, failErr(err)
}

// dialSubdevice opens a recipe sub-device's link: virtual:NAME is a virtual
// board of this process, kept beside the main board's state when there is
// one; tcp:// links are dialed by the library.
func dialSubdevice(o runOptions) provisioning.SubdeviceDialer {
	return func(ctx context.Context, sd recipe.Subdevice) (provisioning.Board, func(), error) {
		name, ok := sd.Virtual()
		if !ok {
			return provisioning.DialSubdevice(ctx, sd)
		}
		cfg := o.virtualConfig(sd.Chip)
		if o.boardState != "" {
			cfg.StateDir = filepath.Join(o.boardState, "subdevices", name)
		}
		b, err := sim.New(cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("run: sub-device %s: %w", sd.Name, err)
		}
		return b, func() { b.Close() }, nil
	}
}

// prompt shows the plan and asks the operator to type the board's MAC
// tail to burn it. Only the CLI prompts; the library takes the answer as
// Config.Approve's result.
func prompt(stdio Stdio, p *provisioning.RunPlan) error {
	if err := provisioning.WritePlan(stdio.Out, p); err != nil {
		return err
	}
	if stdio.In == nil {
		return errors.New("no terminal to ask on; use --yes to approve in advance")
	}
	fmt.Fprintf(stdio.Out, "Burn these eFuses into %s? This cannot be undone. Type yes: ", p.Device)
	line, err := bufio.NewReader(stdio.In).ReadString('\n')
	if err != nil && line == "" {
		return fmt.Errorf("no answer (%v); use --yes to approve in advance", err)
	}
	if strings.TrimSpace(strings.ToLower(line)) != "yes" {
		return errors.New("the operator did not type yes")
	}
	return nil
}

// progress renders events: progress bars on a terminal, one line per
// event otherwise, or JSON lines.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	json     bool
	tty      bool
	paused   bool
	lastLine bool // a bar line is open (no newline yet)
	lastDraw time.Time
}

func newProgress(w io.Writer, jsonOut bool) *progress {
	return &progress{w: w, json: jsonOut, tty: isTerminal(w)}
}

func (p *progress) pause()  { p.mu.Lock(); p.endLine(); p.paused = true; p.mu.Unlock() }
func (p *progress) resume() { p.mu.Lock(); p.paused = false; p.mu.Unlock() }
func (p *progress) done()   { p.mu.Lock(); p.endLine(); p.mu.Unlock() }

func (p *progress) endLine() {
	if p.lastLine {
		fmt.Fprintln(p.w)
		p.lastLine = false
	}
}

func (p *progress) event(e provisioning.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		return
	}
	if p.json {
		_ = writeJSONLine(p.w, e)
		return
	}
	name := string(e.Phase)
	if e.Step != "" {
		name += " " + e.Step
	}
	switch e.Kind {
	case provisioning.EventProgress:
		if e.Total <= 0 {
			return
		}
		if !p.tty {
			// One line per region is enough on a log: the start and the end.
			if e.Done != e.Total {
				return
			}
			fmt.Fprintf(p.w, "%-10s %-18s %s\n", e.Phase, e.Region, amountText(e))
			return
		}
		if time.Since(p.lastDraw) < 50*time.Millisecond && e.Done != e.Total {
			return
		}
		p.lastDraw = time.Now()
		fmt.Fprintf(p.w, "\r%-10s %-18s %s %s\x1b[K", e.Phase, e.Region, barText(e.Done, e.Total), amountText(e))
		p.lastLine = true
	case provisioning.EventBegin:
		if p.tty {
			p.endLine()
			fmt.Fprintf(p.w, "%s ...", name)
			p.lastLine = true
			return
		}
		fmt.Fprintf(p.w, "%s: begin\n", name)
	case provisioning.EventEnd:
		if p.tty {
			p.endLine()
		}
		msg := e.Result
		if e.Message != "" {
			msg += ": " + e.Message
		}
		fmt.Fprintf(p.w, "%s: %s\n", name, msg)
	case provisioning.EventInfo:
		p.endLine()
		fmt.Fprintf(p.w, "%s: %s\n", name, e.Message)
	}
}

// amountText is "done/total" of a progress event: byte sizes and the rate
// for a transfer (an event with a rate), plain counts otherwise (eFuse
// blocks, steps).
func amountText(e provisioning.Event) string {
	if e.Rate <= 0 {
		return fmt.Sprintf("%d/%d", e.Done, e.Total)
	}
	return fmt.Sprintf("%s/%s%s", byteText(e.Done), byteText(e.Total), rateText(e.Rate))
}

// byteText renders a byte count for a progress line.
func byteText(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// rateText renders a transfer rate, "" when unknown.
func rateText(bps float64) string {
	if bps <= 0 {
		return ""
	}
	return fmt.Sprintf(", %s/s", byteText(int64(bps)))
}

// writeJSONLine writes v as one JSON line.
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
