package release

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// SubdeviceWriter sends images to one sub-device behind the main board (a
// motor controller, a radio module) over whatever link reaches it.
type SubdeviceWriter interface {
	// WriteImage sends the image f to the device, reading it from r. r
	// yields exactly the authenticated bytes; if a Read returns an error
	// (a *RegionError when the file changed underneath), the writer must
	// not activate what it received and must return that error.
	WriteImage(ctx context.Context, f File, r io.Reader) error
}

// SubdeviceLinks opens the link to a named sub-device. The station
// implements it from its fixture wiring; SubdeviceMap is the simple form.
type SubdeviceLinks interface {
	Subdevice(ctx context.Context, device string) (SubdeviceWriter, error)
}

// SubdeviceMap is a SubdeviceLinks with one writer per device name.
type SubdeviceMap map[string]SubdeviceWriter

// Subdevice implements SubdeviceLinks.
func (m SubdeviceMap) Subdevice(_ context.Context, device string) (SubdeviceWriter, error) {
	w, ok := m[device]
	if !ok || w == nil {
		return nil, fmt.Errorf("release: no link to sub-device %q", device)
	}
	return w, nil
}

// Route sends every sub-device file of the release to its device, in
// manifest order. It first opens the link of every device the manifest
// names, so a missing link stops the run before any device is touched.
// Each image is then authenticated twice: streamed once against its hash
// before a byte is sent, and streamed again through an ImageReader while it
// is sent, so a file swapped between the two passes still fails (with a
// *RegionError, for the writer to discard). Memory use is one buffer,
// whatever the image size.
func (r *Release) Route(ctx context.Context, links SubdeviceLinks) error {
	m := r.auth.Manifest
	writers := map[string]SubdeviceWriter{}
	for _, d := range m.Devices() {
		w, err := links.Subdevice(ctx, d)
		if err != nil {
			return err
		}
		if w == nil {
			return fmt.Errorf("release: no link to sub-device %q", d)
		}
		writers[d] = w
	}
	buf := make([]byte, copyBufSize)
	for i, f := range m.Files {
		if f.Device == "" {
			continue
		}
		rd, err := r.OpenFile(ctx, i)
		if err != nil {
			return err
		}
		err = drain(ctx, rd, buf)
		rd.Close()
		if err != nil {
			return imageErr(err)
		}
		if rd, err = r.OpenFile(ctx, i); err != nil {
			return err
		}
		err = writers[f.Device].WriteImage(ctx, f, rd)
		if err == nil && !rd.Verified() {
			// The writer stopped early and said nothing: the device did not
			// receive the whole authenticated image.
			err = fmt.Errorf("writer returned after reading %d of %d bytes", rd.n, f.Size)
		}
		rd.Close()
		if err != nil {
			if _, ok := errors.AsType[*RegionError](err); ok {
				return imageErr(err)
			}
			return fmt.Errorf("release: sending %s to sub-device %s: %w", f.Path, f.Device, err)
		}
	}
	return nil
}
