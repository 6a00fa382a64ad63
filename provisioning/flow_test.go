package provisioning_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"fuseline/esp/chip"
	"fuseline/esp/efuse"
	"fuseline/esp/flashenc"
	"fuseline/esp/secureboot"
	"fuseline/fixtures/virtual"
	"fuseline/provisioning"
	"fuseline/provisioning/journal"
	"fuseline/provisioning/keyseal"
	"fuseline/provisioning/recipe"
	"fuseline/provisioning/sim"
	"fuseline/provisioning/workspace"
	"fuseline/reports/audit"
	"fuseline/reports/evidence"
)

var _ provisioning.Board = (*sim.Board)(nil)
var _ provisioning.DeviceID = (*sim.Board)(nil)
var _ provisioning.Probe = (*sim.Board)(nil)

func keys(t testing.TB) []*rsa.PrivateKey {
	t.Helper()
	var out []*rsa.PrivateKey
	for _, n := range []string{"key1.pem", "key2.pem"} {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			t.Fatal(err)
		}
		k, err := secureboot.ParsePrivateKeyPEM(b)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, k)
	}
	return out
}

type env struct {
	ws   *workspace.Workspace
	r    *recipe.Recipe
	rel  *provisioning.Release
	data string
	b    *sim.Board
	log  *audit.Log
}

func setup(t *testing.T, c chip.Chip, o workspace.Options) *env {
	t.Helper()
	o.Chip = c
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Keys == nil {
		o.Keys = keys(t)[:1]
	}
	ctx := context.Background()
	ws, err := workspace.Create(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	r, err := recipe.Load(ws.RecipePath)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := provisioning.Intake(ctx, r, provisioning.IntakeOptions{})
	if err != nil {
		t.Fatalf("intake: %v", err)
	}
	e := &env{ws: ws, r: r, rel: rel, data: filepath.Join(o.Dir, "data")}
	// The board's bootloader reads the table where the release puts it.
	e.b, err = sim.New(virtual.Config{Chip: c, StateDir: filepath.Join(o.Dir, "board"), PartitionTableOffset: rel.TableOffset})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.b.Close() })
	e.log, err = audit.Open(ctx, audit.Config{Dir: e.data, Station: "test-station"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.log.Close(context.Background()) })
	return e
}

func (e *env) cfg() provisioning.Config {
	return provisioning.Config{Recipe: e.r, Release: e.rel, DataDir: e.data, Station: "test-station", Operator: "tester",
		Target: "virtual", Audit: e.log, Probe: e.b}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestRunBlankS3(t *testing.T) {
	t.Parallel()
	e := setup(t, chip.S3(), workspace.Options{})
	var events []provisioning.Event
	cfg := e.cfg()
	cfg.Progress = func(ev provisioning.Event) { events = append(events, ev) }
	res, err := provisioning.Run(ctxT(t), e.b, cfg)
	if err != nil {
		t.Fatalf("Run: %v (result %+v)", err, res)
	}
	if res.Verdict != evidence.PASS {
		t.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
	}
	if !res.Record.Station.LoaderStub.IsZero() {
		t.Errorf("a ROM-only run names loader stub %s", res.Record.Station.LoaderStub)
	}
	if res.Writes < 100 || res.Writes > res.BytesSent/8 {
		t.Errorf("%d command frames for %d bytes sent", res.Writes, res.BytesSent)
	}
	phys := e.b.V.Efuse()
	for f, want := range map[string]uint64{"SPI_BOOT_CRYPT_CNT": 7, "SECURE_BOOT_EN": 1, "ENABLE_SECURITY_DOWNLOAD": 1, "DIS_PAD_JTAG": 1,
		"DIS_USB_JTAG": 1, "SOFT_DIS_JTAG": 7, "DIS_DIRECT_BOOT": 1, "DIS_DOWNLOAD_MANUAL_ENCRYPT": 1, "DIS_DOWNLOAD_ICACHE": 1, "DIS_DOWNLOAD_DCACHE": 1,
		"SECURE_BOOT_KEY_REVOKE1": 1, "SECURE_BOOT_KEY_REVOKE2": 1, "SECURE_BOOT_KEY_REVOKE0": 0} {
		if v, _ := phys.Get(f); v != want {
			t.Errorf("%s = %d, want %d", f, v, want)
		}
	}
	// The anti-rollback counter stays writable after the lockdown, so
	// later updates can raise it (the IEC 62443 matrix's EDR 3.10 says so).
	if w, err := phys.Writable("SECURE_VERSION"); err != nil || !w {
		t.Errorf("SECURE_VERSION writable = %v, %v after the lockdown", w, err)
	}
	// Flash holds ciphertext: not the plaintext app.
	app := e.rel.Images[len(e.rel.Images)-1]
	if raw := e.b.V.FlashBytes(int(app.Offset), 64); bytes.Equal(raw, app.Data[:64]) {
		t.Error("flash holds the plaintext app")
	}
	if !strings.Contains(res.BootLog, "Calling app_main()") {
		t.Errorf("boot log does not reach app_main:\n%s", res.BootLog)
	}
	b, err := os.ReadFile(res.EvidencePath)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := evidence.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Result.Verdict != evidence.PASS || len(rec.Images) != 3 {
		t.Errorf("evidence %+v", rec.Result)
	}
	for _, n := range []string{".sig", ".proof"} {
		if _, err := os.Stat(res.EvidencePath + n); err != nil {
			t.Errorf("evidence %s missing: %v", n, err)
		}
	}
	if len(events) == 0 {
		t.Error("no events")
	}
	keyFiles, _ := filepath.Glob(filepath.Join(e.data, "journal", "*.key"))
	if len(keyFiles) != 0 {
		t.Errorf("device key left behind: %v", keyFiles)
	}
	t.Logf("phases %v total %v sent %d", res.Phases, res.Total, res.BytesSent)

	// Run again: already provisioned, nothing burned.
	before := e.b.V.Efuse()
	res2, err := provisioning.Run(ctxT(t), e.b, e.cfg())
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if !res2.AlreadyProvisioned || len(res2.Burned) != 0 || !before.Equal(e.b.V.Efuse()) {
		t.Errorf("second run: already %v burned %v", res2.AlreadyProvisioned, res2.Burned)
	}
}

// fixedRand is a deterministic key source, so interrupted and uninterrupted
// runs draw the same device key and must end in identical eFuses.
type fixedRand byte

func (f fixedRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(f) + byte(i)*7
	}
	return len(p), nil
}

