package flasher_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"fuseline/esp/chip"
	"fuseline/esp/loader"
	"fuseline/esp/slip"
	"fuseline/flasher"
	ft "fuseline/flasher/flashertest"
)

// chipOutput is a link whose chip side says exactly the given bytes and
// then stays silent; the host's writes are accepted and ignored.
type chipOutput struct {
	mu  sync.Mutex
	out *bytes.Reader
}

func (c *chipOutput) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out.Len() == 0 {
		return 0, os.ErrDeadlineExceeded
	}
	return c.out.Read(p)
}
func (c *chipOutput) Write(p []byte) (int, error)     { return len(p), nil }
func (c *chipOutput) SetReadDeadline(time.Time) error { return nil }

// s3Conversation is everything an S3 ROM says during Connect.
func s3Conversation() []byte {
	var b bytes.Buffer
	b.WriteString(s3Banner)
	for _, r := range ft.SyncReplies(true) {
		b.Write(slip.Encode(r))
	}
	b.Write(slip.Encode(ft.ROM(loader.OpGetSecurityInfo, 0, secInfo(chip.ESP32S3, 0))))
	for _, v := range []uint32{s3MACLo, s3MACHi, 2 << 18, 0, 0} {
		b.Write(slip.Encode(ft.ROM(loader.OpReadReg, v, nil)))
	}
	return b.Bytes()
}

// FuzzConnect feeds arbitrary chip output to Connect: it must never
// panic, never hang, and only succeed with a supported chip.
func FuzzConnect(f *testing.F) {
	f.Add(s3Conversation())
	f.Add([]byte(s3Banner))
	f.Add(slip.Encode(ft.ROM(loader.OpSync, 0, nil)))
	files, _ := filepath.Glob("testdata/*.bin")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		synctest.Test(t, func(t *testing.T) {
			link := &chipOutput{out: bytes.NewReader(out)}
			s, err := flasher.Connect(t.Context(), link, nil, flasher.Config{Attempts: 1, SyncTries: 2, BlockTries: 1})
			if err != nil {
				if !strings.HasPrefix(err.Error(), "flasher: ") {
					t.Fatalf("error without package prefix: %v", err)
				}
				return
			}
			if _, err := chip.ByID(s.Info().Chip.ID); err != nil {
				t.Fatalf("connected to an unsupported chip: %v", err)
			}
		})
	})
}

// FuzzParseStub: a stub file is outside input (a user-supplied file).
func FuzzParseStub(f *testing.F) {
	f.Add(fakeStubJSON())
	f.Add([]byte(`{"entry": 1, "text": "AAAA"}`))
	f.Add([]byte(`{"text": 5}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := flasher.ParseStub(b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "flasher: stub JSON") {
				t.Fatalf("error %v", err)
			}
			return
		}
		if len(st.Text) == 0 || st.Entry == 0 {
			t.Fatal("accepted a stub without text or entry")
		}
	})
}
