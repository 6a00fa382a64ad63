package loader

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Command payloads (§1.7). Each has an Encode method producing the request
// data and a Parse function accepting what the ROM or the stub accepts, so
// the virtual board decodes exactly what the host encodes.

func words(vs ...uint32) []byte {
	b := make([]byte, 4*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint32(b[4*i:], v)
	}
	return b
}

func word(b []byte, i int) uint32 { return binary.LittleEndian.Uint32(b[4*i:]) }

func lenErr(what string, got int, want string) error {
	return &FormatError{What: what + " payload", Offset: got, Want: want, Got: fmt.Sprintf("%d bytes", got)}
}

// Begin is the payload of FLASH_BEGIN, FLASH_DEFL_BEGIN and MEM_BEGIN:
// {size, num_blocks, block_size, offset [, encrypted]}.
type Begin struct {
	Size      uint32 // bytes to erase/write (see §1.7 for the ROM/stub meaning)
	Blocks    uint32
	BlockSize uint32
	Offset    uint32 // flash offset, or RAM load address for MEM_BEGIN
	// Encrypted asks the loader to encrypt with the chip's key (word 4).
	Encrypted bool
	// Long sends the 20-byte form with the encrypted word. S3/C3 ROMs
	// require it for flash; the ESP32 ROM and MEM_BEGIN take 16 bytes.
	Long bool
}

// Encode returns the 16- or 20-byte payload.
func (p Begin) Encode() []byte {
	if !p.Long && !p.Encrypted {
		return words(p.Size, p.Blocks, p.BlockSize, p.Offset)
	}
	var enc uint32
	if p.Encrypted {
		enc = 1
	}
	return words(p.Size, p.Blocks, p.BlockSize, p.Offset, enc)
}

// ParseBegin accepts the 16- and 20-byte forms.
func ParseBegin(b []byte) (Begin, error) {
	if len(b) != 16 && len(b) != 20 {
		return Begin{}, lenErr("BEGIN", len(b), "16 or 20 bytes")
	}
	p := Begin{Size: word(b, 0), Blocks: word(b, 1), BlockSize: word(b, 2), Offset: word(b, 3)}
	if len(b) == 20 {
		p.Long = true
		p.Encrypted = word(b, 4) != 0
	}
	return p, nil
}

// Data is a *_DATA payload: a 16-byte header {data_len, seq, 0, 0} and the
// bytes. The request checksum is Checksum(Data.Bytes).
type Data struct {
	Seq   uint32
	Bytes []byte
	// Len is the header's data_len. Encode writes len(Bytes); ParseData
	// returns the header's value, which a loader compares with len(Bytes).
	Len uint32
}

// Encode returns the payload and the checksum to put in the request.
func (d Data) Encode() (payload []byte, checksum uint32) {
	b := make([]byte, DataHeaderLen+len(d.Bytes))
	binary.LittleEndian.PutUint32(b, uint32(len(d.Bytes)))
	binary.LittleEndian.PutUint32(b[4:], d.Seq)
	copy(b[DataHeaderLen:], d.Bytes)
	return b, Checksum(d.Bytes)
}

// DataRequest builds a complete *_DATA request for op.
func DataRequest(op Op, seq uint32, data []byte) Request {
	p, c := Data{Seq: seq, Bytes: data}.Encode()
	return Request{Op: op, Data: p, Checksum: c}
}

// ParseData splits a *_DATA payload. Bytes aliases b.
func ParseData(b []byte) (Data, error) {
	if len(b) < DataHeaderLen {
		return Data{}, lenErr("DATA", len(b), "at least 16 bytes")
	}
	return Data{Len: word(b, 0), Seq: word(b, 1), Bytes: b[DataHeaderLen:]}, nil
}

// FLASH_END / FLASH_DEFL_END flag values.
const (
	EndReboot  uint32 = 0 // reply, then software reset
	EndRunUser uint32 = 1 // leave the loader and boot flash (stub: barrier)
)

// EncodeFlashEnd returns the 4-byte FLASH_END / FLASH_DEFL_END payload.
func EncodeFlashEnd(flag uint32) []byte { return words(flag) }

