package evidence

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ErrBadProof is returned (wrapped) when an inclusion proof or checkpoint
// does not check out.
var ErrBadProof = errors.New("evidence: inclusion proof does not verify")

// InclusionProof proves that an evidence file is record LeafIndex of the
// station's audit log in the tree of TreeSize records with hash RootHash.
// The audit log produces it (reports/audit); its JSON form is the .proof
// file of a bundle.
type InclusionProof struct {
	LeafIndex, TreeSize int64
	// LeafHash is tlog.RecordHash of the leaf: the evidence file bytes, or
	// Leaf when it is set.
	LeafHash, RootHash tlog.Hash
	Proof              tlog.RecordProof
	// Checkpoint is the signed note of the tree (TreeSize, RootHash); empty
	// when the bundle's checkpoint is for that tree.
	Checkpoint []byte
	// Leaf is the audit-log record that is leaf LeafIndex, for a log that
	// records the evidence by digest (reports/audit writes one JSON line per
	// record): LeafHash is tlog.RecordHash(Leaf), and Leaf is a JSON object
	// whose "details" has "evidence_sha256" equal to the SHA-256 of the
	// evidence file (and whose "device", if any, is the record's MAC). Empty
	// when the leaf is the evidence file itself.
	Leaf []byte
}

type proofJSON struct {
	LeafIndex  int64       `json:"leaf_index"`
	TreeSize   int64       `json:"tree_size"`
	LeafHash   tlog.Hash   `json:"leaf_hash"`
	RootHash   tlog.Hash   `json:"root_hash"`
	Proof      []tlog.Hash `json:"proof"`
	Checkpoint string      `json:"checkpoint,omitempty"`
	Leaf       string      `json:"leaf,omitempty"`
}

// MaxProofHashes bounds a proof: a tree of 2^63 records needs 63 hashes.
const MaxProofHashes = 64

// MarshalJSON writes the .proof file form: hashes in base64, the checkpoint
// as its note text.
func (p InclusionProof) MarshalJSON() ([]byte, error) {
	w := proofJSON{p.LeafIndex, p.TreeSize, p.LeafHash, p.RootHash, p.Proof, string(p.Checkpoint), string(p.Leaf)}
	if w.Proof == nil {
		w.Proof = []tlog.Hash{}
	}
	return json.MarshalIndent(w, "", "  ")
}

// UnmarshalJSON reads the .proof file form.
func (p *InclusionProof) UnmarshalJSON(b []byte) error {
	var w proofJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return fmt.Errorf("evidence: proof: %w", err)
	}
	if len(w.Proof) > MaxProofHashes {
		return fmt.Errorf("evidence: proof has %d hashes, at most %d", len(w.Proof), MaxProofHashes)
	}
	*p = InclusionProof{LeafIndex: w.LeafIndex, TreeSize: w.TreeSize, LeafHash: w.LeafHash, RootHash: w.RootHash}
	if len(w.Proof) > 0 {
		p.Proof = tlog.RecordProof(w.Proof)
	}
	if w.Checkpoint != "" {
		p.Checkpoint = []byte(w.Checkpoint)
	}
	if w.Leaf != "" {
		p.Leaf = []byte(w.Leaf)
	}
	return nil
}

// Checkpoint is the body of a signed tree head: the C2SP checkpoint form
// ("origin\nsize\nbase64(root)\n" then optional extension lines), which also
// reads tlog.FormatTree output.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
	Extra  []string // extension lines, if any
	// Signer is the key name that signed it (set by OpenCheckpoint).
	Signer string
}

// ParseCheckpoint reads an unsigned checkpoint body.
func ParseCheckpoint(text []byte) (*Checkpoint, error) {
	if len(text) == 0 || text[len(text)-1] != '\n' {
		return nil, errors.New("evidence: checkpoint does not end in a newline")
	}
	lines := strings.Split(string(text[:len(text)-1]), "\n")
	if len(lines) < 3 {
		return nil, fmt.Errorf("evidence: checkpoint has %d lines, want origin, size and root hash", len(lines))
	}
	if lines[0] == "" {
		return nil, errors.New("evidence: checkpoint line 1: empty origin")
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return nil, fmt.Errorf("evidence: checkpoint line 2: %q is not a tree size", lines[1])
	}
	h, err := tlog.ParseHash(lines[2])
	if err != nil {
		return nil, fmt.Errorf("evidence: checkpoint line 3: %q is not a base64 SHA-256 root hash", lines[2])
	}
	return &Checkpoint{Origin: lines[0], Size: n, Root: h, Extra: lines[3:]}, nil
}

// FormatCheckpoint writes an unsigned C2SP checkpoint body.
func FormatCheckpoint(origin string, size int64, root tlog.Hash) []byte {
	return fmt.Appendf(nil, "%s\n%d\n%s\n", origin, size, root)
}

