package efuse

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"fuseline/esp/chip"
)

// Refusals. A *BurnError wraps one of these and names the field.
var (
	// ErrBitClear: the requested value would turn a 1 back into 0.
	ErrBitClear = errors.New("a bit would have to go from 1 to 0")
	// ErrWriteProtected: the field's (or block's) WR_DIS bit is set.
	ErrWriteProtected = errors.New("write-protected")
	// ErrReadProtected: the field reads as zero because of RD_DIS, so its
	// content is unknown and a burn could damage it.
	ErrReadProtected = errors.New("read-protected, reads as zero")
	// ErrCodedRewrite: an RS-coded block (or ESP32 3/4 group) already holds
	// other data; its check bytes cannot be rewritten.
	ErrCodedRewrite = errors.New("coded block already holds other data")
	// ErrConflict: requests contradict each other or the board (two values
	// for one field, a key slot already used for another purpose).
	ErrConflict = errors.New("conflicting request")
	// ErrForbidden: espefuse refuses the combination (an XTS purpose in
	// KEY_PURPOSE_5; DIS_USB_JTAG with DIS_USB_SERIAL_JTAG on S3).
	ErrForbidden = errors.New("forbidden")
)

// BurnError is a refused burn, naming the field. Err is one of the sentinels
// above (or ErrRange / ErrUnknownField). Values never appear in the message.
type BurnError struct {
	Field  string
	Block  int
	Err    error
	Detail string
}

func (e *BurnError) Error() string {
	s := fmt.Sprintf("efuse: cannot burn %s (BLOCK%d): %v", e.Field, e.Block, e.Err)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *BurnError) Unwrap() error { return e.Err }

// Op is what a Request does to its field.
type Op uint8

const (
	// OpSet burns Value (or Bytes) into the field (burn_efuse,
	// burn_block_data). On WR_DIS and RD_DIS the value's bits are added to
	// what is already set.
	OpSet Op = iota
	// OpWriteProtect sets the field's WR_DIS bit (write_protect_efuse); for a
	// field in BLOCK1 and up that is the block's bit.
	OpWriteProtect
	// OpReadProtect sets the field's RD_DIS bit (read_protect_efuse).
	OpReadProtect
)

// Request is one requested change.
type Request struct {
	Op    Op
	Field string // espefuse name or alias
	Value uint64 // for fields up to 64 bits
	// Bytes, if non-nil, is the value in block byte order ((Width+7)/8
	// bytes); required for fields wider than 64 bits.
	Bytes []byte
}

// KeyBurn is burn_key (§3.5): Data goes into key block Block, already in block
// byte order (XTS keys reversed by the caller, see flashenc.KeyBlocks).
// On S3/C3, Block is the block number 4…9 (BLOCK_KEY0…5) and the burn adds
// KEY_PURPOSE_n = Purpose (n = Block−4), WR_DIS bit 8+n (the purpose is always
// write-protected), RD_DIS bit n if ReadProtect and WR_DIS bit 23+n if
// WriteProtect. On classic ESP32, Block is 1…3, Purpose must be PurposeUser,
// ReadProtect sets RD_DIS bit Block−1 and WriteProtect WR_DIS bit Block+6;
// under 3/4 coding only Data[:24] may be non-zero.
type KeyBurn struct {
	Block                     int
	Data                      [32]byte
	Purpose                   Purpose
	ReadProtect, WriteProtect bool
}

// Batch is everything one burn run should do; the zero value is empty.
type Batch struct {
	Requests []Request
	Keys     []KeyBurn
}

// Set asks for field = v.
func (b *Batch) Set(field string, v uint64) {
	b.Requests = append(b.Requests, Request{Op: OpSet, Field: field, Value: v})
}

// SetBytes asks for field = data (block byte order).
func (b *Batch) SetBytes(field string, data []byte) {
	b.Requests = append(b.Requests, Request{Op: OpSet, Field: field, Bytes: slices.Clone(data)})
}

