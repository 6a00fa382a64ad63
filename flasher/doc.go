// Package flasher is the station's hands on a board: a client of the
// Espressif ROM serial loader and the flasher stub over any io.ReadWriter
// (a serial port, a pty, TCP, net.Pipe to the virtual board, QEMU).
//
// Connect resets the board into download mode through a Resetter, syncs,
// identifies the chip and returns a Session. A Session writes, compresses,
// verifies, reads and erases flash, reads and writes registers, uploads a
// stub, changes the baud rate, drives the eFuse controller and finally
// resets the board into its application.
//
// It follows the shared docs/esp-serial-and-images.md: §1 (framing,
// commands, status bytes, timeouts), §2 (sync, chip detection, identity
// reads, stub upload, SPI user commands), §3 (reset sequences) and §7
// (compression); and docs/esp-security-facts.md §1.3–§1.6 for eFuse
// programming over the protocol. Packet formats live in esp/loader and
// esp/slip, chip facts in esp/chip.
//
// Time: every call takes a context; a blocked read is released by the
// link's SetReadDeadline when it has one (otherwise a reader goroutine
// delivers frames). Sleeps are cancellable. Progress is sent as Events to
// Config.Progress; logs go to Config.Log.
package flasher
