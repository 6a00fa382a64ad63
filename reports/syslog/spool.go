package syslog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// SpoolError says where a spool file is damaged.
type SpoolError struct {
	File   string
	Offset int64
	Reason string
}

func (e *SpoolError) Error() string {
	return fmt.Sprintf("syslog: spool %s at offset %d: %s", e.File, e.Offset, e.Reason)
}

// errShortEntry means the bytes end inside an entry (a torn write).
var errShortEntry = errors.New("syslog: spool entry is incomplete")

const (
	segPrefix  = "seg-"
	segSuffix  = ".spool"
	stateFile  = "confirmed"
	stateWidth = 20 // digits in the state file, fixed so a rewrite is one small pwrite
)

// parseEntry parses one spool entry "<seq> <len> <msg>\n" at the start of
// b. It returns the sequence number, the message bytes (aliasing b) and the
// entry's length. errShortEntry means b ends inside the entry; any other
// error is a *SpoolError whose Offset is relative to b.
func parseEntry(b []byte) (seq int64, msg []byte, n int, err error) {
	num := func(at int, what string) (int64, int, error) {
		i := at
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			if i-at > 19 {
				return 0, 0, &SpoolError{Offset: int64(at), Reason: what + " has more than 19 digits"}
			}
		}
		if i == len(b) {
			return 0, 0, errShortEntry
		}
		if i == at || b[i] != ' ' {
			return 0, 0, &SpoolError{Offset: int64(i), Reason: fmt.Sprintf("want a decimal %s then a space, got %q", what, b[i])}
		}
		if i-at > 1 && b[at] == '0' {
			return 0, 0, &SpoolError{Offset: int64(at), Reason: what + " has a leading zero"}
		}
		v, err := strconv.ParseInt(string(b[at:i]), 10, 64)
		if err != nil {
			return 0, 0, &SpoolError{Offset: int64(at), Reason: what + " out of range"}
		}
		return v, i + 1, nil
	}
	seq, at, err := num(0, "sequence number")
	if err != nil {
		return 0, nil, 0, err
	}
	if seq == 0 {
		return 0, nil, 0, &SpoolError{Offset: 0, Reason: "sequence number 0 (they start at 1)"}
	}
	lenAt := at
	l, at, err := num(at, "length")
	if err != nil {
		return 0, nil, 0, err
	}
	if l > int64(len(b)-at) || int64(len(b)-at)-l < 1 {
		if l > 1<<30 {
			return 0, nil, 0, &SpoolError{Offset: int64(lenAt), Reason: fmt.Sprintf("length %d is implausible", l)}
		}
		return 0, nil, 0, errShortEntry
	}
	end := at + int(l)
	if b[end] != '\n' {
		return 0, nil, 0, &SpoolError{Offset: int64(end), Reason: fmt.Sprintf("want newline after %d message bytes, got %q", l, b[end])}
	}
	return seq, b[at:end:end], end + 1, nil
}

// appendEntry is the inverse of parseEntry.
func appendEntry(b []byte, seq int64, msg []byte) []byte {
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(msg)), 10)
	b = append(b, ' ')
	b = append(b, msg...)
	return append(b, '\n')
}

type segment struct {
	first int64 // sequence number of the first entry (from the file name)
	last  int64 // of the last entry; first-1 while empty
	path  string
	f     *os.File
	size  int64
}

type entryRef struct {
	seg *segment
	off int64 // of the message bytes
	n   int
}

// spool is the on-disk queue. It is not safe for concurrent use; the
// Forwarder serialises access.
type spool struct {
	dir       string
	segMax    int64
	log       *slog.Logger
	segs      []*segment
	index     []entryRef // unconfirmed entries: index[i] has seq confirmed+1+i
	next      int64      // sequence number the next entry gets
	confirmed int64
	state     *os.File
}

