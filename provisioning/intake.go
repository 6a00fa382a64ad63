package provisioning

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"fuseline/esp/chip"
	"fuseline/esp/image"
	"fuseline/esp/partition"
	"fuseline/esp/secureboot"
	"fuseline/flasher"
	"fuseline/internal/inputfile"
	"fuseline/provisioning/recipe"
	"fuseline/release"
	"fuseline/reports/evidence"
)

// MaxImageSize bounds one release file read at intake (a flash is at most
// 16 MiB on the supported boards).
const MaxImageSize = 16 << 20

// FlasherArgsName is the file ESP-IDF writes into its build directory to
// say which file goes where.
const FlasherArgsName = "flasher_args.json"

// Image is one region of the release to write to flash: the authenticated
// plaintext (signed images include their signature sector).
type Image struct {
	Role   string // "bootloader", "partition-table", "app/factory", "app/ota_0", "otadata", "data/nvs", …
	File   string // path in the release, slash-separated
	Offset uint32
	Data   []byte
	SHA256 [32]byte
	// Encrypt: under flash encryption this region is ciphertext (the
	// bootloader, the table, apps, otadata, nvs_keys and every partition
	// flagged encrypted; partition.Table.Encrypted).
	Encrypt bool
	// Exec: an ESP image (bootloader or app) that must carry a Secure Boot v2
	// signature by a recipe key.
	Exec bool
	// App is the app descriptor of an app image.
	App *image.AppDesc
	// KeyDigests are the Secure Boot v2 key digests of the image's signature
	// blocks, in block order.
	KeyDigests [][32]byte

	// plain is the image as a chip-encrypted write sends it (padded to 16
	// bytes) and compressed, made once for every board; nil for an Image
	// not made by Intake.
	plain *deflatedImage
}

// deflatedImage is an image's chip-encrypted write payload, compressed
// once (flasher.Deflate of 4 MiB takes about a quarter second).
type deflatedImage struct {
	once sync.Once
	z    []byte
	err  error
}

// chipEncrypted returns the plaintext a chip-encrypted write sends and,
// when Intake made the image, its compressed form, computed on first use
// (Run starts that while it burns eFuses).
func (im *Image) chipEncrypted() (data, deflated []byte, err error) {
	data = padTo(im.Data, 16)
	if im.plain == nil {
		return data, nil, nil
	}
	im.plain.once.Do(func() { im.plain.z, im.plain.err = flasher.Deflate(data) })
	return data, im.plain.z, im.plain.err
}

// Release is a release that passed intake: every image authenticated and
// checked against the recipe. Nothing of it changes afterwards.
type Release struct {
	Dir    string
	Format recipe.ReleaseFormat
	Chip   chip.Chip
	// Product, Version and SecureVersion come from the signed manifest, or
	// for an ESP-IDF build from the factory (or first) app's descriptor.
	Product       string
	Version       string
	SecureVersion uint32
	// MinSecureVersion is the lowest secure_version of the release's apps.
	MinSecureVersion uint32
	// ManifestSHA256 is the SHA-256 of the signed manifest; zero for an
	// ESP-IDF build directory.
	ManifestSHA256 [32]byte
	Images         []Image
	Table          partition.Table
	// TableOffset is where the partition table is written, and so the
	// CONFIG_PARTITION_TABLE_OFFSET the release's bootloader was built
	// with (checkLayout): chip.PartitionTableOffset unless the release
	// says otherwise. A virtual board boots with it.
	TableOffset uint32
	// Checks are the intake verifications, for the evidence record.
	Checks []evidence.Check
	// Subdevices are the images for devices behind the main board (files of
	// role subdevice of a signed release), in manifest order. Intake
	// authenticated them (streamed against the signed manifest) without
	// keeping their bytes; Run streams them again, authenticated, from the
	// release to each device.
	Subdevices []SubdeviceImage

	// policy is what authenticated the signed release, for Run to open it
	// again for the sub-device images.
	policy release.Policy
}

