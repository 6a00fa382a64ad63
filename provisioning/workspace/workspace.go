// Package workspace builds a self-contained provisioning workspace: Secure
// Boot v2 signing keys, a synthetic signed release laid out as an ESP-IDF
// build directory (flasher_args.json, bootloader, partition table, factory
// app), and a recipe that names them. `fuseline demo`, the provisioning
// tests, the Ginkgo specs and the benchmark start from one.
//
// The images come from esp/image.Synth (valid ESP images with an app
// descriptor, filler that compresses about 2:1 like real firmware) and are
// signed with esp/secureboot.Sign, as `espsecure sign_data --version 2`
// would (esp-security-facts.md §4, §6.4). Nothing here is fit for a real
// product: the demo keys sit in plain files.
package workspace

import (
	"context"
	"crypto"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"fuseline/esp/chip"
	"fuseline/esp/efuse"
	"fuseline/esp/image"
	"fuseline/esp/partition"
	"fuseline/esp/secureboot"
	"fuseline/provisioning/recipe"
)

// Options describe a workspace. The zero value (with Dir) is an ESP32-S3
// release 1.0.0, secure_version 1, one freshly generated key, recipe
// defaults.
type Options struct {
	Dir  string    // required; created if missing
	Chip chip.Chip // zero: chip.S3()
	// Keys are the Secure Boot v2 signing keys the recipe trusts (1 to 3).
	// nil: reuse Dir/keys/sb*.pem if present, else generate one.
	Keys []*rsa.PrivateKey
	// SignWith lists which Keys sign the images (indexes); nil: key 0.
	SignWith []int
	// Version and SecureVersion of the app; "" → "1.0.0".
	Version       string
	SecureVersion uint32
	// AppSize is the app's filler size in bytes; 0 → 256 KiB.
	AppSize int
	// Table is the partition table; zero: a factory partition big enough
	// for the app at 0x10000 (and nvs, otadata, phy_init before it, those
	// of them past the table's sector).
	Table *partition.Table
	// TableOffset is where flasher_args.json puts the partition table (the
	// bootloader's CONFIG_PARTITION_TABLE_OFFSET); 0: the chip's default.
	TableOffset uint32
	// BootloaderSize is the bootloader's filler size in bytes; 0 → 20 KiB.
	BootloaderSize int
	// ProjectName of the app; "" → "fuseline-demo".
	ProjectName string
	// Recipe fields written into recipe.yaml.
	Recipe RecipeOptions
}

// RecipeOptions are the recipe fields a workspace varies.
type RecipeOptions struct {
	Name      string               // "" → "demo-" + chip
	Scheme    chip.Encryption      // 0 → the chip's first scheme
	WriteMode recipe.WriteMode     // "" → host-encrypted
	Floor     int                  // anti-rollback floor
	Download  recipe.Download      // "" → secure (ESP32: disabled)
	Revoke    []int                // nil: every unused slot (with KeepUnusedSlotsOpen: none)
	BootCheck *bool                // nil: true
	Extra     string               // YAML appended verbatim (tests)
	Format    recipe.ReleaseFormat // "" → esp-idf
	// KeepUnusedSlotsOpen writes keep_unused_slots_open: true: the unused
	// digest slots Revoke does not name stay open.
	KeepUnusedSlotsOpen bool
}

// Workspace is what Create made.
type Workspace struct {
	Dir        string
	RecipePath string
	ReleaseDir string
	KeyPaths   []string // private keys (PEM)
	PubPaths   []string // public keys (PEM), what the recipe names
	Keys       []*rsa.PrivateKey
	// Files are the release images by role, as written (signed).
	Bootloader, Table, App []byte
}

// Layout inside Dir.
const (
	KeysDir    = "keys"
	ReleaseDir = "release"
	RecipeName = "recipe.yaml"
)

