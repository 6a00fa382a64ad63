package efuse

import (
	"errors"
	"testing"
)

// §2.4 worked example: key file 00…17 reversed to 17…00, then 3/4-encoded.
func TestEncode34(t *testing.T) {
	t.Parallel()
	var d [24]byte
	for i := range d {
		d[i] = byte(23 - i)
	}
	want := [8]uint32{0x14151617, 0x36011213, 0x0E0F1011, 0x37010C0D, 0x08090A0B, 0x2C010607, 0x02030405, 0x13010001}
	got := Encode34(d)
	if got != want {
		t.Fatalf("Encode34 = %08x, want %08x", got, want)
	}
	back, err := Decode34(got)
	if err != nil || back != d {
		t.Fatalf("Decode34 = %x, %v", back, err)
	}
	// A wrong check byte in group 2 is reported with its position.
	bad := got
	bad[5] ^= 0x00010000 // group 2's XOR byte
	if _, err := Decode34(bad); !errors.Is(err, ErrCoding) {
		t.Errorf("corrupt group: %v, want ErrCoding", err)
	}
	var max [24]byte
	for i := range max {
		max[i] = 0xFF
	}
	if w := Encode34(max); byte(w[1]>>24) != 168 { // 8·(1+…+6)
		t.Errorf("weighted sum of all-FF group = %d, want 168", byte(w[1]>>24))
	}
}
