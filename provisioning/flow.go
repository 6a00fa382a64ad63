package provisioning

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"fuseline/esp/chip"
	"fuseline/esp/efuse"
	"fuseline/esp/flashenc"
	"fuseline/esp/loader"
	"fuseline/esp/secureboot"
	"fuseline/flasher"
	"fuseline/provisioning/journal"
	"fuseline/provisioning/recipe"
	"fuseline/reports/audit"
	"fuseline/reports/evidence"
)

// DefaultBaud is the rate the flow switches the link to after connecting.
const DefaultBaud = 921600

// Config is one board's run. Recipe and Release are required; every other
// field has a working zero value. Run never modifies it.
type Config struct {
	Recipe  *recipe.Recipe
	Release *Release // from Intake

	// DataDir is the station data directory: journal/, evidence/, the audit
	// log and station key; "" means "fuseline-data".
	DataDir string
	// Station, Slot and Operator name who ran the board where; "" means
	// "station", "slot0" and "operator".
	Station, Slot, Operator string
	// OperatorAuthenticated says the station authenticated the operator
	// (badge, login); otherwise the evidence says the name was taken as
	// given.
	OperatorAuthenticated bool
	// Target is what is behind the board's link, for the evidence:
	// evidence.TargetBoard, TargetVirtual or TargetQEMU. "" takes the
	// board's own word (TargetKind), else a real board (ResolveTarget). It
	// decides how board-side checks are recorded: observed on a real board,
	// modelled on anything else.
	Target string
	// Lot and SerialNo go into the evidence record.
	Lot, SerialNo string
	// Software is the station software version for the evidence.
	Software string

	// Baud is the link rate after connecting; 0 means DefaultBaud.
	Baud int
	// Stub is an esptool flasher-stub JSON to upload after connecting
	// (compressed chip-encrypted writes need it); nil stays with the ROM
	// loader.
	Stub []byte
	// Probe is the fixture's SPI flash probe; nil: none.
	Probe Probe
	// DialSubdevice opens the links to the recipe's sub-devices; nil:
	// DialSubdevice (tcp:// links only).
	DialSubdevice SubdeviceDialer

	// DryRun makes the plan and stops before anything is written.
	DryRun bool
	// Approve is asked once, with the plan, before the first irreversible
	// step; an error stops the run (wrapped in ErrNotApproved). nil means
	// the caller approved every step in advance (fuseline run --yes).
	Approve func(ctx context.Context, p *RunPlan) error

	// Audit receives one record per step; nil: no audit records (the
	// evidence is then not signed and carries no inclusion proof).
	Audit *audit.Log
	// Progress receives events; nil: none.
	Progress func(Event)
	// Log receives debug records; nil: discard.
	Log *slog.Logger
	// Rand is the source of the per-device flash key; nil: crypto/rand.
	Rand io.Reader
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// RunPlan is what a run will do to a board, for --dry-run and approval:
// the eFuse burns and the flash regions.
type RunPlan struct {
	Device  string       `json:"device"`
	Chip    string       `json:"chip"`
	Recipe  string       `json:"recipe"`
	Release string       `json:"release"`
	Efuse   *Plan        `json:"efuse"`
	Regions []RegionPlan `json:"regions"`
	// Subdevices are the signed release's images for devices behind the
	// board, written after the board's own regions are verified and before
	// the lock.
	Subdevices []SubdevicePlan `json:"subdevices,omitempty"`
	// Flash says whether the regions are written in this run (false when an
	// earlier run already wrote and verified them).
	Flash bool `json:"flash"`
}

// SubdevicePlan is one sub-device image a run writes.
type SubdevicePlan struct {
	Device string `json:"device"` // the recipe's name for it
	Chip   string `json:"chip"`
	Link   string `json:"link"` // tcp://HOST:PORT or virtual:NAME
	File   string `json:"file"`
	Offset uint32 `json:"offset"`
	Size   int64  `json:"size"`
}

// RegionPlan is one flash region a run writes.
type RegionPlan struct {
	Role      string `json:"role"`
	File      string `json:"file"`
	Offset    uint32 `json:"offset"`
	Size      int    `json:"size"`
	Encrypted bool   `json:"encrypted"`
	Mode      string `json:"mode"` // host-encrypted, chip-encrypted or plain
}

// Result is what a run did.
type Result struct {
	Verdict string `json:"verdict"` // evidence.PASS, FAIL or REFUSED; "" for a dry run
	Code    string `json:"code,omitempty"`
	Reason  string `json:"reason,omitempty"`
	MAC     string `json:"mac,omitempty"`
	// Resumed: an earlier run on this board was completed by this one.
	Resumed bool `json:"resumed,omitempty"`
	// AlreadyProvisioned: the board was already finished with this recipe;
	// it was verified and nothing was burned or written.
	AlreadyProvisioned bool     `json:"already_provisioned,omitempty"`
	Plan               *RunPlan `json:"plan,omitempty"`
	// Burned lists the burn steps that burned something in this run.
	Burned       []string         `json:"burned"`
	Record       *evidence.Record `json:"-"`
	EvidencePath string           `json:"evidence,omitempty"`
	EscrowPath   string           `json:"escrow,omitempty"`
	Phases       []PhaseTime      `json:"phases"`
	Total        time.Duration    `json:"total"`
	// BytesSent and BytesReceived crossed the link; LinkTime is what the
	// sent bytes alone need on the wire at the rates they were sent at.
	BytesSent     int64         `json:"bytes_sent"`
	BytesReceived int64         `json:"bytes_received"`
	LinkTime      time.Duration `json:"link_time"`
	// Writes counts the host's writes to the link, one per command frame
	// (data blocks included). Each waits for an answer, so on a line each
	// also pays the fixture link's latency: a USB adapter passes data on
	// in 1 ms frames.
	Writes int64 `json:"writes"`
	// PayloadBytes are the region bytes handed to the loader (compressed
	// size where compressed).
	PayloadBytes int64  `json:"payload_bytes"`
	Baud         int    `json:"baud"`
	BootLog      string `json:"boot_log,omitempty"`
}

// Journal record kinds.
const (
	recRunStart = "run.start"
	recAssign   = "assign"
	recKey      = "key"
	recBefore   = "snapshot.before"
	recAfter    = "snapshot.after"
	recBegin    = "step.begin"
	recEnd      = "step.end"
	recRunEnd   = "run.end"
	// recKeyDestroyed: the device key was destroyed on purpose (DestroyKey);
	// the unfinished run can no longer be resumed.
	recKeyDestroyed = "key.destroyed"
)

type runStartData struct {
	Recipe    string `json:"recipe_sha256"`
	Name      string `json:"recipe_name"`
	Release   string `json:"release"`
	WriteMode string `json:"write_mode"`
}

type keyData struct {
	Digest string `json:"digest"` // SHA-256 of the key, hex; never the key
}

type verifyData struct {
	KeyDigest string `json:"key_digest"`
}

// burnData is a burn step's step.begin record.
type burnData struct {
	Fields []string `json:"fields"`
	Repair []int    `json:"repair"`
}

// settledData is the step.end of a burn step an earlier run began and this
// run found completed on the board.
type settledData struct {
	ByRun       string `json:"by_run"`
	Established string `json:"established"`
}

// run is one board's run in progress.
type run struct {
	cfg  Config
	stub evidence.Digest // of the flasher stub uploaded, if any
	r    *recipe.Recipe
	rel  *Release
	now  func() time.Time
	log  *slog.Logger
	slot string
	// target is the run's target (ResolveTarget, then LinkTarget once
	// the link has answered), which decides how its board-side checks
	// were established.
	target    string
	linkAsked bool // the link was asked what is behind it (learnTarget)

	raw  Board
	l    *link
	b    Board
	sess *flasher.Session
	info flasher.Info
	// ident is what the first connect learned (revision, flash ID), before
	// secure download mode hides it.
	ident      flasher.Info
	identified bool

	res    *Result
	start  time.Time
	runID  string
	mac    string // aa:bb:cc:dd:ee:ff
	device string // journal name

	j      *journal.Journal
	js     journalState
	key    []byte
	kb     [][32]byte
	plan   *Plan
	img    *efuse.Image // the current read view
	cipher flashenc.Cipher

	phaseDur map[Phase]time.Duration
	cur      Phase // the phase and step under way, for progress events
	curStep  string
	steps    []evidence.Step
	checks   []evidence.Check
	regions  []*region
	// subImages are the sub-device images written, for the evidence.
	subImages []evidence.Image
	before    *evidence.EfuseSnapshot
	after     *evidence.EfuseSnapshot
	keySaved  bool
	bootLog   string
}

// region is one release image as written.
type region struct {
	im       *Image
	mode     string
	expected []byte // what flash must hold: ciphertext where encrypted
	res      *flasher.WriteResult
	// md5 is the flash MD5 read by this run before the lock (a resumed
	// run's re-check), nil when not read.
	md5 *[16]byte
}

// Run provisions one board: connect, read, plan, burn keys, flash,
// re-verify, lock, read back, check the boot, record (design.md steps 2–8,
// in the order of esp-security-facts.md §6). The release must have passed
// Intake. Every step is journaled before and after it runs; running again
// after a crash or a pulled cable resumes from the board's eFuses and the
// journal and never burns a different value.
//
// The returned Result is never nil. The error says why the run did not
// pass: ErrConflict (refused, nothing burned), ErrNotApproved, ErrVerify,
// ErrJournal or ErrLink (wrapped).
func Run(ctx context.Context, b Board, cfg Config) (*Result, error) {
	x := &run{cfg: cfg, r: cfg.Recipe, rel: cfg.Release, raw: b, res: &Result{Burned: []string{}}, phaseDur: map[Phase]time.Duration{}}
	if x.r == nil || x.rel == nil || b == nil {
		return x.res, errors.New("provisioning: Run needs a recipe, a release that passed intake and a board")
	}
	if err := x.rel.checkLayout(); err != nil {
		return x.res, err
	}
	x.now = cfg.Now
	if x.now == nil {
		x.now = time.Now
	}
	x.log = cfg.Log
	if x.log == nil {
		x.log = slog.New(slog.DiscardHandler)
	}
	x.slot = cfg.Slot
	if x.slot == "" {
		x.slot = "slot0"
	}
	target, err := ResolveTarget(cfg.Target, b)
	if err != nil {
		return x.res, err
	}
	x.target = target
	x.start = x.now()
	x.l, x.b = wrap(b, 115200)
	if x.r.WriteMode == recipe.ChipEncrypted && !cfg.DryRun {
		// Compress the plaintext on the other core while the link is busy
		// connecting and burning keys; the flash phase then finds it ready.
		go x.rel.prepareChipEncrypted()
	}
	err = x.run(ctx)
	x.finish(ctx, err)
	return x.res, err
}

func (x *run) dataDir() string {
	if x.cfg.DataDir == "" {
		return audit.DefaultDir
	}
	return x.cfg.DataDir
}

// evidenceExists reports whether the data directory holds evidence of run
// id.
func (x *run) evidenceExists(id string) bool {
	_, err := os.Lstat(filepath.Join(x.dataDir(), EvidenceDir, id+".json"))
	return err == nil
}

func (x *run) journalDir() string { return filepath.Join(x.dataDir(), "journal") }

func (x *run) emit(e Event) {
	if x.cfg.Progress == nil {
		return
	}
	e.Slot = x.slot
	if e.Time.IsZero() {
		e.Time = x.now()
	}
	x.cfg.Progress(e)
}

// step runs fn as one journaled, timed step of the evidence.
func (x *run) step(phase Phase, name string, fn func() error) error {
	full := string(phase)
	if name != "" {
		full += ":" + name
	}
	t0 := x.now()
	x.cur, x.curStep = phase, name
	x.emit(Event{Phase: phase, Step: name, Kind: EventBegin})
	err := fn()
	t1 := x.now()
	x.phaseDur[phase] += t1.Sub(t0)
	st := evidence.Step{Name: full, Start: t0.UTC(), End: t1.UTC(), Duration: evidence.Duration(t1.Sub(t0)), Result: evidence.StepOK}
	ev := Event{Phase: phase, Step: name, Kind: EventEnd, Result: ResultOK}
	if err != nil {
		st.Result, st.Error = evidence.StepFailed, err.Error()
		ev.Result, ev.Message = ResultFailed, err.Error()
	}
	x.steps = append(x.steps, st)
	x.emit(ev)
	return err
}

func (x *run) skip(phase Phase, name, why string) {
	t := x.now().UTC()
	full := string(phase)
	if name != "" {
		full += ":" + name
	}
	x.steps = append(x.steps, evidence.Step{Name: full, Start: t, End: t, Result: evidence.StepSkipped, Error: why})
	x.emit(Event{Phase: phase, Step: name, Kind: EventEnd, Result: ResultSkipped, Message: why})
}

// check records a check of the run's board: how it was established
// follows from its kind and the run's target (evidence.Establish).
func (x *run) check(name, what string, ok bool, because string) {
	x.checkOn(x.target, name, what, ok, because)
}

// checkOn records a check whose board-side facts came from a board of the
// given target (a sub-device may be virtual behind a real board).
func (x *run) checkOn(target, name, what string, ok bool, because string) {
	c := evidence.Check{Name: name, What: what, Verified: ok}
	if !ok {
		c.Because = because
	}
	c.Established = evidence.Establish(c.Kind(), target)
	x.checks = append(x.checks, c)
}

// journalRec appends a journal record (when the journal is open).
func (x *run) journalRec(kind, step, result, errText string, data any) error {
	if x.j == nil {
		return nil
	}
	var raw json.RawMessage
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return fmt.Errorf("provisioning: journal: %w", err)
		}
		raw = b
	}
	_, err := x.j.Append(journal.Record{Run: x.runID, Kind: kind, Step: step, Result: result, Error: errText, Data: raw})
	return err
}