func TestRunC3ChipEncrypted(t *testing.T) {
	t.Parallel()
	e := setup(t, chip.C3(), workspace.Options{Recipe: workspace.RecipeOptions{WriteMode: recipe.ChipEncrypted}})
	cfg := e.cfg()
	cfg.Rand = fixedRand(3)
	cfg.Stub = benchStub() // compressed chip-encrypted writes
	res, err := provisioning.Run(ctxT(t), e.b, cfg)
	if err != nil || res.Verdict != evidence.PASS {
		t.Fatalf("Run: %v %+v", err, res)
	}
	for _, c := range res.Record.Checks {
		if strings.HasPrefix(c.Name, evidence.CheckFlashMD5) || strings.HasPrefix(c.Name, evidence.CheckSPIProbe) || strings.HasPrefix(c.Name, evidence.CheckDecryptedSignature) {
			if !c.Verified {
				t.Errorf("check %s not verified: %s", c.Name, c.Because)
			}
		}
	}
	if v, _ := e.b.V.Efuse().Get("DIS_DOWNLOAD_ICACHE"); v != 1 {
		t.Error("C3 lockdown missing")
	}
	if res.PayloadBytes >= e.rel.Bytes() {
		t.Errorf("chip-encrypted with the stub sent %d payload bytes for %d of images: not compressed", res.PayloadBytes, e.rel.Bytes())
	}
	if got, want := res.Record.Station.LoaderStub, evidence.SHA256(cfg.Stub); got != want {
		t.Errorf("evidence names loader stub %s, want the uploaded file's %s", got, want)
	}
}

