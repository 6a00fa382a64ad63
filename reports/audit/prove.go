package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Inclusion proves that one record is in the tree of a checkpoint.
type Inclusion struct {
	Index int64 `json:"index"`
	// Record is the record line exactly as in the log; its leaf hash is
	// tlog.RecordHash([]byte(Record)).
	Record string    `json:"record"`
	Leaf   tlog.Hash `json:"leaf"`
	// Proof is the RFC 6962 audit path (tlog.RecordProof), leaf to root.
	Proof []tlog.Hash `json:"proof"`
}

// Proofs are inclusion proofs of a device's records (or of chosen records)
// against one signed checkpoint. Everything an auditor needs to check them
// offline is inside, except the station's public key.
type Proofs struct {
	Origin   string    `json:"origin"`
	TreeSize int64     `json:"tree_size"`
	Root     tlog.Hash `json:"root"`
	// Checkpoint is the signed checkpoint note, verbatim.
	Checkpoint string      `json:"checkpoint"`
	Device     string      `json:"device,omitempty"`
	Records    []Inclusion `json:"records"`
	// Uncovered lists the indexes of the device's records appended after
	// the checkpoint: they exist but the checkpoint cannot prove them yet.
	Uncovered []int64 `json:"uncovered,omitempty"`
}

// MismatchError says the log does not hold the tree a checkpoint signs.
type MismatchError struct {
	Size    int64
	Records int64 // complete records in the log
	Reason  string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("audit: log does not match checkpoint of size %d (log has %d records): %s", e.Size, e.Records, e.Reason)
}

// CheckInclusion checks that inc proves its record is record inc.Index of
// the tree c signs. It recomputes the leaf from inc.Record.
func CheckInclusion(inc Inclusion, c Checkpoint) error {
	leaf := tlog.RecordHash([]byte(inc.Record))
	if leaf != inc.Leaf {
		return fmt.Errorf("audit: inclusion of record %d: leaf %s is not the hash of the record (%s)", inc.Index, inc.Leaf, leaf)
	}
	if err := tlog.CheckRecord(inc.Proof, c.Size, c.Root, inc.Index, leaf); err != nil {
		return fmt.Errorf("audit: inclusion of record %d in tree %d: %w", inc.Index, c.Size, err)
	}
	return nil
}

// Check verifies p offline: the checkpoint note is signed by v and says
// what p says, and every inclusion proof holds.
func (p *Proofs) Check(v note.Verifier) error {
	sc, err := OpenCheckpoint([]byte(p.Checkpoint), v)
	if err != nil {
		return err
	}
	if sc.Origin != p.Origin || sc.Size != p.TreeSize || sc.Root != p.Root {
		return errors.New("audit: proofs: origin, tree size or root differ from the signed checkpoint")
	}
	for _, inc := range p.Records {
		if err := CheckInclusion(inc, sc.Checkpoint); err != nil {
			return err
		}
	}
	return nil
}

// ProveDevice returns inclusion proofs, against sc, for every record of
// device (a MAC in any usual spelling) in the log read from r. It reads the
// whole log once and holds the tree of sc.Size records in memory (about
// 96 bytes a record). The log must hold the tree sc signs, else a
// *MismatchError. Check sc's signature before calling (OpenCheckpoint).
func ProveDevice(ctx context.Context, r io.Reader, sc SignedCheckpoint, device string) (*Proofs, error) {
	mac, err := NormalizeMAC(device)
	if err != nil {
		return nil, err
	}
	// The canonical form puts the field exactly like this; lines without
	// it are not parsed.
	needle := []byte(`,"device":"` + mac + `",`)
	p, err := prove(ctx, r, sc, func(i int64, line []byte) (bool, error) {
		if !bytes.Contains(line, needle) {
			return false, nil
		}
		rec, err := ParseRecord(line)
		if err != nil {
			return false, fmt.Errorf("audit: prove: line %d: %w", i+1, err)
		}
		return rec.Device == mac, nil
	})
	if err != nil {
		return nil, err
	}
	p.Device = mac
	return p, nil
}

// ProveRecords returns inclusion proofs, against sc, for the records with
// the given indexes (each below sc.Size).
func ProveRecords(ctx context.Context, r io.Reader, sc SignedCheckpoint, indexes ...int64) (*Proofs, error) {
	want := map[int64]bool{}
	for _, i := range indexes {
		if i < 0 || i >= sc.Size {
			return nil, fmt.Errorf("audit: prove: record %d is not in the checkpoint's tree of %d", i, sc.Size)
		}
		want[i] = true
	}
	return prove(ctx, r, sc, func(i int64, _ []byte) (bool, error) { return want[i], nil })
}