func (x *run) auditRec(ev audit.Event, result audit.Result, details audit.Details) {
	if err := x.auditFor(x.runID, ev, result, details); err != nil {
		x.log.Warn("audit record not written", "event", ev, "err", err)
	}
}

// auditFor appends an audit record of run (this run's ID, or an earlier
// run's whose work this run found done).
func (x *run) auditFor(run string, ev audit.Event, result audit.Result, details audit.Details) error {
	if x.cfg.Audit == nil || x.mac == "" {
		return nil
	}
	op := x.cfg.Operator
	if op == "" {
		op = "operator"
	}
	_, err := x.cfg.Audit.Append(context.WithoutCancel(context.Background()), audit.Entry{
		Operator: op, Device: x.mac, Run: run, Event: ev, Result: result, Details: details,
	})
	return err
}

// auditIntent records, durably, that the burn step name is about to start:
// if the station dies during the burn, the audit log still shows who set
// out to burn what. A log that cannot take the record stops the step
// before anything is burned.
func (x *run) auditIntent(name string, fields []string, pending *pendingBurn) error {
	if x.cfg.Audit == nil || x.mac == "" {
		return nil
	}
	d := audit.Details{"step": name, "fields": truncate(strings.Join(fields, ","), 256)}
	if pending != nil {
		d["begun_by_run"] = pending.Run
	}
	err := x.auditFor(x.runID, audit.EventEfuseIntent, audit.ResultInfo, d)
	if err == nil {
		err = x.cfg.Audit.Sync(context.WithoutCancel(context.Background()))
	}
	if err != nil {
		return fmt.Errorf("provisioning: audit log: intent to burn %s not recorded, nothing burned: %w", name, err)
	}
	return nil
}

