package cli

import "github.com/spf13/cobra"

// PLACEHOLDER: replaced by the owner of this command group.
func newImageCmd(stdio Stdio) *cobra.Command {
	return &cobra.Command{Use: "image", Short: "(being built)"}
}
