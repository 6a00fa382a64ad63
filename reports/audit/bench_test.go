package audit

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Benchmarks compare the log with a raw sequential write or read of the
// same bytes, with fsync at the same points, in the same run:
//
//	go test -run '^$' -bench . -benchtime 2000x ./reports/audit
//
// BenchmarkAppend/P vs BenchmarkRawWrite/P (records/s, MB/s) and
// BenchmarkVerify vs BenchmarkRawRead (1,000,000 records, MB/s).

// benchLines makes n chained record lines (newline included) the shape of
// real runs, without a Log (so without fsync), for the read benchmarks and
// as the bytes the raw write baseline writes.
func benchLines(tb testing.TB, n int) ([][]byte, tlog.Hash) {
	tb.Helper()
	now := fakeClock()
	var prev tlog.Hash
	var fr frontier
	lines := make([][]byte, 0, n)
	for i := 0; len(lines) < n; i++ {
		for _, e := range runEntries(i, mac(i%4096)) {
			if len(lines) == n {
				break
			}
			r := Record{Seq: int64(len(lines)), Time: now().Truncate(1000), Station: "st-01", Operator: e.Operator,
				Device: e.Device, Run: e.Run, Event: e.Event, ID: "ev-0123456789abcdef", Result: e.Result, Details: e.Details, Prev: prev}
			b, err := r.Marshal()
			if err != nil {
				tb.Fatal(err)
			}
			prev = tlog.RecordHash(b)
			fr.add(prev)
			lines = append(lines, append(b, '\n'))
		}
	}
	return lines, fr.root()
}

func linesBytes(lines [][]byte) int64 {
	var n int64
	for _, l := range lines {
		n += int64(len(l))
	}
	return n
}

var policies = []SyncPolicy{SyncEveryRecord, SyncRunBoundary}

// BenchmarkAppend appends records shaped like runs (8 a run: run.start …
// result, a checkpoint signed at each result).
func BenchmarkAppend(b *testing.B) {
	for _, p := range policies {
		b.Run(p.String(), func(b *testing.B) {
			cfg := testConfig(b, b.TempDir())
			cfg.Sync = p
			l := openTest(b, cfg)
			ctx := context.Background()
			var bytes int64
			var n int
			runs := 0
			es := runEntries(0, mac(0))
			for b.Loop() {
				e := es[n%8]
				if n%8 == 0 {
					es = runEntries(runs, mac(runs%4096))
					e = es[0]
					runs++
				}
				rc, err := l.Append(ctx, e)
				if err != nil {
					b.Fatal(err)
				}
				bytes += int64(len(rc.Line) + 1)
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(bytes)/1e6/b.Elapsed().Seconds(), "MB/s")
			b.ReportMetric(float64(bytes)/float64(n), "B/record")
		})
	}
}

