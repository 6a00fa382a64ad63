package evidence_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"fuseline/reports/audit"
	"fuseline/reports/evidence"
	"fuseline/reports/evidence/evidencetest"

	"golang.org/x/mod/sumdb/tlog"
)

// station is a station's data directory made the way provisioning writes
// evidence (provisioning/record.go, writeEvidence): the evidence file, a
// result record in a real reports/audit log naming its SHA-256, the
// detached signature and the inclusion proof of that record.
type station struct {
	t   testing.TB
	dir string
	log *audit.Log
}

func newStation(t testing.TB) *station {
	t.Helper()
	dir := t.TempDir()
	l, err := audit.Open(t.Context(), audit.Config{Dir: dir, Station: "line1-st3"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	// A station's own state files sit beside evidence/.
	if err := os.WriteFile(filepath.Join(dir, "station-session.json"), []byte(`{"slot":"1"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return &station{t: t, dir: dir, log: l}
}

// provision records r as a run of the station; event is the audit event
// that names the evidence (audit.EventResult on a station).
func (s *station) provision(r *evidence.Record, event audit.Event, details audit.Details) {
	t := s.t
	t.Helper()
	ctx := t.Context()
	data, err := evidence.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.dir, "evidence", r.FileName())
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.log.Append(ctx, audit.Entry{Operator: r.Operator.ID, Device: r.Device.MAC, Run: r.ID, Event: audit.EventRunStart, Result: audit.ResultInfo}); err != nil {
		t.Fatal(err)
	}
	sum := evidence.SHA256(data)
	d := audit.Details{evidence.LeafEvidenceKey: hex.EncodeToString(sum[:]), "verdict": r.Result.Verdict}
	if details != nil {
		d = details
	}
	rc, err := s.log.Append(ctx, audit.Entry{Operator: r.Operator.ID, Device: r.Device.MAC, Run: r.ID, Event: event, Result: audit.ResultOK, Details: d})
	if err != nil {
		t.Fatal(err)
	}
	skey, err := os.ReadFile(s.log.Layout().Key)
	if err != nil {
		t.Fatal(err)
	}
	_, priv, err := evidence.ParseStationPrivateKey(string(skey))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := evidence.SignBytes(data, priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+evidence.SignatureSuffix, sig, 0o644); err != nil {
		t.Fatal(err)
	}
	if rc.Checkpoint == nil {
		if _, err := s.log.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	proofs, err := s.log.ProveRecord(ctx, rc.Record.Seq, rc.Line)
	if err != nil {
		t.Fatal(err)
	}
	inc := proofs.Records[0]
	p := evidence.InclusionProof{LeafIndex: inc.Index, TreeSize: proofs.TreeSize, LeafHash: inc.Leaf, RootHash: proofs.Root,
		Proof: tlog.RecordProof(inc.Proof), Checkpoint: []byte(proofs.Checkpoint), Leaf: []byte(inc.Record)}
	pj, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+evidence.ProofSuffix, pj, 0o644); err != nil {
		t.Fatal(err)
	}
}

// bundle reads the data directory as report verify does.
func (s *station) bundle() (evidence.Bundle, *evidence.StationKey) {
	s.t.Helper()
	b, err := evidence.ReadBundleFS(os.DirFS(s.dir), 0)
	if err != nil {
		s.t.Fatal(err)
	}
	k, err := evidence.ParseStationKey(b[evidence.BundleKeyFile])
	if err != nil {
		s.t.Fatal(err)
	}
	return b, k
}

// TestVerifyBundleCompleteness: with the audit log in the bundle (a
// station's data directory), every result record needs its evidence file and
// every evidence file its result record; a device whose evidence was removed
// is named.
func TestVerifyBundleCompleteness(t *testing.T) {
	t.Parallel()
	recs := evidencetest.Lot(evidencetest.LotOptions{N: 3})
	const gone = "evidence/3c6105000001-20261121T080135Z.json"
	tests := []struct {
		name   string
		extra  func(s *station) // more runs on the station
		change func(b evidence.Bundle)
		file   string // the file the error names; "" for no error
		is     error
		want   []string // in the message
	}{
		{name: "intact"},
		{name: "evidence, signature and proof removed", change: func(b evidence.Bundle) {
			delete(b, gone)
			delete(b, gone+".sig")
			delete(b, gone+".proof")
		}, file: "audit.log", is: evidence.ErrIncomplete, want: []string{"device 3c:61:05:00:00:01", "result record 3 ", gone, "is not in the bundle"}},
		{name: "evidence alone removed", change: func(b evidence.Bundle) { delete(b, gone) },
			file: "audit.log", is: evidence.ErrIncomplete, want: []string{"device 3c:61:05:00:00:01", gone}},
		{name: "result record removed from the log", change: func(b evidence.Bundle) {
			lines := bytes.SplitAfter(b["audit.log"], []byte("\n"))
			b["audit.log"] = bytes.Join(append(lines[:3:3], lines[4:]...), nil)
		}, file: "audit.log", want: []string{"deleted"}},
		{name: "log cut after the last result", change: func(b evidence.Bundle) {
			lines := bytes.SplitAfter(b["audit.log"], []byte("\n"))
			b["audit.log"] = bytes.Join(lines[:len(lines)-2], nil)
		}, file: "audit.log", want: []string{"truncated"}},
		{name: "a checkpoint forged", change: func(b evidence.Bundle) {
			var l evidencetest.Log
			l.Append([]byte("x"))
			b["checkpoints/00000000000000000099.note"], _ = evidencetest.NewStation(9).Checkpoint(&l)
		}, file: "checkpoints/00000000000000000099.note", is: evidence.ErrBadProof},
		{name: "evidence named by a record that is not a result", extra: func(s *station) {
			r := evidencetest.Board(evidencetest.LotOptions{}, 7)
			s.provision(r, "region.verify", nil)
		}, file: "audit.log", is: evidence.ErrIncomplete, want: []string{"evidence/3c6105000007-", "has no result record"}},
		{name: "result record naming no evidence", extra: func(s *station) {
			r := evidencetest.Board(evidencetest.LotOptions{}, 8)
			s.provision(r, audit.EventResult, audit.Details{"verdict": "PASS"})
			os.Remove(filepath.Join(s.dir, "evidence", r.FileName()))
			os.Remove(filepath.Join(s.dir, "evidence", r.FileName()+".sig"))
			os.Remove(filepath.Join(s.dir, "evidence", r.FileName()+".proof"))
		}, file: "audit.log", is: evidence.ErrIncomplete, want: []string{"device 3c:61:05:00:00:08", "names no evidence file"}},
		{name: "evidence replaced by another run's", change: func(b evidence.Bundle) {
			// The file of run 1 now holds run 2's bytes: signed and proved,
			// but run 1's result record has no evidence file any more.
			const other = "evidence/3c6105000002-20261121T080310Z.json"
			b[gone], b[gone+".sig"], b[gone+".proof"] = b[other], b[other+".sig"], b[other+".proof"]
		}, file: "audit.log", is: evidence.ErrIncomplete, want: []string{"result record 3 ", gone + " has SHA-256", "was replaced"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStation(t)
			for _, r := range recs {
				s.provision(r, audit.EventResult, nil)
			}
			if tc.extra != nil {
				tc.extra(s)
			}
			b, key := s.bundle()
			if tc.change != nil {
				tc.change(b)
			}
			rep, err := evidence.VerifyBundle(t.Context(), b, evidence.VerifyOptions{Key: key})
			if tc.file == "" {
				if err != nil {
					t.Fatal(err)
				}
				if rep.AuditLog == nil || rep.AuditLog.Results != 3 || rep.AuditLog.Covered != rep.AuditLog.Records || len(rep.Devices) != 3 {
					t.Errorf("audit log %+v, devices %d", rep.AuditLog, len(rep.Devices))
				}
				for _, nv := range rep.NotVerified {
					if strings.Contains(nv, "completeness") || strings.Contains(nv, "audit.log") {
						t.Errorf("not verified: %s", nv)
					}
				}
				return
			}
			t.Log(err)
			fe, ok := errors.AsType[*evidence.FileError](err)
			if !ok || fe.File != tc.file {
				t.Fatalf("error %v, want a *FileError naming %s", err, tc.file)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error does not wrap %v", tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q", w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("message is not one line")
			}
		})
	}
}

// Without the audit log, a signature or proof left without its evidence file
// still shows the evidence was removed.
func TestVerifyBundleOrphans(t *testing.T) {
	t.Parallel()
	const ev = "evidence/3c6105000001-20261121T080135Z.json"
	for _, left := range []string{ev + ".sig", ev + ".proof"} {
		b, st := testBundle(t, 3, false)
		delete(b, ev)
		for _, suffix := range []string{".sig", ".proof"} {
			if ev+suffix != left {
				delete(b, ev+suffix)
			}
		}
		_, err := evidence.VerifyBundle(t.Context(), b, evidence.VerifyOptions{Key: st.Key})
		if fe, ok := errors.AsType[*evidence.FileError](err); !ok || fe.File != left || !strings.Contains(err.Error(), "removed") {
			t.Errorf("%s left: error %v", left, err)
		}
	}
}

// FuzzVerifyBundleAuditLog: a bundle's audit log is outside bytes. No log
// panics the check, every error is a *FileError, and a log that passes has
// a result record for every evidence file.
func FuzzVerifyBundleAuditLog(f *testing.F) {
	s := newStation(f)
	for _, r := range evidencetest.Lot(evidencetest.LotOptions{N: 2}) {
		s.provision(r, audit.EventResult, nil)
	}
	b, key := s.bundle()
	log := b["audit.log"]
	f.Add(log)
	f.Add(log[:len(log)/2])
	f.Add(bytes.Replace(log, []byte(`"event":"result"`), []byte(`"event":"region.write"`), 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		bb := maps.Clone(b)
		bb["audit.log"] = data
		rep, err := evidence.VerifyBundle(t.Context(), bb, evidence.VerifyOptions{Key: key})
		if err != nil {
			if _, ok := errors.AsType[*evidence.FileError](err); !ok {
				t.Fatalf("error %v is not a *FileError", err)
			}
			return
		}
		if rep.AuditLog == nil || rep.AuditLog.Results < len(rep.Devices) {
			t.Fatalf("verified %d evidence files against %+v", len(rep.Devices), rep.AuditLog)
		}
	})
}

// TestVerifyNoEvidenceYet: a station's data directory whose evidence/
// folder is empty has no evidence, not its other *.json files (the fault
// campaign's `report verify` read station-session.json as evidence and
// exited 1). With no result record in the log that verifies, saying there
// is no evidence; with a result record it is the completeness finding.
func TestVerifyNoEvidenceYet(t *testing.T) {
	t.Parallel()
	for _, results := range []bool{false, true} {
		s := newStation(t)
		r := evidencetest.Board(evidencetest.LotOptions{}, 1)
		if results {
			s.provision(r, audit.EventResult, nil)
			for _, suf := range []string{"", evidence.SignatureSuffix, evidence.ProofSuffix} {
				if err := os.Remove(filepath.Join(s.dir, "evidence", r.FileName()+suf)); err != nil {
					t.Fatal(err)
				}
			}
		} else {
			// A run that ended before its result; closing the log pins it.
			if _, err := s.log.Append(t.Context(), audit.Entry{Operator: "op", Device: r.Device.MAC, Run: r.ID, Event: audit.EventRunStart, Result: audit.ResultInfo}); err != nil {
				t.Fatal(err)
			}
			if err := s.log.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
		}

		files, err := evidence.ReadFiles(os.DirFS(s.dir))
		if err != nil || len(files) != 0 {
			t.Fatalf("results %v: ReadFiles: %d files, %v; want none", results, len(files), err)
		}
		b, key := s.bundle()
		if got := b.EvidenceFiles(); len(got) != 0 {
			t.Fatalf("results %v: evidence files %v, want none", results, got)
		}
		rep, err := evidence.VerifyBundle(t.Context(), b, evidence.VerifyOptions{Key: key})
		if results {
			fe, ok := errors.AsType[*evidence.FileError](err)
			if !ok || fe.File != "audit.log" || !errors.Is(err, evidence.ErrIncomplete) || !strings.Contains(err.Error(), "device 3c:61:05:00:00:01") {
				t.Fatalf("result record without evidence: %v, want the completeness finding on audit.log", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("no results, no evidence: %v", err)
		}
		if len(rep.Devices) != 0 || rep.AuditLog == nil || rep.AuditLog.Results != 0 ||
			!slices.ContainsFunc(rep.NotVerified, func(s string) bool { return strings.HasPrefix(s, "evidence files: none") }) {
			t.Fatalf("no results, no evidence: devices %d, audit log %+v, not verified %q", len(rep.Devices), rep.AuditLog, rep.NotVerified)
		}
	}
}
