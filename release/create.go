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
	Product       string
	Chip          string
	Version       string
	SecureVersion uint32
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
		Product: opts.Product, SecureVersion: opts.SecureVersion, Version: opts.Version,
	}
	for _, s := range opts.Files {
		m.Files = append(m.Files, File{Role: s.Role, Offset: s.Offset, Device: s.Device, Path: filepath.Base(s.Source), Size: 1})
	}
	// Validate what we can before copying a byte (sizes come later).
	if err := m.Validate(); err != nil {
		return nil, err
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
		var err error
		if sb {
			err = copySigned(s.Source, filepath.Join(dir, f.Path), f, opts.SecureBoot)
		} else {
			err = copyHashed(ctx, s.Source, filepath.Join(dir, f.Path), f)
		}
		if err != nil {
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

// copyHashed streams src to dst, filling f.Size and f.SHA256.
func copyHashed(ctx context.Context, src, dst string, f *File) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("release: %s: %w", f.Role, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("release: %s: %w", f.Role, err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("release: writing %s: %w", dst, cerr)
		}
	}()
	h := sha256.New()
	f.Size = 0
	buf := make([]byte, copyBufSize)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := in.Read(buf)
		if n > 0 {
			h.Write(buf[:n])
			if _, err := out.Write(buf[:n]); err != nil {
				return fmt.Errorf("release: writing %s: %w", dst, err)
			}
			f.Size += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("release: reading %s: %w", src, rerr)
		}
	}
	h.Sum(f.SHA256[:0])
	if f.Size == 0 {
		return fmt.Errorf("release: %s %s is empty", f.Role, src)
	}
	return nil
}

// copySigned Secure Boot signs src into dst, filling f.Size and f.SHA256.
func copySigned(src, dst string, f *File, keys []crypto.Signer) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("release: %s: %w", f.Role, err)
	}
	img, err := io.ReadAll(io.LimitReader(in, maxSecureBootImage+1))
	in.Close()
	if err != nil {
		return fmt.Errorf("release: reading %s: %w", src, err)
	}
	if len(img) > maxSecureBootImage {
		return fmt.Errorf("release: %s %s is larger than %d bytes, too large to Secure Boot sign", f.Role, src, maxSecureBootImage)
	}
	signed, err := secureboot.Sign(img, keys...)
	if err != nil {
		return fmt.Errorf("release: Secure Boot signing %s: %w", src, err)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("release: %s: %w", f.Role, err)
	}
	if _, err := out.Write(signed); err != nil {
		out.Close()
		return fmt.Errorf("release: writing %s: %w", dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("release: writing %s: %w", dst, err)
	}
	f.Size = int64(len(signed))
	f.SHA256 = sha256.Sum256(signed)
	return nil
}
