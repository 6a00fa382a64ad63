package image

import (
	"encoding/binary"
	"fmt"
)

// HeadLen is the image prefix ParseHead needs to see an app descriptor:
// the header, segment 0's header and the 256-byte esp_app_desc_t (§5.3).
const HeadLen = HeaderLen + SegmentHeaderLen + AppDescLen

// Head is what the first bytes of an image say about it: the header (chip
// ID, revision window, flash parameters) and the app descriptor when
// segment 0 begins with one. It lets a stream be checked from its first
// HeadLen bytes, before (or without) holding the whole image.
type Head struct {
	Header Header
	App    *AppDesc // nil when segment 0 holds no app descriptor
}

// ParseHead reads the header and, as Parse does, the app descriptor at
// the start of segment 0 (found only when segment 0's data is at least
// 256 bytes, all of them within b). Nothing after the descriptor is read:
// the checksum and digest are not verified, so a caller must have
// authenticated the bytes some other way. Every error is a *FormatError.
func ParseHead(b []byte) (*Head, error) {
	if len(b) < HeaderLen {
		return nil, formatErr(0, "a 24-byte image header", "%d bytes", len(b))
	}
	if b[0] != Magic {
		return nil, formatErr(0, "magic 0xE9", "0x%02X", b[0])
	}
	if b[1] > MaxSegments {
		return nil, formatErr(1, "segment count <= 16", "%d", b[1])
	}
	if b[23] > 1 {
		return nil, formatErr(23, "hash_appended 0 or 1", "%d", b[23])
	}
	h := &Head{Header: parseHeader(b)}
	if b[1] == 0 || len(b) < HeadLen {
		return h, nil
	}
	if n := binary.LittleEndian.Uint32(b[HeaderLen+4:]); n >= AppDescLen {
		if app, err := ParseAppDesc(b[AppDescOffset:HeadLen]); err == nil {
			h.App = app
		}
	}
	return h, nil
}

// String is the head for messages: "esp32s3 image" or "esp32s3 app 1.2.0
// (secure_version 1)".
func (h *Head) String() string {
	if h.App == nil {
		return fmt.Sprintf("%s image", h.Header.ChipID)
	}
	return fmt.Sprintf("%s app %s (secure_version %d)", h.Header.ChipID, h.App.Version, h.App.SecureVersion)
}
