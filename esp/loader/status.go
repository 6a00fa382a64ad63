package loader

import "fmt"

// ROMCode is the ROM loader's error byte (second status byte when the first
// is 1), §1.5. It is an error, so errors.Is(err, loader.ErrCodeBadChecksum)
// works on anything wrapping it.
type ROMCode byte

// ROM error codes (§1.5).
const (
	ErrCodeUndefined           ROMCode = 0x00
	ErrCodeInvalidInput        ROMCode = 0x01
	ErrCodeMallocFailed        ROMCode = 0x02
	ErrCodeSendFailed          ROMCode = 0x03
	ErrCodeReceiveFailed       ROMCode = 0x04
	ErrCodeBadMessage          ROMCode = 0x05
	ErrCodeFailed              ROMCode = 0x06
	ErrCodeBadChecksum         ROMCode = 0x07
	ErrCodeFlashWriteVerify    ROMCode = 0x08
	ErrCodeFlashRead           ROMCode = 0x09
	ErrCodeFlashReadLength     ROMCode = 0x0A
	ErrCodeInflate             ROMCode = 0x0B
	ErrCodeInflateAdler        ROMCode = 0x0C
	ErrCodeInflateParam        ROMCode = 0x0D
	ErrCodeRAMSize             ROMCode = 0x0E
	ErrCodeRAMAddr             ROMCode = 0x0F
	ErrCodeInvalidParameter    ROMCode = 0x64
	ErrCodeInvalidFormat       ROMCode = 0x65
	ErrCodeDescTooLong         ROMCode = 0x66
	ErrCodeBadEncoding         ROMCode = 0x67
	ErrCodeInsufficientStorage ROMCode = 0x69
)

// Name returns the code's meaning, or "unknown ROM error".
func (c ROMCode) Name() string {
	switch c {
	case ErrCodeUndefined:
		return "undefined error"
	case ErrCodeInvalidInput:
		return "invalid input parameter"
	case ErrCodeMallocFailed:
		return "malloc failed"
	case ErrCodeSendFailed:
		return "send failed"
	case ErrCodeReceiveFailed:
		return "receive failed"
	case ErrCodeBadMessage:
		return "malformed or unsupported message"
	case ErrCodeFailed:
		return "command failed (wrong result)"
	case ErrCodeBadChecksum:
		return "checksum mismatch"
	case ErrCodeFlashWriteVerify:
		return "flash write verify error"
	case ErrCodeFlashRead:
		return "flash read error"
	case ErrCodeFlashReadLength:
		return "flash read length error"
	case ErrCodeInflate:
		return "inflate failed"
	case ErrCodeInflateAdler:
		return "inflate Adler-32 mismatch"
	case ErrCodeInflateParam:
		return "inflate parameter error"
	case ErrCodeRAMSize:
		return "invalid RAM binary size"
	case ErrCodeRAMAddr:
		return "invalid RAM binary address"
	case ErrCodeInvalidParameter:
		return "invalid parameter (encrypted write refused or unaligned)"
	case ErrCodeInvalidFormat:
		return "invalid format"
	case ErrCodeDescTooLong:
		return "description too long"
	case ErrCodeBadEncoding:
		return "bad encoding description"
	case ErrCodeInsufficientStorage:
		return "insufficient storage"
	}
	return "unknown ROM error"
}

func (c ROMCode) Error() string {
	return fmt.Sprintf("loader: ROM error 0x%02x (%s)", byte(c), c.Name())
}

// StubCode is the flasher stub's status: the first of its two status bytes
// (the stub sends a big-endian u16 0xCx00), §1.5. StubOK (0) is success.
type StubCode byte

// Stub status codes (§1.5).
const (
	StubOK                StubCode = 0x00
	StubBadDataLen        StubCode = 0xC0
	StubBadDataChecksum   StubCode = 0xC1
	StubBadBlockSize      StubCode = 0xC2
	StubInvalidCommand    StubCode = 0xC3
	StubFailedSPIOp       StubCode = 0xC4
	StubFailedSPIUnlock   StubCode = 0xC5
	StubNotInFlashMode    StubCode = 0xC6
	StubInflateError      StubCode = 0xC7
	StubNotEnoughData     StubCode = 0xC8
	StubTooMuchData       StubCode = 0xC9
	StubNANDProgramFailed StubCode = 0xCA
	StubNANDEraseFailed   StubCode = 0xCB
	StubCmdNotImplemented StubCode = 0xFF
)

