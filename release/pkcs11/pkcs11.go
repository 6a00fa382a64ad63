// Package pkcs11 opens signing keys held on a PKCS#11 token (a production
// HSM, SoftHSM2 in tests) as crypto.Signers, named by RFC 7512 URIs such as
//
//	pkcs11:token=station;object=signer?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=123456
//
// The same token signs release manifests (package release, ECDSA P-256)
// and Secure Boot v2 image blocks (esp/secureboot, RSA-3072 PSS), so the
// offline keys never leave it. It follows docs/dependencies.md §1 (crypto11
// over miekg/pkcs11) and §3 (the SoftHSM2 recipe).
//
// Opening a key needs cgo (crypto11 loads the module with dlopen). A build
// without cgo still parses URIs; Open then returns ErrNoCgo.
//
// The PIN is a secret: URI.String redacts it, and no error of this package
// contains it.
package pkcs11

import (
	"crypto"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
)

// PINEnv is the environment variable read for the PIN when the URI has
// neither pin-value nor pin-source.
const PINEnv = "FUSELINE_PKCS11_PIN"

// ErrNoCgo is returned by Open in a binary built with CGO_ENABLED=0.
var ErrNoCgo = errors.New("pkcs11: this fuseline was built without cgo, and PKCS#11 tokens need it; rebuild with CGO_ENABLED=1 (and gcc), or sign with a PEM key")

// URI is a parsed RFC 7512 PKCS#11 URI: which module, token and object.
type URI struct {
	// Token selection (one of Token, Serial, SlotID).
	Token  string // token= (the token label)
	Serial string // serial=
	SlotID *int   // slot-id=
	// Object selection (Object, ID or both).
	Object string // object= (CKA_LABEL)
	ID     []byte // id= (CKA_ID, pct-encoded bytes)
	Type   string // type= (private, public, cert, …); only "private" or empty is useful here
	// Module.
	ModulePath string // module-path=
	// PIN sources, in this order of precedence: PinValue, PinSource, PINEnv.
	PinValue  string // pin-value= ; never printed
	PinSource string // pin-source= (a file:// URI or a path)
}

// ParseURI parses s. Unknown attributes (other than vendor "x-" ones) and
// repeated attributes are errors, so a typo cannot select another key.
// Errors name attributes, never values.
func ParseURI(s string) (*URI, error) {
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok || !strings.EqualFold(scheme, "pkcs11") {
		return nil, errors.New(`pkcs11: URI must start with "pkcs11:"`)
	}
	path, query, _ := strings.Cut(rest, "?")
	// The attributes RFC 7512 defines; ones we do not use are accepted and ignored.
	pathAttrs := []string{"token", "manufacturer", "serial", "model", "library-manufacturer", "library-description",
		"library-version", "slot-description", "slot-manufacturer", "slot-id", "object", "id", "type"}
	queryAttrs := []string{"pin-source", "pin-value", "module-name", "module-path"}
	u := &URI{}
	seen := map[string]bool{}
	parse := func(part, sep string, known []string) error {
		if part == "" {
			return nil
		}
		for attr := range strings.SplitSeq(part, sep) {
			k, v, ok := strings.Cut(attr, "=")
			if !ok {
				return fmt.Errorf("pkcs11: URI attribute %q has no value", k)
			}
			if !slices.Contains(known, k) && !strings.HasPrefix(k, "x-") {
				return fmt.Errorf("pkcs11: unknown URI attribute %q", k)
			}
			if seen[k] {
				return fmt.Errorf("pkcs11: URI attribute %q given twice", k)
			}
			seen[k] = true
			val, err := url.PathUnescape(v)
			if err != nil {
				return fmt.Errorf("pkcs11: URI attribute %q is not validly percent-encoded", k)
			}
			switch k {
			case "token":
				u.Token = val
			case "serial":
				u.Serial = val
			case "slot-id":
				n, err := strconv.Atoi(val)
				if err != nil || n < 0 {
					return fmt.Errorf("pkcs11: URI attribute slot-id must be a decimal number")
				}
				u.SlotID = &n
			case "object":
				u.Object = val
			case "id":
				u.ID = []byte(val)
			case "type":
				u.Type = val
			case "module-path":
				u.ModulePath = val
			case "pin-value":
				u.PinValue = val
			case "pin-source":
				u.PinSource = val
			}
		}
		return nil
	}
	if err := parse(path, ";", pathAttrs); err != nil {
		return nil, err
	}
	if err := parse(query, "&", queryAttrs); err != nil {
		return nil, err
	}
	return u, nil
}

