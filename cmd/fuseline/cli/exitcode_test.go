package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExitCodesBadInput: input and usage mistakes exit 2 with a one-line
// error naming what is wrong, before anything is written to the data
// directory or the terminal gets the bad bytes raw.
func TestExitCodesBadInput(t *testing.T) {
	t.Parallel()
	ws := demoWorkspace(t)
	orig, err := os.ReadFile(ws.RecipePath)
	if err != nil {
		t.Fatal(err)
	}
	variant := func(name, from, to string) string {
		if !strings.Contains(string(orig), from) {
			t.Fatalf("recipe has no %q", from)
		}
		p := filepath.Join(filepath.Dir(ws.RecipePath), name)
		if err := os.WriteFile(p, []byte(strings.Replace(string(orig), from, to, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	noRelease := variant("no-release.yaml", "path: release", "path: no-such-release")
	escName := variant("esc-name.yaml", "\nname: ", "\nname: \"x\\e[31m\" #")
	for _, tc := range []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"release path missing", []string{"run", "--recipe", noRelease}, "release.path: cannot read the release directory no-such-release"},
		{"recipe name with ESC", []string{"run", "--recipe", escName}, "name: has a non-printable character"},
		{"slot with a path", []string{"run", "--recipe", ws.RecipePath, "--slot", "../x"}, "--slot"},
		{"slot upper case", []string{"run", "--recipe", ws.RecipePath, "--slot", "Slot/1"}, "--slot"},
		{"negative baud", []string{"run", "--recipe", ws.RecipePath, "--baud", "-5"}, "--baud -5"},
		{"zero baud", []string{"run", "--recipe", ws.RecipePath, "--baud", "0"}, "--baud 0"},
		{"lot with ESC", []string{"run", "--recipe", ws.RecipePath, "--lot", "L\x1b[2J"}, "--lot: has a non-printable character"},
		{"serial with BEL", []string{"run", "--recipe", ws.RecipePath, "--serial", "S\a1"}, "--serial: has a non-printable character"},
		{"serial with newline", []string{"run", "--recipe", ws.RecipePath, "--serial", "S\nResult PASS"}, "--serial: has a non-printable character"},
		{"operator with ESC", []string{"run", "--recipe", ws.RecipePath, "--operator", "al\x1bice"}, "--operator: has a non-printable character"},
		{"demo lot with ESC", []string{"demo", "--lot", "L\x1b"}, "--lot: has a non-printable character"},
		{"sim listen not an address", []string{"sim", "--listen", "banana"}, `--listen "banana"`},
		{"sim listen bad port", []string{"sim", "--listen", "127.0.0.1:99999"}, "invalid port"},
		{"flash baud negative", []string{"flash", "id", "--port", "socket://127.0.0.1:1", "--baud", "-5"}, "--baud -5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			args := tc.args
			switch args[0] {
			case "run":
				args = append(args, "--data", data, "--yes", "--board-state", filepath.Join(t.TempDir(), "b"))
			case "demo":
				args = append(args, "--data", data, "--dir", filepath.Join(t.TempDir(), "demo"))
			}
			code, _, stderr := runCLI(t, "", args...)
			if code != ExitUsage || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, want %d with %q; stderr:\n%s", code, ExitUsage, tc.want, stderr)
			}
			if strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Errorf("error is not one line:\n%s", stderr)
			}
			for _, c := range []byte(stderr) {
				if c < 0x20 && c != '\n' {
					t.Fatalf("control byte 0x%02x in the error: %q", c, stderr)
				}
			}
			if args[0] == "run" {
				if ents, _ := os.ReadDir(filepath.Join(data, "journal")); len(ents) != 0 {
					t.Errorf("journal written for a refused command: %v", ents)
				}
			}
		})
	}
}
