package otadata

import (
	"bytes"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

func TestCRCVectors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ seq, crc uint32 }{{1, 0x4743989A}, {2, 0x55F63774}, {3, 0xED4A5011}} {
		if got := CRC(tc.seq); got != tc.crc {
			t.Errorf("CRC(%d) = 0x%08X, want 0x%08X", tc.seq, got, tc.crc)
		}
		// The trap §6.2 warns about: the plain IEEE checksum differs.
		if crc32.ChecksumIEEE([]byte{byte(tc.seq), 0, 0, 0}) == tc.crc {
			t.Errorf("ChecksumIEEE(%d) matches; the vector cannot tell the two apart", tc.seq)
		}
	}
}

func TestExampleEntry(t *testing.T) {
	t.Parallel()
	want, _ := hex.DecodeString("01000000" + "ffffffffffffffffffffffffffffffffffffffff" + "02000000" + "9a984347")
	got := Encode(NewEntry(1, StateValid))
	if !bytes.Equal(got[:], want) {
		t.Fatalf("Encode = %x\nwant     %x", got, want)
	}
	file, err := os.ReadFile("testdata/seq1-valid.bin")
	if err != nil {
		t.Fatal(err)
	}
	es, err := Parse(file)
	if err != nil {
		t.Fatal(err)
	}
	if es[0] != NewEntry(1, StateValid) || !es[0].Valid() || es[1].Valid() {
		t.Fatalf("entries %+v", es)
	}
	if !bytes.Equal(Marshal(es), file) {
		t.Fatal("Marshal differs from the file")
	}
	if !bytes.Equal(Marshal(Erased()), bytes.Repeat([]byte{0xFF}, PartitionLen)) {
		t.Fatal("Erased does not encode as erased flash")
	}
}

func TestValid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		e    Entry
		want bool
	}{
		{"valid", NewEntry(5, StateValid), true},
		{"undefined state counts", NewEntry(5, StateUndefined), true},
		{"new counts", NewEntry(5, StateNew), true},
		{"pending counts", NewEntry(5, StatePendingVerify), true},
		{"invalid", NewEntry(5, StateInvalid), false},
		{"aborted", NewEntry(5, StateAborted), false},
		{"erased", Erased()[0], false},
		{"bad crc", Entry{Seq: 5, State: StateValid, CRC: CRC(6)}, false},
		{"plain IEEE crc", Entry{Seq: 1, State: StateValid, CRC: crc32.ChecksumIEEE([]byte{1, 0, 0, 0})}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.e.Valid(); got != tc.want {
				t.Fatalf("Valid = %v", got)
			}
		})
	}
}

func TestSelectSlot(t *testing.T) {
	t.Parallel()
	bad := Entry{Seq: 9, State: StateValid, CRC: 0}
	for _, tc := range []struct {
		name     string
		entries  [2]Entry
		appCount int
		slot     int
		ok       bool
	}{
		{"erased boots factory", Erased(), 2, 0, false},
		{"no OTA partitions", [2]Entry{NewEntry(1, StateValid), Erased()[1]}, 0, 0, false},
		{"seq 1 → ota_0", [2]Entry{NewEntry(1, StateValid), Erased()[1]}, 2, 0, true},
		{"seq 2 in entry 1 → ota_1", [2]Entry{NewEntry(1, StateValid), NewEntry(2, StateValid)}, 2, 1, true},
		{"larger seq wins from entry 0", [2]Entry{NewEntry(7, StateValid), NewEntry(2, StateValid)}, 2, 0, true},
		{"wraps modulo the count", [2]Entry{NewEntry(5, StateValid), Erased()[1]}, 3, 1, true},
		{"invalid newer entry is skipped", [2]Entry{NewEntry(1, StateValid), NewEntry(2, StateInvalid)}, 2, 0, true},
		{"aborted newer entry is skipped", [2]Entry{NewEntry(3, StateAborted), NewEntry(2, StateValid)}, 2, 1, true},
		{"bad CRC newer entry is skipped", [2]Entry{bad, NewEntry(4, StateValid)}, 2, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			slot, ok := SelectSlot(tc.entries, tc.appCount)
			if slot != tc.slot || ok != tc.ok {
				t.Fatalf("SelectSlot = %d, %v; want %d, %v", slot, ok, tc.slot, tc.ok)
			}
		})
	}
}

