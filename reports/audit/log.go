package audit

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"fuseline/internal/atomicfile"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"fuseline/reports/syslog"
)

// SyncPolicy says when the log is fsynced.
type SyncPolicy int

const (
	// SyncRunBoundary fsyncs at every run boundary (EventRunStart,
	// EventResult), before every checkpoint, on Sync and on Close. A crash
	// can lose (or tear) only records of runs still in progress, and no
	// checkpoint ever covers a record that is not on disk.
	SyncRunBoundary SyncPolicy = iota
	// SyncEveryRecord fsyncs after every record.
	SyncEveryRecord
)

func (p SyncPolicy) String() string {
	switch p {
	case SyncRunBoundary:
		return "run-boundary"
	case SyncEveryRecord:
		return "every-record"
	}
	return "SyncPolicy(" + strconv.Itoa(int(p)) + ")"
}

// ParseSyncPolicy parses "run-boundary" or "every-record".
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	switch s {
	case "run-boundary", "":
		return SyncRunBoundary, nil
	case "every-record":
		return SyncEveryRecord, nil
	}
	return 0, fmt.Errorf("audit: sync policy %q: want run-boundary or every-record", s)
}

// Sink receives records and checkpoints for a SIEM. Send must return only
// when msgs are durably queued (or delivered); *syslog.Forwarder is one.
type Sink interface {
	Send(ctx context.Context, msgs ...syslog.Message) error
}

// Config opens a station's log. Only Station is required; Open does not
// modify the Config.
type Config struct {
	// Dir is the station data directory; "": DefaultDir.
	Dir string
	// Station names the station ([A-Za-z0-9._-], ≤ 64); it is in every
	// record, the syslog HOSTNAME and the default origin.
	Station string
	// Origin is the checkpoint origin and the station key's name; "":
	// "fuseline/audit/<Station>".
	Origin string
	// Sync is the fsync policy; the zero value is SyncRunBoundary.
	Sync SyncPolicy
	// CheckpointEvery signs a checkpoint after this many records since the
	// last one (besides at every EventResult and on Close); 0: 1000;
	// negative: only at run ends, Checkpoint and Close.
	CheckpointEvery int
	// Forward, if set, receives every record and checkpoint once it is on
	// disk, in log order; see the package doc for the guarantee.
	Forward Sink
	// RefuseTorn makes Open fail on a torn last record instead of setting
	// it aside (see the package doc).
	RefuseTorn bool
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Rand is for the station key and event IDs; nil: crypto/rand.
	Rand io.Reader
	// Log receives warnings (torn tail repaired, forwarding failed); nil:
	// discard.
	Log *slog.Logger
}

// Receipt is what Append returns: the record as written and where it sits
// in the tree.
type Receipt struct {
	Record Record
	// Line is the record's canonical bytes (without the newline).
	Line []byte
	// Leaf is tlog.RecordHash(Line), the record's Merkle leaf hash.
	Leaf tlog.Hash
	// TreeSize is the number of records including this one (Seq+1).
	TreeSize int64
	// Checkpoint is set if this append ended with a new signed checkpoint.
	Checkpoint *SignedCheckpoint
}

// ErrClosed is returned by a Log's methods after Close.
var ErrClosed = errors.New("audit: log is closed")

// VerifyError is returned by Open when the existing log fails verification.
// The station must not extend a damaged log; an auditor looks at it with
// `fuseline audit verify`.
type VerifyError struct {
	Path   string
	Report *Report
}

func (e *VerifyError) Error() string {
	n := len(e.Report.Problems)
	return fmt.Sprintf("audit: log %s fails verification with %d problem(s), first: %s (see `fuseline audit verify %s`)", e.Path, n, e.Report.Problems[0], e.Path)
}

// Log is a station's open audit log. Its methods may be called from many
// goroutines (one per slot); records are appended in call order.
type Log struct {
	// proofs caches the tree's stored hashes for ProveRecord; its own lock,
	// so building it never holds up Append.
	proofsMu sync.Mutex
	proofs   storedTree

	cfg      Config
	layout   Layout
	origin   string
	every    int64
	now      func() time.Time
	rand     io.Reader
	log      *slog.Logger
	signer   note.Signer
	verifier note.Verifier

	mu       sync.Mutex
	f        *os.File
	size     int64     // records
	offset   int64     // bytes
	synced   int64     // records known to be on disk
	prev     tlog.Hash // leaf of the last record
	fr       frontier
	latest   *SignedCheckpoint
	broken   error // a write or fsync failed: refuse further appends
	closed   bool
	cursor   *os.File
	fwdRecs  int64 // records handed to Forward (next seq to send)
	fwdCP    int64 // size of the last checkpoint handed to Forward
	fwdBusy  bool  // pending is incomplete: catch up from the file
	pending  []fwdItem
	cpSizes  []int64 // sizes of the checkpoint files, ascending
	recovers []Entry // log.recover entries Open appends once ready
}

