package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"fuseline/internal/inputfile"
	"fuseline/reports/audit"
)

// newAuditCmd is "fuseline audit": check the station's tamper-evident audit
// log and prove records of a device, offline, from the files alone.
func newAuditCmd(stdio Stdio) *cobra.Command {
	var data string
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify the tamper-evident audit log and print inclusion proofs",
		Long: `Verify the station's tamper-evident audit log and print inclusion proofs.

LOG defaults to DATA/audit.log. The checkpoints (LOG's directory/checkpoints/*.note)
and the station public key (LOG's directory/station.pub) are found beside the log
unless --checkpoint and --key say otherwise; an auditor can therefore check a copied
data directory, or a log with a checkpoint and key received separately.`,
	}
	cmd.PersistentFlags().StringVar(&data, "data", audit.DefaultDir, "station data directory")
	cmd.AddCommand(newAuditVerifyCmd(stdio, &data), newAuditProveCmd(stdio, &data))
	return cmd
}

// auditInputs are the files a verify or prove reads.
type auditInputs struct {
	log         string
	checkpoints []audit.CheckpointFile
	verifier    note.Verifier
	keyPath     string
}

func loadAuditInputs(data string, args, cpFiles []string, key string) (*auditInputs, error) {
	in := &auditInputs{log: audit.NewLayout(data).Log}
	if len(args) == 1 {
		in.log = args[0]
	}
	if _, err := os.Stat(in.log); err != nil {
		return nil, usageErr("audit: %w", err)
	}
	beside := audit.NewLayout(filepath.Dir(in.log))
	if len(cpFiles) > 0 {
		for _, p := range cpFiles {
			b, err := readInput("checkpoint", p, audit.MaxCheckpointFile)
			if err != nil {
				return nil, err
			}
			in.checkpoints = append(in.checkpoints, audit.CheckpointFile{Name: p, Note: b})
		}
	} else {
		var err error
		if in.checkpoints, err = audit.ReadCheckpoints(beside.Checkpoints); err != nil {
			return nil, usageErr("%w", err)
		}
	}
	in.keyPath = key
	if in.keyPath == "" {
		if _, err := os.Stat(beside.PublicKey); err == nil {
			in.keyPath = beside.PublicKey
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, usageErr("audit: %w", err)
		}
	}
	if in.keyPath != "" {
		v, err := audit.ReadVerifier(in.keyPath)
		if err != nil {
			return nil, usageErr("%w", err)
		}
		in.verifier = v
	}
	if len(in.checkpoints) > 0 && in.verifier == nil {
		return nil, usageErr("audit: %d checkpoint(s) but no station public key: give --key FILE (the station.pub of the station)", len(in.checkpoints))
	}
	return in, nil
}

