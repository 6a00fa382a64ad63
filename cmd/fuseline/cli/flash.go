package cli

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3"

	"fuseline/esp/chip"
	"fuseline/esp/image"
	"fuseline/fixtures"
	"fuseline/flasher"
)

// newFlashCmd is "fuseline flash": talk to a board's ROM loader (or a
// user-supplied stub) over a serial port, socket:// or rfc2217://.
func newFlashCmd(stdio Stdio) *cobra.Command {
	cf := &connFlags{}
	cmd := &cobra.Command{
		Use:   "flash",
		Short: "Identify, write, verify, read and erase a board's flash",
		Long: `Talk to a board's serial loader. The board is named by --port:

  /dev/ttyUSB0, COM3            a serial port
  usb-serial:7C:DF:A1:00:00:01  the USB serial port with that serial number
                                (an S3/C3 USB-Serial/JTAG reports its MAC)
  usb-location:1-1.2            the USB serial port on that hub socket
  usb:303a:1001                 the only port with that USB VID:PID
  socket://host:port            raw TCP (fuseline sim, esptool's socket://)
  rfc2217://host:port           an RFC 2217 serial server

or by --fixture FILE --slot NAME (port, reset lines and GPIO pin names of a
fixture slot). "fuseline flash ports" lists the serial ports of this host.

--before picks how the board enters download mode: default-reset (the
USB-Serial/JTAG rule on 303a:1001, esptool's DTR/RTS cycle on other serial
ports, nothing on links without modem lines), usb-reset, no-reset, gpio
(EN/BOOT lines from the fixture file), classic, unix-tight, or a custom
sequence such as "D0|R1|W0.1|D1|R0|W0.05|D0". --after hard-reset boots the
application when the command is done.

Progress goes to stderr. Exit codes: 0 done, 1 refused or verify failed,
2 usage, 3 link or fixture error (no port, no sync, timeout, lost link).`,
	}
	cf.register(cmd.PersistentFlags())
	cmd.AddCommand(
		newFlashIDCmd(stdio, cf),
		newFlashWriteCmd(stdio, cf),
		newFlashVerifyCmd(stdio, cf),
		newFlashReadCmd(stdio, cf),
		newFlashEraseCmd(stdio, cf),
		newFlashPortsCmd(stdio),
	)
	return cmd
}

// connFlags are the board connection flags shared by "flash" and the
// eFuse commands that talk to a board.
type connFlags struct {
	port, fixture, slot   string
	before, after, chip   string
	stub                  string
	baud                  int
	fs                    *pflag.FlagSet
	connectTimeoutSeconds float64
}

func (f *connFlags) register(fs *pflag.FlagSet) {
	f.fs = fs
	fs.StringVarP(&f.port, "port", "p", "", "board port: a device path, usb-serial:SN, usb-location:1-1.2, usb:VID:PID, socket://host:port or rfc2217://host:port")
	fs.StringVar(&f.fixture, "fixture", "", "fixture file (YAML/JSON) naming each slot's port and reset lines")
	fs.StringVar(&f.slot, "slot", "", "slot of --fixture to use")
	fs.IntVarP(&f.baud, "baud", "b", 460800, "baud rate after connecting (the ROM starts at 115200)")
	fs.StringVar(&f.before, "before", fixtures.ResetDefault, "reset into download mode: default-reset, usb-reset, no-reset, gpio, classic, unix-tight or a custom D/R/W sequence")
	fs.StringVar(&f.after, "after", "hard-reset", "when done: hard-reset (boot the application) or no-reset")
	fs.StringVar(&f.chip, "chip", "auto", "expected chip: auto, esp32s3, esp32c3 or esp32")
	fs.StringVar(&f.stub, "stub", "", "flasher stub to upload: an esptool stub JSON file you supply (default: the ROM loader)")
	fs.Float64Var(&f.connectTimeoutSeconds, "connect-timeout", 30, "seconds to spend resetting and syncing before giving up")
}

