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
	"fuseline/provisioning/workspace"
)

func runCLI(t *testing.T, in string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code := Run(ctx, args, Stdio{In: strings.NewReader(in), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

// demoWorkspace makes a workspace with the espsecure test key (RSA key
// generation is too slow for every test).
func demoWorkspace(t *testing.T) *workspace.Workspace {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "secureboot", "key1.pem"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := secureboot.ParsePrivateKeyPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := workspace.Create(context.Background(), workspace.Options{Dir: t.TempDir(), Chip: chip.S3(), Keys: []*rsa.PrivateKey{k}, SecureVersion: 1})
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