// ParseFlashEnd reads the flag word.
func ParseFlashEnd(b []byte) (uint32, error) {
	if len(b) < 4 {
		return 0, lenErr("FLASH_END", len(b), "4 bytes")
	}
	return word(b, 0), nil
}

// MemEnd is the MEM_END payload {no_entry_flag, entry}.
type MemEnd struct {
	NoEntry bool // stay in the loader
	Entry   uint32
}

// Encode returns the 8-byte payload.
func (m MemEnd) Encode() []byte {
	var f uint32
	if m.NoEntry {
		f = 1
	}
	return words(f, m.Entry)
}

// ParseMemEnd accepts the 8-byte payload.
func ParseMemEnd(b []byte) (MemEnd, error) {
	if len(b) != 8 {
		return MemEnd{}, lenErr("MEM_END", len(b), "8 bytes")
	}
	return MemEnd{NoEntry: word(b, 0) != 0, Entry: word(b, 1)}, nil
}

// RegWrite is one WRITE_REG record {addr, value, mask, delay_us}.
type RegWrite struct {
	Addr, Value, Mask, DelayUS uint32
}

// EncodeWriteReg returns the WRITE_REG payload for the records.
func EncodeWriteReg(recs ...RegWrite) []byte {
	b := make([]byte, 0, 16*len(recs))
	for _, r := range recs {
		b = append(b, words(r.Addr, r.Value, r.Mask, r.DelayUS)...)
	}
	return b
}

// ParseWriteReg splits a WRITE_REG payload into records.
func ParseWriteReg(b []byte) ([]RegWrite, error) {
	if len(b) == 0 || len(b)%16 != 0 {
		return nil, lenErr("WRITE_REG", len(b), "a non-zero multiple of 16 bytes")
	}
	recs := make([]RegWrite, len(b)/16)
	for i := range recs {
		w := b[16*i:]
		recs[i] = RegWrite{word(w, 0), word(w, 1), word(w, 2), word(w, 3)}
	}
	return recs, nil
}

// Apply returns what a register holding cur contains after the record.
func (r RegWrite) Apply(cur uint32) uint32 { return cur&^r.Mask | r.Value&r.Mask }

// EncodeReadReg returns the READ_REG payload.
func EncodeReadReg(addr uint32) []byte { return words(addr) }

// ParseReadReg reads the address (the ROM ignores extra bytes).
func ParseReadReg(b []byte) (uint32, error) {
	if len(b) < 4 {
		return 0, lenErr("READ_REG", len(b), "4 bytes")
	}
	return word(b, 0), nil
}

// SPIParams is the SPI_SET_PARAMS payload.
type SPIParams struct {
	ID, TotalSize, BlockSize, SectorSize, PageSize, StatusMask uint32
}

// DefaultSPIParams is what esptool and espflash send for a flash of size bytes.
func DefaultSPIParams(size uint32) SPIParams {
	return SPIParams{TotalSize: size, BlockSize: 0x10000, SectorSize: 0x1000, PageSize: 0x100, StatusMask: 0xFFFF}
}

// Encode returns the 24-byte payload.
func (p SPIParams) Encode() []byte {
	return words(p.ID, p.TotalSize, p.BlockSize, p.SectorSize, p.PageSize, p.StatusMask)
}

// ParseSPIParams requires exactly 24 bytes, as the ROM does.
func ParseSPIParams(b []byte) (SPIParams, error) {
	if len(b) != 24 {
		return SPIParams{}, lenErr("SPI_SET_PARAMS", len(b), "24 bytes")
	}
	return SPIParams{word(b, 0), word(b, 1), word(b, 2), word(b, 3), word(b, 4), word(b, 5)}, nil
}

// EncodeSPIAttach returns the SPI_ATTACH payload: 8 bytes for the ROM
// (pins + legacy word 0), exactly 4 for the stub.
func EncodeSPIAttach(pins uint32, rom bool) []byte {
	if rom {
		return words(pins, 0)
	}
	return words(pins)
}

// ParseSPIAttach accepts the 4- and 8-byte forms.
func ParseSPIAttach(b []byte) (uint32, error) {
	if len(b) != 4 && len(b) != 8 {
		return 0, lenErr("SPI_ATTACH", len(b), "4 or 8 bytes")
	}
	return word(b, 0), nil
}

