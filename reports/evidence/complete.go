package evidence

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"fuseline/reports/audit"
)

// Well-known bundle paths of the audit log, as a station's data directory
// lays them out (reports/audit.Layout).
const (
	BundleAuditLogFile   = "audit.log"
	BundleCheckpointsDir = "checkpoints"
)

// ErrIncomplete is wrapped by the error VerifyBundle returns when the
// bundle's audit log and its evidence files do not match one to one.
var ErrIncomplete = errors.New("the audit log's result records and the evidence files do not match")

// Mismatch is one result record of the audit log without its evidence file,
// or one evidence file without its result record.
type Mismatch struct {
	// Record is the seq of the result record; -1 for an evidence file that
	// no result record names.
	Record  int64
	Device  string // the board's MAC
	Run     string // the run (evidence record ID)
	Verdict string // the verdict the result record or evidence file gives
	File    string // the evidence file: in the bundle, or where it should be
	Detail  string // what is wrong, e.g. "is not in the bundle"
}

func (m Mismatch) String() string {
	who := fmt.Sprintf("device %s, run %s, %s", m.Device, m.Run, m.Verdict)
	if m.Record < 0 {
		return fmt.Sprintf("%s (%s): %s", m.File, who, m.Detail)
	}
	return strings.TrimSpace(fmt.Sprintf("result record %d (%s): %s", m.Record, who, strings.TrimSpace(m.File+" "+m.Detail)))
}

// IncompleteError lists every mismatch between the audit log's result
// records and the bundle's evidence files.
type IncompleteError struct {
	Mismatches []Mismatch
}

func (e *IncompleteError) Error() string {
	parts := make([]string, len(e.Mismatches))
	for i, m := range e.Mismatches {
		parts[i] = m.String()
	}
	return fmt.Sprintf("%v: %s", ErrIncomplete, strings.Join(parts, "; "))
}

func (e *IncompleteError) Unwrap() error { return ErrIncomplete }

// AuditLogResult is what VerifyBundle found in the bundle's audit log.
type AuditLogResult struct {
	Records int64 // records (lines) in the log
	Results int   // result records, each matched to its evidence file
	// Covered is the number of records a station-signed checkpoint pins;
	// records after it could be cut off unseen.
	Covered int64
}

// verifiedFile is what VerifyBundle learned of one evidence file, for the
// completeness check.
type verifiedFile struct {
	path       string
	rec        *Record
	digest     string // SHA-256 of the file, hex
	checkpoint []byte // the proof's own checkpoint note, if any
}