// WriteProtect asks for the WR_DIS bit that locks field.
func (b *Batch) WriteProtect(field string) {
	b.Requests = append(b.Requests, Request{Op: OpWriteProtect, Field: field})
}

// ReadProtect asks for the RD_DIS bit that hides field.
func (b *Batch) ReadProtect(field string) {
	b.Requests = append(b.Requests, Request{Op: OpReadProtect, Field: field})
}

// BurnKey adds a key burn.
func (b *Batch) BurnKey(k KeyBurn) { b.Keys = append(b.Keys, k) }

// Program is one block program operation: the PGM data words (S3/C3) or the
// block's write registers (ESP32), and for RS blocks the CHECK_VALUE words.
type Program struct {
	Block int
	// Pass is 1, or 2 for the postponed BLOCK0 fields (§1.3), which are
	// programmed after everything else.
	Pass   int
	Coding chip.Coding
	// Data holds the words to program: S3/C3 PGM_DATA0…7 (BLOCK0 and BLOCK1
	// use the first 6, the rest are 0); ESP32 the block's write words, 7 for
	// BLOCK0, 3/4-encoded for a 3/4 block.
	Data  [8]uint32
	Check [3]uint32 // PGM_CHECK_VALUE0…2, RS blocks only
	// Fields names what the program carries.
	Fields []string
	// Secret marks data from a secret key; String does not show it.
	Secret bool
}

func (p Program) String() string {
	s := fmt.Sprintf("BLOCK%d", p.Block)
	if p.Block == 0 {
		s += fmt.Sprintf(" pass %d", p.Pass)
	}
	s += " [" + strings.Join(p.Fields, " ") + "]"
	if p.Secret {
		return s + " data: (secret, not shown)"
	}
	s += " data:"
	for _, w := range p.Data {
		s += fmt.Sprintf(" %08x", w)
	}
	if p.Coding == chip.CodingRS {
		s += fmt.Sprintf(" check: %08x %08x %08x", p.Check[0], p.Check[1], p.Check[2])
	}
	return s
}

// Plan is a compiled Batch: programs in burn order (highest block first,
// BLOCK0 last, its postponed fields in a second pass), plus the requested
// fields that already held their value and were dropped.
type Plan struct {
	Chip      chip.ID
	Programs  []Program
	Unchanged []string
}

// Empty reports that nothing needs burning.
func (p *Plan) Empty() bool { return len(p.Programs) == 0 }

// want is one field's merged request.
type want struct {
	f      Field
	val    []byte // (Width+7)/8 bytes, field bit order
	mask   bool   // WR_DIS / RD_DIS: bits to add
	secret bool
}

