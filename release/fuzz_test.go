package release_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"fuseline/release"
	"fuseline/release/releasetest"
)

// FuzzParseManifest: no panic; every error is a *FormatError whose offset
// lies within the input; whatever parses re-encodes to exactly the same
// bytes (the manifest is only accepted in canonical form).
func FuzzParseManifest(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "manifest-*.json"))
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"files":[{}]}`))
	f.Add([]byte(`{"files":[{"offset":1e400}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := release.ParseManifest(b)
		if err != nil {
			fe, ok := errors.AsType[*release.FormatError](err)
			if !ok {
				t.Fatalf("error %v is %T, not *FormatError", err, err)
			}
			if fe.Offset < 0 || fe.Offset > len(b) {
				t.Fatalf("offset %d outside %d bytes: %v", fe.Offset, len(b), err)
			}
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("parsed but does not marshal: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("round trip differs:\n in %q\nout %q", b, out)
		}
	})
}

// FuzzAuthenticateSignature feeds mutated manifest.json.p7s bytes to the
// CMS parser and the policy: no panic, and anything but the genuine
// signature is refused with a *RefusedError.
func FuzzAuthenticateSignature(f *testing.F) {
	pki, err := releasetest.NewPKI(time.Now())
	if err != nil {
		f.Fatal(err)
	}
	manifest, err := os.ReadFile(filepath.Join("testdata", "manifest-golden.json"))
	if err != nil {
		f.Fatal(err)
	}
	sig, err := release.Sign(manifest, pki.ReleaseSigner(pki.Signer))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sig)
	f.Add(sig[:len(sig)/2])
	f.Add([]byte{0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0, 0x80, 0x00, 0x00})
	pol := release.Policy{Roots: pki.Roots()}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := release.Authenticate(manifest, b, pol)
		if _, perr := release.ParseSignature(b); perr != nil {
			if _, ok := errors.AsType[*release.RefusedError](perr); !ok {
				t.Fatalf("ParseSignature error %T", perr)
			}
		}
		if err == nil {
			if !bytes.Equal(b, sig) {
				// Another encoding can only verify if it carries the same
				// signature over the same attributes: allowed, but log it.
				t.Logf("accepted a different encoding of %d bytes", len(b))
			}
			return
		}
		if _, ok := errors.AsType[*release.RefusedError](err); !ok {
			t.Fatalf("error %v is %T, not *RefusedError", err, err)
		}
	})
}
