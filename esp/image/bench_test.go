package image

import (
	"crypto/sha256"
	"testing"
	"time"

	"fuseline/esp/chip"
)

// BenchmarkParse measures Parse on a 1 MiB synthesized app and compares it
// with SHA-256 over the same bytes measured in the same run: the appended
// hash makes SHA-256 the floor of what a full parse can cost.
func BenchmarkParse(b *testing.B) {
	img, err := Synth(SynthOptions{Chip: chip.S3(), Size: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	mb := float64(len(img)) / 1e6

	b.ResetTimer()
	for b.Loop() {
		if _, err := Parse(img); err != nil {
			b.Fatal(err)
		}
	}
	per := b.Elapsed().Seconds() / float64(b.N)

	// The baseline runs as many times right after, outside the timer.
	b.StopTimer()
	start := time.Now()
	for range b.N {
		sha256.Sum256(img)
	}
	baseline := time.Since(start).Seconds() / float64(b.N)
	b.ReportMetric(mb/per, "MB/s")
	b.ReportMetric(mb/baseline, "sha256-MB/s")
	b.ReportMetric(per/baseline, "x-sha256-time")
}

// BenchmarkSynth measures building a 1 MiB app, the demo's per-run cost.
func BenchmarkSynth(b *testing.B) {
	var n int
	for b.Loop() {
		img, err := Synth(SynthOptions{Chip: chip.S3(), Size: 1 << 20})
		if err != nil {
			b.Fatal(err)
		}
		n = len(img)
	}
	b.ReportMetric(float64(n)/1e6/(b.Elapsed().Seconds()/float64(b.N)), "MB/s")
}
