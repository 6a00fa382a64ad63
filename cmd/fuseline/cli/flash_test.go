package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fuseline/esp/chip"
	"fuseline/esp/image"
	"fuseline/fixtures"
	"fuseline/fixtures/virtual"
	"fuseline/flasher"
)

func runFlashCLI(t *testing.T, stdin string, args ...string) (code int, out, errOut string) {
	t.Helper()
	var o, e bytes.Buffer
	code = Run(t.Context(), args, Stdio{In: strings.NewReader(stdin), Out: &o, Err: &e})
	return code, o.String(), e.String()
}

func flashVirtual(t *testing.T, cfg virtual.Config) *virtual.Board {
	t.Helper()
	vb, err := virtual.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vb.Close() })
	return vb
}

func flashLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no flashLoopback TCP: %v", err)
	}
	return ln
}

// flashSimSocket serves a virtual board held in download mode on socket://
// (no modem lines: commands run with --before no-reset --after no-reset).
func flashSimSocket(t *testing.T, cfg virtual.Config) (string, *virtual.Board) {
	t.Helper()
	cfg.Strap = chip.BootDownload
	vb := flashVirtual(t, cfg)
	ln := flashLoopback(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { vb.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return "socket://" + ln.Addr().String(), vb
}

// flashSimRFC2217 serves a virtual board over RFC 2217, so DTR/RTS reset it as
// over a USB adapter.
func flashSimRFC2217(t *testing.T, cfg virtual.Config) (string, *virtual.Board) {
	t.Helper()
	vb := flashVirtual(t, cfg)
	ln := flashLoopback(t)
	srv := &fixtures.RFC2217Server{Open: func() (fixtures.Link, error) { return vb.Open(), nil }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return "rfc2217://" + ln.Addr().String(), vb
}

func flashWriteFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func flashTestData(n int, seed uint32) []byte {
	b := make([]byte, n)
	x := seed | 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func TestFlashID(t *testing.T) {
	t.Parallel()
	mac := [6]byte{0x7c, 0xdf, 0xa1, 0x12, 0x34, 0x56}
	spec, _ := flashSimSocket(t, virtual.Config{Chip: chip.S3(), MAC: mac, FlashSize: 8 << 20})
	noReset := []string{"--port", spec, "--before", "no-reset", "--after", "no-reset"}

	code, out, errOut := runFlashCLI(t, "", append([]string{"flash", "id"}, noReset...)...)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"chip:            esp32s3 (revision v0.2)", "MAC:             7c:df:a1:12:34:56",
		"flash:           JEDEC ef4017 (manufacturer 0xef), 8 MiB", "secure download: off", "loader:          ROM at 460800 baud"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "sync") {
		t.Errorf("no progress on stderr: %q", errOut)
	}

	code, out, errOut = runFlashCLI(t, "", append([]string{"flash", "id", "--json", "--baud", "115200", "--chip", "esp32s3"}, noReset...)...)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var r flashIDReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if r.Chip != "esp32s3" || r.MAC != "7c:df:a1:12:34:56" || r.FlashSize != 8<<20 || r.Baud != 115200 ||
		r.FlashCrypt == nil || *r.FlashCrypt || r.Stub {
		t.Errorf("report %+v", r)
	}

	// The wrong chip is a refusal.
	code, _, errOut = runFlashCLI(t, "", append([]string{"flash", "id", "--chip", "esp32c3"}, noReset...)...)
	if code != ExitFail || !strings.Contains(errOut, "esp32") {
		t.Errorf("wrong chip: exit %d: %s", code, errOut)
	}
}

func TestFlashWriteVerifyReadErase(t *testing.T) {
	t.Parallel()
	spec, vb := flashSimSocket(t, virtual.Config{Chip: chip.C3()})
	conn := []string{"--port", spec, "--before", "no-reset", "--after", "no-reset", "--baud", "921600"}
	dir := t.TempDir()
	app, err := image.Synth(image.SynthOptions{Chip: chip.C3(), Kind: image.App, Version: "1.0", ProjectName: "cli", Size: 64 << 10, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	appPath := flashWriteFile(t, dir, "app.bin", app)
	rnd := flashTestData(10000, 7) // not a multiple of 4: padded on write
	rndPath := flashWriteFile(t, dir, "random.bin", rnd)
	flash := func(args ...string) (int, string, string) {
		return runFlashCLI(t, "", append(append([]string{"flash"}, args...), conn...)...)
	}

	code, out, errOut := flash("write", "0x10000", appPath, "0x200000", rndPath)
	if code != ExitOK {
		t.Fatalf("write: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "app.bin at 0x00010000") || !strings.Contains(out, "compressed to") ||
		strings.Count(out, "MD5 verified") != 2 {
		t.Errorf("write output:\n%s", out)
	}
	if !strings.Contains(errOut, "write app.bin: 100%") {
		t.Errorf("progress lacks the write:\n%s", errOut)
	}
	if got := vb.FlashBytes(0x10000, len(app)); !bytes.Equal(got, app) {
		t.Error("the board's flash does not hold app.bin")
	}

	code, out, errOut = flash("verify", "0x10000", appPath, "0x200000", rndPath, "--json")
	if code != ExitOK {
		t.Fatalf("verify: exit %d: %s\n%s", code, out, errOut)
	}
	var vr []verifyResult
	if err := json.Unmarshal([]byte(out), &vr); err != nil || len(vr) != 2 || !vr[0].Match || !vr[1].Match {
		t.Errorf("verify JSON %v: %s", err, out)
	}

	// A file that is not what the flash holds.
	other := flashWriteFile(t, dir, "other.bin", flashTestData(4096, 9))
	code, out, _ = flash("verify", "0x10000", appPath, "0x200000", other)
	if code != ExitFail || !strings.Contains(out, "other.bin at 0x00200000 (4096 bytes): DIFFERS") || !strings.Contains(out, fmt.Sprintf("app.bin at 0x00010000 (%d bytes): OK", len(app))) {
		t.Errorf("verify of a different file: exit %d\n%s", code, out)
	}

	// Read back through the ROM and through the stub.
	for _, stub := range []bool{false, true} {
		outPath := filepath.Join(dir, "read.bin")
		args := []string{"read", "0x200000", "10000", "-o", outPath}
		if stub {
			args = append(args, "--stub", "testdata/flash/fake-stub.json")
		}
		code, out, errOut = flash(args...)
		if code != ExitOK {
			t.Fatalf("read (stub %v): exit %d: %s", stub, code, errOut)
		}
		got, err := os.ReadFile(outPath)
		if err != nil || !bytes.Equal(got, rnd) {
			t.Errorf("read (stub %v): %d bytes, %v; differs from what was written", stub, len(got), err)
		}
		if slow := strings.Contains(errOut, "READ_FLASH_SLOW"); slow == stub {
			t.Errorf("read (stub %v): slow-path note %v:\n%s", stub, slow, errOut)
		}
		if !strings.Contains(out, "MD5") {
			t.Errorf("read output: %s", out)
		}
	}

	code, out, errOut = flash("erase", "0x200000", "0x3000")
	if code != ExitOK || !strings.Contains(out, "erased 0x00200000 (+0x3000)") {
		t.Fatalf("erase: exit %d: %s %s", code, out, errOut)
	}
	if got := vb.FlashBytes(0x200000, 0x3000); !bytes.Equal(got, bytes.Repeat([]byte{0xFF}, 0x3000)) {
		t.Error("the region is not erased")
	}
	if code, _, _ = flash("verify", "0x200000", rndPath); code != ExitFail {
		t.Errorf("verify after erase: exit %d, want %d", code, ExitFail)
	}
	code, out, errOut = flash("erase", "--all", "--stub", "testdata/flash/fake-stub.json")
	if code != ExitOK || !strings.Contains(out, "erased the whole flash") {
		t.Fatalf("erase --all: exit %d: %s %s", code, out, errOut)
	}
	if got := vb.FlashBytes(0x10000, 16); !bytes.Equal(got, bytes.Repeat([]byte{0xFF}, 16)) {
		t.Error("the flash is not erased")
	}

	// An image for another chip is refused before anything is written.
	s3app, err := image.Synth(image.SynthOptions{Chip: chip.S3(), Kind: image.App, Version: "1.0", ProjectName: "cli", Size: 4096, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut = flash("write", "0x10000", flashWriteFile(t, dir, "s3.bin", s3app))
	if code != ExitFail || !strings.Contains(errOut, "s3.bin") {
		t.Errorf("S3 image on a C3: exit %d: %s", code, errOut)
	}
}

// TestFlashRFC2217Resets runs commands back to back over RFC 2217, where
// DTR/RTS reset the board into download mode and --after hard-reset boots
// it, as over a USB adapter.
func TestFlashRFC2217Resets(t *testing.T) {
	t.Parallel()
	spec, vb := flashSimRFC2217(t, virtual.Config{Chip: chip.S3()})
	dir := t.TempDir()
	data := flashTestData(20000, 3)
	p := flashWriteFile(t, dir, "data.bin", data)
	code, out, errOut := runFlashCLI(t, "", "flash", "--port", spec, "write", "0x100000", p)
	if code != ExitOK {
		t.Fatalf("write: exit %d: %s %s", code, out, errOut)
	}
	if !strings.Contains(errOut, "reset into download mode (attempt 1 of 7)") {
		t.Errorf("no reset reported:\n%s", errOut)
	}
	// The board booted its (empty) flash; the next command resets it back.
	code, out, errOut = runFlashCLI(t, "", "flash", "--port", spec, "--baud", "921600", "verify", "0x100000", p)
	if code != ExitOK || !strings.Contains(out, "OK") {
		t.Fatalf("verify: exit %d: %s %s", code, out, errOut)
	}
	if !bytes.Equal(vb.FlashBytes(0x100000, len(data)), data) {
		t.Error("flash does not hold the data")
	}

	// The same through a fixture file.
	fx := flashWriteFile(t, dir, "fixture.yaml", []byte("slots:\n  s1:\n    port: "+spec+"\n    reset: classic\n    chip: esp32s3\n"))
	code, out, errOut = runFlashCLI(t, "", "flash", "--fixture", fx, "--slot", "s1", "id")
	if code != ExitOK || !strings.Contains(out, "esp32s3") {
		t.Fatalf("id via fixture: exit %d: %s %s", code, out, errOut)
	}
	code, _, errOut = runFlashCLI(t, "", "flash", "--fixture", fx, "--slot", "s9", "id")
	if code != ExitUsage || !strings.Contains(errOut, "slots: s1") {
		t.Errorf("unknown slot: exit %d: %s", code, errOut)
	}
}

func TestFlashErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := flashWriteFile(t, dir, "f.bin", []byte{1, 2, 3, 4})
	// Boards running their application, on links without reset lines
	// (one each: a second client would take a board over).
	spi := func() string {
		vb := flashVirtual(t, virtual.Config{Chip: chip.S3()})
		ln := flashLoopback(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { vb.Serve(ctx, ln); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		return "socket://" + ln.Addr().String()
	}
	closed := flashLoopback(t)
	dead := "socket://" + closed.Addr().String()
	closed.Close()
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no port", []string{"flash", "id"}, ExitUsage, "--port is required"},
		{"bad spec", []string{"flash", "--port", "http://x:1", "id"}, ExitUsage, "socket:// or rfc2217://"},
		{"odd args", []string{"flash", "--port", dead, "write", "0x1000", f, "0x2000"}, ExitUsage, "ADDR FILE pairs"},
		{"unaligned", []string{"flash", "--port", dead, "write", "0x1001", f}, ExitUsage, "multiple of 0x1000"},
		{"overlap", []string{"flash", "--port", dead, "write", "0x1000", f, "0x1000", f}, ExitUsage, "overlaps"},
		{"no file", []string{"flash", "--port", dead, "write", "0x1000", filepath.Join(dir, "nope.bin")}, ExitUsage, "nope.bin"},
		{"bad number", []string{"flash", "--port", dead, "read", "0x1000", "lots", "-o", f}, ExitUsage, "size \"lots\""},
		{"read without -o", []string{"flash", "--port", dead, "read", "0", "16"}, ExitUsage, "-o OUT"},
		{"erase nothing", []string{"flash", "--port", dead, "erase"}, ExitUsage, "--all"},
		{"erase unaligned", []string{"flash", "--port", dead, "erase", "0x1000", "100"}, ExitUsage, "4 KiB"},
		{"bad after", []string{"flash", "--port", dead, "--after", "soft", "id"}, ExitUsage, "--after"},
		{"bad stub", []string{"flash", "--port", dead, "--stub", f, "id"}, ExitUsage, "--stub"},
		{"dtr on tcp", []string{"flash", "--port", spi(), "--before", "classic", "id"}, ExitUsage, "DTR/RTS"},
		{"gpio without fixture", []string{"flash", "--port", spi(), "--before", "gpio", "id"}, ExitUsage, "en: and boot:"},
		{"nobody listening", []string{"flash", "--port", dead, "id"}, ExitLink, "connect"},
		{"no sync", []string{"flash", "--port", spi(), "--before", "no-reset", "--connect-timeout", "1.5", "id"}, ExitLink, "no SYNC reply from the chip within --connect-timeout 1.5s"},
		{"no usb port", []string{"flash", "--port", "usb-serial:FUSELINE-NO-SUCH", "id"}, ExitLink, "no serial port matches"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, _, errOut := runFlashCLI(t, "", tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.msg) {
				t.Errorf("exit %d (want %d), stderr %q (want %q)", code, tc.code, errOut, tc.msg)
			}
		})
	}
}

// TestFlashLinkLost pulls the cable in the middle of a write: exit 3, and
// the message says the link was lost.
func TestFlashLinkLost(t *testing.T) {
	t.Parallel()
	spec, _ := flashSimSocket(t, virtual.Config{Chip: chip.S3(), Faults: virtual.FaultSpec{DisconnectAfter: 30000}})
	p := flashWriteFile(t, t.TempDir(), "big.bin", flashTestData(100000, 5))
	code, _, errOut := runFlashCLI(t, "", "flash", "--port", spec, "--before", "no-reset", "--after", "no-reset", "--baud", "115200", "write", "0x10000", p)
	if code != ExitLink || !strings.Contains(errOut, "link lost") {
		t.Errorf("exit %d (want %d): %s", code, ExitLink, errOut)
	}
}

func TestFlashProgress(t *testing.T) {
	t.Parallel()
	events := []flasher.Event{
		{Phase: flasher.PhaseReset, Done: 1, Total: 7},
		{Phase: flasher.PhaseSync, Done: 1, Total: 35},
		{Phase: flasher.PhaseSync, Done: 2, Total: 35},
		{Phase: flasher.PhaseErase, Region: "app", Total: 4096},
	}
	for i := int64(0); i <= 40; i++ {
		events = append(events, flasher.Event{Phase: flasher.PhaseWrite, Region: "app", Done: i * 100, Total: 4000, Rate: 9000})
	}
	events = append(events, flasher.Event{Phase: flasher.PhaseVerify, Region: "app", Total: 4000},
		flasher.Event{Phase: flasher.PhaseVerify, Region: "app", Done: 4000, Total: 4000})
	for _, tty := range []bool{false, true} {
		var buf bytes.Buffer
		p := &flashProgress{w: &buf, tty: tty}
		for _, e := range events {
			p.event(e)
		}
		p.finish()
		out := buf.String()
		for _, want := range []string{"reset into download mode (attempt 1 of 7)\n", "fuseline: sync\n", "erase app: 4096 bytes\n", "verify app\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("tty %v: output lacks %q:\n%s", tty, want, out)
			}
		}
		if strings.Count(out, "sync") != 1 || strings.Count(out, "verify") != 1 {
			t.Errorf("tty %v: repeated step lines:\n%s", tty, out)
		}
		if tty {
			if !strings.Contains(out, "\rwrite app") || !strings.Contains(out, "[##############################] 100% 4000/4000 bytes, 9.0 kB/s \n") {
				t.Errorf("no bar:\n%q", out)
			}
			continue
		}
		if strings.Contains(out, "\r") {
			t.Errorf("carriage return in log output:\n%q", out)
		}
		// A line per 10 %: 0, 10, …, 100.
		if n := strings.Count(out, "write app: "); n != 11 {
			t.Errorf("%d write lines, want 11:\n%s", n, out)
		}
	}
}