// burnEvent is the audit event that records a burn step's completion.
func burnEvent(name string) audit.Event {
	if name == StepDownload {
		return audit.EventLock
	}
	return audit.EventEfuseBurn
}

// settle records a burn step that an earlier run began and did not see
// finish, now that this run finds it complete on the board (how says from
// what): in the audit log as that run's burn, and in the journal as ended.
func (x *run) settle(name, how string) {
	p, ok := x.js.pending[name]
	if !ok {
		return
	}
	delete(x.js.pending, name)
	d := audit.Details{"step": name, "fields": truncate(strings.Join(p.Fields, ","), 256), "established": how, "observed_by_run": x.runID}
	if err := x.auditFor(p.Run, burnEvent(name), audit.ResultOK, d); err != nil {
		x.log.Warn("audit record not written", "step", name, "err", err)
	}
	_ = x.journalRec(recEnd, name, ResultOK, "", settledData{ByRun: p.Run, Established: how})
}

func (x *run) run(ctx context.Context) error {
	for _, c := range x.rel.Checks {
		// Intake's checks are the host's own (signatures, hashes,
		// versions): computed, whatever board this is.
		c.Established = evidence.Establish(c.Kind(), x.target)
		x.checks = append(x.checks, c)
	}
	// Intake ran before the board was connected (Intake); it is the run's
	// first step in the evidence.
	t := x.start.UTC()
	x.steps = append(x.steps, evidence.Step{Name: string(PhaseIntake), Start: t, End: t, Result: evidence.StepOK})

	if err := x.step(PhaseConnect, "", func() error { return x.connect(ctx) }); err != nil {
		return err
	}
	if err := x.identify(); err != nil {
		return err
	}
	if x.info.SecureDownload {
		return x.locked(ctx)
	}
	if err := x.step(PhaseRead, "", func() error { return x.readEfuses(ctx) }); err != nil {
		return err
	}
	if x.before == nil {
		s, err := x.snapshot(x.img, false)
		if err != nil {
			return err
		}
		x.before = &s
	}
	if err := x.step(PhasePlan, "", x.makePlan); err != nil {
		return err
	}
	rp := x.runPlan()
	x.res.Plan = rp
	if x.cfg.DryRun {
		return nil
	}
	if x.plan.Done() && x.key == nil {
		return x.alreadyDone(ctx)
	}
	if len(x.plan.Irreversible()) > 0 && x.cfg.Approve != nil {
		if err := x.cfg.Approve(ctx, rp); err != nil {
			return fmt.Errorf("%w: %w", ErrNotApproved, err)
		}
	}
	if err := x.beginJournal(); err != nil {
		return err
	}
	for _, s := range x.plan.Steps {
		if s.Phase == PhaseBurnKeys {
			if err := x.burn(ctx, s.Name); err != nil {
				return err
			}
		}
	}
	if rp.Flash {
		if err := x.flash(ctx); err != nil {
			return err
		}
	} else {
		x.prepareRegions(false)
		if err := x.recheckFlash(ctx); err != nil {
			return err
		}
	}
	if err := x.step(PhaseVerify, "", func() error { return x.verify(ctx) }); err != nil {
		return err
	}
	// Sub-devices are written before the lockdown burns: a board whose
	// sub-device fails stops here, nothing more burned (subdevice.go).
	if err := x.subdevices(ctx); err != nil {
		return err
	}
	for _, s := range x.plan.Steps {
		if s.Phase == PhaseLock && s.Name != StepDownload {
			if err := x.burn(ctx, s.Name); err != nil {
				return err
			}
		}
	}
	if err := x.step(PhaseReadback, "", func() error { return x.readback(ctx) }); err != nil {
		return err
	}
	if err := x.burn(ctx, StepDownload); err != nil {
		return err
	}
	return x.bootCheck(ctx)
}

// connect resets the board into the ROM loader and syncs.
func (x *run) connect(ctx context.Context) error {
	if x.sess != nil {
		x.sess = nil
	}
	_ = x.l.setBaud(115200) // the chip's UART starts at its ROM rate after a reset
	baud := x.cfg.Baud
	if baud == 0 {
		baud = DefaultBaud
	}
	// The stub is uploaded by hand: a board in secure download mode (a
	// finished one, or right after the last burn) refuses it, and that is
	// no reason to fail.
	fc := flasher.Config{Chip: x.r.Chip.Arg(), Log: x.log, Progress: x.flasherProgress}
	s, err := flasher.Connect(ctx, x.b, x.b, fc)
	if err != nil {
		if _, ok := errors.AsType[*flasher.ChipMismatchError](err); ok {
			return &ConflictError{Field: "chip", Reason: "the board is not the recipe's chip", Err: err}
		}
		return fmt.Errorf("%w: connect: %w", ErrLink, err)
	}
	if err := x.learnTarget(ctx, s); err != nil {
		return err
	}
	if baud != s.Info().Baud {
		if err := s.ChangeBaud(ctx, baud); err != nil {
			if errors.Is(err, flasher.ErrLinkLost) {
				return fmt.Errorf("%w: change baud to %d: %w", ErrLink, baud, err)
			}
			x.log.Warn("baud change refused, staying at the current rate", "baud", baud, "err", err)
		}
	}
	// The stub goes up at the fast rate: its 8 KiB or so take a tenth of
	// the time they take at 115200.
	if x.cfg.Stub != nil && !s.Info().SecureDownload {
		if err := s.LoadStub(ctx, x.cfg.Stub); err != nil {
			return fmt.Errorf("%w: upload the flasher stub: %w", ErrLink, err)
		}
		x.stub = evidence.SHA256(x.cfg.Stub)
	}
	x.sess, x.info = s, s.Info()
	if !x.identified {
		x.ident, x.identified = x.info, true
	}
	x.res.Baud = max(x.res.Baud, x.info.Baud)
	if x.info.BelowMinRevision() {
		return conflict("chip revision", "%v revision %d.%d is below the %d.%d Fuseline supports", x.info.Chip.Name,
			x.info.Revision/100, x.info.Revision%100, x.info.Chip.MinRevision/100, x.info.Chip.MinRevision%100)
	}
	return nil
}

// flasherProgress forwards the flasher's byte counts (writes, reads,
// verifies, eFuse programs) as progress of the step under way.
func (x *run) flasherProgress(e flasher.Event) {
	switch e.Phase {
	case flasher.PhaseWrite, flasher.PhaseErase, flasher.PhaseVerify, flasher.PhaseRead, flasher.PhaseEfuse:
	default:
		return // reset, sync, detect, stub and baud are not byte counts
	}
	x.emit(Event{Phase: x.cur, Step: x.curStep, Kind: EventProgress, Region: e.Region, Done: e.Done, Total: e.Total, Rate: e.Rate})
}

