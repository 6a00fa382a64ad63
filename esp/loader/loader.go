// Package loader holds the packet formats of the Espressif serial download
// protocol spoken by the ROM loader and the flasher stub: opcodes, request
// and response packets, the data checksum, status bytes and their error
// codes, and the payload of every command, as builders and parsers so the
// host (flasher) and the virtual board (fixtures/virtual) share one
// definition.
//
// It follows docs/esp-serial-and-images.md §1.2–§1.8 (packets, checksum,
// error codes, opcode table, payloads, block sizes) and §2.2 (security info).
// Packets here are unframed; esp/slip frames them.
package loader

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Op is a command opcode (§1.6).
type Op byte

// Opcodes of the ROM loader (0x02–0x14) and the flasher stub (0xD0–0xD4).
const (
	OpFlashBegin       Op = 0x02
	OpFlashData        Op = 0x03
	OpFlashEnd         Op = 0x04
	OpMemBegin         Op = 0x05
	OpMemEnd           Op = 0x06
	OpMemData          Op = 0x07
	OpSync             Op = 0x08
	OpWriteReg         Op = 0x09
	OpReadReg          Op = 0x0A
	OpSPISetParams     Op = 0x0B
	OpSPIAttach        Op = 0x0D
	OpReadFlashSlow    Op = 0x0E
	OpChangeBaudrate   Op = 0x0F
	OpFlashDeflBegin   Op = 0x10
	OpFlashDeflData    Op = 0x11
	OpFlashDeflEnd     Op = 0x12
	OpSPIFlashMD5      Op = 0x13
	OpGetSecurityInfo  Op = 0x14
	OpEraseFlash       Op = 0xD0
	OpEraseRegion      Op = 0xD1
	OpReadFlash        Op = 0xD2
	OpRunUserCode      Op = 0xD3
	OpFlashEncryptData Op = 0xD4

	// OpModelKind is Fuseline's own opcode, not Espressif's: a model of
	// a chip's loader (the virtual board, fixtures/virtual) answers it
	// with what it is (ModelKind). No ROM (0x02–0x14, 0x19–0x1E on newer
	// chips), esptool stub (0xD0–0xD4) or stub plugin (0xD5–0xDE) uses
	// it: a ROM refuses it like any unknown opcode (status 1 / 0x05 with
	// a stale opcode, §1.10), in Secure Download Mode too, and a stub
	// with 0xC3, so silicon says nothing and esptool never sends it.
	OpModelKind Op = 0xF1
)

// String returns the protocol name ("FLASH_BEGIN") or "OP_0x42".
func (o Op) String() string {
	if n := o.name(); n != "" {
		return n
	}
	return fmt.Sprintf("OP_0x%02X", byte(o))
}

func (o Op) name() string {
	switch o {
	case OpFlashBegin:
		return "FLASH_BEGIN"
	case OpFlashData:
		return "FLASH_DATA"
	case OpFlashEnd:
		return "FLASH_END"
	case OpMemBegin:
		return "MEM_BEGIN"
	case OpMemEnd:
		return "MEM_END"
	case OpMemData:
		return "MEM_DATA"
	case OpSync:
		return "SYNC"
	case OpWriteReg:
		return "WRITE_REG"
	case OpReadReg:
		return "READ_REG"
	case OpSPISetParams:
		return "SPI_SET_PARAMS"
	case OpSPIAttach:
		return "SPI_ATTACH"
	case OpReadFlashSlow:
		return "READ_FLASH_SLOW"
	case OpChangeBaudrate:
		return "CHANGE_BAUDRATE"
	case OpFlashDeflBegin:
		return "FLASH_DEFL_BEGIN"
	case OpFlashDeflData:
		return "FLASH_DEFL_DATA"
	case OpFlashDeflEnd:
		return "FLASH_DEFL_END"
	case OpSPIFlashMD5:
		return "SPI_FLASH_MD5"
	case OpGetSecurityInfo:
		return "GET_SECURITY_INFO"
	case OpEraseFlash:
		return "ERASE_FLASH"
	case OpEraseRegion:
		return "ERASE_REGION"
	case OpReadFlash:
		return "READ_FLASH"
	case OpRunUserCode:
		return "RUN_USER_CODE"
	case OpFlashEncryptData:
		return "FLASH_ENCRYPT_DATA"
	case OpModelKind:
		return "FUSELINE_MODEL_KIND"
	}
	return ""
}

// HasChecksum reports whether the request's checksum field is checked
// (the *_DATA commands, §1.4).
func (o Op) HasChecksum() bool {
	return o == OpFlashData || o == OpMemData || o == OpFlashDeflData
}

// InROM reports whether the S3/C3 ROM loader implements the opcode.
func (o Op) InROM() bool { return o >= OpFlashBegin && o <= OpGetSecurityInfo && o != 0x0C }

// AllowedInSDM reports whether the ROM accepts the opcode in Secure
// Download Mode (§1.6, last column).
func (o Op) AllowedInSDM() bool {
	switch o {
	case OpFlashBegin, OpFlashData, OpFlashEnd, OpSync, OpSPISetParams, OpSPIAttach,
		OpChangeBaudrate, OpGetSecurityInfo:
		return true
	}
	return false
}

// Packet directions (byte 0).
const (
	DirRequest  byte = 0x00
	DirResponse byte = 0x01
)

// HeaderLen is the length of the request and response headers.
const HeaderLen = 8

