package cli

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"fuseline/esp/chip"
	"fuseline/esp/image"
)

// newImageCmd is "fuseline image": inspect and synthesize ESP images.
func newImageCmd(stdio Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Inspect and synthesize ESP app and bootloader images",
	}
	cmd.AddCommand(newImageInfoCmd(stdio), newImageSynthCmd(stdio))
	return cmd
}

func newImageInfoCmd(stdio Stdio) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "info FILE",
		Short: "Show an image's header, segments, checksum, descriptor and signature sector",
		Long: `Show an image's header, segments, checksum and SHA-256 validity, app or
bootloader descriptor, and whether a Secure Boot v2 signature sector follows
it (counting the blocks by their magic; "fuseline secureboot" verifies them).
Exits 1 when the image is malformed or its checksum or hash is wrong.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := readInputContext(cmd.Context(), "image", args[0], image.MaxFlashBytes)
			if err != nil {
				return usageErr("image info: %w", err)
			}
			img, err := image.ParseUnverified(b)
			if err != nil {
				return failErr(fmt.Errorf("image info: %s: %w", args[0], err))
			}
			info := describeImage(args[0], len(b), img)
			if asJSON {
				if err := writeJSON(stdio.Out, info); err != nil {
					return err
				}
			} else {
				printImageInfo(stdio.Out, info)
			}
			if err := img.Verify(); err != nil {
				return failErr(fmt.Errorf("image info: %s: %w", args[0], err))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

type imageInfo struct {
	File         string          `json:"file"`
	FileSize     int             `json:"file_size"`
	Length       int             `json:"length"`
	ChipID       uint16          `json:"chip_id"`
	Chip         string          `json:"chip"`
	EntryAddr    uint32          `json:"entry_addr"`
	FlashMode    string          `json:"flash_mode"`
	FlashSize    string          `json:"flash_size"`
	FlashFreq    string          `json:"flash_freq"`
	MinRev       uint8           `json:"min_chip_rev"`
	MinRevFull   uint16          `json:"min_rev_full"`
	MaxRevFull   uint16          `json:"max_rev_full"`
	HashAppended bool            `json:"hash_appended"`
	Segments     []imageSegment  `json:"segments"`
	Checksum     imageCheck      `json:"checksum"`
	SHA256       *imageCheck     `json:"sha256,omitempty"`
	App          *imageAppDesc   `json:"app,omitempty"`
	Bootloader   *imageBootDesc  `json:"bootloader,omitempty"`
	Trailer      int             `json:"trailer_bytes"`
	Signature    *imageSigSector `json:"signature_sector,omitempty"`
	Valid        bool            `json:"valid"`
}

type imageSegment struct {
	Index    int    `json:"index"`
	LoadAddr uint32 `json:"load_addr"`
	Offset   int    `json:"offset"`
	Length   int    `json:"length"`
	Region   string `json:"region"`
}

type imageCheck struct {
	Stored   string `json:"stored"`
	Computed string `json:"computed"`
	Valid    bool   `json:"valid"`
}

type imageAppDesc struct {
	Version       string `json:"version"`
	SecureVersion uint32 `json:"secure_version"`
	ProjectName   string `json:"project_name"`
	Time          string `json:"time"`
	Date          string `json:"date"`
	IDFVersion    string `json:"idf_ver"`
	ELFSHA256     string `json:"app_elf_sha256"`
}

type imageBootDesc struct {
	Version       uint32 `json:"version"`
	SecureVersion uint8  `json:"secure_version"`
	IDFVersion    string `json:"idf_ver"`
	DateTime      string `json:"date_time"`
}

// imageSigSector: the sector starts where the signed content ends.
type imageSigSector struct {
	Offset int `json:"offset"`
	Blocks int `json:"blocks"`
}

func describeImage(file string, size int, img *image.Image) imageInfo {
	h := img.Header
	info := imageInfo{
		File: file, FileSize: size, Length: img.Length,
		ChipID: uint16(h.ChipID), Chip: h.ChipID.String(), EntryAddr: h.EntryAddr,
		FlashMode: h.FlashMode.String(), FlashSize: h.FlashSize.String(), FlashFreq: h.FlashFreq.String(),
		MinRev: h.MinRev, MinRevFull: h.MinRevFull, MaxRevFull: h.MaxRevFull, HashAppended: h.HashAppended,
		Trailer: len(img.Trailer),
	}
	c, chipErr := chip.ByID(h.ChipID)
	for i, s := range img.Segments {
		seg := imageSegment{Index: i, LoadAddr: s.LoadAddr, Offset: s.Offset, Length: len(s.Data), Region: "RAM"}
		switch {
		case s.IsPadding():
			seg.Region = "padding"
		case chipErr != nil:
			seg.Region = "?"
		case s.LoadAddr >= c.IROM[0] && s.LoadAddr < c.IROM[1]:
			seg.Region = "IROM"
		case s.LoadAddr >= c.DROM[0] && s.LoadAddr < c.DROM[1]:
			seg.Region = "DROM"
		}
		info.Segments = append(info.Segments, seg)
	}
	info.Checksum = imageCheck{
		Stored:   fmt.Sprintf("0x%02x", img.Checksum),
		Computed: fmt.Sprintf("0x%02x", img.ComputedChecksum()),
		Valid:    img.Checksum == img.ComputedChecksum(),
	}
	info.Valid = info.Checksum.Valid
	if h.HashAppended {
		calc := img.ComputedSHA256()
		info.SHA256 = &imageCheck{Stored: fmt.Sprintf("%x", img.SHA256[:]), Computed: fmt.Sprintf("%x", calc[:]), Valid: calc == img.SHA256}
		info.Valid = info.Valid && info.SHA256.Valid
	}
	if d := img.App; d != nil {
		info.App = &imageAppDesc{Version: d.Version, SecureVersion: d.SecureVersion, ProjectName: d.ProjectName,
			Time: d.Time, Date: d.Date, IDFVersion: d.IDFVersion, ELFSHA256: fmt.Sprintf("%x", d.ELFSHA256[:])}
	}
	if d := img.Bootloader; d != nil {
		info.Bootloader = &imageBootDesc{Version: d.Version, SecureVersion: d.SecureVersion, IDFVersion: d.IDFVersion, DateTime: d.DateTime}
	}
	if end, sector, ok := img.SignedRegion(); ok {
		if n := image.SignatureBlocks(sector); n > 0 {
			info.Signature = &imageSigSector{Offset: end, Blocks: n}
		}
	}
	return info
}

func imageValidWord(ok bool) string {
	if ok {
		return "valid"
	}
	return "INVALID"
}

func printImageInfo(w io.Writer, in imageInfo) {
	fmt.Fprintf(w, "File:        %s (%d bytes)\n", in.File, in.FileSize)
	fmt.Fprintf(w, "Image:       %d bytes, chip %s (id 0x%04x), entry 0x%08x\n", in.Length, in.Chip, in.ChipID, in.EntryAddr)
	fmt.Fprintf(w, "Flash:       %s, %s, %s\n", in.FlashMode, in.FlashSize, in.FlashFreq)
	fmt.Fprintf(w, "Revisions:   min_rev_full %d, max_rev_full %d, legacy min_chip_rev %d\n", in.MinRevFull, in.MaxRevFull, in.MinRev)
	fmt.Fprintf(w, "Segments:    %d\n", len(in.Segments))
	for _, s := range in.Segments {
		fmt.Fprintf(w, "  %2d  %-7s load 0x%08x  file offset 0x%06x  length 0x%06x\n", s.Index, s.Region, s.LoadAddr, s.Offset, s.Length)
	}
	fmt.Fprintf(w, "Checksum:    %s (%s", in.Checksum.Stored, imageValidWord(in.Checksum.Valid))
	if !in.Checksum.Valid {
		fmt.Fprintf(w, ", computed %s", in.Checksum.Computed)
	}
	fmt.Fprintln(w, ")")
	if in.SHA256 != nil {
		fmt.Fprintf(w, "SHA-256:     %s (%s", in.SHA256.Stored, imageValidWord(in.SHA256.Valid))
		if !in.SHA256.Valid {
			fmt.Fprintf(w, ", computed %s", in.SHA256.Computed)
		}
		fmt.Fprintln(w, ")")
	} else {
		fmt.Fprintln(w, "SHA-256:     not appended")
	}
	if a := in.App; a != nil {
		fmt.Fprintf(w, "App:         version %s, secure_version %d, project %s\n", a.Version, a.SecureVersion, a.ProjectName)
		fmt.Fprintf(w, "             built %s %s, ESP-IDF %s\n", a.Date, a.Time, a.IDFVersion)
		fmt.Fprintf(w, "             ELF SHA-256 %s\n", a.ELFSHA256)
	}
	if b := in.Bootloader; b != nil {
		fmt.Fprintf(w, "Bootloader:  version %d, secure_version %d, ESP-IDF %s, built %s\n", b.Version, b.SecureVersion, b.IDFVersion, b.DateTime)
	}
	switch {
	case in.Signature != nil:
		fmt.Fprintf(w, "Signature:   sector at 0x%x (signs the 0x%x bytes before it), %d block(s)\n", in.Signature.Offset, in.Signature.Offset, in.Signature.Blocks)
	case in.Trailer > 0:
		fmt.Fprintf(w, "Signature:   none (%d trailing bytes)\n", in.Trailer)
	default:
		fmt.Fprintln(w, "Signature:   none")
	}
}

func newImageSynthCmd(stdio Stdio) *cobra.Command {
	var (
		chipName, kind, version, project, size, out string
		secureVersion                               uint32
		seed                                        uint64
	)
	cmd := &cobra.Command{
		Use:   "synth --chip CHIP --version V --secure-version N -o OUT",
		Short: "Write a deterministic test image (app or bootloader)",
		Long: `Write a valid, deterministic ESP image whose filler compresses like real
