package audit

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"fuseline/internal/inputfile"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is the body of a C2SP tlog-checkpoint: the log's origin, its
// size (number of records) and the RFC 6962 root hash of those records.
type Checkpoint struct {
	Origin string    `json:"origin"`
	Size   int64     `json:"size"`
	Root   tlog.Hash `json:"root"`
}

// Text returns the checkpoint body: "<origin>\n<size>\n<base64 root>\n".
func (c Checkpoint) Text() string {
	return c.Origin + "\n" + strconv.FormatInt(c.Size, 10) + "\n" + c.Root.String() + "\n"
}

// ParseCheckpoint parses a checkpoint body. Extension lines after the root
// are allowed by C2SP and ignored.
func ParseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.SplitAfter(text, "\n")
	if len(lines) < 4 || !strings.HasSuffix(text, "\n") {
		return Checkpoint{}, errors.New("audit: checkpoint: want origin, size and root lines, each ending in a newline")
	}
	origin := strings.TrimSuffix(lines[0], "\n")
	if err := checkOrigin(origin); err != nil {
		return Checkpoint{}, err
	}
	sizeText := strings.TrimSuffix(lines[1], "\n")
	size, err := strconv.ParseInt(sizeText, 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != sizeText {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint: size line %q is not a decimal count", sizeText)
	}
	root, err := tlog.ParseHash(strings.TrimSuffix(lines[2], "\n"))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint: root line: %w", err)
	}
	return Checkpoint{Origin: origin, Size: size, Root: root}, nil
}

func checkOrigin(o string) error {
	if o == "" || len(o) > 256 {
		return errors.New("audit: checkpoint origin must have 1 to 256 characters")
	}
	for i := 0; i < len(o); i++ {
		if c := o[i]; c <= ' ' || c == '+' || c > '~' {
			return fmt.Errorf("audit: checkpoint origin %q: byte %d is a space, '+' or not printable ASCII", o, i)
		}
	}
	return nil
}

// SignedCheckpoint is a checkpoint with its signed note (the text, a blank
// line and the station's Ed25519 signature line, as golang.org/x/mod/sumdb/note
// writes it).
type SignedCheckpoint struct {
	Checkpoint
	Note []byte `json:"note"`
}

// ErrCheckpointSignature is wrapped by OpenCheckpoint's error when the note
// is not validly signed by the given key (forged, edited, or signed by
// another key).
var ErrCheckpointSignature = errors.New("audit: checkpoint signature does not verify")

// SignCheckpoint signs c with s.
func SignCheckpoint(c Checkpoint, s note.Signer) (SignedCheckpoint, error) {
	msg, err := note.Sign(&note.Note{Text: c.Text()}, s)
	if err != nil {
		return SignedCheckpoint{}, fmt.Errorf("audit: sign checkpoint %d: %w", c.Size, err)
	}
	return SignedCheckpoint{Checkpoint: c, Note: msg}, nil
}

// OpenCheckpoint checks that msg is a note signed by v and parses its text
// as a checkpoint.
func OpenCheckpoint(msg []byte, v note.Verifier) (SignedCheckpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		var inv *note.InvalidSignatureError
		var unv *note.UnverifiedNoteError
		switch {
		case errors.As(err, &inv):
			return SignedCheckpoint{}, fmt.Errorf("%w: the signature by %s is invalid (the note was changed or forged)", ErrCheckpointSignature, v.Name())
		case errors.As(err, &unv):
			return SignedCheckpoint{}, fmt.Errorf("%w: not signed by key %s+%08x", ErrCheckpointSignature, v.Name(), v.KeyHash())
		}
		return SignedCheckpoint{}, fmt.Errorf("%w: %v", ErrCheckpointSignature, err)
	}
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return SignedCheckpoint{}, err
	}
	return SignedCheckpoint{Checkpoint: c, Note: msg}, nil
}

// CheckpointFile is a stored checkpoint note and where it came from.
type CheckpointFile struct {
	Name string // file path, or any label for messages
	Note []byte
}

// checkpointName is the file name of the checkpoint of size n: 20 digits,
// so names sort by size.
func checkpointName(n int64) string { return fmt.Sprintf("%020d.note", n) }

// MaxCheckpointFile bounds a checkpoint note (origin, size, root and a few
// signature lines).
const MaxCheckpointFile = 16 << 10

// ReadCheckpoints reads every *.note file in dir (a data directory's
// checkpoints folder), in order of size. A missing dir gives none.
func ReadCheckpoints(dir string) ([]CheckpointFile, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.note"))
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoints: %w", err)
	}
	slices.Sort(names)
	var out []CheckpointFile
	for _, name := range names {
		b, err := inputfile.ReadFile(context.Background(), name, MaxCheckpointFile)
		if err != nil {
			return nil, fmt.Errorf("audit: checkpoints: %w", err)
		}
		out = append(out, CheckpointFile{Name: name, Note: b})
	}
	return out, nil
}
