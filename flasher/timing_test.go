package flasher_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"fuseline/esp/chip"
	"fuseline/esp/loader"
	"fuseline/flasher"
)

// Over net.Pipe inside a synctest bubble, time is fake and exact: these
// tests pin the timeouts and backoffs of §1.9/§2.1.

func TestSyncRetryTiming(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ignore int
		want   time.Duration
	}{
		// 50 ms quiet banner drain, then per unanswered SYNC a 100 ms
		// timeout and a 50, 100, 200 ms backoff.
		{0, 50 * time.Millisecond},
		{1, 50*time.Millisecond + 150*time.Millisecond},
		{3, 50*time.Millisecond + 150*time.Millisecond + 200*time.Millisecond + 300*time.Millisecond},
	} {
		synctest.Test(t, func(t *testing.T) {
			f := newFakeChip(chip.S3())
			f.ignoreSync = tc.ignore
			host := f.start(t)
			defer host.Close()
			start := time.Now()
			if _, err := flasher.Connect(t.Context(), host, nil, flasher.Config{}); err != nil {
				t.Fatal(err)
			}
			if el := time.Since(start); el != tc.want {
				t.Fatalf("ignore %d: connected after %v, want %v", tc.ignore, el, tc.want)
			}
		})
	}
}

func TestNoSyncTiming(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeChip(chip.S3())
		f.ignoreSync = 1000
		host := f.start(t)
		defer host.Close()
		start := time.Now()
		_, err := flasher.Connect(t.Context(), host, flasher.NoReset{}, flasher.Config{Attempts: 2, SyncTries: 2})
		if !errors.Is(err, flasher.ErrNoSync) {
			t.Fatal(err)
		}
		// Per attempt: 50 ms drain + 2 × 100 ms timeouts + 50 + 100 ms backoff.
		if el := time.Since(start); el != 2*400*time.Millisecond {
			t.Fatalf("gave up after %v", el)
		}
	})
}

func TestCommandTimeout(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeChip(chip.S3())
		host := f.start(t)
		defer host.Close()
		s, err := flasher.Connect(t.Context(), host, nil, flasher.Config{})
		if err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		f.silent[loader.OpReadReg] = true
		f.mu.Unlock()
		// READ_REG is idempotent: three tries of 3 s, 50 ms of quiet
		// between them.
		start := time.Now()
		_, err = s.ReadReg(t.Context(), 0x60007044)
		if want := 3*flasher.DefaultTimeout + 2*50*time.Millisecond; !errors.Is(err, flasher.ErrTimeout) || time.Since(start) != want {
			t.Fatalf("err %v after %v, want %v", err, time.Since(start), want)
		}
		// A cancelled context ends the wait at once, with the context's error.
		ctx, cancel := context.WithTimeout(t.Context(), 700*time.Millisecond)
		defer cancel()
		start = time.Now()
		_, err = s.ReadReg(ctx, 0x60007044)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 700*time.Millisecond {
			t.Fatalf("err %v after %v", err, time.Since(start))
		}
		ctx, cancel = context.WithCancel(t.Context())
		go func() { time.Sleep(time.Second); cancel() }()
		start = time.Now()
		_, err = s.ReadReg(ctx, 0x60007044)
		if !errors.Is(err, context.Canceled) || time.Since(start) != time.Second {
			t.Fatalf("err %v after %v", err, time.Since(start))
		}
	})
}

// noDeadline hides SetReadDeadline: the flasher falls back to a reader
// goroutine and still times out.
type noDeadline struct{ io.ReadWriter }

func TestLinkWithoutDeadlines(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeChip(chip.C3())
		f.ignoreSync = 1
		host := f.start(t)
		defer host.Close()
		start := time.Now()
		s, err := flasher.Connect(t.Context(), noDeadline{host}, nil, flasher.Config{BlockTries: 1})
		if err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el != 200*time.Millisecond {
			t.Fatalf("connected after %v", el)
		}
		f.mu.Lock()
		f.silent[loader.OpReadReg] = true
		f.mu.Unlock()
		start = time.Now()
		if _, err := s.ReadReg(t.Context(), 0); !errors.Is(err, flasher.ErrTimeout) || time.Since(start) != flasher.DefaultTimeout {
			t.Fatalf("err %v after %v", err, time.Since(start))
		}
		host.Close()
		if _, err := s.ReadReg(t.Context(), 0); !errors.Is(err, flasher.ErrLinkLost) {
			t.Fatalf("after close: %v", err)
		}
	})
}

// A closed link is ErrLinkLost, never a success.
func TestLinkClosed(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeChip(chip.S3())
		host := f.start(t)
		s, err := flasher.Connect(t.Context(), host, nil, flasher.Config{})
		if err != nil {
			t.Fatal(err)
		}
		host.Close()
		if err := s.WriteReg(t.Context(), 0x60007000, 1); !errors.Is(err, flasher.ErrLinkLost) {
			t.Fatalf("err %v", err)
		}
	})
}
