package flasher_test

import (
	"math/rand/v2"
	"testing"

	"fuseline/esp/chip"
	"fuseline/fixtures/virtual"
	"fuseline/flasher"
)

// BenchmarkWriteRegion writes 256 KiB of firmware-like data to an
// unthrottled in-process virtual board (protocol and CPU cost only, no
// wire time): plain FLASH_DATA is the baseline, compressed and stub modes
// are reported against it.
func BenchmarkWriteRegion(b *testing.B) {
	// Firmware-like: compresses to roughly 60 % (random bytes from a
	// skewed alphabet, with zero runs).
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 256<<10)
	for i := range data {
		if rng.IntN(4) > 0 {
			data[i] = byte(rng.IntN(rng.IntN(256) + 1))
		}
	}
	var baseline float64
	for _, mode := range []struct {
		name string
		cfg  flasher.Config
	}{
		{"rom-plain", flasher.Config{NoCompress: true}},
		{"rom-deflate", flasher.Config{}},
		{"stub-deflate", flasher.Config{Stub: fakeStubJSON()}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			vb, err := virtual.New(virtual.Config{Chip: chip.S3()})
			if err != nil {
				b.Fatal(err)
			}
			defer vb.Close()
			p := vb.Open()
			defer p.Close()
			s, err := flasher.Connect(b.Context(), p, vb, mode.cfg)
			if err != nil {
				b.Fatal(err)
			}
			var wire int
			for b.Loop() {
				res, err := s.WriteRegion(b.Context(), flasher.Region{Offset: 0x10000, Data: data})
				if err != nil || !res.Verified {
					b.Fatal(err)
				}
				wire = res.WireBytes
			}
			mbs := float64(len(data)) * float64(b.N) / b.Elapsed().Seconds() / 1e6
			b.ReportMetric(mbs, "MB/s")
			b.ReportMetric(float64(wire)/float64(len(data)), "wire/data")
			if baseline == 0 {
				baseline = mbs
			}
			b.ReportMetric(mbs/baseline, "x-rom-plain")
		})
	}
}