// NewPlan compiles a batch against img, which must be what the host reads
// from the board (read-protected blocks as zero). It does what espefuse does
// (§1.3, §3.5): each written field carries its full requested value; a
// request equal to the current value is dropped; a request that would clear
// a bit, touches a write-protected or read-protected field, rewrites an
// RS-coded block (or 3/4 group) holding other data, or that espefuse forbids
// is refused with a *BurnError before anything is programmed.
func NewPlan(img *Image, b Batch) (*Plan, error) {
	l, err := img.layout()
	if err != nil {
		return nil, err
	}
	wrDis, rdDis := img.protections()
	reqs, secrets, err := expandKeys(l, img, b.Keys, wrDis)
	if err != nil {
		return nil, err
	}
	reqs = append(reqs, b.Requests...)

	wants := map[string]*want{}
	for i, r := range reqs {
		if err := l.merge(wants, r, i < len(secrets) && secrets[i]); err != nil {
			return nil, err
		}
	}

	// Evaluate in table order, so plans are deterministic.
	p := &Plan{Chip: img.Chip}
	var kept []*want
	for _, f := range l.fields {
		w := wants[f.Name]
		if w == nil {
			continue
		}
		keep, err := l.check(img, w, wrDis, rdDis)
		if err != nil {
			return nil, err
		}
		if keep {
			kept = append(kept, w)
		} else {
			p.Unchanged = append(p.Unchanged, f.Name)
		}
	}
	if err := l.checkCombinations(img, kept); err != nil {
		return nil, err
	}
	p.Programs, err = l.programs(img, kept)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// expandKeys turns KeyBurns into requests; secrets[i] marks requests that
// carry secret key data.
func expandKeys(l *layout, img *Image, keys []KeyBurn, wrDis uint64) (reqs []Request, secrets []bool, err error) {
	add := func(r Request, secret bool) {
		reqs = append(reqs, r)
		secrets = append(secrets, secret)
	}
	for _, k := range keys {
		if l.id == chip.ESP32 {
			if k.Block < 1 || k.Block > 3 {
				return nil, nil, &BurnError{Field: fmt.Sprintf("BLOCK%d", k.Block), Block: k.Block, Err: ErrRange, Detail: "ESP32 key blocks are BLOCK1…BLOCK3"}
			}
			name := fmt.Sprintf("BLOCK%d", k.Block)
			if k.Purpose != PurposeUser {
				return nil, nil, &BurnError{Field: name, Block: k.Block, Err: ErrForbidden, Detail: "ESP32 has no key purposes; the block number says what the key is for"}
			}
			if img.BlockCoding(k.Block) == chip.Coding34 && !allZero(k.Data[24:]) {
				return nil, nil, &BurnError{Field: name, Block: k.Block, Err: ErrRange, Detail: "3/4 coding holds 24 bytes per block"}
			}
			add(Request{Field: name, Bytes: slices.Clone(k.Data[:])}, k.Block == 1 || k.ReadProtect)
			if k.ReadProtect {
				add(Request{Op: OpReadProtect, Field: name}, false)
			}
			if k.WriteProtect {
				add(Request{Op: OpWriteProtect, Field: name}, false)
			}
			continue
		}
		if k.Block < 4 || k.Block > 9 {
			return nil, nil, &BurnError{Field: fmt.Sprintf("BLOCK%d", k.Block), Block: k.Block, Err: ErrRange, Detail: "key blocks are BLOCK4…BLOCK9 (BLOCK_KEY0…5)"}
		}
		n := k.Block - 4
		pname := fmt.Sprintf("KEY_PURPOSE_%d", n)
		if !k.Purpose.Valid(l.id) {
			return nil, nil, &BurnError{Field: pname, Err: ErrForbidden, Detail: fmt.Sprintf("purpose %v does not exist on %v", k.Purpose, l.id)}
		}
		if n == 5 && k.Purpose.IsXTS() {
			return nil, nil, &BurnError{Field: pname, Err: ErrForbidden, Detail: "XTS-AES purposes are refused in KEY_PURPOSE_5 (hardware quirk)"}
		}
		pf, err := l.field(pname)
		if err != nil {
			return nil, nil, err
		}
		add(Request{Field: fmt.Sprintf("BLOCK_KEY%d", n), Bytes: slices.Clone(k.Data[:])}, k.Purpose.Secret())
		cur := getBits(img.Blocks[0], pf.start(), pf.Width)
		purposeWritable := l.writable(pf, wrDis)
		if Purpose(cur) != k.Purpose {
			if cur != uint64(PurposeUser) {
				return nil, nil, &BurnError{Field: pname, Err: ErrConflict, Detail: fmt.Sprintf("BLOCK_KEY%d already has purpose %v, want %v", n, Purpose(cur), k.Purpose)}
			}
			if !purposeWritable {
				return nil, nil, &BurnError{Field: pname, Err: ErrWriteProtected}
			}
			add(Request{Field: pname, Value: uint64(k.Purpose)}, false)
		}
		if purposeWritable {
			add(Request{Op: OpWriteProtect, Field: pname}, false)
		}
		if k.ReadProtect {
			add(Request{Op: OpReadProtect, Field: fmt.Sprintf("BLOCK_KEY%d", n)}, false)
		}
		if k.WriteProtect {
			add(Request{Op: OpWriteProtect, Field: fmt.Sprintf("BLOCK_KEY%d", n)}, false)
		}
	}
	return reqs, secrets, nil
}

// isMask reports the fields whose requests add bits (espefuse lets WR_DIS
// and RD_DIS keep bits that are already set).
func isMask(f Field) bool { return f.Name == "WR_DIS" || f.Name == "RD_DIS" }

func (l *layout) merge(wants map[string]*want, r Request, secret bool) error {
	f, err := l.field(r.Field)
	if err != nil {
		return &BurnError{Field: r.Field, Err: ErrUnknownField}
	}
	switch r.Op {
	case OpWriteProtect, OpReadProtect:
		bit, target := f.WrDis, "WR_DIS"
		if r.Op == OpReadProtect {
			bit, target = f.RdDis, "RD_DIS"
		}
		if bit < 0 && f.Block != 0 {
			bit = l.blocks[f.Block].WrDis
			if r.Op == OpReadProtect {
				bit = l.blocks[f.Block].RdDis
			}
		}
		if bit < 0 {
			return &BurnError{Field: f.Name, Block: f.Block, Err: ErrRange, Detail: "the field has no " + target + " bit"}
		}
		tf, err := l.field(target)
		if err != nil {
			return err
		}
		v := make([]byte, (tf.Width+7)/8)
		v[bit/8] = 1 << (bit % 8)
		return mergeWant(wants, tf, v, false)
	case OpSet:
	default:
		return &BurnError{Field: f.Name, Block: f.Block, Err: ErrRange, Detail: fmt.Sprintf("unknown op %d", r.Op)}
	}
	var v []byte
	if r.Bytes != nil {
		if err := checkBytes(f, r.Bytes); err != nil {
			return &BurnError{Field: f.Name, Block: f.Block, Err: ErrRange, Detail: fmt.Sprintf("needs %d bytes (%d bits)", (f.Width+7)/8, f.Width)}
		}
		v = slices.Clone(r.Bytes)
	} else {
		if f.Width > 64 {
			return &BurnError{Field: f.Name, Block: f.Block, Err: ErrRange, Detail: fmt.Sprintf("%d bits wide, give Bytes", f.Width)}
		}
		if f.Width < 64 && r.Value>>f.Width != 0 {
			return &BurnError{Field: f.Name, Block: f.Block, Err: ErrRange, Detail: fmt.Sprintf("value 0x%x does not fit %d bits", r.Value, f.Width)}
		}
		v = make([]byte, (f.Width+7)/8)
		for i := range v {
			v[i] = byte(r.Value >> (8 * i))
		}
	}
	return mergeWant(wants, f, v, secret)
}

func mergeWant(wants map[string]*want, f Field, v []byte, secret bool) error {
	w := wants[f.Name]
	if w == nil {
		wants[f.Name] = &want{f: f, val: v, mask: isMask(f), secret: secret}
		return nil
	}
	w.secret = w.secret || secret
	if w.mask {
		for i := range v {
			w.val[i] |= v[i]
		}
		return nil
	}
	if !bytes.Equal(w.val, v) {
		return &BurnError{Field: f.Name, Block: f.Block, Err: ErrConflict, Detail: "requested twice with different values"}
	}
	return nil
}

// check applies the burn rules to one merged request; keep is false when the
// field already holds the value.
func (l *layout) check(img *Image, w *want, wrDis, rdDis uint64) (keep bool, err error) {
	f := w.f
	cur := getBytes(img.Blocks[f.Block], f.start(), f.Width)
	refuse := func(e error, detail string) (bool, error) {
		return false, &BurnError{Field: f.Name, Block: f.Block, Err: e, Detail: detail}
	}
	if w.mask {
		if andNotZero(w.val, cur) {
			return false, nil
		}
		if !l.writable(f, wrDis) {
			return refuse(ErrWriteProtected, "")
		}
		return true, nil
	}
	if bytes.Equal(w.val, cur) {
		return false, nil
	}
	if !l.readable(f, rdDis) {
		return refuse(ErrReadProtected, "its current content cannot be read, a burn may damage it")
	}
	if !l.writable(f, wrDis) {
		return refuse(ErrWriteProtected, "")
	}
	switch img.BlockCoding(f.Block) {
	case chip.CodingRS:
		if !allZeroWords(img.Blocks[f.Block]) {
			return refuse(ErrCodedRewrite, "an RS-coded block is written once; its check bytes cannot change")
		}
	case chip.Coding34:
		if f.start()+f.Width > 192 && !zeroAbove(w.val, 192-f.start()) {
			return refuse(ErrRange, "3/4 coding holds 24 bytes per block")
		}
		for g := range 4 {
			lo, hi := 48*g, 48*g+48
			if f.start() >= hi || f.start()+f.Width <= lo {
				continue
			}
			if getBits(img.Blocks[f.Block], lo, 48) != 0 {
				return refuse(ErrCodedRewrite, fmt.Sprintf("3/4 group %d already written", g))
			}
		}
	}
	if f.Block != 0 && img.Chip == chip.ESP32 && img.codingScheme() == 2 {
		return refuse(ErrRange, "repeat coding (CODING_SCHEME 2) is not supported")
	}
	if andNotZero(cur, w.val) {
		return true, nil
	}
	return refuse(ErrBitClear, "")
}

// checkCombinations applies espefuse's cross-field refusals.
func (l *layout) checkCombinations(img *Image, kept []*want) error {
	if l.id != chip.ESP32S3 {
		return nil
	}
	// DIS_USB_JTAG together with DIS_USB_SERIAL_JTAG trips a ROM bug (§3.1).
	pending := func(name string) bool {
		for _, w := range kept {
			if w.f.Name == name {
				return !allZero(w.val)
			}
		}
		return false
	}
	set := func(name string) bool { v, _ := img.Get(name); return v != 0 }
	pj, ps := pending("DIS_USB_JTAG"), pending("DIS_USB_SERIAL_JTAG")
	if (pj && ps) || (pj && set("DIS_USB_SERIAL_JTAG")) || (ps && set("DIS_USB_JTAG")) {
		return &BurnError{Field: "DIS_USB_JTAG", Err: ErrForbidden, Detail: "DIS_USB_JTAG and DIS_USB_SERIAL_JTAG cannot both be set on ESP32-S3 (ROM bug)"}
	}
	return nil
}

// programs lays the kept requests into block programs, highest block first,
// BLOCK0 last in two passes.
func (l *layout) programs(img *Image, kept []*want) ([]Program, error) {
	var out []Program
	for b := len(l.blocks) - 1; b >= 0; b-- {
		for _, pass := range []int{1, 2} {
			words := make([]uint32, 8)
			p := Program{Block: b, Pass: pass, Coding: img.BlockCoding(b)}
			for _, w := range kept {
				if w.f.Block != b || (b == 0 && l.postponed[w.f.Name] != (pass == 2)) {
					continue
				}
				tmp := make([]uint32, 8)
				setBytes(tmp, w.f.start(), w.f.Width, w.val)
				for i := range words {
					words[i] |= tmp[i]
				}
				p.Fields = append(p.Fields, w.f.Name)
				p.Secret = p.Secret || w.secret
			}
			if len(p.Fields) == 0 {
				continue
			}
			copy(p.Data[:], words)
			switch p.Coding {
			case chip.CodingRS:
				p.Check = CheckWords(p.Data)
			case chip.Coding34:
				var d [24]byte
				full := wordsToBytes(p.Data)
				copy(d[:], full[:24])
				p.Data = Encode34(d)
			}
			out = append(out, p)
			if b != 0 {
				break // one pass for blocks other than BLOCK0
			}
		}
	}
	return out, nil
}

// Apply programs every step of the plan into img, which holds the physical
// bits (a virtual board's fuse array), as a controller would: see Program.
// Use ReadView for what the board then reads back.
func Apply(img *Image, p *Plan) error {
	if img.Chip != p.Chip {
		return fmt.Errorf("efuse: plan for %v applied to a %v image: %w", p.Chip, img.Chip, ErrShape)
	}
	for _, pr := range p.Programs {
		if err := img.Program(pr.Block, pr.Data, pr.Check); err != nil {
			return err
		}
	}
	return nil
}

// Burn is one complete burn run on a simulated board: it plans b against
// what phys reads back (ReadView) and applies the plan to the physical bits.
// On a refusal nothing is programmed.
func Burn(phys *Image, b Batch) (*Plan, error) {
	view, err := phys.ReadView()
	if err != nil {
		return nil, err
	}
	p, err := NewPlan(view, b)
	if err != nil {
		return nil, err
	}
	return p, Apply(phys, p)
}

// Program does what the eFuse controller does with one program command on
// the physical bits in img (§1.5): on S3/C3 it refuses data whose check
// words are not RSCheck of the data (BLOCK1…10; espefuse's emulator aborts,
// real hardware would record errors), ignores bits covered by WR_DIS (the
// whole block, or per field on BLOCK0) and ORs the rest in: bits only go from
// 0 to 1. On ESP32, data is the block's write registers: 3/4-coded blocks
// are checked and their 24 data bytes stored in words 0…5; check is unused.
// Program returns without error when write protection masks everything, as
// the hardware does; a read-back shows the difference.
func (img *Image) Program(block int, data [8]uint32, check [3]uint32) error {
	l, err := img.layout()
	if err != nil {
		return err
	}
	if block < 0 || block >= len(l.blocks) {
		return fmt.Errorf("efuse: %v has no BLOCK%d: %w", img.Chip, block, ErrRange)
	}
	wrDis, _ := img.protections()
	dst := img.Blocks[block]
	if block == 0 {
		mask := l.block0Protected(uint32(wrDis))
		for i := range dst {
			dst[i] |= data[i] &^ mask[i]
		}
		return nil
	}
	words := data
	switch img.BlockCoding(block) {
	case chip.CodingRS:
		if CheckWords(data) != check {
			return fmt.Errorf("efuse: BLOCK%d program: %w", block, ErrCoding)
		}
	case chip.Coding34:
		d, err := Decode34(data)
		if err != nil {
			return fmt.Errorf("efuse: BLOCK%d program: %w", block, err)
		}
		var full [32]byte
		copy(full[:], d[:])
		words = bytesToWords(full)
	default:
		if img.Chip == chip.ESP32 && img.codingScheme() == 2 {
			return fmt.Errorf("efuse: BLOCK%d program: repeat coding is not supported: %w", block, ErrRange)
		}
	}
	if b := l.blocks[block]; b.WrDis >= 0 && wrDis&(1<<b.WrDis) != 0 {
		return nil
	}
	for i := range dst {
		dst[i] |= words[i]
	}
	return nil
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func allZeroWords(w []uint32) bool {
	for _, x := range w {
		if x != 0 {
			return false
		}
	}
	return true
}

// andNotZero reports whether a has no bit that b lacks (a &^ b == 0).
func andNotZero(a, b []byte) bool {
	for i := range a {
		if a[i]&^b[i] != 0 {
			return false
		}
	}
	return true
}

// zeroAbove reports whether every bit from index n on is zero.
func zeroAbove(v []byte, n int) bool {
	for i := range v {
		for bit := range 8 {
			if 8*i+bit >= n && v[i]&(1<<bit) != 0 {
				return false
			}
		}
	}
	return true
}