func TestRunRefusedBeforeAnyBurn(t *testing.T) {
	t.Parallel()
	// A board whose digest slot 0 holds another key's digest.
	foreign := func(t *testing.T) *efuse.Image {
		img, _ := efuse.NewImage(chip.ESP32S3)
		img.Set("KEY_PURPOSE_0", uint64(efuse.PurposeSecureBootDigest0))
		d, _ := os.ReadFile(filepath.Join("testdata", "key2.digest.bin"))
		img.SetBytes("BLOCK_KEY0", d)
		img.SetBytes("MAC", []byte{6, 5, 4, 3, 2, 1})
		return img
	}
	dir := t.TempDir()
	e := setup(t, chip.S3(), workspace.Options{Dir: dir})
	e.b.Close()
	b, err := sim.New(virtual.Config{Chip: chip.S3(), Efuse: foreign(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	before := b.V.Efuse()
	cfg := e.cfg()
	cfg.Probe = b
	res, err := provisioning.Run(ctxT(t), b, cfg)
	if !errors.Is(err, provisioning.ErrConflict) || res.Verdict != evidence.REFUSED {
		t.Fatalf("err %v verdict %s", err, res.Verdict)
	}
	if !before.Equal(b.V.Efuse()) {
		t.Fatal("a refused board was burned")
	}
	if res.EvidencePath == "" {
		t.Error("no evidence for a refused board")
	}
	if keys, _ := filepath.Glob(filepath.Join(e.data, "journal", "*.key")); len(keys) != 0 {
		t.Errorf("a refused board left a device key: %v", keys)
	}
}

func TestRunDryRunAndNotApproved(t *testing.T) {
	t.Parallel()
	e := setup(t, chip.S3(), workspace.Options{})
	before := e.b.V.Efuse()
	cfg := e.cfg()
	cfg.DryRun = true
	res, err := provisioning.Run(ctxT(t), e.b, cfg)
	if err != nil || res.Plan == nil {
		t.Fatalf("dry run: %v", err)
	}
	var out bytes.Buffer
	if err := provisioning.WritePlan(&out, res.Plan); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"IRREVERSIBLE", "SPI_BOOT_CRYPT_CNT", "→ 7", "BLOCK_KEY0", "(read-protected)", "ENABLE_SECURITY_DOWNLOAD", "host-encrypted"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, out.String())
		}
	}
	if !before.Equal(e.b.V.Efuse()) {
		t.Fatal("dry run burned")
	}
	if files, _ := filepath.Glob(filepath.Join(e.data, "journal", "*")); len(files) != 0 {
		t.Errorf("dry run wrote %v", files)
	}
	cfg.DryRun = false
	no := errors.New("operator said no")
	cfg.Approve = func(context.Context, *provisioning.RunPlan) error { return no }
	res, err = provisioning.Run(ctxT(t), e.b, cfg)
	if !errors.Is(err, provisioning.ErrNotApproved) || !errors.Is(err, no) || res.Verdict != evidence.FAIL {
		t.Fatalf("not approved: %v %s", err, res.Verdict)
	}
	if !before.Equal(e.b.V.Efuse()) {
		t.Fatal("a declined run burned")
	}
}

// TestRunPowerCutAtStepBoundaries cuts the power (the run stops, the board
// is power-cycled) before and after every step in turn; the re-run must
// end in the eFuses of an uninterrupted run and burn nothing twice.
func TestRunPowerCutAtStepBoundaries(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	t.Parallel()
	ref := setup(t, chip.S3(), workspace.Options{})
	cfg := ref.cfg()
	cfg.Rand = fixedRand(9)
	var steps []string
	cfg.Progress = func(ev provisioning.Event) {
		if ev.Kind == provisioning.EventBegin && ev.Step != "" {
			steps = append(steps, ev.Step)
		}
	}
	if _, err := provisioning.Run(ctxT(t), ref.b, cfg); err != nil {
		t.Fatal(err)
	}
	want := ref.b.V.Efuse()
	for _, step := range steps {
		for _, kind := range []provisioning.EventKind{provisioning.EventBegin, provisioning.EventEnd} {
			t.Run(step+"/"+string(kind), func(t *testing.T) {
				t.Parallel()
				e := setup(t, chip.S3(), workspace.Options{})
				cfg := e.cfg()
				cfg.Rand = fixedRand(9)
				ctx, cancel := context.WithCancel(ctxT(t))
				cut := false
				cfg.Progress = func(ev provisioning.Event) {
					if !cut && ev.Step == step && ev.Kind == kind {
						cut = true
						cancel()
					}
				}
				res1, err := provisioning.Run(ctx, e.b, cfg)
				if err == nil && !cut {
					t.Fatalf("step %s not reached", step)
				}
				// Power cycle: the board comes back from its saved state.
				dir := filepath.Join(filepath.Dir(e.data), "board")
				e.b.Close()
				b2, err := sim.New(virtual.Config{Chip: chip.S3(), StateDir: dir})
				if err != nil {
					t.Fatal(err)
				}
				defer b2.Close()
				cfg = e.cfg()
				cfg.Probe = b2
				res2, err := provisioning.Run(ctxT(t), b2, cfg)
				if err != nil {
					t.Fatalf("re-run after cut at %s %s: %v", kind, step, err)
				}
				if !b2.V.Efuse().Equal(want) {
					t.Fatalf("final eFuses differ from an uninterrupted run")
				}
				for _, s := range res1.Burned {
					for _, s2 := range res2.Burned {
						if s == s2 {
							t.Errorf("step %s burned in both runs", s)
						}
					}
				}
			})
		}
	}
}

