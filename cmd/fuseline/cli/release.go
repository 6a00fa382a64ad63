package cli

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"fuseline/esp/secureboot"
	"fuseline/provisioning/recipe"
	"fuseline/release"
	"fuseline/release/pkcs11"
)

// newReleaseCmd is the `fuseline release` group: signed releases (design.md,
// What one board goes through, step 1 Intake). A release is a directory:
// manifest.json, manifest.json.p7s (detached CMS) and the images.
func newReleaseCmd(stdio Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Signed releases: create, sign (PEM key or PKCS#11 HSM), verify, inspect",
	}
	cmd.AddCommand(
		newReleaseCreateCmd(stdio),
		newReleaseSignCmd(stdio),
		newReleaseVerifyCmd(stdio),
		newReleaseInspectCmd(stdio),
	)
	return cmd
}

// relExit maps library errors to exit codes: a refused or malformed
// release is a failed check (1); anything else is a problem with the
// command's inputs or the station (2).
func relExit(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*ExitError](err); ok {
		return err
	}
	if _, ok := errors.AsType[*release.RefusedError](err); ok {
		return failErr(err)
	}
	if _, ok := errors.AsType[*release.RegionError](err); ok {
		return failErr(err)
	}
	if _, ok := errors.AsType[*release.FormatError](err); ok {
		return failErr(err)
	}
	return &ExitError{Code: ExitUsage, Err: err}
}

// relParseFile parses ROLE:TARGET:PATH; TARGET is a flash offset, or for
// role subdevice DEVICE or DEVICE@OFFSET.
func relParseFile(s string) (release.FileSpec, error) {
	parts := strings.SplitN(s, ":", 3)
	if len(parts) != 3 || parts[2] == "" {
		return release.FileSpec{}, usageErr("--file %q: want ROLE:OFFSET:PATH (or subdevice:DEVICE[@OFFSET]:PATH)", s)
	}
	spec := release.FileSpec{Role: release.Role(parts[0]), Source: parts[2]}
	if !spec.Role.Valid() {
		return spec, usageErr("--file %q: unknown role %q (bootloader, partition-table, otadata, app/factory, app/test, app/ota_N, data, data/LABEL, subdevice)", s, parts[0])
	}
	target := parts[1]
	if spec.Role == release.RoleSubdevice {
		dev, off, hasOff := strings.Cut(target, "@")
		spec.Device = dev
		if !hasOff {
			return spec, nil
		}
		target = off
	}
	v, err := strconv.ParseUint(target, 0, 32)
	if err != nil {
		return spec, usageErr("--file %q: offset %q is not a number (0x10000 or 65536)", s, target)
	}
	spec.Offset = uint32(v)
	return spec, nil
}

// relSigner loads a signing key from a PEM file or a PKCS#11 URI. close
// releases an HSM session. The PIN comes from the URI or FUSELINE_PKCS11_PIN
// and is never printed.
func relSigner(ctx context.Context, spec string) (crypto.Signer, func(), error) {
	if strings.HasPrefix(strings.ToLower(spec), "pkcs11:") {
		u, err := pkcs11.ParseURI(spec)
		if err != nil {
			return nil, nil, usageErr("%w", err)
		}
		pin, err := u.PIN(os.Getenv)
		if err != nil {
			return nil, nil, usageErr("%w", err)
		}
		k, err := pkcs11.Open(ctx, u, pin)
		if err != nil {
			return nil, nil, usageErr("%w", err)
		}
		return k, func() { k.Close() }, nil
	}
	b, err := readInput("key", spec, maxKeyFile)
	if err != nil {
		return nil, nil, err
	}
	k, err := relParseKey(b)
	if err != nil {
		return nil, nil, usageErr("key %s: %w", spec, err)
	}
	return k, func() {}, nil
}

