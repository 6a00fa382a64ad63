package cli

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBadInputFiles: every kind of file a command reads refuses a FIFO (it
// would hang for good), /dev/zero (it would run out of memory, also behind
// a symlink) and an oversize file, fast, with exit 2 and one line naming
// the path and why.
func TestBadInputFiles(t *testing.T) {
	t.Parallel()
	ws := demoWorkspace(t)
	tmp := t.TempDir()
	fifo := filepath.Join(tmp, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(tmp, "zero-link")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(tmp, "big")
	if err := os.WriteFile(big, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 200<<20); err != nil { // sparse: larger than any kind's limit
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(ws.RecipePath)
	// A recipe whose Secure Boot key is BAD (replaced per case below).
	recipeWithKey := func(name, key string) string {
		s := strings.Replace(string(orig), "keys/sb0.pub.pem", key, 1)
		if s == string(orig) {
			t.Fatal("recipe names no keys/sb0.pub.pem")
		}
		p := filepath.Join(filepath.Dir(ws.RecipePath), name)
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	// A build folder whose app image is BAD.
	buildWithApp := func(name, app string) string {
		dir := filepath.Join(tmp, name)
		copyDir(t, filepath.Join(ws.Dir, "release"), dir)
		os.Remove(filepath.Join(dir, "app.bin"))
		if err := os.Symlink(app, filepath.Join(dir, "app.bin")); err != nil {
			t.Fatal(err)
		}
		s := strings.Replace(string(orig), "path: release", "path: "+dir, 1)
		p := filepath.Join(filepath.Dir(ws.RecipePath), name+".yaml")
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	type kind struct {
		name string
		args func(bad string) []string
	}
	kinds := []kind{
		{"recipe", func(bad string) []string { return []string{"run", "--recipe", bad, "--dry-run"} }},
		{"recipe key", func(bad string) []string {
			return []string{"run", "--recipe", recipeWithKey("key-"+filepath.Base(bad)+".yaml", bad), "--dry-run"}
		}},
		{"build-folder image", func(bad string) []string {
			return []string{"run", "--recipe", buildWithApp("build-"+filepath.Base(bad), bad), "--dry-run"}
		}},
		{"image info", func(bad string) []string { return []string{"image", "info", bad} }},
		{"partitions", func(bad string) []string { return []string{"partitions", bad} }},
		{"efuse decode", func(bad string) []string { return []string{"efuse", "decode", "--chip", "esp32s3", bad} }},
		{"audit log", func(bad string) []string { return []string{"audit", "verify", bad, "--no-checkpoints"} }},
		{"evidence", func(bad string) []string { return []string{"report", "device", bad} }},
		{"secureboot key", func(bad string) []string { return []string{"secureboot", "digest", bad} }},
		{"flash region", func(bad string) []string {
			return []string{"flash", "write", "--port", "socket://127.0.0.1:1", "0x10000", bad}
		}},
	}
	for _, k := range kinds {
		for _, bad := range []struct{ name, path, why string }{
			{"FIFO", fifo, "not a regular file (a FIFO)"},
			{"dev-zero", zero, "not a regular file (a character device)"},
			{"oversize", big, "larger than"},
		} {
			if k.name == "audit log" && bad.name == "oversize" {
				continue // streamed, not read whole: no size limit (lines are capped)
			}
			t.Run(k.name+"/"+bad.name, func(t *testing.T) {
				start := time.Now()
				args := k.args(bad.path)
				if args[0] == "run" {
					args = append(args, "--data", filepath.Join(t.TempDir(), "data"))
				}
				code, _, stderr := runCLI(t, "", args...)
				if d := time.Since(start); d > 10*time.Second {
					t.Fatalf("took %v", d)
				}
				if code != ExitUsage || !strings.Contains(stderr, bad.why) {
					t.Fatalf("exit %d, want %d with %q:\n%s", code, ExitUsage, bad.why, stderr)
				}
				if strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
					t.Errorf("not one line:\n%s", stderr)
				}
			})
		}
	}
}