// board is an open connection to one board.
type board struct {
	link  fixtures.Link
	sess  *flasher.Session
	after string
	prog  *flashProgress
	name  string // the port spec, for output
	stdio Stdio
}

// connect opens the port, resets the board into its loader and syncs.
func (f *connFlags) connect(ctx context.Context, stdio Stdio, noCompress bool) (*board, error) {
	spec, before, baud, chipName := f.port, f.before, f.baud, f.chip
	if baud <= 0 {
		return nil, usageErr("--baud %d: want a positive rate such as 460800", baud)
	}
	var pins fixtures.Pins
	switch {
	case f.fixture != "" && f.port != "":
		return nil, usageErr("--port and --fixture exclude each other")
	case f.fixture != "":
		if f.slot == "" {
			return nil, usageErr("--fixture needs --slot")
		}
		b, err := readInput("--fixture", f.fixture, maxTextFile)
		if err != nil {
			return nil, err
		}
		file, err := fixtures.ParseFile(b)
		if err != nil {
			return nil, usageErr("--fixture %s: %w", f.fixture, err)
		}
		slot, err := file.Slot(f.slot)
		if err != nil {
			return nil, usageErr("--slot: %w", err)
		}
		spec = slot.Port
		if !f.fs.Changed("before") && slot.Reset != "" {
			before = slot.Reset
		}
		if !f.fs.Changed("baud") && slot.Baud > 0 {
			baud = slot.Baud
		}
		if !f.fs.Changed("chip") && slot.Chip != "" {
			chipName = slot.Chip
		}
		if slot.EN != "" {
			if pins, err = resolvePins(slot.EN, slot.BOOT); err != nil {
				return nil, linkErr(fmt.Errorf("fixture slot %s: %w", f.slot, err))
			}
		}
	case f.slot != "":
		return nil, usageErr("--slot needs --fixture")
	case f.port == "":
		return nil, usageErr("--port is required (e.g. /dev/ttyUSB0, usb-serial:SN, socket://127.0.0.1:5555)%s", portsHint())
	}
	if f.after != "hard-reset" && f.after != "no-reset" {
		return nil, usageErr("--after %q: want hard-reset or no-reset", f.after)
	}
	if before == fixtures.ResetGPIO && !pins.Valid() {
		return nil, usageErr("--before gpio needs a --fixture slot with en: and boot: pins")
	}
	cfg := flasher.Config{Baud: baud, NoCompress: noCompress}
	if chipName != "" && chipName != "auto" {
		c, err := chip.ByName(chipName)
		if err != nil {
			return nil, usageErr("--chip: %w", err)
		}
		cfg.Chip = c.Arg()
	}
	if f.stub != "" {
		b, err := readInput("--stub", f.stub, maxStubFile)
		if err != nil {
			return nil, err
		}
		if _, err := flasher.ParseStub(b); err != nil {
			return nil, usageErr("--stub %s: %w", f.stub, err)
		}
		cfg.Stub = b
	}
	if _, err := fixtures.ParseSpec(spec); err != nil {
		return nil, usageErr("--port: %w", err)
	}
	prog := newFlashProgress(stdio.Err)
	cfg.Progress = prog.event
	link, err := fixtures.Open(ctx, spec)
	if err != nil {
		return nil, linkErr(err)
	}
	rst, err := fixtures.Resetter(before, link, pins)
	if err != nil {
		link.Close()
		return nil, usageErr("--before: %w", err) // a strategy this link cannot do, or a bad sequence
	}
	cctx, cancel := context.WithTimeout(ctx, time.Duration(f.connectTimeoutSeconds*float64(time.Second)))
	defer cancel()
	sess, err := flasher.Connect(cctx, link, rst, cfg)
	prog.finish()
	if err != nil {
		link.Close()
		if cctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("%w within --connect-timeout %gs (is the board powered, and in download mode or resettable with --before?): %w",
				flasher.ErrNoSync, f.connectTimeoutSeconds, err)
		}
		return nil, boardErr(fmt.Errorf("connecting to %s: %w", spec, err))
	}
	return &board{link: link, sess: sess, after: f.after, prog: prog, name: spec, stdio: stdio}, nil
}

