package audit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"fuseline/internal/inputfile"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// MaxLine bounds one line of a log: a record is a few KiB at most (32
// details of 256 bytes), so a longer line means the file is not a log.
const MaxLine = 1 << 20

// ErrNotLog: the file cannot be an audit log (a line longer than MaxLine).
var ErrNotLog = errors.New("audit: not an audit log")

// ProblemKind classifies what Verify found.
type ProblemKind string

// Problem kinds.
const (
	ProblemEdited     ProblemKind = "edited"     // a record's bytes changed
	ProblemDeleted    ProblemKind = "deleted"    // records missing from the middle
	ProblemInserted   ProblemKind = "inserted"   // a line that is not part of the chain
	ProblemReordered  ProblemKind = "reordered"  // records present but out of order
	ProblemTruncated  ProblemKind = "truncated"  // records a checkpoint covers are missing at the end
	ProblemTorn       ProblemKind = "torn"       // the last line is incomplete (a write was cut short)
	ProblemChain      ProblemKind = "chain"      // the chain breaks in a way not classified above
	ProblemCheckpoint ProblemKind = "checkpoint" // the records do not hash to a checkpoint's signed root
	ProblemSignature  ProblemKind = "signature"  // a checkpoint is not validly signed by the station key
	// ProblemNoCheckpoint: a checkpoint the station always signs is not
	// there: none at all beside a log with records, or none covering a
	// run's result record.
	ProblemNoCheckpoint ProblemKind = "checkpoint-missing"
)

// Problem is one finding of Verify.
type Problem struct {
	Kind ProblemKind `json:"kind"`
	// Line is the 1-based line of the log the finding is about; 0 when it
	// is not about one line (a checkpoint signature).
	Line int64 `json:"line,omitempty"`
	// Record is the 0-based index (seq) of the record concerned; -1 if none.
	Record int64 `json:"record"`
	// Count is the number of records deleted, truncated or inserted, if
	// more than one.
	Count  int64  `json:"count,omitempty"`
	Detail string `json:"detail"`
}

func (p Problem) String() string {
	where := ""
	switch {
	case p.Line > 0 && p.Record >= 0:
		where = fmt.Sprintf("line %d (record %d): ", p.Line, p.Record)
	case p.Line > 0:
		where = fmt.Sprintf("line %d: ", p.Line)
	case p.Record >= 0:
		where = fmt.Sprintf("record %d: ", p.Record)
	}
	return where + string(p.Kind) + ": " + p.Detail
}

// CheckpointResult is what Verify made of one checkpoint.
type CheckpointResult struct {
	Name   string    `json:"name"`
	Origin string    `json:"origin,omitempty"`
	Size   int64     `json:"size"`
	Root   tlog.Hash `json:"root"`
	Signed bool      `json:"signed"` // the signature verifies with the given key
	Match  bool      `json:"match"`  // the log's first Size records hash to Root
}

// Report is the result of Verify.
type Report struct {
	// Records is the number of complete lines (a torn last line is not
	// counted).
	Records int64 `json:"records"`
	// Root is the Merkle root of all complete lines.
	Root        tlog.Hash          `json:"root"`
	Checkpoints []CheckpointResult `json:"checkpoints"`
	// Covered is the size of the largest checkpoint that is signed and
	// matches: records before it are pinned, records after it are not.
	Covered  int64     `json:"covered"`
	Problems []Problem `json:"problems"`
	// Notes are limits of what could be checked, not problems.
	Notes []string `json:"notes,omitempty"`
}

// Intact reports whether Verify found no problem.
func (r *Report) Intact() bool { return len(r.Problems) == 0 }

// VerifyOptions says what to check a log against.
type VerifyOptions struct {
	// Checkpoints are signed checkpoint notes (a data directory's
	// checkpoints/, or one given by the auditor).
	Checkpoints []CheckpointFile
	// Verifier is the station's public key; required if Checkpoints is not
	// empty.
	Verifier note.Verifier
	// NoCheckpoints says the log never had checkpoints (not written by a
	// station's Log). Without it, a log with records and no checkpoint is a
	// finding: a station signs one at every result and on close, so their
	// absence means they were removed, and with them the only way to see
	// records cut off the end.
	NoCheckpoints bool
	// AllCheckpoints says Checkpoints are every checkpoint the station wrote
	// (its checkpoints/ directory), not a few an auditor chose: then a
	// result record no checkpoint covers is a finding, since the station
	// signs one after every result.
	AllCheckpoints bool
}