// checkAuditLog checks, when the bundle carries the station's audit log,
// that the log is intact and pinned by checkpoints the station key signed,
// and that its result records and the evidence files match one to one (by
// SHA-256, device and run): a deleted evidence file, with its signature and
// proof, leaves its result record behind. Without an audit log it says what
// could not be checked.
func checkAuditLog(ctx context.Context, b Bundle, key *StationKey, origin string, files []verifiedFile, rep *BundleReport) error {
	logData, ok := b[BundleAuditLogFile]
	if !ok {
		rep.NotVerified = append(rep.NotVerified, "completeness (every result record of the audit log has its evidence file, and the reverse): not verified, because the bundle carries no "+BundleAuditLogFile)
		return nil
	}

	// Every station-signed checkpoint the bundle holds pins the log.
	type note struct {
		name string
		msg  []byte
	}
	var notes []note
	if msg, ok := b[BundleCheckpointFile]; ok {
		notes = append(notes, note{BundleCheckpointFile, msg})
	}
	var stored []string
	for p := range b {
		if path.Dir(p) == BundleCheckpointsDir && strings.HasSuffix(p, ".note") {
			stored = append(stored, p)
		}
	}
	slices.Sort(stored)
	for _, p := range stored {
		notes = append(notes, note{p, b[p]})
	}
	for _, f := range files {
		if len(f.checkpoint) > 0 {
			notes = append(notes, note{f.path + ProofSuffix, f.checkpoint})
		}
	}
	var cps []audit.CheckpointFile
	signer := ""
	for _, n := range notes {
		if slices.ContainsFunc(cps, func(c audit.CheckpointFile) bool { return bytes.Equal(c.Note, n.msg) }) {
			continue
		}
		cp, err := openCheckpoint(n.msg, key, origin)
		if err != nil {
			return &FileError{File: n.name, Err: err}
		}
		signer = cp.Signer
		cps = append(cps, audit.CheckpointFile{Name: n.name, Note: n.msg})
	}
	if len(cps) == 0 {
		return &FileError{File: BundleAuditLogFile, Err: errors.New("no checkpoint signed by the station key pins it, so records could have been removed unseen")}
	}
	v, err := key.verifier(signer)
	if err != nil {
		return err
	}
	lr, err := audit.Verify(ctx, bytes.NewReader(logData), audit.VerifyOptions{Checkpoints: cps, Verifier: v})
	if err != nil {
		return &FileError{File: BundleAuditLogFile, Err: err}
	}
	if !lr.Intact() {
		return &FileError{File: BundleAuditLogFile, Err: fmt.Errorf("%d problem(s), first: %s (see `fuseline audit verify`)", len(lr.Problems), lr.Problems[0])}
	}
	if lr.Covered < lr.Records {
		rep.NotVerified = append(rep.NotVerified, fmt.Sprintf("%s records %d..%d: not verified, because no checkpoint the station signed covers them (cutting them off would not be detected)",
			BundleAuditLogFile, lr.Covered, lr.Records-1))
	}

	// The log is intact: match its result records with the evidence files.
	byDigest := make(map[string]*verifiedFile, len(files))
	byPath := make(map[string]*verifiedFile, len(files))
	for i := range files {
		byDigest[files[i].digest] = &files[i]
		byPath[files[i].path] = &files[i]
	}
	evDir := ""
	if len(files) > 0 {
		evDir = path.Dir(files[0].path)
	}
	matched := make(map[string]bool, len(files))
	var mm []Mismatch
	results := 0
	for line := range bytes.Lines(logData) {
		r, err := audit.ParseRecord(bytes.TrimSuffix(line, []byte("\n")))
		if err != nil {
			// Verify accepted every line; this cannot happen on the same bytes.
			return &FileError{File: BundleAuditLogFile, Err: err}
		}
		if r.Event != audit.EventResult {
			continue
		}
		results++
		// The station names the file after the run (Record.FileName).
		m := Mismatch{Record: r.Seq, Device: r.Device, Run: r.Run, Verdict: r.Details["verdict"], File: path.Join(evDir, r.Run+".json")}
		sum, ok := r.Details[LeafEvidenceKey]
		f := byDigest[sum]
		switch {
		case !ok:
			m.File, m.Detail = "", "names no evidence file (no details."+LeafEvidenceKey+")"
		case f == nil && byPath[m.File] != nil:
			m.Detail = fmt.Sprintf("has SHA-256 %s, the record names %s: the evidence file was replaced", byPath[m.File].digest, sum)
		case f == nil:
			m.Detail = fmt.Sprintf("(SHA-256 %s) is not in the bundle: the evidence was removed", sum)
		case f.rec.Device.MAC != r.Device:
			m.File, m.Detail = f.path, "is for device "+f.rec.Device.MAC
		default:
			matched[f.path] = true
			continue
		}
		mm = append(mm, m)
	}
	for _, f := range files {
		if !matched[f.path] && !slices.ContainsFunc(mm, func(m Mismatch) bool { return m.File == f.path }) {
			mm = append(mm, Mismatch{Record: -1, Device: f.rec.Device.MAC, Run: f.rec.ID, Verdict: f.rec.Result.Verdict, File: f.path,
				Detail: fmt.Sprintf("has no result record in %s naming its SHA-256 %s", BundleAuditLogFile, f.digest)})
		}
	}
	if len(mm) > 0 {
		return &FileError{File: BundleAuditLogFile, Err: &IncompleteError{Mismatches: mm}}
	}
	rep.AuditLog = &AuditLogResult{Records: lr.Records, Results: results, Covered: lr.Covered}
	return nil
}
