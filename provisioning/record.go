package provisioning

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"fuseline/internal/atomicfile"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"filippo.io/age"

	"fuseline/provisioning/journal"
	"fuseline/reports/audit"
	"fuseline/reports/evidence"
)

// EvidenceDir is where evidence records go inside the data directory.
const EvidenceDir = "evidence"

// verdictOf maps a run's error to the evidence verdict, a stable code and
// a one-line reason.
func verdictOf(err error) (verdict, code, reason string) {
	if err == nil {
		return evidence.PASS, "", ""
	}
	reason = strings.ReplaceAll(err.Error(), "\n", "; ")
	switch {
	case errors.Is(err, ErrConflict):
		return evidence.REFUSED, "efuse-conflict", reason
	case errors.Is(err, ErrNotApproved):
		return evidence.FAIL, "not-approved", reason
	case errors.Is(err, ErrVerify):
		return evidence.FAIL, "verify", reason
	case errors.Is(err, ErrJournal):
		return evidence.FAIL, "journal", reason
	case errors.Is(err, ErrLink):
		return evidence.FAIL, "link-lost", reason
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return evidence.FAIL, "stopped", reason
	}
	return evidence.FAIL, "error", reason
}

// finish sets the verdict and, for a real run on an identified board,
// writes the evidence, the audit result and the journal's end; on PASS it
// escrows (if asked) and zeroises the device key.
func (x *run) finish(ctx context.Context, err error) {
	defer x.zeroise()
	defer func() {
		if x.j != nil {
			x.j.Close()
		}
	}()
	end := x.now()
	x.res.Total = end.Sub(x.start)
	for _, ph := range []Phase{PhaseConnect, PhaseRead, PhasePlan, PhaseBurnKeys, PhaseFlash, PhaseVerify, PhaseLock, PhaseReadback, PhaseBoot} {
		if d, ok := x.phaseDur[ph]; ok {
			x.res.Phases = append(x.res.Phases, PhaseTime{Phase: ph, Duration: d})
		}
	}
	x.res.BytesSent, x.res.BytesReceived = x.l.tx.Load(), x.l.rx.Load()
	x.res.Writes = x.l.writes.Load()
	x.res.LinkTime = time.Duration(x.l.txTime.Load())
	if x.cfg.DryRun {
		if err == nil {
			return
		}
	}
	x.res.Verdict, x.res.Code, x.res.Reason = verdictOf(err)
	if x.res.AlreadyProvisioned && err == nil {
		x.res.Code = "already-provisioned"
	}
	if x.mac == "" || x.cfg.DryRun {
		return
	}
	ctx = context.WithoutCancel(ctx)
	if x.res.Verdict == evidence.PASS && (x.keySaved || x.j != nil && x.j.HasKey()) {
		x.releaseKey()
	}
	rec, rerr := x.record(end)
	if rerr != nil {
		x.log.Error("evidence record not built", "err", rerr)
		x.res.Reason = strings.TrimPrefix(x.res.Reason+"; evidence not written: "+rerr.Error(), "; ")
	} else {
		x.res.Record = rec
		if path, werr := x.writeEvidence(ctx, rec); werr != nil {
			x.log.Error("evidence not written", "err", werr)
			x.res.Reason = strings.TrimPrefix(x.res.Reason+"; evidence not written: "+werr.Error(), "; ")
		} else {
			x.res.EvidencePath = path
		}
	}
	if x.j != nil && (x.res.Verdict != evidence.REFUSED || x.js.started) {
		_ = x.journalRec(recRunEnd, "", x.res.Verdict, x.res.Reason, map[string]string{"evidence": filepath.Base(x.res.EvidencePath)})
	}
	if x.res.Verdict == evidence.PASS {
		_ = journal.ClearCurrent(x.journalDir(), x.slot)
	}
	x.emit(Event{Phase: PhaseEvidence, Kind: EventEnd, Result: strings.ToLower(x.res.Verdict), Message: x.res.EvidencePath})
}