// With esp-flasher-stub's blank skipping (virtual.BlankSkippingStub) the
// stub erases only from the first sector it finds not blank. A module
// whose app area still holds a maker's test image (two sectors here), cut
// off half way through the app write and run again, must end holding the
// release's ciphertext, verified by the loader's MD5 and the SPI probe:
// a sector skipped although it held data would fail both.
func TestRunBlankSkippingStubResume(t *testing.T) {
	t.Parallel()
	e := setup(t, chip.S3(), workspace.Options{AppSize: 0x40000, Recipe: workspace.RecipeOptions{WriteMode: recipe.ChipEncrypted}})
	dir := filepath.Join(filepath.Dir(e.data), "board")
	e.b.Close()
	open := func() *sim.Board {
		b, err := sim.New(virtual.Config{Chip: chip.S3(), StateDir: dir, StubModel: virtual.BlankSkippingStub})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b1 := open()
	for _, off := range []uint32{0x18000, 0x40000} { // inside the app at 0x10000
		if err := b1.V.WriteFlashSector(off, bytes.Repeat([]byte{0x5A}, 0x1000)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := e.cfg()
	cfg.Probe, cfg.Stub, cfg.Rand = b1, benchStub(), fixedRand(4)
	ctx, cancel := context.WithCancel(ctxT(t))
	cut := false
	cfg.Progress = func(ev provisioning.Event) {
		if !cut && ev.Phase == provisioning.PhaseFlash && ev.Kind == provisioning.EventProgress && ev.Total >= 0x40000 && 2*ev.Done >= ev.Total {
			cut = true
			cancel()
		}
	}
	if _, err := provisioning.Run(ctx, b1, cfg); err == nil || !cut {
		t.Fatalf("the first run was not cut in the app write: %v", err)
	}
	b1.Close()
	b2 := open()
	defer b2.Close()
	cfg = e.cfg()
	cfg.Probe, cfg.Stub = b2, benchStub()
	res, err := provisioning.Run(ctxT(t), b2, cfg)
	if err != nil || res.Verdict != evidence.PASS || !res.Resumed {
		t.Fatalf("re-run: %v, verdict %s, resumed %v: %s", err, res.Verdict, res.Resumed, res.Reason)
	}
	n := 0
	for _, c := range res.Record.Checks {
		if strings.HasPrefix(c.Name, evidence.CheckFlashMD5) || strings.HasPrefix(c.Name, evidence.CheckSPIProbe) {
			n++
			if !c.Verified {
				t.Errorf("check %s not verified: %s", c.Name, c.Because)
			}
		}
	}
	if n == 0 {
		t.Fatal("no flash checks in the evidence")
	}
}

// bundleOf collects an evidence bundle from a station data directory.
func bundleOf(t *testing.T, data string, log *audit.Log) evidence.Bundle {
	t.Helper()
	b := evidence.Bundle{}
	pub, err := os.ReadFile(log.Layout().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	b[evidence.BundleKeyFile] = pub
	cp, ok := log.Latest()
	if !ok {
		t.Fatal("no checkpoint")
	}
	b[evidence.BundleCheckpointFile] = cp.Note
	files, _ := filepath.Glob(filepath.Join(data, "evidence", "*"))
	for _, f := range files {
		c, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b["evidence/"+filepath.Base(f)] = c
	}
	return b
}

func TestRunEvidenceBundleVerifies(t *testing.T) {
	t.Parallel()
	e := setup(t, chip.S3(), workspace.Options{})
	res, err := provisioning.Run(ctxT(t), e.b, e.cfg())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := evidence.VerifyBundle(context.Background(), bundleOf(t, e.data, e.log), evidence.VerifyOptions{})
	if err != nil {
		t.Fatalf("VerifyBundle: %v", err)
	}
	if len(rep.Devices) != 1 || rep.Devices[0].Verdict != evidence.PASS || rep.Devices[0].MAC != res.MAC {
		t.Fatalf("bundle report %+v", rep.Devices)
	}
}

// Two runs on one board within the same second (a declined plan, then the
// approved run) each keep their evidence: the second never overwrites the
// first, whose result record the audit log holds, so the data directory
// still verifies as a bundle with its audit log.
func TestRunEvidenceNeverOverwritten(t *testing.T) {
	t.Parallel()
	e := setup(t, chip.S3(), workspace.Options{})
	cfg := e.cfg()
	now := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	cfg.Now = func() time.Time { return now }
	cfg.Approve = func(context.Context, *provisioning.RunPlan) error { return errors.New("operator said no") }
	var paths []string
	for range 2 {
		res, err := provisioning.Run(ctxT(t), e.b, cfg)
		if !errors.Is(err, provisioning.ErrNotApproved) || res.EvidencePath == "" {
			t.Fatalf("declined run: %v, evidence %q", err, res.EvidencePath)
		}
		paths = append(paths, res.EvidencePath)
	}
	if paths[0] == paths[1] {
		t.Fatalf("both runs wrote %s", paths[0])
	}
	b, err := evidence.ReadBundleFS(os.DirFS(e.data), 0)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := evidence.VerifyBundle(t.Context(), b, evidence.VerifyOptions{})
	if err != nil {
		t.Fatalf("VerifyBundle of the data directory: %v", err)
	}
	if len(rep.Devices) != 2 || rep.AuditLog == nil || rep.AuditLog.Results != 2 {
		t.Errorf("devices %+v, audit log %+v", rep.Devices, rep.AuditLog)
	}
}

func TestRunEscrow(t *testing.T) {
	t.Parallel()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	e := setup(t, chip.S3(), workspace.Options{Recipe: workspace.RecipeOptions{Extra: "escrow:\n  enabled: true\n  recipient: " + id.Recipient().String() + "\n"}})
	res, err := provisioning.Run(ctxT(t), e.b, e.cfg())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(res.EscrowPath)
	if err != nil {
		t.Fatalf("escrow file: %v", err)
	}
	defer f.Close()
	st, _ := f.Stat()
	if st.Mode().Perm() != 0o600 {
		t.Errorf("escrow file mode %v", st.Mode())
	}
	rd, err := age.Decrypt(f, id)
	if err != nil {
		t.Fatal(err)
	}
	key, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := flashenc.KeyBlocks(chip.XTSAES128, key)
	if err != nil {
		t.Fatal(err)
	}
	burned, _ := e.b.V.Efuse().GetBytes("BLOCK_KEY0")
	if !bytes.Equal(burned, kb[0][:]) {
		t.Fatal("the escrowed key is not the burned key")
	}
	if keys, _ := filepath.Glob(filepath.Join(e.data, "journal", "*.key")); len(keys) != 0 {
		t.Errorf("plain key left in the journal: %v", keys)
	}
}

func TestRunWrongChip(t *testing.T) {
	t.Parallel()
	e := setup(t, chip.S3(), workspace.Options{})
	b, err := sim.New(virtual.Config{Chip: chip.C3()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	before := b.V.Efuse()
	cfg := e.cfg()
	cfg.Probe = b
	res, err := provisioning.Run(ctxT(t), b, cfg)
	if err == nil || res.Verdict == evidence.PASS {
		t.Fatalf("an S3 recipe passed on a C3: %v", err)
	}
	if !before.Equal(b.V.Efuse()) {
		t.Fatal("the wrong chip was burned")
	}
}

// TestRunKeyHygiene stops a run right after the key burn (the journal then
// holds the device key, sealed to the station, in its 0600 file) and checks
// the key appears nowhere in the clear: not in the key file, the journal
// records, events, evidence or audit log. The re-run resumes with the
// sealed key.
func TestRunKeyHygiene(t *testing.T) {
	t.Parallel()
	e := setup(t, chip.S3(), workspace.Options{})
	key := make([]byte, 32)
	fixedRand(77).Read(key)
	cfg := e.cfg()
	cfg.Rand = fixedRand(77)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	var evs bytes.Buffer
	cfg.Progress = func(ev provisioning.Event) {
		fmt.Fprintf(&evs, "%+v\n", ev)
		if ev.Step == provisioning.StepFlashKey && ev.Kind == provisioning.EventEnd {
			cancel()
		}
	}
	res, err := provisioning.Run(ctx, e.b, cfg)
	if err == nil {
		t.Fatal("the run went on after the cut")
	}
	kf, _ := filepath.Glob(filepath.Join(e.data, "journal", "*.key"))
	if len(kf) != 1 {
		t.Fatalf("key files %v, want one until the run passes", kf)
	}
	st, _ := os.Stat(kf[0])
	if got, _ := os.ReadFile(kf[0]); !keyseal.IsSealed(got) || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, sealed: %v", st.Mode(), keyseal.IsSealed(got))
	}
	forms := [][]byte{key, []byte(hex.EncodeToString(key)), []byte(base64.StdEncoding.EncodeToString(key))}
	kb, _ := flashenc.KeyBlocks(chip.XTSAES128, key)
	forms = append(forms, kb[0][:], []byte(hex.EncodeToString(kb[0][:])), []byte(base64.StdEncoding.EncodeToString(kb[0][:])))
	var files []string
	filepath.WalkDir(e.data, func(p string, d fs.DirEntry, err error) error {
		// The key file too: it is sealed, and the journal directory alone
		// (everything but station.seal) must not reveal the key.
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, k := range forms {
			if bytes.Contains(b, k) {
				t.Errorf("%s holds the key", f)
			}
		}
	}
	for _, k := range forms {
		if bytes.Contains(evs.Bytes(), k) || strings.Contains(res.Reason, string(k)) {
			t.Error("an event or the result shows the key")
		}
	}
	// The re-run completes and then zeroises the key file.
	cfg = e.cfg()
	if _, err := provisioning.Run(ctxT(t), e.b, cfg); err != nil {
		t.Fatal(err)
	}
	if kf, _ := filepath.Glob(filepath.Join(e.data, "journal", "*.key")); len(kf) != 0 {
		t.Fatalf("key file left after PASS: %v", kf)
	}
}

// TestRunDownloadDisabled: with download: disabled the last burn ends the
// ROM loader for good; the run confirms the loader is gone and boots.
func TestRunDownloadDisabled(t *testing.T) {
	if testing.Short() {
		t.Skip("a whole run and the confirming reconnect (about 10 s)")
	}
	t.Parallel()
	e := setup(t, chip.C3(), workspace.Options{Recipe: workspace.RecipeOptions{Download: recipe.DownloadDisabled}})
	res, err := provisioning.Run(ctxT(t), e.b, e.cfg())
	if err != nil || res.Verdict != evidence.PASS {
		t.Fatalf("%v %+v", err, res)
	}
	phys := e.b.V.Efuse()
	if v, _ := phys.Get("DIS_DOWNLOAD_MODE"); v != 1 {
		t.Error("DIS_DOWNLOAD_MODE not burned")
	}
	if v, _ := phys.Get("ENABLE_SECURITY_DOWNLOAD"); v != 0 {
		t.Error("secure download mode burned although the recipe disables download")
	}
	var ok bool
	for _, c := range res.Record.Checks {
		if c.Name == evidence.CheckLockdown+":download" && c.Verified {
			ok = true
		}
	}
	if !ok {
		t.Error("no verified check that the loader is gone")
	}
}

// TestRunJournalErrorsKeepTheirCause: a journal that cannot be used refuses
// the run as ErrJournal, and the cause stays reachable with errors.Is (a
// station branches on journal.ErrCorrupt to send the board to an engineer,
// and on a disk error to stop the line), for a dry run and a real one.
func TestRunJournalErrorsKeepTheirCause(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setUp func(t *testing.T, dir, device string)
		cause error
	}{
		{"corrupt record", func(t *testing.T, dir, device string) {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, device+".jsonl"), []byte("not a record\n{}\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, journal.ErrCorrupt},
		{"journal directory is a file", func(t *testing.T, dir, device string) {
			if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dir, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, syscall.ENOTDIR},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, chip.S3(), workspace.Options{})
			mac, ok := e.b.DeviceMAC()
			if !ok {
				t.Fatal("virtual board has no MAC")
			}
			tc.setUp(t, filepath.Join(e.data, "journal"), journal.DeviceName(fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5])))
			before := e.b.V.Efuse()
			for _, dry := range []bool{true, false} {
				cfg := e.cfg()
				cfg.DryRun = dry
				_, err := provisioning.Run(ctxT(t), e.b, cfg)
				if !errors.Is(err, provisioning.ErrJournal) || !errors.Is(err, tc.cause) {
					t.Errorf("dry run %v: err = %v, want ErrJournal wrapping %v", dry, err, tc.cause)
				}
			}
			if !before.Equal(e.b.V.Efuse()) {
				t.Fatal("a run refused for its journal burned")
			}
		})
	}
}

// A resumed run re-checks flash before any lock step instead of trusting
// the journal's "flash verified": a board whose flash was lost after it
// was verified (blanked here, after every lock burn but the download
// lockdown, DIS_DOWNLOAD_MANUAL_ENCRYPT included) gets it written again
// while download mode and the key still allow it, and passes with a boot.
func TestRunResumeRewritesLostFlash(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		c    chip.Chip
		mode recipe.WriteMode
	}{
		{"host-encrypted", chip.S3(), recipe.HostEncrypted},
		{"chip-encrypted", chip.C3(), recipe.ChipEncrypted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, tc.c, workspace.Options{Recipe: workspace.RecipeOptions{WriteMode: tc.mode}})
			cfg := e.cfg()
			cfg.Rand, cfg.Stub = fixedRand(5), benchStub()
			ctx, cancel := context.WithCancel(ctxT(t))
			cut := false
			cfg.Progress = func(ev provisioning.Event) {
				if !cut && ev.Phase == provisioning.PhaseReadback && ev.Kind == provisioning.EventBegin {
					cut = true
					cancel()
				}
			}
			if _, err := provisioning.Run(ctx, e.b, cfg); err == nil || !cut {
				t.Fatalf("the first run was not cut before the read-back: %v", err)
			}
			journals, _ := filepath.Glob(filepath.Join(e.data, "journal", "*.jsonl"))
			if len(journals) != 1 {
				t.Fatalf("journals %v", journals)
			}
			journal, err := os.ReadFile(journals[0])
			if err != nil || !bytes.Contains(journal, []byte(`"step":"verify","result":"ok"`)) {
				t.Fatalf("the journal does not say flash was verified (%v):\n%s", err, journal)
			}
			dir := filepath.Join(filepath.Dir(e.data), "board")
			e.b.Close()
			b2, err := sim.New(virtual.Config{Chip: tc.c, StateDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			defer b2.Close()
			if v, _ := b2.V.Efuse().Get("DIS_DOWNLOAD_MANUAL_ENCRYPT"); v != 1 {
				t.Fatal("the lock burns did not run before the cut")
			}
			// The flash is lost: the bootloader's and the app's first sectors blank.
			for _, im := range e.rel.Images {
				if err := b2.V.WriteFlashSector(im.Offset&^0xFFF, nil); err != nil {
					t.Fatal(err)
				}
			}
			cfg = e.cfg()
			cfg.Probe, cfg.Stub = b2, benchStub()
			res, err := provisioning.Run(ctxT(t), b2, cfg)
			if err != nil || res.Verdict != evidence.PASS || !res.Resumed {
				t.Fatalf("resume: %v, verdict %s, resumed %v: %s", err, res.Verdict, res.Resumed, res.Reason)
			}
			rewritten := 0
			for _, s := range res.Record.Steps {
				if strings.HasPrefix(s.Name, string(provisioning.PhaseFlash)+":") && s.Result == evidence.StepOK {
					rewritten++
				}
			}
			if rewritten != len(e.rel.Images) {
				t.Errorf("%d regions written again, want %d", rewritten, len(e.rel.Images))
			}
			for _, c := range res.Record.Checks {
				if (strings.HasPrefix(c.Name, evidence.CheckFlashMD5) || c.Name == evidence.CheckBootLog) && !c.Verified {
					t.Errorf("check %s not verified: %s", c.Name, c.Because)
				}
			}
		})
	}
}

// The final eFuse state in the evidence is the board's as last observed: a
// board that changed after the run's read-back (a second station burning
// on it) fails the run instead of passing with evidence that states the
// read-back, whether the change comes before the download lockdown or
// after it, before a resume that takes the read-back from the journal.
func TestRunEvidenceAfterAgreesWithBoard(t *testing.T) {
	t.Parallel()
	var other efuse.Batch // what the other station burns: a purpose on the unused BLOCK_KEY5
	other.Set("KEY_PURPOSE_5", uint64(efuse.PurposeHMACUp))
	for _, tc := range []struct {
		name   string
		resume bool
	}{
		{"between read-back and lockdown", false},
		{"after the lockdown, before the resume", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, chip.S3(), workspace.Options{})
			cfg := e.cfg()
			cfg.Rand = fixedRand(6)
			ctx, cancel := context.WithCancel(ctxT(t))
			defer cancel()
			hit := false
			cfg.Progress = func(ev provisioning.Event) {
				switch {
				case hit:
				case !tc.resume && ev.Step == provisioning.StepDownload && ev.Kind == provisioning.EventBegin:
					hit = true
					if _, err := e.b.V.BurnEfuses(other); err != nil {
						t.Errorf("the other station's burn: %v", err)
					}
				case tc.resume && ev.Phase == provisioning.PhaseBoot && ev.Kind == provisioning.EventBegin:
					hit = true
					cancel()
				}
			}
			res, err := provisioning.Run(ctx, e.b, cfg)
			if !hit {
				t.Fatalf("the run never reached the change: %v", err)
			}
			if tc.resume {
				dir := filepath.Join(filepath.Dir(e.data), "board")
				e.b.Close()
				b2, oerr := sim.New(virtual.Config{Chip: chip.S3(), StateDir: dir})
				if oerr != nil {
					t.Fatal(oerr)
				}
				defer b2.Close()
				if _, err := b2.V.BurnEfuses(other); err != nil {
					t.Fatalf("the other station's burn: %v", err)
				}
				cfg = e.cfg()
				cfg.Probe = b2
				res, err = provisioning.Run(ctxT(t), b2, cfg)
			}
			if !errors.Is(err, provisioning.ErrVerify) || res.Verdict != evidence.FAIL {
				t.Fatalf("run: %v, verdict %s, want FAIL [verify]", err, res.Verdict)
			}
			found := false
			for _, c := range res.Record.Checks {
				if c.Name == evidence.CheckLockdown+":evidence-after" {
					found = true
					if c.Verified || !strings.Contains(c.Because, "KEY_PURPOSE_5") {
						t.Errorf("check %s: verified %v, because %q", c.Name, c.Verified, c.Because)
					}
				}
			}
			if !found {
				t.Error("no evidence-after check in the evidence")
			}
		})
	}
}

