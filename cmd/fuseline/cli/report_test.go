package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fuseline/reports/evidence"
	"fuseline/reports/evidence/evidencetest"
	"fuseline/reports/oscal"
)

// writeBundle writes a signed test bundle of n boards under a new directory
// and returns it, with the station's public key file.
func writeBundle(t *testing.T, n int) (dir, keyFile string) {
	t.Helper()
	st := evidencetest.NewStation(1)
	b, err := st.Bundle(evidencetest.Lot(evidencetest.LotOptions{N: n}), evidencetest.BundleOptions{Images: true, Noise: 2})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	dir = filepath.Join(root, "bundle")
	for name, data := range b {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	keyFile = filepath.Join(root, "station.pub")
	if err := os.WriteFile(keyFile, b[evidence.BundleKeyFile], 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, keyFile
}

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(t.Context(), args, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func TestReportDevice(t *testing.T) {
	t.Parallel()
	dir, _ := writeBundle(t, 4)
	ev := filepath.Join(dir, "evidence", "3c6105000003-20261121T080445Z.json")
	code, out, _ := run(t, "report", "device", ev)
	if code != ExitOK || !strings.Contains(out, "FAIL [verify-md5]") || !strings.Contains(out, "3c:61:05:00:00:03") {
		t.Errorf("text: exit %d\n%s", code, out)
	}
	// Every check, verified or not, with how it was established (the lot
	// ran on the virtual board: board-side checks are modelled).
	data, _ := os.ReadFile(ev)
	rec, err := evidence.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			lines[f[0]] = l
		}
	}
	for _, c := range rec.Checks {
		l := lines[c.Name]
		outcome := map[bool]string{true: "verified", false: "NOT verified"}[c.Verified]
		if !strings.Contains(l, outcome) || !strings.Contains(l, evidence.EstablishedText(c.Established)) {
			t.Errorf("report device: check %s shown as %q", c.Name, l)
		}
	}
	if !strings.Contains(lines["flash-md5:bootloader@0x0"], "verified      modelled: not proof for a shipped device") ||
		!strings.Contains(lines["manifest-signature"], "computed on the host") {
		t.Errorf("report device: establishment not shown:\n%s", out)
	}
	code, out, _ = run(t, "report", "device", "--format", "json", ev)
	want, _ := os.ReadFile(ev)
	if code != ExitOK || out != string(want) {
		t.Errorf("json: exit %d, output is not the canonical record", code)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"schema":"fuseline.evidence/v1"}`), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"bad format", []string{"report", "device", "--format", "xml", ev}, ExitUsage, "--format"},
		{"missing file", []string{"report", "device", filepath.Join(dir, "nope.json")}, ExitUsage, "nope.json"},
		{"invalid evidence", []string{"report", "device", bad}, ExitFail, "bad.json"},
		{"no args", []string{"report", "device"}, ExitUsage, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, _, stderr := run(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.msg) {
				t.Errorf("exit %d, stderr %q", code, stderr)
			}
		})
	}
}

func TestReportLot(t *testing.T) {
	t.Parallel()
	dir, _ := writeBundle(t, 10)
	outDir := t.TempDir()
	for _, name := range []string{"lot.html", "lot.pdf"} {
		out := filepath.Join(outDir, name)
		code, stdout, stderr := run(t, "report", "lot", dir, "-o", out)
		if code != ExitOK {
			t.Fatalf("%s: exit %d: %s", name, code, stderr)
		}
		if !strings.Contains(stdout, "10 boards, 7 PASS, 2 FAIL, 1 REFUSED, yield 70.0 %") {
			t.Errorf("%s: stdout %q", name, stdout)
		}
		b, err := os.ReadFile(out)
		if err != nil || len(b) < 1000 {
			t.Errorf("%s: %d bytes, %v", name, len(b), err)
		}
	}
	if code, _, _ := run(t, "report", "lot", dir, "-o", filepath.Join(outDir, "lot.txt")); code != ExitUsage {
		t.Errorf("unknown extension: exit %d", code)
	}
	if code, _, _ := run(t, "report", "lot", dir); code != ExitUsage {
		t.Errorf("no -o: exit %d", code)
	}
	empty := t.TempDir()
	if code, _, _ := run(t, "report", "lot", empty, "-o", filepath.Join(outDir, "x.html")); code != ExitFail {
		t.Errorf("empty dir: exit %d", code)
	}
}

func TestReportMatrix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ format, want string }{
		{"md", "## CR 3.4"}, {"html", "<!DOCTYPE html>"}, {"json", `"id": "EDR 3.10"`},
	} {
		code, out, _ := run(t, "report", "matrix", "--format", tc.format)
		if code != ExitOK || !strings.Contains(out, tc.want) {
			t.Errorf("%s: exit %d, lacks %q", tc.format, code, tc.want)
		}
	}
	if code, _, _ := run(t, "report", "matrix", "--format", "pdf"); code != ExitUsage {
		t.Errorf("bad format: exit %d", code)
	}
}

func TestReportOSCAL(t *testing.T) {
	t.Parallel()
	dir, _ := writeBundle(t, 5)
	out := filepath.Join(t.TempDir(), "ar.json")
	code, stdout, stderr := run(t, "report", "oscal", dir, "-o", out)
	if code != ExitOK || !strings.Contains(stdout, "(valid)") {
		t.Fatalf("exit %d: %s %s", code, stdout, stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := oscal.Validate(b); err != nil {
		t.Error(err)
	}
	code, stdout, _ = run(t, "report", "oscal", dir, "-o", "-")
	if code != ExitOK || stdout != string(b) {
		t.Errorf("stdout form: exit %d, differs from the file", code)
	}
}

func TestReportVerify(t *testing.T) {
	t.Parallel()
	dir, key := writeBundle(t, 6)
	code, out, stderr := run(t, "report", "verify", "--key", key, dir)
	if code != ExitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if strings.Count("\n"+out, "\nok  evidence/") != 6 || !strings.Contains(out, "verified: 6 evidence files") || !strings.Contains(out, "images/app.bin") {
		t.Errorf("output:\n%s", out)
	}
	// Each record says how its checks were established; a lot from the
	// virtual board is said to be no proof for shipped devices.
	if !strings.Contains(out, "(target virtual: checks 6 computed, 8 modelled)") ||
		!strings.Contains(out, "--  board-side checks of 6 of 6 evidence files: not observed on a board") {
		t.Errorf("output does not show how checks were established:\n%s", out)
	}
	// Evidence from before schema v2 (a bundle the v1 code signed) still
	// verifies, and says its establishment is inferred, not recorded.
	code, out, stderr = run(t, "report", "verify", filepath.Join("..", "..", "..", "reports", "evidence", "testdata", "v1", "bundle.tar"))
	if code != ExitOK || !strings.Contains(out, "verified: 4 evidence files") || !strings.Contains(out, "fuseline.evidence/v1 does not record how, this is inferred") {
		t.Errorf("v1 bundle: exit %d\n%s\n%s", code, out, stderr)
	}
	// Without --key: still verifies, with a warning.
	code, _, stderr = run(t, "report", "verify", dir)
	if code != ExitOK || !strings.Contains(stderr, "warning: only the bundle's own station key") {
		t.Errorf("no --key: exit %d, stderr %q", code, stderr)
	}
	// As a tar.gz.
	tgz := filepath.Join(t.TempDir(), "bundle.tar.gz")
	writeTarGz(t, dir, tgz)
	if code, _, stderr := run(t, "report", "verify", "--key", key, tgz); code != ExitOK {
		t.Errorf("tar.gz: exit %d: %s", code, stderr)
	}

	ev := "evidence/3c6105000002-20261121T080310Z.json"
	for _, tc := range []struct {
		name   string
		change func(dir string)
		file   string
	}{
		{"tampered evidence", func(d string) {
			p := filepath.Join(d, ev)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte(`"verdict": "PASS"`), []byte(`"verdict": "FAIL"`), 1), 0o644)
		}, ev},
		{"bad signature", func(d string) {
			b, _ := os.ReadFile(filepath.Join(d, "evidence/3c6105000000-20261121T080000Z.json.sig"))
			os.WriteFile(filepath.Join(d, ev+".sig"), b, 0o644)
		}, ev},
		{"wrong proof", func(d string) {
			b, _ := os.ReadFile(filepath.Join(d, "evidence/3c6105000000-20261121T080000Z.json.proof"))
			os.WriteFile(filepath.Join(d, ev+".proof"), b, 0o644)
		}, ev + ".proof"},
		{"wrong image hash", func(d string) {
			p := filepath.Join(d, "images/app.bin")
			b, _ := os.ReadFile(p)
			b[0] ^= 1
			os.WriteFile(p, b, 0o644)
		}, "images/app.bin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, key := writeBundle(t, 6)
			tc.change(d)
			code, _, stderr := run(t, "report", "verify", "--key", key, d)
			if code != ExitFail {
				t.Fatalf("exit %d, want %d", code, ExitFail)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tc.file) {
				t.Errorf("stderr %q: want one line naming %s", stderr, tc.file)
			}
		})
	}
	if code, _, _ := run(t, "report", "verify", filepath.Join(dir, "missing")); code != ExitUsage {
		t.Errorf("missing bundle: exit %d", code)
	}
	if code, _, _ := run(t, "report", "verify", "--key", filepath.Join(dir, "evidence", ev[len("evidence/"):]), dir); code != ExitUsage {
		t.Errorf("bad key file: exit %d", code)
	}
}

func writeTarGz(t *testing.T, dir, out string) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	if err := tw.AddFS(os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	zw.Close()
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReportStationData: the reports take a station's data directory as
// `run` leaves it (state files beside evidence/, the audit log and its
// checkpoints), and report verify holds every result record of the audit
// log to its evidence file: a board whose evidence was removed is named.
func TestReportStationData(t *testing.T) {
	t.Parallel()
	ws := demoWorkspace(t)
	data := filepath.Join(ws.Dir, "data")
	macs := []string{"7c:df:a1:00:00:01", "7c:df:a1:00:00:02"}
	for i, mac := range macs {
		code, out, stderr := runCLI(t, "", "run", "--recipe", ws.RecipePath, "--board-state", filepath.Join(ws.Dir, fmt.Sprintf("board%d", i)),
			"--mac", mac, "--data", data, "--operator", "alice", "--yes")
		if code != ExitOK {
			t.Fatalf("run %s: exit %d\n%s\n%s", mac, code, out, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "station-session.json")); err != nil {
		t.Fatalf("the data directory has no state file beside evidence/ (the case under test): %v", err)
	}
	key := filepath.Join(data, "station.pub")

	out := t.TempDir()
	for _, name := range []string{"lot.html", "lot.pdf"} {
		code, stdout, stderr := run(t, "report", "lot", data, "-o", filepath.Join(out, name))
		if code != ExitOK || !strings.Contains(stdout, "2 boards, 2 PASS") {
			t.Errorf("report lot %s: exit %d\n%s\n%s", name, code, stdout, stderr)
		}
	}
	code, stdout, stderr := run(t, "report", "oscal", data, "-o", filepath.Join(out, "ar.json"))
	if code != ExitOK || !strings.Contains(stdout, "for 2 evidence records (valid)") {
		t.Errorf("report oscal: exit %d\n%s\n%s", code, stdout, stderr)
	}

	code, stdout, stderr = run(t, "report", "verify", data, "--key", key)
	if code != ExitOK || !strings.Contains(stdout, "verified: 2 evidence files") || !strings.Contains(stdout, "ok  audit.log") {
		t.Fatalf("report verify: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// Remove the first board's evidence, signature and proof: its result
	// record in the audit log still names the file.
	evs, err := filepath.Glob(filepath.Join(data, "evidence", "7cdfa1000001-*.json"))
	if err != nil || len(evs) != 1 {
		t.Fatalf("evidence of board 1: %v %v", evs, err)
	}
	for _, suffix := range []string{"", ".sig", ".proof"} {
		if err := os.Remove(evs[0] + suffix); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr = run(t, "report", "verify", data, "--key", key)
	if code != ExitFail || strings.Contains(stdout, "verified:") {
		t.Fatalf("report verify with a board's evidence removed: exit %d, want %d\n%s\n%s", code, ExitFail, stdout, stderr)
	}
	if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 || !strings.Contains(stderr, "device "+macs[0]) || !strings.Contains(stderr, filepath.Base(evs[0])) {
		t.Errorf("stderr %q: want one line naming device %s and %s", stderr, macs[0], filepath.Base(evs[0]))
	}
}