func prove(ctx context.Context, r io.Reader, sc SignedCheckpoint, match func(i int64, line []byte) (bool, error)) (*Proofs, error) {
	size := sc.Size
	if size <= 0 {
		return nil, fmt.Errorf("audit: prove: checkpoint of size %d proves nothing", size)
	}
	stored := make([]tlog.Hash, 0, tlog.StoredHashCount(size))
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			if x < 0 || x >= int64(len(stored)) {
				return nil, fmt.Errorf("audit: prove: hash %d not stored", x)
			}
			out[i] = stored[x]
		}
		return out, nil
	})
	out := &Proofs{Origin: sc.Origin, TreeSize: size, Root: sc.Root, Checkpoint: string(sc.Note), Records: []Inclusion{}}
	var matched []Inclusion
	var n int64
	err := scanLines(ctx, r, func(line []byte, term bool) error {
		i := n
		if !term {
			return nil
		}
		n++
		ok, err := match(i, line)
		if err != nil {
			return err
		}
		if i >= size {
			if ok {
				out.Uncovered = append(out.Uncovered, i)
			}
			return nil
		}
		leaf := tlog.RecordHash(line)
		hs, err := tlog.StoredHashesForRecordHash(i, leaf, reader)
		if err != nil {
			return fmt.Errorf("audit: prove: record %d: %w", i, err)
		}
		stored = append(stored, hs...)
		if ok {
			matched = append(matched, Inclusion{Index: i, Record: string(line), Leaf: leaf})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if n < size {
		return nil, &MismatchError{Size: size, Records: n, Reason: "the log is shorter than the checkpoint (truncated?)"}
	}
	root, err := tlog.TreeHash(size, reader)
	if err != nil {
		return nil, fmt.Errorf("audit: prove: %w", err)
	}
	if root != sc.Root {
		return nil, &MismatchError{Size: size, Records: n, Reason: "the records do not hash to the signed root (run `fuseline audit verify`)"}
	}
	for _, inc := range matched {
		proof, err := tlog.ProveRecord(size, inc.Index, reader)
		if err != nil {
			return nil, fmt.Errorf("audit: prove record %d: %w", inc.Index, err)
		}
		inc.Proof = proof
		if err := CheckInclusion(inc, sc.Checkpoint); err != nil {
			return nil, err // cannot happen unless tlog disagrees with itself
		}
		out.Records = append(out.Records, inc)
	}
	return out, nil
}

// ProveDevice proves, against the latest checkpoint, every record of
// device. Records after that checkpoint are listed as Uncovered; call
// Checkpoint first to cover them (EventResult already does). Appends may go
// on meanwhile.
func (l *Log) ProveDevice(ctx context.Context, device string) (*Proofs, error) {
	sc, ok := l.Latest()
	if !ok {
		return nil, errors.New("audit: prove: the log has no checkpoint yet")
	}
	f, err := os.Open(l.layout.Log)
	if err != nil {
		return nil, fmt.Errorf("audit: prove: %w", err)
	}
	defer f.Close()
	return ProveDevice(ctx, f, sc, device)
}

// storedTree holds tlog's stored hashes of the log's first n records (the
// leaves and every complete subtree), read from the file up to byte off. It
// only grows: the log is append-only once open.
type storedTree struct {
	n      int64
	off    int64
	hashes []tlog.Hash
}

func (st *storedTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= int64(len(st.hashes)) {
			return nil, fmt.Errorf("audit: prove: hash %d not stored", x)
		}
		out[i] = st.hashes[x]
	}
	return out, nil
}

var errEnoughRecords = errors.New("enough records")

// extend reads records from r (the log, positioned at st.off) until the
// tree holds size records.
func (st *storedTree) extend(ctx context.Context, r io.Reader, size int64) error {
	err := scanLines(ctx, r, func(line []byte, term bool) error {
		if !term || st.n >= size {
			return errEnoughRecords
		}
		hs, err := tlog.StoredHashesForRecordHash(st.n, tlog.RecordHash(line), st)
		if err != nil {
			return fmt.Errorf("audit: prove: record %d: %w", st.n, err)
		}
		st.hashes = append(st.hashes, hs...)
		st.n++
		st.off += int64(len(line)) + 1
		if st.n >= size {
			return errEnoughRecords
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnoughRecords) {
		return err
	}
	return nil
}

// ProveRecord proves, against the latest checkpoint, that line is record
// seq of the log (line is the Receipt's Line of that record). Unlike
// ProveDevice it does not re-read the log: the log keeps the tree's stored
// hashes and reads only what was appended since the last proof, so proving
// each board's result costs O(records since the last proof + log n), not
// O(log size).
func (l *Log) ProveRecord(ctx context.Context, seq int64, line []byte) (*Proofs, error) {
	sc, ok := l.Latest()
	if !ok {
		return nil, errors.New("audit: prove: the log has no checkpoint yet")
	}
	if seq < 0 || seq >= sc.Size {
		return nil, fmt.Errorf("audit: prove: record %d is not in the latest checkpoint's tree of %d", seq, sc.Size)
	}
	l.proofsMu.Lock()
	defer l.proofsMu.Unlock()
	st := &l.proofs
	if st.n < sc.Size {
		f, err := os.Open(l.layout.Log)
		if err != nil {
			return nil, fmt.Errorf("audit: prove: %w", err)
		}
		defer f.Close()
		if _, err := f.Seek(st.off, io.SeekStart); err != nil {
			return nil, fmt.Errorf("audit: prove: %w", err)
		}
		if err := st.extend(ctx, f, sc.Size); err != nil {
			return nil, err
		}
		if st.n < sc.Size {
			return nil, &MismatchError{Size: sc.Size, Records: st.n, Reason: "the log is shorter than the checkpoint (truncated?)"}
		}
	}
	root, err := tlog.TreeHash(sc.Size, st)
	if err != nil {
		return nil, fmt.Errorf("audit: prove: %w", err)
	}
	if root != sc.Root {
		return nil, &MismatchError{Size: sc.Size, Records: st.n, Reason: "the records do not hash to the signed root (run `fuseline audit verify`)"}
	}
	proof, err := tlog.ProveRecord(sc.Size, seq, st)
	if err != nil {
		return nil, fmt.Errorf("audit: prove record %d: %w", seq, err)
	}
	inc := Inclusion{Index: seq, Record: string(line), Leaf: tlog.RecordHash(line), Proof: proof}
	// Also proves that line really is record seq: its leaf must sit there.
	if err := CheckInclusion(inc, sc.Checkpoint); err != nil {
		return nil, err
	}
	return &Proofs{Origin: sc.Origin, TreeSize: sc.Size, Root: sc.Root, Checkpoint: string(sc.Note), Records: []Inclusion{inc}}, nil
}