type fwdItem struct {
	msg    syslog.Message
	recSeq int64 // -1 for a checkpoint
	cpSize int64
}

// ErrInUse: another process has the log open (one station process per
// data directory).
var ErrInUse = errors.New("audit: the log is in use by another process")

// Open opens (creating if needed) the audit log in cfg.Dir, with its station
// key (created on first use) and checkpoints. It verifies the whole log
// against every stored checkpoint first and returns a *VerifyError if the
// log is damaged. A torn last record (a write cut short by a crash) is
// handled as the package doc says. Only one process may have a log open.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if err := checkStation(cfg.Station); err != nil {
		return nil, err
	}
	l := &Log{cfg: cfg, layout: NewLayout(cfg.Dir), origin: cfg.Origin, now: cfg.Now, rand: cfg.Rand, log: cfg.Log}
	if l.origin == "" {
		l.origin = "fuseline/audit/" + cfg.Station
	}
	if err := checkOrigin(l.origin); err != nil {
		return nil, err
	}
	switch {
	case cfg.CheckpointEvery == 0:
		l.every = 1000
	case cfg.CheckpointEvery > 0:
		l.every = int64(cfg.CheckpointEvery)
	}
	if cfg.Sync != SyncRunBoundary && cfg.Sync != SyncEveryRecord {
		return nil, fmt.Errorf("audit: unknown %v", cfg.Sync)
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.rand == nil {
		l.rand = rand.Reader
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{l.layout.Dir, l.layout.Checkpoints, l.layout.Evidence} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("audit: data directory: %w", err)
		}
	}
	// Lock first: the station key is made on first use, and two stations
	// starting at once on a fresh directory must not both try to make it.
	var err error
	l.f, err = os.OpenFile(l.layout.Log, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("audit: open log: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			l.f.Close()
			if l.cursor != nil {
				l.cursor.Close()
			}
		}
	}()
	if err := lockFile(l.f); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInUse, l.layout.Log, err)
	}
	cpFiles, err := ReadCheckpoints(l.layout.Checkpoints)
	if err != nil {
		return nil, err
	}
	l.signer, l.verifier, err = loadOrCreateKey(l.layout, l.origin, l.rand, len(cpFiles) > 0)
	if err != nil {
		return nil, err
	}
	if err := l.load(ctx, cpFiles); err != nil {
		return nil, err
	}
	if cfg.Forward != nil {
		if err := l.openCursor(); err != nil {
			return nil, err
		}
		l.fwdBusy = l.fwdRecs < l.size || l.fwdCP < l.latestSize()
	}
	for _, e := range l.recovers {
		if _, err := l.Append(ctx, e); err != nil {
			return nil, err
		}
	}
	l.recovers = nil
	l.mu.Lock()
	if err := l.syncLocked(ctx); err != nil {
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()
	ok = true
	return l, nil
}

// load verifies the file and sets the state from it.
func (l *Log) load(ctx context.Context, cpFiles []CheckpointFile) error {
	if _, err := l.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("audit: read log: %w", err)
	}
	// NoCheckpoints: a station killed before its first result left none,
	// and Close signs one for what is there.
	rep, p1, err := verify(ctx, l.f, VerifyOptions{Checkpoints: cpFiles, Verifier: l.verifier, NoCheckpoints: true})
	if err != nil {
		return err
	}
	var others []Problem
	for _, p := range rep.Problems {
		if p.Kind != ProblemTorn || l.cfg.RefuseTorn {
			others = append(others, p)
		}
	}
	if len(others) > 0 {
		return &VerifyError{Path: l.layout.Log, Report: rep}
	}
	l.size, l.offset, l.synced, l.prev, l.fr = p1.n, p1.bytes, p1.n, p1.prevLeaf, p1.fr
	for _, cf := range cpFiles {
		sc, _ := OpenCheckpoint(cf.Note, l.verifier) // verify checked them
		l.cpSizes = append(l.cpSizes, sc.Size)
		if l.latest == nil || sc.Size > l.latest.Size {
			l.latest = &sc
		}
	}
	if len(p1.tail) > 0 {
		return l.repairTail(p1.tail)
	}
	return nil
}

