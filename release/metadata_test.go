package release_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fuseline/esp/chip"
	"fuseline/esp/image"
	"fuseline/release"
	"fuseline/release/releasetest"
)

// Create refuses a manifest its images contradict (the app of
// releasetest.Options is an esp32s3 app 1.2.0, secure_version 1), naming
// the field, the image and both values in one line, and writes no
// manifest; fields left unset are read from the images.
func TestCreateMetadata(t *testing.T) {
	t.Parallel()
	sv := func(v uint32) *uint32 { return &v }
	for _, tc := range []struct {
		name string
		edit func(o *release.CreateOptions)
		want string // error text; "" for success
		// what the manifest must say on success
		chip, version string
		secure        uint32
	}{
		{"as given", func(o *release.CreateOptions) {}, "", "esp32s3", "1.2.0", 1},
		{"v prefix", func(o *release.CreateOptions) { o.Version = "v1.2.0" }, "", "esp32s3", "v1.2.0", 1},
		{"from the images", func(o *release.CreateOptions) { o.Chip, o.Version, o.SecureVersion = "", "", nil }, "", "esp32s3", "1.2.0", 1},
		{"version", func(o *release.CreateOptions) { o.Version = "9.9.9" },
			`release: manifest version "9.9.9", but app.bin's app descriptor version is "1.2.0"`, "", "", 0},
		{"secure_version", func(o *release.CreateOptions) { o.SecureVersion = sv(3) },
			"release: manifest secure_version 3, but app.bin's app descriptor secure_version is 1", "", "", 0},
		{"secure_version 0 given", func(o *release.CreateOptions) { o.SecureVersion = sv(0) },
			"manifest secure_version 0, but app.bin's app descriptor secure_version is 1", "", "", 0},
		{"chip", func(o *release.CreateOptions) { o.Chip = "esp32c3" },
			"release: manifest chip esp32c3, but bootloader.bin's image header chip_id is 0x0009 (esp32s3)", "", "", 0},
		{"app is no ESP image", func(o *release.CreateOptions) {
			os.WriteFile(o.Files[3].Source, releasetest.Image(150000, 7), 0o644)
		}, "app.bin's content is not an ESP image", "", "", 0},
		{"app without descriptor", func(o *release.CreateOptions) {
			b, _ := image.Synth(image.SynthOptions{Chip: chip.S3(), Kind: image.Bootloader})
			os.WriteFile(o.Files[3].Source, b, 0o644)
		}, "app.bin's segment 0 is without an app descriptor", "", "", 0},
		{"no app to read the version from", func(o *release.CreateOptions) { o.Version = ""; o.Files = o.Files[:3] },
			"no version given, and no app image", "", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src, dir := t.TempDir(), filepath.Join(t.TempDir(), "rel")
			opts, err := releasetest.Options(src, "1.2.0", 1)
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(&opts)
			m, err := release.Create(context.Background(), dir, opts)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m.Chip != tc.chip || m.Version != tc.version || m.SecureVersion != tc.secure {
					t.Fatalf("manifest %s %s %d, want %s %s %d", m.Chip, m.Version, m.SecureVersion, tc.chip, tc.version, tc.secure)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want one line with %q", err, tc.want)
			}
			if _, serr := os.Stat(filepath.Join(dir, release.ManifestName)); serr == nil {
				t.Fatal("a manifest was written")
			}
		})
	}
}

// Verify refuses a signed release whose manifest its images contradict:
// the signer vouched for the bytes, not for a version the app does not
// carry.
func TestVerifyMetadata(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(*release.Manifest)
		want string
	}{
		{"version", func(m *release.Manifest) { m.Version = "9.9.9" },
			`release: refused (metadata): manifest version "9.9.9", but app.bin's app descriptor version is "1.2.0"`},
		{"secure_version", func(m *release.Manifest) { m.SecureVersion = 3 },
			"release: refused (metadata): manifest secure_version 3, but app.bin's app descriptor secure_version is 2"},
		{"chip", func(m *release.Manifest) { m.Chip = "esp32c3" },
			"release: refused (metadata): manifest chip esp32c3, but bootloader.bin's image header chip_id is 0x0009 (esp32s3)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFx(t)
			f.write()
			p := filepath.Join(f.dir, release.ManifestName)
			b, _ := os.ReadFile(p)
			m, err := release.ParseManifest(b)
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(m)
			if b, err = m.Marshal(); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(p, b, 0o644)
			if err := release.SignDir(context.Background(), f.dir, f.signer); err != nil {
				t.Fatal(err)
			}
			_, err = release.Verify(context.Background(), f.dir, f.pol)
			re, ok := errors.AsType[*release.RefusedError](err)
			if _, meta := errors.AsType[*release.MetadataError](err); !ok || !meta || re.Reason != release.ReasonMetadata || err.Error() != tc.want {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