// String returns the URI with the PIN value replaced by "***".
func (u *URI) String() string {
	var p, q []string
	add := func(dst *[]string, k, v string) {
		if v != "" {
			*dst = append(*dst, k+"="+escape(v))
		}
	}
	add(&p, "token", u.Token)
	add(&p, "serial", u.Serial)
	if u.SlotID != nil {
		p = append(p, "slot-id="+strconv.Itoa(*u.SlotID))
	}
	add(&p, "object", u.Object)
	add(&p, "id", string(u.ID))
	add(&p, "type", u.Type)
	add(&q, "module-path", u.ModulePath)
	if u.PinValue != "" {
		q = append(q, "pin-value=***")
	}
	add(&q, "pin-source", u.PinSource)
	s := "pkcs11:" + strings.Join(p, ";")
	if len(q) > 0 {
		s += "?" + strings.Join(q, "&")
	}
	return s
}

// escape percent-encodes everything outside RFC 7512's unreserved set
// plus ':' and '/' (which paths need).
func escape(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~:/", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// PIN returns the PIN: pin-value, else the first line of the pin-source
// file, else the PINEnv variable from getenv (nil: os.Getenv).
func (u *URI) PIN(getenv func(string) string) (string, error) {
	if u.PinValue != "" {
		return u.PinValue, nil
	}
	if u.PinSource != "" {
		path := strings.TrimPrefix(u.PinSource, "file://")
		path = strings.TrimPrefix(path, "file:")
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("pkcs11: reading pin-source: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		return strings.TrimSuffix(line, "\r"), nil
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	if pin := getenv(PINEnv); pin != "" {
		return pin, nil
	}
	return "", fmt.Errorf("pkcs11: no PIN for %s: set %s, or pin-value/pin-source in the URI", u, PINEnv)
}

// check reports what is missing for Open.
func (u *URI) check() error {
	if u.ModulePath == "" {
		return fmt.Errorf("pkcs11: %s names no module; add ?module-path=/usr/lib/softhsm/libsofthsm2.so (or your HSM's module)", u)
	}
	n := 0
	for _, set := range []bool{u.Token != "", u.Serial != "", u.SlotID != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("pkcs11: %s must select the token by exactly one of token=, serial=, slot-id=", u)
	}
	if u.Object == "" && len(u.ID) == 0 {
		return fmt.Errorf("pkcs11: %s names no key; add object=LABEL or id=ID", u)
	}
	if u.Type != "" && u.Type != "private" {
		return fmt.Errorf("pkcs11: %s: type=%s cannot sign, want type=private", u, u.Type)
	}
	return nil
}

// Key is a signing key on a token. It implements crypto.Signer; Close
// logs out and releases the module when the last key using it closes.
type Key struct {
	signer crypto.Signer
	close  func() error
	uri    string // redacted, for messages
}

// Public implements crypto.Signer.
func (k *Key) Public() crypto.PublicKey { return k.signer.Public() }

// Sign implements crypto.Signer; the private key never leaves the token.
func (k *Key) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := k.signer.Sign(rand, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: signing with %s: %w", k.uri, err)
	}
	return sig, nil
}

// Close releases the token session.
func (k *Key) Close() error {
	if k.close == nil {
		return nil
	}
	c := k.close
	k.close = nil
	return c()
}

// String names the key by its redacted URI.
func (k *Key) String() string { return k.uri }