// Block sizes and limits (§1.7, §1.8).
const (
	DataHeaderLen    = 16     // {data_len, seq, 0, 0} before *_DATA payloads
	ROMFlashBlock    = 0x400  // esptool's FLASH_WRITE_SIZE for the ROM
	StubFlashBlock   = 0x4000 // and for the stub
	ROMMaxBlock      = 0x1800 // largest block_size the ROM accepts
	RAMBlock         = 0x1800 // MEM_DATA block
	SectorSize       = 0x1000 // flash erase unit
	ReadFlashSlowMax = 64     // READ_FLASH_SLOW answer length
	ROMStatusLen     = 4
	StubStatusLen    = 2
)

// Checksum is the *_DATA checksum: 0xEF XOR every data byte (§1.4), as the
// u32 the request carries. data is the bytes to write, without the 16-byte
// data header.
func Checksum(data []byte) uint32 {
	c := byte(0xEF)
	for _, b := range data {
		c ^= b
	}
	return uint32(c)
}

// FormatError reports a malformed packet or payload: what was parsed, the
// offset of the offending field, and what was expected.
type FormatError struct {
	What   string // "request", "FLASH_BEGIN payload", …
	Offset int
	Want   string
	Got    string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("loader: %s at offset %d: want %s, got %s", e.What, e.Offset, e.Want, e.Got)
}

// Request is a command packet, host to chip (§1.2).
type Request struct {
	Op       Op
	Data     []byte
	Checksum uint32 // only meaningful for Op.HasChecksum
}

// EncodeRequest returns the unframed packet: 00 op size(u16) checksum(u32) data.
func EncodeRequest(r Request) []byte {
	b := make([]byte, HeaderLen+len(r.Data))
	b[0] = DirRequest
	b[1] = byte(r.Op)
	binary.LittleEndian.PutUint16(b[2:], uint16(len(r.Data)))
	binary.LittleEndian.PutUint32(b[4:], r.Checksum)
	copy(b[HeaderLen:], r.Data)
	return b
}

// DecodeRequest parses an unframed request packet. The size field must match
// the data that follows (the ROM answers error 0x05 otherwise). Data aliases b.
func DecodeRequest(b []byte) (Request, error) {
	if len(b) < HeaderLen {
		return Request{}, &FormatError{What: "request", Offset: len(b), Want: "8-byte header", Got: fmt.Sprintf("%d bytes", len(b))}
	}
	if b[0] != DirRequest {
		return Request{}, &FormatError{What: "request", Offset: 0, Want: "direction 0x00", Got: fmt.Sprintf("0x%02x", b[0])}
	}
	size := int(binary.LittleEndian.Uint16(b[2:]))
	if size != len(b)-HeaderLen {
		return Request{}, &FormatError{What: "request", Offset: 2, Want: fmt.Sprintf("size %d (bytes after header)", len(b)-HeaderLen), Got: fmt.Sprint(size)}
	}
	return Request{Op: Op(b[1]), Checksum: binary.LittleEndian.Uint32(b[4:]), Data: b[HeaderLen:]}, nil
}

// Response is an answer packet, chip to host (§1.3). Data includes the
// trailing status bytes (4 from the ROM, 2 from the stub).
type Response struct {
	Op    Op
	Value uint32
	Data  []byte
}

// EncodeResponse returns the unframed packet: 01 op size(u16) value(u32) data.
func EncodeResponse(r Response) []byte {
	b := make([]byte, HeaderLen+len(r.Data))
	b[0] = DirResponse
	b[1] = byte(r.Op)
	binary.LittleEndian.PutUint16(b[2:], uint16(len(r.Data)))
	binary.LittleEndian.PutUint32(b[4:], r.Value)
	copy(b[HeaderLen:], r.Data)
	return b
}

// DecodeResponse parses an unframed response packet. Data aliases b.
func DecodeResponse(b []byte) (Response, error) {
	if len(b) < HeaderLen {
		return Response{}, &FormatError{What: "response", Offset: len(b), Want: "8-byte header", Got: fmt.Sprintf("%d bytes", len(b))}
	}
	if b[0] != DirResponse {
		return Response{}, &FormatError{What: "response", Offset: 0, Want: "direction 0x01", Got: fmt.Sprintf("0x%02x", b[0])}
	}
	size := int(binary.LittleEndian.Uint16(b[2:]))
	if size != len(b)-HeaderLen {
		return Response{}, &FormatError{What: "response", Offset: 2, Want: fmt.Sprintf("size %d (bytes after header)", len(b)-HeaderLen), Got: fmt.Sprint(size)}
	}
	return Response{Op: Op(b[1]), Value: binary.LittleEndian.Uint32(b[4:]), Data: b[HeaderLen:]}, nil
}

// SyncValue is word 0 of the SYNC payload; the ROM echoes it as the value
// of its SYNC replies.
const SyncValue uint32 = 0x20120707

// SyncPayload returns the 36-byte SYNC data: 07 07 12 20 and 32 × 0x55.
func SyncPayload() []byte {
	b := make([]byte, 36)
	binary.LittleEndian.PutUint32(b, SyncValue)
	for i := 4; i < len(b); i++ {
		b[i] = 0x55
	}
	return b
}

// SyncReplies is how many response frames a loader sends for one SYNC.
const SyncReplies = 8

// ResetBanner reports whether text (bytes a host read outside frames)
// holds the line every ROM prints when the chip leaves reset,
// "rst:0x<reason> (<name>),boot:0x<strap> (<mode>)" (§3.4). A loader that
// printed it has restarted: whatever it was answering is gone.
func ResetBanner(text []byte) bool {
	i := bytes.Index(text, []byte("rst:0x"))
	return i >= 0 && bytes.Contains(text[i:], []byte(",boot:0x"))
}
