// Package image reads, checks and builds ESP application and bootloader
// images (the "ESP image" format, magic 0xE9) for ESP32-S3, ESP32-C3 and
// classic ESP32.
//
// It follows docs/esp-serial-and-images.md §5 (layout, checksum, padding,
// appended SHA-256, the app descriptor esp_app_desc_t of §5.3 and the
// bootloader descriptor of §5.4) and the Secure Boot v2 sector placement of
// docs/esp-security-facts.md §4.1. Intake uses it to read an app's
// secure_version, the virtual board uses it on its boot path, and Synth makes
// deterministic images for tests and the demo.
//
// Everything here is pure: bytes in, values out. Every parse error is a
// *FormatError naming the offset of the offending bytes.
package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"fuseline/esp/chip"
)

// Format constants (§5.1).
const (
	Magic            = 0xE9     // byte 0 of every image
	HeaderLen        = 24       // esp_image_header_t including the extended header
	SegmentHeaderLen = 8        // load_addr u32, data_len u32
	MaxSegments      = 16       // ESP_IMAGE_MAX_SEGMENTS, padding segments included
	MaxSegmentLen    = 16 << 20 // the bootloader and esptool reject data_len >= 16 MiB
	ChecksumSeed     = 0xEF     // the XOR checksum starts here
	HashLen          = sha256.Size
	// MMUPageSize is the flash MMU page: a flash-mapped segment's data must sit
	// at a file offset congruent to its load address modulo this.
	MMUPageSize = 0x10000
	// SignatureSectorLen is the Secure Boot v2 signature sector appended to a
	// signed image (esp-security-facts §4.1).
	SignatureSectorLen = 4096
	// SignatureBlockLen is one signature block inside that sector.
	SignatureBlockLen = 1216
)

// FormatError reports bytes that are not a valid image: what was expected
// and what was found, at which byte offset of the input.
type FormatError struct {
	Offset int    // byte offset in the input where the problem is
	Want   string // what the format requires there
	Got    string // what the input holds
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("image: at offset 0x%x: want %s, got %s", e.Offset, e.Want, e.Got)
}

func formatErr(off int, want string, gotf string, a ...any) *FormatError {
	return &FormatError{Offset: off, Want: want, Got: fmt.Sprintf(gotf, a...)}
}

// FlashMode is header byte 2.
type FlashMode uint8

// Flash modes.
const (
	QIO  FlashMode = 0
	QOUT FlashMode = 1
	DIO  FlashMode = 2
	DOUT FlashMode = 3
)

func (m FlashMode) String() string {
	switch m {
	case QIO:
		return "qio"
	case QOUT:
		return "qout"
	case DIO:
		return "dio"
	case DOUT:
		return "dout"
	}
	return fmt.Sprintf("mode(0x%x)", uint8(m))
}

// MaxFlashBytes is the largest flash an image header can name (128 MB): no
// image, and no dump of a chip's flash, is longer.
const MaxFlashBytes = 1 << 20 << Size128MB

// FlashSize is the high nibble of header byte 3.
type FlashSize uint8

// Flash sizes.
const (
	Size1MB   FlashSize = 0
	Size2MB   FlashSize = 1
	Size4MB   FlashSize = 2
	Size8MB   FlashSize = 3
	Size16MB  FlashSize = 4
	Size32MB  FlashSize = 5
	Size64MB  FlashSize = 6
	Size128MB FlashSize = 7
)

// Bytes is the flash size in bytes, or 0 for a value the format does not define.
func (s FlashSize) Bytes() int {
	if s > Size128MB {
		return 0
	}
	return 1 << 20 << s
}

func (s FlashSize) String() string {
	if n := s.Bytes(); n != 0 {
		return fmt.Sprintf("%dMB", n>>20)
	}
	return fmt.Sprintf("size(0x%x)", uint8(s))
}

// FlashFreq is the low nibble of header byte 3 (ESP32, S3 and C3 values).
type FlashFreq uint8

// Flash frequencies.
const (
	Freq40M FlashFreq = 0x0
	Freq26M FlashFreq = 0x1
	Freq20M FlashFreq = 0x2
	Freq80M FlashFreq = 0xF
)

func (f FlashFreq) String() string {
	switch f {
	case Freq40M:
		return "40m"
	case Freq26M:
		return "26m"
	case Freq20M:
		return "20m"
	case Freq80M:
		return "80m"
	}
	return fmt.Sprintf("freq(0x%x)", uint8(f))
}

