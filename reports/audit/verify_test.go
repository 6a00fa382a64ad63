package audit

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// baseLog writes 5 runs (40 records, checkpoints at 8, 16, …, 40) once and
// returns the log's lines, checkpoint files and public key.
type baseLog struct {
	lines [][]byte
	cps   []CheckpointFile
	v     note.Verifier
}

func newBaseLog(t testing.TB) *baseLog {
	t.Helper()
	dir := t.TempDir()
	l := openTest(t, testConfig(t, dir))
	writeRuns(t, l, 0, 5)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	lay := NewLayout(dir)
	cps, err := ReadCheckpoints(lay.Checkpoints)
	if err != nil || len(cps) != 5 {
		t.Fatalf("checkpoints: %d %v", len(cps), err)
	}
	return &baseLog{lines: readLines(t, lay.Log), cps: cps, v: l.Verifier()}
}

func (b *baseLog) clone() [][]byte {
	out := make([][]byte, len(b.lines))
	for i, l := range b.lines {
		out[i] = bytes.Clone(l)
	}
	return out
}

func mustRecord(t testing.TB, line []byte) *Record {
	t.Helper()
	r, err := ParseRecord(bytes.TrimSuffix(line, []byte("\n")))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func encode(t testing.TB, r *Record) []byte {
	t.Helper()
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func leafOfLine(line []byte) tlog.Hash { return tlog.RecordHash(bytes.TrimSuffix(line, []byte("\n"))) }

func TestVerifyFindsTampering(t *testing.T) {
	t.Parallel()
	base := newBaseLog(t)
	otherKey := func() note.Verifier {
		_, vkey, _ := note.GenerateKey(newSeededRand(42), "fuseline/audit/st-01")
		v, _ := note.NewVerifier(vkey)
		return v
	}()
	type want struct {
		kind   ProblemKind
		line   int64
		record int64
		count  int64
		detail string
	}
	tests := []struct {
		name   string
		tamper func(t *testing.T, lines [][]byte) [][]byte
		cps    func(cps []CheckpointFile) []CheckpointFile // nil: unchanged
		key    note.Verifier                               // nil: the station's
		want   []want                                      // the first problems, in order
	}{
		{"intact", func(t *testing.T, l [][]byte) [][]byte { return l }, nil, nil, nil},
		{"edited field", func(t *testing.T, l [][]byte) [][]byte {
			l[10] = bytes.Replace(l[10], []byte(`"result":"ok"`), []byte(`"result":"fail"`), 1)
			return l
		}, nil, nil, []want{{ProblemEdited, 11, 10, 0, "no longer matches the prev of record 11"}}},
		{"edited detail value", func(t *testing.T, l [][]byte) [][]byte {
			l[3] = bytes.Replace(l[3], []byte(`BLOCK_KEY1`), []byte(`BLOCK_KEY2`), 1)
			return l
		}, nil, nil, []want{{ProblemEdited, 4, 3, 0, ""}}},
		{"edited into non-canonical JSON", func(t *testing.T, l [][]byte) [][]byte {
			l[5] = bytes.Replace(l[5], []byte(`,"event"`), []byte(`, "event"`), 1)
			return l
		}, nil, nil, []want{{ProblemEdited, 6, 5, 0, "not a valid record"}}},
		{"edited seq", func(t *testing.T, l [][]byte) [][]byte {
			r := mustRecord(t, l[10])
			r.Seq = 99
			l[10] = encode(t, r)
			return l
		}, nil, nil, []want{{ProblemEdited, 11, 10, 0, "seq changed from 10 to 99"}}},
		{"deleted one", func(t *testing.T, l [][]byte) [][]byte {
			return slices.Delete(l, 10, 11)
		}, nil, nil, []want{{ProblemDeleted, 11, 10, 1, "record 10 is missing"}}},
		{"deleted three", func(t *testing.T, l [][]byte) [][]byte {
			return slices.Delete(l, 10, 13)
		}, nil, nil, []want{{ProblemDeleted, 11, 10, 3, "records 10..12 are missing"}}},
		{"deleted the first", func(t *testing.T, l [][]byte) [][]byte {
			return l[1:]
		}, nil, nil, []want{{ProblemDeleted, 1, 0, 1, ""}}},
		{"inserted, chained to the record before", func(t *testing.T, l [][]byte) [][]byte {
			r := mustRecord(t, l[10])
			r.Operator, r.ID, r.Prev = "mallory", "ev-forged", leafOfLine(l[9])
			return slices.Insert(l, 10, encode(t, r))
		}, nil, nil, []want{{ProblemInserted, 11, 10, 0, "not part of the chain"}}},
		{"inserted, not chained", func(t *testing.T, l [][]byte) [][]byte {
			r := mustRecord(t, l[10])
			r.Operator, r.ID = "mallory", "ev-forged"
			r.Prev = tlog.Hash{7}
			return slices.Insert(l, 10, encode(t, r))
		}, nil, nil, []want{{ProblemInserted, 11, 10, 0, "not part of the chain"}}},
		{"inserted two at the start", func(t *testing.T, l [][]byte) [][]byte {
			r := mustRecord(t, l[0])
			r.ID = "ev-forged"
			a := encode(t, r)
			r.Seq, r.Prev, r.ID = 1, leafOfLine(a), "ev-forged2"
			return slices.Insert(l, 0, a, encode(t, r))
		}, nil, nil, []want{{ProblemInserted, 1, 0, 0, ""}, {ProblemInserted, 2, 1, 0, ""}}},
		{"duplicated line", func(t *testing.T, l [][]byte) [][]byte {
			return slices.Insert(l, 11, bytes.Clone(l[10]))
		}, nil, nil, []want{{ProblemInserted, 12, 10, 0, "a copy of line 11"}}},
		{"two records swapped", func(t *testing.T, l [][]byte) [][]byte {
			l[10], l[11] = l[11], l[10]
			return l
		}, nil, nil, []want{{ProblemReordered, 12, 10, 0, "it belongs at line 11"}}},
		{"one record moved down", func(t *testing.T, l [][]byte) [][]byte {
			moved := l[10]
			l = slices.Delete(l, 10, 11)
			return slices.Insert(l, 14, moved)
		}, nil, nil, []want{{ProblemReordered, 15, 10, 0, "belongs at line 11"}}},
		{"truncated", func(t *testing.T, l [][]byte) [][]byte {
			return l[:37]
		}, nil, nil, []want{{ProblemTruncated, 38, 37, 3, "records 37..39 are missing at the end"}}},
		{"truncated at a run boundary", func(t *testing.T, l [][]byte) [][]byte {
			return l[:32]
		}, nil, nil, []want{{ProblemTruncated, 33, 32, 8, ""}}},
		{"torn last line", func(t *testing.T, l [][]byte) [][]byte {
			l[39] = l[39][:50]
			return l
		}, nil, nil, []want{{ProblemTorn, 40, 39, 0, "a checkpoint covers it"}, {ProblemTruncated, 40, 39, 1, ""}}},
		{"last record edited", func(t *testing.T, l [][]byte) [][]byte {
			l[39] = bytes.Replace(l[39], []byte(`PASS`), []byte(`FAIL`), 1)
			return l
		}, nil, nil, []want{{ProblemEdited, 40, 39, 0, "last one the checkpoint covers"}, {ProblemCheckpoint, 40, 39, 0, ""}}},
		{"chain rewritten after an edit", func(t *testing.T, l [][]byte) [][]byte {
			l[20] = bytes.Replace(l[20], []byte(`"alice"`), []byte(`"bob"`), 1)
			for i := 21; i < len(l); i++ {
				r := mustRecord(t, l[i])
				r.Prev = leafOfLine(l[i-1])
				l[i] = encode(t, r)
			}
			return l
		}, nil, nil, []want{{ProblemEdited, 24, 23, 0, "records 16..23 were rewritten"}, {ProblemCheckpoint, 24, 23, 0, ""}}},
		{"forged checkpoint", func(t *testing.T, l [][]byte) [][]byte { return l }, func(cps []CheckpointFile) []CheckpointFile {
			// Claim the log had 41 records at checkpoint 5.
			cps[4].Note = bytes.Replace(cps[4].Note, []byte("\n40\n"), []byte("\n41\n"), 1)
			return cps
		}, nil, []want{{ProblemSignature, 0, -1, 0, "invalid"}}},
		{"wrong key", func(t *testing.T, l [][]byte) [][]byte { return l }, nil, otherKey,
			[]want{{ProblemSignature, 0, -1, 0, "not signed by key"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lines := tc.tamper(t, base.clone())
			cps := slices.Clone(base.cps)
			for i := range cps {
				cps[i].Note = bytes.Clone(cps[i].Note)
			}
			if tc.cps != nil {
				cps = tc.cps(cps)
			}
			key := base.v
			if tc.key != nil {
				key = tc.key
			}
			rep, err := Verify(context.Background(), bytes.NewReader(bytes.Join(lines, nil)), VerifyOptions{Checkpoints: cps, Verifier: key})
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.want) == 0 {
				if !rep.Intact() || rep.Covered != 40 {
					t.Fatalf("intact log: problems %v, covered %d", rep.Problems, rep.Covered)
				}
				return
			}
			if rep.Intact() {
				t.Fatal("tampering not detected")
			}
			if len(rep.Problems) < len(tc.want) {
				t.Fatalf("problems %v, want at least %d", rep.Problems, len(tc.want))
			}
			for i, w := range tc.want {
				p := rep.Problems[i]
				if p.Kind != w.kind || p.Line != w.line || p.Record != w.record || p.Count != w.count || !strings.Contains(p.Detail, w.detail) {
					t.Errorf("problem %d: %s\n   want kind %s line %d record %d count %d detail containing %q\n   all: %v",
						i, p, w.kind, w.line, w.record, w.count, w.detail, rep.Problems)
				}
			}
		})
	}
}

// TestVerifyAgreesWithTlog checks the streaming root against tlog's own
// TreeHash for every size up to 70.
func TestFrontierMatchesTlog(t *testing.T) {
	t.Parallel()
	var stored []tlog.Hash
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	var fr frontier
	for n := int64(0); n <= 70; n++ {
		want, err := tlog.TreeHash(n, r)
		if err != nil {
			t.Fatal(err)
		}
		if got := fr.root(); got != want {
			t.Fatalf("size %d: frontier root %s, tlog %s", n, got, want)
		}
		leaf := tlog.RecordHash([]byte(fmt.Sprint("record ", n)))
		hs, err := tlog.StoredHashesForRecordHash(n, leaf, r)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
		fr.add(leaf)
	}
}

func TestVerifyWithoutCheckpointsSaysSo(t *testing.T) {
	t.Parallel()
	base := newBaseLog(t)
	rep, err := Verify(context.Background(), bytes.NewReader(bytes.Join(base.lines[:30], nil)), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A station always signs checkpoints: none at all is a finding.
	if rep.Intact() || rep.Problems[0].Kind != ProblemNoCheckpoint {
		t.Fatalf("log without checkpoints: problems %v notes %v", rep.Problems, rep.Notes)
	}
	// Unless the user says the log never had any; the cut run still shows.
	rep, err = Verify(context.Background(), bytes.NewReader(bytes.Join(base.lines[:30], nil)), VerifyOptions{NoCheckpoints: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Intact() || len(rep.Notes) == 0 || !strings.Contains(rep.Notes[0], "no checkpoint") || !strings.Contains(rep.Notes[0], "run r-3") {
		t.Fatalf("log said to have no checkpoints: problems %v notes %v", rep.Problems, rep.Notes)
	}
	// An empty log has nothing to checkpoint, nor has a station killed in
	// its first run, before any result.
	if rep, err := Verify(context.Background(), bytes.NewReader(nil), VerifyOptions{}); err != nil || !rep.Intact() {
		t.Fatalf("empty log: %v %v", err, rep.Problems)
	}
	rep, err = Verify(context.Background(), bytes.NewReader(bytes.Join(base.lines[:5], nil)), VerifyOptions{})
	if err != nil || !rep.Intact() || len(rep.Notes) == 0 || !strings.Contains(rep.Notes[0], "run r-0") {
		t.Fatalf("first run killed before its result: %v %v %v", err, rep.Problems, rep.Notes)
	}
}

// TestVerifyCheckpointRemovedTail: the newest checkpoint is removed and the
// log cut after the one before. A result the station would have
// checkpointed, with no checkpoint covering it, is a finding; a cut inside
// a run after the last checkpoint cannot be proven, but the run left with
// no result is named.
func TestVerifyCheckpointRemovedTail(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		keep    int // records left
		intact  bool
		problem string
		note    string
	}{
		{"result left without its checkpoint", 24, false, "record 23 ends a run", "records 16..23"},
		{"cut inside the next run", 20, true, "", "run r-2 (device 24:0a:c4:00:00:02, started at record 16) started with no result"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			l := openTest(t, testConfig(t, dir))
			writeRuns(t, l, 0, 3)
			lay := NewLayout(dir)
			lines := readLines(t, lay.Log)
			if len(lines) != 24 {
				t.Fatalf("%d records", len(lines))
			}
			cps := mustRead(t, lay.Checkpoints)
			var kept []CheckpointFile
			for _, c := range cps {
				if filepath.Base(c.Name) != "00000000000000000024.note" {
					kept = append(kept, c)
				}
			}
			if len(kept) != len(cps)-1 {
				t.Fatalf("checkpoints %d", len(cps))
			}
			rep, err := Verify(context.Background(), bytes.NewReader(bytes.Join(lines[:tc.keep], nil)), VerifyOptions{Checkpoints: kept, Verifier: l.Verifier(), AllCheckpoints: true})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Intact() != tc.intact || (!tc.intact && (rep.Problems[0].Kind != ProblemNoCheckpoint || !strings.Contains(rep.Problems[0].Detail, tc.problem))) {
				t.Fatalf("problems %v", rep.Problems)
			}
			if len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], tc.note) {
				t.Fatalf("notes %v", rep.Notes)
			}
		})
	}
}

func TestVerifyFileInDataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := openTest(t, testConfig(t, dir))
	writeRuns(t, l, 0, 2)
	appendAll(t, l, runEntries(2, mac(2))[:3]) // a run in progress
	rep := verifyDir(t, dir)
	if !rep.Intact() || rep.Covered != 16 || rep.Records != 19 {
		t.Fatalf("covered %d records %d problems %v", rep.Covered, rep.Records, rep.Problems)
	}
	if len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "records 16..18") {
		t.Fatalf("notes %v", rep.Notes)
	}
	// The checkpoint files are what they claim to be.
	for _, cf := range mustRead(t, filepath.Join(dir, "checkpoints")) {
		if _, err := OpenCheckpoint(cf.Note, l.Verifier()); err != nil {
			t.Fatalf("%s: %v", cf.Name, err)
		}
	}
}

func mustRead(t testing.TB, dir string) []CheckpointFile {
	t.Helper()
	cps, err := ReadCheckpoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	return cps
}

// A cancelled context stops a long verification.
func TestVerifyHonoursContext(t *testing.T) {
	t.Parallel()
	base := newBaseLog(t)
	var big bytes.Buffer
	for range 200 {
		big.Write(bytes.Join(base.lines, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Verify(ctx, bytes.NewReader(big.Bytes()), VerifyOptions{}); err == nil {
		t.Fatal("Verify ignored a cancelled context")
	}
}