// relParseKey reads the first private key of a PEM file: PKCS#8, PKCS#1
// (RSA) or SEC 1 (EC). Errors never contain key bytes.
func relParseKey(b []byte) (crypto.Signer, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("no PEM private key found")
		}
		if _, enc := blk.Headers["Proc-Type"]; enc {
			return nil, errors.New("encrypted PEM keys are not supported; use a PKCS#11 token for protected keys")
		}
		var k any
		var err error
		switch blk.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(blk.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("encrypted PEM keys are not supported; use a PKCS#11 token for protected keys")
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s block does not parse", blk.Type)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%T cannot sign", k)
		}
		return s, nil
	}
}

// relCerts reads every certificate of a PEM (or single DER) file.
func relCerts(what, path string) ([]*x509.Certificate, error) {
	b, err := readInput(what, path, maxKeyFile)
	if err != nil {
		return nil, err
	}
	certs, err := release.ParseCertificates(b)
	if err != nil {
		return nil, usageErr("%s %s: %w", what, path, err)
	}
	return certs, nil
}

// relCRLs reads every CRL of a PEM (or single DER) file.
func relCRLs(path string) ([]*x509.RevocationList, error) {
	b, err := readInput("CRL", path, recipe.MaxTrustFile)
	if err != nil {
		return nil, err
	}
	crls, err := release.ParseCRLs(b)
	if err != nil {
		return nil, usageErr("CRL %s: %w", path, err)
	}
	return crls, nil
}

func newReleaseCreateCmd(stdio Stdio) *cobra.Command {
	var (
		opts    release.CreateOptions
		secure  uint32
		files   []string
		sbKeys  []string
		out     string
		created string
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "create --product P [--chip C] [--version V] [--secure-version N] --file ROLE:OFFSET:PATH ... -o DIR",
		Short: "Make an unsigned release directory: copy the images in and write manifest.json",
		Long: "Copies each --file into DIR and writes manifest.json (canonical JSON) with its role, flash offset " +
			"(or sub-device: subdevice:DEVICE[@OFFSET]:PATH), size and SHA-256. With --sb-key (PEM or pkcs11: URI, " +
			"up to 3) the bootloader and app images are Secure Boot v2 signed as they are copied, so the manifest " +
			"vouches for the signed images. --chip, --version and --secure-version must agree with the bootloader and app " +
			"headers (chip_id) and the apps' descriptors (esp_app_desc_t); left out, they are read from them. " +
			"Sign the result with `fuseline release sign`.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if out == "" || len(files) == 0 || opts.Product == "" {
				return usageErr("release create needs --product, at least one --file and -o DIR")
			}
			if cmd.Flags().Changed("secure-version") {
				opts.SecureVersion = &secure
			}
			for _, f := range files {
				spec, err := relParseFile(f)
				if err != nil {
					return err
				}
				opts.Files = append(opts.Files, spec)
			}
			if created != "" {
				t, err := time.Parse(time.RFC3339, created)
				if err != nil {
					return usageErr("--created %q: want RFC 3339 (2026-11-21T10:00:00Z)", created)
				}
				opts.Created = t
			}
			for _, spec := range sbKeys {
				var k crypto.Signer
				if strings.HasPrefix(strings.ToLower(spec), "pkcs11:") {
					s, closeKey, err := relSigner(ctx, spec)
					if err != nil {
						return err
					}
					defer closeKey()
					k = s
				} else {
					b, err := readInput("--sb-key", spec, maxKeyFile)
					if err != nil {
						return err
					}
					pk, err := secureboot.ParsePrivateKeyPEM(b)
					if err != nil {
						return usageErr("--sb-key %s: %w", spec, err)
					}
					k = pk
				}
				opts.SecureBoot = append(opts.SecureBoot, k)
			}
			m, err := release.Create(ctx, out, opts)
			if err != nil {
				if _, ok := errors.AsType[*release.FormatError](err); ok {
					return usageErr("%w", err)
				}
				return relExit(err)
			}
			if asJSON {
				return writeJSON(stdio.Out, m)
			}
			fmt.Fprintf(stdio.Out, "created %s: %s %s (%s, secure_version %d), %d files\n", out, m.Product, m.Version, m.Chip, m.SecureVersion, len(m.Files))
			relPrintFiles(stdio.Out, m)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Chip, "chip", "", "chip: esp32s3, esp32c3, esp32 (default: the images' chip_id)")
	f.StringVar(&opts.Product, "product", "", "product name (the anti-rollback key)")
	f.StringVar(&opts.Version, "version", "", "semantic version, e.g. 1.4.0 (default: the app descriptor's)")
	f.Uint32Var(&secure, "secure-version", 0, "the app's anti-rollback secure_version (default: the app descriptor's)")
	f.StringArrayVar(&files, "file", nil, "ROLE:OFFSET:PATH or subdevice:DEVICE[@OFFSET]:PATH (repeat)")
	f.StringArrayVar(&sbKeys, "sb-key", nil, "Secure Boot v2 key for bootloader/app images: RSA-3072 PEM or pkcs11: URI (repeat, up to 3)")
	f.StringVarP(&out, "out", "o", "", "release directory to create")
	f.StringVar(&created, "created", "", "creation time, RFC 3339 (default now)")
	f.BoolVar(&asJSON, "json", false, "print the manifest as JSON")
	return cmd
}

