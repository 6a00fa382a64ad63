package cli

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"fuseline/esp/chip"
	"fuseline/fixtures/virtual"
)

// newSimCmd is `fuseline sim`: run a virtual board and serve its UART over
// TCP (esptool's socket://) or a pty until interrupted.
func newSimCmd(stdio Stdio) *cobra.Command {
	var (
		chipName, flashSize, stateDir, listen, faults, bootMode, jedec, mac, tableOff string
		usePTY, throttle, timing                                                      bool
		stubModel                                                                     virtual.StubModel
	)
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run a virtual ESP32-S3/C3/ESP32 board on TCP or a pty",
		Long: `Run a virtual board (fixtures/virtual) and serve its serial port until interrupted.

Over TCP it speaks raw bytes as esptool's socket:// expects (one client at a
time; a new connection takes over the same board). Neither TCP nor a pty
carries DTR/RTS, so the board starts in the boot mode given by --boot
(download by default) and esptool must be run with --before no_reset.

With --state the eFuses and flash persist in DIR: running sim again on the
same DIR is the same board after a power cycle.

--faults takes a comma-separated list: drop=P, corrupt=P (per-byte
probabilities), disconnect-after=BYTES, powercut-before=K, powercut-after=K
(K-th command), efuse-error=BLOCK (repeatable), slow-flash=Nx, seed=N.`,
		Example: `  fuseline sim --chip esp32s3 --listen 127.0.0.1:5555 --state ./board1
  esptool.py --chip esp32s3 --port socket://127.0.0.1:5555 --before no_reset flash_id
  fuseline sim --chip esp32c3 --pty --throttle --faults drop=0.001,seed=7`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := chip.ByName(chipName)
			if err != nil {
				return usageErr("--chip: %v", err)
			}

			cfg := virtual.Config{Chip: c, StateDir: stateDir, Throttle: throttle, Timing: timing, StubModel: stubModel}
			if tableOff != "" {
				v, err := strconv.ParseUint(tableOff, 0, 32)
				if err != nil || v%0x1000 != 0 || v <= uint64(c.BootloaderOffset) {
					return usageErr("--partition-table-offset %q: want a 4 KiB-aligned offset after the %s bootloader at 0x%x, such as 0xb000", tableOff, c.Name, c.BootloaderOffset)
				}
				cfg.PartitionTableOffset = uint32(v)
			}
			if flashSize != "" {
				if cfg.FlashSize, err = parseSize(flashSize); err != nil {
					return usageErr("--flash: %v", err)
				}
			}
			if cfg.Faults, err = virtual.ParseFaults(faults); err != nil {
				return usageErr("--faults: %v", err)
			}
			switch strings.ToLower(bootMode) {
			case "download", "dl":
				cfg.Strap = chip.BootDownload
			case "spi", "flash":
				cfg.Strap = chip.BootSPI
			default:
				return usageErr("--boot %q: want download or spi", bootMode)
			}
			if jedec != "" {
				v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(jedec), "0x"), 16, 32)
				if err != nil || v > 0xFFFFFF {
					return usageErr("--jedec %q: want 3 hex bytes such as ef4016", jedec)
				}
				cfg.JEDEC = uint32(v)
			}
			if mac != "" {
				hw, err := net.ParseMAC(mac)
				if err != nil || len(hw) != 6 {
					return usageErr("--mac %q: want aa:bb:cc:dd:ee:ff", mac)
				}
				copy(cfg.MAC[:], hw)
			}
			if usePTY && cmd.Flags().Changed("listen") {
				return usageErr("--listen and --pty exclude each other")
			}
			b, err := virtual.New(cfg)
			if errors.Is(err, virtual.ErrStateInUse) {
				return linkErr(err) // a fixture problem: another board holds --state
			}
			if err != nil {
				return failErr(err)
			}
			ctx := cmd.Context()
			if usePTY {
				p, err := b.OpenPTY()
				if err != nil {
					b.Close()
					return linkErr(err)
				}
				fmt.Fprintf(stdio.Out, "fuseline sim: %s on pty %s (boot %s)\n", c.Arg(), p.Path, cfg.Strap)
				<-ctx.Done()
				p.Close()
				return closeBoard(b)
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				b.Close()
				if _, _, serr := net.SplitHostPort(listen); serr != nil {
					return usageErr("--listen %q: want HOST:PORT (%v)", listen, serr)
				}
				if ae, ok := errors.AsType[*net.AddrError](err); ok {
					return usageErr("--listen %q: %v", listen, ae)
				}
				return linkErr(fmt.Errorf("sim: listen on %s: %w", listen, err))
			}
			addr := ln.Addr().String()
			fmt.Fprintf(stdio.Out, "fuseline sim: %s listening on %s (esptool --port socket://%s --before no_reset; boot %s)\n",
				c.Arg(), addr, addr, cfg.Strap)
			if err := b.Serve(ctx, ln); err != nil {
				b.Close()
				return linkErr(err)
			}
			return closeBoard(b)
		},
	}
	f := cmd.Flags()
	f.StringVar(&chipName, "chip", "esp32s3", "chip: esp32s3, esp32c3 or esp32 (v3)")
	f.StringVar(&flashSize, "flash", "", "flash size, e.g. 4MB, 16MB, 512KB (default 4MB, or what --state holds)")
	f.StringVar(&stateDir, "state", "", "directory that keeps eFuses and flash across runs (default: in memory)")
	f.StringVar(&listen, "listen", "127.0.0.1:5555", "TCP address to serve on")
	f.BoolVar(&usePTY, "pty", false, "serve on a pseudo-terminal instead of TCP (prints its /dev/pts path)")
	f.BoolVar(&throttle, "throttle", false, "pace bytes at the board's baud rate (10 bits per byte)")
	f.BoolVar(&timing, "timing", false, "datasheet flash erase/program times")
	f.TextVar(&stubModel, "stub-model", stubModel, stubModelUsage)
	f.StringVar(&faults, "faults", "", "faults to inject, e.g. drop=0.001,powercut-after=12,seed=1")
	f.StringVar(&bootMode, "boot", "download", "boot mode at power-on: download or spi")
	f.StringVar(&jedec, "jedec", "", "flash JEDEC ID as 3 hex bytes (default: a Winbond part of --flash size)")
	f.StringVar(&tableOff, "partition-table-offset", "", "CONFIG_PARTITION_TABLE_OFFSET of the bootloader the board runs, e.g. 0xb000 (default 0x8000); a real bootloader has it compiled in")
	f.StringVar(&mac, "mac", "", "factory MAC of a new board (default 7c:df:a1:00:00:01 / :02)")
	return cmd
}

func closeBoard(b *virtual.Board) error {
	if err := b.Close(); err != nil {
		return failErr(fmt.Errorf("sim: saving state: %w", err))
	}
	return nil
}

// parseSize reads "4MB", "4M", "512KB", "0x400000" or "4194304".
func parseSize(s string) (int, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := 1
	for _, u := range []struct {
		suf string
		m   int
	}{{"MB", 1 << 20}, {"M", 1 << 20}, {"KB", 1 << 10}, {"K", 1 << 10}} {
		if strings.HasSuffix(t, u.suf) {
			t, mult = strings.TrimSuffix(t, u.suf), u.m
			break
		}
	}
	v, err := strconv.ParseUint(strings.ToLower(t), 0, 32)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("%q is not a size (e.g. 4MB)", s)
	}
	n := int(v) * mult
	if n%4096 != 0 || n > 256<<20 {
		return 0, fmt.Errorf("%q: want a multiple of 4 KiB up to 256MB", s)
	}
	return n, nil
}
