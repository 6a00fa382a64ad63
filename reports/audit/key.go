package audit

import (
	"context"
	"errors"
	"fmt"
	"fuseline/internal/atomicfile"
	"fuseline/internal/inputfile"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// DefaultDir is the station data directory when none is given.
const DefaultDir = "fuseline-data"

// Layout names the files of a station data directory.
type Layout struct {
	Dir         string // the data directory itself
	Log         string // audit.log: the records, one per line
	Checkpoints string // checkpoints/: <size, 20 digits>.note signed checkpoints
	Evidence    string // evidence/: per-device evidence (written by reports/evidence)
	Key         string // station.key: the note signer key (Ed25519), mode 0600
	PublicKey   string // station.pub: the note verifier key, "<name>+<hash>+<base64 key>"
	Cursor      string // forward.cursor: how far records and checkpoints went to the Sink
	Spool       string // spool/: the syslog forwarder's spool, if one is used
}

// NewLayout returns the layout of data directory dir ("" means DefaultDir).
func NewLayout(dir string) Layout {
	if dir == "" {
		dir = DefaultDir
	}
	return Layout{
		Dir:         dir,
		Log:         filepath.Join(dir, "audit.log"),
		Checkpoints: filepath.Join(dir, "checkpoints"),
		Evidence:    filepath.Join(dir, "evidence"),
		Key:         filepath.Join(dir, "station.key"),
		PublicKey:   filepath.Join(dir, "station.pub"),
		Cursor:      filepath.Join(dir, "forward.cursor"),
		Spool:       filepath.Join(dir, "spool"),
	}
}

// KeyError is returned when the station key files are missing, unreadable,
// too open or malformed. It never holds key text.
type KeyError struct {
	Path   string
	Reason string
	Err    error
}

func (e *KeyError) Error() string {
	s := "audit: station key " + e.Path + ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *KeyError) Unwrap() error { return e.Err }

// loadOrCreateKey returns the station's signer and verifier. It creates
// the key pair (named name) on first use, private key 0600 and public key
// 0644, unless checkpoints already exist: a log whose key is lost must not
// silently get a new one.
func loadOrCreateKey(l Layout, name string, rand io.Reader, haveCheckpoints bool) (note.Signer, note.Verifier, error) {
	skey, err := os.ReadFile(l.Key)
	if errors.Is(err, fs.ErrNotExist) {
		if haveCheckpoints {
			return nil, nil, &KeyError{Path: l.Key, Reason: "missing, but the log has signed checkpoints; restore the key file (a new key would not match them)"}
		}
		return createKey(l, name, rand)
	}
	if err != nil {
		return nil, nil, &KeyError{Path: l.Key, Reason: "unreadable", Err: err}
	}
	st, err := os.Stat(l.Key)
	if err != nil {
		return nil, nil, &KeyError{Path: l.Key, Reason: "unreadable", Err: err}
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, nil, &KeyError{Path: l.Key, Reason: fmt.Sprintf("mode %v lets others read it; chmod 600 %s", st.Mode().Perm(), l.Key)}
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		// note's error can quote the key; do not pass it on.
		return nil, nil, &KeyError{Path: l.Key, Reason: "not a note signer key"}
	}
	verifier, err := ReadVerifier(l.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	if verifier.Name() != signer.Name() || verifier.KeyHash() != signer.KeyHash() {
		return nil, nil, &KeyError{Path: l.PublicKey, Reason: fmt.Sprintf("is key %s+%08x, the private key is %s+%08x", verifier.Name(), verifier.KeyHash(), signer.Name(), signer.KeyHash())}
	}
	if signer.Name() != name {
		return nil, nil, &KeyError{Path: l.Key, Reason: fmt.Sprintf("is named %q, the log's origin is %q", signer.Name(), name)}
	}
	return signer, verifier, nil
}

func createKey(l Layout, name string, rand io.Reader) (note.Signer, note.Verifier, error) {
	skey, vkey, err := note.GenerateKey(rand, name)
	if err != nil {
		return nil, nil, &KeyError{Path: l.Key, Reason: "cannot generate", Err: err}
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, nil, &KeyError{Path: l.Key, Reason: "generated key does not load"}
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, &KeyError{Path: l.PublicKey, Reason: "generated key does not load", Err: err}
	}
	// O_EXCL: never overwrite a key another process just made.
	if err := writeNew(l.Key, []byte(skey+"\n"), 0o600); err != nil {
		return nil, nil, &KeyError{Path: l.Key, Reason: "cannot write", Err: err}
	}
	if err := writeNew(l.PublicKey, []byte(vkey+"\n"), 0o644); err != nil {
		return nil, nil, &KeyError{Path: l.PublicKey, Reason: "cannot write", Err: err}
	}
	if err := syncDir(l.Dir); err != nil {
		return nil, nil, err
	}
	return signer, verifier, nil
}

// ReadVerifier reads a note verifier key file (a station.pub).
func ReadVerifier(path string) (note.Verifier, error) {
	b, err := inputfile.ReadFile(context.Background(), path, 4<<10)
	if err != nil {
		return nil, &KeyError{Path: path, Reason: "unreadable public key", Err: err}
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, &KeyError{Path: path, Reason: "not a note verifier key (want <name>+<hash>+<base64>)", Err: err}
	}
	return v, nil
}

func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}
