package inputfile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadFile: only regular files are read, each up to its limit; a FIFO
// with no writer and /dev/zero are refused at once.
func TestReadFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(dir, "small")
	os.WriteFile(small, []byte("0123456789"), 0o600)
	zeroLink := filepath.Join(dir, "zero-link")
	if err := os.Symlink("/dev/zero", zeroLink); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		path  string
		limit int64
		want  error
		text  string
	}{
		{"regular within limit", small, 10, nil, ""},
		{"regular over limit", small, 9, ErrTooLarge, "larger than 9 bytes"},
		{"FIFO", fifo, 1 << 20, ErrNotRegular, "a FIFO"},
		{"/dev/zero", "/dev/zero", 1 << 20, ErrNotRegular, "a character device"},
		{"symlink to /dev/zero", zeroLink, 1 << 20, ErrNotRegular, "a character device"},
		{"directory", dir, 1 << 20, ErrNotRegular, "a directory"},
		{"missing", filepath.Join(dir, "nope"), 1 << 20, os.ErrNotExist, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			b, err := ReadFile(context.Background(), tc.path, tc.limit)
			if time.Since(start) > 5*time.Second {
				t.Fatal("took too long")
			}
			if tc.want == nil {
				if err != nil || string(b) != "0123456789" {
					t.Fatalf("%q %v", b, err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) || !strings.HasPrefix(err.Error(), tc.path+": ") {
				t.Fatalf("error %v, want %v naming %s and %q", err, tc.want, tc.path, tc.text)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

// TestReadFileCancelled: a cancelled read stops; the same file reads whole
// without cancellation.
func TestReadFileCancelled(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, make([]byte, 3<<20), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ReadFile(ctx, p, 4<<20); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled read: %v", err)
	}
	if b, err := ReadFile(context.Background(), p, 4<<20); err != nil || len(b) != 3<<20 {
		t.Fatalf("%d %v", len(b), err)
	}
	if err := Check(context.Background(), p, 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Check: %v", err)
	}
}