// VerifyFile is Verify on the file at path.
func VerifyFile(ctx context.Context, path string, opts VerifyOptions) (*Report, error) {
	// A regular file only: a FIFO or a link to /dev/zero is refused, not
	// read forever. The log itself is streamed, never read whole.
	f, _, err := inputfile.Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("audit: verify: %w", err)
	}
	defer f.Close()
	return Verify(ctx, f, opts)
}

// Verify checks a log: every line a canonical record, record i has seq i,
// each record's prev is the leaf hash of the one before, the last line is
// complete, and the records hash to the root of every checkpoint that is
// signed by opts.Verifier. Findings go into the Report with the line and
// record they concern; the error is only for I/O and bad options.
//
// Verify reads r once in O(log n) memory. Only if it finds breaks does it
// read r again (hence the Seeker) to look at a few lines around each break
// and say whether a record was edited, deleted, inserted or moved.
func Verify(ctx context.Context, r io.ReadSeeker, opts VerifyOptions) (*Report, error) {
	rep, _, err := verify(ctx, r, opts)
	return rep, err
}

func verify(ctx context.Context, r io.ReadSeeker, opts VerifyOptions) (*Report, *pass1, error) {
	if len(opts.Checkpoints) > 0 && opts.Verifier == nil {
		return nil, nil, errors.New("audit: verify: checkpoints given without the station's public key")
	}
	rep := &Report{Problems: []Problem{}, Checkpoints: []CheckpointResult{}}
	var cps []SignedCheckpoint
	var cpIdx []int
	for _, cf := range opts.Checkpoints {
		sc, err := OpenCheckpoint(cf.Note, opts.Verifier)
		res := CheckpointResult{Name: cf.Name}
		if err != nil {
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemSignature, Record: -1,
				Detail: fmt.Sprintf("checkpoint %s: %v", cf.Name, err)})
			rep.Checkpoints = append(rep.Checkpoints, res)
			continue
		}
		res.Origin, res.Size, res.Root, res.Signed = sc.Origin, sc.Size, sc.Root, true
		rep.Checkpoints = append(rep.Checkpoints, res)
		cps = append(cps, sc)
		cpIdx = append(cpIdx, len(rep.Checkpoints)-1)
	}
	sizes := make([]int64, 0, len(cps))
	for _, c := range cps {
		sizes = append(sizes, c.Size)
	}
	p1, err := firstPass(ctx, r, sizes)
	if err != nil {
		return nil, nil, err
	}
	rep.Records, rep.Root = p1.n, p1.fr.root()

	var chain []Problem
	if len(p1.anomalies) > 0 {
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return nil, nil, fmt.Errorf("audit: verify: rewind for diagnosis: %w", err)
		}
		if chain, err = diagnose(ctx, r, p1); err != nil {
			return nil, nil, err
		}
	}
	if len(p1.tail) > 0 {
		chain = append(chain, p1.tornProblem(sizes))
	}

	// Checkpoints: match, truncation.
	var cpProblems []Problem
	truncatedAt := int64(-1)
	for i, c := range cps {
		res := &rep.Checkpoints[cpIdx[i]]
		if c.Size > p1.n {
			if p1.lastSeq+1 < c.Size && c.Size > truncatedAt {
				truncatedAt = c.Size
			}
			continue
		}
		root := p1.roots[c.Size]
		res.Match = root == c.Root
		if res.Match {
			rep.Covered = max(rep.Covered, c.Size)
			continue
		}
		cpProblems = append(cpProblems, Problem{Kind: ProblemCheckpoint, Line: c.Size, Record: c.Size - 1,
			Detail: fmt.Sprintf("the first %d records do not hash to the root signed in checkpoint %s", c.Size, cpLabel(opts, cpIdx[i]))})
	}
	if truncatedAt >= 0 {
		first := p1.lastSeq + 1
		chain = append(chain, Problem{Kind: ProblemTruncated, Line: p1.n + 1, Record: first, Count: truncatedAt - first,
			Detail: fmt.Sprintf("a checkpoint covers %d records but the log ends after record %d: records %d..%d are missing at the end", truncatedAt, p1.lastSeq, first, truncatedAt-1)})
	}
	// A checkpoint mismatch with an intact chain before it: the chain cannot
	// see an edit of the last record it covers (nothing after it points at
	// it), or a rewrite of the chain. Name that record.
	if len(cpProblems) > 0 {
		slices.SortFunc(cpProblems, func(a, b Problem) int { return int(a.Line - b.Line) })
		s2 := cpProblems[0].Line
		chainBreakBefore := false
		for _, a := range p1.anomalies {
			if a < s2 {
				chainBreakBefore = true
			}
		}
		if !chainBreakBefore && len(chain) == 0 {
			s1 := int64(0)
			for i, c := range cps {
				if rep.Checkpoints[cpIdx[i]].Match && c.Size < s2 {
					s1 = max(s1, c.Size)
				}
			}
			chain = append(chain, Problem{Kind: ProblemEdited, Line: s2, Record: s2 - 1,
				Detail: fmt.Sprintf("the chain is intact but the records do not match the signed root: record %d (the last one the checkpoint covers) was edited, or records %d..%d were rewritten together with their chain", s2-1, s1, s2-1)})
		}
	}
	slices.SortStableFunc(chain, func(a, b Problem) int { return int(a.Line - b.Line) })
	rep.Problems = append(rep.Problems, chain...)
	rep.Problems = append(rep.Problems, cpProblems...)
	if p1.capped {
		rep.Notes = append(rep.Notes, fmt.Sprintf("more than %d breaks in the chain; only the first %d are diagnosed", maxAnomalies, maxAnomalies))
	}
	switch {
	case len(opts.Checkpoints) == 0 && p1.lastResult >= 0 && !opts.NoCheckpoints:
		// (A station killed before its first result has none yet.)
		rep.Problems = append(rep.Problems, Problem{Kind: ProblemNoCheckpoint, Line: p1.lastResult + 1, Record: p1.lastResult,
			Detail: fmt.Sprintf("no signed checkpoint for a log of %d records with run results: a station signs one at every result and when it closes the log, so they were removed (or not given); records cut off the end cannot be detected without them (if this log never had any, say so: --no-checkpoints)", p1.n)})
		rep.Notes = append(rep.Notes, "no checkpoint given: only the chain was checked"+p1.openRunsText(0))
	case len(opts.Checkpoints) == 0:
		rep.Notes = append(rep.Notes, "no checkpoint given: only the chain was checked, so records cut off the end, or an edit of the last record, cannot be detected"+p1.openRunsText(0))
	case rep.Covered < p1.n:
		if opts.AllCheckpoints && p1.lastResult >= rep.Covered && len(cpProblems) == 0 && truncatedAt < 0 {
			// Every result record is followed by a checkpoint covering it.
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemNoCheckpoint, Line: p1.lastResult + 1, Record: p1.lastResult,
				Detail: fmt.Sprintf("record %d ends a run (result), which the station always checkpoints, but no checkpoint covers it (the last covers %d records): a checkpoint was removed, and records after record %d may have been cut unseen (or the station died between the two writes: its next start and close sign one)", p1.lastResult, rep.Covered, p1.n-1)})
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("records %d..%d come after the last matching checkpoint (size %d); cutting them off would not be detected", rep.Covered, p1.n-1, rep.Covered)+p1.openRunsText(rep.Covered))
	}
	return rep, p1, nil
}