// close ends the session as --after says and closes the port. A failed
// reset after a successful command is a warning: the work is done, and
// the operator is told to reset the board by hand (esptool#912).
func (b *board) close(ctx context.Context, ok bool) {
	b.prog.finish()
	if ok && b.after == "hard-reset" {
		if err := b.sess.HardReset(ctx); err != nil {
			fmt.Fprintf(b.stdio.Err, "fuseline: warning: the command succeeded but the board could not be reset (%v); reset it by hand\n", err)
		}
	}
	b.link.Close()
}

// boardErr maps a flasher or fixture error to its exit code: link
// problems exit 3, everything else (refusals, verify failures) exits 1.
func boardErr(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*ExitError](err); ok {
		return err
	}
	if isLinkErr(err) {
		return linkErr(err)
	}
	return failErr(err)
}

func isLinkErr(err error) bool {
	for _, s := range []error{flasher.ErrLinkLost, flasher.ErrNoSync, flasher.ErrTimeout,
		fixtures.ErrPortClosed, fixtures.ErrNoPort, fixtures.ErrAmbiguousPort, fixtures.ErrNoRFC2217,
		context.DeadlineExceeded, context.Canceled} {
		if errors.Is(err, s) {
			return true
		}
	}
	if _, ok := errors.AsType[*fixtures.PortError](err); ok {
		return true
	}
	_, ok := errors.AsType[net.Error](err)
	return ok
}

// resolvePins finds fixture GPIO lines by name through periph.io's host
// drivers (process-wide registry, so only here in cmd).
func resolvePins(en, boot string) (fixtures.Pins, error) {
	if _, err := host.Init(); err != nil {
		return fixtures.Pins{}, fmt.Errorf("GPIO drivers: %w", err)
	}
	var p fixtures.Pins
	for _, x := range []struct {
		name string
		dst  *gpio.PinOut
	}{{en, &p.EN}, {boot, &p.BOOT}} {
		pin := gpioreg.ByName(x.name)
		if pin == nil {
			return fixtures.Pins{}, fmt.Errorf("no GPIO named %q on this host (try the chip's name, e.g. GPIO17)", x.name)
		}
		*x.dst = pin
	}
	return p, nil
}

func portsHint() string {
	ports, err := fixtures.ListPorts()
	if err != nil || len(ports) == 0 {
		return ""
	}
	var names []string
	for _, p := range ports {
		names = append(names, p.String())
	}
	return "; this host has: " + strings.Join(names, "; ")
}

// parseNum reads an address or size: 0x10000, 65536, 64K, 4M.
func parseNum(what, s string) (uint32, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := uint64(1)
	for _, u := range []struct {
		suf string
		m   uint64
	}{{"MB", 1 << 20}, {"M", 1 << 20}, {"KB", 1 << 10}, {"K", 1 << 10}} {
		if strings.HasSuffix(t, u.suf) && !strings.HasPrefix(t, "0X") {
			t, mult = strings.TrimSuffix(t, u.suf), u.m
			break
		}
	}
	v, err := strconv.ParseUint(strings.ToLower(t), 0, 32)
	if err != nil || v*mult > 1<<32-1 {
		return 0, usageErr("%s %q: want a number such as 0x10000, 65536 or 64K", what, s)
	}
	return uint32(v * mult), nil
}

// ---- flash id ----

type flashIDReport struct {
	Port           string `json:"port"`
	Chip           string `json:"chip"`
	Revision       string `json:"revision,omitempty"`
	MAC            string `json:"mac,omitempty"`
	FlashID        string `json:"flash_id,omitempty"`
	FlashMfr       string `json:"flash_manufacturer,omitempty"`
	FlashSize      int    `json:"flash_size,omitempty"`
	SecureDownload bool   `json:"secure_download"`
	FlashCrypt     *bool  `json:"flash_encryption,omitempty"`
	SecureBoot     *bool  `json:"secure_boot,omitempty"`
	Stub           bool   `json:"stub"`
	Baud           int    `json:"baud"`
}

