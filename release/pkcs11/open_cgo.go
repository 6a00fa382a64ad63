//go:build cgo

package pkcs11

import (
	"context"
	"errors"
	"fmt"

	"github.com/eclipse-keypont/crypto11"
)

// Supported reports whether this build can open tokens (it has cgo).
const Supported = true

// Open logs in to the token u names with pin and finds its key pair.
// The caller must Close the key. The module is loaded from u.ModulePath;
// for SoftHSM2 the process environment must carry SOFTHSM2_CONF.
//
// PKCS#11 login state belongs to the token and the process: while another
// Key on the same token is open, the token is already logged in and pin is
// not checked again.
func Open(ctx context.Context, u *URI, pin string) (*Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := u.check(); err != nil {
		return nil, err
	}
	cfg := &crypto11.Config{Path: u.ModulePath, TokenLabel: u.Token, TokenSerial: u.Serial, SlotNumber: u.SlotID, Pin: pin}
	c, err := crypto11.Configure(cfg)
	if err != nil {
		// crypto11's messages name the module and the token, never the PIN.
		return nil, fmt.Errorf("pkcs11: opening %s: %w", u, err)
	}
	var id, label []byte
	if len(u.ID) > 0 {
		id = u.ID
	}
	if u.Object != "" {
		label = []byte(u.Object)
	}
	s, err := c.FindKeyPair(id, label)
	if err == nil && s == nil {
		err = errors.New("no such key pair on the token")
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("pkcs11: finding key of %s: %w", u, err)
	}
	return &Key{signer: s, close: c.Close, uri: u.String()}, nil
}
