package provisioning

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"fuseline/esp/chip"
	"fuseline/esp/image"

	"fuseline/esp/secureboot"
	"fuseline/provisioning/recipe"
	"fuseline/provisioning/workspace"
	"fuseline/release"
	"fuseline/release/releasetest"
)

func TestIntakeESPIDF(t *testing.T) {
	t.Parallel()
	_, r := newWorkspace(t, workspace.Options{Version: "2.1.0", SecureVersion: 3, Recipe: workspace.RecipeOptions{Floor: 2}})
	rel, err := Intake(context.Background(), r, IntakeOptions{})
	if err != nil {
		t.Fatalf("Intake: %v", err)
	}
	if rel.Format != recipe.FormatESPIDF || rel.Version != "2.1.0" || rel.SecureVersion != 3 || rel.MinSecureVersion != 3 {
		t.Errorf("release %+v", rel)
	}
	roles := map[string]bool{}
	for _, im := range rel.Images {
		roles[im.Role] = true
		if !im.Encrypt {
			t.Errorf("%s not marked encrypted", im.Role)
		}
	}
	for _, want := range []string{"bootloader", "partition-table", "app/factory"} {
		if !roles[want] {
			t.Errorf("no %s image: %v", want, roles)
		}
	}
	var sv bool
	for _, c := range rel.Checks {
		if strings.HasPrefix(c.Name, "secure-version:") && c.Verified {
			sv = true
		}
	}
	if !sv {
		t.Error("no secure-version check recorded")
	}
}

// mutate rewrites one file of a workspace's release.
func mutate(t *testing.T, ws *workspace.Workspace, file string, f func([]byte) []byte) {
	t.Helper()
	p := filepath.Join(ws.ReleaseDir, file)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, f(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestIntakeRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		opts   workspace.Options
		mutate func(t *testing.T, ws *workspace.Workspace)
		file   string
		want   string
		cause  error
	}{
		{"tampered app", workspace.Options{}, func(t *testing.T, ws *workspace.Workspace) {
			mutate(t, ws, "app.bin", func(b []byte) []byte {
				// Change a filler byte in the last segment and fix the
				// image checksum and SHA-256 so only the signature notices.
				img, err := image.Parse(b)
				if err != nil {
					t.Fatal(err)
				}
				seg := img.Segments[len(img.Segments)-1]
				b[seg.DataOffset()+100] ^= 0x01
				img2, err := image.ParseUnverified(b)
				if err != nil {
					t.Fatal(err)
				}
				b[img2.ChecksumOffset] = img2.ComputedChecksum()
				if img2.Header.HashAppended {
					img3, _ := image.ParseUnverified(b)
					h := img3.ComputedSHA256()
					copy(b[img3.ChecksumOffset+1:], h[:])
				}
				return b
			})
		}, "app.bin", "tampered", secureboot.ErrBadSignature},
		{"unsigned bootloader", workspace.Options{}, func(t *testing.T, ws *workspace.Workspace) {
			mutate(t, ws, "bootloader/bootloader.bin", func(b []byte) []byte {
				content, _, err := secureboot.Split(b)
				if err != nil {
					t.Fatal(err)
				}
				return content
			})
		}, "bootloader/bootloader.bin", "not signed", secureboot.ErrNoSignature},
		{"signed by a key not in the recipe", workspace.Options{SignWith: []int{1}}, func(t *testing.T, ws *workspace.Workspace) {
			// The recipe trusts key 0 only.
			b, _ := os.ReadFile(ws.RecipePath)
			s := strings.Replace(string(b), "keys: [keys/sb0.pub.pem, keys/sb1.pub.pem]", "keys: [keys/sb0.pub.pem]", 1)
			s = strings.Replace(s, "revoke: [2]", "revoke: [1, 2]", 1) // slot 1 is unused now
			os.WriteFile(ws.RecipePath, []byte(s), 0o644)
		}, "bootloader/bootloader.bin", "signed by a key that is not in the recipe", secureboot.ErrUnknownKey},
		{"secure version below the floor", workspace.Options{SecureVersion: 1, Recipe: workspace.RecipeOptions{Floor: 2}}, nil, "app.bin", "below the recipe's anti-rollback floor 2", nil},
		{"built for another chip", workspace.Options{}, func(t *testing.T, ws *workspace.Workspace) {
			c3app, err := image.Synth(image.SynthOptions{Chip: chip.C3(), Version: "1.0.0"})
			if err != nil {
				t.Fatal(err)
			}
			signed, err := secureboot.Sign(c3app, ws.Keys[0])
			if err != nil {
				t.Fatal(err)
			}
			mutate(t, ws, "app.bin", func([]byte) []byte { return signed })
		}, "app.bin", "built for esp32c3, the recipe is for esp32s3", nil},
		{"flasher_args for another chip", workspace.Options{}, func(t *testing.T, ws *workspace.Workspace) {
			mutate(t, ws, FlasherArgsName, func(b []byte) []byte {
				return []byte(strings.Replace(string(b), `"chip": "esp32s3"`, `"chip": "esp32c3"`, 1))
			})
		}, FlasherArgsName, "the build is for esp32c3", nil},
		{"no partition table", workspace.Options{}, func(t *testing.T, ws *workspace.Workspace) {
			mutate(t, ws, FlasherArgsName, func(b []byte) []byte {
				var m map[string]any
				json.Unmarshal(b, &m)
				delete(m["flash_files"].(map[string]any), "0x8000")
				out, _ := json.Marshal(m)
				return out
			})
		}, "", "no partition table", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := tc.opts
			o.Keys = testKeys(t)
			if o.SignWith == nil {
				o.SignWith = []int{0}
			}
			ws, _ := newWorkspace(t, o)
			if tc.mutate != nil {
				tc.mutate(t, ws)
			}
			r, err := recipe.Load(ws.RecipePath)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Intake(context.Background(), r, IntakeOptions{})
			if !errors.Is(err, ErrIntake) {
				t.Fatalf("err = %v, want ErrIntake", err)
			}
			ie, _ := errors.AsType[*IntakeError](err)
			if ie.File != tc.file || !strings.Contains(ie.Reason, tc.want) {
				t.Errorf("refusal %q / %q, want %q / %q", ie.File, ie.Reason, tc.file, tc.want)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Errorf("err %v does not wrap %v", err, tc.cause)
			}
		})
	}
}

