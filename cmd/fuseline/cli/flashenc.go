package cli

import "github.com/spf13/cobra"

// PLACEHOLDER: replaced by the owner of this command group.
func newFlashencCmd(stdio Stdio) *cobra.Command {
	return &cobra.Command{Use: "flashenc", Short: "(being built)"}
}
