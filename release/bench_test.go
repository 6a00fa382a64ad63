package release_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"fuseline/release"
	"fuseline/release/releasetest"
)

// benchSize is the image the benchmarks stream.
const benchSize = 64 << 20

// sink keeps the compiler from discarding a hash.
var sink [32]byte

// rawSHA256 hashes r to EOF through buf: the baseline, nothing but SHA-256
// and the same reads.
func rawSHA256(r io.Reader, buf []byte) {
	h := sha256.New()
	for {
		n, err := r.Read(buf)
		h.Write(buf[:n])
		if err != nil {
			break
		}
	}
	h.Sum(sink[:0])
}

// interleave runs baseline and subject alternately in every iteration and
// reports both throughputs and subject/baseline as "ratio", by wall time
// and, where the OS can say, by the thread's CPU time ("cpu-ratio"), which
// stays meaningful on a shared machine whose load drifts.
func interleave(b *testing.B, baseline, subject func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var tb, ts, cb, cs time.Duration
	cpuOK := true
	for b.Loop() {
		c0, ok0 := threadCPU()
		t0 := time.Now()
		baseline()
		t1 := time.Now()
		c1, ok1 := threadCPU()
		subject()
		t2 := time.Now()
		c2, ok2 := threadCPU()
		tb += t1.Sub(t0)
		ts += t2.Sub(t1)
		cb += c1 - c0
		cs += c2 - c1
		cpuOK = cpuOK && ok0 && ok1 && ok2
	}
	mb := float64(benchSize) * float64(b.N) / 1e6
	b.ReportMetric(mb/tb.Seconds(), "raw-MB/s")
	b.ReportMetric(mb/ts.Seconds(), "stream-MB/s")
	b.ReportMetric(tb.Seconds()/ts.Seconds(), "ratio")
	if cpuOK && cb > 0 && cs > 0 {
		b.ReportMetric(mb/cb.Seconds(), "raw-cpu-MB/s")
		b.ReportMetric(mb/cs.Seconds(), "stream-cpu-MB/s")
		b.ReportMetric(cb.Seconds()/cs.Seconds(), "cpu-ratio")
	}
}

// BenchmarkStream measures streamed verification against a bare SHA-256
// of the same bytes from the same source, in the same iterations:
//
//	mem:  ImageReader over a bytes.Reader vs sha256 over the same reads
//	file: release.Verify of a one-image release (open, CMS and chain check,
//	      stream, re-authenticate) vs sha256 of the file read 1 MiB at a time
//
// ratio = stream throughput / raw throughput (1.0: verification costs
// nothing beyond the hash); cpu-ratio the same by thread CPU time.
func BenchmarkStream(b *testing.B) {
	img := releasetest.Image(benchSize, 3)
	f := fileFor(img)
	buf := make([]byte, 1<<20)

	b.Run("mem", func(b *testing.B) {
		interleave(b, func() { rawSHA256(bytes.NewReader(img), buf) }, func() {
			r := release.NewImageReader(bytes.NewReader(img), f)
			for {
				_, err := r.Read(buf)
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	})

	dir := filepath.Join(b.TempDir(), "rel")
	os.MkdirAll(dir, 0o755)
	path := filepath.Join(dir, "data.bin")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		b.Fatal(err)
	}
	pki, err := releasetest.NewPKI(time.Now())
	if err != nil {
		b.Fatal(err)
	}
	m := &release.Manifest{Format: 1, Product: "bench", Chip: "esp32s3", Version: "1.0.0",
		Created: time.Now().UTC().Truncate(time.Second),
		Files:   []release.File{{Role: release.RoleData, Offset: 0x100000, Path: "data.bin", Size: benchSize, SHA256: f.SHA256}}}
	mb, err := m.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, release.ManifestName), mb, 0o644)
	ctx := context.Background()
	if err := release.SignDir(ctx, dir, pki.ReleaseSigner(pki.Signer)); err != nil {
		b.Fatal(err)
	}
	pol := release.Policy{Roots: pki.Roots()}

	b.Run("file", func(b *testing.B) {
		interleave(b, func() {
			fh, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			rawSHA256(fh, buf)
			fh.Close()
		}, func() {
			if _, err := release.Verify(ctx, dir, pol); err != nil {
				b.Fatal(err)
			}
		})
	})
}
