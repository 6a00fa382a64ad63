package cli

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"fuseline/reports/evidence"
	"fuseline/reports/iec62443"
	"fuseline/reports/lot"
	"fuseline/reports/oscal"

	"github.com/spf13/cobra"
)

// newReportCmd is `fuseline report`: per-device evidence, lot reports, the
// IEC 62443 matrix, the OSCAL export and the offline bundle check.
func newReportCmd(stdio Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Evidence, lot reports, the IEC 62443 matrix, OSCAL export, offline verification",
	}
	cmd.AddCommand(
		newReportDeviceCmd(stdio),
		newReportLotCmd(stdio),
		newReportMatrixCmd(stdio),
		newReportOSCALCmd(stdio),
		newReportVerifyCmd(stdio),
	)
	return cmd
}

func newReportDeviceCmd(stdio Stdio) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "device EVIDENCE.json",
		Short: "Show one device's evidence record: a summary, then every check with its outcome and how it was established (observed, computed, modelled); or its canonical JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return usageErr("report device: --format %q: want text or json", format)
			}
			data, err := readInputContext(cmd.Context(), "evidence", args[0], evidence.MaxRecordSize)
			if err != nil {
				return err
			}
			r, err := evidence.Parse(data)
			if err != nil {
				return failErr(fmt.Errorf("report device: %s: %w", args[0], err))
			}
			if format == "json" {
				b, err := evidence.Marshal(r)
				if err != nil {
					return failErr(err)
				}
				_, err = stdio.Out.Write(b)
				return err
			}
			if err := evidence.WriteSummary(stdio.Out, r); err != nil {
				return err
			}
			fmt.Fprintln(stdio.Out)
			if err := evidence.WriteChecks(stdio.Out, r); err != nil {
				return err
			}
			_, err = fmt.Fprintln(stdio.Out, "Signature and inclusion proof are not checked here: run `fuseline report verify` on the bundle.")
			return err
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "text or json")
	return cmd
}

func newReportLotCmd(stdio Stdio) *cobra.Command {
	var out, title string
	cmd := &cobra.Command{
		Use:   "lot DIR -o OUT.html|OUT.pdf",
		Short: "Lot report (totals, yield, failures by reason, time per board, devices) from the evidence files in DIR (a bundle or a station data directory)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ext := strings.ToLower(filepath.Ext(out))
			if out == "" || (ext != ".html" && ext != ".htm" && ext != ".pdf") {
				return usageErr("report lot: -o OUT.html or -o OUT.pdf is required")
			}
			files, err := readEvidenceDir(args[0])
			if err != nil {
				return err
			}
			rep, err := writeLotReport(files, out, title)
			if err != nil {
				return err
			}
			t := rep.Totals
			_, err = fmt.Fprintf(stdio.Out, "%s: %d boards, %d PASS, %d FAIL, %d REFUSED, yield %.1f %%\n",
				out, t.Records, t.Pass, t.Fail, t.Refuse, 100*t.Yield)
			return err
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "output file: .html or .pdf")
	cmd.Flags().StringVar(&title, "title", "", "report title (default: Lot report — LOT names)")
	return cmd
}

func newReportMatrixCmd(stdio Stdio) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "matrix",
		Short: "The IEC 62443-4-2 requirement matrix: how each requirement is met and which evidence proves it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m := iec62443.Fuseline()
			switch format {
			case "md", "markdown":
				return m.WriteMarkdown(stdio.Out)
			case "html":
				return m.WriteHTML(stdio.Out)
			case "json":
				return m.WriteJSON(stdio.Out)
			}
			return usageErr("report matrix: --format %q: want md, html or json", format)
		},
	}
	cmd.Flags().StringVar(&format, "format", "md", "md, html or json")
	return cmd
}

func newReportOSCALCmd(stdio Stdio) *cobra.Command {
	var out, title string
	cmd := &cobra.Command{
		Use:   "oscal DIR -o OUT.json",
		Short: "OSCAL 1.1.3 assessment-results for the evidence files in DIR (a bundle or a station data directory), validated against the OSCAL schema",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageErr("report oscal: -o OUT.json is required (- for standard output)")
			}
			files, err := readEvidenceDir(args[0])
			if err != nil {
				return err
			}
			if out == "-" {
				b, err := oscalBytes(files, title)
				if err != nil {
					return err
				}
				_, err = stdio.Out.Write(b)
				return err
			}
			if err := writeOSCAL(files, out, title); err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdio.Out, "%s: OSCAL %s assessment-results for %d evidence records (valid)\n", out, oscal.Version, len(files))
			return err
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "output file (- for standard output)")
	cmd.Flags().StringVar(&title, "title", "", "document title")
	return cmd
}