// A run whose audit log cannot take its records does not start: the run's
// start record failing stops it before any eFuse is burned or any byte
// written (IEC 62443 CR 2.9: no board is provisioned without its trail).
func TestRunStopsWithoutAuditLog(t *testing.T) {
	t.Parallel()
	e := setup(t, chip.C3(), workspace.Options{})
	before := e.b.V.ReadEfuse()
	if err := e.log.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	res, err := provisioning.Run(ctxT(t), e.b, e.cfg())
	if err == nil || !errors.Is(err, audit.ErrClosed) || !strings.Contains(err.Error(), "the run's start not recorded") {
		t.Errorf("Run = %v; want the run stopped at its start record", err)
	}
	if len(res.Burned) != 0 {
		t.Errorf("burned %v without an audit trail", res.Burned)
	}
	if after := e.b.V.ReadEfuse(); !after.Equal(before) {
		t.Error("eFuses changed without an audit trail")
	}
	if got := e.b.V.FlashBytes(0, 16); !bytes.Equal(got, bytes.Repeat([]byte{0xFF}, 16)) {
		t.Errorf("flash written without an audit trail: % x", got)
	}
	// No step that changes the board was even begun.
	mac, _ := e.b.DeviceMAC()
	recs, err := journal.Load(filepath.Join(e.data, "journal"), journal.DeviceName(fmt.Sprintf("%02x%02x%02x%02x%02x%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5])))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Kind == "step.begin" {
			t.Errorf("journal: step %s begun without an audit trail", r.Step)
		}
	}
}

// withoutRevokeLine rewrites e's recipe without its secure_boot.revoke
// line (what an engineer who never heard of revocation writes), adding
// extra lines under secure_boot, and reloads it.
func (e *env) withoutRevokeLine(t *testing.T, extra string) {
	t.Helper()
	b, err := os.ReadFile(e.ws.RecipePath)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "revoke:") {
			if extra != "" {
				out = append(out, extra)
			}
			continue
		}
		out = append(out, l)
	}
	if err := os.WriteFile(e.ws.RecipePath, []byte(strings.Join(out, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if e.r, err = recipe.Load(e.ws.RecipePath); err != nil {
		t.Fatal(err)
	}
}

// TestRunUnusedDigestSlots: with no revoke in the recipe every unused
// Secure Boot digest slot is revoked; with keep_unused_slots_open they stay
// open and the run says so (the step's reason, a check not verified), and
// no step that burned nothing is reported as "already burned".
func TestRunUnusedDigestSlots(t *testing.T) {
	if testing.Short() {
		t.Skip("two whole runs")
	}
	t.Parallel()
	for _, tc := range []struct {
		name    string
		extra   []string
		revoked uint64
		reason  string // the revoke step's skip reason; "" when it burned
	}{
		{"default", nil, 1, ""},
		{"kept open", []string{"  keep_unused_slots_open: true"}, 0, "nothing to burn: the recipe keeps unused digest slot 1, 2 open (secure_boot.keep_unused_slots_open: true)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, chip.S3(), workspace.Options{})
			e.withoutRevokeLine(t, strings.Join(tc.extra, "\n"))
			cfg := e.cfg()
			var skipped []provisioning.Event
			cfg.Progress = func(ev provisioning.Event) {
				if ev.Kind == provisioning.EventEnd && ev.Result == provisioning.ResultSkipped {
					skipped = append(skipped, ev)
				}
			}
			res, err := provisioning.Run(ctxT(t), e.b, cfg)
			if err != nil || res.Verdict != evidence.PASS {
				t.Fatalf("%v %+v", err, res)
			}
			phys := e.b.V.Efuse()
			for _, f := range []string{"SECURE_BOOT_KEY_REVOKE1", "SECURE_BOOT_KEY_REVOKE2"} {
				if v, _ := phys.Get(f); v != tc.revoked {
					t.Errorf("%s = %d, want %d", f, v, tc.revoked)
				}
			}
			if v, _ := phys.Get("SECURE_BOOT_KEY_REVOKE0"); v != 0 {
				t.Error("the slot of the recipe's key was revoked")
			}
			var revokeReason string
			for _, ev := range skipped {
				if strings.Contains(ev.Message, "already burned") {
					t.Errorf("blank board: step %s reported as %q", ev.Step, ev.Message)
				}
				if ev.Step == "revoke" {
					revokeReason = ev.Message
				}
			}
			if revokeReason != tc.reason {
				t.Errorf("revoke step: skipped %q, want %q", revokeReason, tc.reason)
			}
			var stepErr string
			for _, s := range res.Record.Steps {
				if s.Name == "lock:revoke" {
					stepErr = s.Error
				}
			}
			if stepErr != tc.reason {
				t.Errorf("evidence step lock:revoke says %q, want %q", stepErr, tc.reason)
			}
			var slots *evidence.Check
			for i, c := range res.Record.Checks {
				if c.Name == evidence.CheckLockdown+":digest-slots" {
					slots = &res.Record.Checks[i]
				}
			}
			switch {
			case slots == nil:
				t.Error("evidence has no digest-slot check")
			case tc.revoked == 1 && !slots.Verified:
				t.Errorf("digest-slot check not verified: %s", slots.Because)
			case tc.revoked == 0 && (slots.Verified || !strings.Contains(slots.Because, "keep_unused_slots_open")):
				t.Errorf("kept-open slots: check %+v", *slots)
			}
		})
	}
}