func newReleaseSignCmd(stdio Stdio) *cobra.Command {
	var keyPath, uri, certPath, chainPath string
	cmd := &cobra.Command{
		Use:   "sign --key KEY.pem|--pkcs11 URI --cert CERT.pem [--chain CHAIN.pem] DIR",
		Short: "Sign a release: write DIR/manifest.json.p7s (detached CMS, DER)",
		Long: "Checks every file of the release against the manifest, then signs manifest.json with the key " +
			"(a PEM file, or a PKCS#11 token named by an RFC 7512 URI such as " +
			"pkcs11:token=station;object=signer?module-path=/usr/lib/softhsm/libsofthsm2.so; the PIN comes from " +
			"pin-value/pin-source or $" + pkcs11.PINEnv + " and is never printed) and embeds the certificate and chain.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if (keyPath == "") == (uri == "") {
				return usageErr("release sign needs exactly one of --key and --pkcs11")
			}
			if certPath == "" {
				return usageErr("release sign needs --cert")
			}
			certs, err := relCerts("--cert", certPath)
			if err != nil {
				return err
			}
			s := release.Signer{Cert: certs[0], Chain: certs[1:]}
			if chainPath != "" {
				chain, err := relCerts("--chain", chainPath)
				if err != nil {
					return err
				}
				s.Chain = append(s.Chain, chain...)
			}
			spec := keyPath
			if uri != "" {
				spec = uri
			}
			key, closeKey, err := relSigner(ctx, spec)
			if err != nil {
				return err
			}
			defer closeKey()
			s.Key = key
			if err := release.SignDir(ctx, args[0], s); err != nil {
				return relExit(err)
			}
			fmt.Fprintf(stdio.Out, "signed %s by %q (serial 0x%s), chain of %d\n",
				filepath.Join(args[0], release.SignatureName), s.Cert.Subject.String(), s.Cert.SerialNumber.Text(16), len(s.Chain))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyPath, "key", "", "signing key, PEM (tests; production uses --pkcs11)")
	f.StringVar(&uri, "pkcs11", "", "signing key on a PKCS#11 token, RFC 7512 URI")
	f.StringVar(&certPath, "cert", "", "the key's certificate, PEM (further certificates in it count as chain)")
	f.StringVar(&chainPath, "chain", "", "intermediate certificates, PEM, issuer first")
	return cmd
}

// relVerifyResult is `release verify --json`.
type relVerifyResult struct {
	Valid         bool      `json:"valid"`
	Reason        string    `json:"reason,omitempty"`
	Detail        string    `json:"detail,omitempty"`
	Product       string    `json:"product,omitempty"`
	Chip          string    `json:"chip,omitempty"`
	Version       string    `json:"version,omitempty"`
	SecureVersion uint32    `json:"secure_version,omitempty"`
	Signer        string    `json:"signer,omitempty"`
	Chain         []string  `json:"chain,omitempty"`
	SigningTime   time.Time `json:"signing_time,omitzero"`
	Files         int       `json:"files,omitempty"`
	Bytes         int64     `json:"bytes,omitempty"`
	StateUpdated  bool      `json:"state_updated,omitempty"`
	Warnings      []string  `json:"warnings,omitempty"`
}

