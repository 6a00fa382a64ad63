package loader

import (
	"errors"
	"testing"
)

// The opcode must stay clear of every loader's: ROM, SDC, stub and stub
// plugins (§1.6), or a real chip could answer it.
func TestModelKind(t *testing.T) {
	t.Parallel()
	if OpModelKind.InROM() || OpModelKind.AllowedInSDM() || (OpModelKind >= 0x19 && OpModelKind <= 0x1E) || (OpModelKind >= OpEraseFlash && OpModelKind <= 0xDE) {
		t.Fatalf("%v collides with an Espressif opcode", OpModelKind)
	}
	enc, err := EncodeModelKind(ModelVirtual)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := ParseModelKind(enc); err != nil || k != ModelVirtual {
		t.Fatalf("round trip: %q, %v", k, err)
	}
	if _, err := EncodeModelKind("silicon"); err == nil {
		t.Fatal("unknown kind encoded")
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short", enc[:7]},
		{"no magic", append([]byte("FSLX"), enc[4:]...)},
		{"unknown code", append([]byte("FSLN"), 9, 0, 0, 0)},
	} {
		if _, err := ParseModelKind(tc.b); !errors.As(err, new(*FormatError)) {
			t.Errorf("%s: %v, want a FormatError", tc.name, err)
		}
	}
}