// releaseKey ends the device key's life after a passing run: sealed to the
// recipe's age recipient beside the evidence if escrow is on, then
// overwritten and removed from the journal directory.
func (x *run) releaseKey() {
	if x.key == nil && x.j != nil {
		if k, err := x.j.LoadKey(x.sealer()); err == nil && k != nil {
			if err := x.setKey(k); err != nil {
				x.log.Warn("stored key unusable", "err", err)
			}
		}
	}
	if x.r.Escrow.Enabled && x.key != nil {
		path := filepath.Join(x.dataDir(), EvidenceDir, x.runID+".key.age")
		if err := sealKey(path, x.key, x.r.Escrow.Recipient); err != nil {
			x.log.Error("key escrow failed; the key stays in the journal directory", "err", err)
			x.res.Reason = "key escrow failed: " + err.Error()
			return
		}
		x.res.EscrowPath = path
		x.check(evidence.CheckKeyEscrow, "the device key is sealed to the recipe's age recipient beside the evidence", true, "")
	}
	if x.j != nil {
		if err := x.j.DropKey(); err != nil {
			x.log.Error("device key not removed", "err", err)
		}
	}
	x.zeroise()
}

// sealKey encrypts key to an age X25519 recipient into path (mode 0600).
func sealKey(path string, key []byte, recipient string) error {
	rcp, err := age.ParseX25519Recipient(recipient)
	if err != nil {
		return fmt.Errorf("provisioning: escrow recipient: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	w, err := age.Encrypt(f, rcp)
	if err == nil {
		_, err = w.Write(key)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("provisioning: seal key: %w", err)
	}
	return nil
}

// record builds the evidence record of the run.
func (x *run) record(end time.Time) (*evidence.Record, error) {
	op := x.cfg.Operator
	if op == "" {
		op = "operator"
	}
	station := x.cfg.Station
	if station == "" {
		station = "station"
	}
	software := x.cfg.Software
	if software == "" {
		software = "fuseline"
	}
	rev := ""
	if x.ident.Revision >= 0 && x.identified {
		rev = fmt.Sprintf("v%d.%d", x.ident.Revision/100, x.ident.Revision%100)
	}
	flashID := ""
	if x.ident.FlashID != 0 {
		flashID = fmt.Sprintf("0x%06x", x.ident.FlashID)
	}
	rec := &evidence.Record{
		Schema:   evidence.Schema,
		ID:       x.runID,
		Lot:      x.cfg.Lot,
		Device:   evidence.Device{MAC: x.mac, Chip: x.r.Chip.Name, Revision: rev, FlashID: flashID, SerialNo: x.cfg.SerialNo},
		Station:  evidence.Station{ID: station, Slot: x.slot, Software: software, Target: x.target, LoaderStub: x.stub},
		Operator: evidence.Operator{ID: op},
		Recipe:   evidence.Recipe{Name: x.r.Name, SHA256: evidence.Digest(x.r.Source.SHA256)},
		Release: evidence.Release{Product: x.rel.Product, Version: x.rel.Version, SecureVersion: x.rel.SecureVersion,
			ManifestSHA256: evidence.Digest(x.rel.ManifestSHA256)},
		Images: []evidence.Image{},
		Steps:  x.steps,
		Checks: append([]evidence.Check{}, x.checks...),
		Result: evidence.Result{Verdict: x.res.Verdict, Code: x.res.Code, Reason: x.res.Reason},
		Timing: evidence.Timing{Start: x.start.UTC(), End: end.UTC(), Duration: evidence.Duration(end.Sub(x.start)),
			Baud: x.res.Baud, BytesOnWire: x.l.tx.Load()},
	}
	if rec.Recipe.Name == "" {
		rec.Recipe.Name = filepath.Base(x.r.Source.File)
	}
	if x.cfg.Audit != nil {
		rec.Station.KeyName = x.cfg.Audit.Origin()
	}
	rec.Checks = append(rec.Checks, evidence.Check{Name: evidence.CheckOperator, What: "the operator was authenticated by the station",
		Verified: x.cfg.OperatorAuthenticated, Because: map[bool]string{false: "the operator name was taken as given (--operator), not authenticated"}[x.cfg.OperatorAuthenticated],
		Established: evidence.Establish(evidence.CheckOperator, x.target)})
	for i := range rec.Checks {
		// A check added without going through x.check still says how it
		// was established (by its kind and this run's target), rather than
		// leaving a record that cannot be written.
		if rec.Checks[i].Established == "" {
			rec.Checks[i].Established = evidence.Establish(rec.Checks[i].Kind(), x.target)
		}
	}
	for _, rg := range x.regions {
		im := rg.im
		// The evidence names the file by its base name: a bundle keeps
		// images flat (images/FILE).
		e := evidence.Image{Role: im.Role, File: path.Base(im.File), Offset: im.Offset, Size: int64(len(im.Data)),
			PlaintextSHA256: evidence.Digest(im.SHA256), Encrypted: im.Encrypt, WriteMode: rg.mode, SignatureKeyDigests: []evidence.Digest{}}
		e.WrittenSHA256 = e.PlaintextSHA256
		if im.Encrypt && rg.expected != nil {
			e.WrittenSHA256 = evidence.Digest(sha256.Sum256(rg.expected))
		}
		for _, d := range im.KeyDigests {
			e.SignatureKeyDigests = append(e.SignatureKeyDigests, evidence.Digest(d))
		}
		rec.Images = append(rec.Images, e)
	}
	rec.Images = append(rec.Images, x.subImages...)
	empty, _ := evidence.NewEfuseSnapshot(map[string]uint64{}, nil)
	rec.Efuse.Before, rec.Efuse.After = empty, empty
	if x.before != nil {
		rec.Efuse.Before = *x.before
	}
	if x.after != nil {
		rec.Efuse.After = *x.after
	} else if x.img != nil {
		if s, err := x.snapshot(x.img, true); err == nil {
			rec.Efuse.After = s
		}
	}
	if rec.Result.Verdict != evidence.PASS && strings.TrimSpace(rec.Result.Reason) == "" {
		rec.Result.Reason = "the run did not complete"
	}
	if err := rec.Validate(); err != nil {
		return nil, err
	}
	return rec, nil
}

// writeEvidence writes the record into the data directory's evidence
// folder, records its digest in the audit log, and, with an audit log,
// writes its detached signature (station key) and inclusion proof beside it.
func (x *run) writeEvidence(ctx context.Context, rec *evidence.Record) (string, error) {
	data, err := evidence.Marshal(rec)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(x.dataDir(), EvidenceDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("provisioning: %w", err)
	}
	path := filepath.Join(dir, rec.FileName())
	if err := writeFileSync(path, data, 0o644); err != nil {
		return "", err
	}
	if x.cfg.Audit == nil {
		return path, nil
	}
	sum := sha256.Sum256(data)
	result := audit.ResultOK
	switch rec.Result.Verdict {
	case evidence.FAIL:
		result = audit.ResultFail
	case evidence.REFUSED:
		result = audit.ResultRefused
	}
	op := rec.Operator.ID
	rc, err := x.cfg.Audit.Append(ctx, audit.Entry{Operator: op, Device: x.mac, Run: x.runID, Event: audit.EventResult, Result: result,
		Details: audit.Details{evidence.LeafEvidenceKey: hex.EncodeToString(sum[:]), "verdict": rec.Result.Verdict}})
	if err != nil {
		return path, fmt.Errorf("provisioning: audit result record: %w", err)
	}
	if key, err := x.stationKey(); err != nil {
		x.log.Warn("evidence not signed", "err", err)
	} else {
		sig, err := evidence.SignBytes(data, key)
		if err != nil {
			return path, err
		}
		if err := writeFileSync(path+evidence.SignatureSuffix, sig, 0o644); err != nil {
			return path, err
		}
	}
	// The result record ended in a checkpoint; prove it alone (the log keeps
	// the tree, so this does not re-read the whole log for every board).
	proofs, err := x.cfg.Audit.ProveRecord(ctx, rc.Record.Seq, rc.Line)
	if err != nil {
		return path, fmt.Errorf("provisioning: inclusion proof: %w", err)
	}
	for _, inc := range proofs.Records {
		p := evidence.InclusionProof{LeafIndex: inc.Index, TreeSize: proofs.TreeSize, LeafHash: inc.Leaf, RootHash: proofs.Root,
			Proof: tlog.RecordProof(inc.Proof), Checkpoint: []byte(proofs.Checkpoint), Leaf: []byte(inc.Record)}
		b, err := json.MarshalIndent(p, "", "  ")
		if err != nil {
			return path, fmt.Errorf("provisioning: %w", err)
		}
		if err := writeFileSync(path+evidence.ProofSuffix, append(b, '\n'), 0o644); err != nil {
			return path, err
		}
	}
	return path, nil
}

// stationKey reads the station's Ed25519 signing key from the audit log's
// data directory.
func (x *run) stationKey() (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(x.cfg.Audit.Layout().Key)
	if err != nil {
		return nil, fmt.Errorf("provisioning: station key: %w", err)
	}
	_, k, err := evidence.ParseStationPrivateKey(string(b))
	clear(b)
	return k, err
}

func writeFileSync(path string, b []byte, mode os.FileMode) error {
	if err := atomicfile.WriteFile(path, b, mode); err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	return nil
}
