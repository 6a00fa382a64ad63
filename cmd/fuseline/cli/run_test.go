package cli

import (
	"bytes"
	"context"
	"crypto/rsa"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fuseline/esp/chip"
	"fuseline/esp/secureboot"
	"fuseline/fixtures/virtual"
	"fuseline/fixtures/virtual/boot"
	"fuseline/provisioning/workspace"
	"fuseline/reports/evidence"

	"github.com/spf13/cobra"
)

func runCLI(t *testing.T, in string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code := Run(ctx, args, Stdio{In: strings.NewReader(in), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

// demoWorkspace makes an ESP32-S3 workspace with the espsecure test key (RSA
// key generation is too slow for every test).
func demoWorkspace(t *testing.T) *workspace.Workspace {
	t.Helper()
	return demoWorkspaceFor(t, chip.S3())
}

// demoWorkspaceFor is demoWorkspace for chip c.
func demoWorkspaceFor(t *testing.T, c chip.Chip) *workspace.Workspace {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "secureboot", "key1.pem"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := secureboot.ParsePrivateKeyPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := workspace.Create(context.Background(), workspace.Options{Dir: t.TempDir(), Chip: c, Keys: []*rsa.PrivateKey{k}, SecureVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

func TestRunCommand(t *testing.T) {
	t.Parallel()
	ws := demoWorkspace(t)
	data := filepath.Join(ws.Dir, "data")
	board := filepath.Join(ws.Dir, "board")
	base := []string{"run", "--recipe", ws.RecipePath, "--board-state", board, "--data", data, "--operator", "alice"}

	code, out, stderr := runCLI(t, "", append(base, "--dry-run")...)
	if code != ExitOK || !strings.Contains(out, "IRREVERSIBLE") || !strings.Contains(out, "SPI_BOOT_CRYPT_CNT") {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, out, stderr)
	}
	// No terminal answer: the prompt refuses, nothing is burned.
	code, out, stderr = runCLI(t, "", base...)
	if code != ExitFail || !strings.Contains(stderr, "not approved") {
		t.Fatalf("unanswered prompt: exit %d\n%s\n%s", code, out, stderr)
	}
	code, out, stderr = runCLI(t, "no\n", base...)
	if code != ExitFail {
		t.Fatalf("answered no: exit %d\n%s", code, stderr)
	}
	code, out, stderr = runCLI(t, "yes\n", base...)
	if code != ExitOK || !strings.Contains(out, "PASS") || !strings.Contains(out, "Evidence:") {
		t.Fatalf("answered yes: exit %d\n%s\n%s", code, out, stderr)
	}
	// The station's data directory is itself a bundle an auditor can check:
	// its state files (station-session.json, journal/) are not evidence.
	if code, out, stderr := runCLI(t, "", "report", "verify", data, "--key", filepath.Join(data, "station.pub")); code != ExitOK {
		t.Fatalf("report verify of the data directory: exit %d\n%s\n%s", code, out, stderr)
	}
	// Again on the same board: already provisioned, verified, exit 0.
	code, out, stderr = runCLI(t, "", append(base, "--json")...)
	if code != ExitOK || !strings.Contains(out, `"already_provisioned": true`) {
		t.Fatalf("second run: exit %d\n%s\n%s", code, out, stderr)
	}
}

func TestRunCommandErrors(t *testing.T) {
	t.Parallel()
	ws := demoWorkspace(t)
	bad := filepath.Join(ws.Dir, "bad.yaml")
	b, _ := os.ReadFile(ws.RecipePath)
	os.WriteFile(bad, []byte(strings.Replace(string(b), "write_mode: host-encrypted", "write_mode: fast", 1)), 0o644)
	code, _, stderr := runCLI(t, "", "run", "--recipe", bad, "--data", t.TempDir())
	if code != ExitUsage || !strings.Contains(stderr, "bad.yaml:") || !strings.Contains(stderr, "write_mode") {
		t.Fatalf("bad recipe: exit %d: %s", code, stderr)
	}
	code, _, stderr = runCLI(t, "", "run", "--data", t.TempDir())
	if code != ExitUsage {
		t.Fatalf("no recipe: exit %d: %s", code, stderr)
	}
	// A tampered app is refused at intake: exit 1, nothing touched.
	app := filepath.Join(ws.ReleaseDir, "app.bin")
	ab, _ := os.ReadFile(app)
	ab[len(ab)-5000] ^= 0xFF
	os.WriteFile(app, ab, 0o644)
	code, _, stderr = runCLI(t, "", "run", "--recipe", ws.RecipePath, "--data", t.TempDir(), "--yes")
	if code != ExitFail || !strings.Contains(stderr, "intake refused") {
		t.Fatalf("tampered release: exit %d: %s", code, stderr)
	}
	code, _, stderr = runCLI(t, "", "run", "--recipe", ws.RecipePath, "--target", "tcp://127.0.0.1:1", "--data", t.TempDir(), "--yes")
	if code != ExitFail && code != ExitLink {
		t.Fatalf("unreachable target: exit %d: %s", code, stderr)
	}
	// What is behind the target: the virtual board is never a real one, and
	// a kind must be one the evidence knows. Refused before anything is written.
	for _, args := range [][]string{{"--target", "virtual", "--target-kind", "board"}, {"--target", "socket://127.0.0.1:1", "--target-kind", "emulator"}} {
		data := filepath.Join(t.TempDir(), "data")
		code, _, stderr = runCLI(t, "", append([]string{"run", "--recipe", ws.RecipePath, "--data", data, "--yes"}, args...)...)
		if code != ExitUsage || !strings.Contains(stderr, "--target-kind") {
			t.Errorf("%v: exit %d: %s", args, code, stderr)
		}
		if _, err := os.Stat(data); err == nil {
			t.Errorf("%v: a usage error wrote to the station's data directory", args)
		}
	}
}

func TestDemoCommand(t *testing.T) {
	t.Parallel()
	ws := demoWorkspace(t) // reuses its key: the demo finds keys/sb0.pem
	for i := range 2 {
		code, out, stderr := runCLI(t, "", "demo", "--dir", ws.Dir)
		if code != ExitOK {
			t.Fatalf("demo run %d: exit %d\n%s\n%s", i, code, out, stderr)
		}
		for _, want := range []string{"fuseline-demo 1.0.0 running", "Evidence:", "Calling app_main()", "PASS"} {
			if !strings.Contains(out, want) {
				t.Errorf("demo run %d output lacks %q", i, want)
			}
		}
	}
	ev, _ := filepath.Glob(filepath.Join(ws.Dir, "fuseline-data", "evidence", "*.json"))
	if len(ev) != 2 {
		t.Errorf("evidence files %v, want 2 (one per demo board)", ev)
	}
}

// TestDemoCommandESP32 runs the demo on a virtual classic ESP32 (v3):
// host-encrypted, UART download disabled at the end.
func TestDemoCommandESP32(t *testing.T) {
	if testing.Short() {
		t.Skip("a whole ESP32 run and the boot check (about 10 s)")
	}
	t.Parallel()
	ws := demoWorkspace(t) // reuses its key: the demo finds keys/sb0.pem
	code, out, stderr := runCLI(t, "", "demo", "--chip", "esp32", "--dir", ws.Dir)
	if code != ExitOK {
		t.Fatalf("demo --chip esp32: exit %d\n%s\n%s", code, tail(out, 3000), stderr)
	}
	for _, want := range []string{
		"built for esp32", "Virtual board: blank ESP32,", "PASS",
		"Signature verified successfully", "flash encryption is enabled",
		boot.RunningBanner("fuseline-demo", "1.0.0"), "download mode disabled", "Evidence:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo --chip esp32 output lacks %q", want)
		}
	}
	if strings.Contains(out, "download mode secured") {
		t.Error("the demo claims secure download mode, which ESP32 does not have")
	}
}

// TestDemoAndRunESP32Usage: ESP32 on the virtual board is accepted by run
// (a dry run plans the ESP32 burns) and the demo's help names it; chip-
// encrypted writes on ESP32 are a usage error from the recipe, not a run.
func TestDemoAndRunESP32Usage(t *testing.T) {
	t.Parallel()
	ws := demoWorkspaceFor(t, chip.ESP32V3())
	code, out, stderr := runCLI(t, "", "run", "--recipe", ws.RecipePath, "--target", "virtual",
		"--data", filepath.Join(ws.Dir, "data"), "--dry-run")
	if code != ExitOK {
		t.Fatalf("run --target virtual, esp32 recipe, dry run: exit %d\n%s\n%s", code, out, stderr)
	}
	for _, want := range []string{"IRREVERSIBLE", "FLASH_CRYPT_CNT", "ABS_DONE_1", "UART_DOWNLOAD_DIS"} {
		if !strings.Contains(out, want) {
			t.Errorf("esp32 dry-run plan lacks %q:\n%s", want, out)
		}
	}

	dir := filepath.Join(t.TempDir(), "demo")
	code, out, stderr = runCLI(t, "", "demo", "--chip", "esp32", "--write-mode", "chip-encrypted", "--dir", dir)
	if code != ExitUsage || !strings.Contains(stderr, "write_mode: chip-encrypted writes on ESP32 need the flasher stub; use host-encrypted") {
		t.Fatalf("demo --chip esp32 --write-mode chip-encrypted: exit %d, want %d with the stub message\n%s\n%s", code, ExitUsage, tail(out, 1500), stderr)
	}
	if strings.Contains(out, "Virtual board:") {
		t.Error("a refused recipe still started a board")
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"demo", "--help"}, "chip: esp32s3, esp32c3 or esp32"},
		{[]string{"run", "--help"}, "esp32s3, esp32c3 or esp32 v3"},
	} {
		code, out, stderr := runCLI(t, "", c.args...)
		if code != ExitOK || !strings.Contains(out, c.want) || strings.Contains(out, "models esp32s3 and esp32c3") {
			t.Errorf("%v: exit %d, want text %q\n%s%s", c.args, code, c.want, out, stderr)
		}
	}
}

// TestVirtualModels: every chip Fuseline knows has a virtual eFuse
// controller; a chip without one is refused naming those that have one.
func TestVirtualModels(t *testing.T) {
	for _, c := range chip.All() {
		if err := virtualModels(c); err != nil {
			t.Errorf("%s: %v", c.Arg(), err)
		}
	}
	err := virtualModels(chip.Chip{ID: 0x0002, Name: "ESP32-S2"})
	if err == nil || !strings.Contains(err.Error(), "the virtual board models esp32s3, esp32c3, esp32, not chip(0x0002)") {
		t.Errorf("a chip without an eFuse model: %v", err)
	}
}

// TestRunOverPort provisions a board behind a real port path: RFC 2217 to a
// virtual board (DTR/RTS cross the network as over a USB adapter, so the
// station resets it into download mode and, at the end, into its app), and
// socket:// (no reset lines: the board waits in download mode).
func TestRunOverPort(t *testing.T) {
	t.Parallel()
	ws := demoWorkspace(t)
	target, vb := flashSimRFC2217(t, virtual.Config{Chip: chip.S3()})
	// The port leads to a virtual board: the station says so, and the
	// evidence records its board-side checks as modelled, not observed.
	code, out, stderr := runCLI(t, "", "run", "--recipe", ws.RecipePath, "--target", target, "--target-kind", "virtual",
		"--data", filepath.Join(ws.Dir, "data"), "--yes", "--operator", "alice", "--json")
	if code != ExitOK || !strings.Contains(out, `"verdict": "PASS"`) {
		t.Fatalf("run over %s: exit %d\n%s\n%s", target, code, tail(out, 2000), stderr)
	}
	evs, _ := filepath.Glob(filepath.Join(ws.Dir, "data", "evidence", "*.json"))
	if len(evs) != 1 {
		t.Fatalf("evidence files %v", evs)
	}
	eb, _ := os.ReadFile(evs[0])
	rec, err := evidence.Parse(eb)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Station.Target != evidence.TargetVirtual {
		t.Errorf("evidence target %q, want %q", rec.Station.Target, evidence.TargetVirtual)
	}
	for _, c := range rec.Checks {
		if c.Kind() == evidence.CheckBootLog && c.Established != evidence.Modelled {
			t.Errorf("%s established %q over a port to a virtual board", c.Name, c.Established)
		}
	}
	img := vb.ReadEfuse()
	for name, want := range map[string]uint64{"SPI_BOOT_CRYPT_CNT": 7, "SECURE_BOOT_EN": 1, "ENABLE_SECURITY_DOWNLOAD": 1} {
		if got, err := img.Get(name); err != nil || got != want {
			t.Errorf("%s = %d, %v; want %d", name, got, err, want)
		}
	}
	if string(vb.FlashBytes(0, 1)) == "\xe9" {
		t.Error("flash holds a plaintext bootloader")
	}
	// The station reset the board into SPI boot over RFC 2217's DTR/RTS and
	// watched it reach the app.
	if !strings.Contains(out, boot.RunningBanner("fuseline-demo", "1.0.0")) {
		t.Errorf("no boot log reaching the app banner in the result:\n%s", tail(out, 1500))
	}

	// A port spec that does not parse is a usage error; a dead address a link error.
	noData := filepath.Join(ws.Dir, "data-bad-spec")
	if code, _, stderr := runCLI(t, "", "run", "--recipe", ws.RecipePath, "--target", "usb:xyz", "--yes", "--data", noData); code != ExitUsage {
		t.Errorf("bad spec: exit %d %s", code, stderr)
	}
	if _, err := os.Stat(noData); err == nil {
		t.Error("a usage error wrote to the station's data directory")
	}
	ln := flashLoopback(t)
	dead := ln.Addr().String()
	ln.Close()
	if code, _, stderr := runCLI(t, "", "run", "--recipe", ws.RecipePath, "--target", "socket://"+dead, "--yes",
		"--data", filepath.Join(ws.Dir, "data2")); code != ExitLink {
		t.Errorf("dead port: exit %d %s", code, stderr)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// The virtual-board flags run and demo share reach the board's config.
func TestRunVirtualConfigFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want virtual.Config
	}{
		{nil, virtual.Config{Chip: chip.S3()}},
		{[]string{"--throttle", "--timing", "--stub-model", "blank-skipping"},
			virtual.Config{Chip: chip.S3(), Throttle: true, Timing: true, StubModel: virtual.BlankSkippingStub}},
	} {
		var o runOptions
		cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }}
		addRunFlags(cmd, &o)
		if err := cmd.ParseFlags(tc.args); err != nil {
			t.Fatal(err)
		}
		got := o.virtualConfig(chip.S3())
		if got.Throttle != tc.want.Throttle || got.Timing != tc.want.Timing || got.StubModel != tc.want.StubModel || got.Chip.ID != tc.want.Chip.ID {
			t.Errorf("%v: config %+v, want %+v", tc.args, got, tc.want)
		}
	}
}

