package provisioning_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"fuseline/esp/chip"
	"fuseline/esp/partition"
	"fuseline/fixtures/virtual"
	"fuseline/provisioning"
	"fuseline/provisioning/recipe"
	"fuseline/provisioning/sim"
	"fuseline/provisioning/workspace"
	"fuseline/reports/evidence"
)

// benchStub is a flasher-stub file in esptool's format. The virtual board
// runs the stub protocol for any uploaded code (no Espressif code ships
// here), so its bytes are arbitrary; on a line this is esptool's stub JSON.
func benchStub() []byte {
	text := make([]byte, 0x2000)
	for i := range text {
		text[i] = byte(i * 7)
	}
	return fmt.Appendf(nil, `{"entry": 1077411840, "text": %q, "text_start": 1077411840, "data": %q, "data_start": 1070104576, "bss_start": 1070137344}`,
		base64.StdEncoding.EncodeToString(text), base64.StdEncoding.EncodeToString(text[:0x100]))
}

// benchRelease makes, in dir, the benchmarks' ESP32-S3 release (4 MiB of
// flash content: bootloader, table and a factory app filling the part after
// its first 64 KiB) and recipe, and takes it through intake.
func benchRelease(tb testing.TB, dir string, mode recipe.WriteMode) (*recipe.Recipe, *provisioning.Release) {
	tb.Helper()
	table := partition.Table{Entries: []partition.Entry{
		{Label: "nvs", Type: partition.TypeData, SubType: partition.SubNVS, Offset: 0x9000, Size: 0x4000},
		{Label: "otadata", Type: partition.TypeData, SubType: partition.SubOTAData, Offset: 0xD000, Size: 0x2000},
		{Label: "phy_init", Type: partition.TypeData, SubType: partition.SubPHY, Offset: 0xF000, Size: 0x1000},
		{Label: "factory", Type: partition.TypeApp, SubType: partition.SubFactory, Offset: 0x10000, Size: 0x3F0000},
	}}
	ws, err := workspace.Create(context.Background(), workspace.Options{Dir: dir, Chip: chip.S3(), Keys: keys(tb)[:1],
		AppSize: 0x3C8000, Table: &table, Recipe: workspace.RecipeOptions{WriteMode: mode}})
	if err != nil {
		tb.Fatal(err)
	}
	r, err := recipe.Load(ws.RecipePath)
	if err != nil {
		tb.Fatal(err)
	}
	rel, err := provisioning.Intake(context.Background(), r, provisioning.IntakeOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return r, rel
}

// benchLoaders are the loaders the end-to-end benchmark writes through:
// the ROM, and a flasher stub behaving as esptool's legacy stub or as
// esp-flasher-stub v1.1.0 and later, which does not erase a blank part
// (virtual.StubModel).
var benchLoaders = []struct {
	name  string
	stub  bool
	model virtual.StubModel
}{
	{"rom", false, virtual.LegacyStub},
	{"stub-legacy", true, virtual.LegacyStub},
	{"stub-blank-skipping", true, virtual.BlankSkippingStub},
}

// BenchmarkEndToEnd provisions one blank ESP32-S3 with 4 MiB of flash
// content (bootloader, table, a factory app filling the rest of the 4 MiB
// part) over a link throttled to 921600 baud (10 bits per byte), in both
// write modes, through each of benchLoaders, with and without the flash
// part's datasheet erase/program times and the loader's read times. It
// reports the total and per-phase seconds and two ratios: to the time the
// link alone needs for the bytes that crossed it (link-ratio) and for the
// image bytes handed to the loader (payload-ratio, compressed where the
// loader compresses). The goal is link-ratio <= 1.2. By default only the
// stub without flash timing runs (about 80 s; without timing the two stub
// models are the same board); FUSELINE_BENCH_ALL=1 runs the other ten.
func BenchmarkEndToEnd(b *testing.B) {
	if testing.Short() {
		b.Skip("minutes of wall time at 921600 baud")
	}
	for _, flashTiming := range []bool{false, true} {
		for _, mode := range []recipe.WriteMode{recipe.HostEncrypted, recipe.ChipEncrypted} {
			for _, ld := range benchLoaders {
				if !flashTiming && ld.stub && ld.model == virtual.LegacyStub {
					continue // without timing, the same board as stub-blank-skipping
				}
				name := fmt.Sprintf("%s/loader=%s/flash-timing=%v", mode, ld.name, flashTiming)
				b.Run(name, func(b *testing.B) {
					if (!ld.stub || flashTiming) && os.Getenv("FUSELINE_BENCH_ALL") == "" {
						b.Skip("ROM-loader and flash-timing variants take 1 to 2 minutes each; FUSELINE_BENCH_ALL=1 runs them")
					}
					dir := b.TempDir()
					r, rel := benchRelease(b, dir, mode)
					content := rel.Bytes()
					var res *provisioning.Result
					var flashWork time.Duration
					for i := 0; b.Loop(); i++ {
						board, err := sim.New(virtual.Config{Chip: chip.S3(), Throttle: true, Timing: flashTiming, StubModel: ld.model})
						if err != nil {
							b.Fatal(err)
						}
						cfg := provisioning.Config{Recipe: r, Release: rel, DataDir: filepath.Join(dir, fmt.Sprint("data", i)), Target: "virtual", Probe: board}
						if ld.stub {
							cfg.Stub = benchStub()
						}
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
						res, err = provisioning.Run(ctx, board, cfg)
						cancel()
						flashWork = board.V.FlashWork()
						board.Close()
						if err != nil || res.Verdict != evidence.PASS {
							b.Fatalf("run: %v (%s)", err, res.Reason)
						}
					}
					payloadTime := time.Duration(res.PayloadBytes * 10 * int64(time.Second) / int64(res.Baud))
					b.ReportMetric(res.Total.Seconds(), "s/board")
					b.ReportMetric(res.Total.Seconds()/res.LinkTime.Seconds(), "link-ratio")
					b.ReportMetric(res.Total.Seconds()/payloadTime.Seconds(), "payload-ratio")
					b.ReportMetric(float64(content)/(1<<20), "MiB-content")
					if flashTiming {
						// The flash part's own erase and program time: where it
						// nears the link time the write is flash-bound.
						b.ReportMetric(flashWork.Seconds(), "s-flash-work")
					}
					b.ReportMetric(float64(res.BytesSent)/(1<<20), "MiB-sent")
					// Command frames: each waits for its answer, so a USB
					// adapter's latency (about 1 ms per exchange) comes on top.
					b.ReportMetric(float64(res.Writes), "frames")
					for _, p := range res.Phases {
						b.ReportMetric(p.Duration.Seconds(), "s-"+string(p.Phase))
					}
					if os.Getenv("FUSELINE_BENCH_LOG") != "" {
						b.Logf("%s: total %v, link %v, payload %d B, sent %d B, phases %v", name, res.Total, res.LinkTime, res.PayloadBytes, res.BytesSent, res.Phases)
					}
				})
			}
		}
	}
}

// TestEndToEndModelTime is BenchmarkEndToEnd's realistic case (stub, flash
// timing, 921600 baud) on the model's own clock: the whole run inside a
// testing/synctest bubble, so the times are exactly what the board and link
// models charge (byte times, flash datasheet times, loader delays) with
// none of this machine's scheduling in them. It is a measurement, not a
// check of speed: it runs under `make bench` (FUSELINE_BENCH_MODEL=1) and
// fails only if the run does not pass.
func TestEndToEndModelTime(t *testing.T) {
	if os.Getenv("FUSELINE_BENCH_MODEL") == "" {
		t.Skip("a measurement; make bench runs it (FUSELINE_BENCH_MODEL=1)")
	}
	for _, mode := range []recipe.WriteMode{recipe.HostEncrypted, recipe.ChipEncrypted} {
		for _, ld := range benchLoaders[1:] {
			t.Run(string(mode)+"/"+ld.name, func(t *testing.T) {
				dir := t.TempDir()
				r, rel := benchRelease(t, dir, mode)
				synctest.Test(t, func(t *testing.T) {
					board, err := sim.New(virtual.Config{Chip: chip.S3(), Throttle: true, Timing: true, StubModel: ld.model})
					if err != nil {
						t.Fatal(err)
					}
					defer board.Close()
					cfg := provisioning.Config{Recipe: r, Release: rel, DataDir: filepath.Join(dir, "data"), Target: "virtual", Probe: board, Stub: benchStub()}
					res, err := provisioning.Run(t.Context(), board, cfg)
					if err != nil || res.Verdict != evidence.PASS {
						t.Fatalf("run: %v (%s)", err, res.Reason)
					}
					t.Logf("%s/%s: total %.3f s, link %.3f s, link-ratio %.3f, flash work %.3f s, %d command frames, phases %v",
						mode, ld.name, res.Total.Seconds(), res.LinkTime.Seconds(), res.Total.Seconds()/res.LinkTime.Seconds(), board.V.FlashWork().Seconds(), res.Writes, res.Phases)
				})
			})
		}
	}
}
