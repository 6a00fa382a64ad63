package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// stationArgsEnv makes this test binary a station process: the helper test
// below runs the CLI with these arguments (separated by the unit separator, 0x1f) and exits with its
// code, so a test can SIGKILL a real station process.
const stationArgsEnv = "FUSELINE_TEST_STATION_ARGS"

func TestHelperStation(t *testing.T) {
	args := os.Getenv(stationArgsEnv)
	if args == "" {
		t.Skip("helper process of the station kill tests")
	}
	os.Exit(Run(context.Background(), strings.Split(args, "\x1f"), Stdio{In: strings.NewReader(""), Out: os.Stdout, Err: os.Stderr}))
}

// startStation runs the CLI with args in a child process.
func startStation(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperStation$", "-test.count=1")
	cmd.Env = append(os.Environ(), stationArgsEnv+"="+strings.Join(args, "\x1f"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

// waitJournal waits until a journal in data holds s.
func waitJournal(t *testing.T, data, s string, cmd *exec.Cmd, out *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		files, _ := filepath.Glob(filepath.Join(data, "journal", "*.jsonl"))
		for _, f := range files {
			if b, _ := os.ReadFile(f); bytes.Contains(b, []byte(s)) {
				return
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatalf("the station never journaled %s:\n%s", s, out)
}

// A station SIGKILLed in the lock phase (issue 19 item 1): the virtual
// board is as durable as its NOR part, so the flash it had written and
// verified is still in the board's state when the process dies, and the
// next run finishes the board: PASS, booting.
func TestRunSIGKILLDuringLockdown(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two stations")
	}
	t.Parallel()
	ws := demoWorkspace(t)
	data := filepath.Join(ws.Dir, "data")
	board := filepath.Join(ws.Dir, "board")
	args := []string{"run", "--recipe", ws.RecipePath, "--board-state", board, "--data", data, "--yes"}
	cmd, out := startStation(t, args...)
	waitJournal(t, data, `"step":"download-lockdown"`, cmd, out)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	flash, err := os.ReadFile(filepath.Join(board, "flash.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(flash[0x10000:0x11000], bytes.Repeat([]byte{0xFF}, 0x1000)) {
		t.Fatal("the app's first sector is blank in the board's state after the kill")
	}
	code, stdout, stderr := runCLI(t, "", args...)
	if code != ExitOK || !strings.Contains(stdout, "PASS") {
		t.Fatalf("run after the kill: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// Two stations on one board (issue 19 item 2): the second cannot open the
// virtual board's state while the first holds it, exits 3 with one line,
// and writes no evidence; the first passes.
func TestRunTwoStationsOneBoard(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two stations")
	}
	t.Parallel()
	ws := demoWorkspace(t)
	board := filepath.Join(ws.Dir, "board")
	data1, data2 := filepath.Join(ws.Dir, "data1"), filepath.Join(ws.Dir, "data2")
	cmd, out := startStation(t, "run", "--recipe", ws.RecipePath, "--board-state", board, "--data", data1, "--yes")
	waitJournal(t, data1, `"kind":"run.start"`, cmd, out)
	code, stdout, stderr := runCLI(t, "", "run", "--recipe", ws.RecipePath, "--board-state", board, "--data", data2, "--yes")
	if code != ExitLink || !strings.Contains(stderr, "in use") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("second station: exit %d, want %d with one line naming the lock\n%s\n%s", code, ExitLink, stdout, stderr)
	}
	if ev, _ := filepath.Glob(filepath.Join(data2, "evidence", "*.json")); len(ev) != 0 {
		t.Errorf("the refused station wrote evidence: %v", ev)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("first station: %v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "PASS") {
		t.Fatalf("first station did not pass:\n%s", out)
	}
}
