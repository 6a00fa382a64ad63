package release

import (
	"fmt"
	"strconv"
	"strings"

	"fuseline/esp/chip"
	"fuseline/esp/image"
)

// ImageHeadLen is how many leading bytes of a bootloader or app image
// CheckImage reads: the image header and the app descriptor.
const ImageHeadLen = image.HeadLen

// MetadataError is a manifest field the release's own images contradict:
// the chip against an image header's chip_id, the version and
// secure_version against an app descriptor (esp_app_desc_t). A release
// whose manifest names another version than its app runs would put that
// version into every device's evidence, so it is refused wherever it is
// met: release create, release verify and intake.
type MetadataError struct {
	Field    string // manifest field: "chip", "version", "secure_version"
	File     string // the image, as its manifest path
	Where    string // what in the image says so: "image header chip_id", "app descriptor version"
	Manifest string // the manifest's value, as written in messages
	Image    string // the image's value
}

func (e *MetadataError) Error() string {
	return fmt.Sprintf("release: manifest %s %s, but %s's %s is %s", e.Field, e.Manifest, e.File, e.Where, e.Image)
}

// checksMetadata reports whether f is an image CheckImage compares: a
// main-board bootloader or app (sub-device images are other chips' business).
func checksMetadata(f File) bool {
	return f.Device == "" && (f.Role == RoleBootloader || f.Role.IsApp())
}

// imageHead parses the head of f's image. A bootloader or app that is no
// ESP image cannot be compared, and is refused as such.
func imageHead(f File, head []byte) (*image.Head, error) {
	h, err := image.ParseHead(head)
	if err != nil {
		return nil, &MetadataError{Field: "files", File: f.Path, Where: "content", Manifest: "role " + string(f.Role), Image: "not an ESP image (" + strings.TrimPrefix(err.Error(), "image: ") + ")"}
	}
	if f.Role.IsApp() && h.App == nil {
		return nil, &MetadataError{Field: "files", File: f.Path, Where: "segment 0", Manifest: "role " + string(f.Role), Image: "without an app descriptor (esp_app_desc_t)"}
	}
	return h, nil
}

// CheckImage compares m with what file f's image says of itself, from its
// first bytes (head, at least ImageHeadLen of them where the image is that
// long): every main-board bootloader and app must be built for m.Chip
// (image header chip_id), and every app must carry m.Version and
// m.SecureVersion in its app descriptor (a leading "v" is not significant:
// git describe writes "v1.2.0"). Other files pass. A mismatch is a
// *MetadataError naming the field, the image and both values.
func (m *Manifest) CheckImage(f File, head []byte) error {
	if !checksMetadata(f) {
		return nil
	}
	h, err := imageHead(f, head)
	if err != nil {
		return err
	}
	c, err := chip.ByName(m.Chip)
	if err != nil {
		return fmt.Errorf("release: manifest chip: %w", err)
	}
	if h.Header.ChipID != c.ID {
		return &MetadataError{Field: "chip", File: f.Path, Where: "image header chip_id",
			Manifest: m.Chip, Image: fmt.Sprintf("0x%04x (%s)", uint16(h.Header.ChipID), h.Header.ChipID)}
	}
	if h.App == nil {
		return nil
	}
	if strings.TrimPrefix(h.App.Version, "v") != strings.TrimPrefix(m.Version, "v") {
		return &MetadataError{Field: "version", File: f.Path, Where: "app descriptor version",
			Manifest: strconv.Quote(m.Version), Image: strconv.Quote(h.App.Version)}
	}
	if h.App.SecureVersion != m.SecureVersion {
		return &MetadataError{Field: "secure_version", File: f.Path, Where: "app descriptor secure_version",
			Manifest: strconv.FormatUint(uint64(m.SecureVersion), 10), Image: strconv.FormatUint(uint64(h.App.SecureVersion), 10)}
	}
	return nil
}

// unset says which manifest fields Create takes from the images.
type unset struct{ chip, version, secureVersion bool }

// fillFromImage sets the fields u marks from f's image, clearing their
// marks: the chip from the header of the first bootloader or app, version
// and secure_version from the first app's descriptor.
func (m *Manifest) fillFromImage(f File, head []byte, u *unset) error {
	if !checksMetadata(f) {
		return nil
	}
	h, err := imageHead(f, head)
	if err != nil {
		return err
	}
	if u.chip {
		m.Chip, u.chip = h.Header.ChipID.String(), false
	}
	if h.App == nil {
		return nil
	}
	if u.version {
		m.Version, u.version = h.App.Version, false
	}
	if u.secureVersion {
		m.SecureVersion, u.secureVersion = h.App.SecureVersion, false
	}
	return nil
}