// BenchmarkRawWrite writes the same kind of lines with plain Write calls,
// fsyncing where the policy does: every line, or at each run's first and
// last line (run.start and result).
func BenchmarkRawWrite(b *testing.B) {
	lines, _ := benchLines(b, 8*1024)
	for _, p := range policies {
		b.Run(p.String(), func(b *testing.B) {
			f, err := os.OpenFile(filepath.Join(b.TempDir(), "raw.log"), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			var bytes int64
			var n int
			for b.Loop() {
				line := lines[n%len(lines)]
				if _, err := f.Write(line); err != nil {
					b.Fatal(err)
				}
				if p == SyncEveryRecord || n%8 == 0 || n%8 == 7 {
					if err := f.Sync(); err != nil {
						b.Fatal(err)
					}
				}
				bytes += int64(len(line))
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(bytes)/1e6/b.Elapsed().Seconds(), "MB/s")
		})
	}
}

const verifyRecords = 1_000_000

// writeBenchLog writes verifyRecords lines and a signed checkpoint of all
// of them.
func writeBenchLog(b *testing.B) (path string, size int64, opts VerifyOptions) {
	b.Helper()
	lines, root := benchLines(b, verifyRecords)
	path = filepath.Join(b.TempDir(), "audit.log")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for _, l := range lines {
		w.Write(l)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	skey, vkey, _ := note.GenerateKey(newSeededRand(3), "fuseline/audit/st-01")
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	sc, err := SignCheckpoint(Checkpoint{Origin: "fuseline/audit/st-01", Size: verifyRecords, Root: root}, s)
	if err != nil {
		b.Fatal(err)
	}
	return path, linesBytes(lines), VerifyOptions{Checkpoints: []CheckpointFile{{Name: "bench", Note: sc.Note}}, Verifier: v}
}

// BenchmarkVerify verifies a 1,000,000-record log against a checkpoint of
// all of it (file in the page cache, as for BenchmarkRawRead).
func BenchmarkVerify(b *testing.B) {
	path, size, opts := writeBenchLog(b)
	for b.Loop() {
		rep, err := VerifyFile(context.Background(), path, opts)
		if err != nil {
			b.Fatal(err)
		}
		if !rep.Intact() || rep.Covered != verifyRecords {
			b.Fatalf("bench log does not verify: %v", rep.Problems)
		}
	}
	b.ReportMetric(float64(size)*float64(b.N)/1e6/b.Elapsed().Seconds(), "MB/s")
	b.ReportMetric(float64(verifyRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkRawRead reads the same 1,000,000-record file sequentially.
func BenchmarkRawRead(b *testing.B) {
	path, size, _ := writeBenchLog(b)
	buf := make([]byte, 1<<20)
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		var n int64
		for {
			k, err := f.Read(buf)
			n += int64(k)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		f.Close()
		if n != size {
			b.Fatalf("read %d bytes, want %d", n, size)
		}
	}
	b.ReportMetric(float64(size)*float64(b.N)/1e6/b.Elapsed().Seconds(), "MB/s")
	b.ReportMetric(float64(verifyRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkParseRecord is the per-record parse cost inside Verify.
func BenchmarkParseRecord(b *testing.B) {
	lines, _ := benchLines(b, 1024)
	var n int
	var bytes int64
	for b.Loop() {
		line := lines[n%len(lines)]
		line = line[:len(line)-1]
		if _, err := ParseRecord(line); err != nil {
			b.Fatal(err)
		}
		bytes += int64(len(line))
		n++
	}
	b.ReportMetric(float64(bytes)/1e6/b.Elapsed().Seconds(), "MB/s")
}

// BenchmarkRecordHash is the SHA-256 leaf hash of one record, the floor
// under Verify's per-record cost on this CPU.
func BenchmarkRecordHash(b *testing.B) {
	lines, _ := benchLines(b, 1024)
	var n int
	var bytes int64
	for b.Loop() {
		line := lines[n%len(lines)]
		tlog.RecordHash(line[:len(line)-1])
		bytes += int64(len(line) - 1)
		n++
	}
	b.ReportMetric(float64(bytes)/1e6/b.Elapsed().Seconds(), "MB/s")
}

// BenchmarkProveResult: what proving one board's result record costs on a
// station whose log already holds 5,000 boards (40,000 records): ProveDevice
// re-reads and re-hashes the whole log each time; ProveRecord extends the
// log's stored hashes by the records appended since the previous proof.
func BenchmarkProveResult(b *testing.B) {
	for _, mode := range []string{"ProveDevice", "ProveRecord"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			cfg := testConfig(b, b.TempDir())
			cfg.Sync = SyncRunBoundary
			l := openTest(b, cfg)
			writeRuns(b, l, 0, 5000)
			run := 5000
			for b.Loop() {
				rcs := appendAll(b, l, runEntries(run, mac(run)))
				last := rcs[len(rcs)-1]
				var err error
				if mode == "ProveDevice" {
					_, err = l.ProveDevice(ctx, mac(run))
				} else {
					_, err = l.ProveRecord(ctx, last.Record.Seq, last.Line)
				}
				if err != nil {
					b.Fatal(err)
				}
				run++
			}
		})
	}
}