// Name returns the code's meaning, or "unknown stub status".
func (c StubCode) Name() string {
	switch c {
	case StubOK:
		return "ok"
	case StubBadDataLen:
		return "bad data length"
	case StubBadDataChecksum:
		return "bad data checksum"
	case StubBadBlockSize:
		return "bad block size"
	case StubInvalidCommand:
		return "invalid command"
	case StubFailedSPIOp:
		return "SPI operation failed"
	case StubFailedSPIUnlock:
		return "SPI unlock failed"
	case StubNotInFlashMode:
		return "not in flash or memory mode"
	case StubInflateError:
		return "inflate error"
	case StubNotEnoughData:
		return "not enough data"
	case StubTooMuchData:
		return "too much data"
	case StubNANDProgramFailed:
		return "NAND program failed"
	case StubNANDEraseFailed:
		return "NAND erase failed"
	case StubCmdNotImplemented:
		return "command not implemented"
	}
	return "unknown stub status"
}

func (c StubCode) Error() string {
	return fmt.Sprintf("loader: stub error 0x%02x (%s)", byte(c), c.Name())
}

// StatusErr maps the two status bytes to an error: nil for success, a
// ROMCode when status is 1 (the ROM layout), otherwise a StubCode (the
// stub puts its code in the first byte).
func StatusErr(status, code byte) error {
	switch status {
	case 0:
		return nil
	case 1:
		return ROMCode(code)
	}
	return StubCode(status)
}

// IsChecksumError reports whether the status says the data checksum did
// not match (ROM 01 07, stub C1): the block is worth resending.
func IsChecksumError(status, code byte) bool {
	return status == 1 && ROMCode(code) == ErrCodeBadChecksum || StubCode(status) == StubBadDataChecksum
}

// ParseStatus splits a response's Data into the command result and the
// status bytes, with the rule of esptool ≥ 4.9 (§1.3): given the expected
// result length n, the status is data[n] and the code data[n+1]; if fewer
// than n+2 bytes arrived, they are data[0] and data[1]. This works for both
// the ROM's 4 status bytes and the stub's 2.
//
// A failure status is returned with err == nil (see StatusErr); err reports
// a malformed answer: fewer than 2 bytes, or success without the n result
// bytes.
func ParseStatus(data []byte, resultLen int) (result []byte, status, code byte, err error) {
	if resultLen < 0 {
		resultLen = 0
	}
	if len(data) >= resultLen+2 {
		return data[:resultLen], data[resultLen], data[resultLen+1], nil
	}
	if len(data) < 2 {
		return nil, 0, 0, &FormatError{What: "response status", Offset: len(data), Want: fmt.Sprintf("%d result bytes and 2+ status bytes", resultLen), Got: fmt.Sprintf("%d bytes", len(data))}
	}
	status, code = data[0], data[1]
	if status == 0 {
		return nil, status, code, &FormatError{What: "response status", Offset: len(data), Want: fmt.Sprintf("%d result bytes and 2+ status bytes", resultLen), Got: fmt.Sprintf("%d bytes with status ok", len(data))}
	}
	return nil, status, code, nil
}

// ROMStatus returns the ROM's four status bytes: 00 00 00 00 on success,
// 01 code 00 00 on failure.
func ROMStatus(failed bool, code ROMCode) []byte {
	if !failed {
		return []byte{0, 0, 0, 0}
	}
	return []byte{1, byte(code), 0, 0}
}

// StubStatus returns the stub's two status bytes: code, 0x00.
func StubStatus(code StubCode) []byte { return []byte{byte(code), 0} }

// IsUnsupported reports esptool's "command not supported" pattern (§1.10):
// the ROM answered a refused or unknown opcode with status 1 / error 0x05
// but an opcode byte left over from the previous answer.
func IsUnsupported(req Op, r Response) bool {
	return r.Op != req && len(r.Data) >= 2 && r.Data[0] != 0 && ROMCode(r.Data[1]) == ErrCodeBadMessage
}
