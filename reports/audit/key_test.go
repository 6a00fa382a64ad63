package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeyCrashStates: the files a station killed while it made its key
// pair can leave (the fault campaign's SIGKILLs 0.45–1 s into a first run
// left station.pub missing or cut short beside station.key, and every later
// run failed). The public key is derived again from the private one; a
// damaged private key, which no crash of the current writer leaves, is
// refused with a line that names the file and says what to do.
func TestKeyCrashStates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		damage  func(t *testing.T, l Layout, pub []byte)
		wantErr string // "": the next open works and station.pub is whole again
	}{
		{"pub missing", func(t *testing.T, l Layout, pub []byte) { rm(t, l.PublicKey) }, ""},
		{"pub empty", func(t *testing.T, l Layout, pub []byte) { write(t, l.PublicKey, nil, 0o644) }, ""},
		{"pub cut in half", func(t *testing.T, l Layout, pub []byte) { write(t, l.PublicKey, pub[:len(pub)/2], 0o644) }, ""},
		{"pub without newline", func(t *testing.T, l Layout, pub []byte) { write(t, l.PublicKey, pub[:len(pub)-1], 0o644) }, ""},
		{"pub missing, temporaries left", func(t *testing.T, l Layout, pub []byte) {
			rm(t, l.PublicKey)
			write(t, filepath.Join(l.Dir, ".station.pub.123"), pub[:3], 0o644)
		}, ""},
		{"key cut short", func(t *testing.T, l Layout, pub []byte) {
			b, _ := os.ReadFile(l.Key)
			write(t, l.Key, b[:len(b)/2], 0o600)
		}, "station.key: is cut short or damaged"},
		{"key empty, pub missing", func(t *testing.T, l Layout, pub []byte) {
			write(t, l.Key, nil, 0o600)
			rm(t, l.PublicKey)
		}, "station.key: is cut short or damaged"},
		{"key missing, pub kept", func(t *testing.T, l Layout, pub []byte) { rm(t, l.Key) }, "station.key: missing, but"},
		{"pub of another key", func(t *testing.T, l Layout, pub []byte) {
			write(t, l.PublicKey, []byte("st-01+00000001+AQ"+strings.Repeat("A", 42)+"=\n"), 0o644)
		}, "station.pub"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "data")
			cfg := testConfig(t, dir)
			l, err := Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			l.Close(context.Background())
			lay := NewLayout(dir)
			pub, err := os.ReadFile(lay.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			tc.damage(t, lay, pub)

			l, err = Open(context.Background(), cfg)
			if tc.wantErr != "" {
				var ke *KeyError
				if err == nil {
					l.Close(context.Background())
					t.Fatalf("open worked, want %q", tc.wantErr)
				}
				if !errors.As(err, &ke) || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("open: %v, want a one-line KeyError with %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "PRIVATE+KEY") {
					t.Fatalf("error quotes the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("open after %s: %v", tc.name, err)
			}
			l.Close(context.Background())
			got, err := os.ReadFile(lay.PublicKey)
			// A line without its newline is complete; anything shorter is rewritten.
			if err != nil || strings.TrimSpace(string(got)) != strings.TrimSpace(string(pub)) {
				t.Fatalf("station.pub after open: %q %v, want %q", got, err, pub)
			}
			if st, err := os.Stat(lay.PublicKey); err != nil || st.Mode().Perm() != 0o644 {
				t.Fatalf("station.pub mode: %v %v", st.Mode(), err)
			}
		})
	}
}

// TestKeyCreateLeavesNoTemporaries: a station killed while it wrote
// station.key leaves a temporary holding a private key no file names; the
// next first run removes it, and station.key itself is never half-written.
func TestKeyCreateLeavesNoTemporaries(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, ".station.key.4711"), []byte("PRIVATE+KEY+st-01+"), 0o600)
	openTest(t, testConfig(t, dir))
	left, _ := filepath.Glob(filepath.Join(dir, ".station.*"))
	if len(left) != 0 {
		t.Fatalf("temporaries left: %v", left)
	}
}

func rm(t *testing.T, p string) {
	t.Helper()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, p string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}
