package cli

import (
	"fmt"
	"net"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"fuseline/provisioning"
	"fuseline/reports/audit"
)

// newJournalCmd is `fuseline journal`: the boards whose runs were left
// unfinished, and the audited destruction of a device key held for one.
func newJournalCmd(stdio Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "journal",
		Short: "Abandoned boards in the station's journal, and destroying a held device key",
	}
	cmd.AddCommand(newJournalListCmd(stdio), newJournalDestroyKeyCmd(stdio))
	return cmd
}

func newJournalListCmd(stdio Stdio) *cobra.Command {
	var data string
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Boards whose last run did not pass: MAC, run, last step, age, whether a sealed key is held",
		Long: `List the boards in DATA/journal whose last run did not pass, oldest first.
While such a run is unfinished the station holds the board's flash-encryption
key, sealed to DATA/station.seal, so the run can be resumed. A board left
for good should have its key destroyed (fuseline journal destroy-key).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := provisioning.Abandoned(data, time.Now())
			if err != nil {
				return failErr(fmt.Errorf("journal list: %w", err))
			}
			if jsonOut {
				if list == nil {
					list = []provisioning.AbandonedBoard{}
				}
				return writeJSON(stdio.Out, list)
			}
			if len(list) == 0 {
				_, err := fmt.Fprintln(stdio.Out, "No abandoned boards.")
				return err
			}
			tw := tabwriter.NewWriter(stdio.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MAC\tRUN\tLAST STEP\tAGE\tKEY")
			for _, b := range list {
				key := "none"
				switch {
				case b.KeyDestroyed:
					key = "destroyed (cannot resume)"
				case b.KeyHeld && b.KeySealed:
					key = "sealed"
				case b.KeyHeld:
					key = "UNSEALED (sealed on the next run)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", b.MAC, b.Run, b.LastStep, ageText(b.Age), key)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&data, "data", audit.DefaultDir, "station data directory")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the list as JSON")
	return cmd
}

func newJournalDestroyKeyCmd(stdio Stdio) *cobra.Command {
	var o runOptions
	var yes bool
	cmd := &cobra.Command{
		Use:   "destroy-key MAC --yes --operator NAME",
		Short: "Destroy the device key held for an abandoned board (audited; the board can no longer be resumed)",
		Long: `Destroy the flash-encryption key the station holds for a board whose run
was left unfinished. An audit record (key.destroy, with the operator and the
key's digest) is written and synced first; the journal then records that the
board can no longer be resumed, and the key file is overwritten and removed.
A later run on that board is refused with that reason.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return usageErr("journal destroy-key: the board %s can never be resumed afterwards; give --yes to confirm", args[0])
			}
			if o.operator == "" {
				return usageErr("journal destroy-key: --operator is required (the audit record names who destroyed the key)")
			}
			if err := checkRunFlags(o); err != nil {
				return err
			}
			if hw, err := net.ParseMAC(args[0]); err != nil || len(hw) != 6 {
				return usageErr("journal destroy-key: %q is not a MAC (want aa:bb:cc:dd:ee:ff)", args[0])
			}
			ctx := cmd.Context()
			log, closeLog, err := openStationLog(ctx, o)
			if err != nil {
				return err
			}
			defer closeLog()
			if err := provisioning.DestroyKey(ctx, log, o.data, args[0], o.operator); err != nil {
				return failErr(fmt.Errorf("journal destroy-key: %w", err))
			}
			_, err = fmt.Fprintf(stdio.Out, "Destroyed the device key of %s; the board can no longer be resumed (audit record written).\n", args[0])
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.data, "data", audit.DefaultDir, "station data directory")
	f.StringVar(&o.station, "station", "station", "station name (audit log)")
	f.StringVar(&o.operator, "operator", "", "who destroys the key (required; recorded in the audit log)")
	f.BoolVar(&yes, "yes", false, "confirm: the board can never be resumed afterwards")
	o.slot, o.baud = "slot0", provisioning.DefaultBaud // not used; checkRunFlags checks them
	return cmd
}

// ageText renders how long a board has been left.
func ageText(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return d.Round(time.Second).String()
}
