package provisioning

import (
	"testing"

	"fuseline/esp/chip"
	"fuseline/esp/efuse"
	"fuseline/reports/evidence"
)

// The evidence names the burned flash key's digest for a read-protected
// block only where the final read shows that block as the key's (its
// purpose): a block whose purpose reads otherwise does not hold it.
func TestSnapshotBurnedKeyNeedsItsPurpose(t *testing.T) {
	t.Parallel()
	r := testRecipe(t, s3Recipe, 1)
	kb := keyBlocks(t, r.FlashEncryption.Scheme, fixedKey(r.FlashEncryption.Scheme))
	fe := fePurposes(chip.ESP32S3, r.FlashEncryption.Scheme)
	for _, tc := range []struct {
		name    string
		purpose efuse.Purpose
		want    string
	}{
		{"purpose is the key's", fe[0], evidence.SourceBurned},
		{"purpose reads USER", efuse.PurposeUser, evidence.SourceReadback},
		{"purpose is another key's", efuse.PurposeHMACUp, evidence.SourceReadback},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			phys := blank(t, chip.ESP32S3)
			for f, v := range map[string]uint64{"RD_DIS": 1, "KEY_PURPOSE_0": uint64(tc.purpose)} {
				if err := phys.Set(f, v); err != nil {
					t.Fatal(err)
				}
			}
			x := &run{r: r, kb: kb, plan: &Plan{Assignment: Assignment{FlashKey: []int{4}}}}
			s, err := x.snapshot(view(t, phys), true)
			if err != nil {
				t.Fatal(err)
			}
			k := s.KeyBlocks[0]
			if k.Block != "BLOCK_KEY0" || !k.ReadProtected || k.Source != tc.want {
				t.Fatalf("key block %s read-protected %v source %s, want %s", k.Block, k.ReadProtected, k.Source, tc.want)
			}
			if want := evidence.DigestKey(kb[0][:]); (k.Digest == want) != (tc.want == evidence.SourceBurned) {
				t.Errorf("digest %s, burned key's %s", k.Digest, want)
			}
		})
	}
}