// prepareChipEncrypted compresses every encrypted image's chip-encrypted
// payload (each once, however many runs ask).
func (r *Release) prepareChipEncrypted() {
	for i := range r.Images {
		if r.Images[i].Encrypt {
			_, _, _ = r.Images[i].chipEncrypted()
		}
	}
}

// SubdeviceImage is one sub-device image of a signed release.
type SubdeviceImage struct {
	Device string // the recipe's (and manifest's) sub-device name
	File   string // path in the release, slash-separated
	Offset uint32 // flash offset on the sub-device
	Size   int64
	SHA256 [32]byte // from the signed manifest; the image matched it at intake
}

// Bytes is the total size of the release's images.
func (r *Release) Bytes() int64 {
	var n int64
	for _, im := range r.Images {
		n += int64(len(im.Data))
	}
	return n
}

// IntakeOptions are the station's side of intake. The zero value works.
type IntakeOptions struct {
	// StateDir is the station's anti-rollback state for signed releases
	// (release.State); "" skips the station-wide rollback check.
	StateDir string
	// Now is the clock for certificate validity; nil means time.Now.
	Now func() time.Time
}

// Intake loads the recipe's release and authenticates it before any board
// is touched (design.md step 1): for a signed release the manifest's CMS
// signature against the recipe's trust anchors and every image's hash; for
// every bootloader and app image its Secure Boot v2 signature against the
// recipe's keys, that it is built for the recipe's chip, and each app's
// secure_version against the anti-rollback floor. A refusal is an
// *IntakeError (wrapping ErrIntake) naming the file.
func Intake(ctx context.Context, r *recipe.Recipe, opts IntakeOptions) (*Release, error) {
	if len(r.SecureBoot.PublicKeys) == 0 {
		return nil, errors.New("provisioning: intake: the recipe's public keys are not loaded (recipe.Load)")
	}
	dir := r.Path(r.Release.Path)
	format := r.Release.Format
	if format == recipe.FormatAuto || format == "" {
		switch {
		case exists(filepath.Join(dir, release.ManifestName)):
			format = recipe.FormatSigned
		case exists(filepath.Join(dir, FlasherArgsName)):
			format = recipe.FormatESPIDF
		default:
			return nil, &IntakeError{Reason: fmt.Sprintf("%s has neither %s (signed release) nor %s (ESP-IDF build)", dir, release.ManifestName, FlasherArgsName)}
		}
	}
	rel := &Release{Dir: dir, Format: format, Chip: r.Chip}
	var err error
	switch format {
	case recipe.FormatSigned:
		err = intakeSigned(ctx, r, rel, opts)
	case recipe.FormatESPIDF:
		err = intakeESPIDF(r, rel)
	default:
		err = fmt.Errorf("provisioning: unknown release format %q", format)
	}
	if err != nil {
		return nil, err
	}
	if err := checkImages(r, rel); err != nil {
		return nil, err
	}
	return rel, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// flasherArgs is the part of ESP-IDF's flasher_args.json intake reads.
type flasherArgs struct {
	FlashFiles map[string]string `json:"flash_files"`
	Extra      struct {
		Chip string `json:"chip"`
	} `json:"extra_esptool_args"`
	Bootloader     *flashFile `json:"bootloader"`
	App            *flashFile `json:"app"`
	PartitionTable *flashFile `json:"partition-table"`
	OTAData        *flashFile `json:"otadata"`
}

type flashFile struct {
	Offset string `json:"offset"`
	File   string `json:"file"`
}

func parseOffset(s string) (uint32, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 0, 32)
	if err != nil {
		return 0, fmt.Errorf("offset %q is not a number", s)
	}
	return uint32(v), nil
}

// flashFiles is what flasher_args.json says: the file for each flash
// offset (in offset order), the role ESP-IDF gave some of them, and the
// chip the build is for ("" if not stated).
type flashFiles struct {
	Offsets []uint32
	Files   map[uint32]string
	Roles   map[string]string // file → "bootloader", "app", "partition-table", "otadata"
	Chip    string
}

