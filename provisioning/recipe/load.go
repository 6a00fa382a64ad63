package recipe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"fuseline/esp/secureboot"
	"fuseline/internal/inputfile"
	"fuseline/release"
)

// Load reads the recipe at path, parses it and reads the files it names:
// the Secure Boot public keys (their digests are computed here) and, for a
// signed release, the trust anchors and CRLs. Relative paths are taken from
// the recipe's directory. Every problem is an *Error naming the recipe line
// that names the file.
func Load(path string) (*Recipe, error) { return LoadContext(context.Background(), path) }

// LoadContext is Load whose reads stop when ctx is done. Only regular files
// are read (a FIFO or a device named as the recipe or one of its keys is
// refused, not waited on), each up to the limit of its kind.
func LoadContext(ctx context.Context, path string) (*Recipe, error) {
	b, err := inputfile.ReadFile(ctx, path, MaxSize)
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot read the recipe: " + whyUnreadable(err), Err: err}
	}
	r, err := Parse(path, b)
	if err != nil {
		return nil, err
	}
	if err := r.resolve(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Limits of the files a recipe names.
const (
	// MaxKeyFile bounds a Secure Boot public key (an RSA-3072 PEM is
	// about 600 bytes).
	MaxKeyFile = 16 << 10
	// MaxTrustFile bounds a trust-anchor or CRL file (PEM or DER).
	MaxTrustFile = 4 << 20
)

// Path resolves a path written in the recipe against its directory.
func (r *Recipe) Path(ref Ref) string {
	if filepath.IsAbs(ref.Path) {
		return ref.Path
	}
	return filepath.Join(r.Source.Dir, ref.Path)
}

// Resolve reads the files the recipe names (keys, trust anchors, CRLs) and
// fills in SecureBoot.PublicKeys and Digests, Release.TrustCerts and
// Release.CRLList. Load calls it.
func (r *Recipe) Resolve() error { return r.resolve(context.Background()) }

func (r *Recipe) resolve(ctx context.Context) error {
	var errs []error
	fail := func(ref Ref, msg string, err error) {
		errs = append(errs, &Error{File: r.Source.File, Line: ref.Line, Column: ref.Column, Field: ref.Field, Msg: msg, Err: err})
	}
	read := func(ref Ref, limit int64) ([]byte, bool) {
		b, err := inputfile.ReadFile(ctx, r.Path(ref), limit)
		if err != nil {
			fail(ref, fmt.Sprintf("cannot read %s: %s", ref.Path, whyUnreadable(err)), err)
			return nil, false
		}
		return b, true
	}
	r.SecureBoot.PublicKeys, r.SecureBoot.Digests = nil, nil
	seen := map[[32]byte]int{}
	for i, ref := range r.SecureBoot.Keys {
		b, ok := read(ref, MaxKeyFile)
		if !ok {
			continue
		}
		k, err := secureboot.ParsePublicKeyPEM(b)
		if err != nil {
			fail(ref, fmt.Sprintf("%s is not an RSA-3072 public key (PEM)", ref.Path), err)
			continue
		}
		dg, err := secureboot.Digest(k)
		if err != nil {
			fail(ref, fmt.Sprintf("%s: cannot compute the key digest", ref.Path), err)
			continue
		}
		if j, dup := seen[dg]; dup {
			fail(ref, fmt.Sprintf("%s is the same key as secure_boot.keys[%d]", ref.Path, j), nil)
			continue
		}
		seen[dg] = i
		r.SecureBoot.PublicKeys = append(r.SecureBoot.PublicKeys, k)
		r.SecureBoot.Digests = append(r.SecureBoot.Digests, dg)
	}
	r.Release.TrustCerts, r.Release.CRLList = nil, nil
	for _, ref := range r.Release.Trust {
		b, ok := read(ref, MaxTrustFile)
		if !ok {
			continue
		}
		certs, err := release.ParseCertificates(b)
		if err != nil {
			fail(ref, fmt.Sprintf("%s: %v", ref.Path, err), err)
			continue
		}
		r.Release.TrustCerts = append(r.Release.TrustCerts, certs...)
	}
	for _, ref := range r.Release.CRLs {
		b, ok := read(ref, MaxTrustFile)
		if !ok {
			continue
		}
		crls, err := release.ParseCRLs(b)
		if err != nil {
			fail(ref, fmt.Sprintf("%s is not a CRL (PEM or DER)", ref.Path), err)
			continue
		}
		r.Release.CRLList = append(r.Release.CRLList, crls...)
	}
	return errors.Join(errs...)
}

// CheckReleaseDir reports, as an *Error naming the recipe line, a release
// path that is not an existing directory: a mistake in the recipe (exit 2)
// rather than a release the station refuses at intake.
func (r *Recipe) CheckReleaseDir() error {
	ref := r.Release.Path
	st, err := os.Stat(r.Path(ref))
	switch {
	case err != nil:
		return &Error{File: r.Source.File, Line: ref.Line, Column: ref.Column, Field: ref.Field,
			Msg: fmt.Sprintf("cannot read the release directory %s: %v", ref.Path, errors.Unwrap(err)), Err: err}
	case !st.IsDir():
		return &Error{File: r.Source.File, Line: ref.Line, Column: ref.Column, Field: ref.Field,
			Msg: fmt.Sprintf("the release path %s is not a directory", ref.Path)}
	}
	return nil
}

// whyUnreadable is a read error without the path the message already names.
func whyUnreadable(err error) string {
	why := err.Error()
	if ie, ok := errors.AsType[*inputfile.Error](err); ok {
		why = strings.TrimPrefix(why, ie.Path+": ")
	}
	return why
}
