package flasher_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"fuseline/esp/chip"
	"fuseline/esp/image"
	"fuseline/fixtures/virtual"
	"fuseline/flasher"
)

// BenchmarkThroughput is issue 4's "done when": the effective write
// throughput on a virtual board with realistic timing (Config.Throttle:
// every byte takes 10 bit times at the current baud rate on a real clock;
// Config.Timing: datasheet erase and page-program times), as a ratio to
// the wire limit of baud/10 bytes per second. Goals: >= 0.9 for
// incompressible data, > 1.0 for typical firmware (compressed).
//
// Each case writes one region with WriteRegion, so the time includes
// FLASH_BEGIN (and its erase), every data block and its answer, FLASH_END
// (stub) and the MD5 verify. Data: SIZE bytes of random bytes, and an
// esp/image.Synth app of SIZE bytes (its filler compresses about 2:1).
// SIZE is 1 MiB, or FUSELINE_BENCH_SIZE (bytes, e.g. 262144): at 115200
// baud 1 MiB is 91 s of wire time per case, so run it as
//
//	go test ./flasher -run '^$' -bench Throughput -benchtime 1x -timeout 60m
//
// Every case also runs with flash=instant (Timing off, the throttle on):
// the ratio then shows what the protocol itself costs (framing, answers,
// the ACK wait per block), apart from the flash model.
//
// The stub cases upload a fake stub (testdata-free: fakeStubJSON), which the
// virtual board answers as a stub; no Espressif code is involved.
func BenchmarkThroughput(b *testing.B) {
	size := 1 << 20
	if s := os.Getenv("FUSELINE_BENCH_SIZE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n%4096 != 0 {
			b.Fatalf("FUSELINE_BENCH_SIZE=%q: want a positive multiple of 4096", s)
		}
		size = n
	}
	rng := rand.New(rand.NewPCG(4, 4))
	random := make([]byte, size)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	fw, err := image.Synth(image.SynthOptions{Chip: chip.S3(), Kind: image.App, Version: "1.0.0",
		ProjectName: "bench", Size: size, Seed: 4})
	if err != nil {
		b.Fatal(err)
	}
	fw = fw[:min(len(fw), size)] // the image as flashed, cut to SIZE for equal comparisons

	for _, baud := range []int{115200, 921600} {
		for _, data := range []struct {
			name string
			b    []byte
		}{{"incompressible", random}, {"firmware", fw}} {
			for _, ld := range []struct {
				name string
				stub []byte
			}{{"rom", nil}, {"stub", fakeStubJSON()}} {
				for _, timed := range []bool{true, false} {
					flash := "timed"
					if !timed {
						flash = "instant"
					}
					b.Run(fmt.Sprintf("baud=%d/%s/%s/flash=%s", baud, data.name, ld.name, flash), func(b *testing.B) {
						benchWrite(b, baud, data.b, ld.stub, timed)
					})
				}
			}
		}
	}
}

func benchWrite(b *testing.B, baud int, data, stub []byte, timed bool) {
	vb, err := virtual.New(virtual.Config{Chip: chip.S3(), Throttle: true, Timing: timed, FlashSize: 4 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer vb.Close()
	p := vb.Open()
	defer p.Close()
	s, err := flasher.Connect(b.Context(), p, vb, flasher.Config{Baud: baud, Stub: stub})
	if err != nil {
		b.Fatal(err)
	}
	if s.Info().Baud != baud {
		b.Fatalf("session at %d baud, want %d", s.Info().Baud, baud)
	}
	var (
		res     *flasher.WriteResult
		elapsed time.Duration
	)
	for b.Loop() {
		t0 := time.Now()
		res, err = s.WriteRegion(b.Context(), flasher.Region{Name: "bench", Offset: 0x10000, Data: data, NoImageCheck: true})
		elapsed += time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		if !res.Verified {
			b.Fatalf("not verified: %s", res.NotVerified)
		}
	}
	perOp := elapsed.Seconds() / float64(b.N)
	rate := float64(len(data)) / perOp // payload bytes per second
	wire := float64(baud) / 10
	b.ReportMetric(rate/1e6, "MB/s")
	b.ReportMetric(rate/wire, "ratio-to-wire")
	b.ReportMetric(float64(res.WireBytes)/float64(len(data)), "wire/data")
	b.ReportMetric(float64(res.Retries), "retries")
}
