package release

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/smallstep/pkcs7"
)

// Reason says why a release was refused. Callers branch on it; the CLI
// prints it in its one-line refusal.
type Reason string

// The reasons a release is refused.
const (
	ReasonMalformed  Reason = "malformed"     // manifest or signature cannot be parsed
	ReasonSignature  Reason = "bad-signature" // the signature does not cover these manifest bytes
	ReasonUntrusted  Reason = "untrusted"     // the chain does not reach a trust anchor
	ReasonExpired    Reason = "expired"       // a certificate is outside its validity period
	ReasonPurpose    Reason = "wrong-purpose" // the signer is not a code-signing certificate
	ReasonSignerName Reason = "signer-name"   // the signer is not one of the allowed names
	ReasonRevoked    Reason = "revoked"       // a CRL revokes a certificate of the chain
	ReasonCRL        Reason = "crl"           // a CRL is unusable (bad signature, not yet valid, missing)
	ReasonCRLStale   Reason = "crl-stale"     // a CRL is past its NextUpdate and the policy refuses that
	ReasonRollback   Reason = "rollback"      // older than a release this station already accepted
	ReasonImage      Reason = "image"         // an image does not match the manifest
	ReasonMetadata   Reason = "metadata"      // the manifest's chip, version or secure_version is not what its images say
	ReasonChanged    Reason = "changed"       // manifest or signature changed while the release was in use
	ReasonMissing    Reason = "missing-file"  // a file of the release is missing or unreadable
)

// RefusedError is the one error a caller needs to branch on: the release is
// not accepted, for Reason. Detail is a single line for an operator; Err,
// when set, is the underlying error (for errors.Is/As), whose text may not
// be one line and is not part of Error().
type RefusedError struct {
	Reason Reason
	Detail string
	Err    error
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("release: refused (%s): %s", e.Reason, e.Detail)
}

func (e *RefusedError) Unwrap() error { return e.Err }

func refused(r Reason, err error, format string, a ...any) *RefusedError {
	return &RefusedError{Reason: r, Detail: oneLine(fmt.Sprintf(format, a...)), Err: err}
}

// oneLine folds newlines and tabs so a refusal stays one line in a log.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.NewReplacer("\n", " ", "\t", " ").Replace(s)), " ")
}

// StaleCRL is what the policy does with a CRL past its NextUpdate.
type StaleCRL int

const (
	StaleCRLRefuse StaleCRL = iota // refuse the release (the zero value: fail closed)
	StaleCRLWarn                   // accept, with a warning in Authenticated.Warnings
)

// ValidityAt is the moment at which certificate validity is checked.
type ValidityAt int

const (
	AtNow         ValidityAt = iota // Policy.Now (the zero value)
	AtSigningTime                   // the CMS signing-time attribute; it is asserted by the signer, so use it only with CRLs
)

// Policy is what a station accepts. The zero value accepts nothing (no
// trust anchors); every other field has a strict default.
type Policy struct {
	// Roots are the trust anchors. Required: nil never means "system roots".
	Roots *x509.CertPool
	// Intermediates are extra CA certificates for chain building, in
	// addition to those the signature carries.
	Intermediates []*x509.Certificate
	// SignerNames, when not empty, lists the signers accepted: a name
	// matches the signer certificate's subject CommonName or its full
	// subject DN string (RFC 2253 form, "CN=Line Signer,O=Acme").
	SignerNames []string
	// CRLs are checked for every certificate of the chain whose issuer
	// published one. A CRL must be signed by that issuer; CRLs of issuers
	// outside the chain are ignored.
	CRLs []*x509.RevocationList
	// RequireCRL refuses a release whose signer's issuer has no CRL in CRLs.
	RequireCRL bool
	// StaleCRL: refuse (default) or warn when now is past a CRL's NextUpdate.
	StaleCRL StaleCRL
	// ValidityAt: check certificate validity now (default) or at signing time.
	ValidityAt ValidityAt
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// StateDir holds the anti-rollback state (see State). Empty: no
	// rollback check. Authenticate never reads it; Open checks it and
	// Finish updates it.
	StateDir string
}

func (p *Policy) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Authenticated is a manifest whose signature the policy accepted.
type Authenticated struct {
	Manifest       *Manifest
	ManifestSHA256 Digest
	Signer         *x509.Certificate
	Chain          []*x509.Certificate // signer first, trust anchor last
	SigningTime    time.Time           // zero if the signature has none
	CheckedAt      time.Time           // when certificate validity was checked
	Warnings       []string            // e.g. a stale CRL accepted by policy
}