func newReportVerifyCmd(stdio Stdio) *cobra.Command {
	var keyFile, origin string
	cmd := &cobra.Command{
		Use:   "verify BUNDLE",
		Short: "Re-check offline every signature, inclusion proof and image hash of an evidence bundle (directory or tar)",
		Long: `Re-checks an evidence bundle offline: each evidence file's canonical form and
detached Ed25519 signature, its inclusion proof against a checkpoint signed by
the station key, and the SHA-256 of every image file in the bundle. When the
bundle carries the audit log (a station's data directory does: give the
directory itself), the log is checked against its signed checkpoints and every
result record in it must have its evidence file, and every evidence file its
result record: a removed device is named.

Give the station's published public key with --key; without it the bundle's
own station.pub is used, which a forger could have replaced (a warning says so).
Exit 0: everything verified. Exit 1: the first failure, naming the file.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := evidence.VerifyOptions{Origin: origin}
			if keyFile != "" {
				kb, err := os.ReadFile(keyFile)
				if err != nil {
					return usageErr("report verify: --key: %v", err)
				}
				if opts.Key, err = evidence.ParseStationKey(kb); err != nil {
					return usageErr("report verify: --key %s: %v", keyFile, err)
				}
			}
			b, err := readBundle(args[0])
			if err != nil {
				return err
			}
			rep, err := evidence.VerifyBundle(cmd.Context(), b, opts)
			for _, w := range warnings(rep) {
				fmt.Fprintf(stdio.Err, "warning: %s\n", w)
			}
			if err != nil {
				if _, ok := errors.AsType[*evidence.FileError](err); ok {
					return failErr(err)
				}
				return err
			}
			for _, d := range rep.Devices {
				old := ""
				if d.Schema != evidence.Schema {
					// A v1 record did not record it: what is shown is what
					// its target and check kinds still tell.
					old = "; " + d.Schema + " does not record how, this is inferred"
				}
				fmt.Fprintf(stdio.Out, "ok  %s  %s  %s  record %d of %d  (target %s: checks %s%s)\n", d.File, d.MAC, d.Verdict, d.LeafIndex, d.TreeSize,
					cmp.Or(d.Target, "unnamed"), d.Established, old)
			}
			if a := rep.AuditLog; a != nil {
				fmt.Fprintf(stdio.Out, "ok  %s  %d records (%d pinned by a signed checkpoint), %d result records: each has its evidence file, and each evidence file its result record\n",
					evidence.BundleAuditLogFile, a.Records, a.Covered, a.Results)
			}
			for _, im := range rep.ImagesChecked {
				fmt.Fprintf(stdio.Out, "ok  %s  SHA-256 matches the evidence\n", im)
			}
			for _, nv := range rep.NotVerified {
				fmt.Fprintf(stdio.Out, "--  %s\n", nv)
			}
			key := "given key"
			if rep.KeyFromBundle {
				key = "the bundle's own key"
			}
			cp := ""
			if rep.Checkpoint != nil {
				cp = fmt.Sprintf(", checkpoint %s tree %d", rep.Checkpoint.Origin, rep.Checkpoint.Size)
			}
			_, err = fmt.Fprintf(stdio.Out, "verified: %d evidence files, their signatures and inclusion proofs (%s%s), %d image files\n",
				len(rep.Devices), key, cp, len(rep.ImagesChecked))
			return err
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", "station public key file (note verifier key or PEM); overrides the bundle's station.pub")
	cmd.Flags().StringVar(&origin, "origin", "", "require this audit-log checkpoint origin")
	return cmd
}

func warnings(rep *evidence.BundleReport) []string {
	if rep == nil {
		return nil
	}
	return rep.Warnings
}

// readEvidenceDir reads every evidence file of dir: a bundle directory, a
// station's data directory or its evidence folder (evidence.EvidencePaths
// says which files are evidence).
func readEvidenceDir(dir string) ([]evidence.File, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	if !st.IsDir() {
		return nil, usageErr("%s is not a directory of evidence files", dir)
	}
	files, err := evidence.ReadFiles(os.DirFS(dir))
	if err != nil {
		if _, ok := errors.AsType[*evidence.FileError](err); ok {
			return nil, failErr(err)
		}
		return nil, usageErr("%v", err)
	}
	if len(files) == 0 {
		return nil, failErr(fmt.Errorf("no evidence files (*.json) in %s", dir))
	}
	return files, nil
}

// readBundle reads a bundle directory, or a tar / tar.gz file.
func readBundle(path string) (evidence.Bundle, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, usageErr("report verify: %v", err)
	}
	if st.IsDir() {
		b, err := evidence.ReadBundleFS(os.DirFS(path), 0)
		if err != nil {
			return nil, failErr(err)
		}
		return b, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, usageErr("report verify: %v", err)
	}
	defer f.Close()
	b, err := evidence.ReadBundleTar(f, 0)
	if err != nil {
		return nil, failErr(fmt.Errorf("%w (reading %s)", err, path))
	}
	return b, nil
}

// writeLotReport builds the lot report of files and writes it to out as
// HTML or PDF, by out's extension.
func writeLotReport(files []evidence.File, out, title string) (*lot.Report, error) {
	rep, err := lot.Build(evidence.Records(files), lot.Options{Title: title})
	if err != nil {
		return nil, failErr(err)
	}
	var b bytes.Buffer
	if strings.EqualFold(filepath.Ext(out), ".pdf") {
		err = rep.WritePDF(&b)
	} else {
		err = rep.WriteHTML(&b)
	}
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
		return nil, fmt.Errorf("report lot: %w", err)
	}
	return rep, nil
}

// oscalBytes is the OSCAL assessment-results document for files, validated:
// never hand an auditor a document that does not validate.
func oscalBytes(files []evidence.File, title string) ([]byte, error) {
	doc, err := oscal.AssessmentResults(files, oscal.Options{Title: title})
	if err != nil {
		return nil, failErr(err)
	}
	b, err := oscal.Marshal(doc)
	if err != nil {
		return nil, err
	}
	if err := oscal.Validate(b); err != nil {
		return nil, fmt.Errorf("report oscal: %w", err)
	}
	return b, nil
}

func writeOSCAL(files []evidence.File, out, title string) error {
	b, err := oscalBytes(files, title)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return fmt.Errorf("report oscal: %w", err)
	}
	return nil
}
