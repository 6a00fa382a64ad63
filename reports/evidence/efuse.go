package evidence

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// KeyMaterial is a key block as read from (or burned into) the chip. It is
// an input to NewEfuseSnapshot only; Data is hashed there and never stored.
type KeyMaterial struct {
	Block          string // "BLOCK_KEY0" … "BLOCK_KEY5"; "BLOCK1" … "BLOCK3" on ESP32
	Purpose        string // KEY_PURPOSE name ("XTS_AES_128_KEY"); "FLASH_ENCRYPTION" etc. on ESP32
	ReadProtected  bool
	WriteProtected bool
	Data           []byte // the block's bytes, as burned or read back
	Source         string // "readback" or "burned"; "" means "readback"
}

// keyFieldName matches eFuse names that carry key bits: whole key or data
// blocks and the ESP32 aliases of its key blocks. Config fields such as
// KEY_PURPOSE_0 or SECURE_BOOT_KEY_REVOKE0 do not match.
var keyFieldName = regexp.MustCompile(`^(BLOCK_?\d+|BLOCK_?KEY_?\d*|BLOCK_SYS_DATA\d*|BLOCK_USR_DATA|KEY_?\d+|KEY_DATA\d*|ENCRYPT_FLASH_KEY|FLASH_ENCRYPTION(_KEY)?|SECURE_BOOT_KEY|SECURE_BOOT_V[12](_KEY)?|XTS_AES_\d+_KEY(_\d)?|BLOCK_KEY\d+_DATA\d*)$`)

// KeyField reports whether an eFuse field name denotes key material, which a
// record must carry only as a KeyDigest.
func KeyField(name string) bool { return keyFieldName.MatchString(strings.ToUpper(name)) }

// KeyBlockSources are the values of KeyBlock.Source.
const (
	SourceReadback = "readback"
	SourceBurned   = "burned"
)

// NewEfuseSnapshot builds a snapshot from field values and key blocks. It
// refuses a field whose name carries key bits (KeyField) and keeps only the
// SHA-256 of each key block's bytes. Errors name the field or block, never
// a value.
func NewEfuseSnapshot(fields map[string]uint64, keys []KeyMaterial) (EfuseSnapshot, error) {
	s := EfuseSnapshot{Fields: make(map[string]uint64, len(fields)), KeyBlocks: make([]KeyBlock, 0, len(keys))}
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		if err := checkFieldName(name); err != nil {
			return EfuseSnapshot{}, err
		}
		s.Fields[name] = fields[name]
	}
	seen := map[string]bool{}
	for i, k := range keys {
		if k.Block == "" {
			return EfuseSnapshot{}, fmt.Errorf("evidence: key block %d has no block name", i)
		}
		if seen[k.Block] {
			return EfuseSnapshot{}, fmt.Errorf("evidence: key block %s given twice", k.Block)
		}
		seen[k.Block] = true
		if len(k.Data) == 0 {
			return EfuseSnapshot{}, fmt.Errorf("evidence: key block %s has no data to digest", k.Block)
		}
		src := k.Source
		switch src {
		case "":
			src = SourceReadback
		case SourceReadback, SourceBurned:
		default:
			return EfuseSnapshot{}, fmt.Errorf("evidence: key block %s: source %q, want %q or %q", k.Block, src, SourceReadback, SourceBurned)
		}
		s.KeyBlocks = append(s.KeyBlocks, KeyBlock{
			Block:          k.Block,
			Purpose:        k.Purpose,
			Empty:          allZero(k.Data),
			ReadProtected:  k.ReadProtected,
			WriteProtected: k.WriteProtected,
			Digest:         DigestKey(k.Data),
			Source:         src,
		})
	}
	return s, nil
}

func checkFieldName(name string) error {
	if name == "" {
		return fmt.Errorf("evidence: eFuse field with an empty name")
	}
	if KeyField(name) {
		return fmt.Errorf("evidence: eFuse field %s holds key bits; give it as KeyMaterial so only its digest is kept", name)
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// FieldChange is one eFuse field whose value differs between two snapshots.
type FieldChange struct {
	Name          string
	Before, After uint64
	// InBefore and InAfter say whether the field was read in each snapshot.
	InBefore, InAfter bool
}

// Changes lists the fields that differ between before and after, by name.
func Changes(before, after EfuseSnapshot) []FieldChange {
	names := map[string]bool{}
	for n := range before.Fields {
		names[n] = true
	}
	for n := range after.Fields {
		names[n] = true
	}
	var out []FieldChange
	for _, n := range slices.Sorted(maps.Keys(names)) {
		b, inB := before.Fields[n]
		a, inA := after.Fields[n]
		if inB && inA && a == b {
			continue
		}
		out = append(out, FieldChange{Name: n, Before: b, After: a, InBefore: inB, InAfter: inA})
	}
	return out
}
