package cli

import (
	"crypto"
	"crypto/rsa"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"fuseline/esp/image"
	"fuseline/esp/secureboot"
)

// newSecurebootCmd is the `fuseline secureboot` group: Secure Boot v2
// (RSA-3072 PSS) key digests, signing and verification, byte-compatible with
// espsecure (esp-security-facts.md §4).
func newSecurebootCmd(stdio Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secureboot",
		Short: "Secure Boot v2 (RSA-3072): key digests, signing, verification",
	}
	cmd.AddCommand(
		newSecurebootDigestCmd(stdio),
		newSecurebootSignCmd(stdio),
		newSecurebootVerifyCmd(stdio),
		newSecurebootInfoCmd(stdio),
	)
	return cmd
}

// loadPublicKey reads a PEM key file (private or public) for its public key.
func loadPublicKey(path string) (*rsa.PublicKey, error) {
	b, err := readInput("key file", path, maxKeyFile)
	if err != nil {
		return nil, err
	}
	k, err := secureboot.ParsePublicKeyPEM(b)
	if err != nil {
		return nil, usageErr("key file %s: %w", path, err)
	}
	return k, nil
}

func newSecurebootDigestCmd(stdio Stdio) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "digest KEY.pem",
		Short: "Print the public-key digest burned into a SECURE_BOOT_DIGESTn eFuse block",
		Long: "Print, as hex, the SHA-256 digest of an RSA-3072 key's signature-block key material " +
			"(what `espsecure digest_sbv2_public_key` writes). KEY.pem may be the private or the public key.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := loadPublicKey(args[0])
			if err != nil {
				return err
			}
			d, err := secureboot.Digest(k)
			if err != nil {
				return usageErr("key file %s: %w", args[0], err)
			}
			if asJSON {
				return writeJSON(stdio.Out, struct {
					Key    string `json:"key"`
					Digest string `json:"digest"`
				}{args[0], hex.EncodeToString(d[:])})
			}
			_, err = fmt.Fprintln(stdio.Out, hex.EncodeToString(d[:]))
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newSecurebootSignCmd(stdio Stdio) *cobra.Command {
	var keys []string
	var out string
	cmd := &cobra.Command{
		Use:   "sign --key KEY.pem [--key KEY2.pem …] IN -o OUT",
		Short: "Sign an image with up to three RSA-3072 keys",
		Long: "Pad IN with 0xFF to a 4 KiB boundary and append a signature sector with one block per key. " +
			"If IN is already signed, the new blocks are appended to its sector " +
			"(espsecure sign_data --append_signatures).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(keys) == 0 {
				return usageErr("secureboot sign: give at least one --key")
			}
			if out == "" {
				return usageErr("secureboot sign: give the output file with -o")
			}
			img, err := readInput("image", args[0], image.MaxFlashBytes)
			if err != nil {
				return err
			}
			signers := make([]crypto.Signer, len(keys))
			for i, path := range keys {
				b, err := readInput("key file", path, maxKeyFile)
				if err != nil {
					return err
				}
				k, err := secureboot.ParsePrivateKeyPEM(b)
				if err != nil {
					return usageErr("key file %s: %w", path, err)
				}
				signers[i] = k
			}
			signed, err := secureboot.Sign(img, signers...)
			if err != nil {
				return failErr(err)
			}
			content, sector, err := secureboot.Split(signed)
			if err != nil {
				return failErr(err)
			}
			blocks, err := secureboot.ParseSector(sector)
			if err != nil {
				return failErr(err)
			}
			if err := os.WriteFile(out, signed, 0o644); err != nil {
				return usageErr("write %s: %w", out, err)
			}
			_, err = fmt.Fprintf(stdio.Out, "signed %s with %d key(s): %s, %d bytes, signature sector at 0x%x with %d block(s)\n",
				args[0], len(keys), out, len(signed), len(content), len(blocks))
			return err
		},
	}
	cmd.Flags().StringArrayVar(&keys, "key", nil, "RSA-3072 private key (PEM); repeat for up to 3 keys")
	cmd.Flags().StringVarP(&out, "output", "o", "", "signed image to write")
	return cmd
}

// blockReport is one slot of the signature sector in JSON output.
type blockReport struct {
	Slot      int    `json:"slot"`
	Present   bool   `json:"present"`
	KeyDigest string `json:"key_digest,omitempty"`
	Key       string `json:"key,omitempty"` // the --key file it matched
	Verified  bool   `json:"verified"`
	Error     string `json:"error,omitempty"`
}

