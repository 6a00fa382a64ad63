package keyseal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestSealOpen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), FileName)
	s := At(path)
	if _, err := s.Open("dev", []byte("age-encryption.org/v1\n")); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("open before any identity: %v", err)
	}
	key := bytes.Repeat([]byte{7}, 32)
	sealed, err := s.Seal("dev", key)
	if err != nil {
		t.Fatal(err)
	}
	if !IsSealed(sealed) || bytes.Contains(sealed, key) {
		t.Fatal("sealed form holds the key or is not an age file")
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("identity mode %v %v", st, err)
	}
	// A new sealer on the same file (a later process) opens it.
	if k, err := At(path).Open("dev", sealed); !bytes.Equal(k, key) {
		t.Fatalf("reopen: %v", err)
	}
	if _, err := At(path).Open("other", sealed); !errors.Is(err, ErrWrongDevice) {
		t.Fatalf("another device's name opened it: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := At(path).Open("dev", sealed); err == nil {
		t.Fatal("an identity others can read was used")
	}
}

// TestCreateRace: stations starting together on one data directory end
// with one identity, and every key any of them sealed opens with it.
func TestCreateRace(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), FileName)
	const n = 16
	sealed := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { sealed[i], errs[i] = At(path).Seal("dev", []byte{byte(i)}) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("sealer %d: %v", i, errs[i])
		}
		if k, err := At(path).Open("dev", sealed[i]); err != nil || !bytes.Equal(k, []byte{byte(i)}) {
			t.Fatalf("key %d does not open with the identity left: %v", i, err)
		}
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Fatalf("files left: %v", ents)
	}
}

// FuzzOpen: a key file from the journal directory is outside bytes; Open
// never panics and opens nothing but what Seal made for that device.
func FuzzOpen(f *testing.F) {
	path := filepath.Join(f.TempDir(), FileName)
	s := At(path)
	good, err := s.Seal("dev", bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte("age-encryption.org/v1\n-> X25519 AAAA\n--- AAAA\n"))
	f.Add(bytes.Repeat([]byte{0}, 32))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Only an age file sealed to this identity opens (the fuzzer
		// cannot forge one): whatever opens is the key sealed.
		k, err := s.Open("dev", b)
		if err == nil && !bytes.Equal(k, bytes.Repeat([]byte{7}, 32)) {
			t.Fatalf("opened %x from a file Seal did not make", k)
		}
	})
}