// Authenticate checks that sig is a detached CMS SignedData over exactly the
// bytes of manifest, made by one signer whose certificate the policy
// accepts. It does not look at images or at the anti-rollback state. A
// refusal is a *RefusedError; a policy that cannot work (no Roots) is a
// plain error.
func Authenticate(manifest, sig []byte, pol Policy) (*Authenticated, error) {
	if pol.Roots == nil {
		return nil, errors.New("release: policy has no trust anchors (Policy.Roots is nil)")
	}
	m, err := ParseManifest(manifest)
	if err != nil {
		return nil, refused(ReasonMalformed, err, "%v", strings.TrimPrefix(err.Error(), "release: "))
	}
	p7, err := pkcs7.Parse(sig)
	if err != nil {
		return nil, refused(ReasonMalformed, err, "%s is not a CMS SignedData: %v", SignatureName, err)
	}
	if len(p7.Content) != 0 && !bytes.Equal(p7.Content, manifest) {
		return nil, refused(ReasonSignature, nil, "%s embeds content that is not %s", SignatureName, ManifestName)
	}
	if len(p7.Signers) != 1 {
		return nil, refused(ReasonMalformed, nil, "%s has %d signers, want exactly 1", SignatureName, len(p7.Signers))
	}
	si := p7.Signers[0]
	if !slices.ContainsFunc([]asn1.ObjectIdentifier{pkcs7.OIDDigestAlgorithmSHA256, pkcs7.OIDDigestAlgorithmSHA384, pkcs7.OIDDigestAlgorithmSHA512},
		si.DigestAlgorithm.Algorithm.Equal) {
		return nil, refused(ReasonSignature, nil, "%s uses digest algorithm %v, want SHA-256/384/512", SignatureName, si.DigestAlgorithm.Algorithm)
	}
	signer := p7.GetOnlySigner()
	if signer == nil {
		return nil, refused(ReasonMalformed, nil, "%s does not carry its signer's certificate", SignatureName)
	}
	a := &Authenticated{Manifest: m, ManifestSHA256: sha256.Sum256(manifest), Signer: signer}
	var st time.Time
	if err := p7.UnmarshalSignedAttribute(pkcs7.OIDAttributeSigningTime, &st); err == nil {
		a.SigningTime = st
	}

	// Integrity first: is this signature over these bytes, by this key?
	p7.Content = manifest
	if err := p7.Verify(); err != nil {
		if _, ok := errors.AsType[*pkcs7.MessageDigestMismatchError](err); ok {
			return nil, refused(ReasonSignature, err, "%s (sha256 %s) is not the content %s signed", ManifestName, a.ManifestSHA256.short(), SignatureName)
		}
		if ste, ok := errors.AsType[*pkcs7.SigningTimeNotValidError](err); ok {
			return nil, refused(ReasonExpired, err, "signer certificate %s was not valid at signing time %s (valid %s to %s)",
				name(signer), ste.SigningTime.UTC().Format(time.RFC3339), ste.NotBefore.UTC().Format(time.RFC3339), ste.NotAfter.UTC().Format(time.RFC3339))
		}
		return nil, refused(ReasonSignature, err, "signature by %s does not verify: %v", name(signer), err)
	}

	// Then the signer certificate itself, so each fault gets its own reason.
	at := pol.now()
	if pol.ValidityAt == AtSigningTime {
		if a.SigningTime.IsZero() {
			return nil, refused(ReasonMalformed, nil, "policy checks validity at signing time but %s has no signing-time attribute", SignatureName)
		}
		at = a.SigningTime
	}
	a.CheckedAt = at
	if err := validAt(signer, "signer", at); err != nil {
		return nil, err
	}
	if !slices.Contains(signer.ExtKeyUsage, x509.ExtKeyUsageCodeSigning) {
		return nil, refused(ReasonPurpose, nil, "signer certificate %s has no extended key usage codeSigning (has %s)", name(signer), ekuNames(signer))
	}
	if signer.KeyUsage != 0 && signer.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, refused(ReasonPurpose, nil, "signer certificate %s key usage lacks digitalSignature", name(signer))
	}

	// Chain to a trust anchor, with codeSigning allowed along the way.
	inter := x509.NewCertPool()
	for _, c := range p7.Certificates {
		inter.AddCert(c)
	}
	for _, c := range pol.Intermediates {
		inter.AddCert(c)
	}
	chains, err := signer.Verify(x509.VerifyOptions{
		Roots: pol.Roots, Intermediates: inter, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	})
	if err != nil {
		return nil, chainError(signer, err, at)
	}
	a.Chain = chains[0]

	if len(pol.SignerNames) > 0 && !slices.Contains(pol.SignerNames, signer.Subject.CommonName) &&
		!slices.Contains(pol.SignerNames, signer.Subject.String()) {
		return nil, refused(ReasonSignerName, nil, "signer %s is not an allowed signer (%s)", name(signer), strings.Join(pol.SignerNames, ", "))
	}

	if err := checkCRLs(a, pol); err != nil {
		return nil, err
	}
	return a, nil
}