// Header is esp_image_header_t with its extended part (§5.1). The segment
// count is not a field: it is len(Image.Segments).
type Header struct {
	FlashMode FlashMode
	FlashSize FlashSize
	FlashFreq FlashFreq
	EntryAddr uint32
	WPPin     uint8    // 0xEE = disabled (ESP-IDF default)
	SPIPinDrv [3]uint8 // bytes 9–11, drive strengths, normally 0
	ChipID    chip.ID
	// MinRev is the legacy min_chip_rev byte: the major revision, except on
	// ESP32-C3 where it holds the minor revision.
	MinRev     uint8
	MinRevFull uint16 // major×100+minor
	// MaxRevFull is major×100+minor; 0 means the field is absent (old
	// images) and 0xFFFF "not set" (esptool's default).
	MaxRevFull   uint16
	Reserved     [4]byte
	HashAppended bool // a SHA-256 of the image follows the checksum
}

// Segment is one loadable segment. Data aliases the parsed input.
type Segment struct {
	LoadAddr uint32
	// Offset is the file offset of the segment header; the data starts 8
	// bytes later. Build ignores it.
	Offset int
	Data   []byte
}

// DataOffset is the file offset of the segment's first data byte.
func (s Segment) DataOffset() int { return s.Offset + SegmentHeaderLen }

// IsPadding reports a padding segment (load address 0), which elf2image
// inserts to move a flash-mapped segment to its MMU page offset.
func (s Segment) IsPadding() bool { return s.LoadAddr == 0 }

// Image is a parsed image. Slices alias the input of Parse.
type Image struct {
	Header   Header
	Segments []Segment
	// Checksum is the stored checksum byte, at ChecksumOffset.
	Checksum       byte
	ChecksumOffset int
	// SHA256 is the stored appended digest when Header.HashAppended.
	SHA256 [HashLen]byte
	// Length is the image length: through the checksum byte and, when
	// Header.HashAppended, the 32-byte digest. Bytes after it are Trailer.
	Length int
	// Trailer holds the input bytes after Length: secure padding and a
	// signature sector in a signed image, erased flash in a partition dump.
	Trailer []byte
	// App is the app descriptor when segment 0 begins with one (§5.3).
	App *AppDesc
	// Bootloader is the bootloader descriptor when segment 0 begins with
	// one and there is no app descriptor (§5.4).
	Bootloader *BootloaderDesc

	calcChecksum byte
	calcSHA256   [HashLen]byte
}

// Parse reads an image from b and verifies its checksum and, when present,
// its appended SHA-256. Bytes after the image are accepted and kept in
// Trailer. Every error is a *FormatError.
func Parse(b []byte) (*Image, error) {
	img, err := ParseUnverified(b)
	if err != nil {
		return nil, err
	}
	if err := img.Verify(); err != nil {
		return nil, err
	}
	return img, nil
}

// ParseUnverified reads the structure of an image without comparing its
// checksum and digest, so a tool can show a corrupted image's contents;
// Verify does the comparison. Every error is a *FormatError.
func ParseUnverified(b []byte) (*Image, error) {
	if len(b) < HeaderLen {
		return nil, formatErr(0, "a 24-byte image header", "%d bytes", len(b))
	}
	if b[0] != Magic {
		return nil, formatErr(0, "magic 0xE9", "0x%02X", b[0])
	}
	nseg := int(b[1])
	if nseg > MaxSegments {
		return nil, formatErr(1, "segment count <= 16", "%d", nseg)
	}
	if b[23] > 1 {
		return nil, formatErr(23, "hash_appended 0 or 1", "%d", b[23])
	}
	img := &Image{Header: parseHeader(b)}

	off := HeaderLen
	img.Segments = make([]Segment, 0, nseg)
	for i := range nseg {
		if len(b)-off < SegmentHeaderLen {
			return nil, formatErr(off, fmt.Sprintf("segment %d header (8 bytes)", i), "%d bytes left", len(b)-off)
		}
		load := binary.LittleEndian.Uint32(b[off:])
		n := binary.LittleEndian.Uint32(b[off+4:])
		if n%4 != 0 {
			return nil, formatErr(off+4, fmt.Sprintf("segment %d length a multiple of 4", i), "0x%x", n)
		}
		if n >= MaxSegmentLen {
			return nil, formatErr(off+4, fmt.Sprintf("segment %d length < 16 MiB", i), "0x%x", n)
		}
		data := off + SegmentHeaderLen
		if uint64(len(b)-data) < uint64(n) {
			return nil, formatErr(off+4, fmt.Sprintf("segment %d data of 0x%x bytes", i, n), "only 0x%x bytes left", len(b)-data)
		}
		img.Segments = append(img.Segments, Segment{LoadAddr: load, Offset: off, Data: b[data : data+int(n) : data+int(n)]})
		off = data + int(n)
	}

	// Zero padding so that (position of checksum + 1) % 16 == 0.
	cs := off | 15
	if cs >= len(b) {
		return nil, formatErr(off, fmt.Sprintf("zero padding and the checksum byte through offset 0x%x", cs), "end of input at 0x%x", len(b))
	}
	img.ChecksumOffset = cs
	img.Checksum = b[cs]
	img.calcChecksum = checksum(img.Segments)
	img.Length = cs + 1
	if img.Header.HashAppended {
		if len(b)-img.Length < HashLen {
			return nil, formatErr(img.Length, "appended SHA-256 (32 bytes)", "%d bytes", len(b)-img.Length)
		}
		copy(img.SHA256[:], b[img.Length:])
		img.calcSHA256 = sha256.Sum256(b[:img.Length])
		img.Length += HashLen
	}
	img.Trailer = b[img.Length:len(b):len(b)]
	img.parseDescriptors()
	return img, nil
}

