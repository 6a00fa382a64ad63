package pkcs11_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fuseline/release/pkcs11"
)

func TestParseURI(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in      string
		check   func(u *pkcs11.URI) bool
		str     string // String(), "" to skip
		wantErr string
	}{
		{in: "pkcs11:token=station;object=signer?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=123456",
			check: func(u *pkcs11.URI) bool {
				return u.Token == "station" && u.Object == "signer" && u.ModulePath == "/usr/lib/softhsm/libsofthsm2.so" && u.PinValue == "123456"
			},
			str: "pkcs11:token=station;object=signer?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=***"},
		{in: "PKCS11:token=My%20Token;id=%01%02;type=private?module-path=/m.so",
			check: func(u *pkcs11.URI) bool {
				return u.Token == "My Token" && string(u.ID) == "\x01\x02" && u.Type == "private"
			},
			str: "pkcs11:token=My%20Token;id=%01%02;type=private?module-path=/m.so"},
		{in: "pkcs11:slot-id=3;object=a;x-vendor=1;manufacturer=SoftHSM%20project",
			check: func(u *pkcs11.URI) bool { return u.SlotID != nil && *u.SlotID == 3 }},
		{in: "pkcs11:serial=abc;object=k?pin-source=file:/run/pin", check: func(u *pkcs11.URI) bool { return u.Serial == "abc" && u.PinSource == "file:/run/pin" }},
		{in: "pkcs11:", check: func(u *pkcs11.URI) bool { return u.Token == "" }},
		{in: "file:token=x", wantErr: `must start with "pkcs11:"`},
		{in: "pkcs11:token=a;token=b", wantErr: `"token" given twice`},
		{in: "pkcs11:tokn=a", wantErr: `unknown URI attribute "tokn"`},
		{in: "pkcs11:token=a?pin=1", wantErr: `unknown URI attribute "pin"`},
		{in: "pkcs11:token", wantErr: "has no value"},
		{in: "pkcs11:slot-id=x", wantErr: "slot-id must be a decimal"},
		{in: "pkcs11:token=a?pin-value=%zz", wantErr: `"pin-value" is not validly percent-encoded`},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			u, err := pkcs11.ParseURI(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "zz") {
					t.Fatal("error echoes a PIN value")
				}
				return
			}
			if err != nil || !tc.check(u) {
				t.Fatalf("%+v, %v", u, err)
			}
			if tc.str != "" && u.String() != tc.str {
				t.Fatalf("String() = %s, want %s", u, tc.str)
			}
			if strings.Contains(u.String(), "123456") {
				t.Fatal("String() shows the PIN")
			}
		})
	}
}

func TestPIN(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	pinFile := filepath.Join(t.TempDir(), "pin")
	os.WriteFile(pinFile, []byte("4321\nignored\n"), 0o600)
	cases := []struct {
		uri, env, want, err string
	}{
		{uri: "pkcs11:token=t?pin-value=1111", env: "2222", want: "1111"},
		{uri: "pkcs11:token=t?pin-source=file://" + pinFile, env: "2222", want: "4321"},
		{uri: "pkcs11:token=t?pin-source=" + pinFile, want: "4321"},
		{uri: "pkcs11:token=t", env: "2222", want: "2222"},
		{uri: "pkcs11:token=t", err: "no PIN for pkcs11:token=t: set FUSELINE_PKCS11_PIN"},
	}
	for _, tc := range cases {
		u, err := pkcs11.ParseURI(tc.uri)
		if err != nil {
			t.Fatal(err)
		}
		pin, err := u.PIN(env(map[string]string{pkcs11.PINEnv: tc.env}))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("%s: err = %v", tc.uri, err)
			}
			continue
		}
		if err != nil || pin != tc.want {
			t.Fatalf("%s: pin %q, %v; want %q", tc.uri, pin, err, tc.want)
		}
	}
}

// Open refuses an incomplete URI before touching any module, with the fix.
func TestOpenNeeds(t *testing.T) {
	t.Parallel()
	for uri, want := range map[string]string{
		"pkcs11:token=t;object=k":                                    "names no module; add ?module-path=",
		"pkcs11:object=k?module-path=/x.so":                          "exactly one of token=, serial=, slot-id=",
		"pkcs11:token=a;serial=b;object=k?module-path=/x.so":         "exactly one of token=, serial=, slot-id=",
		"pkcs11:token=t?module-path=/x.so":                           "names no key",
		"pkcs11:token=t;object=k;type=cert?module-path=/x.so":        "type=cert cannot sign",
		"pkcs11:token=t;object=k?module-path=/x.so&pin-value=SECRET": "",
	} {
		u, _ := pkcs11.ParseURI(uri)
		_, err := pkcs11.Open(context.Background(), u, "SECRET")
		if err == nil {
			t.Fatalf("%s: opened", uri)
		}
		if want != "" && !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: err = %v, want %q", uri, err, want)
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Fatalf("%s: error shows the PIN: %v", uri, err)
		}
		if !pkcs11.Supported && want == "" && !errors.Is(err, pkcs11.ErrNoCgo) {
			t.Fatalf("without cgo: err = %v, want ErrNoCgo", err)
		}
	}
}

// FuzzParseURI: URIs come from the command line. No panic; String never
// shows a PIN; what parses re-parses from String to the same selection.
func FuzzParseURI(f *testing.F) {
	f.Add("pkcs11:token=station;object=signer?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=123456")
	f.Add("pkcs11:serial=1;id=%01%ff;type=private?pin-source=file:/x")
	f.Add("pkcs11:slot-id=7;object=a%3bb")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := pkcs11.ParseURI(s)
		if err != nil {
			return
		}
		out := u.String()
		if u.PinValue != "" && u.PinValue != "***" && strings.Contains(out, "pin-value="+u.PinValue) {
			t.Fatalf("String shows the PIN: %s", out)
		}
		v, err := pkcs11.ParseURI(out)
		if err != nil {
			t.Fatalf("String %q does not re-parse: %v", out, err)
		}
		if v.Token != u.Token || v.Serial != u.Serial || v.Object != u.Object || string(v.ID) != string(u.ID) ||
			v.ModulePath != u.ModulePath || v.PinSource != u.PinSource || (v.SlotID == nil) != (u.SlotID == nil) {
			t.Fatalf("round trip: %+v -> %s -> %+v", u, out, v)
		}
	})
}
