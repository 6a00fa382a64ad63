package release_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"testing/iotest"
	"time"

	"fuseline/release"
	"fuseline/release/releasetest"
)

func fileFor(b []byte) release.File {
	return release.File{Role: release.RoleFactory, Offset: 0x10000, Path: "app.bin", Size: int64(len(b)), SHA256: sha256.Sum256(b)}
}

// noProgress returns (0, nil) forever.
type noProgress struct{}

func (noProgress) Read([]byte) (int, error) { return 0, nil }

func TestImageReader(t *testing.T) {
	t.Parallel()
	img := releasetest.Image(70001, 9)
	f := fileFor(img)
	flipped := bytes.Clone(img)
	flipped[len(flipped)-1] ^= 0x80
	ioErr := errors.New("usb gone")
	wrappers := map[string]func(io.Reader) io.Reader{
		"plain":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
		"data+EOF": iotest.DataErrReader,
	}
	cases := []struct {
		name  string
		src   func() io.Reader
		fault release.Fault // 0: none
		at    int64
		isErr error // for non-region errors
	}{
		{name: "exact", src: func() io.Reader { return bytes.NewReader(img) }},
		{name: "one byte too many", src: func() io.Reader { return bytes.NewReader(append(bytes.Clone(img), 0)) }, fault: release.FaultTooLong, at: f.Size},
		{name: "much longer", src: func() io.Reader { return bytes.NewReader(append(bytes.Clone(img), img...)) }, fault: release.FaultTooLong, at: f.Size},
		{name: "short", src: func() io.Reader { return bytes.NewReader(img[:50000]) }, fault: release.FaultTooShort, at: 50000},
		{name: "empty", src: func() io.Reader { return bytes.NewReader(nil) }, fault: release.FaultTooShort, at: 0},
		{name: "last byte differs", src: func() io.Reader { return bytes.NewReader(flipped) }, fault: release.FaultHash, at: f.Size},
		{name: "I/O error midway", src: func() io.Reader { return io.MultiReader(bytes.NewReader(img[:1000]), iotest.ErrReader(ioErr)) }, isErr: ioErr},
		{name: "timeout", src: func() io.Reader { return iotest.TimeoutReader(bytes.NewReader(img)) }, isErr: iotest.ErrTimeout},
		{name: "no progress at the end", src: func() io.Reader { return io.MultiReader(bytes.NewReader(img), noProgress{}) }, isErr: io.ErrNoProgress},
	}
	for _, tc := range cases {
		for wn, wrap := range wrappers {
			if tc.isErr != nil && wn != "plain" {
				continue
			}
			t.Run(tc.name+"/"+wn, func(t *testing.T) {
				t.Parallel()
				r := release.NewImageReader(wrap(tc.src()), f)
				got, err := io.ReadAll(r)
				switch {
				case tc.isErr != nil:
					if !errors.Is(err, tc.isErr) {
						t.Fatalf("err = %v, want %v", err, tc.isErr)
					}
					if _, ok := errors.AsType[*release.RegionError](err); ok {
						t.Fatal("an I/O error is not a region fault")
					}
				case tc.fault == 0:
					if err != nil || !bytes.Equal(got, img) || !r.Verified() {
						t.Fatalf("err %v, %d bytes, verified %v", err, len(got), r.Verified())
					}
					if n, err := r.Read(make([]byte, 10)); n != 0 || err != io.EOF {
						t.Fatalf("after the end: %d, %v", n, err)
					}
				default:
					re, ok := errors.AsType[*release.RegionError](err)
					if !ok || re.Fault != tc.fault || re.At != tc.at {
						t.Fatalf("err = %v, want %v at %d", err, tc.fault, tc.at)
					}
					// The consumer never holds the whole declared image.
					if int64(len(got)) >= f.Size || r.Verified() {
						t.Fatalf("got %d of %d bytes despite the fault", len(got), f.Size)
					}
					if !bytes.Equal(got, img[:len(got)]) {
						t.Fatal("bytes passed through were altered")
					}
					if _, err2 := r.Read(make([]byte, 10)); err2 != err {
						t.Fatalf("error not sticky: %v then %v", err, err2)
					}
				}
			})
		}
	}
}

// A release far larger than the memory Verify uses: a sparse image of
// 256 MiB (32 MiB with -short) streams through one buffer.
// Not parallel on purpose: it measures the process's allocations, and the
// parallel tests stay paused while a sequential test runs.
func TestVerifyLargeSparseRelease(t *testing.T) {
	size := int64(256 << 20)
	if testing.Short() {
		size = 32 << 20
	}
	ctx := context.Background()
	f := newFx(t)
	dir := f.dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "storage.bin")
	if err := releasetest.SparseFile(big, size, 8<<20); err != nil {
		t.Fatal(err)
	}
	// The manifest is written by hand so the image is not copied (and
	// stays sparse): hash it streaming.
	h := sha256.New()
	src, _ := os.Open(big)
	io.Copy(h, src)
	src.Close()
	m := &release.Manifest{Format: 1, Product: "demo", Chip: "esp32c3", Version: "3.0.0", SecureVersion: 1,
		Created: time.Now().UTC().Truncate(time.Second),
		Files:   []release.File{{Role: "data/storage", Offset: 0x100000, Path: "storage.bin", Size: size}}}
	h.Sum(m.Files[0].SHA256[:0])
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, release.ManifestName), b, 0o644)
	if err := release.SignDir(ctx, dir, f.signer); err != nil {
		t.Fatal(err)
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	if _, err := release.Verify(ctx, dir, f.pol); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("verified %d MiB in %v (%.0f MB/s); allocated %.2f MiB in all during Verify",
		size>>20, elapsed.Round(time.Millisecond), float64(size)/1e6/elapsed.Seconds(), float64(alloc)/(1<<20))
	// One 1 MiB buffer plus small change; the image never sits in memory.
	if limit := uint64(4 << 20); alloc > limit {
		t.Fatalf("Verify allocated %d bytes for a %d-byte image", alloc, size)
	}

	// And a fault deep in the big file is still found, at the end.
	fh, _ := os.OpenFile(big, os.O_WRONLY, 0)
	fh.WriteAt([]byte{1}, size-5)
	fh.Close()
	_, err = release.Verify(ctx, dir, f.pol)
	re, ok := errors.AsType[*release.RegionError](err)
	if !ok || re.Fault != release.FaultHash || re.At != size {
		t.Fatalf("err = %v", err)
	}
}