// Create writes the workspace. Running it again on the same Dir with the
// same options reuses the keys and rewrites the release and recipe.
func Create(ctx context.Context, o Options) (*Workspace, error) {
	if o.Dir == "" {
		return nil, errors.New("workspace: no directory given")
	}
	c := o.Chip
	if c.Name == "" {
		c = chip.S3()
	}
	w := &Workspace{Dir: o.Dir, RecipePath: filepath.Join(o.Dir, RecipeName), ReleaseDir: filepath.Join(o.Dir, ReleaseDir)}
	for _, d := range []string{o.Dir, filepath.Join(o.Dir, KeysDir), w.ReleaseDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("workspace: %w", err)
		}
	}
	keys, err := loadOrMakeKeys(o)
	if err != nil {
		return nil, err
	}
	w.Keys = keys
	for i, k := range keys {
		priv := filepath.Join(o.Dir, KeysDir, fmt.Sprintf("sb%d.pem", i))
		pub := filepath.Join(o.Dir, KeysDir, fmt.Sprintf("sb%d.pub.pem", i))
		if err := writeFile(priv, secureboot.MarshalPrivateKeyPEM(k), 0o600); err != nil {
			return nil, err
		}
		pb, err := secureboot.MarshalPublicKeyPEM(&k.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("workspace: %w", err)
		}
		if err := writeFile(pub, pb, 0o644); err != nil {
			return nil, err
		}
		w.KeyPaths, w.PubPaths = append(w.KeyPaths, priv), append(w.PubPaths, pub)
	}
	signWith := o.SignWith
	if signWith == nil {
		signWith = []int{0}
	}
	var signers []crypto.Signer
	for _, i := range signWith {
		if i < 0 || i >= len(keys) {
			return nil, fmt.Errorf("workspace: SignWith %d: there are %d keys", i, len(keys))
		}
		signers = append(signers, keys[i])
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := w.writeRelease(c, o, signers); err != nil {
		return nil, err
	}
	if err := w.writeRecipe(c, o); err != nil {
		return nil, err
	}
	return w, nil
}

func loadOrMakeKeys(o Options) ([]*rsa.PrivateKey, error) {
	if o.Keys != nil {
		if len(o.Keys) == 0 || len(o.Keys) > 3 {
			return nil, fmt.Errorf("workspace: %d keys, want 1 to 3", len(o.Keys))
		}
		return o.Keys, nil
	}
	var keys []*rsa.PrivateKey
	for i := 0; i < 3; i++ {
		b, err := os.ReadFile(filepath.Join(o.Dir, KeysDir, fmt.Sprintf("sb%d.pem", i)))
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("workspace: %w", err)
		}
		k, err := secureboot.ParsePrivateKeyPEM(b)
		if err != nil {
			return nil, fmt.Errorf("workspace: keys/sb%d.pem: %w", i, err)
		}
		keys = append(keys, k)
	}
	if len(keys) > 0 {
		return keys, nil
	}
	k, err := secureboot.GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("workspace: generate signing key: %w", err)
	}
	return []*rsa.PrivateKey{k}, nil
}

func writeFile(path string, b []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, b, mode); err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	return nil
}

// DefaultTable is the table a workspace uses for an app of appLen bytes
// (signed): nvs, otadata and phy_init, then one factory partition at
// 0x10000 rounded up to 64 KiB.
func DefaultTable(appLen int) partition.Table {
	size := (uint32(appLen) + 0xFFFF) &^ 0xFFFF
	if size < 0x100000 {
		size = 0x100000
	}
	return partition.Table{Entries: []partition.Entry{
		{Label: "nvs", Type: partition.TypeData, SubType: partition.SubNVS, Offset: 0x9000, Size: 0x4000},
		{Label: "otadata", Type: partition.TypeData, SubType: partition.SubOTAData, Offset: 0xD000, Size: 0x2000},
		{Label: "phy_init", Type: partition.TypeData, SubType: partition.SubPHY, Offset: 0xF000, Size: 0x1000},
		{Label: "factory", Type: partition.TypeApp, SubType: partition.SubFactory, Offset: 0x10000, Size: size},
	}}
}