func newAuditVerifyCmd(stdio Stdio, data *string) *cobra.Command {
	var (
		cpFiles       []string
		key           string
		asJSON        bool
		noCheckpoints bool
	)
	cmd := &cobra.Command{
		Use:   "verify [LOG]",
		Short: "Check the log's chain, Merkle root and signed checkpoints; say what was changed",
		Long: `Check that every line is a canonical record, the hash chain is unbroken, the
last line is complete, every checkpoint is signed by the station key, and the
records hash to each checkpoint's root. Each finding names the line (1-based)
and record (0-based seq) and says whether a record was edited, deleted,
inserted, reordered, truncated or torn, or a checkpoint forged or signed by
another key.

A station signs a checkpoint after every run's result and when it closes the
log, so a log with records and no checkpoint beside it (or a result that no
checkpoint in checkpoints/ covers) is a finding: the checkpoints were
removed, and with them the only proof that no records were cut off the end.
Give --no-checkpoints for a log that never had any. Records after the last
checkpoint cannot be proven complete; a run among them left with no result
is named.

Exit status: 0 intact, 1 tampered or damaged, 2 unreadable input or bad flags.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := loadAuditInputs(*data, args, cpFiles, key)
			if err != nil {
				return err
			}
			rep, err := audit.VerifyFile(cmd.Context(), in.log, audit.VerifyOptions{Checkpoints: in.checkpoints, Verifier: in.verifier,
				NoCheckpoints: noCheckpoints, AllCheckpoints: len(cpFiles) == 0})
			if err != nil {
				return usageErr("%w", err)
			}
			if asJSON {
				if err := writeJSON(stdio.Out, rep); err != nil {
					return err
				}
			} else {
				printVerifyReport(stdio.Out, in.log, rep)
			}
			if !rep.Intact() {
				return failErr(fmt.Errorf("audit: %s: %d problem(s), first: %s", in.log, len(rep.Problems), rep.Problems[0]))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&cpFiles, "checkpoint", nil, "signed checkpoint FILE to check against (repeatable; default: the checkpoints beside LOG)")
	f.StringVar(&key, "key", "", "station public key FILE (note verifier key; default: station.pub beside LOG)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.BoolVar(&noCheckpoints, "no-checkpoints", false, "the log never had signed checkpoints (not written by a station): do not count their absence as a finding")
	return cmd
}

func printVerifyReport(w io.Writer, log string, rep *audit.Report) {
	signed := 0
	for _, c := range rep.Checkpoints {
		if c.Signed {
			signed++
		}
	}
	if rep.Intact() {
		covered := "no record covered by a checkpoint"
		if rep.Covered > 0 {
			covered = fmt.Sprintf("records 0..%d covered", rep.Covered-1)
		}
		fmt.Fprintf(w, "%s: intact: %d records, chain unbroken, %d checkpoint(s) signed and matching, %s\n",
			log, rep.Records, signed, covered)
	} else {
		fmt.Fprintf(w, "%s: TAMPERED or damaged: %d problem(s) in %d records\n", log, len(rep.Problems), rep.Records)
		for _, p := range rep.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	fmt.Fprintf(w, "root %s\n", rep.Root)
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func newAuditProveCmd(stdio Stdio, data *string) *cobra.Command {
	var (
		device string
		cpFile string
		key    string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "prove [LOG] --device MAC",
		Short: "Print inclusion proofs of every record of a device against the latest checkpoint",
		Long: `Print, for every record of the device, its line, leaf hash and RFC 6962
inclusion proof against the latest signed checkpoint (or --checkpoint FILE).
The checkpoint's signature is checked with the station key and every proof is
checked before it is printed; with --json the output is self-contained
(checkpoint note included) for an auditor to re-check offline.

Exit status: 0 proofs printed, 1 the log does not match the checkpoint or the
device has no covered record, 2 unreadable input or bad flags.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if device == "" {
				return usageErr("audit prove: --device MAC is required")
			}
			if _, err := audit.NormalizeMAC(device); err != nil {
				return usageErr("audit prove: %w", err)
			}
			var cps []string
			if cpFile != "" {
				cps = []string{cpFile}
			}
			in, err := loadAuditInputs(*data, args, cps, key)
			if err != nil {
				return err
			}
			if len(in.checkpoints) == 0 {
				return usageErr("audit prove: no checkpoint beside %s; give --checkpoint FILE", in.log)
			}
			// The latest is the last: ReadCheckpoints sorts by size.
			cf := in.checkpoints[len(in.checkpoints)-1]
			sc, err := audit.OpenCheckpoint(cf.Note, in.verifier)
			if err != nil {
				return failErr(fmt.Errorf("audit prove: checkpoint %s: %w", cf.Name, err))
			}
			f, _, err := inputfile.Open(cmd.Context(), in.log)
			if err != nil {
				return usageErr("audit prove: %w", err)
			}
			defer f.Close()
			p, err := audit.ProveDevice(cmd.Context(), f, sc, device)
			if err != nil {
				return failErr(fmt.Errorf("audit prove: %w", err))
			}
			if err := p.Check(in.verifier); err != nil {
				return failErr(fmt.Errorf("audit prove: %w", err))
			}
			if asJSON {
				if err := writeJSON(stdio.Out, p); err != nil {
					return err
				}
			} else {
				printProofs(stdio.Out, cf.Name, p)
			}
			if len(p.Records) == 0 {
				return failErr(fmt.Errorf("audit prove: no record of %s is covered by checkpoint %s", p.Device, cf.Name))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&device, "device", "", "the device's MAC (aa:bb:cc:dd:ee:ff, any case or separator)")
	f.StringVar(&cpFile, "checkpoint", "", "signed checkpoint FILE to prove against (default: the latest beside LOG)")
	f.StringVar(&key, "key", "", "station public key FILE (default: station.pub beside LOG)")
	f.BoolVar(&asJSON, "json", false, "print the proofs as JSON")
	return cmd
}

func printProofs(w io.Writer, cpName string, p *audit.Proofs) {
	fmt.Fprintf(w, "device %s: %d record(s) proven against checkpoint %s\n", p.Device, len(p.Records), cpName)
	fmt.Fprintf(w, "origin %s, tree size %d, root %s (signature checked)\n", p.Origin, p.TreeSize, p.Root)
	for _, inc := range p.Records {
		r, err := audit.ParseRecord([]byte(inc.Record))
		what := "?"
		if err == nil {
			what = fmt.Sprintf("%s %s %s", r.Time.Format("2006-01-02T15:04:05.000000Z07:00"), r.Event, r.Result)
		}
		fmt.Fprintf(w, "record %d: %s\n  leaf %s\n", inc.Index, what, inc.Leaf)
		for i, h := range inc.Proof {
			fmt.Fprintf(w, "  proof[%d] %s\n", i, h)
		}
	}
	if len(p.Uncovered) > 0 {
		fmt.Fprintf(w, "not yet covered by this checkpoint: records %v\n", p.Uncovered)
	}
}
