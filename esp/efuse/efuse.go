package efuse

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"sync"

	"fuseline/esp/chip"
)

// Kind says how a field's bits are read and shown.
type Kind uint8

const (
	// KindUint is an unsigned number of up to 64 bits.
	KindUint Kind = iota + 1
	// KindBool is a single bit.
	KindBool
	// KindBytes is a byte string in block byte order (byte 0 = lowest bits):
	// key blocks, digests, user data.
	KindBytes
	// KindMAC is a factory MAC stored reversed (§2.5): block byte 0 is the
	// last MAC byte.
	KindMAC
	// KindCustomMAC is a MAC stored in natural order (CUSTOM_MAC, §2.5).
	KindCustomMAC
)

func (k Kind) String() string {
	switch k {
	case KindUint:
		return "uint"
	case KindBool:
		return "bool"
	case KindBytes:
		return "bytes"
	case KindMAC:
		return "mac"
	case KindCustomMAC:
		return "custom-mac"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Field is one named eFuse field: Width bits starting at bit Bit of word Word
// of block Block. Fields may cross word boundaries (bit index = 32·Word+Bit);
// whole-block fields (BLOCK_KEY0 …) are 256 bits wide.
type Field struct {
	Name                    string
	Block, Word, Bit, Width int
	// WrDis is the WR_DIS bit that write-locks the field, RdDis the RD_DIS bit
	// that hides it; -1 for none.
	WrDis, RdDis int
	Kind         Kind
	// Alias lists other names espefuse accepts for the field.
	Alias []string
	// Hidden marks reserved or undocumented fields espefuse does not show by
	// default; they are listed so that write protection covers every bit.
	Hidden bool
	// Desc says what the field does, in a few words.
	Desc string
}

// start is the field's first bit index within its block.
func (f Field) start() int { return 32*f.Word + f.Bit }

// table-building helpers: f(...) then modifiers, so the per-chip tables stay
// one line per field.
func fd(name string, block, word, bit, width, wrDis int, desc string) Field {
	return Field{Name: name, Block: block, Word: word, Bit: bit, Width: width, WrDis: wrDis, RdDis: -1, Desc: desc}
}
func (f Field) rd(bit int) Field        { f.RdDis = bit; return f }
func (f Field) kind(k Kind) Field       { f.Kind = k; return f }
func (f Field) alias(a ...string) Field { f.Alias = a; return f }
func (f Field) hide() Field             { f.Hidden = true; return f }
func (f Field) normalized() Field {
	if f.Kind == 0 {
		switch {
		case f.Width == 1:
			f.Kind = KindBool
		case f.Width > 64:
			f.Kind = KindBytes
		default:
			f.Kind = KindUint
		}
	}
	return f
}

// Block describes one eFuse block of a chip (§2.1, §2.3).
type Block struct {
	Num   int
	Name  string   // espefuse name, "BLOCK_KEY0"
	Alias []string // "BLOCK4"
	Words int      // data words the read registers show
	// WrDis and RdDis are the whole-block protection bits; -1 for none
	// (BLOCK0 is protected per field).
	WrDis, RdDis int
	// Coding is the block's coding as shipped. On ESP32 blocks 1…3 follow
	// CODING_SCHEME; use (*Image).BlockCoding for the effective one.
	Coding chip.Coding
}

// layout is one chip's complete table. Each is built once, on first use, and
// never written afterwards; exported accessors hand out copies, so callers
// cannot change what another caller sees.
type layout struct {
	id        chip.ID
	blocks    []Block
	fields    []Field
	byName    map[string]int
	postponed map[string]bool
	// downloadOff is the BLOCK0 field that turns the ROM loader off.
	downloadOff string
	// secureDownload is the BLOCK0 field that limits the ROM loader to
	// secure download mode; "" on ESP32, which has no such mode.
	secureDownload string
	// revoke[i] is the field that revokes Secure Boot digest slot i; nil on
	// ESP32, whose one digest (BLOCK2) cannot be revoked.
	revoke []string
}

// layouts holds the three chip tables, built lazily: a table lookup sits on
// the hot path of every Get/Set and of the virtual board's boot.
var layouts = map[chip.ID]func() (*layout, error){
	chip.ESP32S3: sync.OnceValues(func() (*layout, error) { return buildLayout(chip.ESP32S3) }),
	chip.ESP32C3: sync.OnceValues(func() (*layout, error) { return buildLayout(chip.ESP32C3) }),
	chip.ESP32:   sync.OnceValues(func() (*layout, error) { return buildLayout(chip.ESP32) }),
}

func layoutFor(id chip.ID) (*layout, error) {
	if f, ok := layouts[id]; ok {
		return f()
	}
	return nil, fmt.Errorf("efuse: no eFuse table for %v: %w", id, ErrUnknownChip)
}

func buildLayout(id chip.ID) (*layout, error) {
	var l layout
	var postponed []string
	switch id {
	case chip.ESP32S3:
		l.blocks, l.fields = s3c3Blocks(), esp32s3Fields()
		postponed, l.downloadOff, l.secureDownload = s3c3Postponed(), "DIS_DOWNLOAD_MODE", "ENABLE_SECURITY_DOWNLOAD"
		l.revoke = []string{"SECURE_BOOT_KEY_REVOKE0", "SECURE_BOOT_KEY_REVOKE1", "SECURE_BOOT_KEY_REVOKE2"}
	case chip.ESP32C3:
		l.blocks, l.fields = s3c3Blocks(), esp32c3Fields()
		postponed, l.downloadOff, l.secureDownload = s3c3Postponed(), "DIS_DOWNLOAD_MODE", "ENABLE_SECURITY_DOWNLOAD"
		l.revoke = []string{"SECURE_BOOT_KEY_REVOKE0", "SECURE_BOOT_KEY_REVOKE1", "SECURE_BOOT_KEY_REVOKE2"}
	case chip.ESP32:
		l.blocks, l.fields = esp32Blocks(), esp32Fields()
		postponed, l.downloadOff = esp32Postponed(), "UART_DOWNLOAD_DIS"
	default:
		return nil, fmt.Errorf("efuse: no eFuse table for %v: %w", id, ErrUnknownChip)
	}
	l.id = id
	// Table order: block, then bit position, wider (whole-block) fields first.
	slices.SortStableFunc(l.fields, func(a, b Field) int {
		if a.Block != b.Block {
			return a.Block - b.Block
		}
		if a.start() != b.start() {
			return a.start() - b.start()
		}
		return b.Width - a.Width
	})
	l.byName = make(map[string]int, 2*len(l.fields))
	for i := range l.fields {
		l.fields[i] = l.fields[i].normalized()
		l.byName[l.fields[i].Name] = i
	}
	for i, f := range l.fields {
		for _, a := range f.Alias {
			if _, taken := l.byName[a]; !taken {
				l.byName[a] = i
			}
		}
	}
	l.postponed = make(map[string]bool, len(postponed))
	for _, n := range postponed {
		l.postponed[n] = true
	}
	return &l, nil
}

func (l *layout) field(name string) (Field, error) {
	if i, ok := l.byName[strings.ToUpper(name)]; ok {
		return l.fields[i], nil
	}
	return Field{}, fmt.Errorf("efuse: %v has no field %q: %w", l.id, name, ErrUnknownField)
}

// Sentinel errors. Errors from this package wrap one of them where a caller
// may want to branch.
var (
	ErrUnknownChip  = errors.New("unsupported chip")
	ErrUnknownField = errors.New("unknown field")
	ErrRange        = errors.New("value does not fit the field")
	ErrShape        = errors.New("image does not have the chip's block layout")
)

// DownloadDisableField names the field that turns the ROM download mode off
// for good: DIS_DOWNLOAD_MODE on S3/C3, UART_DOWNLOAD_DIS on ESP32. Unknown
// chips give "".
func DownloadDisableField(id chip.ID) string {
	l, err := layoutFor(id)
	if err != nil {
		return ""
	}
	return l.downloadOff
}

// SecureDownloadField names the field that limits the ROM loader to secure
// download mode: ENABLE_SECURITY_DOWNLOAD on S3/C3. ESP32 has no secure
// download mode; it and unknown chips give "".
func SecureDownloadField(id chip.ID) string {
	l, err := layoutFor(id)
	if err != nil {
		return ""
	}
	return l.secureDownload
}

// RevokeField names the field that revokes Secure Boot digest slot slot
// (SECURE_BOOT_KEY_REVOKEn on S3/C3). ESP32 has no revocation: it, a slot
// the chip does not have and unknown chips give "".
func RevokeField(id chip.ID, slot int) string {
	l, err := layoutFor(id)
	if err != nil || slot < 0 || slot >= len(l.revoke) {
		return ""
	}
	return l.revoke[slot]
}

// ClosesLoader reports whether burning field (a name or alias) ends the ROM
// loader's register access at the controller's next reload: the download
// disable field, or the secure download mode field where the chip has one.
// After such a burn a link that stops answering is the expected outcome.
func ClosesLoader(id chip.ID, field string) bool {
	l, err := layoutFor(id)
	if err != nil {
		return false
	}
	f, err := l.field(field)
	if err != nil {
		return false
	}
	return f.Name == l.downloadOff || (l.secureDownload != "" && f.Name == l.secureDownload)
}

// Fields lists every field of the chip's table, in block, word and bit order.
// Unknown chips give nil.
func Fields(id chip.ID) []Field {
	l, err := layoutFor(id)
	if err != nil {
		return nil
	}
	return slices.Clone(l.fields)
}

// FieldByName finds a field by its espefuse name or alias (case-insensitive).
func FieldByName(id chip.ID, name string) (Field, error) {
	l, err := layoutFor(id)
	if err != nil {
		return Field{}, err
	}
	return l.field(name)
}

// Blocks lists the chip's eFuse blocks in order.
func Blocks(id chip.ID) []Block {
	switch id {
	case chip.ESP32S3, chip.ESP32C3:
		return s3c3Blocks()
	case chip.ESP32:
		return esp32Blocks()
	}
	return nil
}

// BlockByName finds a block by name, alias or "BLOCKn".
func BlockByName(id chip.ID, name string) (Block, error) {
	for _, b := range Blocks(id) {
		if strings.EqualFold(b.Name, name) || strings.EqualFold(fmt.Sprintf("BLOCK%d", b.Num), name) ||
			slices.ContainsFunc(b.Alias, func(a string) bool { return strings.EqualFold(a, name) }) {
			return b, nil
		}
	}
	return Block{}, fmt.Errorf("efuse: %v has no block %q: %w", id, name, ErrUnknownField)
}

// BlockWrDisBit is the WR_DIS bit that write-locks the whole block; -1 for
// BLOCK0 (protected per field), unknown chips and blocks.
func BlockWrDisBit(id chip.ID, block int) int {
	bs := Blocks(id)
	if block < 0 || block >= len(bs) {
		return -1
	}
	return bs[block].WrDis
}

// BlockRdDisBit is the RD_DIS bit that hides the whole block; -1 if none.
func BlockRdDisBit(id chip.ID, block int) int {
	bs := Blocks(id)
	if block < 0 || block >= len(bs) {
		return -1
	}
	return bs[block].RdDis
}

// Block0WriteProtected returns, per BLOCK0 word, the mask of bits that can no
// longer be programmed given the WR_DIS word wrDis (§3.3, §3.6): the bits of
// every field whose WR_DIS bit is set. On S3/C3 bit 18 covers SECURE_VERSION
// together with the download-mode fields. Unknown chips give nil.
func Block0WriteProtected(id chip.ID, wrDis uint32) []uint32 {
	l, err := layoutFor(id)
	if err != nil {
		return nil
	}
	return l.block0Protected(wrDis)
}

func (l *layout) block0Protected(wrDis uint32) []uint32 {
	mask := make([]uint32, l.blocks[0].Words)
	for _, f := range l.fields {
		if f.Block != 0 || f.WrDis < 0 || wrDis&(1<<f.WrDis) == 0 {
			continue
		}
		setBits(mask, f.start(), f.Width, ^uint64(0))
	}
	return mask
}

// WrDisFields lists the names of the fields (and whole blocks) that WR_DIS
// bit locks, as in the §3.3 / §3.6 tables.
func WrDisFields(id chip.ID, bit int) []string {
	l, err := layoutFor(id)
	if err != nil {
		return nil
	}
	var names []string
	for _, f := range l.fields {
		if f.WrDis == bit {
			names = append(names, f.Name)
		}
	}
	return names
}

// Image is the raw words of every block (S3/C3: 11 blocks, BLOCK0 and BLOCK1
// with 6 words, the others 8; ESP32: 4 blocks, BLOCK0 with 7 words, the
// others 8). Whether it holds the physical bits or what the read registers
// show is up to the holder; see the package comment.
type Image struct {
	Chip   chip.ID
	Blocks [][]uint32
}

// NewImage returns a blank (all zero) image of the chip.
func NewImage(id chip.ID) (*Image, error) {
	bs := Blocks(id)
	if bs == nil {
		return nil, fmt.Errorf("efuse: no eFuse layout for %v: %w", id, ErrUnknownChip)
	}
	img := &Image{Chip: id, Blocks: make([][]uint32, len(bs))}
	for i, b := range bs {
		img.Blocks[i] = make([]uint32, b.Words)
	}
	return img, nil
}

// Clone returns a deep copy.
func (img *Image) Clone() *Image {
	c := &Image{Chip: img.Chip, Blocks: make([][]uint32, len(img.Blocks))}
	for i, b := range img.Blocks {
		c.Blocks[i] = slices.Clone(b)
	}
	return c
}

// Equal reports whether both images are of the same chip with the same words.
func (img *Image) Equal(o *Image) bool {
	if img.Chip != o.Chip || len(img.Blocks) != len(o.Blocks) {
		return false
	}
	for i := range img.Blocks {
		if !slices.Equal(img.Blocks[i], o.Blocks[i]) {
			return false
		}
	}
	return true
}

// Validate checks that the image has the chip's block layout.
func (img *Image) Validate() error {
	if img == nil {
		return fmt.Errorf("efuse: nil image: %w", ErrShape)
	}
	bs := Blocks(img.Chip)
	if bs == nil {
		return fmt.Errorf("efuse: image of %v: %w", img.Chip, ErrUnknownChip)
	}
	if len(img.Blocks) != len(bs) {
		return fmt.Errorf("efuse: %v image has %d blocks, want %d: %w", img.Chip, len(img.Blocks), len(bs), ErrShape)
	}
	for i, b := range bs {
		if len(img.Blocks[i]) != b.Words {
			return fmt.Errorf("efuse: %v image BLOCK%d has %d words, want %d: %w", img.Chip, i, len(img.Blocks[i]), b.Words, ErrShape)
		}
	}
	return nil
}

func (img *Image) layout() (*layout, error) {
	if err := img.Validate(); err != nil {
		return nil, err
	}
	return layoutFor(img.Chip)
}

// Get returns the value of a field of up to 64 bits.
func (img *Image) Get(name string) (uint64, error) {
	l, err := img.layout()
	if err != nil {
		return 0, err
	}
	f, err := l.field(name)
	if err != nil {
		return 0, err
	}
	if f.Width > 64 {
		return 0, fmt.Errorf("efuse: %s is %d bits wide, use GetBytes: %w", f.Name, f.Width, ErrRange)
	}
	return getBits(img.Blocks[f.Block], f.start(), f.Width), nil
}

// Set overwrites a field of up to 64 bits (bits may go either way: this
// edits an image, it does not burn; see Apply for burning).
func (img *Image) Set(name string, v uint64) error {
	l, err := img.layout()
	if err != nil {
		return err
	}
	f, err := l.field(name)
	if err != nil {
		return err
	}
	if f.Width > 64 {
		return fmt.Errorf("efuse: %s is %d bits wide, use SetBytes: %w", f.Name, f.Width, ErrRange)
	}
	if f.Width < 64 && v>>f.Width != 0 {
		return fmt.Errorf("efuse: value 0x%x does not fit %s (%d bits): %w", v, f.Name, f.Width, ErrRange)
	}
	setBits(img.Blocks[f.Block], f.start(), f.Width, v)
	return nil
}

// GetBytes returns a field's bits as bytes in block byte order: byte 0 holds
// the field's lowest 8 bits. For a key block this is the 32 bytes as stored;
// for MAC it is the reversed storage (see MAC for the display order).
func (img *Image) GetBytes(name string) ([]byte, error) {
	l, err := img.layout()
	if err != nil {
		return nil, err
	}
	f, err := l.field(name)
	if err != nil {
		return nil, err
	}
	return getBytes(img.Blocks[f.Block], f.start(), f.Width), nil
}

// SetBytes overwrites a field from bytes in block byte order; b must have
// exactly (Width+7)/8 bytes.
func (img *Image) SetBytes(name string, b []byte) error {
	l, err := img.layout()
	if err != nil {
		return err
	}
	f, err := l.field(name)
	if err != nil {
		return err
	}
	if err := checkBytes(f, b); err != nil {
		return err
	}
	setBytes(img.Blocks[f.Block], f.start(), f.Width, b)
	return nil
}

func checkBytes(f Field, b []byte) error {
	n := (f.Width + 7) / 8
	if len(b) != n {
		return fmt.Errorf("efuse: %s takes %d bytes, got %d: %w", f.Name, n, len(b), ErrRange)
	}
	if r := f.Width % 8; r != 0 && b[n-1]>>r != 0 {
		return fmt.Errorf("efuse: value does not fit %s (%d bits): %w", f.Name, f.Width, ErrRange)
	}
	return nil
}

// BlockCoding is the effective coding of a block: S3/C3 BLOCK1…10 are RS;
// ESP32 BLOCK1…3 follow CODING_SCHEME (1 = 3/4, 2 = repeat, which is refused
// elsewhere, 0 and 3 = none). BLOCK0 has no coding.
func (img *Image) BlockCoding(block int) chip.Coding {
	if block == 0 {
		return chip.CodingNone
	}
	if img.Chip != chip.ESP32 {
		return chip.CodingRS
	}
	cs, err := img.Get("CODING_SCHEME")
	if err == nil && cs == 1 {
		return chip.Coding34
	}
	return chip.CodingNone
}

// codingScheme is ESP32's raw CODING_SCHEME (0 on other chips).
func (img *Image) codingScheme() uint64 {
	if img.Chip != chip.ESP32 {
		return 0
	}
	cs, _ := img.Get("CODING_SCHEME")
	return cs
}

// ReadView returns what the read registers show for an image of physical
// bits: blocks whose RD_DIS bit is set read as zero, and on ESP32 RD_DIS bit 3
// also hides the BLOCK0 fields that carry rd_dis 3 (§1.5, §3.2, §3.6).
func (img *Image) ReadView() (*Image, error) {
	l, err := img.layout()
	if err != nil {
		return nil, err
	}
	v := img.Clone()
	rdDis, _ := img.Get("RD_DIS")
	for _, b := range l.blocks {
		if b.RdDis >= 0 && rdDis&(1<<b.RdDis) != 0 {
			clear(v.Blocks[b.Num])
		}
	}
	for _, f := range l.fields {
		if f.Block == 0 && f.RdDis >= 0 && rdDis&(1<<f.RdDis) != 0 {
			setBits(v.Blocks[0], f.start(), f.Width, 0)
		}
	}
	return v, nil
}

// readable reports whether the field reads back its bits, given RD_DIS.
func (l *layout) readable(f Field, rdDis uint64) bool {
	if f.RdDis >= 0 && rdDis&(1<<f.RdDis) != 0 {
		return false
	}
	if b := l.blocks[f.Block]; b.RdDis >= 0 && rdDis&(1<<b.RdDis) != 0 {
		return false
	}
	return true
}

// writable reports whether the field can still be programmed, given WR_DIS.
func (l *layout) writable(f Field, wrDis uint64) bool {
	if f.WrDis >= 0 && wrDis&(1<<f.WrDis) != 0 {
		return false
	}
	if b := l.blocks[f.Block]; b.WrDis >= 0 && wrDis&(1<<b.WrDis) != 0 {
		return false
	}
	return true
}

// protections returns WR_DIS and RD_DIS of an image.
func (img *Image) protections() (wrDis, rdDis uint64) {
	wrDis, _ = img.Get("WR_DIS")
	rdDis, _ = img.Get("RD_DIS")
	return wrDis, rdDis
}

// Readable reports whether the named field reads back (its RD_DIS bit, or its
// block's, is clear).
func (img *Image) Readable(name string) (bool, error) {
	l, err := img.layout()
	if err != nil {
		return false, err
	}
	f, err := l.field(name)
	if err != nil {
		return false, err
	}
	_, rd := img.protections()
	return l.readable(f, rd), nil
}

// Writable reports whether the named field can still be programmed.
func (img *Image) Writable(name string) (bool, error) {
	l, err := img.layout()
	if err != nil {
		return false, err
	}
	f, err := l.field(name)
	if err != nil {
		return false, err
	}
	wr, _ := img.protections()
	return l.writable(f, wr), nil
}

// Bit helpers over a block's words; bit i is bit i%32 of word i/32.

func getBits(words []uint32, start, width int) uint64 {
	var v uint64
	for i := 0; i < width; {
		w, b := (start+i)/32, (start+i)%32
		n := min(32-b, width-i)
		chunk := uint64(words[w]>>b) & (1<<n - 1)
		v |= chunk << i
		i += n
	}
	return v
}

func setBits(words []uint32, start, width int, v uint64) {
	for i := 0; i < width; {
		w, b := (start+i)/32, (start+i)%32
		n := min(32-b, width-i)
		m := uint32(1<<n-1) << b
		words[w] = words[w]&^m | uint32(v>>i)<<b&m
		i += n
	}
}

func getBytes(words []uint32, start, width int) []byte {
	out := make([]byte, (width+7)/8)
	for i := range out {
		n := min(8, width-8*i)
		out[i] = byte(getBits(words, start+8*i, n))
	}
	return out
}

func setBytes(words []uint32, start, width int, b []byte) {
	for i := range b {
		n := min(8, width-8*i)
		setBits(words, start+8*i, n, uint64(b[i]))
	}
}

func popcount(v uint64) int { return bits.OnesCount64(v) }
