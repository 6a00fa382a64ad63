package workspace

import (
	"bytes"
	"context"
	"crypto/rsa"
	"os"
	"path/filepath"
	"testing"

	"fuseline/esp/chip"
	"fuseline/esp/image"
	"fuseline/esp/partition"
	"fuseline/esp/secureboot"
	"fuseline/provisioning/recipe"
)

func testKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	// The espsecure-made key of the provisioning tests (RSA-3072
	// generation is too slow for a unit test).
	b, err := os.ReadFile(filepath.Join("..", "testdata", "key1.pem"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := secureboot.ParsePrivateKeyPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCreate(t *testing.T) {
	t.Parallel()
	for _, c := range []chip.Chip{chip.S3(), chip.C3()} {
		t.Run(c.Arg(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			k := testKey(t)
			w, err := Create(context.Background(), Options{Dir: dir, Chip: c, Keys: []*rsa.PrivateKey{k}, Version: "3.1.4", SecureVersion: 5,
				Recipe: RecipeOptions{Floor: 4, WriteMode: recipe.ChipEncrypted}})
			if err != nil {
				t.Fatal(err)
			}
			r, err := recipe.Load(w.RecipePath)
			if err != nil {
				t.Fatalf("the recipe does not load: %v", err)
			}
			if r.Chip.ID != c.ID || r.AntiRollback.Floor != 4 || r.WriteMode != recipe.ChipEncrypted || !equalInts(r.SecureBoot.Revoke, []int{1, 2}) {
				t.Errorf("recipe %+v", r)
			}
			img, err := image.Parse(w.App)
			if err != nil || img.App == nil || img.App.Version != "3.1.4" || img.App.SecureVersion != 5 || img.Header.ChipID != c.ID {
				t.Fatalf("app: %v %+v", err, img)
			}
			if _, err := secureboot.Verify(w.App, &k.PublicKey); err != nil {
				t.Errorf("app not signed by the key: %v", err)
			}
			if _, err := secureboot.Verify(w.Bootloader, &k.PublicKey); err != nil {
				t.Errorf("bootloader not signed by the key: %v", err)
			}
			tbl, err := partition.Parse(w.Table)
			if err != nil {
				t.Fatal(err)
			}
			if f, ok := tbl.Find(partition.TypeApp, partition.SubFactory); !ok || f.Offset != 0x10000 || int(f.Size) < len(w.App) {
				t.Errorf("factory partition %+v", f)
			}
			for _, f := range []string{"flasher_args.json", "app.bin", "bootloader/bootloader.bin", "partition_table/partition-table.bin"} {
				if _, err := os.Stat(filepath.Join(w.ReleaseDir, f)); err != nil {
					t.Error(err)
				}
			}
			st, _ := os.Stat(w.KeyPaths[0])
			if st.Mode().Perm() != 0o600 {
				t.Errorf("private key mode %v", st.Mode())
			}
			// Again without keys: the stored key is reused.
			w2, err := Create(context.Background(), Options{Dir: dir, Chip: c})
			if err != nil {
				t.Fatal(err)
			}
			if len(w2.Keys) != 1 || !w2.Keys[0].Equal(k) {
				t.Error("the second Create did not reuse the key")
			}
			if !bytes.Equal(w.Table, w2.Table) {
				t.Error("the table is not deterministic")
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
