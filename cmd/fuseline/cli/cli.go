// Package cli is the fuseline command tree. It parses flags, calls the
// library packages, renders results as text or --json, and maps errors to the
// documented exit codes in one place (exitCode). Only main exits.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Exit codes, shared by every subcommand.
const (
	ExitOK      = 0 // success, or "valid"
	ExitFail    = 1 // the board failed or was refused; the input is invalid
	ExitUsage   = 2 // bad flags, bad recipe, unreadable input file
	ExitLink    = 3 // link or fixture error
	exitUnknown = ExitFail
)

// Stdio is where a command reads and writes.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

// ExitError carries an exit code with the error that caused it.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// usageErr marks err as a usage error (exit 2).
func usageErr(format string, a ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, a...)}
}

// failErr marks err as a failed check (exit 1).
func failErr(err error) error { return &ExitError{Code: ExitFail, Err: err} }

// linkErr marks err as a link or fixture failure (exit 3).
func linkErr(err error) error { return &ExitError{Code: ExitLink, Err: err} }

func exitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	if ee, ok := errors.AsType[*ExitError](err); ok {
		return ee.Code
	}
	return exitUnknown
}

// Run executes the command line args and returns the process exit code.
func Run(ctx context.Context, args []string, stdio Stdio) int {
	root := newRoot(stdio)
	root.SetArgs(args)
	root.SetIn(stdio.In)
	root.SetOut(stdio.Out)
	root.SetErr(stdio.Err)
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintf(stdio.Err, "fuseline: %v\n", err)
		if _, ok := errors.AsType[*ExitError](err); !ok {
			// Anything cobra itself rejects (unknown flag, wrong arg count) is usage.
			return ExitUsage
		}
	}
	return exitCode(err)
}

func newRoot(stdio Stdio) *cobra.Command {
	root := &cobra.Command{
		Use:           "fuseline",
		Short:         "End-of-line provisioning and HIL test station for ESP32-family boards",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(
		newImageCmd(stdio),
		newPartitionsCmd(stdio),
		newSecurebootCmd(stdio),
		newFlashencCmd(stdio),
		newEfuseCmd(stdio),
		newFlashCmd(stdio),
		newSimCmd(stdio),
		newReportCmd(stdio),
		newReleaseCmd(stdio),
		newRunCmd(stdio),
		newDemoCmd(stdio),
		newAuditCmd(stdio),
		newJournalCmd(stdio),
	)
	return root
}

// writeJSON renders v as indented JSON, for --json output.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
