package syslog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

func TestParseEntry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     string
		seq    int64
		msg    string
		n      int
		short  bool
		offset int64 // of a SpoolError; -1 none
	}{
		{"plain", "1 3 abc\n", 1, "abc", 8, false, -1},
		{"newline inside message", "12 3 a\nc\nrest", 12, "a\nc", 9, false, -1},
		{"empty message", "5 0 \n", 5, "", 5, false, -1},
		{"torn in the number", "12", 0, "", 0, true, -1},
		{"torn in the message", "1 10 abc", 0, "", 0, true, -1},
		{"torn before the newline", "1 3 abc", 0, "", 0, true, -1},
		{"no newline after message", "1 3 abcX", 0, "", 0, false, 7},
		{"letter in seq", "1x 3 abc\n", 0, "", 0, false, 1},
		{"leading zero", "01 3 abc\n", 0, "", 0, false, 0},
		{"seq zero", "0 3 abc\n", 0, "", 0, false, 0},
		{"huge length", "1 99999999999 a\n", 0, "", 0, false, 2},
		{"twenty digits", "12345678901234567890 1 a\n", 0, "", 0, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			seq, msg, n, err := parseEntry([]byte(tc.in))
			switch {
			case tc.short:
				if !errors.Is(err, errShortEntry) {
					t.Fatalf("err %v, want errShortEntry", err)
				}
			case tc.offset >= 0:
				var se *SpoolError
				if !errors.As(err, &se) || se.Offset != tc.offset {
					t.Fatalf("err %v, want a SpoolError at %d", err, tc.offset)
				}
			default:
				if err != nil || seq != tc.seq || string(msg) != tc.msg || n != tc.n {
					t.Fatalf("got %d %q %d %v", seq, msg, n, err)
				}
			}
		})
	}
}

// FuzzSpoolEntry: no panic, errors are errShortEntry or a SpoolError with
// an offset inside the input, and what parses re-encodes to its bytes.
func FuzzSpoolEntry(f *testing.F) {
	for _, s := range []string{"1 3 abc\n", "12 3 a\nc\n", "5 0 \n", "1 10 abc", "01 3 abc\n", "9223372036854775807 1 x\n"} {
		f.Add([]byte(s))
	}
	f.Add(appendEntry(nil, 42, []byte(`<110>1 2026-11-21T10:00:00.000000Z st-01 fuseline - intake [meta sequenceId="42"] {}`)))
	f.Fuzz(func(t *testing.T, b []byte) {
		seq, msg, n, err := parseEntry(b)
		if err != nil {
			var se *SpoolError
			if !errors.Is(err, errShortEntry) && !(errors.As(err, &se) && se.Offset >= 0 && se.Offset <= int64(len(b))) {
				t.Fatalf("bad error %v", err)
			}
			return
		}
		if again := appendEntry(nil, seq, msg); !bytes.Equal(again, b[:n]) {
			t.Fatalf("round trip %q -> %q", b[:n], again)
		}
	})
}

func TestSpoolPersistsConfirmsAndRecovers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	sp, err := openSpool(ctx, dir, 30, log) // tiny segments: a new one every few entries
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 10; i++ {
		if err := sp.add([][]byte{[]byte(fmt.Sprint("message ", i))}); err != nil {
			t.Fatal(err)
		}
	}
	if sp.next != 11 || sp.pending() != 10 {
		t.Fatalf("next %d pending %d", sp.next, sp.pending())
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "seg-*.spool"))
	if len(segs) < 3 {
		t.Fatalf("%d segments, want several", len(segs))
	}
	if err := sp.confirm(7); err != nil {
		t.Fatal(err)
	}
	if m, err := sp.read(8); err != nil || string(m) != "message 8" {
		t.Fatalf("read 8: %q %v", m, err)
	}
	if _, err := sp.read(7); err == nil {
		t.Fatal("read of a confirmed entry succeeded")
	}
	after, _ := filepath.Glob(filepath.Join(dir, "seg-*.spool"))
	if len(after) >= len(segs) {
		t.Fatalf("confirmed segments not deleted: %d → %d", len(segs), len(after))
	}
	sp.close()

	// A crash mid-write leaves a torn entry at the end: cut off on open.
	last := after[len(after)-1]
	f, _ := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("11 40 half a mess"))
	f.Close()
	sp, err = openSpool(ctx, dir, 30, log)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	if sp.confirmed != 7 || sp.next != 11 || sp.pending() != 3 {
		t.Fatalf("reopened: confirmed %d next %d pending %d", sp.confirmed, sp.next, sp.pending())
	}
	for seq := int64(8); seq <= 10; seq++ {
		if m, err := sp.read(seq); err != nil || string(m) != fmt.Sprint("message ", seq) {
			t.Fatalf("read %d: %q %v", seq, m, err)
		}
	}
	if err := sp.add([][]byte{[]byte("message 11")}); err != nil {
		t.Fatal(err)
	}
	if m, _ := sp.read(11); string(m) != "message 11" {
		t.Fatalf("after torn tail: %q", m)
	}
}

func TestSpoolRefusesDamage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	sp, err := openSpool(ctx, dir, 1<<20, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	sp.add([][]byte{[]byte("a"), []byte("b"), []byte("c")})
	sp.close()
	segs, _ := filepath.Glob(filepath.Join(dir, "seg-*.spool"))
	b, _ := os.ReadFile(segs[0])
	os.WriteFile(segs[0], bytes.Replace(b, []byte("2 1 b"), []byte("5 1 b"), 1), 0o600)
	_, err = openSpool(ctx, dir, 1<<20, slog.New(slog.DiscardHandler))
	var se *SpoolError
	if !errors.As(err, &se) || se.Offset != 6 {
		t.Fatalf("open of a damaged spool: %v, want a SpoolError at offset 6", err)
	}
}