// parseFlasherArgs reads ESP-IDF's flasher_args.json. Errors are
// *IntakeError naming the file.
func parseFlasherArgs(b []byte) (*flashFiles, error) {
	var fa flasherArgs
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&fa); err != nil {
		off := dec.InputOffset()
		return nil, &IntakeError{File: FlasherArgsName, Reason: fmt.Sprintf("not valid JSON (near byte %d)", off), Err: err}
	}
	if len(fa.FlashFiles) == 0 {
		return nil, &IntakeError{File: FlasherArgsName, Reason: "flash_files is empty"}
	}
	ff := &flashFiles{Files: map[uint32]string{}, Roles: map[string]string{}, Chip: fa.Extra.Chip}
	for role, f := range map[string]*flashFile{"bootloader": fa.Bootloader, "app": fa.App, "partition-table": fa.PartitionTable, "otadata": fa.OTAData} {
		if f != nil {
			ff.Roles[path.Clean(filepath.ToSlash(f.File))] = role
		}
	}
	for o, f := range fa.FlashFiles {
		off, err := parseOffset(o)
		if err != nil {
			return nil, &IntakeError{File: FlasherArgsName, Reason: "flash_files: " + err.Error()}
		}
		if _, dup := ff.Files[off]; dup {
			return nil, &IntakeError{File: FlasherArgsName, Reason: fmt.Sprintf("flash_files names offset 0x%x twice", off)}
		}
		f = path.Clean(filepath.ToSlash(f))
		if f == "." || strings.HasPrefix(f, "../") || f == ".." || path.IsAbs(f) || strings.ContainsRune(f, 0) {
			return nil, &IntakeError{File: FlasherArgsName, Reason: fmt.Sprintf("flash_files: %q is not a file inside the build directory", f)}
		}
		ff.Files[off] = f
		ff.Offsets = append(ff.Offsets, off)
	}
	slices.Sort(ff.Offsets)
	return ff, nil
}

func intakeESPIDF(r *recipe.Recipe, rel *Release) error {
	path := filepath.Join(rel.Dir, FlasherArgsName)
	b, err := readLimited(path, 1<<20)
	if err != nil {
		return &IntakeError{File: FlasherArgsName, Reason: "cannot read it", Err: err}
	}
	ff, err := parseFlasherArgs(b)
	if err != nil {
		return err
	}
	if ff.Chip != "" && ff.Chip != r.Chip.Arg() {
		return &IntakeError{File: FlasherArgsName, Reason: fmt.Sprintf("the build is for %s, the recipe for %s", ff.Chip, r.Chip.Arg())}
	}
	offs, files, roles := ff.Offsets, ff.Files, ff.Roles
	for _, off := range offs {
		f := files[off]
		data, err := readLimited(filepath.Join(rel.Dir, filepath.FromSlash(f)), MaxImageSize)
		if err != nil {
			return &IntakeError{File: f, Reason: "cannot read it", Err: err}
		}
		role := roles[f]
		switch {
		case role == "app":
			role = "app/factory" // refined from the partition table below
		case role == "":
			role = "data"
		}
		rel.Images = append(rel.Images, Image{Role: role, File: f, Offset: off, Data: data, SHA256: sha256.Sum256(data), plain: new(deflatedImage)})
		rel.Checks = append(rel.Checks, evidence.Check{
			Name:    fmt.Sprintf("%s:%s", evidence.CheckImageHash, f),
			What:    "image SHA-256 against a signed manifest",
			Because: "an ESP-IDF build directory carries no signed manifest; the Secure Boot signatures authenticate its images",
		})
	}
	rel.Checks = append(rel.Checks, evidence.Check{
		Name: evidence.CheckManifestSignature, What: "release manifest CMS signature",
		Because: "an ESP-IDF build directory has no manifest to sign",
	})
	return nil
}

// readLimited reads a build file: a regular file only (a FIFO or device is
// refused, never waited on), at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	return inputfile.ReadFile(context.Background(), path, limit)
}

