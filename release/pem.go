package release

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// ParseCertificates reads every CERTIFICATE block of PEM data, or a single
// DER certificate: trust anchors, signer certificates and chains as CA
// tooling hands them out. Other PEM blocks (keys, CRLs) are skipped.
func ParseCertificates(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	err := eachPEM(b, "CERTIFICATE", func(der []byte) error {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("release: certificate %d does not parse: %w", len(out)+1, err)
		}
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return nil, errors.New("release: no certificate (PEM or DER) found")
		}
		out = append(out, c)
	}
	return out, nil
}

// ParseCRLs reads every X509 CRL block of PEM data, or a single DER CRL.
func ParseCRLs(b []byte) ([]*x509.RevocationList, error) {
	var out []*x509.RevocationList
	err := eachPEM(b, "X509 CRL", func(der []byte) error {
		c, err := x509.ParseRevocationList(der)
		if err != nil {
			return fmt.Errorf("release: CRL %d does not parse: %w", len(out)+1, err)
		}
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		c, err := x509.ParseRevocationList(b)
		if err != nil {
			return nil, errors.New("release: no CRL (PEM or DER) found")
		}
		out = append(out, c)
	}
	return out, nil
}

func eachPEM(b []byte, typ string, f func(der []byte) error) error {
	for rest := b; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			return nil
		}
		if blk.Type == typ {
			if err := f(blk.Bytes); err != nil {
				return err
			}
		}
	}
}
