package provisioning

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"fuseline/fixtures"
	"fuseline/flasher"
	"fuseline/provisioning/recipe"
	"fuseline/release"
	"fuseline/reports/audit"
	"fuseline/reports/evidence"
)

// Sub-devices (design.md, "system upgrade"): a signed release may carry
// images for devices behind the main board. Each is another ESP chip in
// download mode on the link the recipe names for it. Run sends them after
// the main board's images are written and verified and before the lockdown
// burns, so a sub-device that cannot be written fails the board while its
// download mode is still open. The images stream from the release through
// release.Route, which authenticates each one (twice) as it goes; the
// writer here holds the whole image before the first byte goes out, so an
// image that fails authentication is never sent at all.

// SubdeviceDialer opens the link to one recipe sub-device: a Board on its
// UART (reset lines optional: flasher.NoReset for a chip held in download
// mode). The returned close is called when the run is done with the link.
type SubdeviceDialer func(ctx context.Context, sd recipe.Subdevice) (Board, func(), error)

// DialSubdevice is the default SubdeviceDialer: it dials tcp:// links (a
// board served by `fuseline sim`, a serial-to-TCP server) and refuses
// virtual: ones, which only the station that creates virtual boards can
// open (the CLI's DialSubdevice).
func DialSubdevice(ctx context.Context, sd recipe.Subdevice) (Board, func(), error) {
	addr, ok := sd.TCP()
	if !ok {
		return nil, nil, fmt.Errorf("provisioning: sub-device %s: link %q needs a station that provides it (Config.DialSubdevice)", sd.Name, sd.Link)
	}
	l, err := (&fixtures.Opener{}).Open(ctx, "socket://"+addr)
	if err != nil {
		return nil, nil, fmt.Errorf("provisioning: sub-device %s: %w", sd.Name, err)
	}
	// No reset lines: the chip waits in download mode (fixtures.Board).
	return &fixtures.Board{Link: l, Slot: sd.Name}, func() { l.Close() }, nil
}

// subdevices sends every sub-device image of the release to its device
// (through release.Route) and closes the links afterwards.
func (x *run) subdevices(ctx context.Context) error {
	if len(x.rel.Subdevices) == 0 {
		return nil
	}
	if x.rel.Format != recipe.FormatSigned {
		return fmt.Errorf("%w: sub-device images come only from a signed release", ErrVerify)
	}
	// The release is opened (and authenticated) again: intake read it
	// before this board was connected, and it must still be the release
	// intake accepted.
	sr, err := release.Open(ctx, x.rel.Dir, x.rel.policy)
	if err != nil {
		x.check(evidence.CheckManifestSignature+":subdevices", "the release re-opened for the sub-device images is the one intake accepted", false, err.Error())
		return fmt.Errorf("%w: re-open the release for its sub-device images: %w", ErrVerify, err)
	}
	defer sr.Close()
	if [32]byte(sr.Authenticated().ManifestSHA256) != x.rel.ManifestSHA256 {
		x.check(evidence.CheckManifestSignature+":subdevices", "the release re-opened for the sub-device images is the one intake accepted", false, "the manifest changed since intake")
		return fmt.Errorf("%w: the release manifest changed since intake", ErrVerify)
	}
	x.emit(Event{Phase: PhaseFlash, Kind: EventInfo, Message: "sub-device images: " + subdeviceSummary(x.rel.Subdevices)})
	links := &subdeviceLinks{x: x, open: map[string]*subdeviceWriter{}}
	defer links.close()
	err = sr.Route(ctx, links)
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrLink) || errors.Is(err, ErrVerify) {
		return err
	}
	// Route's own refusals: an image that no longer matches the manifest
	// (found before a byte of it was sent).
	x.check(evidence.CheckImageHash+":subdevices", "every sub-device image matches the signed manifest when it is sent", false, err.Error())
	return fmt.Errorf("%w: sub-device images: %w", ErrVerify, err)
}

// subdeviceLinks is the run's release.SubdeviceLinks: it dials the link the
// recipe names for a device and connects the flasher to it.
type subdeviceLinks struct {
	x    *run
	open map[string]*subdeviceWriter
}