func intakeSigned(ctx context.Context, r *recipe.Recipe, rel *Release, opts IntakeOptions) error {
	roots := x509.NewCertPool()
	for _, c := range r.Release.TrustCerts {
		roots.AddCert(c)
	}
	pol := release.Policy{
		Roots: roots, CRLs: r.Release.CRLList, SignerNames: r.Release.Signers,
		StateDir: opts.StateDir, Now: opts.Now,
	}
	if len(r.Release.TrustCerts) == 0 {
		return &IntakeError{Reason: "the recipe names no trust anchor for a signed release (release.trust)"}
	}
	sr, err := release.Open(ctx, rel.Dir, pol)
	if err != nil {
		return &IntakeError{File: release.ManifestName, Reason: "the release manifest is not accepted", Err: err}
	}
	defer sr.Close()
	m := sr.Manifest()
	if m.Chip != r.Chip.Arg() {
		return &IntakeError{File: release.ManifestName, Reason: fmt.Sprintf("the release is for %s, the recipe for %s", m.Chip, r.Chip.Arg())}
	}
	rel.Product, rel.Version, rel.SecureVersion = m.Product, m.Version, m.SecureVersion
	rel.ManifestSHA256 = sr.Authenticated().ManifestSHA256
	rel.Checks = append(rel.Checks, evidence.Check{
		Name: evidence.CheckManifestSignature, Verified: true,
		What: fmt.Sprintf("manifest CMS signature by %q against the recipe's trust anchors", sr.Authenticated().Signer.Subject.CommonName),
	})
	// A sub-device image is sent only through a link the recipe names: a
	// release routing files to a device this station does not know is
	// refused before any image is read.
	for _, d := range m.Devices() {
		if _, ok := r.Subdevice(d); !ok {
			file := ""
			for _, f := range m.Files {
				if f.Device == d {
					file = f.Path
					break
				}
			}
			return &IntakeError{File: file, Reason: fmt.Sprintf("sub-device %q is not in the recipe's subdevices", d)}
		}
	}
	rel.policy = pol
	for i, f := range m.Files {
		if f.Role == release.RoleSubdevice || f.Device != "" {
			if err := intakeSubdevice(ctx, sr, i, f, rel); err != nil {
				return err
			}
			continue
		}
		rd, err := sr.OpenFile(ctx, i)
		if err != nil {
			return &IntakeError{File: f.Path, Reason: "cannot open it", Err: err}
		}
		data, err := io.ReadAll(io.LimitReader(rd, MaxImageSize+1))
		rd.Close()
		if err != nil {
			return &IntakeError{File: f.Path, Reason: "does not match the signed manifest", Err: err}
		}
		if len(data) > MaxImageSize {
			return &IntakeError{File: f.Path, Reason: fmt.Sprintf("larger than %d bytes", MaxImageSize)}
		}
		// The manifest's chip, version and secure_version go into every
		// device's evidence: they must be what the images say.
		if err := m.CheckImage(f, data); err != nil {
			return &IntakeError{File: f.Path, Reason: "the signed manifest does not describe this image", Err: err}
		}
		rel.Images = append(rel.Images, Image{Role: string(f.Role), File: f.Path, Offset: f.Offset, Data: data, SHA256: sha256.Sum256(data), plain: new(deflatedImage)})
		rel.Checks = append(rel.Checks, evidence.Check{
			Name: fmt.Sprintf("%s:%s", evidence.CheckImageHash, f.Path), Verified: true,
			What: "image SHA-256 against the signed manifest",
		})
	}
	if _, err := sr.Finish(ctx); err != nil {
		return &IntakeError{File: release.ManifestName, Reason: "the release changed while it was read", Err: err}
	}
	return nil
}