// identify names the device and opens its journal.
func (x *run) identify() error {
	var mac [6]byte
	known := x.info.MACKnown
	if known {
		mac = x.info.MAC
	} else if d, ok := x.raw.(DeviceID); ok {
		mac, known = d.DeviceMAC()
	}
	if known {
		x.mac = fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5])
		x.device = journal.DeviceName(x.mac)
	} else {
		// Secure download mode hides the MAC: the slot's pointer names the
		// board it was working on.
		d, err := journal.Current(x.journalDir(), x.slot)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrJournal, err)
		}
		if d == "" || len(d) != 12 {
			return fmt.Errorf("%w: the board is in secure download mode, its MAC cannot be read, and slot %s has no board in progress", ErrJournal, x.slot)
		}
		x.device = d
		x.mac = d[0:2] + ":" + d[2:4] + ":" + d[4:6] + ":" + d[6:8] + ":" + d[8:10] + ":" + d[10:12]
	}
	x.res.MAC = x.mac
	// Two runs on one board within a second (a declined plan, then the
	// approved run) would share the ID, and the second would overwrite the
	// first's evidence, which the audit log still names: never reuse one.
	id := evidence.NewID(x.mac, x.start)
	x.runID = id
	for n := 2; x.evidenceExists(x.runID); n++ {
		x.runID = fmt.Sprintf("%s-%d", id, n)
	}
	msg := fmt.Sprintf("%s %s", x.info.Chip.Name, x.mac)
	if x.info.Revision >= 0 {
		msg += fmt.Sprintf(" rev %d.%d", x.info.Revision/100, x.info.Revision%100)
	}
	if x.info.SecureDownload {
		msg += ", secure download mode"
	}
	x.emit(Event{Phase: PhaseConnect, Kind: EventInfo, Message: msg})
	if x.cfg.DryRun {
		recs, err := journal.Load(x.journalDir(), x.device)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrJournal, err)
		}
		x.js = replay(recs)
		if err := x.js.refuseDestroyed(); err != nil {
			return err
		}
		return x.loadKey(nil)
	}
	j, err := journal.Open(x.journalDir(), x.device, x.now)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrJournal, err)
	}
	x.j = j
	x.js = replay(j.Records())
	if err := x.js.refuseDestroyed(); err != nil {
		return err
	}
	if err := x.loadKey(j); err != nil {
		return err
	}
	if x.js.started && !x.js.complete && x.js.recipe != "" && x.js.recipe != x.r.SHA256Hex() {
		return fmt.Errorf("%w: this board's unfinished run used recipe %s…; finish it with that recipe", ErrJournal, x.js.recipe[:12])
	}
	x.res.Resumed = x.js.started && !x.js.complete
	if x.js.before != nil {
		x.before = x.js.before
	}
	return nil
}

// loadKey reads the journaled device key, checking it against its digest.
func (x *run) loadKey(j *journal.Journal) error {
	var key []byte
	var err error
	if j != nil {
		key, err = j.LoadKey(x.sealer())
	} else {
		key, err = journal.LoadKey(x.journalDir(), x.device, x.sealer())
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrJournal, err)
	}
	if key == nil {
		return nil
	}
	if x.js.keyDigest != "" && keyDigest(key) != x.js.keyDigest {
		clear(key)
		return fmt.Errorf("%w: the stored device key does not match the digest the journal recorded", ErrJournal)
	}
	return x.setKey(key)
}

func keyDigest(key []byte) string {
	s := sha256.Sum256(key)
	return hex.EncodeToString(s[:])
}

func (x *run) setKey(key []byte) error {
	kb, err := flashenc.KeyBlocks(x.r.FlashEncryption.Scheme, key)
	if err != nil {
		clear(key)
		return fmt.Errorf("%w: device key: %v", ErrJournal, err)
	}
	c, err := flashenc.New(x.r.FlashEncryption.Scheme, key, 0xF)
	if err != nil {
		clear(key)
		return fmt.Errorf("%w: device key: %v", ErrJournal, err)
	}
	x.key, x.kb, x.cipher = key, kb, c
	return nil
}

// zeroise forgets the device key in memory.
func (x *run) zeroise() {
	clear(x.key)
	for i := range x.kb {
		clear(x.kb[i][:])
	}
	x.key, x.kb, x.cipher = nil, nil, nil
}

// efuseReadTries bounds the whole-state reads readEfuses makes while a
// read contradicts an earlier one.
const efuseReadTries = 3

// readEfuses reads the board's eFuses (every word read until the reads
// agree, flasher.ReadRegStable) and holds them to what eFuse physics
// allows: a bit once read set never reads clear again, unless its block
// has since been read-protected. The earlier state is this run's last
// read (advanced by its burns) or, at a run's first read, the journal's
// latest snapshot. A read that contradicts it is read again; one that
// keeps contradicting fails as a link error, so a spoilt read never
// becomes the evidence's "before" or "after".
func (x *run) readEfuses(ctx context.Context) error {
	var why string
	for try := 1; try <= efuseReadTries; try++ {
		img, err := x.sess.ReadEfuses(ctx)
		if err != nil {
			return fmt.Errorf("%w: read eFuses: %w", ErrLink, err)
		}
		if why = x.cleared(img); why == "" {
			x.img = img
			return nil
		}
		x.log.Warn("eFuse read contradicts an earlier one; reading again", "try", try, "why", why)
	}
	return fmt.Errorf("%w: read eFuses: %s, and eFuse bits never clear: the reads cannot be trusted (%d reads)", ErrLink, why, efuseReadTries)
}

// cleared says which bits img shows clear that an earlier read saw set
// ("" when none).
func (x *run) cleared(img *efuse.Image) string {
	rdDis, _ := img.Get("RD_DIS")
	hidden := func(block int) bool {
		bit := efuse.BlockRdDisBit(img.Chip, block)
		return bit >= 0 && rdDis&(1<<bit) != 0
	}
	if x.img != nil {
		for b := range x.img.Blocks {
			if b >= len(img.Blocks) || hidden(b) {
				continue
			}
			for w, was := range x.img.Blocks[b] {
				if w < len(img.Blocks[b]) && was&^img.Blocks[b][w] != 0 {
					return fmt.Sprintf("BLOCK%d word %d bits 0x%08x read set earlier in this run, clear now", b, w, was&^img.Blocks[b][w])
				}
			}
		}
		return ""
	}
	snap := x.js.after
	if snap == nil {
		snap = x.js.before
	}
	if snap == nil {
		return ""
	}
	names := make([]string, 0, len(snap.Fields))
	for n := range snap.Fields {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if v, err := img.Get(n); err == nil && snap.Fields[n]&^v != 0 {
			return fmt.Sprintf("%s reads %d, the journal's snapshot of an earlier run read %d", n, v, snap.Fields[n])
		}
	}
	for _, k := range snap.KeyBlocks {
		if k.Empty {
			continue
		}
		data, err := img.GetBytes(k.Block)
		readable, _ := img.Readable(k.Block)
		if err == nil && readable && allZero(data) {
			return fmt.Sprintf("%s reads blank, the journal's snapshot of an earlier run read it written", k.Block)
		}
	}
	return ""
}