type verifyReport struct {
	File        string        `json:"file"`
	Valid       bool          `json:"valid"`
	Reason      string        `json:"reason,omitempty"`
	ImageDigest string        `json:"image_digest,omitempty"`
	Block       int           `json:"block"` // -1 when none verified
	Key         string        `json:"key,omitempty"`
	KeyDigest   string        `json:"key_digest,omitempty"`
	Blocks      []blockReport `json:"blocks,omitempty"`
}

func newSecurebootVerifyCmd(stdio Stdio) *cobra.Command {
	var keyPaths []string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify --key PUB.pem [--key …] FILE",
		Short: "Verify a signed image against public keys (exit 0 valid, 1 invalid)",
		Long: "Check FILE's signature sector: valid when some block's key is one of the --key files " +
			"(public or private PEM), its image digest matches and its RSA-PSS signature verifies.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(keyPaths) == 0 {
				return usageErr("secureboot verify: give at least one --key")
			}
			keys := make([]*rsa.PublicKey, len(keyPaths))
			for i, p := range keyPaths {
				k, err := loadPublicKey(p)
				if err != nil {
					return err
				}
				keys[i] = k
			}
			signed, err := readInput("image", args[0], image.MaxFlashBytes)
			if err != nil {
				return err
			}
			res, verr := secureboot.Verify(signed, keys...)
			rep := verifyReport{File: args[0], Valid: verr == nil, Block: -1}
			if verr != nil {
				rep.Reason = verr.Error()
			}
			if res != nil {
				rep.ImageDigest = hex.EncodeToString(res.ImageDigest[:])
				rep.Block = res.Block
				if res.Verified() {
					rep.Key = keyPaths[res.Key]
					rep.KeyDigest = hex.EncodeToString(res.KeyDigest[:])
				}
				for _, b := range res.Blocks {
					br := blockReport{Slot: b.Slot, Present: b.Present, Verified: b.Present && b.Err == nil}
					if b.Present {
						br.KeyDigest = hex.EncodeToString(b.KeyDigest[:])
					}
					if b.Key >= 0 {
						br.Key = keyPaths[b.Key]
					}
					if b.Err != nil && b.Present {
						br.Error = b.Err.Error()
					}
					rep.Blocks = append(rep.Blocks, br)
				}
			}
			if asJSON {
				if err := writeJSON(stdio.Out, rep); err != nil {
					return err
				}
			} else if verr == nil {
				if _, err := fmt.Fprintf(stdio.Out, "%s: valid: signature block %d verified with %s (key digest %s)\n",
					args[0], rep.Block, rep.Key, rep.KeyDigest); err != nil {
					return err
				}
			}
			if verr != nil {
				return failErr(verr)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&keyPaths, "key", nil, "trusted RSA-3072 key (PEM, public or private); repeatable")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func newSecurebootInfoCmd(stdio Stdio) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "info FILE",
		Short: "List the signature blocks of a signed image and their key digests",
		Long:  "Like `espsecure signature_info_v2`: every valid block of FILE's signature sector with its key digest.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			signed, err := readInput("image", args[0], image.MaxFlashBytes)
			if err != nil {
				return err
			}
			content, sector, err := secureboot.Split(signed)
			if err != nil {
				return failErr(err)
			}
			blocks, err := secureboot.ParseSector(sector)
			if err != nil {
				return failErr(err)
			}
			digest := secureboot.ImageDigest(content)
			reps := make([]blockReport, 0, len(blocks))
			for _, b := range blocks {
				kd, err := b.KeyDigest()
				if err != nil {
					return failErr(err)
				}
				br := blockReport{Slot: b.Slot, Present: true, KeyDigest: hex.EncodeToString(kd[:])}
				if b.ImageDigest != digest {
					br.Error = "image digest in the block does not match the content"
				}
				reps = append(reps, br)
			}
			if asJSON {
				return writeJSON(stdio.Out, struct {
					File        string        `json:"file"`
					ImageDigest string        `json:"image_digest"`
					Blocks      []blockReport `json:"blocks"`
				}{args[0], hex.EncodeToString(digest[:]), reps})
			}
			fmt.Fprintf(stdio.Out, "%s: %d signed bytes, image digest %x\n", filepath.Base(args[0]), len(content), digest)
			for _, r := range reps {
				line := fmt.Sprintf("signature block %d: RSA-3072, key digest %s", r.Slot, r.KeyDigest)
				if r.Error != "" {
					line += " (" + r.Error + ")"
				}
				if _, err := fmt.Fprintln(stdio.Out, line); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
