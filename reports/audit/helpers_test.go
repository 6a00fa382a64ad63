package audit

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"fuseline/reports/syslog"
)

// fakeClock steps by 1.5 ms on every call, from a fixed start.
func fakeClock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2026, 11, 21, 10, 0, 0, 123456789, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(1500 * time.Microsecond)
		return t
	}
}

// seededRand is a deterministic io.Reader for keys and event IDs.
type seededRand struct{ r *rand.ChaCha8 }

func newSeededRand(seed byte) *seededRand {
	var s [32]byte
	s[0] = seed
	return &seededRand{rand.NewChaCha8(s)}
}

func (s *seededRand) Read(p []byte) (int, error) { return s.r.Read(p) }

func testConfig(t testing.TB, dir string) Config {
	t.Helper()
	return Config{Dir: dir, Station: "st-01", Now: fakeClock(), Rand: newSeededRand(1), CheckpointEvery: -1}
}

func openTest(t testing.TB, cfg Config) *Log {
	t.Helper()
	l, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

func mac(i int) string { return fmt.Sprintf("24:0a:c4:00:%02x:%02x", i>>8&0xff, i&0xff) }

// runEntries is one board's run: 8 records, the last one the result.
func runEntries(run int, device string) []Entry {
	id := fmt.Sprintf("r-%d", run)
	e := func(ev Event, res Result, d Details) Entry {
		return Entry{Operator: "alice", Device: device, Run: id, Event: ev, Result: res, Details: d}
	}
	return []Entry{
		e(EventRunStart, ResultInfo, Details{"recipe": "s3-prod", "slot": "1"}),
		e(EventIntake, ResultOK, Details{"release": "1.4.2", "manifest_sha256": strings.Repeat("ab", 32)}),
		e(EventEfuseBurn, ResultOK, Details{"field": "BLOCK_KEY0", "key_purpose": "XTS_AES_128_KEY", "read_protected": "true"}),
		e(EventEfuseBurn, ResultOK, Details{"field": "BLOCK_KEY1", "key_purpose": "SECURE_BOOT_DIGEST0", "key_digest": strings.Repeat("cd", 32)}),
		e(EventRegionWritten, ResultOK, Details{"region": "app0", "offset": "0x10000", "bytes": "1048576"}),
		e(EventRegionVerified, ResultOK, Details{"region": "app0", "md5": strings.Repeat("ef", 16)}),
		e(EventLock, ResultOK, Details{"fields": "SPI_BOOT_CRYPT_CNT,SECURE_BOOT_EN"}),
		e(EventResult, ResultOK, Details{"verdict": "PASS"}),
	}
}

func appendAll(t testing.TB, l *Log, es []Entry) []Receipt {
	t.Helper()
	var out []Receipt
	for _, e := range es {
		rc, err := l.Append(context.Background(), e)
		if err != nil {
			t.Fatalf("Append %s: %v", e.Event, err)
		}
		out = append(out, rc)
	}
	return out
}

// writeRuns appends n runs (8 records each) for devices mac(0..n-1).
func writeRuns(t testing.TB, l *Log, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		appendAll(t, l, runEntries(i, mac(i)))
	}
}

func readLines(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	return lines
}

func writeLines(t testing.TB, path string, lines [][]byte) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Join(lines, nil), 0o640); err != nil {
		t.Fatal(err)
	}
}

// recordingSink is a Sink that keeps what it got and can be made to fail.
type recordingSink struct {
	mu   sync.Mutex
	msgs []syslog.Message
	fail error
}

func (s *recordingSink) Send(ctx context.Context, msgs ...syslog.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.msgs = append(s.msgs, msgs...)
	return nil
}

func (s *recordingSink) got() []syslog.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]syslog.Message(nil), s.msgs...)
}

func sdParam(m syslog.Message, id, name string) string {
	for _, e := range m.Data {
		if e.ID == id {
			for _, p := range e.Params {
				if p.Name == name {
					return p.Value
				}
			}
		}
	}
	return ""
}