// writeSignedRelease makes a Fuseline signed release (manifest + CMS) of a
// workspace's images, and returns the trust anchor PEM path.
func writeSignedRelease(t *testing.T, ws *workspace.Workspace, dir string) string {
	return writeEditedRelease(t, ws, dir, nil)
}

// writeEditedRelease is writeSignedRelease with the manifest changed by
// edit before it is signed (what release.Create would refuse to write).
func writeEditedRelease(t *testing.T, ws *workspace.Workspace, dir string, edit func(*release.Manifest)) string {
	t.Helper()
	pki, err := releasetest.NewPKI(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	boot, _, _ := secureboot.Split(ws.Bootloader)
	app, _, _ := secureboot.Split(ws.App)
	opts := release.CreateOptions{Product: "thermo", Chip: "esp32s3", Version: "1.0.0",
		SecureBoot: []crypto.Signer{ws.Keys[0]},
		Files: []release.FileSpec{
			{Role: release.RoleBootloader, Offset: 0, Source: write("bootloader.bin", boot)},
			{Role: release.RolePartitionTable, Offset: 0x8000, Source: write("partition-table.bin", ws.Table)},
			{Role: release.RoleFactory, Offset: 0x10000, Source: write("app.bin", app)},
		}}
	ctx := context.Background()
	m, err := release.Create(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(m)
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, release.ManifestName), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := release.SignDir(ctx, dir, pki.ReleaseSigner(pki.Signer)); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(filepath.Dir(dir), "root.pem")
	if err := os.WriteFile(root, releasetest.CertPEM(pki.Root.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestIntakeSignedRelease(t *testing.T) {
	t.Parallel()
	ws, _ := newWorkspace(t, workspace.Options{})
	rdir := filepath.Join(ws.Dir, "signed")
	root := writeSignedRelease(t, ws, rdir)
	y := `chip: esp32s3
release: {path: signed, trust: [` + root + `]}
secure_boot: {keys: [keys/sb0.pub.pem]}
flash_encryption: {scheme: xts-aes-128}
`
	rp := filepath.Join(ws.Dir, "signed.yaml")
	os.WriteFile(rp, []byte(y), 0o644)
	r, err := recipe.Load(rp)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := Intake(context.Background(), r, IntakeOptions{StateDir: t.TempDir()})
	if err != nil {
		t.Fatalf("Intake: %v", err)
	}
	if rel.Format != recipe.FormatSigned || rel.Product != "thermo" || rel.ManifestSHA256 == [32]byte{} || len(rel.Images) != 3 {
		t.Fatalf("release %+v", rel)
	}
	// A file changed after signing is refused.
	p := filepath.Join(rdir, "app.bin")
	b, _ := os.ReadFile(p)
	b[5000] ^= 1
	os.WriteFile(p, b, 0o644)
	if _, err := Intake(context.Background(), r, IntakeOptions{}); !errors.Is(err, ErrIntake) {
		t.Fatalf("changed file: %v", err)
	}
	// An untrusted root is refused.
	other, _ := releasetest.NewPKI(time.Now())
	os.WriteFile(root, releasetest.CertPEM(other.Root.Cert), 0o644)
	r, _ = recipe.Load(rp)
	if _, err := Intake(context.Background(), r, IntakeOptions{}); !errors.Is(err, ErrIntake) {
		t.Fatalf("untrusted: %v", err)
	}
}

// A signed release whose manifest names another chip, version or
// secure_version than its images say is refused at intake, naming the
// field, the image and both values; nothing of it reaches a board.
func TestIntakeSignedMetadataMismatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(*release.Manifest)
		want string
	}{
		{"version", func(m *release.Manifest) { m.Version = "9.9.9" },
			`manifest version "9.9.9", but app.bin's app descriptor version is "1.0.0"`},
		{"secure_version", func(m *release.Manifest) { m.SecureVersion = 3 },
			`manifest secure_version 3, but app.bin's app descriptor secure_version is 0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ws, _ := newWorkspace(t, workspace.Options{})
			root := writeEditedRelease(t, ws, filepath.Join(ws.Dir, "signed"), tc.edit)
			y := "chip: esp32s3\nrelease: {path: signed, trust: [" + root + "]}\nsecure_boot: {keys: [keys/sb0.pub.pem]}\nflash_encryption: {scheme: xts-aes-128}\n"
			rp := filepath.Join(ws.Dir, "signed.yaml")
			os.WriteFile(rp, []byte(y), 0o644)
			r, err := recipe.Load(rp)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Intake(context.Background(), r, IntakeOptions{})
			if _, ok := errors.AsType[*release.MetadataError](err); !ok || !errors.Is(err, ErrIntake) ||
				!strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want an intake refusal with %q", err, tc.want)
			}
		})
	}
}

func TestParseFlasherArgs(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("testdata", "flasher_args.json"))
	if err != nil {
		t.Fatal(err)
	}
	ff, err := parseFlasherArgs(b)
	if err != nil {
		t.Fatal(err)
	}
	if ff.Chip != "esp32s3" || len(ff.Offsets) != 4 || ff.Files[0x10000] != "hello_world.bin" || ff.Roles["ota_data_initial.bin"] != "otadata" {
		t.Fatalf("%+v", ff)
	}
	for _, tc := range []struct{ name, json, want string }{
		{"escape", `{"flash_files": {"0x0": "../../etc/passwd"}}`, "not a file inside the build directory"},
		{"absolute", `{"flash_files": {"0x0": "/etc/passwd"}}`, "not a file inside the build directory"},
		{"bad offset", `{"flash_files": {"zero": "a.bin"}}`, `offset "zero" is not a number`},
		{"empty", `{"flash_files": {}}`, "flash_files is empty"},
		{"twice", `{"flash_files": {"0x0": "a.bin", "0": "b.bin"}}`, "names offset 0x0 twice"},
		{"syntax", `{"flash_files": `, "not valid JSON (near byte"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlasherArgs([]byte(tc.json))
			if ie, ok := errors.AsType[*IntakeError](err); !ok || !strings.Contains(ie.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzFlasherArgs(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "flasher_args.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"flash_files": {"0x0": "a/../b.bin"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ff, err := parseFlasherArgs(b)
		if err != nil {
			if _, ok := errors.AsType[*IntakeError](err); !ok {
				t.Fatalf("error %v is not an *IntakeError", err)
			}
			return
		}
		if len(ff.Offsets) != len(ff.Files) || !slices.IsSorted(ff.Offsets) {
			t.Fatalf("offsets %v files %v", ff.Offsets, ff.Files)
		}
		for _, o := range ff.Offsets {
			p := ff.Files[o]
			if p == "" || strings.HasPrefix(p, "/") || p == ".." || strings.HasPrefix(p, "../") || filepath.Clean(p) != filepath.FromSlash(p) {
				t.Fatalf("file %q escapes or is not clean", p)
			}
		}
	})
}