// makePlan plans the burns. A fresh key is drawn only when the key step
// still has to burn the key and the journal holds none.
func (x *run) makePlan() error {
	in := PlanInput{Recipe: x.r, State: x.img, Assignment: x.js.assign, FlashKey: x.kb, KeyIsOurs: x.js.assign != nil,
		MinSecureVersion: int(x.rel.MinSecureVersion)}
	p, err := NewPlan(in)
	if err != nil && errors.Is(err, ErrJournal) && x.key == nil && !x.js.keyBurnBegun {
		// The key step needs a key: draw one for this device.
		key := make([]byte, x.r.FlashEncryption.Scheme.KeyLen())
		rnd := x.cfg.Rand
		if rnd == nil {
			rnd = rand.Reader
		}
		if _, err := io.ReadFull(rnd, key); err != nil {
			return fmt.Errorf("provisioning: device key: %w", err)
		}
		if err := x.setKey(key); err != nil {
			return err
		}
		in.FlashKey = x.kb
		p, err = NewPlan(in)
	}
	if err != nil {
		return err
	}
	x.plan = p
	x.emit(Event{Phase: PhasePlan, Kind: EventInfo, Message: fmt.Sprintf("%d eFuse steps to burn: %s", len(p.Irreversible()), strings.Join(p.Irreversible(), ", "))})
	return nil
}

func (x *run) writeMode(im *Image) string {
	if !im.Encrypt {
		return "plain"
	}
	return string(x.r.WriteMode)
}

func (x *run) runPlan() *RunPlan {
	rp := &RunPlan{Device: x.mac, Chip: x.r.Chip.Arg(), Recipe: x.r.Name, Release: x.rel.Version, Efuse: x.plan, Flash: !x.js.flashVerified}
	if rp.Recipe == "" {
		rp.Recipe = filepath.Base(x.r.Source.File)
	}
	for i := range x.rel.Images {
		im := &x.rel.Images[i]
		rp.Regions = append(rp.Regions, RegionPlan{Role: im.Role, File: im.File, Offset: im.Offset, Size: len(im.Data), Encrypted: im.Encrypt, Mode: x.writeMode(im)})
	}
	for _, si := range x.rel.Subdevices {
		sp := SubdevicePlan{Device: si.Device, File: si.File, Offset: si.Offset, Size: si.Size}
		if sd, ok := x.r.Subdevice(si.Device); ok {
			sp.Chip, sp.Link = sd.Chip.Arg(), sd.Link
		}
		rp.Subdevices = append(rp.Subdevices, sp)
	}
	return rp
}

// beginJournal records the run's start, the block assignment and the device
// key (in its 0600 file) before anything is burned.
func (x *run) beginJournal() error {
	if err := journal.SetCurrent(x.journalDir(), x.slot, x.device); err != nil {
		return fmt.Errorf("%w: %w", ErrJournal, err)
	}
	if err := x.journalRec(recRunStart, "", "", "", runStartData{Recipe: x.r.SHA256Hex(), Name: x.r.Name, Release: x.rel.Version, WriteMode: string(x.r.WriteMode)}); err != nil {
		return err
	}
	if x.js.assign == nil || !slices.Equal(x.js.assign.FlashKey, x.plan.Assignment.FlashKey) || !slices.Equal(x.js.assign.Digests, x.plan.Assignment.Digests) {
		a := x.plan.Assignment
		if err := x.journalRec(recAssign, "", "", "", a); err != nil {
			return err
		}
		x.js.assign = &a
	}
	if x.key != nil && !x.j.HasKey() {
		if err := x.j.SaveKey(x.key, x.sealer()); err != nil {
			return fmt.Errorf("%w: %w", ErrJournal, err)
		}
		if err := x.journalRec(recKey, "", "", "", keyData{Digest: keyDigest(x.key)}); err != nil {
			return err
		}
		x.js.keyDigest = keyDigest(x.key)
	}
	x.keySaved = x.key != nil
	if !x.js.haveBefore && x.before != nil {
		if err := x.journalRec(recBefore, "", "", "", x.before); err != nil {
			return err
		}
		x.js.haveBefore = true
	}
	// A run whose audit log cannot take its start does not start: no
	// board is burned or written without its trail (IEC 62443 CR 2.9).
	if err := x.auditFor(x.runID, audit.EventRunStart, audit.ResultInfo, audit.Details{"recipe_sha256": x.r.SHA256Hex(), "release": x.rel.Version, "slot": x.slot}); err != nil {
		return fmt.Errorf("provisioning: audit log: the run's start not recorded, nothing burned or written: %w", err)
	}
	// Intake ran before the board was known; its result belongs to this run.
	intake := audit.Details{"release": x.rel.Version, "images": fmt.Sprint(len(x.rel.Images)), "checks": fmt.Sprint(len(x.rel.Checks))}
	if x.rel.ManifestSHA256 != ([32]byte{}) {
		intake["manifest_sha256"] = hex.EncodeToString(x.rel.ManifestSHA256[:])
	}
	if err := x.auditFor(x.runID, audit.EventIntake, audit.ResultOK, intake); err != nil {
		return fmt.Errorf("provisioning: audit log: the release's intake not recorded, nothing burned or written: %w", err)
	}
	return nil
}