// OpenCheckpoint verifies a signed checkpoint note with the station key and
// parses its body.
func OpenCheckpoint(msg []byte, key *StationKey) (*Checkpoint, error) {
	names := []string{key.Name}
	if key.Name == "" {
		names = signerNames(msg)
	}
	var lastErr error = fmt.Errorf("%w: checkpoint has no signature", ErrBadProof)
	for _, name := range names {
		v, err := key.verifier(name)
		if err != nil {
			lastErr = err
			continue
		}
		n, err := note.Open(msg, note.VerifierList(v))
		if err != nil {
			if _, ok := errors.AsType[*note.UnverifiedNoteError](err); ok {
				lastErr = fmt.Errorf("%w: checkpoint is not signed by the station key (%s)", ErrBadProof, name)
			} else if _, ok := errors.AsType[*note.InvalidSignatureError](err); ok {
				lastErr = fmt.Errorf("%w: checkpoint signature by %s does not verify", ErrBadProof, name)
			} else {
				lastErr = fmt.Errorf("%w: checkpoint: %v", ErrBadProof, err)
			}
			continue
		}
		cp, err := ParseCheckpoint([]byte(n.Text))
		if err != nil {
			return nil, err
		}
		cp.Signer = name
		return cp, nil
	}
	return nil, lastErr
}

// signerNames lists the key names on the signature lines of a note.
func signerNames(msg []byte) []string {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return nil
	}
	var names []string
	for l := range strings.Lines(string(msg[i+2:])) {
		rest, ok := strings.CutPrefix(l, "— ")
		if !ok {
			continue
		}
		name, sig, ok := strings.Cut(strings.TrimSpace(rest), " ")
		if !ok || name == "" {
			continue
		}
		if _, err := base64.StdEncoding.DecodeString(sig); err != nil {
			continue
		}
		names = append(names, name)
	}
	return names
}

// VerifyInclusion checks that data (an evidence file) is in the tree that
// cp describes, using p: either as the leaf itself or named by digest in the
// leaf record p.Leaf. cp must come from OpenCheckpoint.
func VerifyInclusion(data []byte, p *InclusionProof, cp *Checkpoint) error {
	if len(p.Leaf) == 0 {
		if got := tlog.RecordHash(data); got != p.LeafHash {
			return fmt.Errorf("%w: leaf hash %s is not the hash of this evidence file (%s)", ErrBadProof, p.LeafHash, got)
		}
	} else {
		if got := tlog.RecordHash(p.Leaf); got != p.LeafHash {
			return fmt.Errorf("%w: leaf hash %s is not the hash of the leaf record (%s)", ErrBadProof, p.LeafHash, got)
		}
		if err := leafNames(p.Leaf, data); err != nil {
			return err
		}
	}
	if p.TreeSize != cp.Size || p.RootHash != cp.Root {
		return fmt.Errorf("%w: proof is for tree %d (root %s), the checkpoint is for tree %d (root %s)",
			ErrBadProof, p.TreeSize, p.RootHash, cp.Size, cp.Root)
	}
	if p.LeafIndex < 0 || p.LeafIndex >= p.TreeSize {
		return fmt.Errorf("%w: leaf index %d outside tree of %d records", ErrBadProof, p.LeafIndex, p.TreeSize)
	}
	if len(p.Proof) > MaxProofHashes {
		return fmt.Errorf("%w: proof has %d hashes", ErrBadProof, len(p.Proof))
	}
	if err := tlog.CheckRecord(p.Proof, p.TreeSize, p.RootHash, p.LeafIndex, p.LeafHash); err != nil {
		return fmt.Errorf("%w: record %d in tree %d: %v", ErrBadProof, p.LeafIndex, p.TreeSize, err)
	}
	return nil
}

// LeafRecord is what VerifyInclusion reads from an audit-log leaf record.
type LeafRecord struct {
	Device  string            `json:"device"`
	Details map[string]string `json:"details"`
}

// LeafEvidenceKey is the Details key under which an audit-log record names
// an evidence file by its SHA-256 (hex).
const LeafEvidenceKey = "evidence_sha256"

// leafNames checks that the leaf record names the evidence file data.
func leafNames(leaf, data []byte) error {
	var lr LeafRecord
	if err := json.Unmarshal(leaf, &lr); err != nil {
		return fmt.Errorf("%w: leaf record is not a JSON object: %v", ErrBadProof, err)
	}
	want := SHA256(data).String()
	got, ok := lr.Details[LeafEvidenceKey]
	if !ok {
		return fmt.Errorf("%w: leaf record has no details.%s", ErrBadProof, LeafEvidenceKey)
	}
	if got != want {
		return fmt.Errorf("%w: leaf record names evidence %s, this file is %s", ErrBadProof, got, want)
	}
	if lr.Device != "" {
		var dev struct {
			Device struct {
				MAC string `json:"mac"`
			} `json:"device"`
		}
		if err := json.Unmarshal(data, &dev); err == nil && dev.Device.MAC != lr.Device {
			return fmt.Errorf("%w: leaf record is for device %s, the evidence for %s", ErrBadProof, lr.Device, dev.Device.MAC)
		}
	}
	return nil
}
