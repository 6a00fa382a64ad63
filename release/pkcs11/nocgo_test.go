//go:build !cgo

package pkcs11_test

import (
	"context"
	"errors"
	"testing"

	"fuseline/release/pkcs11"
)

func TestOpenWithoutCgo(t *testing.T) {
	t.Parallel()
	u, err := pkcs11.ParseURI("pkcs11:token=station;object=signer?module-path=/usr/lib/softhsm/libsofthsm2.so")
	if err != nil {
		t.Fatal(err)
	}
	_, err = pkcs11.Open(context.Background(), u, "123456")
	if !errors.Is(err, pkcs11.ErrNoCgo) || pkcs11.Supported {
		t.Fatalf("err = %v", err)
	}
}