// repairTail handles a last line without newline. If it is a complete
// record that chains, only the newline was lost: it is added. Otherwise the
// bytes are saved beside the log and cut off. Either way a log.recover
// record says what happened.
func (l *Log) repairTail(tail []byte) error {
	sum := sha256.Sum256(tail)
	if rec, err := ParseRecord(tail); err == nil && rec.Seq == l.size && rec.Prev == l.prev {
		if _, err := l.f.Write([]byte{'\n'}); err != nil {
			return fmt.Errorf("audit: complete torn record: %w", err)
		}
		leaf := tlog.RecordHash(tail)
		l.size++
		l.offset += int64(len(tail)) + 1
		l.prev = leaf
		l.fr.add(leaf)
		l.log.Warn("audit: last record had no newline; completed it", "log", l.layout.Log, "record", rec.Seq)
		l.recovers = append(l.recovers, Entry{Operator: "station", Event: EventLogRecovered, Result: ResultInfo,
			Details: Details{"action": "completed", "record": strconv.FormatInt(rec.Seq, 10), "torn_sha256": hex.EncodeToString(sum[:])}})
		return nil
	}
	name := fmt.Sprintf("%s.torn-%d", l.layout.Log, l.offset)
	for i := 1; ; i++ {
		if _, err := os.Stat(name); errors.Is(err, os.ErrNotExist) {
			break
		}
		name = fmt.Sprintf("%s.torn-%d.%d", l.layout.Log, l.offset, i)
	}
	if err := writeNew(name, tail, 0o640); err != nil {
		return fmt.Errorf("audit: save torn record: %w", err)
	}
	if err := l.f.Truncate(l.offset); err != nil {
		return fmt.Errorf("audit: cut off torn record: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit: fsync log: %w", err)
	}
	if err := syncDir(l.layout.Dir); err != nil {
		return err
	}
	l.log.Warn("audit: last record was torn (crash during a write); saved it and cut it off",
		"log", l.layout.Log, "bytes", len(tail), "saved_as", name)
	l.recovers = append(l.recovers, Entry{Operator: "station", Event: EventLogRecovered, Result: ResultInfo,
		Details: Details{"action": "set_aside", "torn_bytes": strconv.Itoa(len(tail)),
			"torn_sha256": hex.EncodeToString(sum[:]), "saved_as": filepath.Base(name)}})
	return nil
}

func (l *Log) latestSize() int64 {
	if l.latest == nil {
		return 0
	}
	return l.latest.Size
}