func openSpool(ctx context.Context, dir string, segMax int64, log *slog.Logger) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("syslog: spool: %w", err)
	}
	s := &spool{dir: dir, segMax: segMax, log: log}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	var err error
	s.state, err = os.OpenFile(filepath.Join(dir, stateFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("syslog: spool state: %w", err)
	}
	st, err := io.ReadAll(s.state)
	if err != nil {
		return nil, fmt.Errorf("syslog: spool state: %w", err)
	}
	if len(st) > 0 {
		v, err := strconv.ParseInt(strings.TrimSpace(string(st)), 10, 64)
		if err != nil || v < 0 {
			return nil, &SpoolError{File: s.state.Name(), Reason: fmt.Sprintf("state %q is not a sequence number", st)}
		}
		s.confirmed = v
	}
	s.next = s.confirmed + 1

	names, err := filepath.Glob(filepath.Join(dir, segPrefix+"*"+segSuffix))
	if err != nil {
		return nil, fmt.Errorf("syslog: spool: %w", err)
	}
	slices.Sort(names) // 20-digit names sort numerically
	for i, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := s.loadSegment(name, i == len(names)-1); err != nil {
			return nil, err
		}
	}
	if s.next <= s.confirmed {
		s.next = s.confirmed + 1
	}
	if err := s.dropConfirmed(); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

func (s *spool) loadSegment(name string, last bool) error {
	base := filepath.Base(name)
	first, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(base, segPrefix), segSuffix), 10, 64)
	if err != nil || first < 1 {
		return &SpoolError{File: name, Reason: "file name does not hold a sequence number"}
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("syslog: spool: %w", err)
	}
	seg := &segment{first: first, last: first - 1, path: name}
	if len(s.segs) > 0 && first != s.next {
		return &SpoolError{File: name, Reason: fmt.Sprintf("segment starts at %d, the previous one ends at %d", first, s.next-1)}
	}
	if len(s.segs) == 0 && first > s.confirmed+1 {
		// The entries before this segment were confirmed and deleted, and
		// the state file (written without fsync) lags behind the deletion.
		s.confirmed = first - 1
		s.next = first
	}
	off := 0
	for off < len(b) {
		seq, msg, n, err := parseEntry(b[off:])
		if errors.Is(err, errShortEntry) && last {
			// A Send that never returned: cut it off, its caller was told.
			s.log.Warn("syslog: spool ends in a torn entry; cutting it off", "file", name, "offset", off, "bytes", len(b)-off)
			if err := os.Truncate(name, int64(off)); err != nil {
				return fmt.Errorf("syslog: spool: %w", err)
			}
			b = b[:off]
			break
		}
		if err != nil {
			if se, ok := errors.AsType[*SpoolError](err); ok {
				se.File, se.Offset = name, se.Offset+int64(off)
				return se
			}
			return &SpoolError{File: name, Offset: int64(off), Reason: "entry is incomplete in a closed segment"}
		}
		if seq != seg.last+1 {
			return &SpoolError{File: name, Offset: int64(off), Reason: fmt.Sprintf("sequence number %d, want %d", seq, seg.last+1)}
		}
		seg.last = seq
		if seq > s.confirmed {
			msgOff := int64(off + n - 1 - len(msg))
			s.index = append(s.index, entryRef{seg: seg, off: msgOff, n: len(msg)})
		}
		off += n
	}
	seg.size = int64(len(b))
	seg.f, err = os.OpenFile(name, os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("syslog: spool: %w", err)
	}
	s.segs = append(s.segs, seg)
	if seg.last >= s.next {
		s.next = seg.last + 1
	}
	return nil
}