// intakeSubdevice authenticates the i-th file, a sub-device image, by
// streaming it against the signed manifest; its bytes are not kept (Run
// streams them again, re-authenticated, to the device).
func intakeSubdevice(ctx context.Context, sr *release.Release, i int, f release.File, rel *Release) error {
	if f.Size > MaxImageSize {
		return &IntakeError{File: f.Path, Reason: fmt.Sprintf("%d bytes: larger than %d", f.Size, MaxImageSize)}
	}
	rd, err := sr.OpenFile(ctx, i)
	if err != nil {
		return &IntakeError{File: f.Path, Reason: "cannot open it", Err: err}
	}
	_, err = io.Copy(io.Discard, rd)
	rd.Close()
	if err == nil && !rd.Verified() {
		err = fmt.Errorf("provisioning: %s was not read to its end", f.Path)
	}
	if err != nil {
		return &IntakeError{File: f.Path, Reason: "does not match the signed manifest", Err: err}
	}
	rel.Subdevices = append(rel.Subdevices, SubdeviceImage{Device: f.Device, File: f.Path, Offset: f.Offset, Size: f.Size, SHA256: f.SHA256})
	rel.Checks = append(rel.Checks, evidence.Check{
		Name: fmt.Sprintf("%s:%s", evidence.CheckImageHash, f.Path), Verified: true,
		What: fmt.Sprintf("sub-device %s image SHA-256 against the signed manifest", f.Device),
	})
	return nil
}

// checkImages applies the recipe to every image: partition table, chip,
// Secure Boot signatures, anti-rollback floor, and which regions are
// encrypted.
func checkImages(r *recipe.Recipe, rel *Release) error {
	c := r.Chip
	sort.SliceStable(rel.Images, func(i, j int) bool { return rel.Images[i].Offset < rel.Images[j].Offset })
	// The partition table first: it says where apps go and what is
	// encrypted, and the layout around it must be one the chip boots.
	ti, err := findTable(c, rel.Images)
	if err != nil {
		return err
	}
	if err := checkLayout(c, rel.Images, ti); err != nil {
		return err
	}
	tim := &rel.Images[ti]
	table, err := partition.Parse(tim.Data)
	if err != nil {
		return &IntakeError{File: tim.File, Reason: "not a partition table", Err: err}
	}
	if err := table.Validate(partition.ValidateOptions{TableOffset: tim.Offset}); err != nil {
		return &IntakeError{File: tim.File, Reason: "the partition table breaks the layout rules", Err: err}
	}
	tim.Role = string(release.RolePartitionTable)
	rel.Table, rel.TableOffset = table, tim.Offset
	var haveBoot, haveApp bool
	minSV := -1
	for i := range rel.Images {
		im := &rel.Images[i]
		var entry *partition.Entry
		for k := range table.Entries {
			e := table.Entries[k]
			if uint64(im.Offset) >= uint64(e.Offset) && uint64(im.Offset) < e.End() {
				entry = &e
				break
			}
		}
		switch {
		case im.Offset == c.BootloaderOffset:
			im.Role, im.Exec, im.Encrypt = string(release.RoleBootloader), true, true
			haveBoot = true
		case i == ti:
			im.Encrypt = true
		case entry != nil:
			if uint64(im.Offset)+uint64(len(im.Data)) > entry.End() {
				return &IntakeError{File: im.File, Reason: fmt.Sprintf("%d bytes do not fit partition %s (0x%x bytes at 0x%x)", len(im.Data), entry.Label, entry.Size, entry.Offset)}
			}
			im.Encrypt = table.Encrypted(*entry)
			switch entry.Type {
			case partition.TypeApp:
				if im.Offset != entry.Offset {
					return &IntakeError{File: im.File, Reason: fmt.Sprintf("an app must start at its partition %s (0x%x), not 0x%x", entry.Label, entry.Offset, im.Offset)}
				}
				im.Exec = true
				switch slot, ota := entry.IsOTA(); {
				case ota:
					im.Role = string(release.AppOTA(slot))
				case entry.SubType == partition.SubTest:
					im.Role = string(release.RoleTest)
				default:
					im.Role = string(release.RoleFactory)
				}
				haveApp = true
			case partition.TypeData:
				if entry.SubType == partition.SubOTAData {
					im.Role = string(release.RoleOTAData)
				} else if im.Role == "data" || im.Role == "" || im.Role == string(release.RoleData) {
					im.Role = "data/" + entry.Label
				}
			}
		default:
			return &IntakeError{File: im.File, Reason: fmt.Sprintf("offset 0x%x is in no partition of the table", im.Offset)}
		}
		if !im.Exec {
			continue
		}
		if err := checkExec(r, im); err != nil {
			return err
		}
		if im.App != nil {
			sv := int(im.App.SecureVersion)
			if minSV < 0 || sv < minSV {
				minSV = sv
			}
			ok := sv >= r.AntiRollback.Floor
			ck := evidence.Check{
				Name:     fmt.Sprintf("%s:%s", evidence.CheckSecureVersion, im.File),
				What:     fmt.Sprintf("app secure_version %d against the recipe's floor %d", sv, r.AntiRollback.Floor),
				Verified: ok,
			}
			if !ok {
				return &IntakeError{File: im.File, Reason: fmt.Sprintf("secure_version %d is below the recipe's anti-rollback floor %d", sv, r.AntiRollback.Floor)}
			}
			rel.Checks = append(rel.Checks, ck)
			if rel.Version == "" || im.Role == string(release.RoleFactory) {
				if rel.Format == recipe.FormatESPIDF {
					rel.Product, rel.Version, rel.SecureVersion = im.App.ProjectName, im.App.Version, im.App.SecureVersion
				}
			}
		}
		rel.Checks = append(rel.Checks, evidence.Check{
			Name:     fmt.Sprintf("%s:%s", evidence.CheckSecureBoot, im.File),
			What:     fmt.Sprintf("Secure Boot v2 signature against the recipe's %d key(s)", len(r.SecureBoot.PublicKeys)),
			Verified: true,
		})
	}
	if !haveBoot {
		return &IntakeError{Reason: fmt.Sprintf("the release has no bootloader at 0x%x", c.BootloaderOffset)}
	}
	if !haveApp {
		return &IntakeError{Reason: "the release has no app image in an app partition"}
	}
	if minSV < 0 {
		minSV = 0
	}
	rel.MinSecureVersion = uint32(minSV)
	return nil
}

