package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"fuseline/reports/syslog"
)

func TestAppendChainsAndCheckpoints(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, testConfig(t, dir))
	var all []Receipt
	for i := range 3 {
		all = append(all, appendAll(t, l, runEntries(i, mac(i)))...)
	}
	var prev tlog.Hash
	var fr frontier
	for i, rc := range all {
		if rc.Record.Seq != int64(i) || rc.TreeSize != int64(i+1) {
			t.Fatalf("record %d: seq %d tree size %d", i, rc.Record.Seq, rc.TreeSize)
		}
		if rc.Record.Prev != prev {
			t.Fatalf("record %d: prev %s, want %s", i, rc.Record.Prev, prev)
		}
		if rc.Leaf != tlog.RecordHash(rc.Line) {
			t.Fatalf("record %d: leaf is not RecordHash(line)", i)
		}
		if rc.Record.Time.Nanosecond()%1000 != 0 {
			t.Fatalf("record %d: time %v not truncated to µs", i, rc.Record.Time)
		}
		prev = rc.Leaf
		fr.add(rc.Leaf)
		isResult := rc.Record.Event == EventResult
		if (rc.Checkpoint != nil) != isResult {
			t.Fatalf("record %d (%s): checkpoint %v", i, rc.Record.Event, rc.Checkpoint != nil)
		}
		if isResult {
			if rc.Checkpoint.Size != rc.TreeSize || rc.Checkpoint.Root != fr.root() || rc.Checkpoint.Origin != "fuseline/audit/st-01" {
				t.Fatalf("record %d: checkpoint %+v does not match the tree", i, rc.Checkpoint.Checkpoint)
			}
			if _, err := OpenCheckpoint(rc.Checkpoint.Note, l.Verifier()); err != nil {
				t.Fatalf("checkpoint does not verify: %v", err)
			}
		}
	}
	lay := NewLayout(dir)
	cps, err := ReadCheckpoints(lay.Checkpoints)
	if err != nil || len(cps) != 3 {
		t.Fatalf("ReadCheckpoints: %d files, %v", len(cps), err)
	}
	if st, err := os.Stat(lay.Key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("station.key mode: %v %v", st.Mode(), err)
	}
	v, err := ReadVerifier(lay.PublicKey)
	if err != nil || v.Name() != "fuseline/audit/st-01" {
		t.Fatalf("station.pub: %v %v", v, err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Reopen and go on: the chain continues across processes.
	l2 := openTest(t, testConfig(t, dir))
	if l2.Size() != 24 {
		t.Fatalf("reopened size %d, want 24", l2.Size())
	}
	rc, err := l2.Append(ctx, Entry{Operator: "bob", Event: EventOperatorSignIn, Result: ResultInfo})
	if err != nil {
		t.Fatal(err)
	}
	if rc.Record.Seq != 24 || rc.Record.Prev != prev {
		t.Fatalf("after reopen: seq %d prev %s, want 24 %s", rc.Record.Seq, rc.Record.Prev, prev)
	}
	if err := l2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rep := verifyDir(t, dir)
	if !rep.Intact() || rep.Records != 25 || rep.Covered != 25 {
		t.Fatalf("verify after close: intact=%v records=%d covered=%d problems=%v", rep.Intact(), rep.Records, rep.Covered, rep.Problems)
	}
}

func verifyDir(t testing.TB, dir string) *Report {
	t.Helper()
	lay := NewLayout(dir)
	cps, err := ReadCheckpoints(lay.Checkpoints)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ReadVerifier(lay.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyFile(context.Background(), lay.Log, VerifyOptions{Checkpoints: cps, Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestCheckpointEvery(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, t.TempDir())
	cfg.CheckpointEvery = 5
	l := openTest(t, cfg)
	var sizes []int64
	for i := range 12 {
		rc, err := l.Append(context.Background(), Entry{Operator: "alice", Event: EventConfigChange, Result: ResultInfo, Details: Details{"n": fmt.Sprint(i)}})
		if err != nil {
			t.Fatal(err)
		}
		if rc.Checkpoint != nil {
			sizes = append(sizes, rc.Checkpoint.Size)
		}
	}
	if fmt.Sprint(sizes) != "[5 10]" {
		t.Fatalf("checkpoints at %v, want [5 10]", sizes)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	cps, _ := ReadCheckpoints(NewLayout(cfg.Dir).Checkpoints)
	if len(cps) != 3 || !strings.HasSuffix(cps[2].Name, checkpointName(12)) {
		t.Fatalf("after Close: %d checkpoints, last %v; want 3, the last of size 12", len(cps), cps)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"second opener", func(t *testing.T, dir string) { openTest(t, testConfig(t, dir)) }, "in use by another process"},
		{"key readable by others", func(t *testing.T, dir string) {
			l := openTest(t, testConfig(t, dir))
			l.Close(ctx)
			os.Chmod(NewLayout(dir).Key, 0o644)
		}, "chmod 600"},
		{"key lost but checkpoints exist", func(t *testing.T, dir string) {
			l := openTest(t, testConfig(t, dir))
			writeRuns(t, l, 0, 1)
			l.Close(ctx)
			os.Remove(NewLayout(dir).Key)
		}, "restore the key file"},
		{"public key of another station", func(t *testing.T, dir string) {
			l := openTest(t, testConfig(t, dir))
			l.Close(ctx)
			_, vkey, _ := note.GenerateKey(newSeededRand(9), "fuseline/audit/st-01")
			os.WriteFile(NewLayout(dir).PublicKey, []byte(vkey+"\n"), 0o644)
		}, "the private key is"},
		{"checkpoint signed by another key", func(t *testing.T, dir string) {
			l := openTest(t, testConfig(t, dir))
			writeRuns(t, l, 0, 1)
			l.Close(ctx)
			skey, _, _ := note.GenerateKey(newSeededRand(9), "fuseline/audit/st-01")
			s, _ := note.NewSigner(skey)
			sc, _ := SignCheckpoint(Checkpoint{Origin: "fuseline/audit/st-01", Size: 8, Root: tlog.Hash{1}}, s)
			os.WriteFile(filepath.Join(NewLayout(dir).Checkpoints, checkpointName(8)), sc.Note, 0o644)
		}, "signature"},
		{"edited record", func(t *testing.T, dir string) {
			l := openTest(t, testConfig(t, dir))
			writeRuns(t, l, 0, 1)
			l.Close(ctx)
			p := NewLayout(dir).Log
			lines := readLines(t, p)
			lines[2] = bytes.Replace(lines[2], []byte(`"alice"`), []byte(`"mallory"`), 1)
			writeLines(t, p, lines)
		}, "line 3 (record 2): edited"},
		{"bad station", func(t *testing.T, dir string) {}, "station"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			tc.setup(t, dir)
			cfg := testConfig(t, dir)
			if tc.name == "bad station" {
				cfg.Station = "st 01"
			}
			l, err := Open(ctx, cfg)
			if err == nil {
				l.Close(ctx)
				t.Fatalf("Open succeeded, want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open error %q, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "PRIVATE+KEY") {
				t.Fatalf("error quotes the private key: %v", err)
			}
		})
	}
}

func TestTornTail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name       string
		cut        func(last []byte) []byte // the new last line
		refuse     bool
		wantAction string
		wantSize   int64 // records after Open, before the recover record
	}{
		{"half a record", func(last []byte) []byte { return last[:len(last)/2] }, false, "set_aside", 14},
		{"only the newline missing", func(last []byte) []byte { return last[:len(last)-1] }, false, "completed", 15},
		{"half a record, RefuseTorn", func(last []byte) []byte { return last[:len(last)/2] }, true, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cfg := testConfig(t, dir)
			l := openTest(t, cfg)
			writeRuns(t, l, 0, 1)
			appendAll(t, l, runEntries(1, mac(1))[:7]) // a run in progress: no checkpoint covers it
			l.Sync(ctx)
			// Simulate the crash: no Close (it would sign a checkpoint).
			l.f.Close()
			p := NewLayout(dir).Log
			lines := readLines(t, p)
			torn := tc.cut(lines[len(lines)-1])
			lines[len(lines)-1] = torn
			writeLines(t, p, lines)

			rep := verifyDir(t, dir)
			if rep.Intact() || rep.Problems[0].Kind != ProblemTorn || rep.Problems[0].Line != 15 {
				t.Fatalf("verify of torn log: %v", rep.Problems)
			}
			if !strings.Contains(rep.Problems[0].Detail, "no checkpoint covers it") {
				t.Fatalf("torn detail %q", rep.Problems[0].Detail)
			}

			cfg.RefuseTorn = tc.refuse
			l2, err := Open(ctx, cfg)
			if tc.refuse {
				var ve *VerifyError
				if !errors.As(err, &ve) || ve.Report.Problems[0].Kind != ProblemTorn {
					t.Fatalf("Open with RefuseTorn: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer l2.Close(ctx)
			if l2.Size() != tc.wantSize+1 {
				t.Fatalf("size after repair %d, want %d", l2.Size(), tc.wantSize+1)
			}
			f, _ := os.Open(p)
			defer f.Close()
			sc, err := l2.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pr, err := ProveRecords(ctx, f, sc, tc.wantSize)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := ParseRecord([]byte(pr.Records[0].Record))
			if err != nil {
				t.Fatal(err)
			}
			if rec.Event != EventLogRecovered || rec.Details["action"] != tc.wantAction || len(rec.Details["torn_sha256"]) != 64 {
				t.Fatalf("recover record: %+v", rec)
			}
			if tc.wantAction == "set_aside" {
				saved, err := os.ReadFile(filepath.Join(dir, rec.Details["saved_as"]))
				if err != nil || !bytes.Equal(saved, torn) {
					t.Fatalf("saved torn bytes: %q, %v; want %q", saved, err, torn)
				}
			}
			if rep := verifyDir(t, dir); !rep.Intact() {
				t.Fatalf("after repair: %v", rep.Problems)
			}
		})
	}
}

func TestForwarding(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, policy := range []SyncPolicy{SyncRunBoundary, SyncEveryRecord} {
		t.Run(policy.String(), func(t *testing.T) {
			t.Parallel()
			sink := &recordingSink{}
			cfg := testConfig(t, t.TempDir())
			cfg.Sync, cfg.Forward = policy, sink
			l := openTest(t, cfg)
			es := runEntries(0, mac(7))
			for i, e := range es {
				rc, err := l.Append(ctx, e)
				if err != nil {
					t.Fatal(err)
				}
				want := i + 1 // every record at once
				if policy == SyncRunBoundary && i > 0 && i < len(es)-1 {
					want = 1 // only run.start until the result
				}
				if i == len(es)-1 {
					want = len(es) + 1 // and the checkpoint
				}
				if got := len(sink.got()); got != want {
					t.Fatalf("after record %d (%s): %d messages forwarded, want %d", i, e.Event, got, want)
				}
				if rc.Record.Seq != int64(i) {
					t.Fatal("seq")
				}
			}
			msgs := sink.got()
			lines := readLines(t, NewLayout(cfg.Dir).Log)
			for i, m := range msgs[:len(es)] {
				line := bytes.TrimSuffix(lines[i], []byte("\n"))
				if m.Msg != string(line) || sdParam(m, SDRecord, "seq") != fmt.Sprint(i) ||
					sdParam(m, SDRecord, "leaf") != tlog.RecordHash(line).String() ||
					sdParam(m, SDRecord, "tree_size") != fmt.Sprint(i+1) ||
					sdParam(m, SDRecord, "device") != mac(7) || m.MsgID != string(es[i].Event) || m.Hostname != "st-01" {
					t.Fatalf("message %d: %+v", i, m)
				}
				if _, err := m.Format(); err != nil {
					t.Fatalf("message %d does not format: %v", i, err)
				}
			}
			cp := msgs[len(es)]
			if cp.MsgID != "checkpoint" || sdParam(cp, SDCheckpoint, "size") != "8" {
				t.Fatalf("checkpoint message: %+v", cp)
			}
		})
	}
}

func TestForwardingCatchesUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	sink := &recordingSink{fail: errors.New("spool disk full")}
	cfg := testConfig(t, dir)
	cfg.Forward = sink
	l := openTest(t, cfg)
	writeRuns(t, l, 0, 1) // all forwarding fails
	sink.mu.Lock()
	sink.fail = nil
	sink.mu.Unlock()
	writeRuns(t, l, 1, 1) // catches up at run.start, then goes on
	l.Close(ctx)
	checkForwarded(t, sink.got(), 16, []int64{8, 16})

	// A lost cursor (crash before it was written) means re-sending, never a gap.
	os.WriteFile(NewLayout(dir).Cursor, []byte("00000000000000000005 00000000000000000000\n"), 0o640)
	sink2 := &recordingSink{}
	cfg.Forward = sink2
	l2 := openTest(t, cfg)
	l2.Close(ctx)
	got := sink2.got()
	if sdParam(got[0], SDRecord, "seq") != "5" {
		t.Fatalf("resend starts at seq %s, want 5", sdParam(got[0], SDRecord, "seq"))
	}
	if len(got) != 11+2 {
		t.Fatalf("resent %d messages, want 13 (records 5..15 and 2 checkpoints)", len(got))
	}
}

// checkForwarded checks that msgs are records 0..n-1 in order with the
// checkpoints of the given sizes right after the record that completes them.
func checkForwarded(t *testing.T, msgs []syslog.Message, n int64, cps []int64) {
	t.Helper()
	var seq int64
	var cpi int
	for i, m := range msgs {
		if m.MsgID == "checkpoint" {
			if cpi >= len(cps) || sdParam(m, SDCheckpoint, "size") != fmt.Sprint(cps[cpi]) || cps[cpi] != seq {
				t.Fatalf("message %d: checkpoint of size %s after record %d", i, sdParam(m, SDCheckpoint, "size"), seq-1)
			}
			cpi++
			continue
		}
		if got := sdParam(m, SDRecord, "seq"); got != fmt.Sprint(seq) {
			t.Fatalf("message %d: record seq %s, want %d", i, got, seq)
		}
		seq++
	}
	if seq != n || cpi != len(cps) {
		t.Fatalf("forwarded %d records and %d checkpoints, want %d and %d", seq, cpi, n, len(cps))
	}
}

func TestConcurrentAppends(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, testConfig(t, dir))
	var wg sync.WaitGroup
	for slot := range 8 {
		wg.Go(func() {
			for _, e := range runEntries(slot, mac(slot)) {
				if _, err := l.Append(ctx, e); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	l.Close(ctx)
	if rep := verifyDir(t, dir); !rep.Intact() || rep.Records != 64 {
		t.Fatalf("records %d problems %v", rep.Records, rep.Problems)
	}
	l2 := openTest(t, testConfig(t, dir))
	for slot := range 8 {
		p, err := l2.ProveDevice(ctx, mac(slot))
		if err != nil || len(p.Records) != 8 {
			t.Fatalf("device %d: %v records, %v", slot, len(p.Records), err)
		}
	}
}

func TestAppendRejectsBadEntries(t *testing.T) {
	t.Parallel()
	l := openTest(t, testConfig(t, t.TempDir()))
	ok := Entry{Operator: "alice", Device: "24:0A:C4:00:00:01", Event: EventIntake, Result: ResultOK}
	tests := []struct {
		name  string
		edit  func(e *Entry)
		field string
	}{
		{"no operator", func(e *Entry) { e.Operator = "" }, "operator"},
		{"operator with newline", func(e *Entry) { e.Operator = "a\nb" }, "operator"},
		{"bad MAC", func(e *Entry) { e.Device = "24:0a:c4" }, "device"},
		{"no event", func(e *Entry) { e.Event = "" }, "event"},
		{"event with upper case", func(e *Entry) { e.Event = "Intake" }, "event"},
		{"unknown result", func(e *Entry) { e.Result = "maybe" }, "result"},
		{"run with space", func(e *Entry) { e.Run = "r 1" }, "run"},
		{"too many details", func(e *Entry) {
			e.Details = Details{}
			for i := range 33 {
				e.Details[fmt.Sprint("k", i)] = "v"
			}
		}, "details"},
		{"details key upper case", func(e *Entry) { e.Details = Details{"Region": "app"} }, "details"},
		{"details value too long", func(e *Entry) { e.Details = Details{"note": strings.Repeat("x", 257)} }, "details[note]"},
		{"details value control char", func(e *Entry) { e.Details = Details{"note": "a\x01"} }, "details[note]"},
	}
	// Sequential: the subtests share one log, and the good entry below
	// must still get seq 0.
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := ok
			tc.edit(&e)
			_, err := l.Append(context.Background(), e)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("Append: %v, want a FieldError for %s", err, tc.field)
			}
		})
	}
	rc, err := l.Append(context.Background(), ok)
	if err != nil || rc.Record.Device != "24:0a:c4:00:00:01" || rc.Record.Seq != 0 {
		t.Fatalf("good entry after rejected ones: %+v %v", rc.Record, err)
	}
}