func cpLabel(opts VerifyOptions, i int) string { return opts.Checkpoints[i].Name }

const (
	maxAnomalies = 1000
	window       = 16 // lines looked at on each side of a break
)

// pass1 is the streaming state of a scan: the tree over complete lines,
// the chain, and where it breaks.
type pass1 struct {
	fr        frontier
	n         int64 // complete lines
	bytes     int64 // their bytes, newlines included
	prevLeaf  tlog.Hash
	prevSeq   int64 // seq of the last line (or what it should have been)
	lastSeq   int64 // seq of the last complete line that parsed; -1 if none
	anomalies []int64
	capped    bool
	firstErr  []error // parse error of each anomaly line (nil if it parsed)
	tail      []byte  // an unterminated last line
	roots     map[int64]tlog.Hash
	// lastResult is the line index of the last result record; -1 if none.
	lastResult int64
	// open are the runs started with no result yet, by run ID: what a cut
	// after the last checkpoint leaves visible.
	open map[string]openRun
}

// openRun is a run.start record with no result after it.
type openRun struct {
	line   int64
	device string
}

// openRunsText says which runs started at or after line from have no
// result: the station stopped mid-run, or the records after them were cut.
func (p *pass1) openRunsText(from int64) string {
	var runs []string
	var lines []int64
	for id, o := range p.open {
		if o.line >= from {
			runs = append(runs, id)
			lines = append(lines, o.line)
		}
	}
	if len(runs) == 0 {
		return ""
	}
	idx := make([]int, len(runs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return int(lines[a] - lines[b]) })
	var parts []string
	for _, i := range idx[:min(len(idx), 3)] {
		parts = append(parts, fmt.Sprintf("run %s (device %s, started at record %d)", runs[i], p.open[runs[i]].device, lines[i]))
	}
	more := ""
	if len(idx) > 3 {
		more = fmt.Sprintf(" and %d more", len(idx)-3)
	}
	return fmt.Sprintf("; %s%s started with no result: the station stopped mid-run, or the records after record %d were cut", strings.Join(parts, ", "), more, p.n-1)
}