func newFlashIDCmd(stdio Stdio, cf *connFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "id",
		Short: "Identify the chip and its flash (chip, revision, MAC, JEDEC ID, size, security state)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			b, err := cf.connect(ctx, stdio, false)
			if err != nil {
				return err
			}
			info := b.sess.Info()
			r := flashIDReport{Port: b.name, Chip: info.Chip.Arg(), SecureDownload: info.SecureDownload, Stub: info.Stub, Baud: info.Baud}
			if info.Revision >= 0 {
				r.Revision = fmt.Sprintf("v%d.%d", info.Revision/100, info.Revision%100)
			}
			if info.MACKnown {
				r.MAC = info.MACString()
			}
			if info.HasSecurityInfo {
				fe, sb := info.Security.FlashEncryption(), info.Security.SecureBoot()
				r.FlashCrypt, r.SecureBoot = &fe, &sb
			}
			if !info.SecureDownload {
				id, err := b.sess.FlashID(ctx)
				if err != nil {
					b.close(ctx, false)
					return boardErr(err)
				}
				r.FlashID = fmt.Sprintf("%02x%02x%02x", id&0xFF, id>>8&0xFF, id>>16&0xFF)
				r.FlashMfr = fmt.Sprintf("%02x", id&0xFF)
				r.FlashSize = flasher.FlashSizeFromID(id)
			}
			b.close(ctx, true)
			if asJSON {
				return writeJSON(stdio.Out, r)
			}
			w := stdio.Out
			fmt.Fprintf(w, "port:            %s\n", r.Port)
			fmt.Fprintf(w, "chip:            %s", r.Chip)
			if r.Revision != "" {
				fmt.Fprintf(w, " (revision %s)", r.Revision)
			}
			fmt.Fprintln(w)
			if r.MAC != "" {
				fmt.Fprintf(w, "MAC:             %s\n", r.MAC)
			}
			if r.FlashID != "" {
				fmt.Fprintf(w, "flash:           JEDEC %s (manufacturer 0x%s), %s\n", r.FlashID, r.FlashMfr, sizeText(r.FlashSize))
			}
			if r.FlashCrypt != nil {
				fmt.Fprintf(w, "flash encryption: %s\nsecure boot:     %s\n", onOff(*r.FlashCrypt), onOff(*r.SecureBoot))
			}
			sdm := "off"
			if r.SecureDownload {
				sdm = "ON (no register access, no MD5, no compression)"
			}
			fmt.Fprintf(w, "secure download: %s\n", sdm)
			loaderName := "ROM"
			if r.Stub {
				loaderName = "stub"
			}
			fmt.Fprintf(w, "loader:          %s at %d baud\n", loaderName, r.Baud)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func sizeText(n int) string {
	switch {
	case n == 0:
		return "size unknown"
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// ---- flash write / verify ----

type fileRegion struct {
	addr uint32
	path string
	data []byte
}

// readRegions reads ADDR FILE pairs, refusing odd counts, unaligned or
// overlapping regions before anything touches the board.
func readRegions(args []string, align uint32) ([]fileRegion, error) {
	if len(args) == 0 || len(args)%2 != 0 {
		return nil, usageErr("want ADDR FILE pairs, got %d arguments", len(args))
	}
	var rs []fileRegion
	for i := 0; i < len(args); i += 2 {
		addr, err := parseNum("address", args[i])
		if err != nil {
			return nil, err
		}
		if align > 1 && addr%align != 0 {
			return nil, usageErr("address 0x%x of %s: must be a multiple of 0x%x (a write erases whole 4 KiB sectors)", addr, args[i+1], align)
		}
		data, err := readInput("region", args[i+1], image.MaxFlashBytes)
		if err != nil {
			return nil, err
		}
		if len(data) == 0 {
			return nil, usageErr("%s is empty", args[i+1])
		}
		rs = append(rs, fileRegion{addr: addr, path: args[i+1], data: data})
	}
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b fileRegion) int { return int(int64(a.addr) - int64(b.addr)) })
	for i := 1; i < len(sorted); i++ {
		a, b := sorted[i-1], sorted[i]
		if end := uint64(a.addr) + uint64(len(a.data)); end > uint64(b.addr) {
			return nil, usageErr("%s (0x%x–0x%x) overlaps %s at 0x%x", a.path, a.addr, end, b.path, b.addr)
		}
	}
	return rs, nil
}

func newFlashWriteCmd(stdio Stdio, cf *connFlags) *cobra.Command {
	var encrypt, noCompress bool
	cmd := &cobra.Command{
		Use:   "write ADDR FILE [ADDR FILE...]",
		Short: "Write files to flash (compressed where it helps) and verify each by MD5",
		Long: `Write each FILE at ADDR (a multiple of 4 KiB) and compare the flash MD5
with the file's. Data is sent compressed when the loader allows it and it
shrinks the data (--no-compress turns that off). With --encrypt the chip
encrypts the data with its own flash-encryption key as it writes (the flash
then holds ciphertext, so the MD5 check is reported as not done; compare
with the MD5 of the expected ciphertext). An image at the bootloader offset
or a 64 KiB boundary built for another chip is refused.`,
		Example: `  fuseline flash --port /dev/ttyUSB0 write 0x0 bootloader.bin 0x8000 partitions.bin 0x10000 app.bin`,
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			regions, err := readRegions(args, 0x1000)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			b, err := cf.connect(ctx, stdio, noCompress)
			if err != nil {
				return err
			}
			for _, r := range regions {
				res, err := b.sess.WriteRegion(ctx, flasher.Region{Name: filepath.Base(r.path), Offset: r.addr, Data: r.data, ChipEncrypt: encrypt})
				b.prog.finish()
				if err != nil {
					b.close(ctx, false)
					return boardErr(fmt.Errorf("writing %s at 0x%x: %w", r.path, r.addr, err))
				}
				how := "plain"
				if res.Compressed {
					how = fmt.Sprintf("compressed to %d bytes", res.WireBytes)
				}
				check := "MD5 verified"
				if !res.Verified {
					check = "NOT verified: " + res.NotVerified
				}
				fmt.Fprintf(stdio.Out, "wrote %s at 0x%08x: %d bytes (%s) in %.1fs, %s\n",
					r.path, r.addr, res.Size, how, res.Duration.Seconds(), check)
			}
			b.close(ctx, true)
			return nil
		},
	}
	cmd.Flags().BoolVar(&encrypt, "encrypt", false, "let the chip encrypt the data with its flash-encryption key")
	cmd.Flags().BoolVar(&noCompress, "no-compress", false, "send the data uncompressed")
	return cmd
}

