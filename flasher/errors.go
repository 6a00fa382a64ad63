package flasher

import (
	"errors"
	"fmt"

	"fuseline/esp/chip"
	"fuseline/esp/loader"
)

// Sentinel errors. They are wrapped with context; test with errors.Is.
var (
	// ErrLinkLost: the link returned EOF or was closed, or a write failed.
	// Nothing after it may be taken as success.
	ErrLinkLost = errors.New("flasher: link lost")
	// ErrTimeout: the chip did not answer in time.
	ErrTimeout = errors.New("flasher: timed out waiting for the chip")
	// ErrNoSync: no SYNC answer after every reset attempt.
	ErrNoSync = errors.New("flasher: no SYNC reply from the chip")
	// ErrDownloadDisabled: the ROM printed that its download modes are
	// disabled by eFuse; the loader will never answer (comes with ErrNoSync).
	ErrDownloadDisabled = errors.New("flasher: the ROM's download modes are disabled")
	// ErrSecureDownload: the operation is not possible in Secure Download Mode.
	ErrSecureDownload = errors.New("flasher: not possible in secure download mode")
	// ErrUnsupported: the loader refused the opcode (esptool's
	// UnsupportedCommandError, §1.10).
	ErrUnsupported = errors.New("flasher: command not supported by the loader")
	// ErrBadRegion: a region fails a pre-check (alignment, past the end of
	// flash, empty).
	ErrBadRegion = errors.New("flasher: bad region")
	// ErrVerify: the flash MD5 differs from the data written.
	ErrVerify = errors.New("flasher: verify failed")
	// ErrSessionEnded: the board was reset out of the loader.
	ErrSessionEnded = errors.New("flasher: session ended (board reset)")
	// ErrReadUnstable: repeated reads of one register kept disagreeing. The
	// loader's READ_REG answers carry no checksum, so a noisy line can
	// change a value without damaging its frame; a value is taken only
	// when two reads in a row agree.
	ErrReadUnstable = errors.New("flasher: repeated register reads disagree")
	// ErrWriteNotTaken: registers written with WRITE_REG (no checksum)
	// kept reading back other than written, so the line is changing the
	// writes; the eFuse program they were for was not started.
	ErrWriteNotTaken = errors.New("flasher: register writes not taken as sent")
	// ErrChipReset: a ROM reset banner arrived instead of the answer (the
	// chip restarted; the ROM loader of S3/C3 does so when a reload loads
	// its lockdown eFuses, chip.LockdownResetsLoader). It comes wrapped
	// with ErrLinkLost: the session is over.
	ErrChipReset = errors.New("flasher: the chip reset instead of answering")
	// ErrLinkClosedByLockdown: burning a lockdown eFuse (secure download
	// mode, download disabled) cut the loader off during the reload, as the
	// real ROM does. It is the expected outcome of that burn (§1.6).
	ErrLinkClosedByLockdown = errors.New("flasher: link closed by eFuse lockdown")
)

// CommandError is a failed command: a failure status from the loader, a
// timeout or a lost link while waiting for the answer.
type CommandError struct {
	Op     loader.Op
	Status byte  // first status byte (ROM: 1; stub: its code); 0 when no answer
	Code   byte  // second status byte (ROM error code)
	Err    error // loader.ROMCode, loader.StubCode, ErrTimeout, ErrLinkLost, ErrUnsupported…
}

func (e *CommandError) Error() string {
	if e.Status == 0 && e.Code == 0 {
		return fmt.Sprintf("flasher: %v: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("flasher: %v failed (status %02x %02x): %v", e.Op, e.Status, e.Code, e.Err)
}

func (e *CommandError) Unwrap() error { return e.Err }

// CodeName names the loader's status ("checksum mismatch"), or "" when the
// command got no status.
func (e *CommandError) CodeName() string {
	switch err := e.Err.(type) {
	case loader.ROMCode:
		return err.Name()
	case loader.StubCode:
		return err.Name()
	}
	if e.Status == 1 {
		return loader.ROMCode(e.Code).Name()
	}
	if e.Status != 0 {
		return loader.StubCode(e.Status).Name()
	}
	return ""
}

// BadChecksum reports the loader rejected the data checksum (worth a resend).
func (e *CommandError) BadChecksum() bool { return loader.IsChecksumError(e.Status, e.Code) }

// ChipMismatchError: the chip found is not the one the caller expected, or
// an image is built for another chip.
type ChipMismatchError struct {
	What string // "board" or the region name
	Want chip.ID
	Got  chip.ID
}

func (e *ChipMismatchError) Error() string {
	if e.What == "board" {
		return fmt.Sprintf("flasher: board is %v, expected %v", e.Got, e.Want)
	}
	return fmt.Sprintf("flasher: %s is an image for %v, the board is %v", e.What, e.Got, e.Want)
}

// VerifyError: the flash MD5 of a region differs from the data written.
type VerifyError struct {
	Region    string
	Offset    uint32
	Size      uint32
	Want, Got [16]byte
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("flasher: verify %s at 0x%x (+0x%x): flash MD5 %x, want %x", e.Region, e.Offset, e.Size, e.Got, e.Want)
}

func (e *VerifyError) Unwrap() error { return ErrVerify }
