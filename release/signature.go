package release

import (
	"crypto/x509"
	"time"

	"github.com/smallstep/pkcs7"
)

// SignatureInfo is what manifest.json.p7s says about itself. Nothing in it
// is verified: it is for display (fuseline release inspect) and diagnosis.
type SignatureInfo struct {
	Signers      int                 // SignerInfos; a valid release has 1
	Signer       *x509.Certificate   // the certificate of the only signer, nil if not found
	Certificates []*x509.Certificate // every certificate carried
	SigningTime  time.Time           // zero if absent
	Detached     bool                // no embedded content, as a release signature must be
}

// ParseSignature decodes a CMS SignedData without verifying anything.
// Errors are *RefusedError with ReasonMalformed.
func ParseSignature(sig []byte) (*SignatureInfo, error) {
	p7, err := pkcs7.Parse(sig)
	if err != nil {
		return nil, refused(ReasonMalformed, err, "%s is not a CMS SignedData: %v", SignatureName, err)
	}
	info := &SignatureInfo{Signers: len(p7.Signers), Certificates: p7.Certificates, Detached: len(p7.Content) == 0}
	info.Signer = p7.GetOnlySigner()
	var st time.Time
	if p7.UnmarshalSignedAttribute(pkcs7.OIDAttributeSigningTime, &st) == nil {
		info.SigningTime = st
	}
	return info, nil
}