// checkExec authenticates one bootloader or app image: an ESP image for the
// recipe's chip, signed (Secure Boot v2) by one of the recipe's keys.
func checkExec(r *recipe.Recipe, im *Image) error {
	img, err := image.Parse(im.Data)
	if err != nil {
		return &IntakeError{File: im.File, Reason: "not a valid ESP image", Err: err}
	}
	if img.Header.ChipID != r.Chip.ID {
		return &IntakeError{File: im.File, Reason: fmt.Sprintf("built for %v, the recipe is for %v", img.Header.ChipID, r.Chip.ID)}
	}
	if strings.HasPrefix(im.Role, "app/") {
		if img.App == nil {
			return &IntakeError{File: im.File, Reason: "an app image without an app descriptor (esp_app_desc_t)"}
		}
		im.App = img.App
	}
	res, err := secureboot.Verify(im.Data, r.SecureBoot.PublicKeys...)
	if res != nil {
		for _, b := range res.Blocks {
			if b.Present {
				im.KeyDigests = append(im.KeyDigests, b.KeyDigest)
			}
		}
	}
	if err != nil {
		reason := "its Secure Boot v2 signature does not verify"
		switch {
		case errors.Is(err, secureboot.ErrNoSignature):
			reason = "it is not signed (no Secure Boot v2 signature block)"
		case errors.Is(err, secureboot.ErrUnknownKey) && !errors.Is(err, secureboot.ErrBadSignature):
			reason = "it is signed by a key that is not in the recipe"
		case errors.Is(err, secureboot.ErrBadSignature):
			reason = "its signature does not match its content (tampered)"
		}
		return &IntakeError{File: im.File, Reason: reason, Err: err}
	}
	return nil
}