func newReleaseVerifyCmd(stdio Stdio) *cobra.Command {
	var (
		trust, crls, chains, names []string
		stateDir, stale, at        string
		asJSON                     bool
	)
	cmd := &cobra.Command{
		Use:   "verify --trust ROOT.pem [--crl CRL.pem] [--signer-name CN] [--state DIR] DIR",
		Short: "Authenticate a release and stream-verify every image; exit 0 valid, 1 refused",
		Long: "Checks the CMS signature over manifest.json against the trust anchors (chain, codeSigning EKU, " +
			"validity, signer names, CRLs signed by the issuer), the station's anti-rollback state (--state), then " +
			"streams every image against its size and SHA-256, and authenticates the manifest again at the end. " +
			"A refusal prints one line with the reason. With --state, an accepted release raises the floor.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(trust) == 0 {
				return usageErr("release verify needs --trust ROOT.pem")
			}
			pol := release.Policy{Roots: x509.NewCertPool(), StateDir: stateDir, SignerNames: names}
			for _, p := range trust {
				certs, err := relCerts("--trust", p)
				if err != nil {
					return err
				}
				for _, c := range certs {
					pol.Roots.AddCert(c)
				}
			}
			for _, p := range chains {
				certs, err := relCerts("--chain", p)
				if err != nil {
					return err
				}
				pol.Intermediates = append(pol.Intermediates, certs...)
			}
			for _, p := range crls {
				l, err := relCRLs(p)
				if err != nil {
					return err
				}
				pol.CRLs = append(pol.CRLs, l...)
			}
			// A station given CRLs expects the signer's issuer to be covered.
			pol.RequireCRL = len(pol.CRLs) > 0
			switch stale {
			case "refuse":
			case "warn":
				pol.StaleCRL = release.StaleCRLWarn
			default:
				return usageErr("--stale-crl %q: want refuse or warn", stale)
			}
			switch at {
			case "now":
			case "signing-time":
				pol.ValidityAt = release.AtSigningTime
			default:
				return usageErr("--at %q: want now or signing-time", at)
			}
			if _, err := os.Stat(args[0]); err != nil {
				return usageErr("release directory: %w", err)
			}
			a, err := release.Verify(cmd.Context(), args[0], pol)
			if err != nil {
				if re, ok := errors.AsType[*release.RefusedError](err); ok && asJSON {
					writeJSON(stdio.Out, relVerifyResult{Reason: string(re.Reason), Detail: re.Detail})
				}
				return relExit(err)
			}
			for _, w := range a.Warnings {
				fmt.Fprintf(stdio.Err, "warning: %s\n", w)
			}
			m := a.Manifest
			var total int64
			for _, f := range m.Files {
				total += f.Size
			}
			if asJSON {
				r := relVerifyResult{Valid: true, Product: m.Product, Chip: m.Chip, Version: m.Version, SecureVersion: m.SecureVersion,
					Signer: a.Signer.Subject.String(), SigningTime: a.SigningTime, Files: len(m.Files), Bytes: total,
					StateUpdated: stateDir != "", Warnings: a.Warnings}
				for _, c := range a.Chain {
					r.Chain = append(r.Chain, c.Subject.String())
				}
				return writeJSON(stdio.Out, r)
			}
			fmt.Fprintf(stdio.Out, "valid: %s %s (%s, secure_version %d) signed by %q, %d files (%d bytes) verified\n",
				m.Product, m.Version, m.Chip, m.SecureVersion, a.Signer.Subject.String(), len(m.Files), total)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&trust, "trust", nil, "trust anchor certificates, PEM (repeat)")
	f.StringArrayVar(&crls, "crl", nil, "CRL, PEM or DER (repeat); when given, the signer's issuer must have one")
	f.StringArrayVar(&chains, "chain", nil, "extra intermediate certificates, PEM (repeat)")
	f.StringArrayVar(&names, "signer-name", nil, "allowed signer: subject CN or full DN (repeat)")
	f.StringVar(&stateDir, "state", "", "anti-rollback state directory (refuse releases older than accepted ones; record this one)")
	f.StringVar(&stale, "stale-crl", "refuse", "a CRL past its next update: refuse or warn")
	f.StringVar(&at, "at", "now", "check certificate validity at: now or signing-time")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// relInspect is `release inspect --json`.