type verifyResult struct {
	File    string `json:"file"`
	Address string `json:"address"`
	Size    int    `json:"size"`
	Want    string `json:"md5_file"`
	Got     string `json:"md5_flash"`
	Match   bool   `json:"match"`
}

func newFlashVerifyCmd(stdio Stdio, cf *connFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify ADDR FILE [ADDR FILE...]",
		Short: "Compare flash with files by MD5 (exit 1 on any difference)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			regions, err := readRegions(args, 1)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			b, err := cf.connect(ctx, stdio, false)
			if err != nil {
				return err
			}
			var out []verifyResult
			bad := 0
			for _, r := range regions {
				want := md5.Sum(r.data)
				got, err := b.sess.FlashMD5(ctx, r.addr, uint32(len(r.data)))
				if err != nil {
					b.close(ctx, false)
					return boardErr(fmt.Errorf("MD5 of %s at 0x%x: %w", r.path, r.addr, err))
				}
				v := verifyResult{File: r.path, Address: fmt.Sprintf("0x%08x", r.addr), Size: len(r.data),
					Want: hex.EncodeToString(want[:]), Got: hex.EncodeToString(got[:]), Match: got == want}
				if !v.Match {
					bad++
				}
				out = append(out, v)
			}
			b.close(ctx, true)
			if asJSON {
				if err := writeJSON(stdio.Out, out); err != nil {
					return err
				}
			} else {
				for _, v := range out {
					status := "OK"
					if !v.Match {
						status = fmt.Sprintf("DIFFERS (flash MD5 %s, file MD5 %s)", v.Got, v.Want)
					}
					fmt.Fprintf(stdio.Out, "%s at %s (%d bytes): %s\n", v.File, v.Address, v.Size, status)
				}
			}
			if bad > 0 {
				return failErr(fmt.Errorf("flash verify: %d of %d regions differ", bad, len(out)))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// ---- flash read ----

func newFlashReadCmd(stdio Stdio, cf *connFlags) *cobra.Command {
	var outPath string
	cmd := &cobra.Command{
		Use:   "read ADDR SIZE -o OUT",
		Short: "Read flash into a file (fast with --stub, else the ROM's 64-byte READ_FLASH_SLOW)",
		Long: `Read SIZE bytes of flash at ADDR into OUT, then check the flash MD5 of the
range against what was read. The ROM loader reads 64 bytes per command
(slow: about 2 KB/s at 115200); a flasher stub (--stub FILE.json, an esptool
stub file you supply) streams the data.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if outPath == "" {
				return usageErr("flash read: -o OUT is required")
			}
			addr, err := parseNum("address", args[0])
			if err != nil {
				return err
			}
			size, err := parseNum("size", args[1])
			if err != nil {
				return err
			}
			if size == 0 {
				return usageErr("flash read: size 0")
			}
			ctx := cmd.Context()
			b, err := cf.connect(ctx, stdio, false)
			if err != nil {
				return err
			}
			if !b.sess.Info().Stub {
				fmt.Fprintf(stdio.Err, "fuseline: reading with the ROM's READ_FLASH_SLOW (64 bytes per command); --stub is much faster\n")
			}
			data, err := b.sess.ReadFlash(ctx, addr, int(size))
			b.prog.finish()
			if err != nil {
				b.close(ctx, false)
				return boardErr(fmt.Errorf("reading 0x%x (+0x%x): %w", addr, size, err))
			}
			if !b.sess.Info().SecureDownload {
				sum, err := b.sess.FlashMD5(ctx, addr, size)
				if err != nil {
					b.close(ctx, false)
					return boardErr(err)
				}
				if sum != md5.Sum(data) {
					b.close(ctx, false)
					return failErr(fmt.Errorf("flash read: the data read does not match the flash MD5 of 0x%x (+0x%x); the link damaged it", addr, size))
				}
			}
			b.close(ctx, true)
			if err := os.WriteFile(outPath, data, 0o644); err != nil {
				return failErr(fmt.Errorf("flash read: %w", err))
			}
			fmt.Fprintf(stdio.Out, "read 0x%08x (+0x%x) into %s, MD5 %x checked\n", addr, size, outPath, md5.Sum(data))
			return nil
		},
	}
	cmd.Flags().StringVarP(&outPath, "output", "o", "", "file to write")
	return cmd
}

// ---- flash erase ----

func newFlashEraseCmd(stdio Stdio, cf *connFlags) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "erase [ADDR SIZE | --all]",
		Short: "Erase a flash region (multiples of 4 KiB) or the whole chip",
		Args:  cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var addr, size uint32
			switch {
			case all && len(args) > 0:
				return usageErr("flash erase: give ADDR SIZE or --all, not both")
			case !all && len(args) != 2:
				return usageErr("flash erase: want ADDR SIZE, or --all for the whole chip")
			case !all:
				var err error
				if addr, err = parseNum("address", args[0]); err != nil {
					return err
				}
				if size, err = parseNum("size", args[1]); err != nil {
					return err
				}
				if addr%0x1000 != 0 || size%0x1000 != 0 || size == 0 {
					return usageErr("flash erase: 0x%x (+0x%x): address and size must be non-zero multiples of 4 KiB", addr, size)
				}
			}
			ctx := cmd.Context()
			b, err := cf.connect(ctx, stdio, false)
			if err != nil {
				return err
			}
			t0 := time.Now()
			if all {
				err = b.sess.EraseFlash(ctx)
			} else {
				err = b.sess.EraseRegion(ctx, addr, size)
			}
			b.prog.finish()
			if err != nil {
				b.close(ctx, false)
				return boardErr(fmt.Errorf("erase: %w", err))
			}
			b.close(ctx, true)
			if all {
				fmt.Fprintf(stdio.Out, "erased the whole flash in %.1fs\n", time.Since(t0).Seconds())
			} else {
				fmt.Fprintf(stdio.Out, "erased 0x%08x (+0x%x) in %.1fs\n", addr, size, time.Since(t0).Seconds())
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "erase the whole flash chip")
	return cmd
}

// ---- flash ports ----

func newFlashPortsCmd(stdio Stdio) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ports",
		Short: "List this host's serial ports with the specs that name them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ports, err := fixtures.ListPorts()
			if err != nil {
				return linkErr(err)
			}
			if asJSON {
				if ports == nil {
					ports = []fixtures.PortInfo{}
				}
				return writeJSON(stdio.Out, ports)
			}
			if len(ports) == 0 {
				fmt.Fprintln(stdio.Out, "no serial ports")
			}
			for _, p := range ports {
				fmt.Fprintln(stdio.Out, p.String())
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// ---- progress ----

// flashProgress renders flasher events on stderr: a bar on a terminal, else
// plain lines (a line per stage, and per 10 % of a transfer, so logs stay
// readable).
type flashProgress struct {
	w       io.Writer
	tty     bool
	key     string // phase and region of the current line
	lastPct int
	open    bool // a bar line is waiting for its newline
}

func newFlashProgress(w io.Writer) *flashProgress {
	return &flashProgress{w: w, tty: isTerminal(w)}
}

// bytePhase reports the phases drawn as transfers; the others print one
// line when they start.
func bytePhase(ph string) bool {
	return ph == flasher.PhaseWrite || ph == flasher.PhaseRead
}

func (p *flashProgress) event(e flasher.Event) {
	region := e.Region
	if e.Phase == flasher.PhaseEfuse && strings.HasPrefix(region, "read ") {
		region = "read" // one line for all blocks
	}
	key := e.Phase + " " + region
	changed := key != p.key
	if changed {
		p.finish()
		p.key, p.lastPct = key, -1
	}
	label := e.Phase
	if region != "" {
		label += " " + region
	}
	if !bytePhase(e.Phase) || e.Total <= 0 {
		if !changed && e.Phase != flasher.PhaseReset {
			return
		}
		switch e.Phase {
		case flasher.PhaseReset:
			fmt.Fprintf(p.w, "fuseline: reset into download mode (attempt %d of %d)\n", e.Done, e.Total)
		case flasher.PhaseBaud:
			fmt.Fprintf(p.w, "fuseline: changing baud rate to %d\n", e.Total)
		case flasher.PhaseErase:
			fmt.Fprintf(p.w, "fuseline: %s: %d bytes\n", label, e.Total)
		case flasher.PhaseEfuse:
			if region == "read" {
				label = "reading eFuses"
			}
			fmt.Fprintf(p.w, "fuseline: %s\n", label)
		default:
			fmt.Fprintf(p.w, "fuseline: %s\n", label)
		}
		return
	}
	pct := int(e.Done * 100 / e.Total)
	rate := ""
	if e.Rate > 0 {
		rate = fmt.Sprintf(", %.1f kB/s", e.Rate/1000)
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r%-24s %s %d/%d bytes%s ", label, barText(e.Done, e.Total), e.Done, e.Total, rate)
		p.open = true
		if e.Done >= e.Total {
			p.finish()
		}
		return
	}
	if changed || pct/10 != p.lastPct/10 || e.Done >= e.Total && p.lastPct != 100 {
		fmt.Fprintf(p.w, "fuseline: %s: %d%% (%d/%d bytes%s)\n", label, pct, e.Done, e.Total, rate)
		p.lastPct = pct
	}
}

// finish ends an open bar line.
func (p *flashProgress) finish() {
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
}
