package cli

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"fuseline/esp/chip"
	"fuseline/esp/partition"
)

// newPartitionsCmd is "fuseline partitions": gen_esp32part's conversion,
// binary table ↔ CSV, with its checks.
func newPartitionsCmd(stdio Stdio) *cobra.Command {
	var (
		out, offset, flashSize, chipName string
		asJSON, noVerify                 bool
	)
	cmd := &cobra.Command{
		Use:   "partitions FILE",
		Short: "Convert a partition table between binary and CSV, and check it",
		Long: `Convert a partition table as ESP-IDF's gen_esp32part.py does: a binary
table (recognised by its first entry's magic, or an empty table) becomes CSV,
anything else is read as CSV and becomes the 0xC00-byte binary. --json lists
the entries instead, with whether each must be written encrypted under flash
encryption. The table is checked first (alignment, overlaps, otadata size,
--flash-size); a table that fails exits 1. Output goes to -o or stdout.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := readInputContext(cmd.Context(), "partition table", args[0], partition.MaxFile)
			if err != nil {
				return err
			}
			csvOpts := partition.CSVOptions{}
			valOpts := partition.ValidateOptions{}
			if offset != "" {
				v, err := imageSizeArg(offset)
				if err != nil {
					return usageErr("partitions: --offset: %w", err)
				}
				csvOpts.TableOffset, valOpts.TableOffset = uint32(v), uint32(v)
			}
			if flashSize != "" {
				v, err := imageSizeArg(strings.TrimSuffix(strings.ToUpper(flashSize), "B"))
				if err != nil {
					return usageErr("partitions: --flash-size: %w", err)
				}
				valOpts.FlashSize = uint32(v)
			}
			if chipName != "" {
				c, err := chip.ByName(chipName)
				if err != nil {
					return usageErr("partitions: %w", err)
				}
				csvOpts.BootloaderOffset = c.BootloaderOffset
			}

			binary := partitionsIsBinary(in)
			var tbl partition.Table
			if binary {
				tbl, err = partition.Parse(in)
			} else {
				tbl, err = partition.ParseCSVWith(bytes.NewReader(in), csvOpts)
			}
			if err != nil {
				return failErr(fmt.Errorf("partitions: %s: %w", args[0], err))
			}
			if !noVerify {
				if err := tbl.Validate(valOpts); err != nil {
					return failErr(fmt.Errorf("partitions: %s is not a valid table:\n%w", args[0], err))
				}
			}

			var result []byte
			switch {
			case asJSON:
				var buf bytes.Buffer
				if err := writeJSON(&buf, partitionsListing(tbl)); err != nil {
					return err
				}
				result = buf.Bytes()
			case binary:
				result = []byte(tbl.CSV())
			default:
				if result, err = tbl.MarshalBinary(); err != nil {
					return failErr(err)
				}
			}
			if out == "" {
				_, err := stdio.Out.Write(result)
				return err
			}
			if err := os.WriteFile(out, result, 0o644); err != nil {
				return usageErr("partitions: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "", "output file (default stdout)")
	f.BoolVar(&asJSON, "json", false, "list the entries as JSON instead of converting")
	f.StringVar(&offset, "offset", "", "partition table offset (default 0x8000)")
	f.StringVar(&flashSize, "flash-size", "", "check the table fits this flash, e.g. 4MB")
	f.StringVar(&chipName, "chip", "", "chip whose bootloader offset places a bootloader/primary CSV entry (default 0x0)")
	f.BoolVar(&noVerify, "no-verify", false, "convert without checking the table")
	return cmd
}

// partitionsIsBinary tells a binary table from CSV the way gen_esp32part does
// (the first entry's magic AA 50), also accepting a table that starts with
// its MD5 entry or end marker (no partitions), which CSV text cannot.
func partitionsIsBinary(b []byte) bool {
	if len(b) < 2 {
		return false
	}
	if (b[0] == 0xAA && b[1] == 0x50) || (b[0] == 0xEB && b[1] == 0xEB) {
		return true
	}
	return len(b) >= partition.EntryLen && bytes.Equal(b[:partition.EntryLen], bytes.Repeat([]byte{0xFF}, partition.EntryLen))
}

type partitionsList struct {
	MD5     bool                  `json:"md5"`
	Entries []partitionsListEntry `json:"entries"`
}

type partitionsListEntry struct {
	Label     string   `json:"label"`
	Type      string   `json:"type"`
	TypeID    uint8    `json:"type_id"`
	SubType   string   `json:"subtype"`
	SubTypeID uint8    `json:"subtype_id"`
	Offset    uint32   `json:"offset"`
	Size      uint32   `json:"size"`
	Flags     []string `json:"flags"`
	// Encrypted: must be written as ciphertext when flash encryption is on.
	Encrypted bool `json:"encrypted_under_flash_encryption"`
}

func partitionsListing(t partition.Table) partitionsList {
	l := partitionsList{MD5: !t.NoMD5, Entries: []partitionsListEntry{}}
	for _, e := range t.Entries {
		flags := []string{}
		if s := e.Flags.String(); s != "" {
			flags = strings.Split(s, ":")
		}
		l.Entries = append(l.Entries, partitionsListEntry{
			Label: e.Label, Type: e.Type.String(), TypeID: uint8(e.Type),
			SubType: partition.SubTypeName(e.Type, e.SubType), SubTypeID: uint8(e.SubType),
			Offset: e.Offset, Size: e.Size, Flags: flags, Encrypted: t.Encrypted(e),
		})
	}
	return l
}
