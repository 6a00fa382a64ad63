package release

import (
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"fuseline/esp/secureboot"
)

// FileSpec is one image to put into a new release.
type FileSpec struct {
	Role   Role
	Offset uint32 // flash offset (main board) or address on the sub-device
	Device string // sub-device name, for RoleSubdevice only
	Source string // file to copy; it keeps its base name in the release
}

// CreateOptions describe a new release. Zero values: Created = now,
// no Secure Boot signing.
type CreateOptions struct {
	Product string
	// Chip, Version and SecureVersion must agree with the images (the
	// bootloader and app headers' chip_id, the apps' descriptors); left
	// unset ("" or nil) they are read from them (Manifest.CheckImage).
	Chip          string
	Version       string
	SecureVersion *uint32
	Created       time.Time        // truncated to whole seconds, UTC; zero: Now()
	Now           func() time.Time // nil: time.Now
	Files         []FileSpec
	// SecureBoot, when not empty, are the Secure Boot v2 keys (1 to 3
	// RSA-3072 crypto.Signers, e.g. PKCS#11 keys) that sign the bootloader
	// and app images as they are copied in, before they are hashed: the
	// manifest then vouches for the signed images.
	SecureBoot []crypto.Signer
}

// maxSecureBootImage bounds an image that must be in memory to be Secure
// Boot signed (secureboot.Sign works on bytes). App partitions are at most
// 16 MiB on these chips.
const maxSecureBootImage = 32 << 20

// Create makes an unsigned release in dir (created if missing; it must not
// already hold a manifest): it copies every source in, hashing as it
// streams (Secure Boot signing first where asked), and writes the canonical
// manifest.json. Sign it with SignDir. On error no manifest is written, but
// copies already made stay in dir.
func Create(ctx context.Context, dir string, opts CreateOptions) (*Manifest, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	created := opts.Created
	if created.IsZero() {
		created = now()
	}
	m := &Manifest{
		Chip: opts.Chip, Created: created.UTC().Truncate(time.Second), Format: ManifestFormat,
		Product: opts.Product, Version: opts.Version,
	}
	u := unset{chip: opts.Chip == "", version: opts.Version == "", secureVersion: opts.SecureVersion == nil}
	if opts.SecureVersion != nil {
		m.SecureVersion = *opts.SecureVersion
	}
	for _, s := range opts.Files {
		m.Files = append(m.Files, File{Role: s.Role, Offset: s.Offset, Device: s.Device, Path: filepath.Base(s.Source), Size: 1})
	}
	// Fill in and check the metadata against the sources' heads, and
	// validate what we can, before copying a byte (sizes come later).
	heads := make([][]byte, len(opts.Files))
	for i, s := range opts.Files {
		if !checksMetadata(m.Files[i]) || !s.Role.Valid() {
			continue
		}
		h, err := readHead(s.Source)
		if err != nil {
			return nil, fmt.Errorf("release: %s: %w", s.Role, err)
		}
		heads[i] = h
		if err := m.fillFromImage(m.Files[i], h, &u); err != nil {
			return nil, err
		}
	}
	// A release without an app has no secure_version to read: it stays 0.
	switch {
	case u.chip:
		return nil, errors.New("release: no chip given, and no bootloader or app image to read it from")
	case u.version:
		return nil, errors.New("release: no version given, and no app image to read it from (its esp_app_desc_t)")
	}
	if err := m.Validate(); err != nil {
		if fe, ok := errors.AsType[*FormatError](err); ok && fe.Field == "version" && opts.Version == "" {
			return nil, fmt.Errorf("release: the app descriptor's version is not a semantic version; set the app's PROJECT_VER or give the version: %w", err)
		}
		return nil, err
	}
	for i := range m.Files {
		if heads[i] != nil {
			if err := m.CheckImage(m.Files[i], heads[i]); err != nil {
				return nil, err
			}
		}
	}
	if len(opts.SecureBoot) > 3 {
		return nil, fmt.Errorf("release: at most 3 Secure Boot keys, got %d", len(opts.SecureBoot))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("release: creating %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ManifestName)); err == nil {
		return nil, fmt.Errorf("release: %s already holds a release (%s exists)", dir, ManifestName)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("release: %w", err)
	}
	for i, s := range opts.Files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		sb := len(opts.SecureBoot) > 0 && (s.Role == RoleBootloader || s.Role.IsApp())
		f := &m.Files[i]
		var head []byte
		var err error
		if sb {
			head, err = copySigned(s.Source, filepath.Join(dir, f.Path), f, opts.SecureBoot)
		} else {
			head, err = copyHashed(ctx, s.Source, filepath.Join(dir, f.Path), f)
		}
		if err != nil {
			return nil, err
		}
		// Again on the bytes hashed into the manifest: the source may have
		// changed since its head was read.
		if err := m.CheckImage(*f, head); err != nil {
			return nil, err
		}
	}
	b, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(dir, ManifestName, b); err != nil {
		return nil, err
	}
	return m, nil
}