// scanLines calls fn for each line of r (without its newline), with
// terminated false for a last line that has no newline. The slice is only
// valid during the call.
func scanLines(ctx context.Context, r io.Reader, fn func(line []byte, terminated bool) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	var long []byte
	var count int
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(long)+len(chunk) > MaxLine {
				return fmt.Errorf("%w: line %d is longer than %d bytes", ErrNotLog, count+1, MaxLine)
			}
			long = append(long, chunk...)
			if err := ctx.Err(); err != nil {
				return err
			}
			continue
		}
		if long != nil {
			chunk = append(long, chunk...)
			long = nil
		}
		if len(chunk) > 0 {
			term := chunk[len(chunk)-1] == '\n'
			if term {
				chunk = chunk[:len(chunk)-1]
			}
			if err := fn(chunk, term); err != nil {
				return err
			}
			count++
			if count%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("audit: read log: %w", err)
		}
	}
}

func firstPass(ctx context.Context, r io.Reader, sizes []int64) (*pass1, error) {
	p := &pass1{prevSeq: -1, lastSeq: -1, roots: map[int64]tlog.Hash{}, lastResult: -1, open: map[string]openRun{}}
	want := map[int64]bool{}
	for _, s := range sizes {
		want[s] = true
	}
	if want[0] {
		p.roots[0] = p.fr.root()
	}
	err := scanLines(ctx, r, func(line []byte, term bool) error {
		if !term {
			p.tail = bytes.Clone(line)
			return nil
		}
		leaf := tlog.RecordHash(line)
		rec, err := ParseRecord(line)
		ok := err == nil
		if !ok || rec.Seq != p.prevSeq+1 || rec.Prev != p.prevLeaf {
			if len(p.anomalies) < maxAnomalies {
				p.anomalies = append(p.anomalies, p.n)
				p.firstErr = append(p.firstErr, err)
			} else {
				p.capped = true
			}
		}
		if ok {
			p.prevSeq = rec.Seq
			p.lastSeq = rec.Seq
			switch rec.Event {
			case EventRunStart:
				if rec.Run != "" && len(p.open) < maxAnomalies {
					p.open[rec.Run] = openRun{line: p.n, device: rec.Device}
				}
			case EventResult:
				p.lastResult = p.n
				delete(p.open, rec.Run)
			}
		} else {
			p.prevSeq++
		}
		p.prevLeaf = leaf
		p.fr.add(leaf)
		p.n++
		p.bytes += int64(len(line)) + 1
		if want[p.n] {
			p.roots[p.n] = p.fr.root()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (p *pass1) tornProblem(sizes []int64) Problem {
	pr := Problem{Kind: ProblemTorn, Line: p.n + 1, Record: p.prevSeq + 1}
	covered := false
	for _, s := range sizes {
		if s > p.n {
			covered = true
		}
	}
	if rec, err := ParseRecord(p.tail); err == nil {
		pr.Record = rec.Seq
		pr.Detail = fmt.Sprintf("the last record has no newline (%d bytes): a write was cut short", len(p.tail))
	} else {
		pr.Detail = fmt.Sprintf("the last line is an incomplete record (%d bytes, no newline): a write was cut short", len(p.tail))
	}
	if covered {
		pr.Detail += "; a checkpoint covers it, so this is damage after the fact, not a crash"
	} else {
		pr.Detail += "; no checkpoint covers it, the records before it are unaffected"
	}
	return pr
}

// lineSum is what diagnosis needs of one line.
type lineSum struct {
	line int64
	ok   bool
	err  error
	seq  int64
	prev tlog.Hash
	leaf tlog.Hash
}

func diagnose(ctx context.Context, r io.Reader, p *pass1) ([]Problem, error) {
	// Collect the lines within `window` of every anomaly.
	need := func(i int64) bool {
		j, _ := slices.BinarySearch(p.anomalies, i)
		for _, k := range []int{j - 1, j} {
			if k >= 0 && k < len(p.anomalies) && abs(p.anomalies[k]-i) <= window {
				return true
			}
		}
		return false
	}
	sums := map[int64]*lineSum{}
	var i int64
	err := scanLines(ctx, r, func(line []byte, term bool) error {
		if !term {
			return nil
		}
		if need(i) {
			s := &lineSum{line: i, leaf: tlog.RecordHash(line)}
			rec, err := ParseRecord(line)
			if err == nil {
				s.ok, s.seq, s.prev = true, rec.Seq, rec.Prev
			} else {
				s.err = err
			}
			sums[i] = s
		}
		i++
		return nil
	})
	if err != nil {
		return nil, err
	}
	d := &diagnoser{sums: sums, n: p.n, explained: map[int64]bool{}}
	var out []Problem
	for _, a := range p.anomalies {
		if d.explained[a] {
			continue
		}
		out = append(out, d.classify(a)...)
	}
	return out, nil
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

type diagnoser struct {
	sums      map[int64]*lineSum
	n         int64
	explained map[int64]bool
}

func (d *diagnoser) get(i int64) *lineSum {
	if i == -1 {
		// Before the first record: seq -1, leaf zero (record 0's prev).
		return &lineSum{line: -1, ok: true, seq: -1}
	}
	return d.sums[i]
}

// links reports whether b directly follows a in the chain.
func links(a, b *lineSum) bool {
	return a != nil && b != nil && a.ok && b.ok && b.seq == a.seq+1 && b.prev == a.leaf
}

// classify explains the break at line x (0-based): x does not follow x-1.
// It marks later breaks it explains.
func (d *diagnoser) classify(x int64) []Problem {
	s := d.get(x)
	p := d.get(x - 1)
	L := func(i int64) int64 { return i + 1 } // 1-based line numbers in findings
	if s == nil || p == nil {
		return []Problem{{Kind: ProblemChain, Line: L(x), Record: -1, Detail: "the chain breaks here"}}
	}
	if !s.ok {
		// Unreadable line: its successor cannot point at it either.
		d.explained[x+1] = true
		rec := int64(-1)
		if p.ok {
			rec = p.seq + 1
		}
		return []Problem{{Kind: ProblemEdited, Line: L(x), Record: rec, Detail: "not a valid record: " + s.err.Error()}}
	}
	if !p.ok {
		// Reported with p; s may still be fine.
		if n := d.get(x - 2); n != nil && n.ok && s.seq == n.seq+2 {
			return nil
		}
		return []Problem{{Kind: ProblemChain, Line: L(x), Record: s.seq, Detail: "follows an unreadable line and its seq does not fit"}}
	}
	want := p.seq + 1

	// An exact copy of an earlier line.
	for j := x - 1; j >= x-window && j >= 0; j-- {
		if o := d.get(j); o != nil && o.leaf == s.leaf {
			if n := d.get(x + 1); n != nil && n.ok && n.prev == s.leaf {
				d.explained[x+1] = true
			}
			return []Problem{{Kind: ProblemInserted, Line: L(x), Record: s.seq, Detail: fmt.Sprintf("a copy of line %d", L(j))}}
		}
	}
	// Lines x-j..x-1 inserted, if x links back past them.
	for j := int64(1); j <= window; j++ {
		if m := d.get(x - 1 - j); links(m, s) {
			return d.inserted(x-j, x-1, s.seq, "record %d after them links to the record before them")
		}
	}
	// Records moved: the record that belongs here sits elsewhere nearby.
	if s.seq != want {
		if ps := d.reordered(x, want); ps != nil {
			return ps
		}
	}
	// Lines x..x+k-1 inserted, if a later line links to x-1.
	for k := int64(1); k <= window; k++ {
		if n := d.get(x + k); links(p, n) {
			for i := x + 1; i <= x+k; i++ {
				d.explained[i] = true
			}
			return d.inserted(x, x+k-1, n.seq, "record %d after them links to the record before them")
		}
	}
	n := d.get(x + 1)
	// Only the seq field of line x changed: its neighbours fit around it.
	if s.seq != want && n != nil && n.ok && n.seq == want+1 && s.prev == p.leaf {
		d.explained[x+1] = true
		return []Problem{{Kind: ProblemEdited, Line: L(x), Record: want, Detail: fmt.Sprintf("seq changed from %d to %d", want, s.seq)}}
	}
	if s.seq > want && s.prev != p.leaf {
		cnt := s.seq - want
		return []Problem{{Kind: ProblemDeleted, Line: L(x), Record: want, Count: cnt,
			Detail: fmt.Sprintf("%s missing before this line (seq jumps from %d to %d)", plural(cnt, want), p.seq, s.seq)}}
	}
	if s.seq == want && s.prev != p.leaf {
		if x == 0 {
			return []Problem{{Kind: ProblemEdited, Line: 1, Record: 0, Detail: "the first record's prev is not zero"}}
		}
		return []Problem{{Kind: ProblemEdited, Line: L(x - 1), Record: p.seq,
			Detail: fmt.Sprintf("its hash no longer matches the prev of record %d (line %d)", s.seq, L(x))}}
	}
	if s.seq < want {
		return []Problem{{Kind: ProblemInserted, Line: L(x), Record: s.seq,
			Detail: fmt.Sprintf("claims seq %d, which line %d already had", s.seq, L(x-1-(want-1-s.seq)))}}
	}
	return []Problem{{Kind: ProblemChain, Line: L(x), Record: s.seq, Detail: fmt.Sprintf("does not follow record %d (line %d)", p.seq, L(x-1))}}
}

func plural(n, first int64) string {
	if n == 1 {
		return fmt.Sprintf("record %d is", first)
	}
	return fmt.Sprintf("records %d..%d are", first, first+n-1)
}

func (d *diagnoser) inserted(from, to, nextSeq int64, why string) []Problem {
	var out []Problem
	for i := from; i <= to; i++ {
		rec := int64(-1)
		if s := d.get(i); s != nil && s.ok {
			rec = s.seq
		}
		out = append(out, Problem{Kind: ProblemInserted, Line: i + 1, Record: rec,
			Detail: "not part of the chain: " + fmt.Sprintf(why, nextSeq)})
	}
	return out
}

// reordered looks for the block of lines x..e holding exactly the records
// want..want+(e-x) in some other order, each linking to its predecessor by
// seq. It reports every record not in its place.
func (d *diagnoser) reordered(x, want int64) []Problem {
	seen := map[int64]bool{}
	for e := x; e <= x+window; e++ {
		s := d.get(e)
		if s == nil || !s.ok || s.seq < want || s.seq > want+window || seen[s.seq] {
			return nil
		}
		seen[s.seq] = true
		size := e - x + 1
		if int64(len(seen)) != size {
			continue
		}
		complete := true
		for q := want; q < want+size; q++ {
			if !seen[q] {
				complete = false
				break
			}
		}
		if !complete || size < 2 {
			continue
		}
		// The block holds want..want+size-1. Check each links to its
		// predecessor by hash, wherever it sits.
		bySeq := map[int64]*lineSum{want - 1: d.get(x - 1)}
		for i := x; i <= e; i++ {
			bySeq[d.get(i).seq] = d.get(i)
		}
		for q := want; q < want+size; q++ {
			if !links(bySeq[q-1], bySeq[q]) {
				return nil
			}
		}
		// Report the fewest records that moved: those outside a longest
		// increasing run of seqs (one record moved down shows as one, not
		// as every record it jumped over).
		seqs := make([]int64, 0, size)
		for i := x; i <= e; i++ {
			seqs = append(seqs, d.get(i).seq)
		}
		stay := longestIncreasing(seqs)
		var out []Problem
		for k, q := range seqs {
			if !stay[k] {
				out = append(out, Problem{Kind: ProblemReordered, Line: x + int64(k) + 1, Record: q,
					Detail: fmt.Sprintf("record %d is out of order; it belongs at line %d", q, x+(q-want)+1)})
			}
		}
		for i := x + 1; i <= e+1; i++ {
			d.explained[i] = true
		}
		return out
	}
	return nil
}

// longestIncreasing marks the members of one longest strictly increasing
// subsequence of v (v is small: at most window+1 values).
func longestIncreasing(v []int64) []bool {
	n := len(v)
	length := make([]int, n)
	from := make([]int, n)
	best := -1
	for i := range n {
		length[i], from[i] = 1, -1
		for j := range i {
			if v[j] < v[i] && length[j]+1 > length[i] {
				length[i], from[i] = length[j]+1, j
			}
		}
		if best < 0 || length[i] > length[best] {
			best = i
		}
	}
	keep := make([]bool, n)
	for i := best; i >= 0; i = from[i] {
		keep[i] = true
	}
	return keep
}