func (l *subdeviceLinks) close() {
	names := make([]string, 0, len(l.open))
	for n := range l.open {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if c := l.open[n].close; c != nil {
			c()
		}
	}
}

// Subdevice implements release.SubdeviceLinks.
func (l *subdeviceLinks) Subdevice(ctx context.Context, device string) (release.SubdeviceWriter, error) {
	x := l.x
	if w := l.open[device]; w != nil {
		return w, nil
	}
	sd, ok := x.r.Subdevice(device)
	if !ok {
		// Intake refuses such a release; this is the second line.
		return nil, fmt.Errorf("%w: sub-device %q is not in the recipe", ErrVerify, device)
	}
	w := &subdeviceWriter{x: x, sd: sd}
	err := x.step(PhaseFlash, "subdevice:"+device+":connect", func() error {
		dial := x.cfg.DialSubdevice
		if dial == nil {
			dial = DialSubdevice
		}
		b, closeFn, err := dial(ctx, sd)
		if err != nil {
			return fmt.Errorf("%w: sub-device %s (%s): %w", ErrLink, device, sd.Link, err)
		}
		w.close = closeFn
		// A link's spelling says nothing of what is behind it (TargetOf),
		// its answer does (LinkTarget, below); on a run whose own board is
		// a model the sub-devices are taken as models too, so the record
		// never holds an observation beside a model's.
		w.target = TargetOf(b)
		if x.target != evidence.TargetBoard {
			w.target = x.target
		}
		l.open[device] = w
		fc := flasher.Config{Chip: sd.Chip.Arg(), Log: x.log.With("subdevice", device), Progress: x.flasherProgress}
		s, err := flasher.Connect(ctx, b, b, fc)
		if err != nil {
			if _, ok := errors.AsType[*flasher.ChipMismatchError](err); ok {
				return fmt.Errorf("%w: sub-device %s: the board is not the recipe's %s: %w", ErrVerify, device, sd.Chip.Arg(), err)
			}
			return fmt.Errorf("%w: sub-device %s (%s): connect: %w", ErrLink, device, sd.Link, err)
		}
		model, err := s.AskModel(ctx)
		if err != nil {
			return fmt.Errorf("%w: sub-device %s (%s): asking the link what is behind it: %w", ErrLink, device, sd.Link, err)
		}
		w.target, _ = LinkTarget(w.target, model)
		baud := x.cfg.Baud
		if baud == 0 {
			baud = DefaultBaud
		}
		if baud != s.Info().Baud {
			if err := s.ChangeBaud(ctx, baud); err != nil {
				if errors.Is(err, flasher.ErrLinkLost) {
					return fmt.Errorf("%w: sub-device %s: change baud to %d: %w", ErrLink, device, baud, err)
				}
				x.log.Warn("sub-device baud change refused, staying at the current rate", "subdevice", device, "baud", baud, "err", err)
			}
		}
		w.sess = s
		return nil
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// subdeviceWriter writes release images to one sub-device's flash through
// the flasher: a release.SubdeviceWriter.
type subdeviceWriter struct {
	x     *run
	sd    recipe.Subdevice
	sess  *flasher.Session
	close func()
	// target is the sub-device's own target (TargetOf, then LinkTarget): a virtual
	// sub-device's checks are modelled even behind a real board.
	target string
}

// WriteImage implements release.SubdeviceWriter. It reads the whole image
// first: r hands over the last block only if the image matches the signed
// manifest, so nothing unauthenticated reaches the device. Then it writes
// it at f.Offset and requires the flash MD5 to match.
func (w *subdeviceWriter) WriteImage(ctx context.Context, f release.File, r io.Reader) error {
	x := w.x
	name := fmt.Sprintf("subdevice:%s@0x%x", w.sd.Name, f.Offset)
	checkName := evidence.CheckFlashMD5 + ":" + name
	what := fmt.Sprintf("subdevice %s: image %s written and MD5-verified", w.sd.Name, f.Path)
	return x.step(PhaseFlash, name, func() error {
		if f.Size > MaxImageSize {
			x.checkOn(w.target, checkName, what, false, "the image is too large")
			return fmt.Errorf("%w: %s: %d bytes: larger than %d", ErrVerify, f.Path, f.Size, MaxImageSize)
		}
		data, err := io.ReadAll(io.LimitReader(r, MaxImageSize+1))
		if err == nil && int64(len(data)) != f.Size {
			err = fmt.Errorf("read %d of %d bytes", len(data), f.Size)
		}
		if err != nil {
			x.checkOn(w.target, checkName, what, false, "the image did not authenticate; nothing was sent")
			x.auditRec(audit.EventRegionWritten, audit.ResultFail, audit.Details{"subdevice": w.sd.Name, "region": f.Region(), "file": f.Path, "error": "not authenticated"})
			// A *release.RegionError stays in the chain for Route.
			return fmt.Errorf("%w: %s for sub-device %s: %w", ErrVerify, f.Path, w.sd.Name, err)
		}
		if err := x.journalRec(recBegin, name, "", "", nil); err != nil {
			return err
		}
		res, err := w.sess.WriteRegion(ctx, flasher.Region{Name: w.sd.Name, Offset: f.Offset, Data: data})
		if err == nil {
			err = checkSubdeviceWrite(res, data)
		}
		if err != nil {
			_ = x.journalRec(recEnd, name, ResultFailed, err.Error(), nil)
			x.checkOn(w.target, checkName, what, false, err.Error())
			x.auditRec(audit.EventRegionWritten, audit.ResultFail, audit.Details{"subdevice": w.sd.Name, "region": f.Region(), "file": f.Path, "error": truncate(err.Error(), 256)})
			if _, ok := errors.AsType[*flasher.VerifyError](err); ok || errors.Is(err, ErrVerify) {
				return fmt.Errorf("%w: sub-device %s: %w", ErrVerify, w.sd.Name, err)
			}
			return fmt.Errorf("%w: sub-device %s: write %s: %w", ErrLink, w.sd.Name, f.Path, err)
		}
		x.res.PayloadBytes += int64(res.WireBytes)
		sum := evidence.Digest(sha256.Sum256(data))
		x.subImages = append(x.subImages, evidence.Image{Role: "subdevice/" + w.sd.Name, File: path.Base(f.Path), Offset: f.Offset,
			Size: int64(len(data)), PlaintextSHA256: sum, WrittenSHA256: sum, WriteMode: "plain", SignatureKeyDigests: []evidence.Digest{}})
		x.checkOn(w.target, checkName, what, true, "")
		x.auditRec(audit.EventRegionWritten, audit.ResultOK, audit.Details{"subdevice": w.sd.Name, "region": f.Region(), "file": f.Path,
			"written_sha256": fmt.Sprintf("%x", sha256.Sum256(data)), "md5_verified": "true"})
		return x.journalRec(recEnd, name, ResultOK, "", nil)
	})
}

// checkSubdeviceWrite requires the loader's flash MD5 to have matched the
// image (padded with 0xFF to what was written).
func checkSubdeviceWrite(res *flasher.WriteResult, data []byte) error {
	if !res.Verified {
		why := res.NotVerified
		if why == "" {
			why = "no reason given"
		}
		return fmt.Errorf("%w: flash MD5 not verified: %s", ErrVerify, why)
	}
	want := data
	if res.Size > len(data) {
		want = append(bytes.Clone(data), bytes.Repeat([]byte{0xFF}, res.Size-len(data))...)
	}
	if res.Size < len(data) || res.MD5 != md5.Sum(want) {
		return fmt.Errorf("%w: the flash MD5 is of other data than the image (%d bytes written)", ErrVerify, res.Size)
	}
	return nil
}

// subdeviceSummary names the sub-device images for messages.
func subdeviceSummary(imgs []SubdeviceImage) string {
	var parts []string
	for _, im := range imgs {
		parts = append(parts, fmt.Sprintf("%s@0x%x (%s)", im.Device, im.Offset, im.File))
	}
	return strings.Join(parts, ", ")
}
