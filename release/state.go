package release

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"fuseline/internal/atomicfile"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// StateName is the anti-rollback state file inside State.Dir.
const StateName = "release-state.json"

// State is a station's anti-rollback memory: per product, the newest
// release it accepted. A release older than that (by version or by
// secure_version) is refused. The file is small JSON, replaced atomically
// (write temp, fsync, rename, fsync dir) and only after a release was fully
// accepted, under an exclusive lock so several slots or processes on one
// station cannot lower it.
type State struct {
	Dir string
}

// Accepted is the newest release a station accepted for one product.
type Accepted struct {
	Accepted       time.Time `json:"accepted"`
	ManifestSHA256 Digest    `json:"manifest_sha256"`
	SecureVersion  uint32    `json:"secure_version"`
	Signer         string    `json:"signer"`
	Version        string    `json:"version"`
}

type stateFile struct {
	Format   int                 `json:"format"`
	Products map[string]Accepted `json:"products"`
}

// Load returns the state by product; a missing file is an empty state.
func (s State) Load() (map[string]Accepted, error) {
	b, err := os.ReadFile(filepath.Join(s.Dir, StateName))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]Accepted{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("release: reading anti-rollback state: %w", err)
	}
	var f stateFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil || f.Format != 1 {
		// A damaged state must stop intake, not reset the floor to nothing.
		return nil, fmt.Errorf("release: anti-rollback state %s is damaged (fix or restore it; it is never reset automatically): %v",
			filepath.Join(s.Dir, StateName), err)
	}
	if f.Products == nil {
		f.Products = map[string]Accepted{}
	}
	return f.Products, nil
}

// Check refuses m if this station already accepted a newer release of the
// same product: a lower version, or a lower secure_version.
func (s State) Check(m *Manifest) error {
	st, err := s.Load()
	if err != nil {
		return err
	}
	return checkFloor(st, m)
}

func checkFloor(st map[string]Accepted, m *Manifest) error {
	prev, ok := st[m.Product]
	if !ok {
		return nil
	}
	c, err := CompareVersions(m.Version, prev.Version)
	if err != nil {
		return fmt.Errorf("release: anti-rollback state for %q: %w", m.Product, err)
	}
	if c < 0 {
		return refused(ReasonRollback, nil, "version %s of %q is older than %s, accepted by this station %s",
			m.Version, m.Product, prev.Version, prev.Accepted.UTC().Format(time.RFC3339))
	}
	if m.SecureVersion < prev.SecureVersion {
		return refused(ReasonRollback, nil, "secure_version %d of %q is lower than %d (version %s), accepted by this station %s",
			m.SecureVersion, m.Product, prev.SecureVersion, prev.Version, prev.Accepted.UTC().Format(time.RFC3339))
	}
	return nil
}

// Commit records a as accepted if it is at least as new as what the state
// holds, re-checking under the lock so a concurrent accept of a newer
// release wins. It returns a *RefusedError (rollback) if a is now older.
func (s State) Commit(ctx context.Context, a *Authenticated, now time.Time) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("release: anti-rollback state dir: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(s.Dir, StateName+".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	st, err := s.Load()
	if err != nil {
		return err
	}
	m := a.Manifest
	if err := checkFloor(st, m); err != nil {
		return err
	}
	st[m.Product] = Accepted{
		Accepted:       now.UTC().Truncate(time.Second),
		ManifestSHA256: a.ManifestSHA256,
		SecureVersion:  m.SecureVersion,
		Signer:         a.Signer.Subject.String(),
		Version:        m.Version,
	}
	b, err := json.MarshalIndent(stateFile{Format: 1, Products: st}, "", "  ")
	if err != nil {
		return fmt.Errorf("release: encoding anti-rollback state: %w", err)
	}
	return writeFileAtomic(s.Dir, StateName, append(b, '\n'))
}

// writeFileAtomic replaces dir/name with b so that a crash leaves either the
// old or the new file, never a mix.
func writeFileAtomic(dir, name string, b []byte) error {
	if err := atomicfile.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}