type relInspect struct {
	Dir            string            `json:"dir"`
	Manifest       *release.Manifest `json:"manifest"`
	ManifestSHA256 release.Digest    `json:"manifest_sha256"`
	Signature      *relSigInfo       `json:"signature"`
	Verified       bool              `json:"verified"`
}

type relSigInfo struct {
	Signers      int       `json:"signers"`
	Detached     bool      `json:"detached"`
	Signer       string    `json:"signer,omitempty"`
	Issuer       string    `json:"issuer,omitempty"`
	Serial       string    `json:"serial,omitempty"`
	NotBefore    time.Time `json:"not_before,omitzero"`
	NotAfter     time.Time `json:"not_after,omitzero"`
	SigningTime  time.Time `json:"signing_time,omitzero"`
	Certificates []string  `json:"certificates"`
}

func newReleaseInspectCmd(stdio Stdio) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect DIR",
		Short: "Show a release's manifest and signature (nothing is verified; use release verify)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			mb, err := readInput("manifest", filepath.Join(dir, release.ManifestName), maxTextFile)
			if err != nil {
				return err
			}
			m, err := release.ParseManifest(mb)
			if err != nil {
				return failErr(err)
			}
			out := relInspect{Dir: dir, Manifest: m}
			out.ManifestSHA256 = relSum(mb)
			if sb, err := readInput("signature", filepath.Join(dir, release.SignatureName), maxTextFile); err == nil {
				info, err := release.ParseSignature(sb)
				if err != nil {
					return failErr(err)
				}
				si := &relSigInfo{Signers: info.Signers, Detached: info.Detached, SigningTime: info.SigningTime}
				if c := info.Signer; c != nil {
					si.Signer, si.Issuer, si.Serial = c.Subject.String(), c.Issuer.String(), "0x"+c.SerialNumber.Text(16)
					si.NotBefore, si.NotAfter = c.NotBefore, c.NotAfter
				}
				for _, c := range info.Certificates {
					si.Certificates = append(si.Certificates, c.Subject.String())
				}
				out.Signature = si
			} else if !errors.Is(err, os.ErrNotExist) {
				return usageErr("read signature: %w", err)
			}
			if asJSON {
				return writeJSON(stdio.Out, out)
			}
			w := stdio.Out
			fmt.Fprintf(w, "product         %s\nchip            %s\nversion         %s\nsecure_version  %d\ncreated         %s\nmanifest sha256 %s\n",
				m.Product, m.Chip, m.Version, m.SecureVersion, m.Created.Format(time.RFC3339), out.ManifestSHA256)
			relPrintFiles(w, m)
			if s := out.Signature; s == nil {
				fmt.Fprintf(w, "signature       none (%s missing): unsigned\n", release.SignatureName)
			} else {
				fmt.Fprintf(w, "signature       %d signer(s), detached %v, signed %s\n", s.Signers, s.Detached, s.SigningTime.Format(time.RFC3339))
				fmt.Fprintf(w, "signer          %s (serial %s, valid %s to %s)\nissuer          %s\n",
					s.Signer, s.Serial, s.NotBefore.Format(time.RFC3339), s.NotAfter.Format(time.RFC3339), s.Issuer)
				for _, c := range s.Certificates {
					fmt.Fprintf(w, "certificate     %s\n", c)
				}
				fmt.Fprintln(w, "(not verified: use `fuseline release verify --trust ROOT.pem`)")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func relPrintFiles(w io.Writer, m *release.Manifest) {
	for _, f := range m.Files {
		fmt.Fprintf(w, "  %-16s %-22s %10d  %s  %s\n", f.Role, f.Region(), f.Size, f.SHA256, f.Path)
	}
}

func relSum(b []byte) release.Digest { return sha256.Sum256(b) }
