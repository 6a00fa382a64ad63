package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestOpenRaceFreshDir: stations started together on a fresh data
// directory never fail on the station key ("station.key: file exists", or a
// key read half-written): one opens the log, the others are told it is in
// use, and the key left behind loads.
func TestOpenRaceFreshDir(t *testing.T) {
	t.Parallel()
	for trial := range 40 {
		dir := filepath.Join(t.TempDir(), "data")
		const n = 4
		logs := make([]*Log, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				logs[i], errs[i] = Open(context.Background(), Config{Dir: dir, Station: "st-01", Rand: rand.Reader, CheckpointEvery: -1})
			})
		}
		close(start)
		wg.Wait()
		opened := 0
		for i := range n {
			switch {
			case errs[i] == nil:
				opened++
				logs[i].Close(context.Background())
			case !errors.Is(errs[i], ErrInUse):
				t.Fatalf("trial %d: opener %d: %v", trial, i, errs[i])
			}
		}
		if opened != 1 {
			t.Fatalf("trial %d: %d openers got the log, want 1", trial, opened)
		}
		l, err := Open(context.Background(), Config{Dir: dir, Station: "st-01", CheckpointEvery: -1})
		if err != nil {
			t.Fatalf("trial %d: reopen: %v", trial, err)
		}
		l.Close(context.Background())
	}
}

// TestVerifyLineCap: a file with a line longer than any record (here 2 MiB
// of zeros, no newline: what a link to /dev/zero would give without end)
// is not read into memory whole: it is refused as not a log.
func TestVerifyLineCap(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte{0}, 2<<20)
	_, err := Verify(context.Background(), bytes.NewReader(big), VerifyOptions{NoCheckpoints: true})
	if !errors.Is(err, ErrNotLog) || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("2 MiB line: %v", err)
	}
}