// TestForSlot applies each computed write and checks the bootloader's
// choice, as the station does when it selects a slot.
func TestForSlot(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		start    [2]Entry
		appCount int
		slot     int
		index    int
		seq      uint32
	}{
		{"first time ota_0", Erased(), 2, 0, 0, 1},
		{"first time ota_1", Erased(), 2, 1, 0, 2},
		{"from ota_0 to ota_1", [2]Entry{NewEntry(1, StateValid), Erased()[1]}, 2, 1, 1, 2},
		{"same slot again moves on a full cycle", [2]Entry{NewEntry(1, StateValid), Erased()[1]}, 2, 0, 1, 3},
		{"writes the older sector", [2]Entry{NewEntry(4, StateValid), NewEntry(3, StateValid)}, 2, 0, 1, 5},
		{"three slots", [2]Entry{NewEntry(2, StateValid), NewEntry(4, StateValid)}, 3, 1, 0, 5},
		{"ignores an invalid maximum", [2]Entry{NewEntry(9, StateInvalid), NewEntry(2, StateValid)}, 2, 0, 0, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			i, e, err := ForSlot(tc.start, tc.slot, tc.appCount)
			if err != nil {
				t.Fatal(err)
			}
			if i != tc.index || e.Seq != tc.seq || e.State != StateValid || !e.Valid() {
				t.Fatalf("ForSlot = entry %d %+v; want entry %d seq %d", i, e, tc.index, tc.seq)
			}
			after := tc.start
			after[i] = e
			if slot, ok := SelectSlot(after, tc.appCount); !ok || slot != tc.slot {
				t.Fatalf("after the write the bootloader picks %d, %v", slot, ok)
			}
			// What was active before is still intact in the other sector.
			if prev, ok := Active(tc.start); ok && prev == i {
				t.Fatal("overwrote the active entry")
			}
		})
	}
	for _, tc := range []struct{ slot, count int }{{2, 2}, {-1, 2}, {0, 0}, {0, 17}} {
		if _, _, err := ForSlot(Erased(), tc.slot, tc.count); err == nil {
			t.Errorf("ForSlot(slot %d of %d) accepted", tc.slot, tc.count)
		}
	}
	if _, _, err := ForSlot([2]Entry{NewEntry(0xFFFFFFFE, StateValid), Erased()[1]}, 0, 2); err == nil {
		t.Error("ForSlot let ota_seq reach 0xFFFFFFFF")
	}
}

func TestParseShort(t *testing.T) {
	t.Parallel()
	_, err := Parse(make([]byte, 0x101F))
	fe, ok := errors.AsType[*FormatError](err)
	if !ok || fe.Offset != 0x1000 {
		t.Fatalf("err = %v", err)
	}
	if _, err := Decode(make([]byte, 31)); err == nil {
		t.Fatal("Decode of 31 bytes")
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.bin")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := Parse(b)
		if err != nil {
			fe, ok := errors.AsType[*FormatError](err)
			if !ok || fe.Offset < 0 || fe.Offset > len(b) {
				t.Fatalf("error %v does not name an offset in the input", err)
			}
			return
		}
		again, err := Parse(Marshal(es))
		if err != nil || again != es {
			t.Fatalf("round trip: %v %+v %+v", err, again, es)
		}
		for n := 1; n <= 16; n++ {
			s1, ok1 := SelectSlot(es, n)
			if ok1 && (s1 < 0 || s1 >= n) {
				t.Fatalf("slot %d of %d", s1, n)
			}
			for slot := range n {
				i, e, err := ForSlot(es, slot, n)
				if err != nil {
					continue
				}
				after := es
				after[i] = e
				if got, ok := SelectSlot(after, n); !ok || got != slot {
					t.Fatalf("ForSlot(%d of %d) then SelectSlot = %d, %v", slot, n, got, ok)
				}
			}
		}
	})
}