func validAt(c *x509.Certificate, what string, at time.Time) error {
	switch {
	case at.After(c.NotAfter):
		return refused(ReasonExpired, nil, "%s certificate %s expired %s (checked at %s)", what, name(c),
			c.NotAfter.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
	case at.Before(c.NotBefore):
		return refused(ReasonExpired, nil, "%s certificate %s is not valid before %s (checked at %s)", what, name(c),
			c.NotBefore.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
	}
	return nil
}

func chainError(signer *x509.Certificate, err error, at time.Time) error {
	if ce, ok := errors.AsType[x509.CertificateInvalidError](err); ok {
		switch ce.Reason {
		case x509.Expired:
			return refused(ReasonExpired, err, "certificate %s in the signer's chain is outside its validity at %s", name(ce.Cert), at.UTC().Format(time.RFC3339))
		case x509.IncompatibleUsage:
			return refused(ReasonPurpose, err, "the chain of %s does not allow codeSigning", name(signer))
		}
		return refused(ReasonUntrusted, err, "chain of %s is invalid: %v", name(signer), err)
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return refused(ReasonUntrusted, err, "signer certificate %s (issuer %s) does not chain to a trusted root", name(signer), signer.Issuer)
	}
	return refused(ReasonUntrusted, err, "chain of %s does not verify: %v", name(signer), err)
}

// checkCRLs applies the policy's CRLs to every certificate of the chain
// below the anchor.
func checkCRLs(a *Authenticated, pol Policy) error {
	now := pol.now()
	for i := 0; i+1 < len(a.Chain); i++ {
		cert, issuer := a.Chain[i], a.Chain[i+1]
		found := false
		for _, crl := range pol.CRLs {
			if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) {
				continue
			}
			found = true
			if err := crl.CheckSignatureFrom(issuer); err != nil {
				return refused(ReasonCRL, err, "CRL naming issuer %s is not signed by that issuer: %v", name(issuer), err)
			}
			if now.Before(crl.ThisUpdate) {
				return refused(ReasonCRL, nil, "CRL of %s is not valid before %s (now %s)", name(issuer),
					crl.ThisUpdate.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
			}
			if !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate) {
				msg := fmt.Sprintf("CRL of %s is stale: next update was due %s (now %s)", name(issuer),
					crl.NextUpdate.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
				if pol.StaleCRL != StaleCRLWarn {
					return refused(ReasonCRLStale, nil, "%s", msg)
				}
				a.Warnings = append(a.Warnings, msg)
			}
			for _, e := range crl.RevokedCertificateEntries {
				if e.SerialNumber != nil && e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
					what := "signer"
					if i > 0 {
						what = "intermediate"
					}
					return refused(ReasonRevoked, nil, "%s certificate %s (serial %s) revoked %s by CRL of %s", what, name(cert),
						serial(cert.SerialNumber), e.RevocationTime.UTC().Format(time.RFC3339), name(issuer))
				}
			}
		}
		if i == 0 && pol.RequireCRL && !found {
			return refused(ReasonCRL, nil, "no CRL from %s, the issuer of signer %s", name(issuer), name(cert))
		}
	}
	return nil
}

// name is how a certificate is named in messages: its CN, or its subject.
func name(c *x509.Certificate) string {
	if c == nil {
		return "(none)"
	}
	if c.Subject.CommonName != "" {
		return fmt.Sprintf("%q", c.Subject.CommonName)
	}
	return fmt.Sprintf("%q", c.Subject.String())
}

func serial(n *big.Int) string { return "0x" + n.Text(16) }

func ekuString(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageAny:
		return "any"
	case x509.ExtKeyUsageServerAuth:
		return "serverAuth"
	case x509.ExtKeyUsageClientAuth:
		return "clientAuth"
	case x509.ExtKeyUsageCodeSigning:
		return "codeSigning"
	case x509.ExtKeyUsageEmailProtection:
		return "emailProtection"
	case x509.ExtKeyUsageTimeStamping:
		return "timeStamping"
	case x509.ExtKeyUsageOCSPSigning:
		return "OCSPSigning"
	}
	return fmt.Sprintf("eku(%d)", u)
}

func ekuNames(c *x509.Certificate) string {
	var out []string
	for _, u := range c.ExtKeyUsage {
		out = append(out, ekuString(u))
	}
	for _, o := range c.UnknownExtKeyUsage {
		out = append(out, o.String())
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}
