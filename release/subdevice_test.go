package release_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fuseline/release"
	"fuseline/release/releasetest"
)

// twoDeviceRelease is the standard test release plus a second sub-device
// image for "radio", signed; it returns the opened release.
func twoDeviceRelease(t *testing.T, mutate func(dir string)) (*release.Release, string) {
	t.Helper()
	ctx := context.Background()
	f := newFx(t)
	src := t.TempDir()
	opts, err := releasetest.Options(src, "1.0.0", 1)
	if err != nil {
		t.Fatal(err)
	}
	radio := filepath.Join(src, "radio.bin")
	os.WriteFile(radio, releasetest.Image(5000, 42), 0o644)
	opts.Files = append(opts.Files, release.FileSpec{Role: release.RoleSubdevice, Device: "radio", Offset: 0x1000, Source: radio})
	if _, err := release.Create(ctx, f.dir, opts); err != nil {
		t.Fatal(err)
	}
	if err := release.SignDir(ctx, f.dir, f.signer); err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(f.dir)
	}
	r, err := release.Open(ctx, f.dir, f.pol)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, f.dir
}

// swapper changes its own image on disk after the pre-pass, before it
// reads: the second, streamed authentication must catch it.
type swapper struct {
	dir string
	releasetest.Writer
}

func (s *swapper) WriteImage(ctx context.Context, f release.File, r io.Reader) error {
	fh, err := os.OpenFile(filepath.Join(s.dir, f.Path), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	fh.WriteAt([]byte{0xEE}, f.Size-1)
	fh.Close()
	return s.Writer.WriteImage(ctx, f, r)
}

func TestRoute(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("each image to its device", func(t *testing.T) {
		t.Parallel()
		r, dir := twoDeviceRelease(t, nil)
		motor, radio := &releasetest.Writer{}, &releasetest.Writer{}
		if err := r.Route(ctx, release.SubdeviceMap{"motor": motor, "radio": radio, "unused": &releasetest.Writer{}}); err != nil {
			t.Fatal(err)
		}
		for w, name := range map[*releasetest.Writer]string{motor: "motor.bin", radio: "radio.bin"} {
			want, _ := os.ReadFile(filepath.Join(dir, name))
			if len(w.Order) != 1 || !bytes.Equal(w.Got[name], want) {
				t.Fatalf("%s: writer got %v", name, w.Order)
			}
		}
		if _, err := r.Finish(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("missing link stops before anything is sent", func(t *testing.T) {
		t.Parallel()
		r, _ := twoDeviceRelease(t, nil)
		motor := &releasetest.Writer{}
		err := r.Route(ctx, release.SubdeviceMap{"motor": motor})
		if err == nil || !strings.Contains(err.Error(), `no link to sub-device "radio"`) || len(motor.Order) != 0 {
			t.Fatalf("err = %v, motor got %v", err, motor.Order)
		}
	})
	t.Run("tampered image is never sent", func(t *testing.T) {
		t.Parallel()
		r, _ := twoDeviceRelease(t, func(dir string) {
			p := filepath.Join(dir, "radio.bin")
			b, _ := os.ReadFile(p)
			b[0] ^= 1
			os.WriteFile(p, b, 0o644)
		})
		motor, radio := &releasetest.Writer{}, &releasetest.Writer{}
		err := r.Route(ctx, release.SubdeviceMap{"motor": motor, "radio": radio})
		re, ok := errors.AsType[*release.RefusedError](err)
		if !ok || re.Reason != release.ReasonImage || len(radio.Order) != 0 {
			t.Fatalf("err = %v, radio got %v", err, radio.Order)
		}
		if !strings.Contains(err.Error(), "subdevice radio.bin (sub-device radio @0x1000) invalid: sha256 mismatch") {
			t.Fatalf("message: %v", err)
		}
	})
	t.Run("image changed while sending", func(t *testing.T) {
		t.Parallel()
		r, dir := twoDeviceRelease(t, nil)
		motor := &swapper{dir: dir}
		err := r.Route(ctx, release.SubdeviceMap{"motor": motor, "radio": &releasetest.Writer{}})
		if _, ok := errors.AsType[*release.RegionError](err); !ok {
			t.Fatalf("err = %v, want a region error", err)
		}
		if len(motor.Order) != 0 {
			t.Fatal("the writer completed an image that changed under it")
		}
	})
	t.Run("writer stopping early", func(t *testing.T) {
		t.Parallel()
		r, _ := twoDeviceRelease(t, nil)
		err := r.Route(ctx, release.SubdeviceMap{"motor": &releasetest.Writer{StopAt: 100}, "radio": &releasetest.Writer{}})
		if err == nil || !strings.Contains(err.Error(), "writer returned after reading 100 of 30000 bytes") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("writer error", func(t *testing.T) {
		t.Parallel()
		r, _ := twoDeviceRelease(t, nil)
		boom := errors.New("CAN bus off")
		err := r.Route(ctx, release.SubdeviceMap{"motor": &releasetest.Writer{Err: boom}, "radio": &releasetest.Writer{}})
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "sending motor.bin to sub-device motor") {
			t.Fatalf("err = %v", err)
		}
	})
}
