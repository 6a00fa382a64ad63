package release

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"fuseline/internal/inputfile"
)

// maxSignatureSize bounds manifest.json.p7s: a signature with a few
// certificates is a few KiB.
const maxSignatureSize = 1 << 20

// Release is a release directory whose manifest has been authenticated.
// Images are read through OpenFile, each verified as it streams. A Release
// is safe for concurrent OpenFile calls.
type Release struct {
	dir      string
	root     *os.Root // confines every file access to dir, symlinks included
	pol      Policy
	auth     *Authenticated
	manifest []byte
	sig      []byte
}

// Open authenticates the release in dir (manifest.json and its detached
// signature) against pol and, when pol.StateDir is set, refuses it if the
// station already accepted a newer release of the product. Images are not
// read yet. Refusals are *RefusedError.
func Open(ctx context.Context, dir string, pol Policy) (*Release, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("release: opening release directory: %w", err)
	}
	r := &Release{dir: dir, root: root, pol: pol}
	if r.manifest, r.sig, err = r.readMeta(); err != nil {
		root.Close()
		return nil, err
	}
	if r.auth, err = Authenticate(r.manifest, r.sig, pol); err != nil {
		root.Close()
		return nil, err
	}
	if pol.StateDir != "" {
		if err := (State{Dir: pol.StateDir}).Check(r.auth.Manifest); err != nil {
			root.Close()
			return nil, err
		}
	}
	return r, nil
}

func (r *Release) readMeta() (manifest, sig []byte, err error) {
	if manifest, err = readLimited(r.root, ManifestName, MaxManifestSize); err != nil {
		return nil, nil, err
	}
	if sig, err = readLimited(r.root, SignatureName, maxSignatureSize); err != nil {
		return nil, nil, err
	}
	return manifest, sig, nil
}

func readLimited(root *os.Root, name string, limit int64) ([]byte, error) {
	f, _, err := inputfile.OpenIn(context.Background(), root, name)
	if errors.Is(err, fs.ErrNotExist) {
		what := "the release has no manifest"
		if name == SignatureName {
			what = "the release is not signed"
		}
		return nil, refused(ReasonMissing, err, "%s not found: %s", name, what)
	}
	if err != nil {
		return nil, fmt.Errorf("release: opening %s: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("release: reading %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, refused(ReasonMalformed, nil, "%s is larger than %d bytes", name, limit)
	}
	return b, nil
}

// Dir is the release directory.
func (r *Release) Dir() string { return r.dir }

// Manifest is the authenticated manifest.
func (r *Release) Manifest() *Manifest { return r.auth.Manifest }

// Authenticated is what Open authenticated: signer, chain, warnings.
func (r *Release) Authenticated() *Authenticated { return r.auth }

// OpenFile opens the i-th manifest file as a verifying stream. The caller
// must Close it.
func (r *Release) OpenFile(ctx context.Context, i int) (*ImageReader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	files := r.auth.Manifest.Files
	if i < 0 || i >= len(files) {
		return nil, fmt.Errorf("release: file index %d out of range (%d files)", i, len(files))
	}
	f := files[i]
	src, _, err := inputfile.OpenIn(ctx, r.root, f.Path)
	if err != nil {
		return nil, refused(ReasonMissing, err, "%s %s (%s): cannot open: %v", f.Role, f.Path, f.Region(), trimPathErr(err))
	}
	return NewImageReader(src, f), nil
}

// trimPathErr keeps just the reason of a *fs.PathError, whose path the
// caller already names.
func trimPathErr(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	return err
}

// copyBufSize is the block size images stream in: large enough that
// syscalls do not dominate SHA-256, small enough to never matter for memory.
const copyBufSize = 1 << 20

// VerifyFiles streams every image of the release through its ImageReader
// and discards the bytes: the whole release is checked with one buffer of
// memory. An image that differs is a *RefusedError (ReasonImage) wrapping
// the *RegionError; a bootloader or app whose header or app descriptor
// contradicts the manifest's chip, version or secure_version
// (Manifest.CheckImage) is a *RefusedError (ReasonMetadata) wrapping the
// *MetadataError.
func (r *Release) VerifyFiles(ctx context.Context) error {
	buf := make([]byte, copyBufSize)
	m := r.auth.Manifest
	for i, f := range m.Files {
		rd, err := r.OpenFile(ctx, i)
		if err != nil {
			return err
		}
		var head []byte
		if checksMetadata(f) {
			head = make([]byte, ImageHeadLen)
			var n int
			n, err = io.ReadFull(rd, head)
			head = head[:n]
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				err = nil
			}
		}
		if err == nil {
			err = drain(ctx, rd, buf)
		}
		rd.Close()
		if err != nil {
			return imageErr(err)
		}
		// The head is compared once the whole file matched its digest.
		if head != nil {
			if err := m.CheckImage(f, head); err != nil {
				return refused(ReasonMetadata, err, "%s", strings.TrimPrefix(err.Error(), "release: "))
			}
		}
	}
	return nil
}

// drain reads rd to EOF, checking ctx between blocks.
func drain(ctx context.Context, rd io.Reader, buf []byte) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		_, err := rd.Read(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// imageErr turns a *RegionError into a refusal; other errors pass.
func imageErr(err error) error {
	if re, ok := errors.AsType[*RegionError](err); ok {
		return refused(ReasonImage, re, "%s", strings.TrimPrefix(re.Error(), "release: "))
	}
	return err
}

// Finish is the second authentication, run after the images were used: it
// re-reads manifest.json and its signature, refuses if either changed since
// Open, authenticates them again (the clock and CRLs may have moved on) and,
// when the policy has a StateDir, records the release as accepted. Call it
// only after every image the station uses has streamed to EOF.
func (r *Release) Finish(ctx context.Context) (*Authenticated, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	manifest, sig, err := r.readMeta()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(manifest, r.manifest) {
		return nil, refused(ReasonChanged, nil, "%s changed since it was authenticated", ManifestName)
	}
	if !bytes.Equal(sig, r.sig) {
		return nil, refused(ReasonChanged, nil, "%s changed since it was authenticated", SignatureName)
	}
	a, err := Authenticate(manifest, sig, r.pol)
	if err != nil {
		return nil, err
	}
	if r.pol.StateDir != "" {
		if err := (State{Dir: r.pol.StateDir}).Commit(ctx, a, r.pol.now()); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Close releases the directory handle.
func (r *Release) Close() error { return r.root.Close() }

// Verify is the whole intake check of a release directory: Open, stream
// every image (VerifyFiles), Finish. With pol.StateDir set, an accepted
// release raises the station's anti-rollback floor.
func Verify(ctx context.Context, dir string, pol Policy) (*Authenticated, error) {
	r, err := Open(ctx, dir, pol)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if err := r.VerifyFiles(ctx); err != nil {
		return nil, err
	}
	return r.Finish(ctx)
}
