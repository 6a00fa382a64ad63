//go:build !cgo

package pkcs11

import "context"

// Supported reports whether this build can open tokens (it has no cgo).
const Supported = false

// Open always fails with ErrNoCgo in a build without cgo.
func Open(ctx context.Context, u *URI, pin string) (*Key, error) {
	if err := u.check(); err != nil {
		return nil, err
	}
	return nil, ErrNoCgo
}
