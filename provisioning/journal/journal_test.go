package journal

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fuseline/provisioning/keyseal"
)

func clock() func() time.Time {
	t := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	return func() time.Time { t = t.Add(time.Second); return t }
}

func TestAppendReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j, err := Open(dir, DeviceName("7C:DF:A1:00:00:01"), clock())
	if err != nil {
		t.Fatal(err)
	}
	if j.Device() != "7cdfa1000001" {
		t.Fatalf("device %q", j.Device())
	}
	for _, k := range []string{"run.start", "step.begin", "step.end"} {
		if _, err := j.Append(Record{Run: "r1", Kind: k, Step: "flash-key", Data: json.RawMessage(`{"a":1}`)}); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	st, err := os.Stat(j.Path())
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("journal mode %v, %v", st.Mode(), err)
	}
	j2, err := Open(dir, "7cdfa1000001", clock())
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	rs := j2.Records()
	if len(rs) != 3 || rs[2].Kind != "step.end" || rs[1].Seq != 1 || j2.Torn {
		t.Fatalf("records %+v torn %v", rs, j2.Torn)
	}
	if r, err := j2.Append(Record{Run: "r2", Kind: "run.start"}); err != nil || r.Seq != 3 {
		t.Fatalf("append after reopen: %+v %v", r, err)
	}
}

func TestTornAndCorrupt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		tail    string
		torn    bool
		corrupt bool
	}{
		{"torn tail", `{"seq":2,"time":"2026-11-21T10:00:00Z","run":"r","ki`, true, false},
		{"corrupt complete line", "{nope}\n", false, true},
		{"out of sequence", `{"seq":7,"time":"2026-11-21T10:00:00Z","run":"r","kind":"x"}` + "\n", false, true},
		{"unknown field", `{"seq":2,"time":"2026-11-21T10:00:00Z","run":"r","kind":"x","key":"00"}` + "\n", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			j, err := Open(dir, "dev", clock())
			if err != nil {
				t.Fatal(err)
			}
			j.Append(Record{Run: "r", Kind: "a"})
			j.Append(Record{Run: "r", Kind: "b"})
			j.Close()
			f, _ := os.OpenFile(j.Path(), os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString(tc.tail)
			f.Close()
			j2, err := Open(dir, "dev", clock())
			if tc.corrupt {
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "line 3") {
					t.Fatalf("err = %v, want ErrCorrupt at line 3", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer j2.Close()
			if j2.Torn != tc.torn || len(j2.Records()) != 2 {
				t.Fatalf("torn %v records %d", j2.Torn, len(j2.Records()))
			}
			if _, err := j2.Append(Record{Run: "r", Kind: "c"}); err != nil {
				t.Fatal(err)
			}
			j3, err := Open(dir, "dev", clock())
			if err != nil || len(j3.Records()) != 3 {
				t.Fatalf("after repair: %v, %d records", err, len(j3.Records()))
			}
			j3.Close()
		})
	}
}

func TestKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j, err := Open(dir, "dev", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	seal := keyseal.At(filepath.Join(t.TempDir(), keyseal.FileName))
	if k, err := j.LoadKey(seal); k != nil || err != nil || j.HasKey() {
		t.Fatalf("fresh journal has a key: %v %v", k, err)
	}
	key := []byte("0123456789abcdef0123456789abcdef")
	if err := j.SaveKey(key, seal); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "dev.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v %v", st.Mode(), err)
	}
	assertNoKey(t, dir, key)
	if k, err := j.LoadKey(seal); string(k) != string(key) {
		t.Fatalf("key does not read back: %v", err)
	}
	if k, err := LoadKey(dir, "dev", seal); string(k) != string(key) {
		t.Fatalf("key does not read back without the journal: %v", err)
	}
	// Another station's sealing key does not open it.
	other := keyseal.At(filepath.Join(t.TempDir(), keyseal.FileName))
	if _, err := other.Seal("x", key); err != nil {
		t.Fatal(err)
	}
	if k, err := j.LoadKey(other); k != nil || err == nil {
		t.Fatalf("another station opened the key: %v", err)
	}
	for _, r := range j.Records() {
		t.Fatalf("SaveKey wrote a record %+v", r)
	}
	if err := j.DropKey(); err != nil {
		t.Fatal(err)
	}
	if j.HasKey() {
		t.Fatal("key still there")
	}
	if err := j.DropKey(); err != nil {
		t.Fatalf("second DropKey: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), "tmp") {
			t.Errorf("left %s behind", e.Name())
		}
	}
}

