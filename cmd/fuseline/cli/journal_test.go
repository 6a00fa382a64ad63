package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fuseline/provisioning"
	"fuseline/provisioning/keyseal"
)

// TestJournalListDestroyKey: a power cut after the key burn abandons a
// board; journal list shows it with its sealed key; destroy-key needs --yes
// and --operator, writes an audit record and removes the key; the next run
// on the board is refused with the reason.
func TestJournalListDestroyKey(t *testing.T) {
	t.Parallel()
	ws := demoWorkspace(t)
	data := filepath.Join(ws.Dir, "data")
	board := filepath.Join(ws.Dir, "board")
	base := []string{"run", "--recipe", ws.RecipePath, "--board-state", board, "--data", data, "--yes", "--operator", "alice"}
	code, _, stderr := runCLI(t, "", append(base, "--faults", "powercut-before=400")...)
	if code != ExitLink {
		t.Fatalf("cut run: exit %d\n%s", code, stderr)
	}
	kf, _ := filepath.Glob(filepath.Join(data, "journal", "*.key"))
	if len(kf) != 1 {
		t.Fatalf("key files %v: the cut came before the key was saved", kf)
	}
	if b, _ := os.ReadFile(kf[0]); !keyseal.IsSealed(b) {
		t.Fatal("the held key is not sealed")
	}

	code, out, stderr := runCLI(t, "", "journal", "list", "--data", data)
	if code != ExitOK || !strings.Contains(out, "7c:df:a1:00:00:01") || !strings.Contains(out, "sealed") || !strings.Contains(out, "LAST STEP") {
		t.Fatalf("list: exit %d\n%s\n%s", code, out, stderr)
	}
	code, out, _ = runCLI(t, "", "journal", "list", "--data", data, "--json")
	var list []provisioning.AbandonedBoard
	if code != ExitOK || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || !list[0].KeySealed || list[0].Run == "" {
		t.Fatalf("list --json: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "", "journal", "list", "--data", filepath.Join(ws.Dir, "empty"), "--json")
	if code != ExitOK || strings.TrimSpace(out) != "[]" {
		t.Fatalf("empty list --json: exit %d %q", code, out)
	}

	mac := list[0].MAC
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{mac, "--operator", "qa"}, ExitUsage, "--yes"},
		{[]string{mac, "--yes"}, ExitUsage, "--operator is required"},
		{[]string{mac, "--yes", "--operator", "q\x1ba"}, ExitUsage, "--operator: has a non-printable"},
		{[]string{"banana", "--yes", "--operator", "qa"}, ExitUsage, "not a MAC"},
		{[]string{"02:00:00:00:00:09", "--yes", "--operator", "qa"}, ExitFail, "no device key is held"},
	} {
		code, _, stderr := runCLI(t, "", append([]string{"journal", "destroy-key", "--data", data}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("destroy-key %q: exit %d, want %d with %q\n%s", tc.args, code, tc.code, tc.want, stderr)
		}
	}
	if _, err := os.Stat(kf[0]); err != nil {
		t.Fatal("a refused destroy-key removed the key")
	}
	code, out, stderr = runCLI(t, "", "journal", "destroy-key", "--data", data, mac, "--yes", "--operator", "qa-lead")
	if code != ExitOK {
		t.Fatalf("destroy-key: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(kf[0]); !os.IsNotExist(err) {
		t.Fatalf("key file still there: %v", err)
	}
	log, _ := os.ReadFile(filepath.Join(data, "audit.log"))
	if !strings.Contains(string(log), `"operator":"qa-lead","device":"`+mac+`"`) || !strings.Contains(string(log), `"event":"key.destroy"`) {
		t.Fatalf("no audit record of the destruction:\n%s", log)
	}
	code, out, _ = runCLI(t, "", "journal", "list", "--data", data)
	if !strings.Contains(out, "destroyed (cannot resume)") {
		t.Fatalf("list after destroy:\n%s", out)
	}
	code, _, stderr = runCLI(t, "", base...)
	if code != ExitFail || !strings.Contains(stderr, "can no longer be resumed") || !strings.Contains(stderr, "qa-lead") {
		t.Fatalf("run after destroy: exit %d\n%s", code, stderr)
	}
	if code, _, _ := runCLI(t, "", "audit", "verify", filepath.Join(data, "audit.log")); code != ExitOK {
		t.Fatalf("audit log does not verify after destroy-key: exit %d", code)
	}
}