// A release with the partition table at 0xb000 provisions and boots on
// the virtual target (its bootloader is given the release's table offset);
// one whose table sits inside the bootloader is refused at intake, before
// the board is even opened.
func TestRunTableOffset(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("testdata", "secureboot", "key1.pem"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := secureboot.ParsePrivateKeyPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := workspace.Create(context.Background(), workspace.Options{Dir: t.TempDir(), Chip: chip.S3(), Keys: []*rsa.PrivateKey{k}, TableOffset: 0xb000})
	if err != nil {
		t.Fatal(err)
	}
	data, board := filepath.Join(ws.Dir, "data"), filepath.Join(ws.Dir, "board")
	base := []string{"run", "--recipe", ws.RecipePath, "--data", data, "--operator", "alice", "--yes"}
	code, out, stderr := runCLI(t, "", append(base, "--board-state", board)...)
	if code != ExitOK || !strings.Contains(out, "PASS") {
		t.Fatalf("table at 0xb000: exit %d\n%s\n%s", code, out, stderr)
	}
	fa := filepath.Join(ws.ReleaseDir, "flasher_args.json")
	orig, _ := os.ReadFile(fa)
	os.WriteFile(fa, []byte(strings.ReplaceAll(string(orig), `"0xb000"`, `"0x4000"`)), 0o644)
	board2 := filepath.Join(ws.Dir, "board2")
	code, out, stderr = runCLI(t, "", append(base, "--board-state", board2)...)
	if code == ExitOK || !strings.Contains(stderr, "runs into the partition table at 0x4000") {
		t.Fatalf("table inside the bootloader: exit %d\n%s\n%s", code, out, stderr)
	}
	if _, err := os.Stat(board2); err == nil {
		t.Fatal("the board was opened for a release that cannot boot")
	}
}

// TestRunLinkSaysVirtual: what is behind a link is the link's own word. A
// virtual board served on socket:// announces itself (loader.OpModelKind),
// so a run that is told nothing records target virtual and its board-side
// checks as modelled; a station that calls it a real board
// (--target-kind board) cannot make its evidence say observed.
func TestRunLinkSaysVirtual(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		note string // what the run says of the link's word
	}{
		{"no flag", nil, `the link says it is Fuseline's virtual board: target "virtual"`},
		{"station says board", []string{"--target-kind", "board"}, `recorded as target "virtual", not the station's "board"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ws := demoWorkspace(t)
			target, _ := flashSimSocket(t, virtual.Config{Chip: chip.S3()})
			data := filepath.Join(ws.Dir, "data")
			args := append([]string{"run", "--recipe", ws.RecipePath, "--target", target, "--data", data, "--yes", "--operator", "alice"}, tc.args...)
			code, out, stderr := runCLI(t, "", args...)
			evs, _ := filepath.Glob(filepath.Join(data, "evidence", "*.json"))
			if len(evs) != 1 {
				t.Fatalf("exit %d, evidence files %v\n%s\n%s", code, evs, tail(out, 2000), stderr)
			}
			eb, _ := os.ReadFile(evs[0])
			rec, err := evidence.Parse(eb)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Station.Target != evidence.TargetVirtual {
				t.Errorf("evidence target %q, want %q", rec.Station.Target, evidence.TargetVirtual)
			}
			board := 0
			for _, c := range rec.Checks {
				if c.Established == evidence.Observed {
					t.Errorf("%s recorded as observed on a virtual board", c.Name)
				}
				if !evidence.HostComputed(c.Kind()) {
					board++
					if c.Established != evidence.Modelled {
						t.Errorf("%s established %q, want %q", c.Name, c.Established, evidence.Modelled)
					}
				}
			}
			if board == 0 {
				t.Error("no board-side check recorded")
			}
			if !strings.Contains(out+stderr, tc.note) {
				t.Errorf("no %q in the output\n%s\n%s", tc.note, tail(out, 2000), stderr)
			}
		})
	}
}