// Verify compares the stored checksum and appended SHA-256 with the ones
// computed from the image bytes.
func (img *Image) Verify() error {
	if img.Checksum != img.calcChecksum {
		return formatErr(img.ChecksumOffset, fmt.Sprintf("checksum 0x%02X", img.calcChecksum), "0x%02X", img.Checksum)
	}
	if img.Header.HashAppended && img.SHA256 != img.calcSHA256 {
		return formatErr(img.ChecksumOffset+1, fmt.Sprintf("SHA-256 %x", img.calcSHA256[:]), "%x", img.SHA256[:])
	}
	return nil
}

// ComputedChecksum is the checksum the segment data gives (0xEF XOR every byte).
func (img *Image) ComputedChecksum() byte { return img.calcChecksum }

// ComputedSHA256 is the SHA-256 of bytes [0, checksum] as parsed; zero when
// the image has no appended hash.
func (img *Image) ComputedSHA256() [HashLen]byte { return img.calcSHA256 }

// SignedRegion reports where a Secure Boot v2 signature sector would sit
// after this image (esp-security-facts §4.1): the signed content is the
// input's first contentEnd bytes (the image, then padding to a 4 KiB
// boundary, 0xFF from espsecure; none when elf2image's secure padding already
// ended the image on a 64 KiB page) and the 4 KiB sector follows. ok is false
// when the trailer is too short to hold the sector. Whether the sector holds
// valid signature blocks is for package secureboot to say.
func (img *Image) SignedRegion() (contentEnd int, sector []byte, ok bool) {
	contentEnd = roundUp(img.Length, SignatureSectorLen)
	pad := contentEnd - img.Length
	if len(img.Trailer) < pad+SignatureSectorLen {
		return 0, nil, false
	}
	return contentEnd, img.Trailer[pad : pad+SignatureSectorLen], true
}

// SignatureBlocks counts the sector's slots that begin with a signature
// block header (magic 0xE7, version 0x02 RSA or 0x03 ECDSA), without
// checking CRCs or signatures.
func SignatureBlocks(sector []byte) int {
	n := 0
	for i := 0; i < 3; i++ {
		o := i * SignatureBlockLen
		if o+2 <= len(sector) && sector[o] == 0xE7 && (sector[o+1] == 0x02 || sector[o+1] == 0x03) {
			n++
		}
	}
	return n
}

// MarshalBinary encodes the image from its Header and Segments. The checksum
// and SHA-256 are recomputed (the stored ones are ignored) and Trailer is not
// included.
func (img *Image) MarshalBinary() ([]byte, error) {
	return Build(img.Header, img.Segments)
}

