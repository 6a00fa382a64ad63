// Package keyseal keeps a device's flash-encryption key sealed at rest for
// as long as its run is unfinished. The journal must hold the key from
// before its first burn until the run completes (a key block that lost
// power half-way is recovered by burning the same data again,
// esp-security-facts.md §6); an abandoned board would otherwise leave its
// key in plaintext in DATA/journal for as long as nobody comes back to it.
//
// A sealed key is an age file (filippo.io/age, X25519) to the station's
// sealing identity, kept beside station.key as DATA/station.seal (mode
// 0600). The plaintext names the device the key belongs to, so a sealed key
// copied over another board's file does not open for that board. The
// journal directory alone therefore reveals no key. An HSM-held identity
// (a pkcs11: URI) is not implemented; DATA/station.seal is the only store.
package keyseal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"filippo.io/age"

	"fuseline/internal/atomicfile"
	"fuseline/internal/inputfile"
)

// FileName is the sealing identity's file in the station data directory.
const FileName = "station.seal"

// maxIdentity bounds the identity file (an age identity line is 74 bytes).
const maxIdentity = 4 << 10

// MaxSealed bounds a sealed key file: an age header and one small chunk.
const MaxSealed = 4 << 10

// header starts every age file; a device-key file that does not start with
// it was written by a station before keys were sealed.
var header = []byte("age-encryption.org/v1\n")

// ErrNoIdentity: a sealed key was found but the station has no sealing
// identity to open it with.
var ErrNoIdentity = errors.New("keyseal: the station's sealing key is missing")

// ErrWrongDevice: the sealed key belongs to another device.
var ErrWrongDevice = errors.New("keyseal: the sealed key belongs to another device")

// Sealer seals and opens device keys with the identity in one file. It
// reads (or, on the first Seal, creates) the file when first needed, so
// making one does no I/O.
type Sealer struct {
	path string
	mu   sync.Mutex
	id   *age.X25519Identity
}

// At is the sealer whose identity is the file path.
func At(path string) *Sealer { return &Sealer{path: path} }

// InDataDir is the sealer of station data directory dir.
func InDataDir(dir string) *Sealer { return At(filepath.Join(dir, FileName)) }

// Path is the identity file.
func (s *Sealer) Path() string { return s.path }

// IsSealed reports whether b is a sealed key (not a raw key from an earlier
// version).
func IsSealed(b []byte) bool { return bytes.HasPrefix(b, header) }

// Seal returns key sealed for device, creating the station's identity on
// first use.
func (s *Sealer) Seal(device string, key []byte) ([]byte, error) {
	id, err := s.identity(true)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	w, err := age.Encrypt(&out, id.Recipient())
	if err != nil {
		return nil, fmt.Errorf("keyseal: %w", err)
	}
	pt := append([]byte(prefix(device)), key...)
	_, err = w.Write(pt)
	clear(pt)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("keyseal: %w", err)
	}
	return out.Bytes(), nil
}

// Open returns the key sealed in b for device.
func (s *Sealer) Open(device string, b []byte) ([]byte, error) {
	id, err := s.identity(false)
	if err != nil {
		return nil, err
	}
	r, err := age.Decrypt(bytes.NewReader(b), id)
	if err != nil {
		return nil, fmt.Errorf("keyseal: the sealed key does not open with %s: %w", s.path, err)
	}
	pt, err := io.ReadAll(io.LimitReader(r, MaxSealed))
	if err != nil {
		return nil, fmt.Errorf("keyseal: the sealed key does not open with %s: %w", s.path, err)
	}
	p := prefix(device)
	if !bytes.HasPrefix(pt, []byte(p)) {
		clear(pt)
		return nil, ErrWrongDevice
	}
	key := bytes.Clone(pt[len(p):])
	clear(pt)
	return key, nil
}

func prefix(device string) string { return "fuseline device key v1 " + device + "\n" }

// identity loads the identity, creating it when create is set and the file
// does not exist. Two stations starting at once on one data directory end
// with the same identity: the file appears complete or not at all (a
// hard link of a synced temporary file), and the loser of the race loads
// the winner's.
func (s *Sealer) identity(create bool) (*age.X25519Identity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.id != nil {
		return s.id, nil
	}
	id, err := load(s.path)
	if errors.Is(err, os.ErrNotExist) && create {
		id, err = createNew(s.path)
		if errors.Is(err, os.ErrExist) {
			id, err = load(s.path)
		}
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist", ErrNoIdentity, s.path)
	}
	if err != nil {
		return nil, err
	}
	s.id = id
	return id, nil
}

func load(path string) (*age.X25519Identity, error) {
	b, err := inputfile.ReadFile(context.Background(), path, maxIdentity)
	if err != nil {
		return nil, fmt.Errorf("keyseal: sealing key %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("keyseal: sealing key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("keyseal: sealing key %s: mode %v lets others read it; chmod 600 %s", path, st.Mode().Perm(), path)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	clear(b)
	if err == nil && len(ids) == 1 {
		if id, ok := ids[0].(*age.X25519Identity); ok {
			return id, nil
		}
	}
	// age's error could quote the key; do not pass it on.
	return nil, fmt.Errorf("keyseal: sealing key %s: not one age X25519 identity", path)
}

func createNew(path string) (*age.X25519Identity, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("keyseal: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keyseal: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, fmt.Errorf("keyseal: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString("# fuseline station sealing key: opens the device keys in journal/\n" + id.String() + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("keyseal: writing %s: %w", path, err)
	}
	// link fails with EEXIST where rename would replace: never overwrite
	// an identity another process just made (keys sealed to it would be lost).
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, os.ErrExist
		}
		return nil, fmt.Errorf("keyseal: %w", err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return nil, fmt.Errorf("keyseal: %w", err)
	}
	return id, nil
}
