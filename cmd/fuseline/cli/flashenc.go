package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"fuseline/esp/chip"
	"fuseline/esp/flashenc"
	"fuseline/esp/image"
)

// newFlashencCmd is the `fuseline flashenc` group: host-side flash
// encryption, byte for byte what `espsecure encrypt_flash_data` writes
// (esp-security-facts.md §5).
func newFlashencCmd(stdio Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "flashenc",
		Short: "Flash encryption on the host: XTS-AES (S3/C3) and the classic ESP32 scheme",
	}
	cmd.AddCommand(newFlashencOpCmd(stdio, true), newFlashencOpCmd(stdio, false))
	return cmd
}

// flashencFlags are the flags encrypt and decrypt share.
type flashencFlags struct {
	chip        string
	key         string
	address     uint32
	scheme      string
	cryptConfig uint8
	out         string
}

func newFlashencOpCmd(stdio Stdio, encrypt bool) *cobra.Command {
	var f flashencFlags
	verb, what := "decrypt", "Decrypt flash contents read from ADDRESS"
	if encrypt {
		verb, what = "encrypt", "Encrypt IN for flash ADDRESS"
	}
	cmd := &cobra.Command{
		Use:   verb + " --chip CHIP --key KEY.bin --address ADDR [--scheme S] [--crypt-config N] IN -o OUT",
		Short: what + " with a flash-encryption key file",
		Long: what + ". The scheme follows from --chip and the key length unless --scheme is given: " +
			"esp32s3 with a 64-byte key is xts-aes-256, esp32s3/esp32c3 with a 32-byte key xts-aes-128, " +
			"esp32 aes-256-classic (with --crypt-config, the FLASH_CRYPT_CONFIG eFuse, default 0xF). " +
			"The address and the input length must be multiples of 16.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFlashenc(cmd, stdio, f, encrypt, args[0])
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.chip, "chip", "", "target chip: esp32s3, esp32c3 or esp32")
	fl.StringVar(&f.key, "key", "", "flash-encryption key file (raw bytes, as burned with burn_key)")
	fl.Uint32Var(&f.address, "address", 0, "flash address of the first byte (e.g. 0x10000)")
	fl.StringVar(&f.scheme, "scheme", "", "xts-aes-128, xts-aes-256 or aes-256-classic (default: from --chip and key length)")
	fl.Uint8Var(&f.cryptConfig, "crypt-config", 0xF, "FLASH_CRYPT_CONFIG for aes-256-classic (0x0…0xF)")
	fl.StringVarP(&f.out, "output", "o", "", "file to write")
	return cmd
}

// pickScheme resolves --scheme / --chip / key length into a scheme.
func pickScheme(f flashencFlags, keyLen int) (chip.Encryption, error) {
	var c *chip.Chip
	if f.chip != "" {
		ch, err := chip.ByName(f.chip)
		if err != nil {
			return 0, usageErr("flashenc: %w", err)
		}
		c = &ch
	}
	if f.scheme != "" {
		for _, s := range []chip.Encryption{chip.XTSAES128, chip.XTSAES256, chip.AES256Classic} {
			if s.String() == f.scheme {
				if c != nil && !c.SupportsEncryption(s) {
					return 0, usageErr("flashenc: %s does not implement %s", c.Arg(), s)
				}
				return s, nil
			}
		}
		return 0, usageErr("flashenc: unknown --scheme %q (want xts-aes-128, xts-aes-256 or aes-256-classic)", f.scheme)
	}
	if c == nil {
		return 0, usageErr("flashenc: give --chip (or --scheme)")
	}
	if keyLen == chip.XTSAES256.KeyLen() {
		if c.SupportsEncryption(chip.XTSAES256) {
			return chip.XTSAES256, nil
		}
		return 0, usageErr("flashenc: the key file has 64 bytes (XTS-AES-256), which %s does not implement; it takes a 32-byte key", c.Arg())
	}
	if len(c.Encryptions) == 0 {
		return 0, usageErr("flashenc: %s has no flash encryption", c.Arg())
	}
	// Preferred scheme first; its key-length check in flashenc.New names
	// the length it needs.
	return c.Encryptions[0], nil
}

func runFlashenc(cmd *cobra.Command, stdio Stdio, f flashencFlags, encrypt bool, in string) error {
	if f.key == "" {
		return usageErr("flashenc: give the key file with --key")
	}
	if f.out == "" {
		return usageErr("flashenc: give the output file with -o")
	}
	key, err := readInput("key file", f.key, maxKeyFile)
	if err != nil {
		return err
	}
	scheme, err := pickScheme(f, len(key))
	if err != nil {
		return err
	}
	if scheme != chip.AES256Classic && cmd.Flags().Changed("crypt-config") {
		return usageErr("flashenc: --crypt-config applies to aes-256-classic only, not %s", scheme)
	}
	c, err := flashenc.New(scheme, key, f.cryptConfig)
	if err != nil {
		return usageErr("key file %s: %w", f.key, err)
	}
	data, err := readInput("input", in, image.MaxFlashBytes)
	if err != nil {
		return err
	}
	if len(data) == 0 {
		return usageErr("flashenc: %s is empty", in)
	}
	out := make([]byte, len(data))
	op, verb := c.Decrypt, "decrypted"
	if encrypt {
		op, verb = c.Encrypt, "encrypted"
	}
	if err := op(out, data, f.address); err != nil {
		if errors.Is(err, flashenc.ErrAlignment) {
			return usageErr("%w (%s)", err, in)
		}
		return failErr(err)
	}
	if err := os.WriteFile(f.out, out, 0o644); err != nil {
		return usageErr("write %s: %w", f.out, err)
	}
	_, err = fmt.Fprintf(stdio.Out, "%s %d bytes for flash 0x%x-0x%x with %s: %s\n",
		verb, len(data), f.address, uint64(f.address)+uint64(len(data)), scheme, f.out)
	return err
}