func (w *Workspace) writeRelease(c chip.Chip, o Options, signers []crypto.Signer) error {
	tableOff := c.PartitionTableOffset
	if o.TableOffset != 0 {
		tableOff = o.TableOffset
	}
	boot, err := image.Synth(image.SynthOptions{Chip: c, Kind: image.Bootloader, Version: "1", Seed: 1, Size: o.BootloaderSize, PartitionTableOffset: tableOff})
	if err != nil {
		return fmt.Errorf("workspace: bootloader: %w", err)
	}
	version := o.Version
	if version == "" {
		version = "1.0.0"
	}
	app, err := image.Synth(image.SynthOptions{Chip: c, Kind: image.App, Version: version, SecureVersion: o.SecureVersion,
		ProjectName: o.ProjectName, Size: o.AppSize, Seed: 2})
	if err != nil {
		return fmt.Errorf("workspace: app: %w", err)
	}
	if w.Bootloader, err = secureboot.Sign(boot, signers...); err != nil {
		return fmt.Errorf("workspace: sign bootloader: %w", err)
	}
	if w.App, err = secureboot.Sign(app, signers...); err != nil {
		return fmt.Errorf("workspace: sign app: %w", err)
	}
	t := DefaultTable(len(w.App))
	if o.Table != nil {
		t = *o.Table
	} else {
		// Nothing may start in or before the table's sector.
		t.Entries = slices.DeleteFunc(t.Entries, func(e partition.Entry) bool { return e.Offset < tableOff+0x1000 })
	}
	if w.Table, err = t.MarshalBinary(); err != nil {
		return fmt.Errorf("workspace: partition table: %w", err)
	}
	factory, ok := t.Find(partition.TypeApp, partition.SubFactory)
	if !ok {
		return errors.New("workspace: the partition table has no factory app")
	}
	files := map[string][]byte{
		"bootloader/bootloader.bin":           w.Bootloader,
		"partition_table/partition-table.bin": w.Table,
		"app.bin":                             w.App,
	}
	for name, b := range files {
		p := filepath.Join(w.ReleaseDir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("workspace: %w", err)
		}
		if err := writeFile(p, b, 0o644); err != nil {
			return err
		}
	}
	fa := map[string]any{
		"write_flash_args": []string{"--flash_mode", "dio", "--flash_size", "4MB", "--flash_freq", "80m"},
		"flash_settings":   map[string]string{"flash_mode": "dio", "flash_size": "4MB", "flash_freq": "80m"},
		"flash_files": map[string]string{
			fmt.Sprintf("0x%x", c.BootloaderOffset): "bootloader/bootloader.bin",
			fmt.Sprintf("0x%x", tableOff):           "partition_table/partition-table.bin",
			fmt.Sprintf("0x%x", factory.Offset):     "app.bin",
		},
		"bootloader":         map[string]string{"offset": fmt.Sprintf("0x%x", c.BootloaderOffset), "file": "bootloader/bootloader.bin", "encrypted": "false"},
		"app":                map[string]string{"offset": fmt.Sprintf("0x%x", factory.Offset), "file": "app.bin", "encrypted": "false"},
		"partition-table":    map[string]string{"offset": fmt.Sprintf("0x%x", tableOff), "file": "partition_table/partition-table.bin", "encrypted": "false"},
		"extra_esptool_args": map[string]any{"after": "hard_reset", "before": "default_reset", "stub": true, "chip": c.Arg()},
	}
	b, err := json.MarshalIndent(fa, "", "    ")
	if err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	return writeFile(filepath.Join(w.ReleaseDir, "flasher_args.json"), append(b, '\n'), 0o644)
}

func (w *Workspace) writeRecipe(c chip.Chip, o Options) error {
	ro := o.Recipe
	name := ro.Name
	if name == "" {
		name = "demo-" + c.Arg()
	}
	scheme := ro.Scheme
	if scheme == 0 {
		scheme = c.Encryptions[0]
	}
	mode := ro.WriteMode
	if mode == "" {
		mode = recipe.HostEncrypted
	}
	download := ro.Download
	if download == "" {
		download = recipe.DownloadSecure
		if c.ID == chip.ESP32 {
			download = recipe.DownloadDisabled
		}
	}
	format := ro.Format
	if format == "" {
		format = recipe.FormatESPIDF
	}
	revoke := ro.Revoke
	if revoke == nil && !ro.KeepUnusedSlotsOpen {
		// Spelled out (the recipe's default), so the demo recipe shows it.
		for s := len(w.Keys); s < c.SecureBootDigests && efuse.RevokeField(c.ID, s) != ""; s++ {
			revoke = append(revoke, s)
		}
	}
	var keys []string
	for _, p := range w.PubPaths {
		rel, err := filepath.Rel(w.Dir, p)
		if err != nil {
			return fmt.Errorf("workspace: %w", err)
		}
		keys = append(keys, filepath.ToSlash(rel))
	}
	var rv []string
	for _, s := range revoke {
		rv = append(rv, fmt.Sprint(s))
	}
	boot := true
	if ro.BootCheck != nil {
		boot = *ro.BootCheck
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Fuseline recipe written by `fuseline demo` (package provisioning/workspace).\n")
	fmt.Fprintf(&b, "version: 1\nname: %s\nchip: %s\n", name, c.Arg())
	fmt.Fprintf(&b, "release:\n  path: %s\n  format: %s\n", ReleaseDir, format)
	fmt.Fprintf(&b, "secure_boot:\n  keys: [%s]\n  revoke: [%s]\n", strings.Join(keys, ", "), strings.Join(rv, ", "))
	if ro.KeepUnusedSlotsOpen {
		b.WriteString("  keep_unused_slots_open: true\n")
	}
	fmt.Fprintf(&b, "flash_encryption:\n  scheme: %s\n  mode: release\n", scheme)
	fmt.Fprintf(&b, "anti_rollback:\n  floor: %d\n", ro.Floor)
	fmt.Fprintf(&b, "lockdown:\n  jtag: true\n  direct_boot: true\n  download_caches: true\n  manual_encryption: true\n  download: %s\n", download)
	fmt.Fprintf(&b, "write_mode: %s\n", mode)
	fmt.Fprintf(&b, "verify:\n  md5: true\n  decrypt_and_verify: true\n  spi_probe: false\n  boot_check: %v\n", boot)
	b.WriteString(ro.Extra)
	return writeFile(w.RecipePath, []byte(b.String()), 0o644)
}
