package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func TestProveDevice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, testConfig(t, dir))
	writeRuns(t, l, 0, 5)
	appendAll(t, l, runEntries(9, mac(2))[:3]) // device 2 again, after the last checkpoint

	p, err := l.ProveDevice(ctx, strings.ToUpper(mac(2)))
	if err != nil {
		t.Fatal(err)
	}
	if p.Device != mac(2) || p.TreeSize != 40 || len(p.Records) != 8 || len(p.Uncovered) != 3 || p.Uncovered[0] != 40 {
		t.Fatalf("proofs: device %s size %d records %d uncovered %v", p.Device, p.TreeSize, len(p.Records), p.Uncovered)
	}
	for i, inc := range p.Records {
		if inc.Index != int64(16+i) {
			t.Fatalf("record %d has index %d, want %d", i, inc.Index, 16+i)
		}
	}
	if err := p.Check(l.Verifier()); err != nil {
		t.Fatalf("Check: %v", err)
	}

	// What an auditor gets: JSON, checked with only the public key.
	js, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back Proofs
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	v, _ := ReadVerifier(NewLayout(dir).PublicKey)
	if err := back.Check(v); err != nil {
		t.Fatalf("Check after JSON round trip: %v", err)
	}

	_, otherV, _ := note.GenerateKey(newSeededRand(5), l.Origin())
	ov, _ := note.NewVerifier(otherV)
	tests := []struct {
		name   string
		tamper func(p *Proofs)
		key    note.Verifier
		want   string
	}{
		{"record edited", func(p *Proofs) {
			p.Records[3].Record = strings.Replace(p.Records[3].Record, `"ok"`, `"fail"`, 1)
		}, nil, "leaf"},
		{"record and leaf edited", func(p *Proofs) {
			p.Records[3].Record = strings.Replace(p.Records[3].Record, `"ok"`, `"fail"`, 1)
			p.Records[3].Leaf = tlog.RecordHash([]byte(p.Records[3].Record))
		}, nil, "record 19"},
		{"proof hash changed", func(p *Proofs) { p.Records[0].Proof[1][0] ^= 1 }, nil, "record 16"},
		{"index changed", func(p *Proofs) { p.Records[0].Index = 17 }, nil, "record 17"},
		{"root changed", func(p *Proofs) { p.Root[0] ^= 1 }, nil, "differ from the signed checkpoint"},
		{"other station's key", func(p *Proofs) {}, ov, "not signed by key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var q Proofs
			json.Unmarshal(js, &q)
			tc.tamper(&q)
			key := v
			if tc.key != nil {
				key = tc.key
			}
			err := q.Check(key)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestProveRefusesMismatchedLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, testConfig(t, dir))
	writeRuns(t, l, 0, 3)
	sc, _ := l.Latest()
	l.Close(ctx)
	lines := readLines(t, NewLayout(dir).Log)
	for _, tc := range []struct {
		name  string
		lines [][]byte
	}{
		{"edited", func() [][]byte {
			c := append([][]byte(nil), lines...)
			c[4] = bytes.Replace(c[4], []byte("app0"), []byte("app1"), 1)
			return c
		}()},
		{"truncated", lines[:20]},
	} {
		_, err := ProveDevice(ctx, bytes.NewReader(bytes.Join(tc.lines, nil)), sc, mac(0))
		var me *MismatchError
		if !errors.As(err, &me) {
			t.Errorf("%s: %v, want a MismatchError", tc.name, err)
		}
	}
	f, _ := os.Open(NewLayout(dir).Log)
	defer f.Close()
	if _, err := ProveRecords(ctx, f, sc, 24); err == nil {
		t.Error("ProveRecords of a record beyond the checkpoint succeeded")
	}
}

// ProveRecord gives the same inclusion proof as ProveDevice, keeps working
// as the log grows (it extends its stored hashes instead of re-reading the
// log), and refuses a line that is not the record at that index.
func TestProveRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, testConfig(t, dir))
	if _, err := l.ProveRecord(ctx, 0, nil); err == nil {
		t.Error("a proof without any checkpoint")
	}
	var receipts []Receipt
	for run := range 6 {
		receipts = append(receipts, appendAll(t, l, runEntries(run, mac(run)))...) // each run ends in a checkpoint
		last := receipts[len(receipts)-1]
		p, err := l.ProveRecord(ctx, last.Record.Seq, last.Line)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if err := p.Check(l.Verifier()); err != nil {
			t.Fatalf("run %d: Check: %v", run, err)
		}
		all, err := l.ProveDevice(ctx, mac(run))
		if err != nil {
			t.Fatal(err)
		}
		want := all.Records[len(all.Records)-1]
		got := p.Records[0]
		if got.Index != want.Index || got.Leaf != want.Leaf || !slices.Equal(got.Proof, want.Proof) || p.Root != all.Root {
			t.Fatalf("run %d: ProveRecord %+v differs from ProveDevice %+v", run, got, want)
		}
		if l.proofs.n != l.Size() {
			t.Fatalf("run %d: stored tree covers %d records, want the checkpoint's %d", run, l.proofs.n, l.Size())
		}
	}
	// An early record against the newest checkpoint.
	first := receipts[0]
	if p, err := l.ProveRecord(ctx, 0, first.Line); err != nil || p.Check(l.Verifier()) != nil {
		t.Fatalf("record 0: %v", err)
	}
	// A line that is not record 1.
	if _, err := l.ProveRecord(ctx, 1, first.Line); err == nil {
		t.Error("record 0's line proved as record 1")
	}
	if _, err := l.ProveRecord(ctx, l.Size(), first.Line); err == nil {
		t.Error("a record beyond the checkpoint proved")
	}
}
