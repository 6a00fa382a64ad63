package release_test

import (
	"bytes"
	"testing"
	"time"

	"fuseline/release"
	"fuseline/release/releasetest"
)

func TestParseCertificatesAndCRLs(t *testing.T) {
	t.Parallel()
	pki, err := releasetest.NewPKI(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	crl, err := pki.CRL(pki.Intermediate, time.Now(), time.Now().Add(time.Hour), pki.Signer.Cert)
	if err != nil {
		t.Fatal(err)
	}
	chain := releasetest.CertPEM(pki.Signer.Cert, pki.Intermediate.Cert)
	crlPEM := releasetest.CRLPEM(crl)
	mixed := append(append(append([]byte{}, crlPEM...), chain...), crlPEM...) // other blocks are skipped

	certTests := []struct {
		name string
		in   []byte
		want int
		ok   bool
	}{
		{"PEM chain", chain, 2, true},
		{"DER", pki.Root.Cert.Raw, 1, true},
		{"mixed PEM", mixed, 2, true},
		{"CRL only", crlPEM, 0, false},
		{"garbage", []byte("not a certificate"), 0, false},
		{"broken PEM certificate", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0, false},
	}
	for _, tc := range certTests {
		got, err := release.ParseCertificates(tc.in)
		if (err == nil) != tc.ok || len(got) != tc.want {
			t.Errorf("ParseCertificates(%s) = %d certs, %v; want %d, ok=%v", tc.name, len(got), err, tc.want, tc.ok)
		}
	}
	if got, _ := release.ParseCertificates(chain); !bytes.Equal(got[0].Raw, pki.Signer.Cert.Raw) {
		t.Error("certificates out of order")
	}
	crlTests := []struct {
		name string
		in   []byte
		want int
		ok   bool
	}{
		{"PEM", crlPEM, 1, true},
		{"DER", crl.Raw, 1, true},
		{"mixed PEM", mixed, 2, true},
		{"certificates only", chain, 0, false},
	}
	for _, tc := range crlTests {
		got, err := release.ParseCRLs(tc.in)
		if (err == nil) != tc.ok || len(got) != tc.want {
			t.Errorf("ParseCRLs(%s) = %d CRLs, %v; want %d, ok=%v", tc.name, len(got), err, tc.want, tc.ok)
		}
	}
}
