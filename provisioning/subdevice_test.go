package provisioning

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fuseline/esp/chip"
	"fuseline/esp/image"
	"fuseline/esp/secureboot"
	"fuseline/fixtures/virtual"
	"fuseline/provisioning/recipe"
	"fuseline/provisioning/sim"
	"fuseline/provisioning/workspace"
	"fuseline/release"
	"fuseline/release/releasetest"
	"fuseline/reports/audit"
	"fuseline/reports/evidence"
)

// subRelease is a signed S3 release carrying sub-device images, in a
// workspace with a recipe naming the sub-devices.
type subRelease struct {
	ws     *workspace.Workspace
	dir    string // the release
	recipe string // recipe path
	subs   map[string][]byte
}

// subFile is one sub-device image of a test release.
type subFile struct {
	device string
	offset uint32
	data   []byte
}

// newSubRelease signs a release of the workspace's main images plus files,
// and writes a recipe whose subdevices section is subdevicesYAML.
func newSubRelease(t *testing.T, files []subFile, subdevicesYAML string) *subRelease {
	t.Helper()
	ws, _ := newWorkspace(t, workspace.Options{})
	pki, err := releasetest.NewPKI(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	boot, _, _ := secureboot.Split(ws.Bootloader)
	app, _, _ := secureboot.Split(ws.App)
	specs := []release.FileSpec{
		{Role: release.RoleBootloader, Offset: 0, Source: write("bootloader.bin", boot)},
		{Role: release.RolePartitionTable, Offset: 0x8000, Source: write("partition-table.bin", ws.Table)},
		{Role: release.RoleFactory, Offset: 0x10000, Source: write("app.bin", app)},
	}
	s := &subRelease{ws: ws, dir: filepath.Join(ws.Dir, "signed"), subs: map[string][]byte{}}
	for _, f := range files {
		name := f.device + ".bin"
		s.subs[name] = f.data
		specs = append(specs, release.FileSpec{Role: release.RoleSubdevice, Device: f.device, Offset: f.offset, Source: write(name, f.data)})
	}
	ctx := context.Background()
	opts := release.CreateOptions{Product: "thermo", Chip: "esp32s3", Version: "1.0.0", SecureBoot: []crypto.Signer{ws.Keys[0]}, Files: specs}
	if _, err := release.Create(ctx, s.dir, opts); err != nil {
		t.Fatal(err)
	}
	if err := release.SignDir(ctx, s.dir, pki.ReleaseSigner(pki.Signer)); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(ws.Dir, "root.pem")
	if err := os.WriteFile(root, releasetest.CertPEM(pki.Root.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	y := "chip: esp32s3\nrelease: {path: signed, trust: [root.pem]}\nsecure_boot: {keys: [keys/sb0.pub.pem]}\nflash_encryption: {scheme: xts-aes-128}\n" + subdevicesYAML
	s.recipe = filepath.Join(ws.Dir, "sub.yaml")
	if err := os.WriteFile(s.recipe, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *subRelease) load(t *testing.T) *recipe.Recipe {
	t.Helper()
	r, err := recipe.Load(s.recipe)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// c3App is a C3 app image (the sub-device's firmware).
func c3App(t *testing.T, seed uint64) []byte {
	t.Helper()
	b, err := image.Synth(image.SynthOptions{Chip: chip.C3(), Kind: image.App, Version: "0.9.0", ProjectName: "motor", Size: 20000, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serveC3 serves a virtual C3 held in download mode on a loopback TCP port.
func serveC3(t *testing.T) (string, *virtual.Board) {
	t.Helper()
	vb, err := virtual.New(virtual.Config{Chip: chip.C3(), Strap: chip.BootDownload})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback TCP: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { vb.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done; vb.Close() })
	return "tcp://" + ln.Addr().String(), vb
}

type subRun struct {
	res  *Result
	err  error
	main *sim.Board
}

// runWithSubs runs the main virtual S3 with the given in-process virtual
// sub-devices (by virtual: name).
func runWithSubs(t *testing.T, r *recipe.Recipe, rel *Release, virt map[string]*sim.Board) subRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	mb, err := sim.New(virtual.Config{Chip: chip.S3()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mb.Close() })
	log, err := audit.Open(ctx, audit.Config{Dir: dir, Station: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close(context.Background())
	cfg := Config{Recipe: r, Release: rel, DataDir: dir, Operator: "tester", Target: "virtual", Audit: log, Probe: mb,
		DialSubdevice: func(ctx context.Context, sd recipe.Subdevice) (Board, func(), error) {
			if name, ok := sd.Virtual(); ok {
				b := virt[name]
				if b == nil {
					return nil, nil, errors.New("no such virtual board")
				}
				return b, func() {}, nil
			}
			return DialSubdevice(ctx, sd)
		}}
	res, err := Run(ctx, mb, cfg)
	return subRun{res: res, err: err, main: mb}
}

func TestSubdeviceRunPass(t *testing.T) {
	t.Parallel()
	motor, radio := c3App(t, 1), c3App(t, 2)
	addr, radioBoard := serveC3(t)
	s := newSubRelease(t, []subFile{{"motor", 0x10000, motor}, {"radio", 0x20000, radio}},
		"subdevices:\n  motor: {link: virtual:motor, chip: esp32c3}\n  radio: {link: \""+addr+"\", chip: esp32c3}\n  spare: {link: virtual:spare, chip: esp32c3}\n")
	r := s.load(t)
	rel, err := Intake(context.Background(), r, IntakeOptions{StateDir: t.TempDir()})
	if err != nil {
		t.Fatalf("Intake: %v", err)
	}
	if len(rel.Subdevices) != 2 || rel.Subdevices[0].Device != "motor" || rel.Subdevices[1].Offset != 0x20000 {
		t.Fatalf("sub-device images %+v", rel.Subdevices)
	}
	motorBoard, err := sim.New(virtual.Config{Chip: chip.C3()})
	if err != nil {
		t.Fatal(err)
	}
	defer motorBoard.Close()
	out := runWithSubs(t, r, rel, map[string]*sim.Board{"motor": motorBoard})
	if out.err != nil || out.res.Verdict != evidence.PASS {
		t.Fatalf("Run: %v (%s %s)", out.err, out.res.Verdict, out.res.Reason)
	}
	if got := motorBoard.V.FlashBytes(0x10000, len(motor)); !bytes.Equal(got, motor) {
		t.Error("the motor's flash does not hold its image at 0x10000")
	}
	if got := radioBoard.FlashBytes(0x20000, len(radio)); !bytes.Equal(got, radio) {
		t.Error("the radio's flash (over tcp://) does not hold its image at 0x20000")
	}
	// The evidence has a step and a verified check per sub-device image.
	rec := out.res.Record
	for _, dev := range []string{"motor", "radio"} {
		var step, check bool
		for _, st := range rec.Steps {
			step = step || strings.HasPrefix(st.Name, "flash:subdevice:"+dev+"@") && st.Result == evidence.StepOK
		}
		for _, c := range rec.Checks {
			check = check || c.Verified && c.What == "subdevice "+dev+": image "+dev+".bin written and MD5-verified"
		}
		if !step || !check {
			t.Errorf("%s: step %v check %v in the evidence", dev, step, check)
		}
	}
	// The evidence lists each sub-device image with its digest.
	for _, want := range []struct {
		dev  string
		off  uint32
		data []byte
	}{{"motor", 0x10000, motor}, {"radio", 0x20000, radio}} {
		found := false
		for _, im := range rec.Images {
			if im.Role == "subdevice/"+want.dev {
				found = im.File == want.dev+".bin" && im.Offset == want.off && im.Size == int64(len(want.data)) &&
					im.PlaintextSHA256 == evidence.Digest(sha256.Sum256(want.data)) && im.WrittenSHA256 == im.PlaintextSHA256 && im.WriteMode == "plain"
			}
		}
		if !found {
			t.Errorf("%s: no matching image in the evidence: %+v", want.dev, rec.Images)
		}
	}
	// The plan (what --dry-run prints) names every sub-device image, its
	// device, chip and link.
	if p := out.res.Plan; p == nil || len(p.Subdevices) != 2 {
		t.Fatalf("plan sub-devices: %+v", p)
	}
	var text bytes.Buffer
	if err := WritePlan(&text, out.res.Plan); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sub-device motor @0x10000", "to the esp32c3 on virtual:motor", "sub-device radio @0x20000", "on " + addr} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, text.String())
		}
	}
	// Sub-devices were written before the lockdown: the first lock step
	// comes after the last sub-device step.
	lastSub, firstLock := -1, -1
	for i, st := range rec.Steps {
		if strings.HasPrefix(st.Name, "flash:subdevice:") {
			lastSub = i
		}
		if strings.HasPrefix(st.Name, string(PhaseLock)) && firstLock < 0 {
			firstLock = i
		}
	}
	if lastSub < 0 || firstLock < 0 || lastSub > firstLock {
		t.Errorf("step order: last sub-device step %d, first lock step %d", lastSub, firstLock)
	}
}

func TestSubdeviceIntakeRefusals(t *testing.T) {
	t.Parallel()
	motor := c3App(t, 3)
	t.Run("tampered", func(t *testing.T) {
		t.Parallel()
		s := newSubRelease(t, []subFile{{"motor", 0x10000, motor}}, "subdevices:\n  motor: {link: virtual:motor, chip: esp32c3}\n")
		b := bytes.Clone(motor)
		b[len(b)/2] ^= 0x40
		if err := os.WriteFile(filepath.Join(s.dir, "motor.bin"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Intake(context.Background(), s.load(t), IntakeOptions{})
		ie, ok := errors.AsType[*IntakeError](err)
		if !ok || !errors.Is(err, ErrIntake) || ie.File != "motor.bin" || !strings.Contains(ie.Reason, "does not match the signed manifest") {
			t.Fatalf("err = %v", err)
		}
		if _, ok := errors.AsType[*release.RegionError](err); !ok {
			t.Errorf("err %v does not carry the *release.RegionError", err)
		}
	})
	t.Run("unknown sub-device", func(t *testing.T) {
		t.Parallel()
		s := newSubRelease(t, []subFile{{"pump", 0x10000, motor}}, "subdevices:\n  motor: {link: virtual:motor, chip: esp32c3}\n")
		_, err := Intake(context.Background(), s.load(t), IntakeOptions{})
		ie, ok := errors.AsType[*IntakeError](err)
		if !ok || ie.File != "pump.bin" || ie.Reason != `sub-device "pump" is not in the recipe's subdevices` {
			t.Fatalf("err = %v", err)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("refusal is not one line: %q", err)
		}
	})
	t.Run("recipe sub-device absent from the release", func(t *testing.T) {
		t.Parallel()
		s := newSubRelease(t, nil, "subdevices:\n  motor: {link: virtual:motor, chip: esp32c3}\n")
		rel, err := Intake(context.Background(), s.load(t), IntakeOptions{})
		if err != nil || len(rel.Subdevices) != 0 {
			t.Fatalf("Intake: %v", err)
		}
	})
}

// A sub-device that cannot be written fails the board before the lockdown:
// none of the lock steps burned on the main board, and nothing
// unauthenticated reached the sub-device.
func TestSubdeviceFailureStopsBeforeLock(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		board  chip.Chip
		change bool // the image changes on disk after intake
		want   string
	}{
		{"wrong chip on the link", chip.S3(), false, "sub-device motor: the board is not the recipe's esp32c3"},
		{"image changed after intake", chip.C3(), true, "sha256 mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			motor := c3App(t, 4)
			s := newSubRelease(t, []subFile{{"motor", 0x10000, motor}}, "subdevices:\n  motor: {link: virtual:motor, chip: esp32c3}\n")
			r := s.load(t)
			rel, err := Intake(context.Background(), r, IntakeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			sent := motor
			if tc.change {
				sent = bytes.Clone(motor)
				sent[len(sent)-100] ^= 1
				if err := os.WriteFile(filepath.Join(s.dir, "motor.bin"), sent, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			sub, err := sim.New(virtual.Config{Chip: tc.board})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			out := runWithSubs(t, r, rel, map[string]*sim.Board{"motor": sub})
			t.Logf("run error: %v", out.err)
			if !errors.Is(out.err, ErrVerify) || out.res.Verdict != evidence.FAIL || !strings.Contains(out.err.Error(), tc.want) {
				t.Fatalf("err %v verdict %s, want ErrVerify with %q", out.err, out.res.Verdict, tc.want)
			}
			// Only the key phase (before flashing) may have burned.
			for _, b := range out.res.Burned {
				if b != StepFlashKey && b != StepEncryptionOn {
					t.Errorf("%s burned after a sub-device failure", b)
				}
			}
			phys := out.main.V.Efuse()
			for _, f := range []string{"ENABLE_SECURITY_DOWNLOAD", "DIS_PAD_JTAG", "DIS_DIRECT_BOOT", "DIS_DOWNLOAD_ICACHE", "SECURE_BOOT_EN"} {
				if v, _ := phys.Get(f); v != 0 {
					t.Errorf("%s = %d after a sub-device failure, want 0", f, v)
				}
			}
			for _, st := range out.res.Record.Steps {
				if strings.HasPrefix(st.Name, string(PhaseLock)) {
					t.Errorf("lock step %s ran (%s)", st.Name, st.Result)
				}
			}
			if raw := sub.V.FlashBytes(0x10000, len(sent)); bytes.Equal(raw[:64], sent[:64]) {
				t.Error("the image reached the sub-device")
			}
		})
	}
}