// assertNoKey fails if any file under dir holds key in any usual form.
func assertNoKey(t *testing.T, dir string, key []byte) {
	t.Helper()
	forms := [][]byte{key, []byte(hex.EncodeToString(key)), []byte(base64.StdEncoding.EncodeToString(key))}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		for _, f := range forms {
			if bytes.Contains(b, f) {
				t.Errorf("%s holds the key", p)
			}
		}
		return nil
	})
}

// TestKeyFileUnsealed: a raw key file left by an earlier version still
// loads (a board abandoned before the upgrade can be resumed) and is
// sealed in its place on load; a dry run's read changes nothing.
func TestKeyFileUnsealed(t *testing.T) {
	t.Parallel()
	for _, n := range []int{16, 32, 64} {
		dir := t.TempDir()
		key := bytes.Repeat([]byte{0xA5, 0x3C}, n/2)
		if err := os.WriteFile(filepath.Join(dir, "dev.key"), key, 0o600); err != nil {
			t.Fatal(err)
		}
		seal := keyseal.At(filepath.Join(t.TempDir(), keyseal.FileName))
		if k, err := LoadKey(dir, "dev", seal); !bytes.Equal(k, key) {
			t.Fatalf("%d-byte raw key: %v", n, err)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "dev.key")); !bytes.Equal(b, key) {
			t.Fatal("the read-only LoadKey changed the file")
		}
		j, err := Open(dir, "dev", nil)
		if err != nil {
			t.Fatal(err)
		}
		if k, err := j.LoadKey(seal); !bytes.Equal(k, key) {
			t.Fatalf("%d-byte raw key: %v", n, err)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "dev.key"))
		if !keyseal.IsSealed(b) {
			t.Fatalf("%d-byte raw key not sealed on load", n)
		}
		assertNoKey(t, dir, key)
		if k, err := j.LoadKey(seal); !bytes.Equal(k, key) {
			t.Fatalf("sealed key does not read back: %v", err)
		}
		j.Close()
	}
}

func TestCurrent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if d, err := Current(dir, "slot1"); d != "" || err != nil {
		t.Fatalf("no pointer: %q %v", d, err)
	}
	if err := SetCurrent(dir, "slot1", "7cdfa1000001"); err != nil {
		t.Fatal(err)
	}
	if d, err := Current(dir, "slot1"); d != "7cdfa1000001" || err != nil {
		t.Fatalf("pointer: %q %v", d, err)
	}
	if err := ClearCurrent(dir, "slot1"); err != nil {
		t.Fatal(err)
	}
	if d, _ := Current(dir, "slot1"); d != "" {
		t.Fatal("pointer not cleared")
	}
	if err := SetCurrent(dir, "../x", "d"); err == nil {
		t.Fatal("a path as slot name was accepted")
	}
	if _, err := Open(dir, "../etc", nil); err == nil {
		t.Fatal("a path as device name was accepted")
	}
}

func FuzzOpen(f *testing.F) {
	f.Add([]byte(`{"seq":0,"time":"2026-11-21T10:00:00Z","run":"r","kind":"a"}` + "\n"))
	f.Add([]byte(`{"seq":0,"time":"2026-11-21T10:00:00Z","run":"r","kind":"a"}` + "\n{\"seq\":1"))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "d.jsonl"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		j, err := Open(dir, "d", nil)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "byte ") {
				t.Fatalf("error %v is not ErrCorrupt naming a byte offset", err)
			}
			return
		}
		n := len(j.Records())
		if _, err := j.Append(Record{Run: "f", Kind: "k"}); err != nil {
			t.Fatal(err)
		}
		j.Close()
		j2, err := Open(dir, "d", nil)
		if err != nil || len(j2.Records()) != n+1 || j2.Torn {
			t.Fatalf("reopen after append: %v, %d records (want %d), torn %v", err, len(j2.Records()), n+1, j2.Torn)
		}
		j2.Close()
	})
}