// burn runs one burn step: re-planned against the board as read now (so a
// resumed run burns only what is missing, with the same values), journaled
// before and after, read back and checked.
func (x *run) burn(ctx context.Context, name string) error {
	p, err := NewPlan(PlanInput{Recipe: x.r, State: x.img, Assignment: &x.plan.Assignment, FlashKey: x.kb, KeyIsOurs: true,
		MinSecureVersion: int(x.rel.MinSecureVersion)})
	if err != nil {
		return err
	}
	s := p.Step(name)
	phase := s.Phase
	if s.Skip != "" {
		// The step asks for nothing: there is nothing to read back either.
		x.skip(phase, name, s.Skip)
		return nil
	}
	if s.Done() {
		x.skip(phase, name, "already burned: the board holds it")
		x.check(evidence.CheckEfuseReadback+":"+name, "eFuses of step "+name+" read back as planned", true, "")
		x.settle(name, "eFuse read-back")
		return nil
	}
	return x.step(phase, name, func() error {
		var fields []string
		for _, pr := range s.Burn.Programs {
			fields = append(fields, pr.Fields...)
		}
		if err := x.journalRec(recBegin, name, "", "", burnData{Fields: fields, Repair: s.Repair}); err != nil {
			return err
		}
		// An earlier run that began this step may have burned part of it:
		// its fields belong to the completion this run records.
		var earlier *pendingBurn
		if p, ok := x.js.pending[name]; ok {
			earlier = &p
			for _, f := range p.Fields {
				if !slices.Contains(fields, f) {
					fields = append(fields, f)
				}
			}
		}
		if err := x.auditIntent(name, fields, earlier); err != nil {
			_ = x.journalRec(recEnd, name, ResultFailed, err.Error(), nil)
			return err
		}
		done := audit.Details{"step": name, "fields": truncate(strings.Join(fields, ","), 256)}
		if earlier != nil {
			done["begun_by_run"] = earlier.Run
			delete(x.js.pending, name)
		}
		blocks := efuse.Blocks(x.r.Chip.ID)
		var progs []flasher.BlockProgram
		for _, pr := range s.Burn.Programs {
			bp := flasher.ProgramFrom(pr, blocks[pr.Block].Words)
			bp.Lockdown = s.Lockdown && pr.Block == 0
			progs = append(progs, bp)
		}
		err := x.sess.BurnBlocks(ctx, progs)
		if s.Lockdown && errors.Is(err, flasher.ErrLinkClosedByLockdown) {
			err = nil
		}
		if err != nil {
			_ = x.journalRec(recEnd, name, ResultFailed, err.Error(), nil)
			x.check(evidence.CheckEfuseReadback+":"+name, "eFuses of step "+name+" read back as planned", false, err.Error())
			done["error"] = truncate(err.Error(), 256)
			if be, ok := errors.AsType[*flasher.EfuseBurnError](err); ok && be.Err == nil {
				// Every attempt programmed, and bits are still missing.
				x.auditRec(burnEvent(name), audit.ResultFail, done)
				return fmt.Errorf("%w: burn %s: %w", ErrVerify, name, be)
			}
			// The link failed: what was burned is unknown until a re-run
			// reads the board (settle).
			x.auditRec(burnEvent(name), audit.ResultAborted, done)
			return fmt.Errorf("%w: burn %s: %w", ErrLink, name, err)
		}
		x.res.Burned = append(x.res.Burned, name)
		if s.Lockdown {
			return x.confirmLockdown(ctx, name, done)
		}
		// BurnBlocks read every block back after programming it and checked
		// the controller's error registers; the board now reads as the plan
		// says, so the state is advanced without reading all blocks again
		// (the read-back phase reads everything before the last burn).
		next := x.img.Clone()
		if err := efuse.Apply(next, s.Burn); err != nil {
			return fmt.Errorf("provisioning: %s: %w", name, err)
		}
		view, err := next.ReadView()
		if err != nil {
			return fmt.Errorf("provisioning: %s: %w", name, err)
		}
		for _, blk := range next.Blocks {
			clear(blk)
		}
		x.img = view
		x.check(evidence.CheckEfuseReadback+":"+name, "eFuses of step "+name+": every programmed block read back equal to its program data, controller error registers clear", true, "")
		x.auditRec(audit.EventEfuseBurn, audit.ResultOK, done)
		return x.journalRec(recEnd, name, ResultOK, "", nil)
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// confirmLockdown reconnects after the last burn: secure download mode must
// now be on (or the loader gone, for download disabled). done is the audit
// record's details.
//
// The burn's lost link is expected (the reload cuts the loader off), but a
// power cut or a pulled cable before the program command loses the link
// the same way. A loader that still answers with its registers open says
// which: the lockdown field reads 0 when the burn never took place (a link
// fault: run again), 1 when it did and the chip ignores it (the board
// failed).
func (x *run) confirmLockdown(ctx context.Context, name string, done audit.Details) error {
	err := x.connect(ctx)
	field := efuse.SecureDownloadField(x.r.Chip.ID)
	if x.r.Lockdown.Download == recipe.DownloadDisabled {
		field = efuse.DownloadDisableField(x.r.Chip.ID)
	}
	fail := func(why string, cause error) error {
		_ = x.journalRec(recEnd, name, ResultFailed, why, nil)
		done["error"] = truncate(why, 256)
		if cause == nil {
			cause = x.lockdownNotBurned(ctx, field)
		}
		switch {
		case cause == nil:
			x.auditRec(audit.EventLock, audit.ResultFail, done)
			return fmt.Errorf("%w: %s", ErrVerify, why)
		case errors.Is(cause, ErrLink):
			x.auditRec(audit.EventLock, audit.ResultAborted, done)
		default:
			x.auditRec(audit.EventLock, audit.ResultFail, done)
		}
		return cause
	}
	switch x.r.Lockdown.Download {
	case recipe.DownloadDisabled:
		ok := err != nil && errors.Is(err, ErrLink)
		x.check(evidence.CheckLockdown+":download", "the ROM download mode no longer answers after "+field, ok, "the loader still answers")
		if !ok {
			if err != nil { // not a lost link: the connect refused the board
				return fail(err.Error(), err)
			}
			return fail("download mode still answers after "+name, nil)
		}
		x.info.SecureDownload = false
	default:
		if err != nil {
			return fail(err.Error(), err)
		}
		ok := x.info.SecureDownload && x.info.Security.Flags&loader.FlagSecureDownloadEnable != 0
		x.check(evidence.CheckLockdown+":download", "GET_SECURITY_INFO reports secure download mode after ENABLE_SECURITY_DOWNLOAD", ok, "the loader does not report secure download mode")
		if !ok {
			return fail("secure download mode is not on after "+name, nil)
		}
	}
	if x.after != nil {
		x.after.Fields[field] = 1
		if x.r.Lockdown.Download != recipe.DownloadDisabled {
			// The read-back was before this burn; the board may have
			// changed since (a second station on it).
			if err := x.checkAfter(x.after, x.info.Security); err != nil {
				return fail(err.Error(), err)
			}
		}
		_ = x.journalRec(recAfter, "", "", "", x.after)
	}
	done["download"] = string(x.r.Lockdown.Download)
	x.auditRec(audit.EventLock, audit.ResultOK, done)
	return x.journalRec(recEnd, name, ResultOK, "", nil)
}

// lockdownNotBurned reads the lockdown field from a board whose loader
// still answers after the lockdown burn: an ErrLink error when the field
// is not burned (or cannot be read), so the run is a link fault a re-run
// completes; nil when it is burned.
func (x *run) lockdownNotBurned(ctx context.Context, field string) error {
	if x.sess == nil || x.info.SecureDownload {
		return nil
	}
	if err := x.readEfuses(ctx); err != nil {
		return err
	}
	if v, err := x.img.Get(field); err == nil && v == 0 {
		return fmt.Errorf("%w: the link was lost before %s was burned (it reads 0): run again", ErrLink, field)
	}
	return nil
}

// prepareRegions computes what each region must hold in flash.
func (x *run) prepareRegions(needKey bool) error {
	x.regions = nil
	for i := range x.rel.Images {
		im := &x.rel.Images[i]
		rg := &region{im: im, mode: x.writeMode(im)}
		if im.Encrypt {
			if x.cipher == nil {
				if needKey {
					return fmt.Errorf("%w: the device key is needed to write %s but is not available", ErrJournal, im.File)
				}
			} else {
				pt := padTo(im.Data, 16)
				ct := make([]byte, len(pt))
				if err := x.cipher.Encrypt(ct, pt, im.Offset); err != nil {
					return fmt.Errorf("provisioning: encrypt %s: %w", im.File, err)
				}
				rg.expected = ct
			}
		} else {
			rg.expected = im.Data
		}
		x.regions = append(x.regions, rg)
	}
	return nil
}

func padTo(b []byte, n int) []byte {
	if len(b)%n == 0 {
		return b
	}
	out := make([]byte, (len(b)+n-1)/n*n)
	copy(out, b)
	for i := len(b); i < len(out); i++ {
		out[i] = 0xFF
	}
	return out
}

// flash writes every region: ciphertext (host-encrypted), plaintext with
// the loader's encrypted-write flag (chip-encrypted), or plaintext.
func (x *run) flash(ctx context.Context) error {
	if err := x.prepareRegions(true); err != nil {
		return err
	}
	return x.writeRegions(ctx, x.regions, false)
}

// recheckFlash is a resumed run's flash check before any lock step: the
// journal says an earlier run wrote and verified flash, but the board may
// have lost or changed it since (a part that was never persisted, a
// rework). Every region whose MD5 is not the expected bytes' is written
// again now, while download mode, register access and the key still
// allow it; after the lock a wrong flash can only fail the boot check.
func (x *run) recheckFlash(ctx context.Context) error {
	var stale []*region
	err := x.step(PhaseVerify, "resume-recheck", func() error {
		for _, rg := range x.regions {
			if rg.expected == nil {
				continue // no key to compute it: verify says so
			}
			got, err := x.sess.FlashMD5(ctx, rg.im.Offset, uint32(len(rg.expected)))
			if err != nil {
				return fmt.Errorf("%w: MD5 of %s@0x%x: %w", ErrLink, rg.im.Role, rg.im.Offset, err)
			}
			if got == md5.Sum(rg.expected) {
				rg.md5 = &got
			} else {
				stale = append(stale, rg)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(stale) == 0 {
		x.skip(PhaseFlash, "", "written and verified by an earlier run of this journal; its MD5 re-checked before the lock")
		return nil
	}
	var names []string
	for _, rg := range stale {
		names = append(names, fmt.Sprintf("%s@0x%x", rg.im.Role, rg.im.Offset))
	}
	x.emit(Event{Phase: PhaseFlash, Kind: EventInfo, Message: "flash no longer holds what an earlier run verified, written again: " + strings.Join(names, ", ")})
	return x.writeRegions(ctx, stale, true)
}

// writeRegions writes rgs. raw writes every region as the bytes flash must
// hold (ciphertext where encrypted, computed with the device key): a
// resumed run's rewrite, which must work even after
// DIS_DOWNLOAD_MANUAL_ENCRYPT turned the loader's encrypted writes off.
func (x *run) writeRegions(ctx context.Context, rgs []*region, raw bool) error {
	for _, rg := range rgs {
		name := fmt.Sprintf("%s@0x%x", rg.im.Role, rg.im.Offset)
		err := x.step(PhaseFlash, name, func() error {
			if err := x.journalRec(recBegin, "flash:"+name, "", "", nil); err != nil {
				return err
			}
			r := flasher.Region{Name: rg.im.Role, Offset: rg.im.Offset}
			switch {
			case raw && rg.im.Encrypt:
				r.Data, r.NoImageCheck = rg.expected, true
				rg.mode = string(recipe.HostEncrypted)
			case rg.mode == string(recipe.HostEncrypted):
				r.Data, r.NoImageCheck = rg.expected, true
			case rg.mode == string(recipe.ChipEncrypted):
				var err error
				if r.Data, r.Deflated, err = rg.im.chipEncrypted(); err != nil {
					return fmt.Errorf("provisioning: compress %s: %w", name, err)
				}
				r.ChipEncrypt = true
			default:
				r.Data = rg.im.Data
			}
			res, err := x.sess.WriteRegion(ctx, r)
			rg.res = res
			if res != nil {
				x.res.PayloadBytes += int64(res.WireBytes)
			}
			if err != nil {
				_ = x.journalRec(recEnd, "flash:"+name, ResultFailed, err.Error(), nil)
				if ve, ok := errors.AsType[*flasher.VerifyError](err); ok {
					return fmt.Errorf("%w: %w", ErrVerify, ve)
				}
				return fmt.Errorf("%w: write %s: %w", ErrLink, name, err)
			}
			x.auditRec(audit.EventRegionWritten, audit.ResultOK, audit.Details{"region": name, "mode": rg.mode,
				"written_sha256": fmt.Sprintf("%x", sha256.Sum256(rg.expected))})
			return x.journalRec(recEnd, "flash:"+name, ResultOK, "", nil)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// verify re-checks flash: the MD5 of every region against the expected
// ciphertext, the expected ciphertext decrypted and its Secure Boot
// signatures checked against the digests the board will hold, and the raw
// flash through the fixture's SPI probe where there is one.
func (x *run) verify(ctx context.Context) error {
	var failed []string
	revoked := make([]bool, 3)
	for _, s := range x.r.SecureBoot.Revoke {
		revoked[s] = true
	}
	for _, rg := range x.regions {
		name := fmt.Sprintf("%s@0x%x", rg.im.Role, rg.im.Offset)
		if rg.expected == nil {
			x.check(evidence.CheckFlashMD5+":"+name, "flash MD5 against the expected ciphertext", false, "the device key is not available to compute the expected ciphertext")
			failed = append(failed, name)
			continue
		}
		switch {
		case !x.r.Verify.MD5:
			x.check(evidence.CheckFlashMD5+":"+name, "flash MD5 against the expected ciphertext", false, "the recipe turned MD5 verification off")
		case rg.res != nil && rg.res.Verified && rg.res.Size == len(rg.expected):
			x.check(evidence.CheckFlashMD5+":"+name, fmt.Sprintf("flash MD5 of 0x%x bytes at 0x%x equals the MD5 of the expected bytes (%s), checked after writing", len(rg.expected), rg.im.Offset, rg.mode), rg.res.MD5 == md5.Sum(rg.expected), "the loader's MD5 is of other data")
		case rg.md5 != nil:
			x.check(evidence.CheckFlashMD5+":"+name, fmt.Sprintf("flash MD5 of 0x%x bytes at 0x%x equals the MD5 of the expected bytes (%s), re-checked on resuming", len(rg.expected), rg.im.Offset, rg.mode), *rg.md5 == md5.Sum(rg.expected), "the loader's MD5 is of other data")
		default:
			got, err := x.sess.FlashMD5(ctx, rg.im.Offset, uint32(len(rg.expected)))
			if err != nil {
				return fmt.Errorf("%w: MD5 of %s: %w", ErrLink, name, err)
			}
			ok := got == md5.Sum(rg.expected)
			x.check(evidence.CheckFlashMD5+":"+name, fmt.Sprintf("flash MD5 of 0x%x bytes at 0x%x equals the MD5 of the expected bytes (%s)", len(rg.expected), rg.im.Offset, rg.mode), ok, "flash holds other bytes than the expected ciphertext")
			if !ok {
				failed = append(failed, name)
			}
		}
		if rg.im.Exec && rg.im.Encrypt {
			what := "the expected ciphertext decrypts to the image, whose Secure Boot v2 signature verifies against the digests the board holds"
			switch {
			case !x.r.Verify.DecryptAndVerify:
				x.check(evidence.CheckDecryptedSignature+":"+name, what, false, "the recipe turned decrypt-and-verify off")
			default:
				pt := make([]byte, len(rg.expected))
				err := x.cipher.Decrypt(pt, rg.expected, rg.im.Offset)
				if err == nil && !bytes.Equal(pt[:len(rg.im.Data)], rg.im.Data) {
					err = errors.New("decrypts to other bytes than the release image")
				}
				if err == nil {
					_, err = secureboot.VerifyDigests(pt[:len(rg.im.Data)], x.r.SecureBoot.Digests, revoked)
				}
				ok := err == nil
				why := ""
				if err != nil {
					why = err.Error()
					failed = append(failed, name)
				}
				x.check(evidence.CheckDecryptedSignature+":"+name, what, ok, why)
			}
		}
		switch {
		case x.cfg.Probe == nil && x.r.Verify.SPIProbe:
			x.check(evidence.CheckSPIProbe+":"+name, "raw flash read through the fixture's SPI probe equals what was written", false, "the recipe requires an SPI probe and the fixture has none")
			failed = append(failed, name)
		case x.cfg.Probe == nil:
			x.check(evidence.CheckSPIProbe+":"+name, "raw flash read through the fixture's SPI probe equals what was written", false, "the fixture has no SPI probe")
		default:
			raw, err := x.cfg.Probe.ReadFlash(ctx, rg.im.Offset, len(rg.expected))
			ok := err == nil && bytes.Equal(raw, rg.expected)
			why := "the raw flash differs from the expected ciphertext"
			if err != nil {
				why = "probe read failed: " + err.Error()
			}
			x.check(evidence.CheckSPIProbe+":"+name, "raw flash read through the fixture's SPI probe equals the expected ciphertext (not plaintext)", ok, why)
			if !ok {
				failed = append(failed, name)
			}
		}
		x.auditRec(audit.EventRegionVerified, resultOf(!slices.Contains(failed, name)), audit.Details{"region": name})
	}
	if len(failed) > 0 {
		_ = x.journalRec(recEnd, "verify", ResultFailed, strings.Join(failed, ", "), nil)
		return fmt.Errorf("%w: %s", ErrVerify, strings.Join(failed, ", "))
	}
	if x.key != nil {
		if err := x.journalRec(recEnd, "verify", ResultOK, "", verifyData{KeyDigest: keyDigest(x.key)}); err != nil {
			return err
		}
		x.js.flashVerified = true
	}
	return nil
}

// checkDigestSlots records whether every unused Secure Boot digest slot
// reads back revoked. A slot the recipe keeps open is a check not verified,
// naming the recipe's choice, so the evidence never reads as if it were
// closed. Chips without unused revocable slots get no check.
func (x *run) checkDigestSlots() {
	var unused, open, notRevoked []string
	for _, d := range digestSlots(x.r) {
		if d.State == SlotKey || d.State == SlotUnusedNoRevoke {
			continue
		}
		unused = append(unused, fmt.Sprint(d.Slot))
		if d.State == SlotOpen {
			open = append(open, fmt.Sprint(d.Slot))
		} else if v, err := x.img.Get(efuse.RevokeField(x.r.Chip.ID, d.Slot)); err != nil || v == 0 {
			notRevoked = append(notRevoked, fmt.Sprint(d.Slot))
		}
	}
	if len(unused) == 0 {
		return
	}
	var because []string
	if len(open) > 0 {
		because = append(because, "the recipe keeps unused slot "+strings.Join(open, ", ")+" open (secure_boot.keep_unused_slots_open: true)")
	}
	if len(notRevoked) > 0 {
		because = append(because, "slot "+strings.Join(notRevoked, ", ")+" does not read back revoked")
	}
	why := strings.Join(because, "; ")
	x.check(evidence.CheckLockdown+":digest-slots", "every unused Secure Boot digest slot ("+strings.Join(unused, ", ")+") reads back revoked", why == "", why)
}

func resultOf(ok bool) audit.Result {
	if ok {
		return audit.ResultOK
	}
	return audit.ResultFail
}

// readback reads the final eFuses before the download lockdown (the last
// moment registers can be read): every step but the last must be done, the
// flash key must read as zero.
func (x *run) readback(ctx context.Context) error {
	if err := x.readEfuses(ctx); err != nil {
		return err
	}
	p, err := NewPlan(PlanInput{Recipe: x.r, State: x.img, Assignment: &x.plan.Assignment, KeyIsOurs: true, FlashKey: x.kb,
		MinSecureVersion: int(x.rel.MinSecureVersion)})
	var pending []string
	if err == nil {
		for _, s := range p.Steps {
			if s.Name != StepDownload && !s.Done() {
				pending = append(pending, s.Name)
			}
		}
	}
	why := "steps not in effect: " + strings.Join(pending, ", ")
	if err != nil {
		why = err.Error()
	}
	lockOK := err == nil && len(pending) == 0
	x.check(evidence.CheckLockdown, "final eFuse read-back holds the recipe's encryption, Secure Boot, lockdown, protections, revocations and secure version", lockOK, why)
	x.checkDigestSlots()
	hidden := true
	for _, b := range x.plan.Assignment.FlashKey {
		name := x.keyBlockName(b)
		r, _ := x.img.Readable(name)
		data, _ := x.img.GetBytes(name)
		hidden = hidden && !r && allZero(data)
	}
	x.check(evidence.CheckKeyReadProtected, "the flash-encryption key block(s) read as zero with RD_DIS set", hidden, "a key block is readable")
	stray, serr := x.strayBits(x.img)
	if serr != nil {
		return fmt.Errorf("%w: %w", ErrVerify, serr)
	}
	if len(stray) > 0 {
		lockOK = false
		why = "eFuse bits no step of the plan burns: " + strings.Join(stray, ", ")
		x.check(evidence.CheckEfuseReadback, "final eFuse read-back holds only the before state and the plan's burns", false, why)
		x.auditRec(audit.EventEfuseStray, audit.ResultFail, audit.Details{
			"fields":  truncate(strings.Join(stray, ","), 256),
			"seen_at": "final read-back",
			// The bits appeared during one of these burns (this run's), or
			// during an earlier run's of this board when none is listed.
			"steps": truncate(strings.Join(x.res.Burned, ","), 256),
		})
	}
	s, serr := x.snapshot(x.img, true)
	if serr != nil {
		return serr
	}
	x.after = &s
	if err := x.journalRec(recAfter, "", "", "", s); err != nil {
		return err
	}
	if !lockOK || !hidden {
		return fmt.Errorf("%w: %s", ErrVerify, why)
	}
	return nil
}

func (x *run) keyBlockName(block int) string {
	if x.r.Chip.ID == chip.ESP32 {
		return fmt.Sprintf("BLOCK%d", block)
	}
	return fmt.Sprintf("BLOCK_KEY%d", block-4)
}

// bootCheck resets the board into SPI boot and watches its UART until the
// app runs.
func (x *run) bootCheck(ctx context.Context) error {
	if !x.r.Verify.BootCheck {
		x.check(evidence.CheckBootLog, "the board boots the release", false, "the recipe turned the boot check off")
		x.skip(PhaseBoot, "", "the recipe turned the boot check off")
		return nil
	}
	app := x.factoryApp()
	return x.step(PhaseBoot, "", func() error {
		x.sess = nil
		// ESP-IDF logs at 115200; the host must listen at that rate before
		// the reset, or the ROM banner arrives garbled.
		_ = x.l.setBaud(115200)
		if err := x.l.Reset(ctx, chip.BootSPI); err != nil {
			return fmt.Errorf("%w: reset into SPI boot: %w", ErrLink, err)
		}
		project, version := "", ""
		if app != nil {
			project, version = app.App.ProjectName, app.App.Version
		}
		var ok, bad bool
		var why string
		text, err := readUART(ctx, x.b, x.r.Verify.BootTimeout, func(s string) bool {
			ok, bad, why = bootVerdict(s, project, version)
			return ok || bad
		})
		x.bootLog = text
		x.res.BootLog = text
		if ok {
			x.check(evidence.CheckBootLog, fmt.Sprintf("the boot log reaches app_main of %s %s", project, version), true, "")
			return nil
		}
		if !bad {
			why = fmt.Sprintf("no app banner within %v", x.r.Verify.BootTimeout)
			if err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
				why += ": " + err.Error()
			}
		}
		x.check(evidence.CheckBootLog, fmt.Sprintf("the boot log reaches app_main of %s %s", project, version), false, why)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: boot check: %s", ErrVerify, why)
	})
}

func (x *run) factoryApp() *Image {
	var first *Image
	for i := range x.rel.Images {
		im := &x.rel.Images[i]
		if im.App == nil {
			continue
		}
		if im.Role == "app/factory" {
			return im
		}
		if first == nil {
			first = im
		}
	}
	return first
}
