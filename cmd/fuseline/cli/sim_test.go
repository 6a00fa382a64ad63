package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"fuseline/esp/loader"
	"fuseline/esp/slip"
)

// simBuffer is a bytes.Buffer safe for the command goroutine and the test.
type simBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *simBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *simBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startSim runs `fuseline sim args...` until the returned stop is called.
func startSim(t *testing.T, args ...string) (out *simBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out = &simBuffer{}
	errOut := &simBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- Run(ctx, append([]string{"sim"}, args...), Stdio{In: strings.NewReader(""), Out: out, Err: errOut})
	}()
	return out, func() int {
		cancel()
		select {
		case c := <-code:
			if c != ExitOK {
				t.Logf("stderr: %s", errOut.String())
			}
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("sim did not stop")
			return -1
		}
	}
}

func waitFor(t *testing.T, out *simBuffer, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("output %q never matched %s", out.String(), re)
	return nil
}

func simSync(t *testing.T, addr string) loader.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(slip.Encode(loader.EncodeRequest(loader.Request{Op: loader.OpSync, Data: loader.SyncPayload()})))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := slip.NewReader(c)
	f, err := r.ReadFrame()
	if err != nil {
		t.Fatalf("SYNC over the sim: %v", err)
	}
	resp, err := loader.DecodeResponse(f)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestSimServesTCP(t *testing.T) {
	dir := t.TempDir()
	out, stop := startSim(t, "--chip", "esp32c3", "--flash", "2MB", "--listen", "127.0.0.1:0", "--state", dir, "--faults", "seed=3")
	m := waitFor(t, out, regexp.MustCompile(`esp32c3 listening on (127\.0\.0\.1:\d+) \(esptool --port socket://`))
	if r := simSync(t, m[1]); r.Op != loader.OpSync || r.Value != loader.SyncValue {
		t.Fatalf("SYNC reply %+v", r)
	}
	if code := stop(); code != ExitOK {
		t.Fatalf("exit code %d", code)
	}
	st, err := os.Stat(filepath.Join(dir, "flash.bin"))
	if err != nil || st.Size() != 2<<20 {
		t.Fatalf("state flash.bin: %v %v", st, err)
	}
	// The same directory again is the same board; the size comes from it.
	out, stop = startSim(t, "--chip", "esp32c3", "--listen", "127.0.0.1:0", "--state", dir)
	waitFor(t, out, regexp.MustCompile(`listening on`))
	if code := stop(); code != ExitOK {
		t.Fatalf("exit code %d on the second run", code)
	}
}

func TestSimPTY(t *testing.T) {
	if _, err := os.Stat("/dev/ptmx"); err != nil {
		t.Skipf("no /dev/ptmx: %v", err)
	}
	out, stop := startSim(t, "--pty", "--boot", "spi")
	m := waitFor(t, out, regexp.MustCompile(`esp32s3 on pty (/dev/\S+) \(boot spi-boot\)`))
	if _, err := os.Stat(m[1]); err != nil {
		t.Fatalf("pty path %s: %v", m[1], err)
	}
	if code := stop(); code != ExitOK {
		t.Fatalf("exit code %d", code)
	}
}

func TestSimUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--chip", "esp8266"}, "--chip"},
		{[]string{"--flash", "3000"}, "--flash"},
		{[]string{"--faults", "drop=5"}, "--faults"},
		{[]string{"--boot", "usb"}, "--boot"},
		{[]string{"--jedec", "zz"}, "--jedec"},
		{[]string{"--mac", "1:2"}, "--mac"},
		{[]string{"--stub-model", "esptool"}, "--stub-model"},
		{[]string{"--partition-table-offset", "0xb800"}, "--partition-table-offset"},
		{[]string{"--chip", "esp32", "--partition-table-offset", "0x1000"}, "after the ESP32 bootloader at 0x1000"},
		{[]string{"--pty", "--listen", "127.0.0.1:0"}, "exclude"},
		{[]string{"extra"}, "unknown command"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			code := Run(context.Background(), append([]string{"sim"}, tc.args...), Stdio{In: strings.NewReader(""), Out: &out, Err: &errOut})
			if code != ExitUsage || !strings.Contains(errOut.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errOut.String(), ExitUsage, tc.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"4MB", 4 << 20, true}, {"16m", 16 << 20, true}, {"512KB", 512 << 10, true},
		{"0x400000", 4 << 20, true}, {"4194304", 4 << 20, true},
		{"0", 0, false}, {"4GB", 0, false}, {"1000", 0, false}, {"512MB", 0, false}, {"", 0, false},
	}
	for _, tc := range tests {
		got, err := parseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v", tc.in, got, err)
		}
	}
}