// add writes entries for msgs, which must be formatted with the sequence
// numbers s.next, s.next+1, …, and fsyncs.
func (s *spool) add(msgs [][]byte) error {
	if len(msgs) == 0 {
		return nil
	}
	seg := s.active()
	if seg == nil || seg.size >= s.segMax || seg.last+1 != s.next {
		var err error
		if seg, err = s.newSegment(); err != nil {
			return err
		}
	}
	var buf []byte
	refs := make([]entryRef, 0, len(msgs))
	for i, m := range msgs {
		buf = appendEntry(buf, s.next+int64(i), m)
		// The message ends just before the entry's newline.
		refs = append(refs, entryRef{seg: seg, off: seg.size + int64(len(buf)-1-len(m)), n: len(m)})
	}
	if _, err := seg.f.WriteAt(buf, seg.size); err != nil {
		// Cut off whatever part landed so the file stays parseable.
		_ = seg.f.Truncate(seg.size)
		return fmt.Errorf("syslog: spool write: %w", err)
	}
	if err := seg.f.Sync(); err != nil {
		_ = seg.f.Truncate(seg.size)
		return fmt.Errorf("syslog: spool fsync: %w", err)
	}
	seg.size += int64(len(buf))
	seg.last = s.next + int64(len(msgs)) - 1
	s.next += int64(len(msgs))
	s.index = append(s.index, refs...)
	return nil
}

func (s *spool) active() *segment {
	if len(s.segs) == 0 {
		return nil
	}
	return s.segs[len(s.segs)-1]
}

func (s *spool) newSegment() (*segment, error) {
	name := filepath.Join(s.dir, fmt.Sprintf("%s%020d%s", segPrefix, s.next, segSuffix))
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("syslog: spool: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return nil, err
	}
	seg := &segment{first: s.next, last: s.next - 1, path: name, f: f}
	s.segs = append(s.segs, seg)
	return seg, nil
}

// pending returns the number of unconfirmed entries.
func (s *spool) pending() int64 { return int64(len(s.index)) }

// read returns the message with sequence number seq, which must be
// unconfirmed.
func (s *spool) read(seq int64) ([]byte, error) {
	i := seq - s.confirmed - 1
	if i < 0 || i >= int64(len(s.index)) {
		return nil, fmt.Errorf("syslog: spool has no unconfirmed entry %d", seq)
	}
	r := s.index[i]
	b := make([]byte, r.n)
	if _, err := r.seg.f.ReadAt(b, r.off); err != nil {
		return nil, fmt.Errorf("syslog: spool read of entry %d: %w", seq, err)
	}
	return b, nil
}

// confirm records that every entry up to seq was delivered.
func (s *spool) confirm(seq int64) error {
	if seq <= s.confirmed {
		return nil
	}
	if seq >= s.next {
		return fmt.Errorf("syslog: confirm %d beyond last entry %d", seq, s.next-1)
	}
	s.index = s.index[seq-s.confirmed:]
	s.confirmed = seq
	// No fsync: a state file that lags only means duplicates after a crash.
	if _, err := s.state.WriteAt(fmt.Appendf(nil, "%0*d\n", stateWidth, seq), 0); err != nil {
		return fmt.Errorf("syslog: spool state: %w", err)
	}
	return s.dropConfirmed()
}

// dropConfirmed deletes the segments whose entries are all confirmed,
// except the active one (the next entries go there).
func (s *spool) dropConfirmed() error {
	for len(s.segs) > 1 && s.segs[0].last <= s.confirmed {
		seg := s.segs[0]
		seg.f.Close()
		if err := os.Remove(seg.path); err != nil {
			return fmt.Errorf("syslog: spool: %w", err)
		}
		s.segs = s.segs[1:]
	}
	if len(s.index) == 0 && cap(s.index) > 4096 {
		s.index = nil // let a drained backlog's index go
	}
	return nil
}

func (s *spool) close() error {
	var errs []error
	for _, seg := range s.segs {
		if seg.f != nil {
			errs = append(errs, seg.f.Close())
		}
	}
	s.segs = nil
	if s.state != nil {
		errs = append(errs, s.state.Close())
		s.state = nil
	}
	return errors.Join(errs...)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syslog: spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syslog: spool: fsync %s: %w", dir, err)
	}
	return nil
}