// Build lays out an image: header, segments, zero padding, checksum and,
// when h.HashAppended, the SHA-256. Segment.Offset is ignored. Lengths must
// be multiples of 4 (esptool pads segment data with zeros; do it before
// calling) and below 16 MiB.
func Build(h Header, segs []Segment) ([]byte, error) {
	if len(segs) > MaxSegments {
		return nil, fmt.Errorf("image: build: %d segments, at most %d", len(segs), MaxSegments)
	}
	size := HeaderLen
	for i, s := range segs {
		if len(s.Data)%4 != 0 || len(s.Data) >= MaxSegmentLen {
			return nil, fmt.Errorf("image: build: segment %d length 0x%x is not a multiple of 4 below 16 MiB", i, len(s.Data))
		}
		size += SegmentHeaderLen + len(s.Data)
	}
	cs := size | 15
	total := cs + 1
	if h.HashAppended {
		total += HashLen
	}
	out := make([]byte, total)
	hdr := h.marshal(len(segs))
	copy(out, hdr[:])
	off := HeaderLen
	for _, s := range segs {
		binary.LittleEndian.PutUint32(out[off:], s.LoadAddr)
		binary.LittleEndian.PutUint32(out[off+4:], uint32(len(s.Data)))
		off += SegmentHeaderLen + copy(out[off+SegmentHeaderLen:], s.Data)
	}
	out[cs] = checksum(segs)
	if h.HashAppended {
		sum := sha256.Sum256(out[:cs+1])
		copy(out[cs+1:], sum[:])
	}
	return out, nil
}

func parseHeader(b []byte) Header {
	h := Header{
		FlashMode:    FlashMode(b[2]),
		FlashSize:    FlashSize(b[3] >> 4),
		FlashFreq:    FlashFreq(b[3] & 0x0F),
		EntryAddr:    binary.LittleEndian.Uint32(b[4:]),
		WPPin:        b[8],
		SPIPinDrv:    [3]uint8{b[9], b[10], b[11]},
		ChipID:       chip.ID(binary.LittleEndian.Uint16(b[12:])),
		MinRev:       b[14],
		MinRevFull:   binary.LittleEndian.Uint16(b[15:]),
		MaxRevFull:   binary.LittleEndian.Uint16(b[17:]),
		HashAppended: b[23] == 1,
	}
	copy(h.Reserved[:], b[19:23])
	return h
}

func (h Header) marshal(nseg int) [HeaderLen]byte {
	var b [HeaderLen]byte
	b[0] = Magic
	b[1] = byte(nseg)
	b[2] = byte(h.FlashMode)
	b[3] = byte(h.FlashSize)<<4 | byte(h.FlashFreq)&0x0F
	binary.LittleEndian.PutUint32(b[4:], h.EntryAddr)
	b[8] = h.WPPin
	copy(b[9:12], h.SPIPinDrv[:])
	binary.LittleEndian.PutUint16(b[12:], uint16(h.ChipID))
	b[14] = h.MinRev
	binary.LittleEndian.PutUint16(b[15:], h.MinRevFull)
	binary.LittleEndian.PutUint16(b[17:], h.MaxRevFull)
	copy(b[19:23], h.Reserved[:])
	if h.HashAppended {
		b[23] = 1
	}
	return b
}

// checksum is 0xEF XOR every data byte of every segment (headers excluded).
// It folds eight bytes at a time: XOR is byte-wise, so the lanes of a
// 64-bit accumulator can be folded together at the end.
func checksum(segs []Segment) byte {
	var acc uint64
	var c byte = ChecksumSeed
	for _, s := range segs {
		d := s.Data
		for len(d) >= 8 {
			acc ^= binary.LittleEndian.Uint64(d)
			d = d[8:]
		}
		for _, x := range d {
			c ^= x
		}
	}
	for i := 0; i < 8; i++ {
		c ^= byte(acc >> (8 * i))
	}
	return c
}

func roundUp(n, to int) int { return (n + to - 1) / to * to }

// cstring returns a NUL-padded char[] field as a string: bytes up to the
// first NUL, or the whole field when it is full.
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// SetFlashParams returns a copy of the image in b with header bytes 2–3
// set to fp and, when the image has one, its appended SHA-256 recomputed,
// as esptool does for an image written at the bootloader offset (§5.5).
// Bytes after the image are copied unchanged. The checksum covers segment
// data only, so it stays. A signed image's signature no longer matches
// afterwards: do not patch signed bootloaders.
func SetFlashParams(b []byte, fp FlashParams) ([]byte, error) {
	img, err := Parse(b)
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(b)
	out[2] = byte(fp.Mode)
	out[3] = byte(fp.Size)<<4 | byte(fp.Freq)&0x0F
	if img.Header.HashAppended {
		sum := sha256.Sum256(out[:img.ChecksumOffset+1])
		copy(out[img.ChecksumOffset+1:], sum[:])
	}
	return out, nil
}