firmware (about 2:1 with zlib). The same flags always give the same bytes.
For --kind bootloader, --version is the bootloader's numeric version.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := chip.ByName(chipName)
			if err != nil {
				return usageErr("image synth: %w", err)
			}
			k, err := image.ParseKind(kind)
			if err != nil {
				return usageErr("image synth: %w", err)
			}
			n, err := imageSizeArg(size)
			if err != nil {
				return usageErr("image synth: --size: %w", err)
			}
			b, err := image.Synth(image.SynthOptions{Chip: c, Kind: k, Version: version, SecureVersion: secureVersion,
				ProjectName: project, Size: n, Seed: seed})
			if err != nil {
				return usageErr("image synth: %w", err)
			}
			if err := os.WriteFile(out, b, 0o644); err != nil {
				return usageErr("image synth: %w", err)
			}
			fmt.Fprintf(stdio.Out, "wrote %s: %s %s, %d bytes, sha256 %x\n", out, c.Arg(), k, len(b), sha256.Sum256(b))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&chipName, "chip", "", "target chip: esp32s3, esp32c3 or esp32")
	f.StringVar(&kind, "kind", "app", "app or bootloader")
	f.StringVar(&version, "version", "", `app version string (default "1.0.0"); bootloader: a whole number (default 1)`)
	f.Uint32Var(&secureVersion, "secure-version", 0, "anti-rollback secure_version")
	f.StringVar(&project, "project", "", `project name (default "fuseline-demo")`)
	f.StringVar(&size, "size", "", "filler bytes, e.g. 262144, 256K or 1M (default 256K for an app, 20K for a bootloader)")
	f.Uint64Var(&seed, "seed", 0, "filler seed")
	f.StringVarP(&out, "output", "o", "", "output file")
	_ = cmd.MarkFlagRequired("chip")
	_ = cmd.MarkFlagRequired("output")
	return cmd
}

// imageSizeArg reads "1024", "0x400", "256K" or "1M"; "" is 0.
func imageSizeArg(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	mult := 1
	switch strings.ToUpper(s[len(s)-1:]) {
	case "K":
		mult, s = 1<<10, s[:len(s)-1]
	case "M":
		mult, s = 1<<20, s[:len(s)-1]
	}
	v, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return 0, errors.New("want a byte count such as 262144, 0x40000, 256K or 1M")
	}
	if v > (1<<31)/uint64(mult) {
		return 0, errors.New("too large")
	}
	return int(v) * mult, nil
}
