package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"fuseline/esp/chip"
	"fuseline/esp/efuse"
)

// newEfuseCmd is "fuseline efuse": work with eFuse images offline.
func newEfuseCmd(stdio Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "efuse",
		Short: "Decode eFuse dumps and images",
	}
	cmd.AddCommand(newEfuseDecodeCmd(stdio))
	return cmd
}

func newEfuseDecodeCmd(stdio Stdio) *cobra.Command {
	var (
		chipName string
		asJSON   bool
		all      bool
	)
	cmd := &cobra.Command{
		Use:   "decode --chip CHIP FILE",
		Short: "Name every eFuse field of an espefuse dump or a raw eFuse image",
		Long: `Decode FILE, either the text of "espefuse dump" or a raw image (every
block's words in block order, little-endian: 336 bytes on esp32s3/esp32c3,
124 on esp32), and print a security summary and every field with its value,
meaning and protection (R = readable, W = writable; "-" where RD_DIS or
WR_DIS took it away). Secret keys that still read back are not shown.
Reserved fields are left out unless --all is given. Exits 1 when FILE is
neither a dump nor an image of the chip.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if chipName == "" {
				return usageErr("efuse decode: --chip is required (esp32s3, esp32c3 or esp32)")
			}
			c, err := chip.ByName(chipName)
			if err != nil {
				return usageErr("efuse decode: %w", err)
			}
			b, err := os.ReadFile(args[0])
			if err != nil {
				return usageErr("efuse decode: %w", err)
			}
			format := "raw"
			if efuse.LooksLikeDump(b) {
				format = "dump"
			}
			img, err := efuse.Parse(c.ID, b)
			if err != nil {
				return failErr(fmt.Errorf("efuse decode: %s: %w", args[0], err))
			}
			vals, err := efuse.Decode(img)
			if err != nil {
				return failErr(fmt.Errorf("efuse decode: %s: %w", args[0], err))
			}
			sum, err := efuse.Summarize(img)
			if err != nil {
				return failErr(fmt.Errorf("efuse decode: %s: %w", args[0], err))
			}
			out := describeEfuse(c, args[0], format, sum, vals, all)
			if asJSON {
				return writeJSON(stdio.Out, out)
			}
			return printEfuse(stdio.Out, out)
		},
	}
	cmd.Flags().StringVar(&chipName, "chip", "", "chip the file comes from: esp32s3, esp32c3 or esp32")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().BoolVar(&all, "all", false, "include reserved and undocumented fields")
	return cmd
}

type efuseReport struct {
	File    string         `json:"file"`
	Format  string         `json:"format"` // "dump" or "raw"
	Chip    string         `json:"chip"`
	Summary efuseSummary   `json:"summary"`
	Fields  []efuseFieldJS `json:"fields"`
}

type efuseSummary struct {
	MAC                      string         `json:"mac"`
	Revision                 string         `json:"revision"`
	RevisionNote             string         `json:"revision_note,omitempty"`
	FlashEncryption          bool           `json:"flash_encryption"`
	FlashEncryptionPermanent bool           `json:"flash_encryption_permanent"`
	SecureBoot               bool           `json:"secure_boot"`
	SecureVersion            int            `json:"secure_version"`
	Download                 string         `json:"download_mode"`
	Keys                     []efuseKeySlot `json:"keys"`
}

type efuseKeySlot struct {
	Block    int    `json:"block"`
	Name     string `json:"name"`
	Purpose  string `json:"purpose,omitempty"`
	Empty    bool   `json:"empty"`
	Readable bool   `json:"readable"`
	Writable bool   `json:"writable"`
	Revoked  bool   `json:"revoked,omitempty"`
}

type efuseFieldJS struct {
	Name     string  `json:"name"`
	Block    int     `json:"block"`
	Word     int     `json:"word"`
	Bit      int     `json:"bit"`
	Width    int     `json:"width"`
	Value    string  `json:"value"`
	Raw      *uint64 `json:"raw,omitempty"` // fields up to 64 bits that read back
	Meaning  string  `json:"meaning,omitempty"`
	Readable bool    `json:"readable"`
	Writable bool    `json:"writable"`
	Secret   bool    `json:"secret,omitempty"`
	Hidden   bool    `json:"hidden,omitempty"`
}

func describeEfuse(c chip.Chip, file, format string, s efuse.Summary, vals []efuse.Value, all bool) efuseReport {
	r := efuseReport{File: file, Format: format, Chip: c.Arg()}
	r.Summary = efuseSummary{
		MAC:                      fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", s.MAC[0], s.MAC[1], s.MAC[2], s.MAC[3], s.MAC[4], s.MAC[5]),
		Revision:                 s.Revision.String(),
		RevisionNote:             s.RevisionNote,
		FlashEncryption:          s.FlashEncryption,
		FlashEncryptionPermanent: s.FlashEncryptionPermanent,
		SecureBoot:               s.SecureBoot,
		SecureVersion:            s.SecureVersion,
		Download:                 s.Download,
	}
	for _, k := range s.Keys {
		ks := efuseKeySlot{Block: k.Block, Name: k.Name, Empty: k.Empty, Readable: k.Readable, Writable: k.Writable, Revoked: k.Revoked}
		if c.ID != chip.ESP32 {
			ks.Purpose = k.Purpose.String()
		}
		r.Summary.Keys = append(r.Summary.Keys, ks)
	}
	for _, v := range vals {
		f := v.Field
		if f.Hidden && !all {
			continue
		}
		js := efuseFieldJS{Name: f.Name, Block: f.Block, Word: f.Word, Bit: f.Bit, Width: f.Width,
			Value: v.Text, Meaning: v.Meaning, Readable: v.Readable, Writable: v.Writable, Secret: v.Secret, Hidden: f.Hidden}
		if f.Width <= 64 && v.Readable && !v.Secret {
			raw := v.Raw
			js.Raw = &raw
		}
		r.Fields = append(r.Fields, js)
	}
	return r
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func printEfuse(w io.Writer, r efuseReport) error {
	s := r.Summary
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "file:\t%s (%s, %s)\n", r.File, r.Format, r.Chip)
	fmt.Fprintf(tw, "MAC:\t%s\n", s.MAC)
	rev := s.Revision
	if s.RevisionNote != "" {
		rev += " (" + s.RevisionNote + ")"
	}
	fmt.Fprintf(tw, "revision:\t%s\n", rev)
	fe := onOff(s.FlashEncryption)
	if s.FlashEncryptionPermanent {
		fe += " (permanent)"
	}
	fmt.Fprintf(tw, "flash encryption:\t%s\n", fe)
	fmt.Fprintf(tw, "secure boot:\t%s\n", onOff(s.SecureBoot))
	fmt.Fprintf(tw, "secure version:\t%d\n", s.SecureVersion)
	fmt.Fprintf(tw, "download mode:\t%s\n", s.Download)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "key blocks:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, k := range s.Keys {
		var state []string
		switch {
		case !k.Readable:
			state = append(state, "read-protected")
		case k.Empty:
			state = append(state, "empty")
		}
		if !k.Writable {
			state = append(state, "write-protected")
		}
		if k.Revoked {
			state = append(state, "revoked")
		}
		purpose := k.Purpose
		if purpose == "" {
			purpose = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", k.Name, purpose, strings.Join(state, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tR/W\tVALUE\tMEANING")
	var long []efuseFieldJS
	for _, f := range r.Fields {
		rw := []byte("RW")
		if !f.Readable {
			rw[0] = '-'
		}
		if !f.Writable {
			rw[1] = '-'
		}
		value := f.Value
		// Wide byte fields would stretch the table: show their start here
		// and the whole value below it.
		if f.Width > 64 && f.Readable && !f.Secret {
			compact := strings.ReplaceAll(f.Value, " ", "")
			if strings.Trim(compact, "0") == "" {
				value = fmt.Sprintf("0 (%d bytes)", f.Width/8)
			} else {
				value = compact[:16] + "…"
				long = append(long, f)
			}
		}
		meaning := f.Meaning
		if meaning == "" {
			meaning = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Name, rw, value, meaning)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(long) > 0 {
		fmt.Fprintln(w, "\nblock data (block byte order):")
		for _, f := range long {
			fmt.Fprintf(w, "  %s: %s\n", f.Name, f.Value)
		}
	}
	return nil
}
