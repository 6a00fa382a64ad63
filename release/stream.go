package release

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
)

// Fault says how an image differs from its manifest entry.
type Fault int

const (
	FaultTooLong  Fault = iota + 1 // a byte past the declared size
	FaultTooShort                  // the data ended before the declared size
	FaultHash                      // all bytes present, SHA-256 differs
)

func (f Fault) String() string {
	switch f {
	case FaultTooLong:
		return "longer than declared"
	case FaultTooShort:
		return "shorter than declared"
	case FaultHash:
		return "sha256 mismatch"
	}
	return fmt.Sprintf("fault(%d)", int(f))
}

// RegionError reports an image that is not the one the manifest
// authenticated. The region it was going to (File.Region) must be treated
// as invalid: whatever was written there is not the release.
type RegionError struct {
	File  File
	Fault Fault
	At    int64  // byte offset in the image where the fault was found
	Got   Digest // for FaultHash: the digest of the bytes read
}

func (e *RegionError) Error() string {
	s := fmt.Sprintf("release: %s %s (%s) invalid: %s", e.File.Role, e.File.Path, e.File.Region(), e.Fault)
	switch e.Fault {
	case FaultTooLong:
		s += fmt.Sprintf(" (%d bytes declared, more at byte %d)", e.File.Size, e.At)
	case FaultTooShort:
		s += fmt.Sprintf(" (%d bytes declared, ended at byte %d)", e.File.Size, e.At)
	case FaultHash:
		s += fmt.Sprintf(" after %d bytes (want %s, got %s)", e.At, e.File.SHA256.short(), e.Got.short())
	}
	return s
}

// ImageReader passes an image through while hashing it against its
// manifest entry. It never returns more than File.Size bytes. When the last
// declared byte has been read it checks, before returning that last block,
// that the source has nothing more and that the SHA-256 matches; on a fault
// it returns (0, *RegionError) instead, so a consumer writing block by
// block never receives the tail of a wrong image. A source that ends early
// is a *RegionError too. After the last block, Read returns io.EOF.
//
// Errors of the source itself (I/O) are returned wrapped, not as
// RegionError: they say nothing about authenticity.
type ImageReader struct {
	f    File
	src  io.Reader
	h    hash.Hash
	n    int64
	err  error // sticky
	done bool  // all bytes verified
}

// NewImageReader wraps src, which must yield the image f describes.
func NewImageReader(src io.Reader, f File) *ImageReader {
	return &ImageReader{f: f, src: src, h: sha256.New()}
}

// File is the manifest entry being verified.
func (r *ImageReader) File() File { return r.f }

// Verified reports whether every byte was read and matched.
func (r *ImageReader) Verified() bool { return r.done }

// Read implements io.Reader.
func (r *ImageReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.done {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	remain := r.f.Size - r.n
	if int64(len(p)) > remain {
		p = p[:remain]
	}
	n, err := r.src.Read(p)
	if n > 0 {
		r.h.Write(p[:n])
		r.n += int64(n)
	}
	if r.n == r.f.Size {
		if ferr := r.finish(); ferr != nil {
			r.err = ferr
			return 0, ferr
		}
		r.done = true
		return n, nil
	}
	switch {
	case err == io.EOF:
		r.err = &RegionError{File: r.f, Fault: FaultTooShort, At: r.n}
		return n, r.err
	case err != nil:
		r.err = fmt.Errorf("release: reading %s at byte %d: %w", r.f.Path, r.n, err)
		return n, r.err
	}
	return n, nil
}

// finish runs when the declared size has been read: one probe for extra
// bytes, then the digest.
func (r *ImageReader) finish() error {
	var probe [1]byte
	for tries := 0; ; tries++ {
		n, err := r.src.Read(probe[:])
		if n > 0 {
			return &RegionError{File: r.f, Fault: FaultTooLong, At: r.n}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("release: reading %s at byte %d: %w", r.f.Path, r.n, err)
		}
		// (0, nil) is legal but must not go on forever.
		if tries == 100 {
			return fmt.Errorf("release: reading %s at byte %d: %w", r.f.Path, r.n, io.ErrNoProgress)
		}
	}
	var got Digest
	r.h.Sum(got[:0])
	if got != r.f.SHA256 {
		return &RegionError{File: r.f, Fault: FaultHash, At: r.n, Got: got}
	}
	return nil
}

// Close closes the source if it is an io.Closer.
func (r *ImageReader) Close() error {
	if c, ok := r.src.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
