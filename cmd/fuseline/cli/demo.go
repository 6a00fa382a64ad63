package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"fuseline/esp/chip"
	"fuseline/fixtures/virtual/boot"
	"fuseline/provisioning/recipe"
	"fuseline/provisioning/sim"
	"fuseline/provisioning/workspace"
)

// newDemoCmd is `fuseline demo`: the whole job on a virtual board.
func newDemoCmd(stdio Stdio) *cobra.Command {
	var (
		o        runOptions
		dir      string
		chipName string
		mode     string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Provision a virtual board end to end with demo keys and a synthetic release",
		Long: `Make a workspace (default ./fuseline-demo) with demo Secure Boot v2 signing
keys, a synthetic signed release laid out as an ESP-IDF build directory
(bootloader, partition table, factory app with version and secure_version)
and a recipe; start a blank virtual board; run the end-of-line flow on it with
live progress; reset the board into SPI boot and show its boot log reaching
the app banner; print where the evidence is.

The demo approves the irreversible steps itself (it is a virtual board).
Running it again reuses the keys and provisions a new blank board.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), stdio, o, dir, chipName, mode)
		},
	}
	addRunFlags(cmd, &o)
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "fuseline-demo", "workspace directory")
	f.StringVar(&chipName, "chip", "esp32s3", "chip: esp32s3, esp32c3 or esp32 (v3)")
	f.StringVar(&mode, "write-mode", string(recipe.HostEncrypted), "host-encrypted or chip-encrypted (esp32: host-encrypted only, chip-encrypted writes need the flasher stub)")
	// The demo keeps its station data inside the workspace unless told.
	cmd.Flags().Lookup("data").DefValue = ""
	o.data = ""
	return cmd
}

func runDemo(ctx context.Context, stdio Stdio, o runOptions, dir, chipName, mode string) error {
	if err := checkRunFlags(o); err != nil {
		return err
	}
	c, err := chip.ByName(chipName)
	if err != nil {
		return usageErr("--chip: %v", err)
	}
	if err := virtualModels(c); err != nil {
		return usageErr("--chip %s: %v", c.Arg(), err)
	}
	wm := recipe.WriteMode(mode)
	if wm != recipe.HostEncrypted && wm != recipe.ChipEncrypted {
		return usageErr("--write-mode %q: want host-encrypted or chip-encrypted", mode)
	}
	if o.data == "" {
		o.data = filepath.Join(dir, "fuseline-data")
	}
	o.yes, o.target = true, "virtual"
	say := func(format string, a ...any) {
		if !o.jsonOut {
			fmt.Fprintf(stdio.Out, format+"\n", a...)
		}
	}
	say("Fuseline demo: workspace %s", dir)
	if _, err := os.Stat(filepath.Join(dir, workspace.KeysDir, "sb0.pem")); err != nil {
		say("  generating a demo Secure Boot v2 signing key (RSA-3072) ...")
	}
	ws, err := workspace.Create(ctx, workspace.Options{Dir: dir, Chip: c, Version: "1.0.0", SecureVersion: 1,
		Recipe: workspace.RecipeOptions{WriteMode: wm, Floor: 1}})
	if err != nil {
		return failErr(err)
	}
	say("  keys     %s", strings.Join(ws.KeyPaths, ", "))
	say("  release  %s (ESP-IDF layout: bootloader, partition table, factory app 1.0.0, secure_version 1, signed)", ws.ReleaseDir)
	say("  recipe   %s", ws.RecipePath)
	auditLog, closeLog, err := openStationLog(ctx, o)
	if err != nil {
		return err
	}
	defer closeLog()
	r, rel, err := loadRecipeAndRelease(ctx, o, ws.RecipePath, auditLog)
	if err != nil {
		return err
	}
	say("Intake: %d images authenticated (Secure Boot v2 signatures, secure_version >= %d, built for %s)", len(rel.Images), r.AntiRollback.Floor, c.Arg())

	// A new blank board each time: a fresh MAC, flash and eFuses.
	var mac [6]byte
	copy(mac[:], []byte{0x7c, 0xdf, 0xa1})
	if _, err := rand.Read(mac[3:]); err != nil {
		return failErr(err)
	}
	cfg := o.virtualConfig(c)
	cfg.MAC = mac
	cfg.PartitionTableOffset = rel.TableOffset
	b, err := sim.New(cfg)
	if err != nil {
		return linkErr(err)
	}
	defer b.Close()
	say("Virtual board: blank %s, MAC %02x:%02x:%02x:%02x:%02x:%02x, 4 MiB flash\n", c.Name, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5])

	res, err := provision(ctx, stdio, o, r, rel, b, auditLog)
	if err != nil {
		return err
	}
	// The board on its own: reset into SPI boot and show what it prints.
	app := rel.Images[len(rel.Images)-1]
	for _, im := range rel.Images {
		if im.App != nil {
			app = im
		}
	}
	banner := boot.RunningBanner(app.App.ProjectName, app.App.Version)
	log, err := bootLog(ctx, b, banner, 10*time.Second)
	if !o.jsonOut {
		fmt.Fprintf(stdio.Out, "\nReset into SPI boot; the board's UART:\n")
		for _, line := range strings.Split(strings.TrimRight(log, "\n"), "\n") {
			fmt.Fprintf(stdio.Out, "  | %s\n", strings.TrimRight(line, "\r"))
		}
	}
	if err != nil {
		return failErr(fmt.Errorf("demo: the board did not reach its app banner %q: %w", banner, err))
	}
	dl := "download mode secured"
	if r.Lockdown.Download == recipe.DownloadDisabled {
		dl = "download mode disabled"
	}
	say("\nThe virtual board runs %q with flash encryption and Secure Boot on, JTAG off, %s.", banner, dl)
	say("Its boot log and board-side checks are modelled (the evidence says so): proof of the flow, not of a shipped device.")
	say("Evidence:  %s", res.EvidencePath)
	say("Audit log: %s", filepath.Join(o.data, "audit.log"))
	// Reports over every board this demo workspace has provisioned so far.
	files, err := readEvidenceDir(o.data)
	if err != nil {
		return err
	}
	repDir := filepath.Join(dir, "reports")
	if err := os.MkdirAll(repDir, 0o755); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	for _, name := range []string{"lot.html", "lot.pdf"} {
		if _, err := writeLotReport(files, filepath.Join(repDir, name), "Fuseline demo lot"); err != nil {
			return err
		}
	}
	if err := writeOSCAL(files, filepath.Join(repDir, "oscal-assessment-results.json"), "Fuseline demo lot"); err != nil {
		return err
	}
	say("Reports:   %s (lot.html, lot.pdf, oscal-assessment-results.json; %d board(s))", repDir, len(files))
	say("Show it:   fuseline report device %s", res.EvidencePath)
	say("Check it:  fuseline report verify %s --key %s", o.data, filepath.Join(o.data, "station.pub"))
	return nil
}

// bootLog resets b into SPI boot and reads its UART until want is printed.
func bootLog(ctx context.Context, b *sim.Board, want string, timeout time.Duration) (string, error) {
	if err := b.SetBaud(115200); err != nil {
		return "", err
	}
	if err := b.Reset(ctx, chip.BootSPI); err != nil {
		return "", err
	}
	deadline := time.Now().Add(timeout)
	var out strings.Builder
	buf := make([]byte, 4096)
	for {
		if err := b.SetReadDeadline(deadline); err != nil {
			return out.String(), err
		}
		n, err := b.Read(buf)
		out.Write(buf[:n])
		if strings.Contains(out.String(), want) {
			return out.String(), nil
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return out.String(), fmt.Errorf("no banner within %v", timeout)
			}
			return out.String(), err
		}
		if ctx.Err() != nil {
			return out.String(), ctx.Err()
		}
	}
}
