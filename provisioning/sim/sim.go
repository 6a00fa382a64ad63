// Package sim wires a virtual board (fixtures/virtual) for the provisioning
// flow: the board (whose SPI boot runs fixtures/virtual/boot), the
// board's UART port and reset lines as one provisioning.Board, its factory
// MAC as the fixture would know it (provisioning.DeviceID), and its SPI
// flash probe as a provisioning.Probe. `fuseline demo`, the specs and the
// benchmark use it; it is the "virtual" target of design.md.
package sim

import (
	"context"
	"fmt"
	"time"

	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"

	"fuseline/esp/chip"
	"fuseline/fixtures/virtual"
	"fuseline/reports/evidence"
)

// Board is a virtual board with its host port attached.
type Board struct {
	V *virtual.Board
	P *virtual.Port
}

// New builds a virtual board from cfg (its SPI boot is the full path of
// virtual.DefaultBoot unless cfg.Boot says otherwise) and attaches a host
// port.
func New(cfg virtual.Config) (*Board, error) {
	v, err := virtual.New(cfg)
	if err != nil {
		return nil, err
	}
	return &Board{V: v, P: v.Open()}, nil
}

// Read implements io.Reader (the host end of the UART).
func (b *Board) Read(p []byte) (int, error) { return b.P.Read(p) }

// Write implements io.Writer.
func (b *Board) Write(p []byte) (int, error) { return b.P.Write(p) }

// SetReadDeadline bounds reads.
func (b *Board) SetReadDeadline(t time.Time) error { return b.P.SetReadDeadline(t) }

// SetBaud changes the host's baud rate.
func (b *Board) SetBaud(baud int) error { return b.P.SetBaud(baud) }

// TargetKind says the board is Fuseline's virtual board
// (provisioning.TargetKind): its checks are modelled, never observed.
func (b *Board) TargetKind() string { return evidence.TargetVirtual }

// Reset resets the chip into m through its EN and BOOT lines.
func (b *Board) Reset(ctx context.Context, m chip.BootMode) error { return b.V.Reset(ctx, m) }

// DeviceMAC is the factory MAC, as a USB-Serial-JTAG serial number or a
// fixture label would give it.
func (b *Board) DeviceMAC() ([6]byte, bool) {
	mac, err := b.V.Efuse().MAC()
	return mac, err == nil
}

// ReadFlash reads the raw flash through the board's SPI probe (READ 0x03),
// without the chip: ciphertext where it was written encrypted.
func (b *Board) ReadFlash(ctx context.Context, off uint32, n int) ([]byte, error) {
	c, err := b.V.SPIProbe().Connect(40*physic.MegaHertz, spi.Mode0, 8)
	if err != nil {
		return nil, fmt.Errorf("sim: probe: %w", err)
	}
	out := make([]byte, 0, n)
	const chunk = 32 << 10
	for len(out) < n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		k := min(chunk, n-len(out))
		a := off + uint32(len(out))
		w := make([]byte, 4+k)
		w[0], w[1], w[2], w[3] = 0x03, byte(a>>16), byte(a>>8), byte(a)
		r := make([]byte, len(w))
		if err := c.Tx(w, r); err != nil {
			return nil, fmt.Errorf("sim: probe read at 0x%x: %w", a, err)
		}
		out = append(out, r[4:]...)
	}
	return out, nil
}

// Close detaches the port and stops the board (its state is saved when it
// has a state directory).
func (b *Board) Close() error {
	b.P.Close()
	return b.V.Close()
}