// ChangeBaud is the CHANGE_BAUDRATE payload {new, old}. Send Old = 0 to the
// ROM and the current rate to the stub (§1.7).
type ChangeBaud struct{ New, Old uint32 }

// Encode returns the 8-byte payload.
func (c ChangeBaud) Encode() []byte { return words(c.New, c.Old) }

// ParseChangeBaud requires 8 bytes.
func ParseChangeBaud(b []byte) (ChangeBaud, error) {
	if len(b) != 8 {
		return ChangeBaud{}, lenErr("CHANGE_BAUDRATE", len(b), "8 bytes")
	}
	return ChangeBaud{word(b, 0), word(b, 1)}, nil
}

// Region is an {offset, size} pair: SPI_FLASH_MD5 (encoded as 16 bytes
// with two zero words), ERASE_REGION and READ_FLASH_SLOW (8 bytes).
type Region struct{ Offset, Size uint32 }

// EncodeMD5 returns the 16-byte SPI_FLASH_MD5 payload.
func (r Region) EncodeMD5() []byte { return words(r.Offset, r.Size, 0, 0) }

// Encode returns the 8-byte ERASE_REGION / READ_FLASH_SLOW payload.
func (r Region) Encode() []byte { return words(r.Offset, r.Size) }

// ParseRegion reads the first two words of a payload of at least 8 bytes
// (MD5 sends 16, espflash's READ_FLASH_SLOW 16, the rest 8).
func ParseRegion(b []byte) (Region, error) {
	if len(b) < 8 {
		return Region{}, lenErr("region", len(b), "at least 8 bytes")
	}
	return Region{word(b, 0), word(b, 1)}, nil
}

// ReadFlash is the stub READ_FLASH payload.
type ReadFlash struct {
	Offset, Length, PacketSize, MaxInFlight uint32
}

// Encode returns the 16-byte payload.
func (r ReadFlash) Encode() []byte { return words(r.Offset, r.Length, r.PacketSize, r.MaxInFlight) }

// ParseReadFlash requires 16 bytes.
func ParseReadFlash(b []byte) (ReadFlash, error) {
	if len(b) != 16 {
		return ReadFlash{}, lenErr("READ_FLASH", len(b), "16 bytes")
	}
	return ReadFlash{word(b, 0), word(b, 1), word(b, 2), word(b, 3)}, nil
}

// EncodeReadFlashAck returns the host's acknowledgement frame during
// READ_FLASH: the total bytes received so far.
func EncodeReadFlashAck(total uint32) []byte { return words(total) }

// ParseReadFlashAck reads an acknowledgement frame.
func ParseReadFlashAck(b []byte) (uint32, error) {
	if len(b) != 4 {
		return 0, lenErr("READ_FLASH ack", len(b), "4 bytes")
	}
	return word(b, 0), nil
}

// MD5 result lengths: the ROM answers 32 lowercase hex characters, the stub
// 16 raw bytes (§1.7).
const (
	MD5LenROM  = 32
	MD5LenStub = 16
)

// EncodeMD5Result returns the MD5 result bytes as the ROM (hex) or the
// stub (raw) sends them.
func EncodeMD5Result(sum [16]byte, rom bool) []byte {
	if rom {
		return []byte(hex.EncodeToString(sum[:]))
	}
	return append([]byte(nil), sum[:]...)
}

// ParseMD5Result accepts the 32-character hex form (any case) and the 16
// raw bytes.
func ParseMD5Result(b []byte) ([16]byte, error) {
	var sum [16]byte
	switch len(b) {
	case MD5LenStub:
		copy(sum[:], b)
		return sum, nil
	case MD5LenROM:
		if _, err := hex.Decode(sum[:], b); err != nil {
			return sum, &FormatError{What: "SPI_FLASH_MD5 result", Offset: 0, Want: "32 hex digits", Got: fmt.Sprintf("%q", b)}
		}
		return sum, nil
	}
	return sum, lenErr("SPI_FLASH_MD5 result", len(b), "16 or 32 bytes")
}
