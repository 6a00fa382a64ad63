package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
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
//
// A station killed while it made the pair leaves station.key complete (it
// appears whole or not at all) and station.pub missing or cut short; the
// public key is derived from the private one, so such a station.pub is
// rewritten here rather than leaving the data directory unusable.
func loadOrCreateKey(l Layout, name string, rand io.Reader, haveCheckpoints bool) (note.Signer, note.Verifier, error) {
	skey, err := inputfile.ReadFile(context.Background(), l.Key, 4<<10)
	if errors.Is(err, fs.ErrNotExist) {
		if haveCheckpoints {
			return nil, nil, &KeyError{Path: l.Key, Reason: "missing, but the log has signed checkpoints; restore the key file (a new key would not match them)"}
		}
		if _, err := os.Lstat(l.PublicKey); err == nil {
			// station.pub is written after station.key, so this is not a
			// crash: the private key was removed. Evidence signed with it
			// still names station.pub; do not replace it silently.
			return nil, nil, &KeyError{Path: l.Key, Reason: fmt.Sprintf("missing, but %s exists; restore the key file, or move %s aside to make a new key", l.PublicKey, l.PublicKey)}
		}
		return createKey(l, name, rand)
	}
	if err != nil {
		return nil, nil, &KeyError{Path: l.Key, Reason: "unreadable", Err: err}
	}
	defer clear(skey)
	st, err := os.Stat(l.Key)
	if err != nil {
		return nil, nil, &KeyError{Path: l.Key, Reason: "unreadable", Err: err}
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, nil, &KeyError{Path: l.Key, Reason: fmt.Sprintf("mode %v lets others read it; chmod 600 %s", st.Mode().Perm(), l.Key)}
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		// note's error can quote the key; do not pass it on. A private key
		// cannot be rebuilt from anything else in the directory.
		return nil, nil, &KeyError{Path: l.Key, Reason: fmt.Sprintf("is cut short or damaged (not a note signer key) and cannot be rebuilt; restore it from a backup, or, if nothing was signed with it, move %s and %s aside to make a new key", l.Key, l.PublicKey)}
	}
	vkey, err := verifierKey(string(skey))
	if err != nil {
		return nil, nil, &KeyError{Path: l.Key, Reason: "public key cannot be derived", Err: err}
	}
	if err := repairPublicKey(l.PublicKey, vkey); err != nil {
		return nil, nil, err
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

// repairPublicKey writes vkey (derived from station.key) to path when the
// file is missing or holds a strict prefix of it (a write cut short). Any
// other content is left for the caller to check: a different key there is
// a finding, not something to overwrite.
func repairPublicKey(path, vkey string) error {
	want := vkey + "\n"
	b, err := inputfile.ReadFile(context.Background(), path, 4<<10)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return &KeyError{Path: path, Reason: "unreadable public key", Err: err}
	case len(b) < len(want) && strings.HasPrefix(want, string(b)) && strings.TrimSpace(string(b)) != vkey:
	default:
		return nil
	}
	if err := atomicfile.WriteFile(path, []byte(want), 0o644); err != nil {
		return &KeyError{Path: path, Reason: "missing or cut short, and cannot be rewritten from the private key", Err: err}
	}
	return nil
}

// verifierKey derives the note verifier key of signer key skey
// ("PRIVATE+KEY+<name>+<hash>+<base64(alg || seed)>", already checked by
// note.NewSigner).
func verifierKey(skey string) (string, error) {
	f := strings.SplitN(strings.TrimSpace(skey), "+", 5) // base64 may hold +
	if len(f) != 5 {
		return "", errors.New("not a note signer key")
	}
	raw, err := base64.StdEncoding.DecodeString(f[4])
	defer clear(raw)
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != algEd25519 {
		return "", errors.New("not an Ed25519 note signer key")
	}
	priv := ed25519.NewKeyFromSeed(raw[1:])
	defer clear(priv)
	return note.NewEd25519VerifierKey(f[2], priv.Public().(ed25519.PublicKey))
}

// algEd25519 is note's algorithm byte for Ed25519 keys.
const algEd25519 = 1

// createKey makes the pair: station.key first, appearing complete or not at
// all and never replacing one another process made, then station.pub,
// which a crash may leave missing and loadOrCreateKey then derives again.
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
	if err := writeNew(l.Key, []byte(skey+"\n"), 0o600); err != nil {
		return nil, nil, &KeyError{Path: l.Key, Reason: "cannot write", Err: err}
	}
	if err := atomicfile.WriteFile(l.PublicKey, []byte(vkey+"\n"), 0o644); err != nil {
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

// writeNew creates path with b so that it appears complete or not at all:
// b goes to a synced temporary file that is hard-linked to path (link
// fails with EEXIST where rename would replace a key another process just
// made). Temporaries a killed station left behind are removed first; they
// hold a private key no file names.
func writeNew(path string, b []byte, mode os.FileMode) error {
	dir, base := filepath.Dir(path), filepath.Base(path)
	if old, _ := filepath.Glob(filepath.Join(dir, "."+base+".*")); len(old) > 0 {
		for _, o := range old {
			os.Remove(o)
		}
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(mode)
	if err == nil {
		_, err = tmp.Write(b)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Link(tmp.Name(), path)
}

func syncDir(dir string) error {
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}
