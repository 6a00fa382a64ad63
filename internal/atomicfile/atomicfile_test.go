package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		old  []byte // nil: no file before
		data []byte
		perm os.FileMode
	}{
		{"new file", nil, []byte("hello\n"), 0o644},
		{"replace", []byte("old content that is longer"), []byte("new"), 0o600},
		{"empty", []byte("x"), nil, 0o640},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := filepath.Join(dir, "f.json")
			if tc.old != nil {
				if err := os.WriteFile(p, tc.old, 0o666); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteFile(p, tc.data, tc.perm); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(p)
			if err != nil || string(got) != string(tc.data) {
				t.Fatalf("content %q, %v; want %q", got, err, tc.data)
			}
			st, _ := os.Stat(p)
			if st.Mode().Perm() != tc.perm {
				t.Errorf("mode %v, want %v", st.Mode().Perm(), tc.perm)
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				t.Errorf("directory holds %d entries, want only the file (no temporaries left)", len(ents))
			}
		})
	}
}

func TestWriteFileFailsCleanly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// The target is a directory: the rename fails, and no temporary may stay.
	p := filepath.Join(dir, "target")
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "inner"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("secret key bytes"), 0o600); err == nil {
		t.Fatal("replacing a non-empty directory succeeded")
	} else if got := err.Error(); strings.Contains(got, "secret") {
		t.Errorf("error %q", got)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("%d entries left, want 1", len(ents))
	}
	if err := WriteFile(filepath.Join(dir, "missing", "f"), nil, 0o644); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}