// Append writes one record. It fsyncs as the SyncPolicy says, signs a
// checkpoint at EventResult and every CheckpointEvery records, and hands
// what is on disk to the Sink. A failed write or fsync makes the log refuse
// further appends (the file may hold a partial record; reopen it).
func (l *Log) Append(ctx context.Context, e Entry) (Receipt, error) {
	if err := ctx.Err(); err != nil {
		return Receipt{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return Receipt{}, ErrClosed
	}
	if l.broken != nil {
		return Receipt{}, fmt.Errorf("audit: log refuses appends after an earlier failure: %w", l.broken)
	}
	rec, err := l.record(e)
	if err != nil {
		return Receipt{}, err
	}
	line, err := rec.Marshal()
	if err != nil {
		return Receipt{}, err
	}
	buf := make([]byte, len(line)+1)
	copy(buf, line)
	buf[len(line)] = '\n'
	if _, err := l.f.Write(buf); err != nil {
		if terr := l.f.Truncate(l.offset); terr != nil {
			l.broken = fmt.Errorf("write failed (%v) and cutting off the partial record failed: %w", err, terr)
		}
		return Receipt{}, fmt.Errorf("audit: write record %d: %w", rec.Seq, err)
	}
	leaf := tlog.RecordHash(line)
	l.size++
	l.offset += int64(len(buf))
	l.prev = leaf
	l.fr.add(leaf)
	rc := Receipt{Record: rec, Line: buf[:len(line):len(line)], Leaf: leaf, TreeSize: l.size}
	if l.cfg.Forward != nil && !l.fwdBusy {
		l.pending = append(l.pending, fwdItem{msg: RecordMessage(rc), recSeq: rec.Seq})
	}
	boundary := l.cfg.Sync == SyncEveryRecord || e.Event == EventRunStart || e.Event == EventResult
	wantCP := e.Event == EventResult || (l.every > 0 && l.size-l.latestSize() >= l.every)
	if boundary || wantCP {
		if err := l.syncLocked(ctx); err != nil {
			return rc, err
		}
	}
	if wantCP {
		sc, err := l.checkpointLocked(ctx)
		if err != nil {
			return rc, err
		}
		rc.Checkpoint = &sc
	}
	return rc, nil
}

// record builds the record for e without writing it.
func (l *Log) record(e Entry) (Record, error) {
	t := e.Time
	if t.IsZero() {
		t = l.now()
	}
	device := e.Device
	if device != "" {
		d, err := NormalizeMAC(device)
		if err != nil {
			return Record{}, err
		}
		device = d
	}
	id := e.ID
	if id == "" {
		var b [8]byte
		if _, err := io.ReadFull(l.rand, b[:]); err != nil {
			return Record{}, fmt.Errorf("audit: event ID: %w", err)
		}
		id = "ev-" + hex.EncodeToString(b[:])
	}
	var details Details
	if len(e.Details) > 0 {
		details = make(Details, len(e.Details))
		for k, v := range e.Details {
			details[k] = v
		}
	}
	return Record{
		Seq:      l.size,
		Time:     t.UTC().Truncate(time.Microsecond),
		Station:  l.cfg.Station,
		Operator: e.Operator,
		Device:   device,
		Run:      e.Run,
		Event:    e.Event,
		ID:       id,
		Result:   e.Result,
		Details:  details,
		Prev:     l.prev,
	}, nil
}

// Sync fsyncs the log and forwards what is on disk.
func (l *Log) Sync(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return l.syncLocked(ctx)
}

func (l *Log) syncLocked(ctx context.Context) error {
	if l.synced < l.size {
		if err := l.f.Sync(); err != nil {
			// After a failed fsync the page cache may not match the disk
			// (Linux drops the dirty pages): never trust this file handle again.
			l.broken = fmt.Errorf("fsync failed: %w", err)
			return fmt.Errorf("audit: fsync log: %w", err)
		}
		l.synced = l.size
	}
	l.forwardLocked(ctx)
	return nil
}

// Checkpoint fsyncs and signs a checkpoint of the whole log (or returns the
// latest if nothing was appended since). The log must not be empty.
func (l *Log) Checkpoint(ctx context.Context) (SignedCheckpoint, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return SignedCheckpoint{}, ErrClosed
	}
	if l.broken != nil {
		return SignedCheckpoint{}, fmt.Errorf("audit: no checkpoint after an earlier failure: %w", l.broken)
	}
	if l.size == 0 {
		return SignedCheckpoint{}, errors.New("audit: no checkpoint of an empty log")
	}
	if err := l.syncLocked(ctx); err != nil {
		return SignedCheckpoint{}, err
	}
	return l.checkpointLocked(ctx)
}

// checkpointLocked signs and stores a checkpoint of the (synced) log.
func (l *Log) checkpointLocked(ctx context.Context) (SignedCheckpoint, error) {
	if l.latest != nil && l.latest.Size == l.size {
		return *l.latest, nil
	}
	sc, err := SignCheckpoint(Checkpoint{Origin: l.origin, Size: l.size, Root: l.fr.root()}, l.signer)
	if err != nil {
		return SignedCheckpoint{}, err
	}
	name := filepath.Join(l.layout.Checkpoints, checkpointName(sc.Size))
	if err := atomicfile.WriteFile(name, sc.Note, 0o644); err != nil {
		return SignedCheckpoint{}, fmt.Errorf("audit: write checkpoint: %w", err)
	}
	l.latest = &sc
	l.cpSizes = append(l.cpSizes, sc.Size)
	if l.cfg.Forward != nil && !l.fwdBusy {
		l.pending = append(l.pending, fwdItem{msg: CheckpointMessage(l.cfg.Station, sc, l.now()), recSeq: -1, cpSize: sc.Size})
	}
	l.forwardLocked(ctx)
	return sc, nil
}

// Latest returns the newest signed checkpoint, if any.
func (l *Log) Latest() (SignedCheckpoint, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.latest == nil {
		return SignedCheckpoint{}, false
	}
	return *l.latest, true
}

// Size returns the number of records.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size
}

// Origin returns the checkpoint origin (also the station key's name).
func (l *Log) Origin() string { return l.origin }

// Verifier returns the station's public key, to check checkpoints.
func (l *Log) Verifier() note.Verifier { return l.verifier }

// Layout returns the data directory's file names.
func (l *Log) Layout() Layout { return l.layout }

// Close fsyncs, signs a final checkpoint if records were appended since the
// last one, forwards what is pending and closes the files.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	var errs []error
	if l.broken == nil {
		if err := l.syncLocked(ctx); err != nil {
			errs = append(errs, err)
		} else if l.size > l.latestSize() {
			if _, err := l.checkpointLocked(ctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	l.closed = true
	errs = append(errs, l.f.Close())
	if l.cursor != nil {
		errs = append(errs, l.cursor.Close())
	}
	return errors.Join(errs...)
}