// readHead returns the first ImageHeadLen bytes of the file at p (fewer
// if it is shorter).
func readHead(p string) ([]byte, error) {
	in, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	b := make([]byte, ImageHeadLen)
	n, err := io.ReadFull(in, b)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, err
	}
	return b[:n], nil
}

// copyHashed streams src to dst, filling f.Size and f.SHA256, and returns
// the first ImageHeadLen bytes it copied.
func copyHashed(ctx context.Context, src, dst string, f *File) (head []byte, err error) {
	in, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("release: %s: %w", f.Role, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("release: %s: %w", f.Role, err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			head, err = nil, fmt.Errorf("release: writing %s: %w", dst, cerr)
		}
	}()
	h := sha256.New()
	f.Size = 0
	buf := make([]byte, copyBufSize)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, rerr := in.Read(buf)
		if n > 0 {
			h.Write(buf[:n])
			if len(head) < ImageHeadLen {
				head = append(head, buf[:min(n, ImageHeadLen-len(head))]...)
			}
			if _, err := out.Write(buf[:n]); err != nil {
				return nil, fmt.Errorf("release: writing %s: %w", dst, err)
			}
			f.Size += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, fmt.Errorf("release: reading %s: %w", src, rerr)
		}
	}
	h.Sum(f.SHA256[:0])
	if f.Size == 0 {
		return nil, fmt.Errorf("release: %s %s is empty", f.Role, src)
	}
	return head, nil
}

// copySigned Secure Boot signs src into dst, filling f.Size and f.SHA256,
// and returns the first ImageHeadLen bytes of the signed image.
func copySigned(src, dst string, f *File, keys []crypto.Signer) ([]byte, error) {
	in, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("release: %s: %w", f.Role, err)
	}
	img, err := io.ReadAll(io.LimitReader(in, maxSecureBootImage+1))
	in.Close()
	if err != nil {
		return nil, fmt.Errorf("release: reading %s: %w", src, err)
	}
	if len(img) > maxSecureBootImage {
		return nil, fmt.Errorf("release: %s %s is larger than %d bytes, too large to Secure Boot sign", f.Role, src, maxSecureBootImage)
	}
	signed, err := secureboot.Sign(img, keys...)
	if err != nil {
		return nil, fmt.Errorf("release: Secure Boot signing %s: %w", src, err)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("release: %s: %w", f.Role, err)
	}
	if _, err := out.Write(signed); err != nil {
		out.Close()
		return nil, fmt.Errorf("release: writing %s: %w", dst, err)
	}
	if err := out.Close(); err != nil {
		return nil, fmt.Errorf("release: writing %s: %w", dst, err)
	}
	f.Size = int64(len(signed))
	f.SHA256 = sha256.Sum256(signed)
	return signed[:min(len(signed), ImageHeadLen)], nil
}
