package provisioning

import (
	"bytes"
	"context"
	"crypto/rsa"
	"os"
	"path/filepath"
	"testing"

	"fuseline/esp/chip"
	"fuseline/esp/efuse"
	"fuseline/esp/flashenc"
	"fuseline/esp/secureboot"
	"fuseline/provisioning/recipe"
	"fuseline/provisioning/workspace"
)

// testKeys are the espsecure-made signing keys of testdata (RSA-3072 key
// generation is too slow for every test).
func testKeys(t testing.TB) []*rsa.PrivateKey {
	t.Helper()
	var out []*rsa.PrivateKey
	for _, n := range []string{"key1.pem", "key2.pem"} {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			t.Fatal(err)
		}
		k, err := secureboot.ParsePrivateKeyPEM(b)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, k)
	}
	return out
}

func testDigest(t testing.TB, n int) [32]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", []string{"key1.digest.bin", "key2.digest.bin"}[n]))
	if err != nil {
		t.Fatal(err)
	}
	var d [32]byte
	copy(d[:], b)
	return d
}

// newWorkspace makes a workspace in a temp dir with the test keys and
// loads its recipe.
func newWorkspace(t testing.TB, o workspace.Options) (*workspace.Workspace, *recipe.Recipe) {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Keys == nil {
		o.Keys = testKeys(t)[:1]
	}
	w, err := workspace.Create(context.Background(), o)
	if err != nil {
		t.Fatalf("workspace: %v", err)
	}
	r, err := recipe.Load(w.RecipePath)
	if err != nil {
		t.Fatalf("recipe: %v", err)
	}
	return w, r
}

// testRecipe parses a recipe from YAML and fills in digests of the test
// keys (no files read).
func testRecipe(t testing.TB, yaml string, keys int) *recipe.Recipe {
	t.Helper()
	r, err := recipe.Parse("t.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("recipe: %v", err)
	}
	tk := testKeys(t)
	for i := range keys {
		r.SecureBoot.PublicKeys = append(r.SecureBoot.PublicKeys, &tk[i].PublicKey)
		r.SecureBoot.Digests = append(r.SecureBoot.Digests, testDigest(t, i))
	}
	return r
}

func blank(t testing.TB, id chip.ID) *efuse.Image {
	t.Helper()
	img, err := efuse.NewImage(id)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// fixedKey is a recognisable device key for plan tests.
func fixedKey(scheme chip.Encryption) []byte {
	k := bytes.Repeat([]byte{0xA5, 0x5A, 0x3C, 0xC3}, scheme.KeyLen()/4)
	k[0] = 0x11
	return k
}

func keyBlocks(t testing.TB, scheme chip.Encryption, key []byte) [][32]byte {
	t.Helper()
	kb, err := flashenc.KeyBlocks(scheme, key)
	if err != nil {
		t.Fatal(err)
	}
	return kb
}

func view(t testing.TB, phys *efuse.Image) *efuse.Image {
	t.Helper()
	v, err := phys.ReadView()
	if err != nil {
		t.Fatal(err)
	}
	return v
}
