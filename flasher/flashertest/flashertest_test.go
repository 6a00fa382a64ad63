package flashertest

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"fuseline/esp/chip"
	"fuseline/esp/loader"
	"fuseline/esp/slip"
)

func TestPlayback(t *testing.T) {
	t.Parallel()
	p := NewPlayback(
		Step{Raw: []byte("banner\r\n")},
		Step{Want: SyncReq(), Reply: SyncReplies(true)[:2]},
		Step{Baud: 921600},
		Step{Reset: true, Mode: chip.BootSPI, EOF: true},
	)
	buf := make([]byte, 64)
	n, err := p.Read(buf)
	if err != nil || string(buf[:n]) != "banner\r\n" {
		t.Fatalf("%q %v", buf[:n], err)
	}
	if _, err := p.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent read: %v", err)
	}
	// The host's frame may arrive in pieces.
	f := slip.Encode(SyncReq())
	if _, err := p.Write(f[:5]); err != nil {
		t.Fatal(err)
	}
	if p.Pending() != 3 {
		t.Fatal("matched on a partial frame")
	}
	if _, err := p.Write(f[5:]); err != nil {
		t.Fatal(err)
	}
	r := slip.NewReader(p)
	for i := 0; i < 2; i++ {
		fr, err := r.ReadFrame()
		if err != nil || !bytes.Equal(fr, ROM(loader.OpSync, loader.SyncValue, nil)) {
			t.Fatalf("reply %d: % x %v", i, fr, err)
		}
	}
	if err := p.SetBaud(921600); err != nil {
		t.Fatal(err)
	}
	if err := p.Reset(t.Context(), chip.BootSPI); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Read(buf); err != io.EOF {
		t.Fatalf("after EOF step: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if p.SetReadDeadline(time.Now()) != nil || len(p.Bauds) != 1 {
		t.Fatal("bauds")
	}
}

func TestPlaybackErrors(t *testing.T) {
	t.Parallel()
	t.Run("unused steps", func(t *testing.T) {
		t.Parallel()
		p := NewPlayback(Step{Want: SyncReq()}, Step{Baud: 1})
		p.Write(slip.Encode(SyncReq()))
		err := p.Close()
		if err == nil || !strings.Contains(err.Error(), "1 of 2 steps unused") || !strings.Contains(err.Error(), "baud(1)") {
			t.Fatalf("Close = %v", err)
		}
	})
	t.Run("mismatch", func(t *testing.T) {
		t.Parallel()
		p := NewPlayback(Step{Want: SyncReq()})
		_, err := p.Write(slip.Encode(Req(loader.OpReadReg, loader.EncodeReadReg(0))))
		if !IsErr(err) || !strings.Contains(err.Error(), "SYNC") {
			t.Fatalf("Write = %v", err)
		}
		if cerr := p.Close(); !IsErr(cerr) {
			t.Fatalf("Close = %v", cerr)
		}
	})
	t.Run("past the end", func(t *testing.T) {
		t.Parallel()
		p := NewPlayback()
		if err := p.Reset(t.Context(), chip.BootDownload); !errors.Is(err, ErrScriptEnd) || !IsErr(err) {
			t.Fatalf("Reset = %v", err)
		}
	})
	t.Run("injected error is not a playback error", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("boom")
		p := NewPlayback(Step{Baud: 5, Err: boom})
		if err := p.SetBaud(5); err != boom || IsErr(err) {
			t.Fatalf("SetBaud = %v", err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("bytes outside a frame", func(t *testing.T) {
		t.Parallel()
		p := NewPlayback(Step{Want: SyncReq()})
		if _, err := p.Write([]byte("AT\r\n")); !IsErr(err) {
			t.Fatalf("Write = %v", err)
		}
	})
	t.Run("partial frame left", func(t *testing.T) {
		t.Parallel()
		p := NewPlayback()
		p.Write([]byte{0xC0, 1, 2})
		if err := p.Close(); err == nil {
			t.Fatal("partial frame not reported")
		}
	})
	t.Run("match func", func(t *testing.T) {
		t.Parallel()
		p := NewPlayback(Step{Name: "any data", Match: func(b []byte) error {
			if len(b) < 2 || b[1] != byte(loader.OpFlashData) {
				return errors.New("not FLASH_DATA")
			}
			return nil
		}})
		if _, err := p.Write(slip.Encode(DataReq(loader.OpFlashData, 0, []byte{1}))); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestLines(t *testing.T) {
	t.Parallel()
	l := &PairLines{}
	l.SetDTR(true)
	l.SetRTS(true)
	l.SetDTRRTS(false, true)
	if !strings.HasPrefix(l.Sequence(), "D1|") || !strings.HasSuffix(l.Sequence(), "U0,1") || l.DTR || !l.RTS {
		t.Fatalf("%s %v %v", l.Sequence(), l.DTR, l.RTS)
	}
	f := &Lines{FailAfter: 1}
	if f.SetDTR(true) == nil {
		t.Fatal("FailAfter ignored")
	}
}
